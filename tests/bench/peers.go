package main

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Peer tools, in the order of the report's columns. crane, regctl, oras and
// buildx are installed by make bench into the tools folder (-tools); skopeo
// is taken from PATH (Debian's package).
const (
	peerCrane  = "crane"
	peerRegctl = "regctl"
	peerSkopeo = "skopeo"
	peerOras   = "oras"
	peerBuildx = "buildx"
)

func peerNames() []string { return []string{peerCrane, peerRegctl, peerSkopeo, peerOras, peerBuildx} }

// peer is another tool found on this machine.
type peer struct {
	name    string
	path    string
	version string
}

// peerCommand is how one peer does a case's job.
type peerCommand struct {
	peer string
	// variant tells apart two commands of one peer in a case (crane's loop
	// and crane -P4): it is part of each run's token, so that they never
	// write to the same place and the second find the first's images.
	variant string
	args    func(ln link, outFile, token string) []string
	// shell runs the tool through sh: args are A=HOST, B=HOST, a script
	// and its arguments; the script gets the tool's path as $0.
	shell bool
	// check tells whether a successful run produced what it should.
	check func(ctx context.Context, l *lab, ln link, stdout []byte, outFile, token string) error
}

// findPeers looks for each peer: in the tools folder, then (skopeo) on PATH.
// A peer not found is left out; the report says it is absent.
func findPeers(ctx context.Context, tools string) map[string]peer {
	out := map[string]peer{}
	for _, name := range peerNames() {
		path := filepath.Join(tools, name)
		if name == peerSkopeo {
			var err error
			if path, err = exec.LookPath(name); err != nil {
				continue
			}
		}
		if fi, err := os.Stat(path); err != nil || fi.IsDir() {
			continue
		}
		out[name] = peer{name: name, path: path, version: peerVersion(ctx, path)}
	}
	return out
}

// peerVersion is the main module's version a Go binary was built from, else
// the last field of the first line of `BINARY --version` (skopeo).
func peerVersion(ctx context.Context, path string) string {
	if bi, err := buildinfo.ReadFile(path); err == nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(firstLine(string(out)))
	if len(f) == 0 {
		return "unknown"
	}
	return f[len(f)-1]
}

// peerEnv is the peers' environment on top of the binary's: regctl keeps
// its configuration under HOME, skopeo reads its signature policy from
// /etc/containers (Debian's package installs it) and writes big temp files
// under TMPDIR.
func peerEnv(tmp string) []string {
	return append(binaryEnv(tmp), "TMPDIR="+tmp)
}

// exportPeers are the peers' commands for exporting refs to one file (or, for
// crane with an index, an OCI layout folder: crane writes an index only
// there). skopeo and regctl take one image per command.
func exportPeers(refs []string, index bool, want int64) []peerCommand {
	check := func(_ context.Context, _ *lab, _ link, _ []byte, outFile, _ string) error {
		return checkOutputSize(outFile, want)
	}
	full := func(ln link) []string {
		out := make([]string, len(refs))
		for i, r := range refs {
			out[i] = ln.a.Host() + "/" + r
		}
		return out
	}
	crane := peerCommand{peer: peerCrane, check: check, args: func(ln link, outFile, _ string) []string {
		if index {
			return append(append([]string{"pull", "--insecure", "--format", "oci"}, full(ln)...), outFile)
		}
		return append(append([]string{"pull", "--insecure"}, full(ln)...), outFile)
	}}
	if len(refs) > 1 {
		return []peerCommand{crane}
	}
	skopeo := peerCommand{peer: peerSkopeo, check: check, args: func(ln link, outFile, _ string) []string {
		if index {
			return []string{"copy", "--quiet", "--all", "--src-tls-verify=false", "docker://" + full(ln)[0], "oci-archive:" + outFile}
		}
		return []string{"copy", "--quiet", "--src-tls-verify=false", "docker://" + full(ln)[0], "docker-archive:" + outFile}
	}}
	regctl := peerCommand{peer: peerRegctl, check: check, args: func(ln link, outFile, _ string) []string {
		return []string{"--host", "reg=" + ln.a.Host() + ",tls=disabled", "image", "export", full(ln)[0], outFile}
	}}
	return []peerCommand{crane, regctl, skopeo}
}

// checkOutputSize checks that path, a file or a folder, holds at least want
// bytes.
func checkOutputSize(path string, want int64) error {
	var total int64
	err := filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			total += fi.Size()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("no output: %w", err)
	}
	if total < want {
		return fmt.Errorf("wrote %d bytes, less than the %d bytes of the blobs", total, want)
	}
	return nil
}

// copyPeers are the peers' commands for copying the index at ref on
// registry A to target(ln, token) on registry B. Each must leave the same
// index digest at the target.
func copyPeers(ref string, indexDigest string, target func(ln link, token string) string) []peerCommand {
	check := func(ctx context.Context, l *lab, ln link, _ []byte, _, token string) error {
		return l.checkTargetDigest(ctx, ln, target(ln, token), indexDigest)
	}
	src := func(ln link) string { return ln.a.Host() + "/" + ref }
	return []peerCommand{
		{peer: peerCrane, check: check, args: func(ln link, _, token string) []string {
			return []string{"copy", "--insecure", src(ln), target(ln, token)}
		}},
		{peer: peerRegctl, check: check, args: func(ln link, _, token string) []string {
			return []string{"--host", "reg=" + ln.a.Host() + ",tls=disabled", "--host", "reg=" + ln.b.Host() + ",tls=disabled",
				"image", "copy", src(ln), target(ln, token)}
		}},
		{peer: peerSkopeo, check: check, args: func(ln link, _, token string) []string {
			return []string{"copy", "--quiet", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
				"docker://" + src(ln), "docker://" + target(ln, token)}
		}},
		{peer: peerOras, check: check, args: func(ln link, _, token string) []string {
			return []string{"cp", "-r", "--from-plain-http", "--to-plain-http", src(ln), target(ln, token)}
		}},
		{peer: peerBuildx, check: check, args: func(ln link, _, token string) []string {
			return []string{"imagetools", "create", "--progress", "quiet", "-t", target(ln, token), src(ln)}
		}},
	}
}

// createPeers are the peers' commands for combining sources into a new index
// at target: buildx imagetools create, crane index append, regctl index
// create. Each must leave an index of len(sources) children.
func createPeers(sources func(ln link) []string, n int, target func(ln link, token string) string) []peerCommand {
	check := func(ctx context.Context, l *lab, ln link, _ []byte, _, token string) error {
		return l.checkTargetChildren(ctx, ln, target(ln, token), n)
	}
	return []peerCommand{
		{peer: peerCrane, check: check, args: func(ln link, _, token string) []string {
			args := []string{"index", "append", "--insecure", "-t", target(ln, token)}
			for _, s := range sources(ln) {
				args = append(args, "-m", s)
			}
			return args
		}},
		{peer: peerRegctl, check: check, args: func(ln link, _, token string) []string {
			args := []string{"--host", "reg=" + ln.a.Host() + ",tls=disabled", "--host", "reg=" + ln.b.Host() + ",tls=disabled",
				"index", "create", target(ln, token)}
			for _, s := range sources(ln) {
				args = append(args, "--ref", s)
			}
			return args
		}},
		{peer: peerBuildx, check: check, args: func(ln link, _, token string) []string {
			return append([]string{"imagetools", "create", "--progress", "quiet", "-t", target(ln, token)}, sources(ln)...)
		}},
	}
}

// inspectPeers: buildx imagetools inspect with the JSON of everything it
// reads (configs, provenance and SBOM), the job imgx inspect --format json does.
func inspectPeers(ref string) []peerCommand {
	return []peerCommand{{peer: peerBuildx,
		args: func(ln link, _, _ string) []string {
			return []string{"imagetools", "inspect", "--format", "{{json .}}", ln.a.Host() + "/" + ref}
		},
		check: func(_ context.Context, _ *lab, _ link, stdout []byte, _, _ string) error {
			if !json.Valid(stdout) {
				return errors.New("printed no valid JSON")
			}
			return nil
		},
	}}
}

// checkTargetDigest reads ref (HOST/REPO:TAG, the host being a proxy of
// registry B or A) through the registry's admin host, which logs nothing,
// and compares its digest.
func (l *lab) checkTargetDigest(ctx context.Context, ln link, ref, want string) error {
	data, err := l.fetchTarget(ctx, ln, ref)
	if err != nil {
		return err
	}
	if got := digest.FromBytes(data).String(); got != want {
		return fmt.Errorf("%s has digest %s, want %s", ref, got, want)
	}
	return nil
}

// checkTargetChildren checks that ref holds an index of n children.
func (l *lab) checkTargetChildren(ctx context.Context, ln link, ref string, n int) error {
	data, err := l.fetchTarget(ctx, ln, ref)
	if err != nil {
		return err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	if len(idx.Manifests) != n {
		return fmt.Errorf("%s has %d children, want %d", ref, len(idx.Manifests), n)
	}
	return nil
}

// fetchTarget reads the manifest at ref, named through one of ln's
// proxies, from the admin host of the registry behind that proxy.
func (l *lab) fetchTarget(ctx context.Context, ln link, ref string) ([]byte, error) {
	host, rest, _ := strings.Cut(ref, "/")
	repo, tag, _ := strings.Cut(rest, ":")
	admin := l.a.AdminHost
	if host == ln.b.Host() {
		admin = l.b.AdminHost
	}
	data, _, err := fixture.Fetch(ctx, admin, repo, tag)
	return data, err
}
