// Command bench measures the docker-imgx binary against local registries: wall
// time, registry requests, bytes moved and peak memory of create, export and
// inspect, each beside what the machine and the link allow (a parallel
// download with sha256 of the same blobs, and sha256 on one core). It prints a
// markdown table and writes RESULTS.md and chart.svg.
//
//	go run ./tests/bench -binary bin/docker-imgx [-runs 3] [-size 256MiB] [-latency 0,20ms]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// config is what the flags choose.
type config struct {
	binary    string
	runs      int
	size      int64
	latencies []time.Duration
	out       string
	hashMiB   int
	only      string
	chains    bool
	// requests prints every request of each run.
	requests bool
	// render is a results.json to write the report from instead of measuring.
	render string
	// serve keeps the lab up for commands run by hand instead of measuring.
	serve bool
	// tools is the folder holding the peers make bench installs.
	tools string
	// quick shrinks the suite to check that it runs: smaller images and
	// scale counts, one run per case, no rate-limited link.
	quick bool
	// startupRuns is how many times each start-up command runs.
	startupRuns int
	// rate, in bytes per second, is the capacity of the link the
	// link-bound cases also run over, at the largest latency; 0: not run.
	rate int64
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.render != "" {
		r, err := readReport(cfg.render)
		if err != nil {
			return err
		}
		return r.write(stdout, cfg.out)
	}
	tmp, err := os.MkdirTemp("", "imgx-bench-")
	if err != nil {
		return fmt.Errorf("create work folder: %w", err)
	}
	defer os.RemoveAll(tmp)
	if cfg.binary == "" {
		if cfg.binary, err = buildBinary(ctx, tmp); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "bench: setting up registries and images (export image %s)\n", formatSize(cfg.size))
	l, err := newLab(ctx, cfg, tmp)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil {
			fmt.Fprintln(stderr, "bench:", cerr)
		}
	}()
	if cfg.serve {
		return l.serve(ctx, stderr)
	}
	rep := report{Machine: describeMachine(ctx, cfg.binary), Runs: cfg.runs, ExportSize: cfg.size, Peers: peerInfos(l.peers), Quick: cfg.quick}
	rep.SHA256MiBps = sha256Throughput(cfg.hashMiB)
	for _, c := range slices.Concat(l.cases(), l.releaseCases(), []benchCase{l.roundTripCase()}, l.scaleCases()) {
		if cfg.only != "" && !strings.Contains(c.name, cfg.only) {
			continue
		}
		lats := cfg.latencies
		if c.units > 0 {
			lats = []time.Duration{slices.Min(cfg.latencies)}
		}
		for _, lat := range lats {
			fmt.Fprintf(stderr, "bench: %s, latency %v\n", c.name, lat)
			row, err := l.measure(ctx, c, lat)
			if err != nil {
				return err
			}
			rep.Rows = append(rep.Rows, row)
		}
		if c.linkBound && cfg.rate > 0 {
			lat := slices.Max(cfg.latencies)
			fmt.Fprintf(stderr, "bench: %s, latency %v, %s\n", c.name, lat, formatRate8(cfg.rate))
			row, err := l.measureOn(ctx, c, l.rated, lat, cfg.rate)
			if err != nil {
				return err
			}
			rep.Rows = append(rep.Rows, row)
		}
	}
	if cfg.only != "" {
		// A chosen case is being looked at: start-up and size are not.
		return rep.write(stdout, cfg.out)
	}
	fmt.Fprintln(stderr, "bench: start-up")
	rep.StartupRuns = cfg.startupRuns
	if rep.Startup, err = l.measureStartup(ctx, cfg.startupRuns); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "bench: binary size")
	rep.Binary = measureBinarySize(ctx, cfg.binary, tmp)
	return rep.write(stdout, cfg.out)
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config{}
	size := fs.String("size", "256MiB", "size of the image exported whole (e.g. 1GiB)")
	latencies := fs.String("latency", "0,20ms", "comma-separated delays the proxy adds per request; each case runs at each")
	fs.StringVar(&cfg.binary, "binary", os.Getenv("IMGX_BINARY"), "docker-imgx binary (default $IMGX_BINARY, else built with go build)")
	fs.IntVar(&cfg.runs, "runs", 3, "runs per case; the median is reported")
	fs.StringVar(&cfg.out, "out", "docs/bench", "folder for RESULTS.md and chart.svg (\"\": stdout only)")
	fs.IntVar(&cfg.hashMiB, "hash", 256, "MiB hashed in memory for the one-core sha256 baseline")
	fs.StringVar(&cfg.only, "only", "", "run only the cases whose name contains this")
	fs.StringVar(&cfg.tools, "tools", "bin/tools", "folder of the peer tools (crane, regctl, oras, buildx); skopeo is looked up on PATH")
	fs.StringVar(&cfg.render, "render", "", "measure nothing: write RESULTS.md and chart.svg into -out again from this results.json of an earlier run")
	fs.BoolVar(&cfg.serve, "serve", false, "set up the registries, proxies and images, print their addresses and wait for Ctrl-C (to run or profile a command by hand)")
	fs.BoolVar(&cfg.requests, "requests", false, "print each run's registry requests, in the order they reached the registries, to stderr")
	fs.BoolVar(&cfg.chains, "chains", false, "print each run's longest chain of sequential requests to stderr")
	linkRate := fs.String("rate", "1Gbit", "capacity of the link (e.g. 1Gbit, 500Mbit; 0: none) the large export and copy also run over, at the largest latency")
	fs.IntVar(&cfg.startupRuns, "startup-runs", 21, "runs of each start-up command (version); the median is reported")
	fs.BoolVar(&cfg.quick, "quick", false, "check the suite runs: -size 32MiB -runs 1 -hash 32 -rate 0 -startup-runs 5 unless given, and scale cases of 10 images and 100 children")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if cfg.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{"size": "32MiB", "runs": "1", "hash": "32", "rate": "0", "startup-runs": "5"} {
			if !set[name] {
				if err := fs.Set(name, v); err != nil {
					return cfg, err
				}
			}
		}
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.size, err = parseSize(*size); err != nil {
		return cfg, fmt.Errorf("-size: %w", err)
	}
	if cfg.latencies, err = parseLatencies(*latencies); err != nil {
		return cfg, fmt.Errorf("-latency: %w", err)
	}
	if cfg.rate, err = parseRate(*linkRate); err != nil {
		return cfg, fmt.Errorf("-rate: %w", err)
	}
	if cfg.runs < 1 || cfg.hashMiB < 1 || cfg.startupRuns < 1 {
		return cfg, errors.New("-runs, -hash and -startup-runs must be at least 1")
	}
	return cfg, nil
}

// parseRate reads "1Gbit", "500Mbit" or "0" (no limit) as bytes per second.
func parseRate(s string) (int64, error) {
	if s == "0" || s == "" {
		return 0, nil
	}
	for _, u := range []struct {
		suffix string
		bits   int64
	}{{"Gbit", 1e9}, {"Mbit", 1e6}} {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			var n int64
			if _, err := fmt.Sscanf(num, "%d", &n); err == nil && fmt.Sprint(n) == num && n > 0 {
				return n * u.bits / 8, nil
			}
		}
	}
	return 0, fmt.Errorf("rate %q: want a positive count with Gbit or Mbit, or 0", s)
}

// formatRate8 writes bytes per second as bits per second.
func formatRate8(bytesPerSec int64) string {
	bits := bytesPerSec * 8
	if bits%1e9 == 0 {
		return fmt.Sprintf("%d Gbit/s", bits/1e9)
	}
	return fmt.Sprintf("%d Mbit/s", bits/1e6)
}

// parseSize reads "256MiB", "1GiB", "512KiB" or a byte count.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}, {"", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		var n int64
		if _, err := fmt.Sscanf(num, "%d", &n); err != nil || fmt.Sprint(n) != num || n <= 0 {
			return 0, fmt.Errorf("size %q: want a positive count with GiB, MiB, KiB or no unit", s)
		}
		return n * u.mult, nil
	}
	return 0, fmt.Errorf("size %q: unknown unit", s)
}

func parseLatencies(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "0" {
			out = append(out, 0)
			continue
		}
		d, err := time.ParseDuration(part)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("latency %q: want a duration such as 20ms", part)
		}
		out = append(out, d)
	}
	return out, nil
}

// buildBinary builds docker-imgx from this module into dir.
func buildBinary(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "docker-imgx")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/docker-imgx")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build docker-imgx: %w", err)
	}
	return bin, nil
}
