package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// machine describes where the figures were taken.
type machine struct {
	CPUs      int
	CPUModel  string
	GoVersion string
	Platform  string
	Binary    string
	Date      string
}

// report is everything RESULTS.md and the chart show.
type report struct {
	Machine     machine
	Runs        int
	ExportSize  int64
	SHA256MiBps float64
	Rows        []row
	Peers       []peerInfo
	Startup     []startupRow
	StartupRuns int
	Binary      binarySize
	// Quick is set for a -quick run: a check that the suite runs.
	Quick bool
}

func describeMachine(ctx context.Context, binary string) machine {
	m := machine{
		CPUs:      runtime.NumCPU(),
		CPUModel:  cpuModel(),
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		Binary:    "unknown",
		Date:      time.Now().UTC().Format(time.DateOnly),
	}
	if out, err := exec.CommandContext(ctx, binary, "version").Output(); err == nil {
		m.Binary = firstLine(string(out))
	}
	return m
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// write prints the table to stdout and, when out is set, writes
// out/RESULTS.md and out/chart.svg.
func (r report) write(stdout io.Writer, out string) error {
	table := r.table()
	if _, err := io.WriteString(stdout, table); err != nil {
		return err
	}
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := writeFile(filepath.Join(out, "RESULTS.md"), []byte(r.markdown(table))); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := writeFile(filepath.Join(out, resultsJSON), append(data, '\n')); err != nil {
		return err
	}
	return writeFile(filepath.Join(out, "chart.svg"), r.chart())
}

// resultsJSON is the file, beside RESULTS.md, holding every figure of the
// run: -render writes RESULTS.md and the chart again from it, without
// measuring, when only how they are written changed.
const resultsJSON = "results.json"

// readReport reads a results.json.
func readReport(path string) (report, error) {
	var r report
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// writeFile writes through a temp file beside path, renamed on success.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (r report) markdown(table string) string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# docker-imgx benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (`go run ./tests/bench`); do not edit by hand.\n\n")
	if r.Quick {
		b.WriteString("**Draft**: a -quick run (small images, one run per case), made to check that the suite runs; its\n")
		b.WriteString("figures are not the ones to quote. A full `make bench` on a quiet machine replaces this file.\n\n")
	}
	fmt.Fprintf(&b, "- Machine: %d CPUs, %s, %s\n", m.CPUs, m.CPUModel, m.Platform)
	fmt.Fprintf(&b, "- Go: %s; binary: %s\n", m.GoVersion, m.Binary)
	fmt.Fprintf(&b, "- Date: %s; %d runs per case (median)\n", m.Date, r.Runs)
	fmt.Fprintf(&b, "- sha256 on one core: %.0f MiB/s\n", r.SHA256MiBps)
	fmt.Fprintf(&b, "- Peak RSS floor (the launcher's own peak, see below): %s\n", formatSize(r.floorKiB()<<10))
	fmt.Fprintf(&b, "- %s\n\n", r.peerLine())
	b.WriteString("## In short\n\n")
	b.WriteString(r.summary())
	b.WriteString("\n![Throughput of docker-imgx, its peers and the baseline](chart.svg)\n\n")
	if pt := r.peerTable(); pt != "" {
		b.WriteString("## Beside the tools users know\n\n")
		b.WriteString("Median wall time · registry requests · peak RSS of each tool doing the same job on the same\n")
		b.WriteString("registries and link; the last column is docker-imgx's time over the fastest peer's (below 1: faster).\n\n")
		b.WriteString(pt)
		b.WriteString("\nThe commands each row ran (A: the source registry, B: the second one, both plain HTTP on\n")
		b.WriteString("127.0.0.1 behind the latency proxy; OUT: the output path; TOKEN: a name new for each run):\n\n")
		b.WriteString(r.commandList())
	}
	if st := r.scaleTable(); st != "" {
		b.WriteString("\n## Scale\n\n")
		b.WriteString("Each at a fifth of its count and at its count: the time per image or child shows how it grows.\n\n")
		b.WriteString(st)
	}
	if mn := r.memoryNote(); mn != "" {
		b.WriteString("\n" + mn)
	}
	if st := r.startupTable(); st != "" {
		b.WriteString("\n## Start-up\n\n")
		b.WriteString(st)
	}
	if r.Binary.Bytes > 0 || r.Binary.Status != "" {
		b.WriteString("\n## Binary size\n\n")
		b.WriteString(r.binaryTable())
	}
	b.WriteString("\n## Each case beside its baselines\n\n")
	b.WriteString(table)
	if rt := r.roundTripTable(); rt != "" {
		b.WriteString("\nRound trips, where the proxy adds latency:\n\n")
		b.WriteString(rt)
	}
	b.WriteString(`
How to read it:

- Two in-process registries (distribution v3) on 127.0.0.1, each behind a proxy that adds
  the given latency before it forwards a request and counts body bytes. Images are random
  bytes, stored uncompressed; create sources are 8 MiB each (4 layers), the shared-layer
  images 32 and 48 MiB (8 MiB layers, the first four the same blobs).
- Content: the blobs and manifests the case reads. Throughput: content over wall time (for a
  create within one registry nothing is copied, so it is how fast the index is made, not a link speed).
- Baseline: downloading the same blobs over the same proxy, as many at once as the
  command's default concurrency (for exports, blobs up to 4 MiB 16 at once beside, as
  export fetches them into a file), hashing each with sha256: the most any client could do.
- Latency "20 ms, 1 Gbit/s" (make bench's -rate): the large export and the 8-image copy
  also run over proxies that pass at most that many bytes per second each way, shared by
  all connections, as a link to a remote registry would: there the link, not the
  machine's cores, is the limit, for the command and its baselines alike.
- Output baseline, what the baseline leaves out and the command must also do:
  - copy (cases that copy to the second registry): the same blobs copied with raw
    requests, as many at once: per blob an upload POST to the target and a GET from the
    source at once, then the body streamed into one PUT and hashed on the way; then the
    manifests. It pays the target registry's own cost (in the same process, on the same
    cores), which the download baseline does not.
  - write (exports): the download baseline also writing each blob at its own offset of
    one file in the folder the export writes to, synced at the end, as the export does
    before it renames its file into place. On a machine with few cores the write competes
    with hashing and with the registry for the same CPUs.
- Round trips: the longest chain of requests in the registries' logs where each reached
  the registry at least the latency after the one before it was answered, which is what
  a request waiting on an answer does (median of the runs; requests that merely happen
  to follow that far apart can lengthen it, so it is an upper bound;
  "go run ./tests/bench -chains" prints each chain). Floor: the fewest
  sequential round trips the registry protocol allows for the case with unbounded
  concurrency (derived in tests/bench/cases.go). Added by latency: wall time at this
  latency less wall time without; beside it, round trips times the latency, the part
  of it the chain explains. Round trips paid: the time added over the latency, the
  round trips a user actually waits for. Where a case is bound by what the machine
  moves (many blobs through a bounded number of slots), a blob's request waits for a
  slot that a transfer frees, which the chain counts like a wait for an answer: the
  chain then exceeds the round trips paid, and more concurrency shortens the chain
  without shortening the wall time.
- Peers: built by make bench-peers at the versions pinned in the Makefile (BENCH_PEERS); skopeo
  is Debian's package. Each runs the job it is made for with its natural flags, plus its own way to
  reach a plain-HTTP registry: crane --insecure, regctl --host reg=HOST,tls=disabled, skopeo
  --src-tls-verify=false / --dest-tls-verify=false, oras --from-plain-http / --to-plain-http;
  buildx has no such flag and gets none (the containerd resolver it uses takes loopback hosts for
  plain HTTP; where it cannot reach them, its cells say so). crane writes an index only into an OCI layout
  folder (pull --format oci); skopeo and regctl export one image per command, so the case of two
  images and the bundle run crane alone. Every copy is checked to leave the source index's digest
  at the target, every create an index of as many children as sources, every export at least the
  bytes of the blobs. Their requests are counted in the same registry logs and their peak RSS by
  the same launcher as docker-imgx's. skopeo remembers in a blob-info cache where it put each blob
  and mounts it from there on its next copy to that registry; each run starts with an empty cache
  (as root, in a mount namespace of its own), as a first copy would, so that every run copies.
  docker-imgx flushes the tar it writes to the disk before it renames it into place, so that
  a finished export survives a crash, and that is in its wall time; the peers leave their
  output in the page cache. For the export cases, "+N flush" in a peer's cell is how long
  flushing what it wrote took right after it exited (the disk is flushed before every run),
  the wait a user who needs the file on disk has on top of its wall time. The ratio in the
  last column and the summary compare wall times alone.
- Requests: as logged by the registries. Moved: request plus response body bytes through
  the proxies. Peak RSS: the largest maximum resident set size of the process over the runs,
  taken by a small launcher program: Linux carries the peak of the address space a process
  leaves at exec into the new program's figure, so the benchmark (which holds the images)
  does not start the binary itself.
`)
	return b.String()
}

// floorKiB is the largest launcher peak of the rows.
func (r report) floorKiB() int64 {
	var n int64
	for _, x := range r.Rows {
		n = max(n, x.FloorKiB)
	}
	return n
}

// table renders the rows as a markdown table.
func (r report) table() string {
	var b strings.Builder
	b.WriteString("| Case | Latency | Content | Wall time | Baseline | Throughput | Baseline throughput | Output baseline | Requests | Moved | Peak RSS |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range r.Rows {
		cells := []string{x.Case, x.link(), formatSize(x.Content), x.Status,
			formatDuration(x.Baseline), "–", formatRate(x.Content, x.Baseline), "–", "–", "–", "–"}
		switch {
		case x.CopyBaseline > 0:
			cells[7] = "copy " + formatDuration(x.CopyBaseline) + ", " + formatRate(x.Content, x.CopyBaseline)
		case x.WriteBaseline > 0:
			cells[7] = "write " + formatDuration(x.WriteBaseline) + ", " + formatRate(x.Content, x.WriteBaseline)
		}
		if x.Status == "" {
			cells[3], cells[5] = formatDuration(x.Wall), formatRate(x.Content, x.Wall)
			cells[8], cells[9], cells[10] = fmt.Sprint(x.Requests), formatSize(x.Bytes), formatSize(x.RSSKiB<<10)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}

// link describes the row's link: its latency, and its rate when limited.
func (x row) link() string {
	if x.Rate > 0 {
		return formatDuration(x.Latency) + ", " + formatRate8(x.Rate)
	}
	return formatDuration(x.Latency)
}

// roundTripTable renders, for every row measured with latency, the
// sequential round trips beside the floor and the time latency added.
func (r report) roundTripTable() string {
	wall0 := map[string]time.Duration{}
	for _, x := range r.Rows {
		if x.Latency == 0 && x.Status == "" {
			wall0[x.Case] = x.Wall
		}
	}
	var b strings.Builder
	for _, x := range r.Rows {
		if x.Latency == 0 || x.Rate > 0 || x.Status != "" {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| Case | Latency | Requests | Round trips | Floor | Wall time | Added by latency | Round trips × latency | Round trips paid |\n")
			b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		}
		added, paid := "–", "–"
		if w, ok := wall0[x.Case]; ok {
			added = formatDuration(x.Wall - w)
			paid = fmt.Sprintf("%.1f", max(0, float64(x.Wall-w)/float64(x.Latency)))
		}
		floor := "–"
		if x.FloorRoundTrips > 0 {
			floor = fmt.Sprint(x.FloorRoundTrips)
		}
		cells := []string{x.Case, formatDuration(x.Latency), fmt.Sprint(x.Requests), fmt.Sprint(x.RoundTrips), floor,
			formatDuration(x.Wall), added, formatDuration(time.Duration(x.RoundTrips) * x.Latency), paid}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}

func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0 ms"
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
}

// rate is MiB per second; 0 when d is 0.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / (1 << 20) / d.Seconds()
}

func formatRate(n int64, d time.Duration) string {
	return formatMiBps(rate(n, d))
}
