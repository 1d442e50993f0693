package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// runTimeout bounds one run of the binary.
const runTimeout = 10 * time.Minute

// row is the result of one case at one latency.
type row struct {
	Case    string
	Command string
	// CommandLine is the binary's command line, hosts written A and B.
	CommandLine string
	Latency     time.Duration
	// Rate is the link's capacity in bytes per second; 0 is unlimited.
	Rate int64
	// Status is "" when every run succeeded, else why there are no figures.
	Status string
	// Content is the size of the blobs the case reads.
	Content int64
	// Wall, Requests and Bytes are medians over the runs; RSSKiB is the
	// largest peak resident set size of the process.
	Wall     time.Duration
	Requests int
	Bytes    int64
	RSSKiB   int64
	// FloorKiB is the launcher's peak RSS, below which RSSKiB cannot go.
	FloorKiB int64
	// RoundTrips is the median of the longest chains of requests each made
	// after the one before it was answered (0 without latency, where a chain
	// cannot be told from requests that merely follow each other);
	// FloorRoundTrips is the case's protocol floor.
	RoundTrips      int
	FloorRoundTrips int
	// Baseline is the median time to download and hash the case's blobs.
	Baseline time.Duration
	// CopyBaseline, for a case that copies to registry B, is the median time
	// to copy the same blobs and manifests from A to B with raw requests:
	// per blob an upload POST and a source GET at once, then one streamed
	// PUT (hashed on the way); then the manifests. 0 for other cases.
	CopyBaseline time.Duration
	// WriteBaseline, for a case that writes a file, is the median time to
	// download and hash the blobs as Baseline does while writing each at
	// its own offset of one file in the same folder, synced at the end.
	WriteBaseline time.Duration
	// Peers are the other tools' figures for the same job, in the order of
	// the case's peer commands.
	Peers []peerResult
	// Units and Unit are the case's count of images or children (scale cases).
	Units int
	Unit  string
}

// sample is one run of the binary.
type sample struct {
	chain    int
	wall     time.Duration
	requests int
	bytes    int64
	rssKiB   int64
	floorKiB int64
	// flush is how long flushing a peer's output took after it exited.
	flush time.Duration
}

// measure runs c cfg.runs times at latency lat, then its baseline.
func (l *lab) measure(ctx context.Context, c benchCase, lat time.Duration) (row, error) {
	return l.measureOn(ctx, c, l.links[lat], lat, 0)
}

// measureOn measures c over the link ln, of latency lat and rate bytes per
// second (0: unlimited).
func (l *lab) measureOn(ctx context.Context, c benchCase, ln link, lat time.Duration, rate int64) (row, error) {
	r := row{Case: c.name, Command: c.command, Latency: lat, Rate: rate, Content: totalSize(c.blobs), FloorRoundTrips: c.floor,
		Units: c.units, Unit: c.unit,
		CommandLine: l.displayCommand("docker-imgx", c.args(ln, "OUT", "TOKEN"), ln)}
	var baselines []time.Duration
	for range l.cfg.runs {
		d, err := download(ctx, ln.a.Host(), c.blobs, c.concurrency, c.smallConcurrency)
		if err != nil {
			return r, fmt.Errorf("baseline of %s: %w", c.name, err)
		}
		baselines = append(baselines, d)
	}
	r.Baseline = median(baselines)
	if c.copies {
		var copies []time.Duration
		for i := range l.cfg.runs {
			repo := fmt.Sprintf("baseline/l%d-b%d-r%d-%d", lat.Milliseconds(), rate, i, len(c.blobs))
			d, err := copyBlobs(ctx, ln.a.Host(), ln.b.Host(), repo, c.blobs, c.concurrency)
			if err != nil {
				return r, fmt.Errorf("copy baseline of %s: %w", c.name, err)
			}
			copies = append(copies, d)
		}
		r.CopyBaseline = median(copies)
	}
	if c.writes {
		var writes []time.Duration
		for range l.cfg.runs {
			settle()
			d, err := downloadTo(ctx, ln.a.Host(), c.blobs, c.concurrency, c.smallConcurrency, filepath.Join(l.tmp, "baseline.out"))
			if err != nil {
				return r, fmt.Errorf("write baseline of %s: %w", c.name, err)
			}
			writes = append(writes, d)
		}
		r.WriteBaseline = median(writes)
	}
	if !l.commands[c.command] {
		r.Status = "n/a (command missing)"
	} else if err := l.measureBinary(ctx, c, ln, lat, rate, &r); err != nil {
		return r, err
	}
	peers, err := l.measurePeers(ctx, c, ln, lat, rate)
	r.Peers = peers
	return r, err
}

// measureBinary runs the binary cfg.runs times and sets r's figures, or its
// Status when a run failed; the error is the context's.
func (l *lab) measureBinary(ctx context.Context, c benchCase, ln link, lat time.Duration, rate int64, r *row) error {
	var samples []sample
	for i := range l.cfg.runs {
		s, err := l.runOnce(ctx, c, ln, lat, fmt.Sprintf("l%d-b%d-r%d", lat.Milliseconds(), rate, i))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.Status = "error: " + err.Error()
			return nil
		}
		samples = append(samples, s)
	}
	r.Wall = median(mapSlice(samples, func(s sample) time.Duration { return s.wall }))
	r.Requests = median(mapSlice(samples, func(s sample) int { return s.requests }))
	r.Bytes = median(mapSlice(samples, func(s sample) int64 { return s.bytes }))
	r.RSSKiB = slices.Max(mapSlice(samples, func(s sample) int64 { return s.rssKiB }))
	r.FloorKiB = slices.Max(mapSlice(samples, func(s sample) int64 { return s.floorKiB }))
	r.RoundTrips = median(mapSlice(samples, func(s sample) int { return s.chain }))
	return nil
}

// runOnce runs the binary once with fresh request logs and byte counters.
func (l *lab) runOnce(ctx context.Context, c benchCase, ln link, lat time.Duration, token string) (sample, error) {
	outFile := filepath.Join(l.tmp, "out-"+token+".tar")
	defer os.RemoveAll(outFile)
	bin, args := l.cfg.binary, c.args(ln, outFile, token)
	if c.shell {
		bin, args = "env", append([]string{args[0], args[1], "sh", "-c", args[2], bin}, args[3:]...)
	}
	s, stdout, err := l.runTool(ctx, c.name, "docker-imgx", bin, l.env, args, ln, lat, token)
	if err != nil {
		return sample{}, err
	}
	return s, c.check(stdout, outFile)
}

// runTool runs bin (the tool named tool: docker-imgx or a peer) with args
// through the launcher once, with fresh request logs and byte counters, and
// returns what it measured and its stdout.
func (l *lab) runTool(ctx context.Context, name, tool, bin string, env, args []string, ln link, lat time.Duration, token string) (sample, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	settle()
	l.a.ResetRequests()
	l.b.ResetRequests()
	ln.a.Reset()
	ln.b.Reset()
	res, stdout, err := l.launch(ctx, token, bin, env, args)
	if err != nil {
		return sample{}, nil, err
	}
	reqs := append(l.a.Requests(), l.b.Requests()...)
	chain := longestChain(reqs, lat)
	if l.cfg.requests && len(reqs) > 0 {
		all := slices.Clone(reqs)
		slices.SortFunc(all, func(a, b registrytest.Request) int { return a.Start.Compare(b.Start) })
		fmt.Fprintf(os.Stderr, "%s (%s) at %s: %d requests\n%s", name, tool, formatDuration(lat), len(all), formatChain(all))
	}
	if l.cfg.chains && len(chain) > 0 {
		fmt.Fprintf(os.Stderr, "%s (%s) at %s: %d sequential round trips\n%s", name, tool, formatDuration(lat), len(chain), formatChain(chain))
	}
	return sample{
		chain:    len(chain),
		wall:     time.Duration(res.WallNanos),
		requests: len(reqs),
		bytes:    ln.a.Stats().Bytes() + ln.b.Stats().Bytes(),
		rssKiB:   res.MaxRSSKiB,
		floorKiB: res.FloorKiB,
	}, stdout, nil
}

// settle writes back what earlier runs left dirty in the page cache (a tool
// that does not flush its output leaves that to the kernel), so that no run
// pays for the one before it: each starts with nothing waiting for the disk.
func settle() { syscall.Sync() }

// longestChain returns the longest chain of requests where each reached the
// registry at least gap after the one before it was answered. A client
// sends a request that waits on an answer once it has that answer, and the
// proxy holds every request for the latency before the registry sees it, so
// with gap the latency every such pair is in the log that way; requests sent
// at once overlap or follow closer. Its length is the number of sequential
// round trips the command made, give or take requests that merely happened
// to follow that far apart. Empty when gap is 0.
func longestChain(reqs []registrytest.Request, gap time.Duration) []registrytest.Request {
	if gap <= 0 {
		return nil
	}
	reqs = slices.Clone(reqs)
	slices.SortFunc(reqs, func(a, b registrytest.Request) int { return a.Start.Compare(b.Start) })
	depth := make([]int, len(reqs))
	prev := make([]int, len(reqs))
	last := -1
	for i, r := range reqs {
		depth[i], prev[i] = 1, -1
		for j := range i {
			if !reqs[j].End.Add(gap).After(r.Start) && depth[j]+1 > depth[i] {
				depth[i], prev[i] = depth[j]+1, j
			}
		}
		if last < 0 || depth[i] > depth[last] {
			last = i
		}
	}
	var chain []registrytest.Request
	for i := last; i >= 0; i = prev[i] {
		chain = append(chain, reqs[i])
	}
	slices.Reverse(chain)
	return chain
}

// formatChain lists a chain's requests, one a line, with their times from
// the first one's start.
func formatChain(chain []registrytest.Request) string {
	var b strings.Builder
	for _, r := range chain {
		fmt.Fprintf(&b, "  %6.1f–%6.1f ms  %s %s -> %d\n", msSince(chain[0].Start, r.Start), msSince(chain[0].Start, r.End), r.Method, r.Path, r.Status)
	}
	return b.String()
}

func msSince(t0, t time.Time) float64 { return float64(t.Sub(t0)) / float64(time.Millisecond) }

// launchResult is what the launcher program reports about one command.
type launchResult struct {
	WallNanos int64 `json:"wallNanos"`
	ExitCode  int   `json:"exitCode"`
	MaxRSSKiB int64 `json:"maxRSSKiB"`
	FloorKiB  int64 `json:"floorKiB"`
}

// launch runs bin with args and env through the launcher and returns its
// report and stdout; a non-zero exit is an error carrying stderr's first line.
func (l *lab) launch(ctx context.Context, token, bin string, env, args []string) (launchResult, []byte, error) {
	resultFile := filepath.Join(l.tmp, "result-"+token+".json")
	defer os.Remove(resultFile)
	cmd := exec.CommandContext(ctx, l.launcher, append([]string{resultFile, bin}, args...)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return launchResult{}, nil, fmt.Errorf("launch %s: %w: %s", args[0], err, lastLine(stderr.String()))
	}
	data, err := os.ReadFile(resultFile)
	if err != nil {
		return launchResult{}, nil, fmt.Errorf("launch %s: %w", args[0], err)
	}
	var res launchResult
	if err := json.Unmarshal(data, &res); err != nil {
		return launchResult{}, nil, fmt.Errorf("launch %s: result %q: %w", args[0], data, err)
	}
	if res.ExitCode != 0 {
		return res, nil, fmt.Errorf("%s: exit %d: %s", args[0], res.ExitCode, lastLine(stderr.String()))
	}
	return res, stdout.Bytes(), nil
}

// buildLauncher builds the launcher program into dir.
func buildLauncher(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "launcher")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./tests/bench/launcher")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the launcher: %w", err)
	}
	return bin, nil
}

// download fetches blobs from a plain-HTTP registry host, concurrency at a
// time (and, with small, blobs up to smallBlob that many at once beside),
// hashing each with sha256 and checking its digest: the most any client can
// do over that link. It returns the wall time.
func download(ctx context.Context, host string, blobs []blobRef, concurrency, small int) (time.Duration, error) {
	return downloadTo(ctx, host, blobs, concurrency, small, "")
}

// smallBlob is the largest blob export fetches as a small request to a
// file (imagetools' exportSmallBlob).
const smallBlob = 4 << 20

// downloadTo is download that, with a path, also writes every blob at its
// own offset of one file there (each blob where it would lie in a tar,
// headers aside) and syncs it: the most an export to a file can do on this
// link and disk. The file is removed.
func downloadTo(ctx context.Context, host string, blobs []blobRef, concurrency, small int, path string) (time.Duration, error) {
	// A fresh transport per baseline: connections are set up as a new process would.
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: concurrency + small, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	start := time.Now()
	var f *os.File
	if path != "" {
		var err error
		if f, err = os.Create(path); err != nil {
			return 0, err
		}
		defer os.Remove(path)
		defer f.Close()
	}
	type job struct {
		b blobRef
		w io.Writer
	}
	var large, smalls []job
	var off int64
	for _, b := range blobs {
		j := job{b: b}
		if f != nil {
			j.w = io.NewOffsetWriter(f, off)
		}
		off += b.desc.Size
		if small > 0 && b.desc.Size <= smallBlob {
			smalls = append(smalls, j)
		} else {
			large = append(large, j)
		}
	}
	eg, ctx := errgroup.WithContext(ctx)
	launch := func(jobs []job, limit int) error {
		lg, lctx := errgroup.WithContext(ctx)
		lg.SetLimit(limit)
		for _, j := range jobs {
			lg.Go(func() error { return fetchAndHash(lctx, client, host, j.b, j.w) })
		}
		return lg.Wait()
	}
	eg.Go(func() error { return launch(large, concurrency) })
	eg.Go(func() error { return launch(smalls, max(small, 1)) })
	if err := eg.Wait(); err != nil {
		return 0, err
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// fetchAndHash downloads one blob, checks its digest and, when w is set,
// writes it there on the way.
func fetchAndHash(ctx context.Context, client *http.Client, host string, b blobRef, w io.Writer) error {
	kind := "blobs"
	if fixture.IsManifest(b.desc.MediaType) {
		kind = "manifests"
	}
	url := fmt.Sprintf("http://%s/v2/%s/%s/%s", host, b.repo, kind, b.desc.Digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", b.desc.MediaType)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", b.desc.Digest, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s from %s: status %d", b.desc.Digest, b.repo, resp.StatusCode)
	}
	h := sha256.New()
	dst := io.Writer(h)
	if w != nil {
		dst = io.MultiWriter(h, w)
	}
	// The export's own chunk size, so the write baseline writes as it does.
	if _, err := io.CopyBuffer(dst, struct{ io.Reader }{resp.Body}, make([]byte, 512<<10)); err != nil {
		return fmt.Errorf("fetch %s: %w", b.desc.Digest, err)
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != b.desc.Digest {
		return errors.New("fetch " + b.desc.Digest.String() + ": got content with digest " + got.String())
	}
	return nil
}

// copyBlobs copies blobs from registry host from to repo on registry host
// to, concurrency at a time, with the fewest requests the distribution
// protocol allows a client that does not check what the target holds: per
// blob an upload POST to the target and a GET from the source at once, then
// the source body streamed into one PUT, hashed on the way and checked;
// then every manifest, by digest, at once. It returns the wall time.
func copyBlobs(ctx context.Context, from, to, repo string, blobs []blobRef, concurrency int) (time.Duration, error) {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2 * concurrency, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	start := time.Now()
	var manifests []blobRef
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(concurrency)
	for _, b := range blobs {
		if fixture.IsManifest(b.desc.MediaType) {
			manifests = append(manifests, b)
			continue
		}
		eg.Go(func() error { return copyBlob(ectx, client, from, to, repo, b) })
	}
	if err := eg.Wait(); err != nil {
		return 0, err
	}
	// Image manifests, then the indexes that list them: a registry refuses
	// an index whose children it does not hold.
	isIndex := func(m blobRef) bool {
		return m.desc.MediaType == ocispec.MediaTypeImageIndex || m.desc.MediaType == fixture.MediaTypeDockerManifestList
	}
	for _, idx := range []bool{false, true} {
		eg, ectx = errgroup.WithContext(ctx)
		eg.SetLimit(concurrency)
		for _, m := range manifests {
			if isIndex(m) == idx {
				eg.Go(func() error { return copyManifest(ectx, client, from, to, repo, m) })
			}
		}
		if err := eg.Wait(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func copyBlob(ctx context.Context, client *http.Client, from, to, repo string, b blobRef) error {
	var session string
	var body io.ReadCloser
	var eg errgroup.Group
	eg.Go(func() error {
		resp, err := send(ctx, client, http.MethodPost, fmt.Sprintf("http://%s/v2/%s/blobs/uploads/", to, repo), nil, -1, http.StatusAccepted)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			return fmt.Errorf("upload %s: %w", b.desc.Digest, err)
		}
		q := loc.Query()
		q.Set("digest", b.desc.Digest.String())
		loc.RawQuery = q.Encode()
		session = loc.String()
		return nil
	})
	eg.Go(func() error {
		resp, err := send(ctx, client, http.MethodGet, fmt.Sprintf("http://%s/v2/%s/blobs/%s", from, b.repo, b.desc.Digest), nil, -1, http.StatusOK)
		if err == nil {
			body = resp.Body
		}
		return err
	})
	err := eg.Wait()
	if body != nil {
		defer body.Close()
	}
	if err != nil {
		return err
	}
	h := sha256.New()
	resp, err := send(ctx, client, http.MethodPut, session, io.TeeReader(body, h), b.desc.Size, http.StatusCreated)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != b.desc.Digest {
		return fmt.Errorf("copy %s: got content with digest %s", b.desc.Digest, got)
	}
	return nil
}

func copyManifest(ctx context.Context, client *http.Client, from, to, repo string, m blobRef) error {
	resp, err := send(ctx, client, http.MethodGet, fmt.Sprintf("http://%s/v2/%s/manifests/%s", from, m.repo, m.desc.Digest), nil, -1,
		http.StatusOK, "Accept", m.desc.MediaType)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("fetch %s: %w", m.desc.Digest, err)
	}
	resp, err = send(ctx, client, http.MethodPut, fmt.Sprintf("http://%s/v2/%s/manifests/%s", to, repo, m.desc.Digest),
		bytes.NewReader(data), int64(len(data)), http.StatusCreated, "Content-Type", m.desc.MediaType)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// send makes one request with a body of size bytes (-1: none) and header
// pairs, and fails unless the answer has status want.
func send(ctx context.Context, client *http.Client, method, url string, body io.Reader, size int64, want int, header ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode != want {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: status %d, want %d", method, url, resp.StatusCode, want)
	}
	return resp, nil
}

// sha256Throughput hashes mib MiB in memory on one goroutine and returns MiB/s.
func sha256Throughput(mib int) float64 {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	h := sha256.New()
	start := time.Now()
	for range mib {
		h.Write(buf)
	}
	h.Sum(nil)
	return float64(mib) / time.Since(start).Seconds()
}

// median returns the middle value, the lower one of the two middles for an
// even count.
func median[T cmp.Ordered](vs []T) T {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
