package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"golang.org/x/sync/errgroup"
)

// The release mirror of issue 24: releaseImages images, each an index of
// two platforms whose images share their layers, copied from registry A
// under a new prefix of registry B; then the same set again onto a prefix
// of B that holds it already, where a run only reads. Peers: skopeo sync
// (a YAML list), a regctl loop, a crane loop and crane four at a time
// (xargs -P4); the loops run through sh.
const (
	releaseImages   = 20
	releaseLayerLen = 256 << 10
	// againPrefix holds the release on B before any run, once per tool.
	againPrefix = "again"
)

// releaseRepo is the repository of release image i on A.
func releaseRepo(i int) string { return fmt.Sprintf("src/release/app%d", i) }

// pushRelease pushes the release to A, and to B under againPrefix/TOOL
// for each tool's second run.
func (l *lab) pushRelease(ctx context.Context) error {
	tools := []string{"imgx", peerSkopeo, peerRegctl, peerCrane, peerCrane + "-p4"}
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(8)
	for i := range releaseImages {
		eg.Go(func() error {
			var imgs []fixture.Image
			for _, p := range []string{"linux/amd64", "linux/arm64"} {
				imgs = append(imgs, fixture.NewImage(fixture.ImageOptions{Platform: p, Layers: 2, LayerSize: releaseLayerLen, Seed: int64(300000 + 10*i)}))
			}
			idx := fixture.NewIndex(imgs, false, nil)
			l.releaseMu.Lock()
			l.releaseBlobs = append(l.releaseBlobs, refs(releaseRepo(i), idx.Blobs())...)
			l.releaseMu.Unlock()
			if err := fixture.PushIndex(ctx, l.a.AdminHost, releaseRepo(i), "1", idx); err != nil {
				return err
			}
			for _, t := range tools {
				if err := fixture.PushIndex(ctx, l.b.AdminHost, againPrefix+"/"+t+"/"+releaseRepo(i), "1", idx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return eg.Wait()
}

// releaseCases are the first run and the second.
func (l *lab) releaseCases() []benchCase {
	return []benchCase{l.releaseCase(false), l.releaseCase(true)}
}

// releaseCase copies the release to B: under a new prefix, or (again)
// onto the prefix that holds it.
func (l *lab) releaseCase(again bool) benchCase {
	name, want := fmt.Sprintf("copy a release of %d images (2 platforms each) to another registry", releaseImages), "  copied\n"
	if again {
		name, want = fmt.Sprintf("copy the same release again (all %d there)", releaseImages), "  skipped\n"
	}
	prefix := func(ln link, tool, token string) string {
		if again {
			return ln.b.Host() + "/" + againPrefix + "/" + tool
		}
		return ln.b.Host() + "/" + token
	}
	return benchCase{
		name: name, command: "copy", concurrency: createConcurrency, copies: !again,
		blobs: l.releaseBlobs,
		args: func(ln link, _, token string) []string {
			args := []string{"copy", "--progress", "quiet"}
			for i := range releaseImages {
				args = append(args, ln.a.Host()+"/"+releaseRepo(i)+":1")
			}
			return append(args, prefix(ln, "imgx", token))
		},
		check: func(stdout []byte, _ string) error {
			if n := strings.Count(string(stdout), want); n != releaseImages {
				return fmt.Errorf("copy reported %d images %s, want %d: %q", n, strings.TrimSpace(want), releaseImages, firstLine(string(stdout)))
			}
			return nil
		},
		peers: l.releasePeers(prefix),
	}
}

// releaseLoop runs its tool ($0) once per image ("$@": repository:tag),
// from $A to $B.
const (
	releaseLoop   = `for r in "$@"; do "$0" ` + "%s" + ` "$A/$r" "$B/$r" || exit 1; done`
	releaseXargs4 = `printf '%%s\n' "$@" | A="$A" B="$B" xargs -P4 -I{} "$0" ` + "%s" + ` "$A/{}" "$B/{}"`
)

// releasePeers are the peers' commands for the release.
func (l *lab) releasePeers(prefix func(ln link, tool, token string) string) []peerCommand {
	images := func() []string {
		var out []string
		for i := range releaseImages {
			out = append(out, releaseRepo(i)+":1")
		}
		return out
	}
	shell := func(script string, ln link, tool, token string) []string {
		return append([]string{"A=" + ln.a.Host(), "B=" + prefix(ln, tool, token), script}, images()...)
	}
	// check reads the last image of the release where the tool put it.
	check := func(tool string) func(ctx context.Context, l *lab, ln link, _ []byte, _, token string) error {
		return func(ctx context.Context, l *lab, ln link, _ []byte, _, token string) error {
			repo := releaseRepo(releaseImages - 1)
			if tool == peerSkopeo {
				// skopeo sync keeps only the last path component.
				repo = repo[strings.LastIndex(repo, "/")+1:]
			}
			path := strings.TrimPrefix(prefix(ln, tool, token), ln.b.Host()+"/") + "/" + repo
			if _, _, err := fixture.Fetch(ctx, l.b.AdminHost, path, "1"); err != nil {
				return fmt.Errorf("%s:1 after the run: %w", path, err)
			}
			return nil
		}
	}
	regctlHosts := func(ln link) string {
		return "--host reg=" + ln.a.Host() + ",tls=disabled --host reg=" + ln.b.Host() + ",tls=disabled image copy"
	}
	return []peerCommand{
		{peer: peerSkopeo, check: check(peerSkopeo), args: func(ln link, _, token string) []string {
			return []string{"sync", "--all", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", "--scoped=false",
				l.releaseYAML(ln), prefix(ln, peerSkopeo, token)}
		}},
		{peer: peerRegctl, shell: true, check: check(peerRegctl), args: func(ln link, _, token string) []string {
			return shell(fmt.Sprintf(releaseLoop, regctlHosts(ln)), ln, peerRegctl, token)
		}},
		{peer: peerCrane, shell: true, check: check(peerCrane), args: func(ln link, _, token string) []string {
			return shell(fmt.Sprintf(releaseLoop, "copy --insecure"), ln, peerCrane, token)
		}},
		{peer: peerCrane, variant: "-p4", shell: true, check: check(peerCrane + "-p4"), args: func(ln link, _, token string) []string {
			return shell(fmt.Sprintf(releaseXargs4, "copy --insecure"), ln, peerCrane+"-p4", token)
		}},
	}
}

// releaseYAML writes skopeo sync's list of the release on ln's A (once per
// link) and returns its path.
func (l *lab) releaseYAML(ln link) string {
	path := filepath.Join(l.tmp, "release-"+strings.NewReplacer(":", "_", ".", "_").Replace(ln.a.Host())+".yaml")
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n  tls-verify: false\n  images:\n", ln.a.Host())
	for i := range releaseImages {
		fmt.Fprintf(&b, "    %s: [\"1\"]\n", releaseRepo(i))
	}
	_ = os.WriteFile(path, []byte(b.String()), 0o644)
	return path
}
