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
	rep := report{Machine: describeMachine(ctx, cfg.binary), Runs: cfg.runs, ExportSize: cfg.size}
	rep.SHA256MiBps = sha256Throughput(cfg.hashMiB)
	for _, c := range l.cases() {
		if cfg.only != "" && !strings.Contains(c.name, cfg.only) {
			continue
		}
		for _, lat := range cfg.latencies {
			fmt.Fprintf(stderr, "bench: %s, latency %v\n", c.name, lat)
			row, err := l.measure(ctx, c, lat)
			if err != nil {
				return err
			}
			rep.Rows = append(rep.Rows, row)
		}
	}
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
	fs.BoolVar(&cfg.chains, "chains", false, "print each run's longest chain of sequential requests to stderr")
	if err := fs.Parse(args); err != nil {
		return cfg, err
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
	if cfg.runs < 1 || cfg.hashMiB < 1 {
		return cfg, errors.New("-runs and -hash must be at least 1")
	}
	return cfg, nil
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
