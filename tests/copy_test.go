package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// copyTable is the table copy prints on stdout, written out from rows
// (source, target, digest, result), with the columns tabwriter makes.
func copyTable(rows ...[4]string) string {
	all := append([][4]string{{"SOURCE", "TARGET", "DIGEST", "RESULT"}}, rows...)
	var width [3]int
	for _, r := range all {
		for i := range 3 {
			width[i] = max(width[i], len(r[i]))
		}
	}
	var b strings.Builder
	for _, r := range all {
		fmt.Fprintf(&b, "%-*s  %-*s  %-*s  %s\n", width[0], r[0], width[1], r[1], width[2], r[2], r[3])
	}
	return b.String()
}

// TestCopyOneImageKeepsDigest copies an index with attestations to another
// registry under another name and tag: the target's bytes are the
// source's, every blob is there, and the table says so.
func TestCopyOneImageKeepsDigest(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	pushIndex(t, src, "team/app", "1", idx)
	x := newImgx(t)
	from, to := src.Host+"/team/app:1", dst.Host+"/other/app:2"
	res := x.MustRun("copy", "--progress", "quiet", from, to)
	if got, want := fetchTag(t, dst, "other/app", "2"), string(idx.Index.Data); got != want {
		t.Fatalf("target holds\n%s\nwant the source's bytes\n%s", got, want)
	}
	assertBlobsIn(t, dst, "other/app", idx.Images...)
	want := copyTable([4]string{from, to, idx.Index.Desc.Digest.String(), "copied"})
	if res.Stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", res.Stdout, want)
	}
	// The target's tag is read once, with the source (to see whether there
	// is anything to do), and moved from that read: no second read.
	reads := 0
	for _, r := range dst.Requests() {
		if (r.Method == "GET" || r.Method == "HEAD") && r.Path == "/v2/other/app/manifests/2" && r.Status != http.StatusUnauthorized {
			reads++
		}
	}
	if reads != 1 {
		t.Errorf("the target's tag was read %d times, want once:\n%s", reads, requestSummary(dst))
	}
}

// TestCopySetUnderPrefix copies a list (stdin, with comments) and an
// argument under a prefix, each to the prefix plus its repository path;
// --scoped puts the source host first. A second run writes nothing: every
// image is skipped after a few reads.
func TestCopySetUnderPrefix(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 241})
	pushIndex(t, src, "library/alpine", "3.20", idx)
	pushImage(t, src, "team/app", "1", img)
	x := newImgx(t)
	x.Stdin = []byte("# the release\n" + src.Host + "/library/alpine:3.20\n\n  # app\n")
	args := []string{"copy", "--progress", "quiet", "-f", "-", src.Host + "/team/app@" + img.Manifest.Desc.Digest.String(), dst.Host + "/mirror"}
	res := x.MustRun(args...)
	alpine := dst.Host + "/mirror/library/alpine:3.20"
	app := dst.Host + "/mirror/team/app@" + img.Manifest.Desc.Digest.String()
	if got := fetchTag(t, dst, "mirror/library/alpine", "3.20"); got != string(idx.Index.Data) {
		t.Fatalf("mirror/library/alpine:3.20 holds\n%s", got)
	}
	assertBlobsIn(t, dst, "mirror/team/app", img)
	want := copyTable(
		[4]string{src.Host + "/library/alpine:3.20", alpine, idx.Index.Desc.Digest.String(), "copied"},
		[4]string{src.Host + "/team/app@" + img.Manifest.Desc.Digest.String(), app, img.Manifest.Desc.Digest.String(), "copied"})
	if res.Stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", res.Stdout, want)
	}

	dst.ResetRequests()
	res = x.MustRun(args...)
	want = strings.ReplaceAll(want, "  copied\n", "  skipped\n")
	if res.Stdout != want {
		t.Errorf("second run, stdout:\n%s\nwant:\n%s", res.Stdout, want)
	}
	for _, r := range dst.Requests() {
		if r.Method != "GET" && r.Method != "HEAD" {
			t.Errorf("second run sent %s %s", r.Method, r.Path)
		}
	}
	// Per image: the target's tag or digest (a first request may be
	// challenged), nothing else.
	if n := len(dst.Requests()); n > 2*2 {
		t.Errorf("second run: %d requests to the target, want at most 4:\n%s", n, requestSummary(dst))
	}

	res = x.MustRun("copy", "--progress", "quiet", "--scoped", src.Host+"/library/alpine:3.20", dst.Host+"/scoped")
	repo := "scoped/" + strings.ReplaceAll(src.Host, ":", "_") + "/library/alpine"
	if got := fetchTag(t, dst, repo, "3.20"); got != string(idx.Index.Data) {
		t.Fatalf("%s:3.20 holds\n%s\nstdout:\n%s", repo, got, res.Stdout)
	}
}

// TestCopyRefusesRepositoryWithoutTag: a repository alone names no image;
// nothing is copied.
func TestCopyRefusesRepositoryWithoutTag(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	pushImage(t, src, "team/app", "1", fixture.NewImage(fixture.ImageOptions{Seed: 242}))
	x := newImgx(t)
	x.MustFail([]string{src.Host + "/team/app names no tag or digest: name the tag to copy (" + src.Host + "/team/app:TAG) or a digest"},
		"copy", "--progress", "quiet", src.Host+"/team/app", dst.Host+"/mirror")
	x.MustFail([]string{"target " + dst.Host + "/one:1 names one image (a tag or digest) for 2 sources: name a registry prefix"},
		"copy", "--progress", "quiet", src.Host+"/team/app:1", src.Host+"/team/app:1", dst.Host+"/one:1")
	if n := len(dst.Requests()); n != 0 {
		t.Errorf("%d requests to the target:\n%s", n, requestSummary(dst))
	}
}

// TestCopyFailureReported: a source that is missing fails alone; the
// other image is copied, the table and the metadata file say which, the
// exit code is 1 and the failed image's tag is not created.
func TestCopyFailureReported(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Seed: 243})
	pushImage(t, src, "team/app", "1", img)
	x := newImgx(t)
	meta := filepath.Join(t.TempDir(), "report.json")
	res := x.Run("copy", "--progress", "quiet", "--metadata-file", meta, src.Host+"/team/gone:1", src.Host+"/team/app:1", dst.Host+"/mirror")
	if res.ExitCode != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if got := fetchTag(t, dst, "mirror/team/app", "1"); got != string(img.Manifest.Data) {
		t.Errorf("mirror/team/app:1 holds %q", got)
	}
	if got := fetchTag(t, dst, "mirror/team/gone", "1"); got != "" {
		t.Errorf("the failed image's tag exists: %q", got)
	}
	lines := strings.Split(res.Stdout, "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], src.Host+"/team/gone:1") || !strings.Contains(lines[1], "  failed: ") ||
		!strings.Contains(lines[1], "not found") || !strings.HasSuffix(lines[2], img.Manifest.Desc.Digest.String()+"  copied") {
		t.Errorf("stdout:\n%s", res.Stdout)
	}
	if !strings.HasSuffix(res.Stderr, "1 of 2 images failed\n") {
		t.Errorf("stderr:\n%s", res.Stderr)
	}
	dt, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"outcome": "failed"`, `"outcome": "copied"`, `"digest": "` + img.Manifest.Desc.Digest.String() + `"`,
		`"target": "` + dst.Host + `/mirror/team/gone:1"`} {
		if !strings.Contains(string(dt), w) {
			t.Errorf("metadata file lacks %s:\n%s", w, dt)
		}
	}
}

// TestCopyAirGapRoundTrip carries a list of images into one bundle and from
// the bundle into another registry: every manifest, index and blob is the
// same byte for byte on both sides, under the same names.
func TestCopyAirGapRoundTrip(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Layers: 2, Seed: 244, Docker: true})
	pushIndex(t, src, "library/alpine", "3.20", idx)
	pushImage(t, src, "team/app", "1", img)
	list := filepath.Join(t.TempDir(), "images.txt")
	if err := os.WriteFile(list, []byte(src.Host+"/library/alpine:3.20\n"+src.Host+"/team/app:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	x := newImgx(t)
	res := x.MustRun("copy", "--progress", "quiet", "-f", list, "archive://"+bundle)
	// Each image's tag is read once: the look for its referrers and the
	// copy share the read.
	for _, tag := range []string{"GET /v2/library/alpine/manifests/3.20", "GET /v2/team/app/manifests/1"} {
		if n := len(slices.DeleteFunc(requestLines(src), func(l string) bool { return l != tag })); n != 1 {
			t.Errorf("the copy into the bundle sent %s %d times, want once:\n%s", tag, n, requestSummary(src))
		}
	}
	want := copyTable(
		[4]string{src.Host + "/library/alpine:3.20", "archive://" + bundle + ":" + src.Host + "/library/alpine:3.20", idx.Index.Desc.Digest.String(), "copied"},
		[4]string{src.Host + "/team/app:1", "archive://" + bundle + ":" + src.Host + "/team/app:1", img.Manifest.Desc.Digest.String(), "copied"})
	if res.Stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", res.Stdout, want)
	}
	entries := readTarFile(t, bundle)
	for _, b := range append(idx.Blobs(), img.Blobs()...) {
		if got := tarFile(t, entries, blobName(b)); string(got) != string(b.Data) {
			t.Fatalf("bundle: %s differs from the source's", blobName(b))
		}
	}

	res = x.MustRun("copy", "--progress", "quiet", "archive://"+bundle, dst.Host+"/mirror")
	if got := fetchTag(t, dst, "mirror/library/alpine", "3.20"); got != string(idx.Index.Data) {
		t.Fatalf("mirror/library/alpine:3.20 holds\n%s", got)
	}
	if got := fetchTag(t, dst, "mirror/team/app", "1"); got != string(img.Manifest.Data) {
		t.Fatalf("mirror/team/app:1 holds\n%s", got)
	}
	for _, b := range idx.Blobs() {
		if fixture.IsManifest(b.Desc.MediaType) {
			continue
		}
		got, err := fixture.FetchBlob(t.Context(), dst.AdminHost, "mirror/library/alpine", b.Desc.Digest)
		if err != nil || string(got) != string(b.Data) {
			t.Fatalf("mirror/library/alpine: blob %s: %v", b.Desc.Digest, err)
		}
	}
	assertBlobsIn(t, dst, "mirror/library/alpine", idx.Images...)
	assertBlobsIn(t, dst, "mirror/team/app", img)
	want = copyTable(
		[4]string{"archive://" + bundle + ":" + src.Host + "/library/alpine:3.20", dst.Host + "/mirror/library/alpine:3.20", idx.Index.Desc.Digest.String(), "copied"},
		[4]string{"archive://" + bundle + ":" + src.Host + "/team/app:1", dst.Host + "/mirror/team/app:1", img.Manifest.Desc.Digest.String(), "copied"})
	if res.Stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", res.Stdout, want)
	}
}

// TestCopyReferrers: a copy carries the image's cosign signature and its
// OCI referrer (fallback tag) along; a second run finds them there (a few
// reads) and writes nothing; --referrers=false leaves them behind.
func TestCopyReferrers(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Seed: 245})
	pushImage(t, src, "team/app", "1", img)
	refs := newReferrers(t, img.Manifest.Desc, img.Manifest.Desc)
	refs.push(t, src, "team/app")
	x := newImgx(t)
	x.MustRun("copy", "--progress", "quiet", src.Host+"/team/app:1", dst.Host+"/mirror")
	refs.assertCopied(t, dst, "mirror/team/app")

	dst.ResetRequests()
	src.ResetRequests()
	res := x.MustRun("copy", "--progress", "quiet", src.Host+"/team/app:1", dst.Host+"/mirror")
	// The source: its tag list (one page), the image, the referrers API
	// (404: none here), and the two referrer tags the list shows; the tags
	// the list lacks (the other cosign tags; those of the signature and the
	// SBOM) are not read.
	want := []string{
		"GET /v2/team/app/manifests/1",
		"GET /v2/team/app/manifests/" + refs.refTag,
		"GET /v2/team/app/manifests/" + refs.sigTag,
		"GET /v2/team/app/referrers/" + img.Manifest.Desc.Digest.String(),
		"GET /v2/team/app/tags/list?n=1000",
	}
	if got := requestLines(src); !slices.Equal(got, want) {
		t.Errorf("second run asked the source\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.HasSuffix(res.Stdout, "  skipped\n") {
		t.Errorf("second run:\n%s", res.Stdout)
	}
	for _, r := range dst.Requests() {
		if r.Method != "GET" && r.Method != "HEAD" {
			t.Errorf("second run sent %s %s", r.Method, r.Path)
		}
	}
	// The tag, the signature's tag, the referrers API (404), the fallback
	// tag; each first request may be challenged.
	if n := len(dst.Requests()); n > 8 {
		t.Errorf("second run: %d requests to the target, want at most 8:\n%s", n, requestSummary(dst))
	}

	x.MustRun("copy", "--progress", "quiet", "--referrers=false", src.Host+"/team/app:1", dst.Host+"/bare/app:1")
	refs.assertAbsent(t, dst, "bare/app")
	if got := fetchTag(t, dst, "bare/app", "1"); got != string(img.Manifest.Data) {
		t.Errorf("bare/app:1 holds %q", got)
	}
}

// TestCopySharedBlobsOnce: images that share layers, in two repositories,
// copied in one run to another registry: each blob is uploaded once, the
// other repository mounts what the first received.
func TestCopySharedBlobsOnce(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	// The same seed: the same layers; other platforms: other configs.
	amd := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 3, Seed: 246})
	arm := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Layers: 3, Seed: 246})
	pushImage(t, src, "team/one", "1", amd)
	pushImage(t, src, "team/two", "1", arm)
	x := newImgx(t)
	x.MustRun("copy", "--progress", "quiet", src.Host+"/team/one:1", src.Host+"/team/two:1", dst.Host+"/mirror")
	assertBlobsIn(t, dst, "mirror/team/one", amd)
	assertBlobsIn(t, dst, "mirror/team/two", arm)
	// 3 layers shared, 2 configs.
	if n := dst.Count(http.MethodPut, "/blobs/uploads/"); n != 5 {
		t.Errorf("%d blob uploads, want 5 (each blob once):\n%s", n, requestSummary(dst))
	}
	mounts := 0
	for _, r := range dst.Requests() {
		if r.Method == http.MethodPost && strings.Contains(r.RawQuery, "mount=") && r.Status == http.StatusCreated {
			mounts++
		}
	}
	if n := mounts; n != 3 {
		t.Errorf("%d mounts, want 3 (the shared layers):\n%s", n, requestSummary(dst))
	}
}

// TestCopyReferrersThroughBundle: an image's cosign signature and OCI
// referrer (fallback tag) travel into a bundle as named entries and out of
// it into a registry, where the signature is merged with the one the
// target holds already under the same tag, never overwritten.
func TestCopyReferrersThroughBundle(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Seed: 249})
	pushImage(t, src, "team/app", "1", img)
	refs := newReferrers(t, img.Manifest.Desc, img.Manifest.Desc)
	refs.push(t, src, "team/app")
	// The target has a signature of its own under the same tag.
	theirs := newReferrers(t, fixture.NewImage(fixture.ImageOptions{Seed: 250}).Manifest.Desc, img.Manifest.Desc)
	if err := fixture.Push(t.Context(), dst.AdminHost, "mirror/team/app", refs.sigTag, theirs.sig...); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	x := newImgx(t)
	x.MustRun("copy", "--progress", "quiet", src.Host+"/team/app:1", "archive://"+bundle)
	entries := readTarFile(t, bundle)
	if n := len(readManifestJSON(t, entries)); n != 1 {
		t.Errorf("manifest.json lists %d images, want the image alone", n)
	}
	names := map[string]bool{}
	for _, m := range readIndexJSON(t, entries).Manifests {
		names[m.Annotations["io.containerd.image.name"]+" "+m.Annotations["dev.docker-imgx.artifact.name"]] = true
	}
	// The referrer tags are named where loaders do not look for images.
	for _, name := range []string{src.Host + "/team/app:1 ", " " + src.Host + "/team/app:" + refs.sigTag, " " + src.Host + "/team/app:" + refs.refTag} {
		if !names[name] {
			t.Errorf("index.json names %v, not %q", names, name)
		}
	}

	res := x.MustRun("copy", "--progress", "quiet", "archive://"+bundle, dst.Host+"/mirror")
	if got := fetchTag(t, dst, "mirror/team/app", "1"); got != string(img.Manifest.Data) {
		t.Fatalf("mirror/team/app:1 holds %q\n%s", got, res.Stdout)
	}
	var sig ocispec.Manifest
	if err := json.Unmarshal([]byte(fetchTag(t, dst, "mirror/team/app", refs.sigTag)), &sig); err != nil {
		t.Fatal(err)
	}
	if len(sig.Layers) != 2 || sig.Layers[0].Digest != theirs.sig[1].Desc.Digest || sig.Layers[1].Digest != refs.sig[1].Desc.Digest {
		t.Errorf("signature tag holds layers %v, want the target's then the bundle's", sig.Layers)
	}
	ref := refs.referrer[2]
	if got := fetchTag(t, dst, "mirror/team/app", ref.Desc.Digest.String()); got != string(ref.Data) {
		t.Errorf("referrer %s: %q", ref.Desc.Digest, got)
	}
	var idx ocispec.Index
	if err := json.Unmarshal([]byte(fetchTag(t, dst, "mirror/team/app", refs.refTag)), &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != ref.Desc.Digest {
		t.Errorf("fallback tag lists %+v (%v), want the referrer", idx.Manifests, err)
	}

	dst.ResetRequests()
	x.MustRun("copy", "--progress", "quiet", "archive://"+bundle, dst.Host+"/mirror")
	for _, r := range dst.Requests() {
		if r.Method != "GET" && r.Method != "HEAD" {
			t.Errorf("second run sent %s %s", r.Method, r.Path)
		}
	}
}

// TestCopyPlatformsAndFailFast: --platform keeps one platform of an index
// (a new index, which the table says); --fail-fast stops at the first
// failure and reports the images it did not copy.
func TestCopyPlatformsAndFailFast(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	pushIndex(t, src, "library/alpine", "3.20", idx)
	x := newImgx(t)
	res := x.MustRun("copy", "--progress", "plain", "-p", "linux/arm64", src.Host+"/library/alpine:3.20", dst.Host+"/one/alpine:arm64")
	got := fetchTag(t, dst, "one/alpine", "arm64")
	var out ocispec.Index
	if err := json.Unmarshal([]byte(got), &out); err != nil {
		t.Fatal(err)
	}
	arm := idx.Images[1].Manifest.Desc.Digest
	if len(out.Manifests) != 2 || out.Manifests[0].Digest != arm {
		t.Errorf("index lists %+v, want the arm64 image (and its attestation)", out.Manifests)
	}
	want := copyTable([4]string{src.Host + "/library/alpine:3.20", dst.Host + "/one/alpine:arm64", digest.FromBytes([]byte(got)).String(),
		"copied: --platform made a new index: its digest is not the source's"})
	if res.Stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", res.Stdout, want)
	}
	for _, line := range []string{"copying 1 images", "1/1 copied " + src.Host + "/library/alpine:3.20 -> " + dst.Host + "/one/alpine:arm64"} {
		if !strings.Contains(res.Stderr, line) {
			t.Errorf("progress does not say %q:\n%s", line, res.Stderr)
		}
	}

	res = x.Run("copy", "--progress", "quiet", "--fail-fast", "--max-concurrency", "1",
		src.Host+"/library/gone:1", src.Host+"/library/alpine:3.20", dst.Host+"/ff")
	if res.ExitCode != 1 || !strings.Contains(res.Stdout, "not copied: an earlier image failed (--fail-fast)") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if got := fetchTag(t, dst, "ff/library/alpine", "3.20"); got != "" {
		t.Errorf("--fail-fast copied the second image")
	}
}

// TestCopyLayout: an image into an OCI layout under a tag and out of it
// again, bytes kept (many images by name: TestCopyLayoutOfMany).
func TestCopyLayout(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	pushIndex(t, src, "library/alpine", "3.20", idx)
	dir := filepath.Join(t.TempDir(), "layout")
	x := newImgx(t)
	x.MustRun("copy", "--progress", "quiet", src.Host+"/library/alpine:3.20", "oci-layout://"+dir+":3.20")
	x.MustRun("copy", "--progress", "quiet", "oci-layout://"+dir+":3.20", dst.Host+"/back/alpine:3.20")
	if got := fetchTag(t, dst, "back/alpine", "3.20"); got != string(idx.Index.Data) {
		t.Fatalf("back/alpine:3.20 holds\n%s", got)
	}
	assertBlobsIn(t, dst, "back/alpine", idx.Images...)
	// A layout of tags alone names no repository to copy under a prefix.
	x.MustFail([]string{"oci-layout://" + dir + ":3.20 has no repository name to copy it under a prefix"},
		"copy", "--progress", "quiet", "oci-layout://"+dir, dst.Host+"/mirror")
}

// TestCopyMountsWithinRegistry: a copy into another repository of the
// source's registry mounts every blob: no byte is uploaded.
func TestCopyMountsWithinRegistry(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	pushIndex(t, reg, "library/alpine", "3.20", idx)
	x := newImgx(t)
	x.MustRun("copy", "--progress", "quiet", reg.Host+"/library/alpine:3.20", reg.Host+"/mirror")
	if got := fetchTag(t, reg, "mirror/library/alpine", "3.20"); got != string(idx.Index.Data) {
		t.Fatalf("mirror/library/alpine:3.20 holds\n%s", got)
	}
	assertBlobsIn(t, reg, "mirror/library/alpine", idx.Images...)
	if n := reg.Count(http.MethodPut, "/blobs/uploads/") + reg.Count(http.MethodPatch, "/blobs/uploads/"); n != 0 {
		t.Errorf("%d uploads, want mounts only:\n%s", n, requestSummary(reg))
	}
}

// TestCopyAllTags: --all-tags copies every tag of a repository; its
// signature tag travels with the image it signs, not as an image of its own.
func TestCopyAllTags(t *testing.T) {
	t.Parallel()
	src := registrytest.Start(t, registrytest.Options{})
	dst := registrytest.Start(t, registrytest.Options{})
	one := fixture.NewImage(fixture.ImageOptions{Seed: 251})
	two := fixture.NewImage(fixture.ImageOptions{Seed: 252})
	pushImage(t, src, "team/app", "1", one)
	pushImage(t, src, "team/app", "2", two)
	refs := newReferrers(t, one.Manifest.Desc, one.Manifest.Desc)
	refs.push(t, src, "team/app")
	x := newImgx(t)
	res := x.MustRun("copy", "--progress", "quiet", "--all-tags", src.Host+"/team/app", dst.Host+"/mirror")
	want := copyTable(
		[4]string{src.Host + "/team/app:1", dst.Host + "/mirror/team/app:1", one.Manifest.Desc.Digest.String(), "copied"},
		[4]string{src.Host + "/team/app:2", dst.Host + "/mirror/team/app:2", two.Manifest.Desc.Digest.String(), "copied"})
	if res.Stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", res.Stdout, want)
	}
	refs.assertCopied(t, dst, "mirror/team/app")
	if got := fetchTag(t, dst, "mirror/team/app", "2"); got != string(two.Manifest.Data) {
		t.Errorf("mirror/team/app:2 holds %q", got)
	}
}
