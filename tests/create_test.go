package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// twoImages are single-platform OCI images with distinct layers.
func twoImages() (amd, arm fixture.Image) {
	amd = fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 11})
	arm = fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Layers: 1, Seed: 12})
	return amd, arm
}

// wantIndex is the index create writes for images, as buildx serialises it
// (two-space indent, no trailing newline), written out from fixture digests.
func wantIndex(mediaType string, children []ocispec.Descriptor, annotations map[string]string) []byte {
	var b strings.Builder
	b.WriteString("{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"" + mediaType + "\",\n  \"manifests\": [\n")
	for i, c := range children {
		fmt.Fprintf(&b, "    {\n      \"mediaType\": %q,\n      \"digest\": %q,\n      \"size\": %d", c.MediaType, c.Digest, c.Size)
		if len(c.Annotations) > 0 {
			keys := make([]string, 0, len(c.Annotations))
			for k := range c.Annotations {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			b.WriteString(",\n      \"annotations\": {\n")
			for j, k := range keys {
				fmt.Fprintf(&b, "        %q: %q", k, c.Annotations[k])
				if j < len(keys)-1 {
					b.WriteString(",")
				}
				b.WriteString("\n")
			}
			b.WriteString("      }")
		}
		if c.Platform != nil {
			fmt.Fprintf(&b, ",\n      \"platform\": {\n        \"architecture\": %q,\n        \"os\": %q", c.Platform.Architecture, c.Platform.OS)
			if c.Platform.Variant != "" {
				fmt.Fprintf(&b, ",\n        \"variant\": %q", c.Platform.Variant)
			}
			b.WriteString("\n      }")
		}
		b.WriteString("\n    }")
		if i < len(children)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("  ]")
	if len(annotations) > 0 {
		keys := make([]string, 0, len(annotations))
		for k := range annotations {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(",\n  \"annotations\": {\n")
		for j, k := range keys {
			fmt.Fprintf(&b, "    %q: %q", k, annotations[k])
			if j < len(keys)-1 {
				b.WriteString(",")
			}
			b.WriteString("\n")
		}
		b.WriteString("  }")
	}
	b.WriteString("\n}")
	return []byte(b.String())
}

// fetchTag returns the bytes a tag points at, or "" when it does not exist.
func fetchTag(t *testing.T, reg *registrytest.Registry, repo, tag string) string {
	t.Helper()
	dt, _, err := fixture.Fetch(context.Background(), reg.AdminHost, repo, tag)
	if err != nil {
		if strings.Contains(err.Error(), "status 404") {
			return ""
		}
		t.Fatal(err)
	}
	return string(dt)
}

func mustDigestLine(t *testing.T, res result) digest.Digest {
	t.Helper()
	d, err := digest.Parse(strings.TrimSuffix(res.Stdout, "\n"))
	if err != nil || res.Stdout != d.String()+"\n" {
		t.Fatalf("stdout is not one digest line: %q", res.Stdout)
	}
	return d
}

// requestSummary lists the logged requests, for failure messages.
func requestSummary(reg *registrytest.Registry) string {
	var b strings.Builder
	for _, r := range reg.Requests() {
		fmt.Fprintf(&b, "  %s %s?%s -> %d\n", r.Method, r.Path, r.RawQuery, r.Status)
	}
	return b.String()
}

// requestLines are reg's requests as "METHOD PATH[?QUERY]", sorted.
func requestLines(reg *registrytest.Registry) []string {
	var out []string
	for _, r := range reg.Requests() {
		line := r.Method + " " + r.Path
		if r.RawQuery != "" {
			line += "?" + r.RawQuery
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

func assertRequests(t *testing.T, reg *registrytest.Registry, want int) {
	t.Helper()
	if got := len(reg.Requests()); got != want {
		t.Errorf("%s: %d requests, want %d:\n%s", reg.Host, got, want, requestSummary(reg))
	}
}

// assertBlobsIn checks every blob of the images is readable in repo.
func assertBlobsIn(t *testing.T, reg *registrytest.Registry, repo string, imgs ...fixture.Image) {
	t.Helper()
	for _, img := range imgs {
		for _, b := range img.Blobs() {
			if fixture.IsManifest(b.Desc.MediaType) {
				if _, _, err := fixture.Fetch(context.Background(), reg.AdminHost, repo, b.Desc.Digest.String()); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := fixture.FetchBlob(context.Background(), reg.AdminHost, repo, b.Desc.Digest); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestCreateTwoImages(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	pushImage(t, reg, "test/app", "arm64", arm)
	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}, nil)
	x := newImgx(t)
	srcs := []string{reg.Host + "/test/app:amd64", reg.Host + "/test/app:arm64"}

	t.Run("same repository", func(t *testing.T) {
		reg.ResetRequests()
		res := x.MustRun(append([]string{"create", "--progress", "quiet", "-t", reg.Host + "/test/app:multi"}, srcs...)...)
		if d := mustDigestLine(t, res); d != digest.FromBytes(want) {
			t.Fatalf("digest %s, want %s", d, digest.FromBytes(want))
		}
		if got := fetchTag(t, reg, "test/app", "multi"); got != string(want) {
			t.Fatalf("index:\n%s\nwant:\n%s", got, want)
		}
		// 2 manifest GETs by tag, 2 config GETs (a tag gives no platform),
		// 1 GET of the tag before it moves, 1 index PUT to the tag: nothing
		// is copied within a repository.
		assertRequests(t, reg, 6)
	})
	t.Run("new repository mounts", func(t *testing.T) {
		reg.ResetRequests()
		res := x.MustRun(append([]string{"create", "--progress", "quiet", "-t", reg.Host + "/test/other:multi"}, srcs...)...)
		mustDigestLine(t, res)
		if got := fetchTag(t, reg, "test/other", "multi"); got != string(want) {
			t.Fatalf("index:\n%s\nwant:\n%s", got, want)
		}
		mounts := 0
		for _, r := range reg.Requests() {
			if r.Method == http.MethodPost && strings.Contains(r.RawQuery, "mount=") {
				if r.Status != http.StatusCreated || !strings.Contains(r.RawQuery, "from=test%2Fapp") {
					t.Errorf("mount %s?%s answered %d", r.Path, r.RawQuery, r.Status)
				}
				mounts++
			}
		}
		if mounts != 4 {
			t.Errorf("%d mounts, want 4 (2 configs, 2 layers):\n%s", mounts, requestSummary(reg))
		}
		if n := reg.Count(http.MethodPatch, "/blobs/") + reg.Count(http.MethodPut, "/blobs/"); n != 0 {
			t.Errorf("%d blob uploads, want none:\n%s", n, requestSummary(reg))
		}
		assertBlobsIn(t, reg, "test/other", amd, arm)
		// 2 manifest GETs, 2 config GETs, 4 mounts, 2 child manifest PUTs, 1 tag PUT,
		// and the referrers discovery: 1 referrers API probe, and per image
		// its 3 cosign tags and its fallback tag by name (404s);
		// 1 GET of the tag before it moves.
		assertRequests(t, reg, 11+1+2*4+1)
	})
	t.Run("second registry streams", func(t *testing.T) {
		reg2 := registrytest.Start(t, registrytest.Options{})
		reg.ResetRequests()
		res := x.MustRun(append([]string{"create", "--progress", "quiet", "-t", reg2.Host + "/copy/app:multi"}, srcs...)...)
		mustDigestLine(t, res)
		if got := fetchTag(t, reg2, "copy/app", "multi"); got != string(want) {
			t.Fatalf("index:\n%s\nwant:\n%s", got, want)
		}
		assertBlobsIn(t, reg2, "copy/app", amd, arm)
		// Source: 2 manifest GETs, 2 config GETs, 2 layer GETs (configs are
		// uploaded from memory). Target: per layer HEAD, POST, PUT; per
		// config (in memory, no HEAD) a single POST that distribution answers
		// with a session, then PUT; 2 child manifest PUTs, 1 tag GET and PUT.
		// The source also answers the referrers discovery (probe, 2*4 tags).
		assertRequests(t, reg, 6+1+2*4)
		assertRequests(t, reg2, 14)
	})
	t.Run("second registry, two repositories", func(t *testing.T) {
		reg2 := registrytest.Start(t, registrytest.Options{})
		reg.ResetRequests()
		res := x.MustRun(append([]string{"create", "--progress", "quiet", "-t", reg2.Host + "/copy/one:multi", "-t", reg2.Host + "/copy/two:multi"}, srcs...)...)
		mustDigestLine(t, res)
		for _, repo := range []string{"copy/one", "copy/two"} {
			if got := fetchTag(t, reg2, repo, "multi"); got != string(want) {
				t.Fatalf("%s index:\n%s\nwant:\n%s", repo, got, want)
			}
			assertBlobsIn(t, reg2, repo, amd, arm)
		}
		// Each blob travels once: uploaded to copy/one, mounted from there
		// into copy/two.
		mounts := 0
		for _, r := range reg2.Requests() {
			switch {
			case r.Method == http.MethodPost && strings.Contains(r.RawQuery, "mount="):
				if !strings.HasPrefix(r.Path, "/v2/copy/two/") || !strings.Contains(r.RawQuery, "from=copy%2Fone") || r.Status != http.StatusCreated {
					t.Errorf("mount %s?%s answered %d, want copy/two from copy/one, 201", r.Path, r.RawQuery, r.Status)
				}
				mounts++
			case (r.Method == http.MethodPut || r.Method == http.MethodPatch) && strings.Contains(r.Path, "/blobs/uploads/"):
				if !strings.HasPrefix(r.Path, "/v2/copy/one/") {
					t.Errorf("blob upload %s %s, want uploads into copy/one only", r.Method, r.Path)
				}
			}
		}
		if mounts != 4 {
			t.Errorf("%d mounts, want 4 (2 configs, 2 layers):\n%s", mounts, requestSummary(reg2))
		}
		// Source as above; layers are read once.
		assertRequests(t, reg, 6+1+2*4)
		// copy/one: 2 layers by HEAD, POST, PUT; 2 configs by POST, PUT; 2
		// child manifests; the index by digest (two repositories). copy/two:
		// 4 mounts, 2 child manifests, the index by digest. Then 2 tag GETs
		// (where each pointed) and 2 tag PUTs.
		assertRequests(t, reg2, (6+4+2+1)+(4+2+1)+2+2)
	})
}

// TestCreateReleaseTags is scripted release tagging: one index, three tags,
// its digest kept.
func TestCreateReleaseTags(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	reg2 := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	pushIndex(t, reg, "test/rel", "", idx)
	x := newImgx(t)
	src := reg.Host + "/test/rel@" + idx.Index.Desc.Digest.String()

	t.Run("same repository", func(t *testing.T) {
		reg.ResetRequests()
		res := x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/rel:1.2.3", "-t", reg.Host+"/test/rel:1.2", "-t", reg.Host+"/test/rel", src)
		if d := mustDigestLine(t, res); d != idx.Index.Desc.Digest {
			t.Fatalf("digest %s, want the source's %s", d, idx.Index.Desc.Digest)
		}
		for _, tag := range []string{"1.2.3", "1.2", "latest"} {
			if got := fetchTag(t, reg, "test/rel", tag); got != string(idx.Index.Data) {
				t.Fatalf("tag %s: not the source bytes:\n%s", tag, got)
			}
		}
		// One GET by digest; one GET (where it pointed) and one PUT per tag.
		assertRequests(t, reg, 7)
	})
	t.Run("across repositories and registries", func(t *testing.T) {
		reg.ResetRequests()
		res := x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/rel-a:1", "-t", reg.Host+"/test/rel-b:1",
			"-t", reg2.Host+"/mirror/rel:1", "-t", reg2.Host+"/mirror/rel:latest", src)
		if d := mustDigestLine(t, res); d != idx.Index.Desc.Digest {
			t.Fatalf("digest %s, want %s", d, idx.Index.Desc.Digest)
		}
		for _, c := range []struct {
			reg       *registrytest.Registry
			repo, tag string
		}{{reg, "test/rel-a", "1"}, {reg, "test/rel-b", "1"}, {reg2, "mirror/rel", "1"}, {reg2, "mirror/rel", "latest"}} {
			if got := fetchTag(t, c.reg, c.repo, c.tag); got != string(idx.Index.Data) {
				t.Fatalf("%s:%s: not the source bytes", c.repo, c.tag)
			}
			assertBlobsIn(t, c.reg, c.repo, append(idx.Images, idx.Attestations...)...)
		}
		if n := reg.Count(http.MethodPut, "/blobs/"); n != 0 {
			t.Errorf("%d blob uploads in the source registry, want mounts only", n)
		}
	})
}

func TestCreatePreferIndex(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, _ := twoImages()
	pushImage(t, reg, "test/one", "amd64", amd)
	x := newImgx(t)
	src := reg.Host + "/test/one:amd64"

	res := x.MustRun("create", "--progress", "quiet", "--prefer-index=false", "-t", reg.Host+"/test/one:retag", src)
	if d := mustDigestLine(t, res); d != amd.Manifest.Desc.Digest {
		t.Fatalf("retag digest %s, want the manifest's %s", d, amd.Manifest.Desc.Digest)
	}
	if got := fetchTag(t, reg, "test/one", "retag"); got != string(amd.Manifest.Data) {
		t.Fatal("retag is not the manifest")
	}
	// Into another repository: the manifest's blobs come first.
	x.MustRun("create", "--progress", "quiet", "--prefer-index=false", "-t", reg.Host+"/test/one-copy:retag", src)
	assertBlobsIn(t, reg, "test/one-copy", amd)

	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc}, nil)
	res = x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/one:wrapped", src)
	if d := mustDigestLine(t, res); d != digest.FromBytes(want) {
		t.Fatalf("wrapped digest %s, want %s", d, digest.FromBytes(want))
	}
}

func TestCreateSourceKinds(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	pushImage(t, reg, "test/kinds", "amd64", amd)
	pushImage(t, reg, "test/kinds", "", arm)
	x := newImgx(t)
	target := reg.Host + "/test/kinds:out"

	t.Run("bare digest and descriptor", func(t *testing.T) {
		armDesc := ocispec.Descriptor{MediaType: arm.Manifest.Desc.MediaType, Digest: arm.Manifest.Desc.Digest, Size: arm.Manifest.Desc.Size,
			Platform:    &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
			Annotations: map[string]string{"org.opencontainers.image.title": "arm"}}
		js, err := json.Marshal(armDesc)
		if err != nil {
			t.Fatal(err)
		}
		reg.ResetRequests()
		res := x.MustRun("create", "--progress", "quiet", "-t", target, amd.Manifest.Desc.Digest.String(), string(js))
		want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, armDesc}, nil)
		if d := mustDigestLine(t, res); d != digest.FromBytes(want) {
			t.Fatalf("digest %s, want %s\n%s", d, digest.FromBytes(want), fetchTag(t, reg, "test/kinds", "out"))
		}
		// The descriptor's platform is used: only the digest source's config is read.
		if n := reg.Count(http.MethodGet, "/blobs/"); n != 1 {
			t.Errorf("%d blob GETs, want 1 (one config):\n%s", n, requestSummary(reg))
		}
	})
	t.Run("file", func(t *testing.T) {
		list := filepath.Join(t.TempDir(), "sources.txt")
		if err := os.WriteFile(list, []byte("# per-arch builds\n"+reg.Host+"/test/kinds:amd64\n\n"+reg.Host+"/test/kinds@"+arm.Manifest.Desc.Digest.String()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		res := x.MustRun("create", "--progress", "quiet", "-t", target, "-f", list)
		want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}, nil)
		if d := mustDigestLine(t, res); d != digest.FromBytes(want) {
			t.Fatalf("digest %s, want %s", d, digest.FromBytes(want))
		}
	})
	t.Run("errors", func(t *testing.T) {
		bad := ocispec.Descriptor{MediaType: arm.Manifest.Desc.MediaType, Digest: arm.Manifest.Desc.Digest, Size: arm.Manifest.Desc.Size + 1}
		js, _ := json.Marshal(bad)
		x.MustFail([]string{"descriptor mismatch", "size"}, "create", "--progress", "quiet", "-t", target, string(js))
		x.MustFail([]string{"multiple repositories specified", "cannot infer repository"}, "create", "--progress", "quiet",
			"-t", target, "-t", reg.Host+"/test/elsewhere:x", amd.Manifest.Desc.Digest.String())
		x.MustFail([]string{"no repository specified"}, "create", "--dry-run", amd.Manifest.Desc.Digest.String())
		x.MustFail([]string{"invalid source"}, "create", "-t", target, "not a ref!")
		x.MustFail([]string{"no sources specified"}, "create", "-t", target)
		x.MustFail([]string{"invalid tag", "digest"}, "create", "-t", target+"@"+amd.Manifest.Desc.Digest.String(), reg.Host+"/test/kinds:amd64")
		x.MustFail([]string{"invalid --platform"}, "create", "-p", "linux/", "-t", target, reg.Host+"/test/kinds:amd64")
		x.MustFail([]string{"invalid annotation"}, "create", "--annotation", "manifest:a=b", "-t", target, reg.Host+"/test/kinds:amd64")
		x.MustFail([]string{"unknown progress mode"}, "create", "--progress", "fancy", "-t", target, reg.Host+"/test/kinds:amd64")
		x.MustFail([]string{"--max-concurrency"}, "create", "--max-concurrency", "0", "-t", target, reg.Host+"/test/kinds:amd64")
		x.MustFail([]string{"test/kinds:nope", "not found"}, "create", "--progress", "quiet", "-t", target, reg.Host+"/test/kinds:nope")
		x.MustFail([]string{"read sources from"}, "create", "-t", target, "-f", filepath.Join(t.TempDir(), "missing"))
	})
}

func TestCreateLayout(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	src := t.TempDir()
	if err := fixture.WriteLayout(src, map[string]fixture.Blob{"amd64": amd.Manifest, "arm64": arm.Manifest}, append(amd.Blobs(), arm.Blobs()...)...); err != nil {
		t.Fatal(err)
	}
	x := newImgx(t)
	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}, nil)

	t.Run("layout to registry", func(t *testing.T) {
		res := x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/fromlayout:v1",
			"oci-layout://"+src+":amd64", "oci-layout://"+src+"@"+arm.Manifest.Desc.Digest.String())
		if d := mustDigestLine(t, res); d != digest.FromBytes(want) {
			t.Fatalf("digest %s, want %s", d, digest.FromBytes(want))
		}
		if got := fetchTag(t, reg, "test/fromlayout", "v1"); got != string(want) {
			t.Fatalf("index:\n%s", got)
		}
		assertBlobsIn(t, reg, "test/fromlayout", amd, arm)
	})
	t.Run("registry to layout", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "out")
		res := x.MustRun("create", "--progress", "quiet", "-t", "oci-layout://"+dst+":v1", "-t", "oci-layout://"+dst+":latest", reg.Host+"/test/fromlayout:v1")
		if d := mustDigestLine(t, res); d != digest.FromBytes(want) {
			t.Fatalf("digest %s, want %s", d, digest.FromBytes(want))
		}
		var idx ocispec.Index
		dt, err := os.ReadFile(filepath.Join(dst, "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(dt, &idx); err != nil {
			t.Fatal(err)
		}
		var tags []string
		for _, m := range idx.Manifests {
			if m.Digest != digest.FromBytes(want) {
				t.Errorf("index.json entry %s is not the result", m.Digest)
			}
			tags = append(tags, m.Annotations[ocispec.AnnotationRefName])
		}
		sort.Strings(tags)
		if strings.Join(tags, ",") != "latest,v1" {
			t.Errorf("layout tags %v, want latest and v1", tags)
		}
		for _, b := range append(append(amd.Blobs(), arm.Blobs()...), fixture.NewBlob(ocispec.MediaTypeImageIndex, want)) {
			got, err := os.ReadFile(filepath.Join(dst, "blobs", "sha256", b.Desc.Digest.Encoded()))
			if err != nil || digest.FromBytes(got) != b.Desc.Digest {
				t.Fatalf("layout blob %s: %v", b.Desc.Digest, err)
			}
		}
	})
}

func TestCreateTLSAndAuth(t *testing.T) {
	t.Parallel()
	for _, mode := range []registrytest.AuthMode{registrytest.AuthBasic, registrytest.AuthToken} {
		t.Run(mode.String(), func(t *testing.T) {
			reg := registrytest.Start(t, registrytest.Options{TLS: true, Auth: mode})
			amd, arm := twoImages()
			pushImage(t, reg, "test/private", "amd64", amd)
			pushImage(t, reg, "test/private", "arm64", arm)
			x := newImgx(t)
			if err := reg.WriteCertsDir(x.CertsDir()); err != nil {
				t.Fatal(err)
			}
			cfg := `{"auths":{"` + reg.Host + `":{"auth":"` + reg.DockerConfigAuth() + `"}}}`
			if err := os.WriteFile(filepath.Join(x.DockerConfig, "config.json"), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			reg.ResetRequests()
			res := x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/private-multi:v1", reg.Host+"/test/private:amd64", reg.Host+"/test/private:arm64")
			want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}, nil)
			if d := mustDigestLine(t, res); d != digest.FromBytes(want) {
				t.Fatalf("digest %s, want %s", d, digest.FromBytes(want))
			}
			assertBlobsIn(t, reg, "test/private-multi", amd, arm)
			if n := reg.Count(http.MethodPut, "/blobs/"); n != 0 {
				t.Errorf("%d blob uploads, want mounts:\n%s", n, requestSummary(reg))
			}
			// Without credentials: a clear refusal.
			y := newImgx(t)
			if err := reg.WriteCertsDir(y.CertsDir()); err != nil {
				t.Fatal(err)
			}
			y.MustFail([]string{"test/private:amd64", "authoriz"}, "create", "--progress", "quiet", "-t", reg.Host+"/test/x:v1", reg.Host+"/test/private:amd64")
		})
	}
}

func TestCreateAppend(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	pushImage(t, reg, "test/app", "arm64", arm)
	x := newImgx(t)
	target := reg.Host + "/test/appended:latest"

	res := x.MustRun("create", "--append", "--progress", "plain", "-t", target, reg.Host+"/test/app:amd64")
	if !strings.Contains(res.Stderr, target+" does not exist yet: creating it") {
		t.Fatalf("no notice of the new tag:\n%s", res.Stderr)
	}
	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc}, nil)
	if got := fetchTag(t, reg, "test/appended", "latest"); got != string(want) {
		t.Fatalf("new tag:\n%s", got)
	}
	x.MustRun("create", "--append", "--progress", "quiet", "-t", target, reg.Host+"/test/app:arm64")
	want = wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}, nil)
	if got := fetchTag(t, reg, "test/appended", "latest"); got != string(want) {
		t.Fatalf("appended:\n%s", got)
	}

	t.Run("replace a platform", func(t *testing.T) {
		idx := multiIndex()
		pushIndex(t, reg, "test/rep", "latest", idx)
		newArm := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64/v8", Layers: 1, Seed: 99})
		pushImage(t, reg, "test/rep", "newarm", newArm)
		res := x.MustRun("create", "--append", "--progress", "plain", "-t", reg.Host+"/test/rep:latest", reg.Host+"/test/rep:newarm")
		var old ocispec.Index
		if err := json.Unmarshal(idx.Index.Data, &old); err != nil {
			t.Fatal(err)
		}
		oldArm, oldAtt := idx.Images[1].Manifest.Desc.Digest, idx.Attestations[1].Manifest.Desc.Digest
		var children []ocispec.Descriptor
		for _, c := range old.Manifests {
			if c.Digest != oldArm && c.Digest != oldAtt {
				children = append(children, c)
			}
		}
		// Its platform is read from its config, normalized as buildx does.
		newArmDesc := newArm.Manifest.Desc
		newArmDesc.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64"}
		children = append(children, newArmDesc)
		want := wantIndex(ocispec.MediaTypeImageIndex, children, nil)
		if got := fetchTag(t, reg, "test/rep", "latest"); got != string(want) {
			t.Fatalf("after replacement:\n%s\nwant:\n%s", got, want)
		}
		for _, line := range []string{
			"replacing linux/arm64/v8 " + oldArm.String() + " with " + newArm.Manifest.Desc.Digest.String(),
			"dropping attestation " + oldAtt.String() + " of " + oldArm.String(),
		} {
			if !strings.Contains(res.Stderr, line) {
				t.Errorf("progress does not say %q:\n%s", line, res.Stderr)
			}
		}
	})
}

func TestCreateAnnotations(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 21, Docker: true})
	arm := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Seed: 22, Docker: true})
	pushImage(t, reg, "test/docker", "amd64", amd)
	pushImage(t, reg, "test/docker", "arm64", arm)
	x := newImgx(t)
	srcs := []string{reg.Host + "/test/docker:amd64", reg.Host + "/test/docker:arm64"}

	reg.ResetRequests()
	x.MustFail([]string{"annotations are not supported for Docker manifest lists", "--oci"},
		append([]string{"create", "--progress", "quiet", "--annotation", "index:org.opencontainers.image.title=app", "-t", reg.Host + "/test/docker:annotated"}, srcs...)...)
	if got := fetchTag(t, reg, "test/docker", "annotated"); got != "" {
		t.Fatalf("tag written despite the error:\n%s", got)
	}
	for _, r := range reg.Requests() {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			t.Errorf("%s %s sent despite the error", r.Method, r.Path)
		}
	}

	res := x.MustRun(append([]string{"create", "--progress", "quiet", "--oci",
		"--annotation", "org.opencontainers.image.title=app",
		"--annotation", "manifest-descriptor[linux/arm64]:com.example.arch=arm",
		"-t", reg.Host + "/test/docker:annotated"}, srcs...)...)
	armDesc := arm.Manifest.Desc
	armDesc.Annotations = map[string]string{"com.example.arch": "arm"}
	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, armDesc}, map[string]string{"org.opencontainers.image.title": "app"})
	if d := mustDigestLine(t, res); d != digest.FromBytes(want) {
		t.Fatalf("digest %s, want %s:\n%s", d, digest.FromBytes(want), fetchTag(t, reg, "test/docker", "annotated"))
	}
	// Without annotations, Docker children make a Docker manifest list.
	res = x.MustRun(append([]string{"create", "--dry-run"}, srcs...)...)
	if want := wantIndex(fixture.MediaTypeDockerManifestList, []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}, nil); res.Stdout != string(want)+"\n" {
		t.Fatalf("dry run:\n%s\nwant:\n%s", res.Stdout, want)
	}
}

func TestCreatePlatformDryRunMetadata(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	pushIndex(t, reg, "test/multi", "v1", idx)
	x := newImgx(t)
	src := reg.Host + "/test/multi:v1"
	var full ocispec.Index
	if err := json.Unmarshal(idx.Index.Data, &full); err != nil {
		t.Fatal(err)
	}
	arm, armAtt := full.Manifests[1], full.Manifests[4]

	reg.ResetRequests()
	res := x.MustRun("create", "--dry-run", "-p", "linux/arm64", "-t", reg.Host+"/test/multi:arm", src)
	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{arm, armAtt}, map[string]string{"org.opencontainers.image.title": "multi"})
	if res.Stdout != string(want)+"\n" {
		t.Fatalf("dry run:\n%s\nwant:\n%s", res.Stdout, want)
	}
	// A dry run reads the source and writes nothing.
	assertRequests(t, reg, 1)
	if got := fetchTag(t, reg, "test/multi", "arm"); got != "" {
		t.Fatal("dry run wrote the tag")
	}

	// A platform no source has: the line names the platforms there are.
	line := x.MustFail(nil, "create", "--progress", "quiet", "-p", "windows/amd64", "-t", reg.Host+"/test/multi:win", src)
	if want := "ERROR: no manifest matches the requested platforms: windows/amd64 (the sources have: linux/amd64, linux/arm/v7, linux/arm64/v8)"; line != want {
		t.Errorf("got  %q\nwant %q", line, want)
	}
	pushImage(t, reg, "test/s390x", "1", fixture.NewImage(fixture.ImageOptions{Platform: "linux/s390x", Seed: 5}))
	line = x.MustFail(nil, "create", "--dry-run", "-p", "windows/amd64,linux/riscv64", src, reg.Host+"/test/s390x:1")
	if want := "ERROR: no manifest matches the requested platforms: windows/amd64, linux/riscv64 (the sources have: linux/amd64, linux/arm/v7, linux/arm64/v8, linux/s390x)"; line != want {
		t.Errorf("got  %q\nwant %q", line, want)
	}

	meta := filepath.Join(t.TempDir(), "meta.json")
	res = x.MustRun("create", "--progress", "quiet", "--metadata-file", meta, "-p", "linux/amd64,linux/arm64",
		"-t", reg.Host+"/test/multi:two", "-t", reg.Host+"/test/multi2:two", src)
	d := mustDigestLine(t, res)
	dt, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Desc ocispec.Descriptor `json:"containerimage.descriptor"`
		Name string             `json:"image.name"`
		Tags []string           `json:"image.tags"`
	}
	if err := json.Unmarshal(dt, &got); err != nil {
		t.Fatal(err)
	}
	body := fetchTag(t, reg, "test/multi2", "two")
	wantDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: d, Size: int64(len(body))}
	if got.Desc.MediaType != wantDesc.MediaType || got.Desc.Digest != wantDesc.Digest || got.Desc.Size != wantDesc.Size {
		t.Errorf("metadata descriptor %+v, want %+v", got.Desc, wantDesc)
	}
	if want := reg.Host + "/test/multi," + reg.Host + "/test/multi2"; got.Name != want {
		t.Errorf("image.name %q, want %q", got.Name, want)
	}
	if want := []string{reg.Host + "/test/multi:two", reg.Host + "/test/multi2:two"}; strings.Join(got.Tags, " ") != strings.Join(want, " ") {
		t.Errorf("image.tags %v, want %v", got.Tags, want)
	}
}

func TestCreatePlainProgress(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, _ := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	x := newImgx(t)
	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc}, nil)
	var m ocispec.Manifest
	if err := json.Unmarshal(amd.Manifest.Data, &m); err != nil {
		t.Fatal(err)
	}
	// One transfer at a time keeps the log lines in plan order.
	res := x.MustRun("create", "--progress", "plain", "--max-concurrency", "1", "-t", reg.Host+"/test/plain:v1", reg.Host+"/test/app:amd64")
	timing := regexp.MustCompile(`(?m)^(#\d+) \d+\.\d+ |(DONE) \d+\.\d+s`)
	got := timing.ReplaceAllString(res.Stderr, "$1$2 ")
	repo := reg.Host + "/test/plain"
	wantLog := "#1 [internal] pushing " + repo + "\n" +
		"#1 mounting " + m.Config.Digest.String() + " from " + reg.Host + "/test/app\n" +
		"#1 mounting " + m.Layers[0].Digest.String() + " from " + reg.Host + "/test/app\n" +
		"#1 copying " + amd.Manifest.Desc.Digest.String() + " from " + reg.Host + "/test/app to " + repo + "\n" +
		"#1 DONE \n\n" +
		"#2 [internal] moving tags\n" +
		"#2 pushing " + digest.FromBytes(want).String() + " to " + repo + ":v1\n" +
		"#2 DONE \n"
	if got != wantLog {
		t.Fatalf("plain progress:\n%s\nwant:\n%s", got, wantLog)
	}
}

// failingProxy serves reg through a reverse proxy that answers 500 to the
// requests fail picks, and counts them.
func failingProxy(t *testing.T, reg *registrytest.Registry, fail func(*http.Request) bool) (string, *atomic.Int32) {
	t.Helper()
	target, err := url.Parse(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var failed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail(r) {
			failed.Add(1)
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &failed
}

// TestCreateFailureMovesNoTag injects failures before the tag step: no tag
// of any target moves, in the failing registry or elsewhere.
func TestCreateFailureMovesNoTag(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	reg2 := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	pushImage(t, reg, "test/app", "arm64", arm)
	old := fixture.NewImage(fixture.ImageOptions{Seed: 31})
	pushImage(t, reg, "test/kept", "latest", old)
	srcs := []string{reg.Host + "/test/app:amd64", reg.Host + "/test/app:arm64"}

	for _, c := range []struct {
		name string
		fail func(*http.Request) bool
	}{
		{"child-manifest-put", func(r *http.Request) bool {
			return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/sha256:")
		}},
		{"blob-upload", func(r *http.Request) bool {
			return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			repo := "fail/" + c.name
			pushImage(t, reg2, repo, "latest", old)
			host, failed := failingProxy(t, reg2, c.fail)
			newImgx(t).MustFail([]string{host + "/" + repo}, append([]string{"create", "--progress", "quiet",
				"-t", reg.Host + "/test/kept:latest", "-t", reg.Host + "/test/new:v1",
				"-t", host + "/" + repo + ":latest", "-t", host + "/" + repo + ":v2"}, srcs...)...)
			if failed.Load() == 0 {
				t.Fatal("no request failed: the injection missed")
			}
			if got := fetchTag(t, reg2, repo, "latest"); got != string(old.Manifest.Data) {
				t.Errorf("%s:latest moved:\n%s", repo, got)
			}
			if got := fetchTag(t, reg2, repo, "v2"); got != "" {
				t.Errorf("%s:v2 was created", repo)
			}
			if got := fetchTag(t, reg, "test/kept", "latest"); got != string(old.Manifest.Data) {
				t.Errorf("test/kept:latest in the healthy registry moved")
			}
			if got := fetchTag(t, reg, "test/new", "v1"); got != "" {
				t.Errorf("test/new:v1 in the healthy registry was created")
			}
		})
	}
}

// TestCreateOCIFlag checks --oci: Docker children in an OCI index (the OCI
// index may list Docker manifests; a Docker manifest list may not list OCI
// ones, so without --oci the type follows the children), a Docker manifest
// list converted, an OCI index kept byte for byte.
func TestCreateOCIFlag(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 51, Docker: true})
	arm := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Seed: 52, Docker: true})
	ociArm := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Seed: 53})
	list := fixture.NewIndex([]fixture.Image{amd, arm}, true, nil)
	idx := fixture.NewIndex([]fixture.Image{ociArm, amd}, false, nil)
	pushImage(t, reg, "test/oci", "amd64", amd)
	pushImage(t, reg, "test/oci", "arm64", arm)
	pushImage(t, reg, "test/oci", "oci-arm64", ociArm)
	pushIndex(t, reg, "test/oci", "list", list)
	pushIndex(t, reg, "test/oci", "index", idx)
	x := newImgx(t)
	ref := func(tag string) string { return reg.Host + "/test/oci:" + tag }
	dryRun := func(args ...string) string {
		t.Helper()
		return strings.TrimSuffix(x.MustRun(append([]string{"create", "--dry-run"}, args...)...).Stdout, "\n")
	}
	dockerPair := []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}

	if got, want := dryRun("--oci", ref("amd64"), ref("arm64")), string(wantIndex(ocispec.MediaTypeImageIndex, dockerPair, nil)); got != want {
		t.Errorf("--oci with Docker children:\n%s\nwant:\n%s", got, want)
	}
	if got, want := dryRun(ref("amd64"), ref("arm64")), string(wantIndex(fixture.MediaTypeDockerManifestList, dockerPair, nil)); got != want {
		t.Errorf("Docker children without --oci:\n%s\nwant:\n%s", got, want)
	}
	// One Docker child with an OCI one: an OCI index, with or without --oci.
	mixed := string(wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, ociArm.Manifest.Desc}, nil))
	for _, args := range [][]string{{ref("amd64"), ref("oci-arm64")}, {"--oci", ref("amd64"), ref("oci-arm64")}} {
		if got := dryRun(args...); got != mixed {
			t.Errorf("%v:\n%s\nwant:\n%s", args, got, mixed)
		}
	}
	// A Docker manifest list alone is passed as is, or converted with --oci.
	if got := dryRun(ref("list")); got != string(list.Index.Data) {
		t.Errorf("manifest list alone:\n%s\nwant it as is:\n%s", got, list.Index.Data)
	}
	if got, want := dryRun("--oci", ref("list")), string(wantIndex(ocispec.MediaTypeImageIndex, dockerPair, nil)); got != want {
		t.Errorf("--oci with a manifest list:\n%s\nwant:\n%s", got, want)
	}
	// An OCI index alone is already what --oci asks for.
	if got := dryRun("--oci", ref("index")); got != string(idx.Index.Data) {
		t.Errorf("--oci with an OCI index:\n%s\nwant it as is:\n%s", got, idx.Index.Data)
	}
}

// TestCreateSingleSourceHelp: create --help says that one single-platform
// source becomes an index with a new digest and names the ways to keep the
// digest (standalone and through docker), and create does what it says.
func TestCreateSingleSourceHelp(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	reg := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 91})
	pushImage(t, reg, "test/one", "1", img)
	x := newImgx(t)
	want := `
A single source that is one single-platform image becomes an index holding
it, as docker buildx imagetools create does: the tag gets a new digest, not
the image's. --prefer-index=false tags the image manifest as it is, and
docker imgx copy copies an image or index with its digest unchanged.
`
	for name, res := range map[string]result{"standalone": x.Run("create", "--help"), "docker": x.RunPlugin("create", "--help")} {
		if res.ExitCode != 0 || !strings.Contains(res.Stdout, want) {
			t.Errorf("%s: create --help (exit %d) does not say\n%s\nit says:\n%s", name, res.ExitCode, want, res.Stdout)
		}
	}
	src := reg.Host + "/test/one:1"
	wrapped := mustDigestLine(t, x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/one:index", src))
	kept := mustDigestLine(t, x.MustRun("create", "--progress", "quiet", "--prefer-index=false", "-t", reg.Host+"/test/one:same", src))
	if kept != img.Manifest.Desc.Digest || wrapped == img.Manifest.Desc.Digest {
		t.Errorf("the image is %s; as an index %s, with --prefer-index=false %s", img.Manifest.Desc.Digest, wrapped, kept)
	}
	if got := x.MustRun("inspect", "--format", "{{.Manifest.MediaType}}", reg.Host+"/test/one:index").Stdout; got != ocispec.MediaTypeImageIndex+"\n" {
		t.Errorf("the tag of one source holds %q, want an index", got)
	}
}
