package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layoutEntries reads a layout's index.json as "NAME REF.NAME DIGEST"
// lines, sorted.
func layoutEntries(t *testing.T, dir string) []string {
	t.Helper()
	dt, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(dt, &idx); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range idx.Manifests {
		out = append(out, m.Annotations["io.containerd.image.name"]+" "+m.Annotations[ocispec.AnnotationRefName]+" "+m.Digest.String())
	}
	slices.Sort(out)
	return out
}

// TestCopyLayoutOfMany copies three images (an index, a Docker image by
// tag, an image by digest) from a registry into one OCI layout, each under
// its full name (io.containerd.image.name, its tag as ref.name, as export
// and containerd write them), then the layout (every image it names) under
// a prefix of another registry: every manifest and blob is the source's,
// byte for byte. A second run into the layout only reads; an image that
// fails leaves the others in the layout, and a run whose every image fails
// leaves no folder.
func TestCopyLayoutOfMany(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	app := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Layers: 2, Seed: 2411, Docker: true})
	tool := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 2412})
	pushIndex(t, src, "library/alpine", "3.20", idx)
	pushImage(t, src, "team/app", "1", app)
	pushImage(t, src, "team/tool", "x", tool)
	alpine, appRef, toolRef := src.Host+"/library/alpine:3.20", src.Host+"/team/app:1", src.Host+"/team/tool@"+tool.Manifest.Desc.Digest.String()
	dir := filepath.Join(t.TempDir(), "layout")
	x := newImgx(t)
	args := []string{"copy", "--progress", "quiet", alpine, appRef, toolRef, "oci-layout://" + dir}
	res := x.MustRun(args...)
	want := copyTable(
		[4]string{alpine, "oci-layout://" + dir + ":" + alpine, idx.Index.Desc.Digest.String(), "copied"},
		[4]string{appRef, "oci-layout://" + dir + ":" + appRef, app.Manifest.Desc.Digest.String(), "copied"},
		[4]string{toolRef, "oci-layout://" + dir + ":" + toolRef, tool.Manifest.Desc.Digest.String(), "copied"})
	if res.Stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", res.Stdout, want)
	}
	wantEntries := []string{
		alpine + " 3.20 " + idx.Index.Desc.Digest.String(),
		appRef + " 1 " + app.Manifest.Desc.Digest.String(),
		toolRef + "  " + tool.Manifest.Desc.Digest.String(),
	}
	slices.Sort(wantEntries)
	if got := layoutEntries(t, dir); !slices.Equal(got, wantEntries) {
		t.Fatalf("index.json entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantEntries, "\n"))
	}
	for _, b := range slices.Concat(idx.Blobs(), app.Blobs(), tool.Blobs()) {
		if got, err := os.ReadFile(filepath.Join(dir, blobName(b))); err != nil || string(got) != string(b.Data) {
			t.Fatalf("layout: %s differs from the source's (%v)", blobName(b), err)
		}
	}

	res = x.MustRun(args...)
	if n := strings.Count(res.Stdout, "  skipped\n"); n != 3 {
		t.Errorf("second run: %d of 3 skipped:\n%s", n, res.Stdout)
	}
	if got := layoutEntries(t, dir); !slices.Equal(got, wantEntries) {
		t.Fatalf("second run changed index.json:\n%s", strings.Join(got, "\n"))
	}

	// Out of the layout: every image it names, under a prefix.
	res = x.MustRun("copy", "--progress", "quiet", "oci-layout://"+dir, dst.Host+"/mirror")
	hostPath := "mirror/" // without --scoped, the source's host is not in the path
	if got := fetchTag(t, dst, hostPath+"library/alpine", "3.20"); got != string(idx.Index.Data) {
		t.Fatalf("mirror/library/alpine:3.20 holds\n%s", got)
	}
	if got := fetchTag(t, dst, hostPath+"team/app", "1"); got != string(app.Manifest.Data) {
		t.Fatalf("mirror/team/app:1 holds\n%s", got)
	}
	if got := fetchTag(t, dst, hostPath+"team/tool", tool.Manifest.Desc.Digest.String()); got != string(tool.Manifest.Data) {
		t.Fatalf("mirror/team/tool@%s holds\n%s", tool.Manifest.Desc.Digest, got)
	}
	assertBlobsIn(t, dst, "mirror/library/alpine", idx.Images...)
	assertBlobsIn(t, dst, "mirror/team/app", app)
	assertBlobsIn(t, dst, "mirror/team/tool", tool)
	// Sorted by name, as a tar's images are.
	want = copyTable(
		[4]string{"oci-layout://" + dir + ":" + alpine, dst.Host + "/mirror/library/alpine:3.20", idx.Index.Desc.Digest.String(), "copied"},
		[4]string{"oci-layout://" + dir + ":" + appRef, dst.Host + "/mirror/team/app:1", app.Manifest.Desc.Digest.String(), "copied"},
		[4]string{"oci-layout://" + dir + ":" + toolRef, dst.Host + "/mirror/team/tool@" + tool.Manifest.Desc.Digest.String(), tool.Manifest.Desc.Digest.String(), "copied"})
	if res.Stdout != want {
		t.Errorf("from the layout, stdout:\n%s\nwant:\n%s", res.Stdout, want)
	}

	// From a layout that lacks a layer of alpine into a new layout: alpine
	// fails, the other two are there whole and the folder stays. A run
	// whose every image fails leaves no folder.
	broken := filepath.Join(t.TempDir(), "broken")
	if err := os.CopyFS(broken, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(broken, blobName(idx.Images[0].Layers[1]))); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(t.TempDir(), "partial")
	res = x.Run("copy", "--progress", "quiet", "oci-layout://"+broken, "oci-layout://"+partial)
	lines := strings.Split(res.Stdout, "\n")
	if res.ExitCode != 1 || len(lines) != 5 || !strings.HasPrefix(lines[1], "oci-layout://"+broken+":"+alpine+" ") || !strings.Contains(lines[1], "  failed: ") {
		t.Fatalf("exit %d, want 1 and alpine failed\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if got := layoutEntries(t, partial); !slices.Equal(got, wantEntries[1:]) {
		t.Errorf("partial layout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantEntries[1:], "\n"))
	}
	for _, b := range slices.Concat(app.Blobs(), tool.Blobs()) {
		if got, err := os.ReadFile(filepath.Join(partial, blobName(b))); err != nil || string(got) != string(b.Data) {
			t.Fatalf("partial layout: %s differs from the source's (%v)", blobName(b), err)
		}
	}
	none := filepath.Join(t.TempDir(), "none")
	if res := x.Run("copy", "--progress", "quiet", "oci-layout://"+broken+"@"+idx.Index.Desc.Digest.String(), "oci-layout://"+none+":t"); res.ExitCode != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Errorf("a run whose every image failed left %s (%v)", none, err)
	}
}

// TestCopyReferrersThroughLayout: an image's cosign signature and OCI
// referrer (fallback tag) travel into a layout of many images, each tag
// under its full name, and out of it into a registry, where the signature
// is merged with the one the target holds already under the same tag.
func TestCopyReferrersThroughLayout(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Seed: 2413})
	other := fixture.NewImage(fixture.ImageOptions{Seed: 2414})
	pushImage(t, src, "team/app", "1", img)
	pushImage(t, src, "team/other", "1", other)
	refs := newReferrers(t, img.Manifest.Desc, img.Manifest.Desc)
	refs.push(t, src, "team/app")
	theirs := newReferrers(t, fixture.NewImage(fixture.ImageOptions{Seed: 2415}).Manifest.Desc, img.Manifest.Desc)
	if err := fixture.Push(t.Context(), dst.AdminHost, "mirror/team/app", refs.sigTag, theirs.sig...); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	x := newImgx(t)
	x.MustRun("copy", "--progress", "quiet", src.Host+"/team/app:1", src.Host+"/team/other:1", "oci-layout://"+dir)
	names := map[string]bool{}
	for _, e := range layoutEntries(t, dir) {
		names[strings.Fields(e)[0]] = true
	}
	for _, n := range []string{src.Host + "/team/app:1", src.Host + "/team/other:1", src.Host + "/team/app:" + refs.sigTag, src.Host + "/team/app:" + refs.refTag} {
		if !names[n] {
			t.Errorf("index.json names %v, not %s", names, n)
		}
	}
	if len(names) != 4 {
		t.Errorf("index.json names %v, want 4", names)
	}

	x.MustRun("copy", "--progress", "quiet", "oci-layout://"+dir, dst.Host+"/mirror")
	if got := fetchTag(t, dst, "mirror/team/app", "1"); got != string(img.Manifest.Data) {
		t.Fatalf("mirror/team/app:1 holds %q", got)
	}
	var sig ocispec.Manifest
	if err := json.Unmarshal([]byte(fetchTag(t, dst, "mirror/team/app", refs.sigTag)), &sig); err != nil {
		t.Fatal(err)
	}
	if len(sig.Layers) != 2 || sig.Layers[0].Digest != theirs.sig[1].Desc.Digest || sig.Layers[1].Digest != refs.sig[1].Desc.Digest {
		t.Errorf("signature tag holds layers %v, want the target's then the layout's", sig.Layers)
	}
	ref := refs.referrer[2]
	if got := fetchTag(t, dst, "mirror/team/app", ref.Desc.Digest.String()); got != string(ref.Data) {
		t.Errorf("referrer %s: %q", ref.Desc.Digest, got)
	}

	// --referrers=false: the image alone, in and out.
	bare := filepath.Join(t.TempDir(), "bare")
	x.MustRun("copy", "--progress", "quiet", "--referrers=false", src.Host+"/team/app:1", "oci-layout://"+bare)
	if got := layoutEntries(t, bare); len(got) != 1 {
		t.Errorf("--referrers=false: index.json %v, want the image alone", got)
	}
}
