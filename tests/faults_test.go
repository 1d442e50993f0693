package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/faultproxy"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// faultFixture is the image every fault scenario reads: a three-platform
// index with attestations, in a registry behind the fault proxy.
type faultFixture struct {
	idx       fixture.Index
	repo, tag string
}

func (fx faultFixture) indexDigest() digest.Digest { return fx.idx.Index.Desc.Digest }

func (fx faultFixture) configDigest() digest.Digest { return fx.idx.Images[0].Config.Desc.Digest }

// layerDigest is the first layer of the linux/amd64 image, the one export
// writes to manifest.json too.
func (fx faultFixture) layerDigest() digest.Digest { return fx.idx.Images[0].Layers[0].Desc.Digest }

// faultRun is what one run of a command works with.
type faultRun struct {
	// ref is the fixture's reference through the proxy.
	ref string
	// dir is an empty folder for the command's output files.
	dir string
	// target is a repository:tag in a registry outside the proxy, holding
	// faultOldImage until a create moves it.
	target string
}

// faultOldImage is what a create target holds before the run.
func faultOldImage() fixture.Image {
	return fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 41})
}

// faultCommand is one way of running docker-imgx against the proxy. The
// scenarios run with every command.
type faultCommand struct {
	name string
	args func(run faultRun) []string
	// check verifies what a successful run produced.
	check func(t *testing.T, fx faultFixture, run faultRun, res result)
	// checkFailed verifies that a failed run left nothing behind.
	checkFailed func(t *testing.T, fx faultFixture, run faultRun)
}

// faultExportName is the name the export scenarios write, so that every
// proxy port gives the same tar.
const faultExportName = "registry.example/test/multi:v1"

func faultCommands(clean faultClean) []faultCommand {
	return []faultCommand{
		{
			name: "inspect-raw",
			args: func(run faultRun) []string { return []string{"inspect", "--raw", run.ref} },
			check: func(t *testing.T, fx faultFixture, _ faultRun, res result) {
				if res.Stdout != string(fx.idx.Index.Data) {
					t.Fatalf("--raw differs from the pushed index:\n%s", res.Stdout)
				}
			},
		},
		{
			// --format json fetches every child manifest, config and in-toto layer.
			name: "inspect-json",
			args: func(run faultRun) []string { return []string{"inspect", "--format", "json", run.ref} },
			check: func(t *testing.T, fx faultFixture, run faultRun, res result) {
				var got struct {
					Name     string
					Manifest struct{ Digest digest.Digest }
					Image    map[string]ocispec.Image
					SBOM     map[string]struct{ SPDX any }
				}
				if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
					t.Fatalf("json output: %v\n%s", err, res.Stdout)
				}
				if got.Name != run.ref || got.Manifest.Digest != fx.indexDigest() || len(got.Image) != len(fx.idx.Images) || len(got.SBOM) != len(fx.idx.Images) {
					t.Fatalf("json: name %q digest %s, %d images, %d SBOMs", got.Name, got.Manifest.Digest, len(got.Image), len(got.SBOM))
				}
				for _, img := range fx.idx.Images {
					if got.Image[platformKey(img.Platform)].Architecture != img.Platform.Architecture {
						t.Errorf("image %s missing or wrong", platformKey(img.Platform))
					}
				}
			},
		},
		{
			// Every platform and attestation: all blobs go through the proxy.
			name: "export",
			args: func(run faultRun) []string {
				return []string{"export", "--progress", "plain", "--platform", "all", "--name", faultExportName,
					"-o", filepath.Join(run.dir, "out.tar"), run.ref}
			},
			check: func(t *testing.T, _ faultFixture, run faultRun, _ result) {
				got, err := os.ReadFile(filepath.Join(run.dir, "out.tar"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, clean.tar) {
					t.Fatalf("the tar (%d bytes) differs from a clean export (%d bytes)", len(got), len(clean.tar))
				}
			},
			checkFailed: func(t *testing.T, _ faultFixture, run faultRun) { noFilesLeft(t, run.dir) },
		},
		{
			// A cross-registry copy: every manifest and blob read through the
			// proxy, pushed to a registry outside it.
			name: "create",
			args: func(run faultRun) []string {
				return []string{"create", "--progress", "plain", "-t", run.target, run.ref}
			},
			check: func(t *testing.T, fx faultFixture, run faultRun, _ result) {
				repo, tag := splitTarget(t, clean.target, run.target)
				if got := fetchTag(t, clean.target, repo, tag); got != string(fx.idx.Index.Data) {
					t.Fatalf("%s holds:\n%s\nwant the source index", run.target, got)
				}
				assertBlobsIn(t, clean.target, repo, append(append([]fixture.Image{}, fx.idx.Images...), fx.idx.Attestations...)...)
			},
			checkFailed: func(t *testing.T, _ faultFixture, run faultRun) {
				repo, tag := splitTarget(t, clean.target, run.target)
				if got := fetchTag(t, clean.target, repo, tag); got != string(faultOldImage().Manifest.Data) {
					t.Fatalf("%s moved after a failed create:\n%s", run.target, got)
				}
			},
		},
	}
}

// faultClean is what the commands produce without the proxy.
type faultClean struct {
	// tar is the export of the fixture straight from the registry.
	tar []byte
	// target is the registry create pushes to.
	target *registrytest.Registry
}

// splitTarget splits "host/repo:tag" of reg into repo and tag.
func splitTarget(t *testing.T, reg *registrytest.Registry, target string) (string, string) {
	t.Helper()
	rest, ok := strings.CutPrefix(target, reg.Host+"/")
	i := strings.LastIndex(rest, ":")
	if !ok || i < 0 {
		t.Fatalf("target %q is not in %s", target, reg.Host)
	}
	return rest[:i], rest[i+1:]
}

func platformKey(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// faultScenario is a set of faults and the outcome wanted from every command.
type faultScenario struct {
	name   string
	faults []faultproxy.Fault
	// auth puts the registry behind basic authentication.
	auth bool
	env  []string
	// only names the commands the scenario applies to; empty means all
	// but those in except.
	only, except []string
	// wantErr, when set, are substrings of the one-line error wanted;
	// otherwise the command must succeed with the exact content.
	wantErr []string
	// wantErrFor replaces wantErr for some commands, where the error names
	// another object (create reads the root by tag, its children by digest).
	wantErrFor map[string][]string
	// check makes further assertions on the proxy's log and stderr.
	check func(t *testing.T, p *faultproxy.Proxy, stderr string)
}

func (sc faultScenario) appliesTo(cmd string) bool {
	if len(sc.only) == 0 {
		return !slices.Contains(sc.except, cmd)
	}
	return slices.Contains(sc.only, cmd)
}

// errFor returns the error wanted from cmd; nil means success.
func (sc faultScenario) errFor(cmd string) []string {
	if w, ok := sc.wantErrFor[cmd]; ok {
		return w
	}
	return sc.wantErr
}

const (
	manifestByDigest = "/manifests/sha256:"
	manifestByTag    = "/manifests/v1"
)

func faultScenarios(fx faultFixture) []faultScenario {
	get := "GET"
	return []faultScenario{
		{name: "no faults"},
		{
			name:   "429 burst",
			except: []string{"inspect-raw"},
			faults: []faultproxy.Fault{{Method: get, PathContains: manifestByDigest, Times: 2, Kind: faultproxy.Status429}},
			check:  wantHits(faultproxy.Status429, 2),
		},
		{
			name:    "502 on a config, every time",
			only:    []string{"inspect-json"},
			faults:  []faultproxy.Fault{{Method: get, PathContains: "/blobs/" + fx.configDigest().String(), Kind: faultproxy.Status502}},
			wantErr: []string{"config " + fx.configDigest().String(), "gave up after 5 attempts: 502 Bad Gateway: UNKNOWN: injected by faultproxy"},
			check: func(t *testing.T, p *faultproxy.Proxy, _ string) {
				if n := p.Count(get, "/blobs/"+fx.configDigest().String()); n != 5 {
					t.Errorf("%d GETs of the config, want 5", n)
				}
			},
		},
		{
			name:   "reset mid-body",
			except: []string{"inspect-raw"},
			faults: []faultproxy.Fault{
				{Method: get, PathContains: manifestByDigest, Times: 1, Kind: faultproxy.ResetMidBody},
				{Method: get, PathContains: "/blobs/", Times: 1, Kind: faultproxy.ResetMidBody},
			},
			check: wantHits(faultproxy.ResetMidBody, -1),
		},
		{
			name:   "truncated body",
			except: []string{"inspect-raw"},
			faults: []faultproxy.Fault{
				{Method: get, PathContains: manifestByDigest, Times: 1, Kind: faultproxy.TruncateBody},
				{Method: get, PathContains: "/blobs/", Times: 1, Kind: faultproxy.TruncateBody},
			},
			check: func(t *testing.T, p *faultproxy.Proxy, stderr string) {
				wantHits(faultproxy.TruncateBody, -1)(t, p, stderr)
				wantResumedWithRange(t, p)
			},
		},
		{
			name:   "stall, resumed",
			except: []string{"inspect-raw"},
			env:    []string{"DOCKER_IMGX_STALL_TIMEOUT=500ms"},
			faults: []faultproxy.Fault{
				{Method: get, PathContains: manifestByDigest, Times: 1, Kind: faultproxy.Stall},
				{Method: get, PathContains: "/blobs/", Times: 1, Kind: faultproxy.Stall},
			},
			check: func(t *testing.T, p *faultproxy.Proxy, stderr string) {
				wantHits(faultproxy.Stall, -1)(t, p, stderr)
				wantResumedWithRange(t, p)
				if !strings.Contains(stderr, "registry stalled: no data for 500ms") {
					t.Errorf("no resume notice on stderr:\n%s", stderr)
				}
			},
		},
		{
			// The registry ignores Range on manifests: the resumed request
			// re-reads the start, stalls at the same byte, and that ends it.
			name:    "stall every time on a manifest",
			except:  []string{"inspect-raw"},
			env:     []string{"DOCKER_IMGX_STALL_TIMEOUT=300ms"},
			faults:  []faultproxy.Fault{{Method: get, PathContains: manifestByDigest, Kind: faultproxy.Stall}},
			wantErr: []string{fx.indexDigest().String(), "registry stalled: no data for 300ms", "after 1 resume attempts"},
			// create has the root from its GET by tag: a child stalls.
			wantErrFor: map[string][]string{
				"create":       {fx.repo + "@sha256:", "registry stalled: no data for 300ms", "after 1 resume attempts"},
				"inspect-json": {"manifest sha256:", "registry stalled: no data for 300ms", "after 1 resume attempts"},
				"export":       {"fetch sha256:", "registry stalled: no data for 300ms", "after 1 resume attempts"},
			},
		},
		{
			// Blobs honour Range: each resume gets further, until the limit.
			name:    "stall every time on a config",
			only:    []string{"inspect-json"},
			env:     []string{"DOCKER_IMGX_STALL_TIMEOUT=300ms"},
			faults:  []faultproxy.Fault{{Method: get, PathContains: "/blobs/" + fx.configDigest().String(), Kind: faultproxy.Stall}},
			wantErr: []string{"config " + fx.configDigest().String(), "registry stalled: no data for 300ms", "after 5 resume attempts"},
			check: func(t *testing.T, p *faultproxy.Proxy, _ string) {
				if n := p.Count(get, "/blobs/"+fx.configDigest().String()); n != 6 {
					t.Errorf("%d GETs of the config, want 6 (one and five resumes)", n)
				}
			},
		},
		{
			name:   "corrupt manifest",
			except: []string{"inspect-raw"},
			faults: []faultproxy.Fault{{Method: get, PathContains: manifestByDigest, Kind: faultproxy.CorruptBody}},
			// One read of small blobs (oci.ReadBlob): every command says the same.
			wantErr: []string{"blob " + fx.indexDigest().String() + ": content hashes to sha256:", "digest mismatch"},
			wantErrFor: map[string][]string{
				"export":       {"fetch sha256:", "content hashes to sha256:", "digest mismatch"},
				"create":       {fx.repo + "@sha256:", "content hashes to sha256:", "digest mismatch"},
				"inspect-json": {"manifest sha256:", "content hashes to sha256:", "digest mismatch"},
			},
		},
		{
			name:    "corrupt layer",
			only:    []string{"export", "create"},
			faults:  []faultproxy.Fault{{Method: get, PathContains: "/blobs/" + fx.layerDigest().String(), Kind: faultproxy.CorruptBody}},
			wantErr: []string{fx.layerDigest().String(), "sha256:"},
		},
		{
			name:    "corrupt config",
			only:    []string{"inspect-json"},
			faults:  []faultproxy.Fault{{Method: get, PathContains: "/blobs/" + fx.configDigest().String(), Kind: faultproxy.CorruptBody}},
			wantErr: []string{"config " + fx.configDigest().String(), "content hashes to sha256:", "digest mismatch"},
		},
		{
			name: "429 with Retry-After on the tag GET",
			only: []string{"create", "inspect-json", "export"},
			faults: []faultproxy.Fault{
				{Method: get, PathContains: manifestByTag, Times: 1, Kind: faultproxy.Status429RetryAfter, RetryAfter: "1"},
				{Method: get, PathContains: "/blobs/", Times: 2, Kind: faultproxy.Status429},
			},
			check: func(t *testing.T, p *faultproxy.Proxy, stderr string) {
				wantHits(faultproxy.Status429RetryAfter, 1)(t, p, stderr)
				wantHits(faultproxy.Status429, 2)(t, p, stderr)
				var gets []faultproxy.Request
				for _, r := range p.Requests() {
					if r.Method == get && strings.HasSuffix(r.Path, manifestByTag) {
						gets = append(gets, r)
					}
				}
				if len(gets) != 2 {
					t.Fatalf("%d GET requests for the tag, want 2", len(gets))
				}
				if gap := gets[1].At.Sub(gets[0].At); gap < 900*time.Millisecond {
					t.Errorf("retried %s after the 429, Retry-After asked for 1s", gap)
				}
				if !strings.Contains(stderr, "(attempt 2/5): 429 Too Many Requests (Retry-After: 1s)") {
					t.Errorf("no retry notice on stderr:\n%s", stderr)
				}
			},
		},
		{
			name: "5xx burst on the tag GET and blobs",
			only: []string{"create", "inspect-json", "export"},
			faults: []faultproxy.Fault{
				{Method: get, PathContains: manifestByTag, Times: 1, Kind: faultproxy.Status500},
				{Method: get, PathContains: manifestByDigest, Times: 1, Kind: faultproxy.Status502},
				{Method: get, PathContains: "/blobs/", Times: 1, Kind: faultproxy.Status503},
				{Method: get, PathContains: "/blobs/", Times: 1, Kind: faultproxy.Status504},
			},
			check: func(t *testing.T, p *faultproxy.Proxy, stderr string) {
				for _, k := range []faultproxy.FaultKind{faultproxy.Status500, faultproxy.Status502, faultproxy.Status503, faultproxy.Status504} {
					wantHits(k, 1)(t, p, stderr)
				}
			},
		},
		{
			name:    "503 on the tag GET that never ends",
			only:    []string{"create", "inspect-raw", "inspect-json", "export"},
			faults:  []faultproxy.Fault{{Method: get, PathContains: manifestByTag, Kind: faultproxy.Status503}},
			wantErr: []string{fx.repo + ":" + fx.tag, "gave up after 5 attempts: 503 Service Unavailable"},
			check: func(t *testing.T, p *faultproxy.Proxy, _ string) {
				if n := p.Count(get, manifestByTag); n != 5 {
					t.Errorf("%d GET requests of the tag, want 5", n)
				}
			},
		},
		{
			name:    "wrong Docker-Content-Digest on the tag GET",
			only:    []string{"create", "inspect-raw", "inspect-json", "export"},
			faults:  []faultproxy.Fault{{Method: get, PathContains: manifestByTag, Kind: faultproxy.WrongDigestHeader}},
			wantErr: []string{fx.repo + ":" + fx.tag, faultproxy.WrongDigest().String()},
		},
		{
			name:   "redirect to another host",
			except: []string{"inspect-raw"},
			auth:   true,
			faults: []faultproxy.Fault{
				{Method: get, PathContains: manifestByDigest, Kind: faultproxy.RedirectOtherHost},
				{Method: get, PathContains: "/blobs/", Kind: faultproxy.RedirectOtherHost},
			},
			check: func(t *testing.T, p *faultproxy.Proxy, _ string) {
				redirected := p.RedirectRequests()
				if len(redirected) == 0 {
					t.Fatal("nothing was fetched from the other host")
				}
				for _, r := range redirected {
					if r.Authorization {
						t.Errorf("%s %s on the other host carried Authorization", r.Method, r.Path)
					}
				}
				for _, r := range p.Requests() {
					if r.Fault == faultproxy.RedirectOtherHost && !r.Authorization {
						t.Errorf("%s %s reached the registry without credentials", r.Method, r.Path)
					}
				}
			},
		},
	}
}

// wantHits checks how many requests got a fault; n < 0 means at least one.
func wantHits(kind faultproxy.FaultKind, n int) func(*testing.T, *faultproxy.Proxy, string) {
	return func(t *testing.T, p *faultproxy.Proxy, _ string) {
		t.Helper()
		got := p.Hits(kind)
		if n < 0 && got == 0 || n >= 0 && got != n {
			t.Errorf("%s hit %d requests, want %d (-1: some)", kind, got, n)
		}
	}
}

// wantResumedWithRange checks that every broken fetch was followed by a
// request for the same path from the offset reached.
func wantResumedWithRange(t *testing.T, p *faultproxy.Proxy) {
	t.Helper()
	reqs := p.Requests()
	for i, r := range reqs {
		if r.Fault == faultproxy.None || r.Method != "GET" {
			continue
		}
		resumed := false
		for _, later := range reqs[i+1:] {
			if later.Path == r.Path && strings.HasPrefix(later.Range, "bytes=") && later.Range != "bytes=0-" {
				resumed = true
				break
			}
		}
		if !resumed {
			t.Errorf("%s %s (%s) was not resumed with a Range request", r.Method, r.Path, r.Fault)
		}
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	fx := faultFixture{idx: multiIndex(), repo: "test/multi", tag: "v1"}
	registries := map[bool]*registrytest.Registry{
		false: registrytest.Start(t, registrytest.Options{}),
		true:  registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic}),
	}
	for _, reg := range registries {
		pushIndex(t, reg, fx.repo, fx.tag, fx.idx)
	}
	clean := faultClean{target: registrytest.Start(t, registrytest.Options{})}
	cleanTar := filepath.Join(t.TempDir(), "clean.tar")
	newImgx(t).MustRun("export", "--progress", "quiet", "--platform", "all", "--name", faultExportName,
		"-o", cleanTar, registries[false].Host+"/"+fx.repo+":"+fx.tag)
	var err error
	if clean.tar, err = os.ReadFile(cleanTar); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sc := range faultScenarios(fx) {
		for _, cmd := range faultCommands(clean) {
			if !sc.appliesTo(cmd.name) {
				continue
			}
			n++
			run := faultRun{target: fmt.Sprintf("%s/faults/run%d:v1", clean.target.Host, n)}
			pushImage(t, clean.target, fmt.Sprintf("faults/run%d", n), "v1", faultOldImage())
			t.Run(sc.name+"/"+cmd.name, func(t *testing.T) {
				t.Parallel()
				run.dir = t.TempDir()
				runFaultScenario(t, registries[sc.auth], fx, sc, cmd, run)
			})
		}
	}
}

// runFaultScenario runs one command through a fresh proxy with the
// scenario's faults and checks the outcome.
func runFaultScenario(t *testing.T, reg *registrytest.Registry, fx faultFixture, sc faultScenario, cmd faultCommand, run faultRun) {
	p := faultproxy.Start(t, reg.Host, sc.faults...)
	x := newImgx(t).With(sc.env...)
	if reg.Username != "" {
		writeDockerConfig(t, x.DockerConfig, `{"auths":{"`+p.Host()+`":{"auth":"`+reg.DockerConfigAuth()+`"}}}`)
	}
	run.ref = p.Host() + "/" + fx.repo + ":" + fx.tag
	var stderr string
	if wantErr := sc.errFor(cmd.name); wantErr != nil {
		stderr = x.MustFail(wantErr, cmd.args(run)...)
		if cmd.checkFailed != nil {
			cmd.checkFailed(t, fx, run)
		}
	} else {
		res := x.MustRun(cmd.args(run)...)
		cmd.check(t, fx, run, res)
		stderr = res.Stderr
	}
	if sc.check != nil {
		sc.check(t, p, stderr)
	}
	t.Logf("%s: %d requests, stderr:\n%s", sc.name, len(p.Requests()), stderr)
}
