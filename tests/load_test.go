package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/internal/consumers"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// engineProxy sits between docker-imgx and a real dockerd: it counts the
// image-load requests and can drop lines from the engine's answer, to play
// an engine that does not report a name.
type engineProxy struct {
	// Host is the proxy's address, for DOCKER_HOST.
	Host string

	mu    sync.Mutex
	loads int
	drop  string
}

// startEngineProxy serves a proxy to the daemon d on a unix socket.
func startEngineProxy(t *testing.T, d *consumers.Docker) *engineProxy {
	t.Helper()
	// A unix socket path must stay short: not under t.TempDir().
	dir, err := os.MkdirTemp("", "imgx-engine-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "proxy.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &engineProxy{Host: "unix://" + sock}
	backend := strings.TrimPrefix(d.Host, "unix://")
	var dialer net.Dialer
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: "docker"})
			if strings.HasSuffix(r.In.URL.Path, "/images/load") {
				p.mu.Lock()
				p.loads++
				p.mu.Unlock()
			}
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", backend)
		}},
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			p.mu.Lock()
			drop := p.drop
			p.mu.Unlock()
			if drop == "" || !strings.HasSuffix(resp.Request.URL.Path, "/images/load") {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			var kept [][]byte
			for _, line := range bytes.SplitAfter(body, []byte("\n")) {
				if !bytes.Contains(line, []byte(drop)) {
					kept = append(kept, line)
				}
			}
			resp.Body = io.NopCloser(bytes.NewReader(bytes.Join(kept, nil)))
			resp.ContentLength = -1
			resp.Header.Del("Content-Length")
			return nil
		},
	}
	srv := &http.Server{Handler: rp}
	var g errgroup.Group
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	t.Cleanup(func() {
		srv.Close()
		if err := g.Wait(); err != nil {
			t.Errorf("engine proxy: %v", err)
		}
	})
	return p
}

// Loads returns the number of image-load requests seen.
func (p *engineProxy) Loads() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loads
}

// Drop makes the proxy remove the answer lines that contain s ("" stops).
func (p *engineProxy) Drop(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop = s
}

func TestExportLoad(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	d := consumers.StartDocker(t)
	p := startEngineProxy(t, d)
	x := newImgx(t).With("DOCKER_HOST=" + p.Host)

	// loaded checks that every name is an image of the engine whose ID is
	// the config digest, and that the progress has the steps of a load.
	loaded := func(t *testing.T, res result, want map[string]fixture.Blob) {
		t.Helper()
		ids := d.ImageIDs(t)
		if !strings.Contains(res.Stderr, "exporting layers") {
			t.Errorf("no exporting layers step in the progress:\n%s", res.Stderr)
		}
		for name, cfg := range want {
			if ids[name] != cfg.Desc.Digest.String() {
				t.Errorf("image ID of %s = %q, want the config digest %s", name, ids[name], cfg.Desc.Digest)
			}
			full, err := reference.ParseNormalizedNamed(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, step := range []string{"writing image " + cfg.Desc.Digest.String(), "naming to " + full.String()} {
				if !strings.Contains(res.Stderr, step) {
					t.Errorf("no %q step in the progress:\n%s", step, res.Stderr)
				}
			}
		}
	}
	// These steps and image-load requests are the streamed tar's: a
	// registry image goes by the engine's pull unless --load-via stream
	// (TestLoadPullParity compares the two).
	load := func(t *testing.T, args ...string) result {
		t.Helper()
		return x.MustRun(append([]string{"export", "--load", "--load-via", "stream", "--progress", "plain"}, args...)...)
	}

	t.Run("one image", func(t *testing.T) {
		before := p.Loads()
		ref := e.ref("test/app:1")
		res := load(t, ref)
		loaded(t, res, map[string]fixture.Blob{ref: e.app.Config})
		if n := p.Loads() - before; n != 1 {
			t.Errorf("%d image-load requests, want 1", n)
		}
		if res.Stdout != "" {
			t.Errorf("stdout %q, want nothing", res.Stdout)
		}
	})
	t.Run("one image, by the engine's pull", func(t *testing.T) {
		before := p.Loads()
		name := "127.0.0.1:5999/pulled/app:1"
		res := x.MustRun("export", "--load", "--progress", "plain", "--name", name, e.ref("test/app:1"))
		if ids := d.ImageIDs(t); ids[name] != e.app.Config.Desc.Digest.String() {
			t.Errorf("image ID of %s = %q, want the config digest %s", name, ids[name], e.app.Config.Desc.Digest)
		}
		for _, step := range []string{"pulling " + e.ref("test/app@"+e.app.Manifest.Desc.Digest.String()) + " into the Docker engine", "naming to " + name} {
			if !strings.Contains(res.Stderr, step) {
				t.Errorf("no %q step in the progress:\n%s", step, res.Stderr)
			}
		}
		if n := p.Loads() - before; n != 0 {
			t.Errorf("%d image-load requests, want none", n)
		}
	})
	t.Run("through the docker CLI", func(t *testing.T) {
		name := "127.0.0.1:5999/plugin/app:1"
		res := x.RunPlugin("export", "--load", "--load-via", "stream", "--progress", "plain", "--name", name, e.ref("test/app:1"))
		if res.ExitCode != 0 {
			t.Fatalf("docker imgx export --load: exit %d\n%s", res.ExitCode, res.Stderr)
		}
		loaded(t, res, map[string]fixture.Blob{name: e.app.Config})
	})
	t.Run("several images, renamed", func(t *testing.T) {
		res := load(t, "--name", "app:several", "--name", "127.0.0.1:5999/other/app:2", e.ref("test/app:1"), e.ref("test/app:2"))
		loaded(t, res, map[string]fixture.Blob{"app:several": e.app.Config, "127.0.0.1:5999/other/app:2": e.app2.Config})
	})
	for _, plat := range []string{"", "linux/amd64"} {
		t.Run("index platform "+plat, func(t *testing.T) {
			tag := strings.ReplaceAll(plat, "/", "-")
			if tag == "" {
				tag = "default"
			}
			name := "127.0.0.1:5999/multi:" + tag
			args := []string{"--name", name}
			if plat != "" {
				args = append(args, "--platform", plat)
			}
			res := load(t, append(args, e.ref("test/multi:v1"))...)
			loaded(t, res, map[string]fixture.Blob{name: e.multi.Images[0].Config})
		})
	}
	t.Run("another architecture, under emulation", func(t *testing.T) {
		name := "127.0.0.1:5999/multi:arm64"
		res := load(t, "--platform", "linux/arm64", "--name", name, e.ref("test/multi:v1"))
		loaded(t, res, map[string]fixture.Blob{name: e.multi.Images[1].Config})
		if !strings.Contains(res.Stderr, "linux/arm64 images run on this linux/amd64 engine only under emulation") {
			t.Errorf("no emulation warning:\n%s", res.Stderr)
		}
	})
	// What the classic store cannot hold is refused before the engine gets
	// a byte: another OS, or more than one platform of an image.
	for _, tc := range []struct {
		name, platform string
		wants          []string
	}{
		{"another OS", "windows/amd64", []string{"load windows/amd64: the engine runs linux/amd64 and holds linux images only", "platform not supported by the Docker engine"}},
		{"several platforms", "linux/amd64,linux/arm64", []string{"load 2 platforms: the engine's classic image store keeps one platform per image", "give one --platform"}},
		{"all platforms", "all", []string{"load all platforms: the engine's classic image store keeps one platform per image"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := p.Loads()
			name := "127.0.0.1:5999/never:" + strings.ReplaceAll(tc.name, " ", "-")
			t.Log(x.MustFail(tc.wants, "export", "--load", "--platform", tc.platform, "--name", name, e.ref("test/multi:v1")))
			if n := p.Loads() - before; n != 0 {
				t.Errorf("%d image-load requests, want none", n)
			}
			if _, ok := d.ImageIDs(t)[name]; ok {
				t.Errorf("the image was loaded")
			}
		})
	}
	t.Run("name not reported", func(t *testing.T) {
		name := "127.0.0.1:5999/unreported:1"
		p.Drop("Loaded image: " + name)
		defer p.Drop("")
		t.Log(x.MustFail([]string{"load " + name + ": not reported loaded by the Docker engine"},
			"export", "--load", "--load-via", "stream", "--name", name, e.ref("test/app:1")))
	})
	t.Run("engine error", func(t *testing.T) {
		// Docker 20.10 cannot load zstd layers; its message is shown as is.
		ver, _ := d.Run(t, "version", "--format", "{{.Server.Version}}")
		if !strings.HasPrefix(strings.TrimSpace(ver), "20.") {
			t.Skipf("docker %s loads zstd layers", ver)
		}
		x.MustFail([]string{"load into the Docker engine: ", "archive/tar: invalid tar header"}, "export", "--load", e.ref("test/zstd:1"))
	})
	t.Run("usage errors", func(t *testing.T) {
		x.MustFail([]string{"--load and --output are exclusive"}, "export", "--load", "-o", filepath.Join(t.TempDir(), "x.tar"), e.ref("test/app:1"))
		x.MustFail([]string{"--load with --format oci"}, "export", "--load", "--format", "oci", e.ref("test/app:1"))
	})
}

// brokenConfigImage returns a one-layer image whose config lists two
// diff_ids: docker load, podman and buildah refuse it.
func brokenConfigImage(t *testing.T) fixture.Image {
	t.Helper()
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 41})
	var cfg ocispec.Image
	if err := json.Unmarshal(img.Config.Data, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromString("no such layer"))
	cfg.History = nil
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	img.Config = fixture.NewBlob(img.Config.Desc.MediaType, data)
	var m ocispec.Manifest
	if err := json.Unmarshal(img.Manifest.Data, &m); err != nil {
		t.Fatal(err)
	}
	m.Config = img.Config.Desc
	if data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	img.Manifest = fixture.NewBlob(img.Manifest.Desc.MediaType, data)
	return img
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	img := brokenConfigImage(t)
	pushImage(t, reg, "test/broken", "1", img)
	ref := reg.Host + "/test/broken:1"
	x := newImgx(t)

	dir := t.TempDir()
	t.Log(x.MustFail([]string{ref, img.Config.Desc.Digest.String(), "config lists 2 diff_ids for 1 layers"},
		"export", "-o", filepath.Join(dir, "out.tar"), ref))
	noFilesLeft(t, dir)

	res := x.MustRun("inspect", ref)
	want := "WARNING: image " + img.Manifest.Desc.Digest.String() + ": config lists 2 diff_ids for 1 layers: docker load, podman and buildah will refuse it"
	if !strings.Contains(res.Stderr, want) {
		t.Errorf("inspect stderr %q does not contain %q", res.Stderr, want)
	}
	if !strings.Contains(res.Stdout, img.Manifest.Desc.Digest.String()) {
		t.Errorf("inspect stdout does not show the manifest digest:\n%s", res.Stdout)
	}
}
