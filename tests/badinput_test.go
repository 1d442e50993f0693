package tests

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// badInputCase is one bad input: the arguments and the parts of the one-line
// error that must name the input and say what would be valid.
type badInputCase struct {
	name  string
	args  []string
	wants []string
}

// badInputEnv is what the bad-input tests run against: a registry with one
// single-platform image (test/app:1) and one index (test/multi:v1), and
// OCI layouts that are broken in different ways.
type badInputEnv struct {
	reg                                   *registrytest.Registry
	app                                   fixture.Image
	dir                                   string // scratch folder, checked for leftovers
	file, missing, noLayout, badJSON, two string // oci-layout paths
	unknown                               string // a well-formed digest in no repository
}

func newBadInputEnv(t *testing.T) badInputEnv {
	t.Helper()
	e := badInputEnv{
		reg:     registrytest.Start(t, registrytest.Options{}),
		app:     fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 51}),
		dir:     t.TempDir(),
		unknown: "sha256:" + strings.Repeat("ab", 32),
	}
	idx := multiIndex()
	pushImage(t, e.reg, "test/app", "1", e.app)
	pushIndex(t, e.reg, "test/multi", "v1", idx)
	layouts := t.TempDir()
	e.file = filepath.Join(layouts, "file")
	e.missing = filepath.Join(layouts, "missing")
	e.noLayout = filepath.Join(layouts, "nolayout")
	e.badJSON = filepath.Join(layouts, "badjson")
	e.two = filepath.Join(layouts, "two")
	for _, d := range []string{e.noLayout, e.badJSON, e.two} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		e.file:                                 "not a layout",
		filepath.Join(e.badJSON, "oci-layout"): `{"imageLayoutVersion":"1.0.0"}`,
		filepath.Join(e.badJSON, "index.json"): `{not json`,
	}
	for name, data := range files {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tags := map[string]fixture.Blob{"a": e.app.Manifest, "b": idx.Index}
	if err := fixture.WriteLayout(e.two, tags, append(e.app.Blobs(), idx.Blobs()...)...); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e badInputEnv) ref(s string) string { return e.reg.Host + "/" + s }

func (e badInputEnv) run(t *testing.T, x *imgx, cases []badInputCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Log(x.MustFail(c.wants, c.args...))
		})
	}
}

// assertEmpty fails when a failed command left anything in the scratch folder.
func (e badInputEnv) assertEmpty(t *testing.T) {
	t.Helper()
	ents, err := os.ReadDir(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		t.Errorf("a failed command left %s behind", ent.Name())
	}
}

func TestBadInputReferences(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	x := newImgx(t)
	app := e.ref("test/app")
	want := "NAME[:TAG][@DIGEST]"
	var cases []badInputCase
	for _, cmd := range [][]string{{"inspect"}, {"create", "--dry-run"}, {"export", "-o", filepath.Join(e.dir, "out.tar")}} {
		cases = append(cases,
			badInputCase{cmd[0] + "/uppercase", append(slices.Clone(cmd), e.ref("Test/App:1")), []string{`"` + e.ref("Test/App:1") + `"`, "must be lowercase", want}},
			badInputCase{cmd[0] + "/tag-chars", append(slices.Clone(cmd), app+":bad^tag"), []string{`tag "bad^tag"`, "letters, digits", want}},
			badInputCase{cmd[0] + "/short-digest", append(slices.Clone(cmd), app+"@sha256:abc"), []string{`digest "sha256:abc"`, "64 hex digits", want}},
			badInputCase{cmd[0] + "/unknown-digest", append(slices.Clone(cmd), app+"@"+e.unknown), []string{app + "@" + e.unknown, "manifest not found in repository " + app}},
			badInputCase{cmd[0] + "/unknown-tag", append(slices.Clone(cmd), app+":nope"), []string{app + ":nope", `tag "nope" not found in repository ` + app}},
			badInputCase{cmd[0] + "/missing-repo", append(slices.Clone(cmd), e.ref("test/nothere:1")), []string{e.ref("test/nothere:1"), "not found"}},
		)
	}
	cases = append(cases,
		badInputCase{"inspect/empty", []string{"inspect", ""}, []string{`invalid reference ""`, "empty", want}},
		badInputCase{"inspect/tag-only", []string{"inspect", ":tag"}, []string{`":tag"`, "no repository name", want}},
		badInputCase{"export/tag-only", []string{"export", "-o", filepath.Join(e.dir, "out.tar"), ":tag"}, []string{`":tag"`, "no repository name", want}},
	)
	e.run(t, x, cases)
	e.assertEmpty(t)
}

func TestBadInputLayouts(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	x := newImgx(t)
	out := filepath.Join(e.dir, "out.tar")
	var cases []badInputCase
	for _, cmd := range [][]string{{"inspect"}, {"create", "--dry-run"}, {"export", "-o", out}} {
		add := func(name, src string, wants ...string) {
			cases = append(cases, badInputCase{cmd[0] + "/" + name, append(slices.Clone(cmd), src), wants})
		}
		add("missing", "oci-layout://"+e.missing, "oci-layout://"+e.missing+" is not an OCI image layout", "folder "+e.missing+" does not exist")
		add("file", "oci-layout://"+e.file, "is not an OCI image layout", e.file+" is a file, not a folder")
		add("no-oci-layout", "oci-layout://"+e.noLayout, "is not an OCI image layout", "no oci-layout file in "+e.noLayout, "want a folder with oci-layout, index.json and blobs/")
		add("bad-index-json", "oci-layout://"+e.badJSON, "oci-layout://"+e.badJSON+": index.json is not valid JSON")
		add("missing-tag", "oci-layout://"+e.two+":nope", "oci-layout://"+e.two+":nope", `tag "nope" not found in OCI layout`, "(tags: a, b)")
		add("unknown-digest", "oci-layout://"+e.two+"@"+e.unknown, "oci-layout://"+e.two+"@"+e.unknown, "manifest not found in OCI layout")
		add("several-no-tag", "oci-layout://"+e.two, "index.json holds 2 images, not one", "name one with oci-layout://"+e.two+":TAG or @DIGEST", "(tags: a, b)")
		add("no-path", "oci-layout://", "oci-layout://", "PATH[:TAG][@DIGEST]")
	}
	e.run(t, x, cases)
	e.assertEmpty(t)
}

func TestBadInputInspect(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	x := newImgx(t)
	app, multi := e.ref("test/app:1"), e.ref("test/multi:v1")
	e.run(t, x, []badInputCase{
		{"platform-too-long", []string{"inspect", "--platform", "linux/amd64/v8/x", multi}, []string{`invalid --platform "linux/amd64/v8/x"`, "want OS/ARCH[/VARIANT]"}},
		{"platform-all", []string{"inspect", "--platform", "all", multi}, []string{`invalid --platform "all"`, "want OS/ARCH[/VARIANT]"}},
		// A variant containerd would walk down one by one for minutes (found by FuzzPlatform).
		{"platform-variant-huge", []string{"inspect", "--platform", "linux/amd64/v6888888864", multi}, []string{`invalid --platform "linux/amd64/v6888888864"`, "amd64 has no variant v6888888864 (the highest is v4)"}},
		{"platform-absent", []string{"inspect", "--platform", "linux/s390x", multi}, []string{"no image for platform linux/s390x", "linux/amd64, linux/arm64/v8, linux/arm/v7"}},
		{"platform-single-mismatch", []string{"inspect", "--platform", "linux/arm64", app}, []string{app, "a single linux/amd64 image, not linux/arm64", "drop --platform"}},
		{"format-parse", []string{"inspect", "--format", "{{.Nope", app}, []string{`invalid --format "{{.Nope"`, "unclosed action", "want json, or a Go template"}},
		{"format-field", []string{"inspect", "--format", "{{.Nope}}", app}, []string{`invalid --format "{{.Nope}}"`, "no field .Nope", "fields: .Name, .Manifest"}},
		{"raw-and-format", []string{"inspect", "--raw", "--format", "json", app}, []string{"--format and --raw cannot be used together", "pick one"}},
		{"no-args", []string{"inspect"}, []string{`"docker-imgx inspect" takes 1 argument(s) (NAME), got none`, "--help"}},
		{"two-args", []string{"inspect", "a", "b"}, []string{"takes 1 argument(s) (NAME), got 2 (a b)"}},
		{"unknown-command", []string{"bogus"}, []string{`unknown command "bogus"`, "docker-imgx --help"}},
	})
	// A platform is accepted on a single image it matches.
	x.MustRun("inspect", "--platform", "linux/amd64", app)
}

func TestBadInputRootOptions(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	x := newImgx(t)
	app := e.ref("test/app:1")
	e.run(t, x, []badInputCase{
		{"insecure-host", []string{"--insecure-registry", "bad host!", "inspect", app}, []string{`invalid --insecure-registry: insecure registry "bad host!"`, "not a host, host:port or CIDR range"}},
		{"insecure-cidr", []string{"inspect", "--insecure-registry", "10.0.0.0/99", app}, []string{`invalid --insecure-registry: insecure registry "10.0.0.0/99"`, "e.g. registry.local:5000 or 10.0.0.0/8"}},
	})
	daemonJSON := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(daemonJSON, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	envCases := []struct {
		env   string
		wants []string
	}{
		{"DOCKER_IMGX_STALL_TIMEOUT=soon", []string{`DOCKER_IMGX_STALL_TIMEOUT="soon"`, "want a duration such as 30s or 2m"}},
		{"DOCKER_IMGX_INSECURE_REGISTRIES=reg.local,bad host!", []string{`invalid DOCKER_IMGX_INSECURE_REGISTRIES: insecure registry "bad host!"`, "host:port or CIDR range"}},
		{"DOCKER_IMGX_INSECURE_REGISTRIES=10.0.0.0/99", []string{`invalid DOCKER_IMGX_INSECURE_REGISTRIES: insecure registry "10.0.0.0/99"`}},
		{"DOCKER_IMGX_DAEMON_CONFIG=" + daemonJSON, []string{"read daemon config " + daemonJSON, "set DOCKER_IMGX_DAEMON_CONFIG to another file, or to empty"}},
	}
	for _, c := range envCases {
		t.Run(c.env, func(t *testing.T) {
			for _, cmd := range [][]string{{"inspect", app}, {"create", "--dry-run", app}, {"export", "-o", filepath.Join(e.dir, "out.tar"), app}} {
				t.Log(x.With(c.env).MustFail(c.wants, cmd...))
			}
		})
	}
	// Valid hosts, ports, IPv6 and CIDR ranges are accepted.
	x.MustRun("inspect", "--insecure-registry", "reg.local:5000", "--insecure-registry", "[::1]:5000", "--insecure-registry", "::1",
		"--insecure-registry", "10.0.0.0/8", "--insecure-registry", "https://reg.example/", app)
	e.assertEmpty(t)
}

func TestBadInputCreate(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	x := newImgx(t)
	app, multi := e.ref("test/app:1"), e.ref("test/multi:v1")
	target := e.ref("test/target:1")
	dgst := e.app.Manifest.Desc.Digest.String()
	forms := "valid forms: KEY=VALUE, index:KEY=VALUE"
	descForm := `want {"mediaType":"...","digest":"sha256:...","size":N}`
	create := func(args ...string) []string {
		return append([]string{"create", "--progress", "quiet", "-t", target}, args...)
	}
	e.run(t, x, []badInputCase{
		{"no-sources", []string{"create", "--dry-run"}, []string{"no sources specified", "name images to combine"}},
		{"no-tag", []string{"create", app}, []string{"no --tag given", "or use --dry-run"}},
		{"tag-uppercase", []string{"create", "-t", e.ref("Test/x:1"), app}, []string{`invalid tag "` + e.ref("Test/x:1") + `"`, "must be lowercase"}},
		{"tag-chars", []string{"create", "-t", e.ref("test/x:bad^"), app}, []string{`invalid tag "` + e.ref("test/x:bad^") + `"`, `tag "bad^" may hold`}},
		{"annotation-no-key", create("--annotation", "=v", app), []string{`invalid annotation "=v"`, "key must be non-empty", forms}},
		{"annotation-no-value", create("--annotation", "index:", app), []string{`invalid annotation "index:"`, "expected KEY=VALUE", forms}},
		{"annotation-bad-platform", create("--annotation", "manifest-descriptor[bad]:k=v", app), []string{`platform "bad" must be OS/ARCH[/VARIANT]`, forms}},
		{"annotation-manifest", create("--annotation", "manifest:k=v", app), []string{`invalid annotation "manifest:k=v"`, `use "index:" or "manifest-descriptor:"`}},
		{"descriptor-missing-fields", create(`{"digest":"` + dgst + `"}`), []string{`descriptor {"digest":"` + dgst + `"}: missing mediaType, size`, descForm}},
		{"descriptor-bad-json", create(`{"digest":`), []string{`descriptor {"digest": is not valid JSON`, descForm}},
		{"bare-digest-no-repo", []string{"create", "--dry-run", dgst}, []string{"no repository specified", `"` + dgst + `"`, "name a repository with --tag"}},
		{"bare-digest-two-repos", []string{"create", "--dry-run", "-t", e.ref("test/a:1"), "-t", e.ref("test/b:1"), dgst},
			[]string{"multiple repositories specified", "among " + e.ref("test/a") + ", " + e.ref("test/b"), "write it as REPOSITORY@DIGEST"}},
		{"bare-digest-unknown", create(e.unknown), []string{e.ref("test/target") + "@" + e.unknown, "manifest not found in repository " + e.ref("test/target")}},
		{"max-concurrency", create("--max-concurrency", "0", app), []string{"invalid --max-concurrency 0", "want 1 or more"}},
		{"progress", []string{"create", "--progress", "bogus", "-t", target, app}, []string{`unknown progress mode "bogus"`, "auto, tty, plain, rawjson, quiet"}},
		{"platform-all", create("--platform", "all", multi), []string{`invalid --platform "all"`, "OS/ARCH[/VARIANT]"}},
		{"platform-bad", create("--platform", "linux/amd64/v8/x", multi), []string{`invalid --platform "linux/amd64/v8/x"`, "want OS/ARCH[/VARIANT]"}},
		{"platform-variant-huge", create("--platform", "linux/arm/v99999999999", multi), []string{`invalid --platform "linux/arm/v99999999999"`, "arm has no variant v99999999999 (the highest is v8)"}},
		{"platform-single-mismatch", create("--platform", "linux/arm64", app), []string{"no manifest matches the requested platforms", "linux/arm64"}},
		{"append-no-tag", []string{"create", "--append", "--dry-run", app}, []string{"--append needs a --tag"}},
		{"oci-no-index", create("--oci", "--prefer-index=false", app), []string{"--oci asks for an index", "--prefer-index=false", "drop one of them"}},
		{"metadata-missing-folder", create("--metadata-file", filepath.Join(e.dir, "nodir", "m.json"), app),
			[]string{"--metadata-file " + filepath.Join(e.dir, "nodir", "m.json"), "folder " + filepath.Join(e.dir, "nodir") + " does not exist"}},
	})
	e.run(t, x, []badInputCase{
		{"source-file-missing", []string{"create", "--dry-run", "-f", filepath.Join(e.dir, "missing")}, []string{"read sources from " + filepath.Join(e.dir, "missing"), "no such file"}},
		{"layout-target-is-file", []string{"create", "--progress", "quiet", "-t", "oci-layout://" + e.file, app}, []string{"OCI layout " + e.file + ": exists and is not a folder"}},
	})
	// Nothing was pushed to the target: no tag moved, no file written.
	if tags, err := fixture.Tags(context.Background(), e.reg.AdminHost, "test/target"); err == nil && len(tags) > 0 {
		t.Errorf("failed creates tagged test/target: %v", tags)
	}
	if dt, err := os.ReadFile(e.file); err != nil || string(dt) != "not a layout" {
		t.Errorf("the file named as a layout target changed: %q, %v", dt, err)
	}
	e.assertEmpty(t)
}

func TestBadInputExport(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	x := newImgx(t)
	app, multi := e.ref("test/app:1"), e.ref("test/multi:v1")
	out := filepath.Join(e.dir, "out.tar")
	export := func(args ...string) []string {
		return append([]string{"export", "--progress", "quiet", "-o", out}, args...)
	}
	nodir := filepath.Join(e.dir, "nodir")
	e.run(t, x, []badInputCase{
		{"output-missing-folder", []string{"export", "-o", filepath.Join(nodir, "out.tar"), app}, []string{"-o " + filepath.Join(nodir, "out.tar"), "folder " + nodir + " does not exist", "create it first"}},
		{"layout-output-tag", []string{"export", "-o", "oci-layout://" + filepath.Join(e.dir, "lay") + ":v1", app}, []string{`invalid output "oci-layout://` + filepath.Join(e.dir, "lay") + `:v1"`, "want oci-layout://DIR, without :TAG or @DIGEST"}},
		{"layout-output-digest", []string{"export", "-o", "oci-layout://" + filepath.Join(e.dir, "lay") + "@" + e.unknown, app}, []string{"want oci-layout://DIR, without :TAG or @DIGEST"}},
		{"layout-output-empty", []string{"export", "-o", "oci-layout://", app}, []string{`invalid output "oci-layout://"`}},
		{"layout-output-file", []string{"export", "--progress", "quiet", "-o", "oci-layout://" + e.file, app}, []string{"OCI layout " + e.file + ": exists and is not a folder"}},
		{"name-count", export("--name", "a:1", "--name", "b:1", app), []string{"2 --name for 1 images", "one --name per IMAGE"}},
		{"name-invalid", export("--name", "Bad Name", app), []string{`invalid --name "Bad Name"`, "want NAME[:TAG]"}},
		{"name-digest", export("--name", "a@"+e.unknown, app), []string{`invalid --name "a@` + e.unknown + `"`, "a name has a tag, not a digest"}},
		{"max-concurrency", export("--max-concurrency", "0", app), []string{"invalid --max-concurrency 0", "want 1 or more"}},
		{"progress", []string{"export", "--progress", "bogus", "-o", out, app}, []string{`unknown progress mode "bogus"`}},
		{"format", export("--format", "tar", app), []string{`invalid --format "tar"`, "want docker or oci"}},
		{"platform-bad", export("--platform", "linux/", app), []string{`invalid --platform "linux/"`, "want OS/ARCH[/VARIANT]"}},
		{"platform-variant-huge", export("--platform", "linux/amd64/v6888888864", multi), []string{`invalid --platform "linux/amd64/v6888888864"`, "the highest is v4"}},
		{"platform-absent", export("--platform", "foo/bar", multi), []string{multi, "no image for platform foo/bar", "available: linux/amd64, linux/arm64/v8, linux/arm/v7"}},
		{"platform-single-image", export("--platform", "linux/arm64", app), []string{app, "a single linux/amd64 image, not linux/arm64", "drop --platform"}},
		{"no-args", []string{"export"}, []string{`"docker-imgx export" takes at least 1 argument(s) (IMAGE [IMAGE...]), got none`}},
		{"load-output", []string{"export", "--load", "-o", out, app}, []string{"--load and --output are exclusive"}},
		{"load-format", []string{"export", "--load", "--format", "oci", app}, []string{"--load with --format oci", "the Docker engine loads the docker format"}},
		{"load-platform-bad", []string{"export", "--load", "--platform", "linux/amd64/v8/x", app}, []string{`invalid --platform "linux/amd64/v8/x"`}},
		{"load-platform-variant-huge", []string{"export", "--load", "--platform", "linux/amd64/v6888888864", app}, []string{`invalid --platform "linux/amd64/v6888888864"`, "the highest is v4"}},
		{"load-max-concurrency", []string{"export", "--load", "--max-concurrency", "0", app}, []string{"invalid --max-concurrency 0"}},
		{"load-via-bad", []string{"export", "--load", "--load-via", "fast", app}, []string{`invalid --load-via "fast"`, "want auto, pull, stream"}},
	})
	e.assertEmpty(t)
}
