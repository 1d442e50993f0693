package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// startupTarget is the start-up time docker-imgx aims under.
const startupTarget = 20 * time.Millisecond

// startupRow is one command's start-up: the median wall time of runs that do
// nothing but print a version.
type startupRow struct {
	Command string
	Status  string
	Wall    time.Duration
	RSSKiB  int64
}

// measureStartup times `docker-imgx version`, and through the docker client
// (when on PATH) `docker imgx version` beside `docker buildx version` and
// `docker --version`, the client alone. The plugins are installed into a
// Docker config folder of their own.
func (l *lab) measureStartup(ctx context.Context, runs int) ([]startupRow, error) {
	settle() // the cases before leave the registries' writes dirty
	out := []startupRow{l.startupOf(ctx, runs, l.env, "docker-imgx version", l.cfg.binary, "version")}
	docker, err := exec.LookPath("docker")
	if err != nil {
		return append(out, startupRow{Command: "docker imgx version", Status: "absent (no docker client on PATH)"}), nil
	}
	cfgDir := filepath.Join(l.tmp, "startup-docker-config")
	plugins := filepath.Join(cfgDir, "cli-plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(l.cfg.binary)
	if err != nil {
		return nil, err
	}
	if err := os.Symlink(bin, filepath.Join(plugins, "docker-imgx")); err != nil {
		return nil, err
	}
	env := append(slices.Clone(l.env), "DOCKER_CONFIG="+cfgDir)
	out = append(out, l.startupOf(ctx, runs, env, "docker imgx version", docker, "imgx", "version"))
	if p, ok := l.peers[peerBuildx]; ok {
		target, err := filepath.Abs(p.path)
		if err != nil {
			return nil, err
		}
		if err := os.Symlink(target, filepath.Join(plugins, "docker-buildx")); err != nil {
			return nil, err
		}
		out = append(out, l.startupOf(ctx, runs, env, "docker buildx version", docker, "buildx", "version"))
	} else {
		out = append(out, startupRow{Command: "docker buildx version", Status: "absent (buildx not installed)"})
	}
	return append(out, l.startupOf(ctx, runs, env, "docker --version", docker, "--version")), nil
}

// startupOf runs bin with args runs times through the launcher.
func (l *lab) startupOf(ctx context.Context, runs int, env []string, name, bin string, args ...string) startupRow {
	r := startupRow{Command: name}
	var walls []time.Duration
	for i := range runs {
		res, _, err := l.launch(ctx, fmt.Sprintf("startup-%d", i), bin, env, args)
		if err != nil {
			r.Status = "error: " + err.Error()
			return r
		}
		walls = append(walls, time.Duration(res.WallNanos))
		r.RSSKiB = max(r.RSSKiB, res.MaxRSSKiB)
	}
	r.Wall = median(walls)
	return r
}

// startupTable renders the start-up rows.
func (r report) startupTable() string {
	if len(r.Startup) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Median of %d runs; the target for docker-imgx is under %s.\n\n", r.StartupRuns, formatDuration(startupTarget))
	b.WriteString("| Command | Wall time | Peak RSS |\n|---|---:|---:|\n")
	for _, x := range r.Startup {
		if x.Status != "" {
			fmt.Fprintf(&b, "| `%s` | %s | – |\n", x.Command, shorten(x.Status, 60))
			continue
		}
		fmt.Fprintf(&b, "| `%s` | %.1f ms | %s |\n", x.Command, float64(x.Wall)/float64(time.Millisecond), formatSize(x.RSSKiB<<10))
	}
	return b.String()
}
