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

// peerResult is one peer's figures for one case at one link.
type peerResult struct {
	Peer    string
	Version string
	// Variant tells apart two commands of one peer (peerCommand.variant).
	Variant string `json:",omitempty"`
	// Command is the command line of the first run, with the hosts of
	// registries A and B written A and B and the output file OUT.
	Command string
	// Status is "" when every run succeeded, "absent" when the tool is not
	// installed, else why there are no figures.
	Status string
	// Wall and Requests are medians over the runs; RSSKiB is the largest
	// peak resident set size.
	Wall     time.Duration
	Requests int
	RSSKiB   int64
	// Flush, for a case that writes a file, is the median time the flush of
	// what the peer wrote took once it had exited: the peers leave their
	// output in the page cache, docker-imgx flushes its tar before renaming
	// it into place, inside its wall time.
	Flush time.Duration `json:",omitempty"`
}

// measurePeers runs each of the case's peer commands cfg.runs times over ln.
func (l *lab) measurePeers(ctx context.Context, c benchCase, ln link, lat time.Duration, rate int64) ([]peerResult, error) {
	var out []peerResult
	for _, pc := range c.peers {
		p, ok := l.peers[pc.peer]
		res := peerResult{Peer: pc.peer, Variant: pc.variant, Version: p.version,
			Command: l.displayCommand(pc.peer, pc.args(ln, "OUT", "TOKEN"), ln)}
		if !ok {
			res.Status = "absent"
			out = append(out, res)
			continue
		}
		var samples []sample
		for i := range l.cfg.runs {
			s, err := l.runPeerOnce(ctx, c, pc, p, ln, lat, fmt.Sprintf("%s%s-l%d-b%d-r%d", pc.peer, pc.variant, lat.Milliseconds(), rate, i))
			if err != nil {
				if ctx.Err() != nil {
					return out, ctx.Err()
				}
				res.Status = "error: " + err.Error()
				break
			}
			samples = append(samples, s)
		}
		if res.Status == "" {
			res.Wall = median(mapSlice(samples, func(s sample) time.Duration { return s.wall }))
			res.Requests = median(mapSlice(samples, func(s sample) int { return s.requests }))
			res.RSSKiB = slices.Max(mapSlice(samples, func(s sample) int64 { return s.rssKiB }))
			if c.writes {
				res.Flush = median(mapSlice(samples, func(s sample) time.Duration { return s.flush }))
			}
		}
		out = append(out, res)
	}
	return out, nil
}

// runPeerOnce runs one peer command once and checks what it left.
func (l *lab) runPeerOnce(ctx context.Context, c benchCase, pc peerCommand, p peer, ln link, lat time.Duration, token string) (sample, error) {
	outFile := filepath.Join(l.tmp, "out-"+token+".tar")
	defer os.RemoveAll(outFile)
	bin, args := p.path, pc.args(ln, outFile, token)
	if pc.shell {
		bin, args = "env", append([]string{args[0], args[1], "sh", "-c", args[2], bin}, args[3:]...)
	}
	bin, args, env, err := l.freshState(pc.peer, bin, args, token)
	if err != nil {
		return sample{}, err
	}
	s, stdout, err := l.runTool(ctx, c.name, pc.peer, bin, env, args, ln, lat, token)
	if err != nil {
		return sample{}, err
	}
	if c.writes {
		// runTool settled the disk before the run: what is dirty now is
		// what the peer wrote.
		start := time.Now()
		settle()
		s.flush = time.Since(start)
	}
	if err := pc.check(ctx, l, ln, stdout, outFile, token); err != nil {
		return sample{}, fmt.Errorf("%s: %w", pc.peer, err)
	}
	return s, nil
}

// skopeoCacheDir is where skopeo (containers/image) keeps, run as root, its
// blob-info cache: which repositories of which registry it has put each
// blob in. Other users keep it under $XDG_DATA_HOME/containers/cache.
const skopeoCacheDir = "/var/lib/containers/cache"

// freshState returns how to run a peer so that it starts as it would on a
// machine it never ran on. skopeo remembers in its blob-info cache where it
// put each blob and, copying to a registry that holds the blob in another
// repository, mounts it from there instead of copying it: across the runs of
// a case every run after the first would mount what the case copies. Each
// run gets an empty cache: run as root, in a mount namespace of its own with
// an empty tmpfs over skopeoCacheDir (unshare(1); nothing outside changes);
// else in a fresh XDG_DATA_HOME.
func (l *lab) freshState(name, bin string, args []string, token string) (string, []string, []string, error) {
	env := l.peerEnv
	if name != peerSkopeo {
		return bin, args, env, nil
	}
	if os.Geteuid() != 0 {
		data := filepath.Join(l.tmp, "xdg-"+token)
		return bin, args, append(slices.Clone(env), "XDG_DATA_HOME="+data), nil
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		return "", nil, nil, fmt.Errorf("skopeo: unshare(1) (util-linux) is needed to give each run an empty blob-info cache: %w", err)
	}
	script := `mkdir -p ` + skopeoCacheDir + ` && mount -t tmpfs imgx-bench ` + skopeoCacheDir + ` && exec "$0" "$@"`
	return unshare, append([]string{"--mount", "--propagation", "private", "sh", "-c", script, bin}, args...), env, nil
}

// displayCommand writes a command line for the report: the tool's name,
// then its arguments with the proxies' hosts written A and B.
func (l *lab) displayCommand(name string, args []string, ln link) string {
	r := strings.NewReplacer(ln.a.Host(), "A", ln.b.Host(), "B")
	parts := []string{name}
	for _, a := range args {
		a = r.Replace(a)
		if strings.ContainsAny(a, " {}") {
			a = "'" + a + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// lastLine is the last non-empty line of s: where tools print the error
// that ended them.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
