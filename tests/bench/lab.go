package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/latencyproxy"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Sizes of the generated images other than the one exported whole. Layers are
// random bytes, stored uncompressed: compressing them would cost setup time
// and save nothing.
const (
	sourceLayers    = 4
	sourceLayerSize = 2 << 20 // 8 MiB per create source image
	sharedLayerSize = 8 << 20
	bigLayers       = 8
	layeredSize     = 64 << 20
)

// layeredCounts are the layer counts of the layeredSize images: the same
// bytes in few large layers and in many small ones.
var layeredCounts = [2]int{4, 64}

// sourcePlatforms are the platforms of the single-platform create sources and
// of the 8-platform index.
func sourcePlatforms() []string {
	return []string{"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6",
		"linux/386", "linux/ppc64le", "linux/s390x", "linux/riscv64"}
}

// blobRef is one blob or manifest a case reads, with the repository holding it
// on registry A.
type blobRef struct {
	repo string
	desc ocispec.Descriptor
}

// link is the pair of proxies, one per registry, at one latency.
type link struct {
	a, b *latencyproxy.Proxy
}

// lab holds the two registries, the proxies and the pushed fixtures.
type lab struct {
	cfg      config
	tmp      string
	launcher string
	env      []string
	a, b     *registrytest.Registry
	links    map[time.Duration]link
	// rated is the link of cfg.rate at the largest latency, when set.
	rated    link
	commands map[string]bool
	closers  []func() error
	// peers are the other tools found; peerEnv is their environment.
	peers   map[string]peer
	peerEnv []string

	sources []sourceImage // single-platform images in src/app
	index8  []blobRef     // src/multi:8
	// index8Digest is the digest of src/multi:8, which a copy must keep.
	index8Digest string
	attested     []blobRef    // src/attested:8
	big          []blobRef    // src/big:latest
	shared       [2][]blobRef // src/shared-a:latest, src/shared-b:latest
	// layered holds, per layer count, an image of layeredSize bytes in
	// that many layers (src/layers:N): export time should follow bytes.
	layered map[int][]blobRef
	// bundle (src/bundle) and many (src/many) are the scale cases' images.
	bundle []bundleImage
	many   []bundleImage
	// releaseBlobs are the blobs of the release (copyset.go).
	releaseBlobs []blobRef
	releaseMu    sync.Mutex
}

// sourceImage is a create source: its tag in src/app and its blobs.
type sourceImage struct {
	tag   string
	blobs []blobRef
}

func newLab(ctx context.Context, cfg config, tmp string) (l *lab, err error) {
	l = &lab{cfg: cfg, tmp: tmp, links: map[time.Duration]link{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	if l.commands, err = availableCommands(ctx, cfg.binary); err != nil {
		return nil, err
	}
	if l.launcher, err = buildLauncher(ctx, tmp); err != nil {
		return nil, err
	}
	l.env = binaryEnv(tmp)
	l.peers, l.peerEnv = findPeers(ctx, cfg.tools), peerEnv(tmp)
	if l.a, err = l.startRegistry(ctx); err != nil {
		return nil, err
	}
	if l.b, err = l.startRegistry(ctx); err != nil {
		return nil, err
	}
	for _, lat := range cfg.latencies {
		pa, err := l.startProxy(ctx, l.a.Host, lat)
		if err != nil {
			return nil, err
		}
		pb, err := l.startProxy(ctx, l.b.Host, lat)
		if err != nil {
			return nil, err
		}
		l.links[lat] = link{a: pa, b: pb}
	}
	if cfg.rate > 0 {
		lat := slices.Max(cfg.latencies)
		pa, err := l.startProxyRated(ctx, l.a.Host, lat, cfg.rate)
		if err != nil {
			return nil, err
		}
		pb, err := l.startProxyRated(ctx, l.b.Host, lat, cfg.rate)
		if err != nil {
			return nil, err
		}
		l.rated = link{a: pa, b: pb}
	}
	return l, l.pushFixtures(ctx)
}

func (l *lab) startRegistry(ctx context.Context) (*registrytest.Registry, error) {
	r, err := registrytest.StartServer(ctx, registrytest.Options{})
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	l.closers = append(l.closers, r.Close)
	return r, nil
}

func (l *lab) startProxy(ctx context.Context, upstream string, lat time.Duration) (*latencyproxy.Proxy, error) {
	return l.startProxyRated(ctx, upstream, lat, 0)
}

func (l *lab) startProxyRated(ctx context.Context, upstream string, lat time.Duration, rate int64) (*latencyproxy.Proxy, error) {
	p, err := latencyproxy.Start(ctx, latencyproxy.Options{Upstream: upstream, Latency: lat, Rate: rate})
	if err != nil {
		return nil, err
	}
	l.closers = append(l.closers, p.Close)
	return p, nil
}

// Close stops the proxies and registries, last started first.
func (l *lab) Close() error {
	var errs []error
	for i := len(l.closers) - 1; i >= 0; i-- {
		errs = append(errs, l.closers[i]())
	}
	l.closers = nil
	return errors.Join(errs...)
}

// pushFixtures generates the images and pushes them to registry A through its
// admin host, which logs nothing.
func (l *lab) pushFixtures(ctx context.Context) error {
	host := l.a.AdminHost
	var images []fixture.Image
	for i, p := range sourcePlatforms() {
		img := fixture.NewImage(fixture.ImageOptions{Platform: p, Layers: sourceLayers, LayerSize: sourceLayerSize,
			Compression: fixture.Uncompressed, Seed: int64(100 + i)})
		tag := strings.ReplaceAll(strings.TrimPrefix(p, "linux/"), "/", "")
		if err := fixture.PushImage(ctx, host, "src/app", tag, img); err != nil {
			return err
		}
		images = append(images, img)
		l.sources = append(l.sources, sourceImage{tag: tag, blobs: refs("src/app", img.Blobs())})
	}
	idx := fixture.NewIndex(images, false, nil)
	if err := fixture.PushIndex(ctx, host, "src/multi", "8", idx); err != nil {
		return err
	}
	l.index8 = refs("src/multi", idx.Blobs())
	l.index8Digest = idx.Index.Desc.Digest.String()
	att := fixture.WithAttestations(idx, 7)
	if err := fixture.PushIndex(ctx, host, "src/attested", "8", att); err != nil {
		return err
	}
	l.attested = refs("src/attested", att.Blobs())
	for i, layers := range []int{4, 6} {
		// Same seed and layer size: the first four layers are the same blobs.
		img := fixture.NewImage(fixture.ImageOptions{Layers: layers, LayerSize: sharedLayerSize,
			Compression: fixture.Uncompressed, Seed: 500})
		repo := fmt.Sprintf("src/shared-%c", 'a'+i)
		if err := fixture.PushImage(ctx, host, repo, "latest", img); err != nil {
			return err
		}
		l.shared[i] = refs(repo, img.Blobs())
	}
	if err := l.pushLayered(ctx, host); err != nil {
		return err
	}
	if err := l.pushScale(ctx, host); err != nil {
		return err
	}
	if err := l.pushRelease(ctx); err != nil {
		return err
	}
	return l.pushBig(ctx, host)
}

// pushLayered pushes layeredSize bytes as images of each of layeredCounts
// layers.
func (l *lab) pushLayered(ctx context.Context, host string) error {
	l.layered = map[int][]blobRef{}
	for _, n := range layeredCounts {
		img := fixture.NewImage(fixture.ImageOptions{Layers: n, LayerSize: layeredSize / n,
			Compression: fixture.Uncompressed, Seed: int64(7000 + n)})
		if err := fixture.PushImage(ctx, host, "src/layers", fmt.Sprint(n), img); err != nil {
			return err
		}
		l.layered[n] = refs("src/layers", img.Blobs())
	}
	return nil
}

// pushBig pushes the image exported whole; only its descriptors are kept.
func (l *lab) pushBig(ctx context.Context, host string) error {
	img := fixture.NewImage(fixture.ImageOptions{Layers: bigLayers, LayerSize: int(l.cfg.size / bigLayers),
		Compression: fixture.Uncompressed, Seed: 9000})
	if err := fixture.PushImage(ctx, host, "src/big", "latest", img); err != nil {
		return err
	}
	l.big = refs("src/big", img.Blobs())
	return nil
}

// refs keeps the descriptors of blobs, once each.
func refs(repo string, blobs []fixture.Blob) []blobRef {
	seen := map[string]bool{}
	var out []blobRef
	for _, b := range blobs {
		if !seen[b.Desc.Digest.String()] {
			seen[b.Desc.Digest.String()] = true
			out = append(out, blobRef{repo: repo, desc: b.Desc})
		}
	}
	return out
}

// binaryEnv is the binary's environment: an empty Docker config, no host
// daemon.json or certs.d, and the loopback registries marked plain HTTP.
func binaryEnv(tmp string) []string {
	cfg := filepath.Join(tmp, "docker-config")
	return []string{
		"DOCKER_CONFIG=" + cfg,
		"DOCKER_IMGX_DAEMON_CONFIG=",
		"DOCKER_IMGX_CERTS_DIRS=" + filepath.Join(cfg, "certs.d"),
		"DOCKER_IMGX_INSECURE_REGISTRIES=127.0.0.1",
		"HOME=" + cfg,
		"PATH=" + os.Getenv("PATH"),
		"NO_COLOR=1",
	}
}

// availableCommands reads the command list of `docker-imgx --help`.
func availableCommands(ctx context.Context, binary string) (map[string]bool, error) {
	out, err := exec.CommandContext(ctx, binary, "--help").Output()
	if err != nil {
		return nil, fmt.Errorf("run %s --help: %w", binary, err)
	}
	return parseCommands(out), nil
}

// parseCommands returns the names listed under "Available Commands:" (or
// "Management Commands:") in cobra's help text.
func parseCommands(help []byte) map[string]bool {
	cmds := map[string]bool{}
	inList := false
	sc := bufio.NewScanner(bytes.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasSuffix(line, "Commands:"):
			inList = true
		case strings.TrimSpace(line) == "":
			inList = false
		case inList && strings.HasPrefix(line, "  "):
			if f := strings.Fields(line); len(f) > 0 {
				cmds[f[0]] = true
			}
		}
	}
	return cmds
}

// serve prints where the lab's registries answer, at each latency, and
// waits until ctx ends: commands run by hand (with DOCKER_IMGX_CPUPROFILE
// or --debug) then see the same registries and images as the cases.
func (l *lab) serve(ctx context.Context, w io.Writer) error {
	fmt.Fprintf(w, "bench: registry A (images under src/) and B, plain HTTP; Ctrl-C stops them\n")
	for _, lat := range l.cfg.latencies {
		ln := l.links[lat]
		fmt.Fprintf(w, "  latency %v: A=%s B=%s\n", lat, ln.a.Host(), ln.b.Host())
	}
	if l.cfg.rate > 0 {
		fmt.Fprintf(w, "  latency %v, %s: A=%s B=%s\n", slices.Max(l.cfg.latencies), formatRate8(l.cfg.rate), l.rated.a.Host(), l.rated.b.Host())
	}
	<-ctx.Done()
	return nil
}
