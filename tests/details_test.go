package tests

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// artifactOf is an artifact manifest about img, as buildx and regctl write
// them: an image config type holding {}, one blob that is no layer tar, an
// artifactType and a subject.
func artifactOf(img fixture.Image) (manifest, config, blob fixture.Blob) {
	config = fixture.NewBlob(ocispec.MediaTypeImageConfig, []byte("{}"))
	blob = fixture.NewBlob("application/vnd.example.report+json", []byte(`{"verdict":"ok"}`))
	subject := img.Manifest.Desc
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.example.report",
		Config:       config.Desc,
		Layers:       []ocispec.Descriptor{blob.Desc},
		Subject:      &subject,
	}
	dt, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return fixture.NewBlob(ocispec.MediaTypeImageManifest, dt), config, blob
}

// TestInspectArtifact: an artifact manifest gets no config warning (its {}
// config lists no diff_ids for a blob that is no layer), neither on stderr
// nor in .Warnings, and the text view shows its artifactType and subject.
func TestInspectArtifact(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 71})
	pushImage(t, reg, "test/art", "img", img)
	manifest, config, blob := artifactOf(img)
	if err := fixture.Push(context.Background(), reg.AdminHost, "test/art", "report", config, blob, manifest); err != nil {
		t.Fatal(err)
	}
	x := newImgx(t)
	ref := reg.Host + "/test/art:report"
	res := x.MustRun("inspect", ref)
	want := "Name:         " + ref + "\n" +
		"MediaType:    " + ocispec.MediaTypeImageManifest + "\n" +
		"Digest:       " + manifest.Desc.Digest.String() + "\n" +
		"ArtifactType: application/vnd.example.report\n" +
		"Subject:      " + img.Manifest.Desc.Digest.String() + "\n" +
		"Config:       " + config.Desc.Digest.String() + "\n" +
		"Size:         " + itoa(config.Desc.Size+blob.Desc.Size) + "\n" +
		"\nLayers:\n" +
		"  Digest:    " + blob.Desc.Digest.String() + "\n" +
		"  MediaType: application/vnd.example.report+json\n" +
		"  Size:      " + itoa(blob.Desc.Size) + "\n"
	if res.Stdout != want || res.Stderr != "" {
		t.Errorf("inspect:\n%s\nwant:\n%s\nstderr:\n%s", res.Stdout, want, res.Stderr)
	}
	res = x.MustRun("inspect", "--format", "{{json .Warnings}}", ref)
	if res.Stderr != "" || strings.TrimSpace(res.Stdout) != "null" && strings.TrimSpace(res.Stdout) != "[]" {
		t.Errorf("warnings for an artifact: stdout %q stderr %q", res.Stdout, res.Stderr)
	}
}

// TestCreateAnnotationPlatformMissing: an annotation for a platform the
// result does not hold is an error, before anything is pushed.
func TestCreateAnnotationPlatformMissing(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	pushImage(t, reg, "test/ann", "amd", amd)
	pushImage(t, reg, "test/ann", "arm", arm)
	x := newImgx(t)
	src := []string{reg.Host + "/test/ann:amd", reg.Host + "/test/ann:arm"}
	reg.ResetRequests()
	x.MustFail([]string{"manifest-descriptor[linux/s390x]:k=v", "linux/s390x", "linux/amd64, linux/arm64"},
		append([]string{"create", "--progress", "quiet", "--annotation", "manifest-descriptor[linux/s390x]:k=v", "-t", reg.Host + "/test/ann:out"}, src...)...)
	for _, r := range reg.Requests() {
		if r.Method != "GET" && r.Method != "HEAD" {
			t.Errorf("a failed create sent %s %s", r.Method, r.Path)
		}
	}
	// The same annotation on a platform that is there applies.
	res := x.MustRun(append([]string{"create", "--dry-run", "--annotation", "manifest-descriptor[linux/arm64]:k=v"}, src...)...)
	if !strings.Contains(res.Stdout, `"k": "v"`) {
		t.Errorf("annotation not applied:\n%s", res.Stdout)
	}
}

// TestCreateFromSinglePlatformExport: a layout written by a single-platform
// export keeps the whole index but one platform's content. As a create
// source it fails before any tag moves, with one line naming the platforms
// it holds and -p; with -p it is pushed.
func TestCreateFromSinglePlatformExport(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	pushIndex(t, reg, "test/multi", "v1", idx)
	x := newImgx(t)
	layout := filepath.Join(t.TempDir(), "one")
	x.MustRun("export", "--progress", "quiet", "-p", "linux/arm64", "-o", "oci-layout://"+layout, reg.Host+"/test/multi:v1")
	src := "oci-layout://" + layout + "@" + idx.Index.Desc.Digest.String()
	target := reg.Host + "/test/copy:1"
	x.MustFail([]string{"incomplete source", "linux/arm64/v8 only", "not of linux/amd64, linux/arm/v7", "-p linux/arm64/v8"},
		"create", "--progress", "quiet", "-t", target, src)
	if tags, _ := fixture.Tags(context.Background(), reg.AdminHost, "test/copy"); len(tags) != 0 {
		t.Fatalf("a failed create left tags %v", tags)
	}
	res := x.MustRun("create", "--progress", "quiet", "-p", "linux/arm64", "-t", target, src)
	dgst := mustDigestLine(t, res)
	got, _, err := fixture.Fetch(context.Background(), reg.AdminHost, "test/copy", "1")
	if err != nil || digest.FromBytes(got) != dgst {
		t.Fatalf("pushed %s, tag holds %s (%v)", dgst, digest.FromBytes(got), err)
	}
}
