package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/faultproxy"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestCreateTagsAllOrNone: the 2nd of 3 tags is refused (403, an immutable
// tag); the 1st, already moved, is put back (rewritten to what it held, or
// removed again when it did not exist), the 3rd never moves; the error
// line says where each tag points; the metadata file says what was pushed.
func TestCreateTagsAllOrNone(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	pushImage(t, reg, "test/app", "arm64", arm)
	old := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 41})
	pushImage(t, reg, "test/app", "two", old)
	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}, nil)
	wantDigest := digest.FromBytes(want)
	p := faultproxy.Start(t, reg.Host, faultproxy.Fault{Method: http.MethodPut, PathContains: "/manifests/two", Kind: faultproxy.Status403})
	x := newImgx(t)
	repo := p.Host() + "/test/app"

	t.Run("a moved tag is restored", func(t *testing.T) {
		pushImage(t, reg, "test/app", "one", old)
		meta := filepath.Join(t.TempDir(), "meta.json")
		res := x.Run("create", "--progress", "plain", "--metadata-file", meta,
			"-t", repo+":one", "-t", repo+":two", "-t", repo+":three", repo+":amd64", repo+":arm64")
		errLine := lastErrorLine(t, res)
		for _, w := range []string{
			"tag " + repo + ":two: ", "403 Forbidden",
			"tags now: " + repo + ":one at " + old.Manifest.Desc.Digest.String() + " (restored), " +
				repo + ":two at " + old.Manifest.Desc.Digest.String() + " (failed, not moved), " +
				repo + ":three absent (not moved)",
		} {
			if !strings.Contains(errLine, w) {
				t.Errorf("error %q does not say %q", errLine, w)
			}
		}
		if strings.Contains(errLine, "by hand") {
			t.Errorf("error asks for a fix by hand, though every tag is back: %q", errLine)
		}
		for _, tag := range []string{"one", "two"} {
			if got := fetchTag(t, reg, "test/app", tag); got != string(old.Manifest.Data) {
				t.Errorf("tag %s: not the old manifest:\n%s", tag, got)
			}
		}
		if got := fetchTag(t, reg, "test/app", "three"); got != "" {
			t.Errorf("tag three exists:\n%s", got)
		}
		if strings.Contains(res.Stderr, "CANCELED") {
			t.Errorf("progress shows CANCELED:\n%s", res.Stderr)
		}
		for _, line := range []string{
			"pushing " + wantDigest.String() + " to " + repo + ":one",
			"restored " + repo + ":one to " + old.Manifest.Desc.Digest.String(),
		} {
			if !strings.Contains(res.Stderr, line) {
				t.Errorf("progress does not say %q:\n%s", line, res.Stderr)
			}
		}
		assertMetadata(t, meta, "{\n"+
			"  \"containerimage.descriptor\": {\n"+
			"    \"mediaType\": \""+ocispec.MediaTypeImageIndex+"\",\n"+
			"    \"digest\": \""+wantDigest.String()+"\",\n"+
			"    \"size\": "+itoa(int64(len(want)))+"\n"+
			"  },\n"+
			"  \"image.name\": \""+repo+"\",\n"+
			"  \"image.tags\": []\n"+
			"}\n")
		// The content is there by digest, for a retry.
		if dt, _, err := fixture.Fetch(context.Background(), reg.AdminHost, "test/app", wantDigest.String()); err != nil || string(dt) != string(want) {
			t.Errorf("index by digest: %v\n%s", err, dt)
		}
	})
	t.Run("a created tag is removed again", func(t *testing.T) {
		reg.ResetRequests()
		res := x.Run("create", "--progress", "plain",
			"-t", repo+":new", "-t", repo+":two", "-t", repo+":three", repo+":amd64", repo+":arm64")
		errLine := lastErrorLine(t, res)
		if w := "tags now: " + repo + ":new absent (removed again), "; !strings.Contains(errLine, w) {
			t.Errorf("error %q does not say %q", errLine, w)
		}
		if got := fetchTag(t, reg, "test/app", "new"); got != "" {
			t.Errorf("tag new exists:\n%s", got)
		}
		// By tag: a delete by digest would drop every tag of the manifest.
		if n := reg.Count(http.MethodDelete, "/manifests/new"); n != 1 {
			t.Errorf("%d DELETEs of the tag, want 1:\n%s", n, requestSummary(reg))
		}
		if n := reg.Count(http.MethodDelete, "/manifests/sha256:"); n != 0 {
			t.Errorf("%d DELETEs by digest, want none:\n%s", n, requestSummary(reg))
		}
	})
}

// TestCreateTagsNotRestorable: a tag the failed create made cannot be
// deleted (the registry refuses deletes): the error names it and says to
// delete it by hand, and the metadata file lists it as pointing at the
// result.
func TestCreateTagsNotRestorable(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	pushImage(t, reg, "test/app", "arm64", arm)
	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}, nil)
	wantDigest := digest.FromBytes(want)
	p := faultproxy.Start(t, reg.Host,
		faultproxy.Fault{Method: http.MethodPut, PathContains: "/manifests/two", Kind: faultproxy.Status403},
		faultproxy.Fault{Method: http.MethodDelete, Kind: faultproxy.Status405})
	x := newImgx(t)
	repo := p.Host() + "/test/app"
	meta := filepath.Join(t.TempDir(), "meta.json")
	res := x.Run("create", "--progress", "quiet", "--metadata-file", meta, "-t", repo+":new", "-t", repo+":two", repo+":amd64", repo+":arm64")
	errLine := lastErrorLine(t, res)
	for _, w := range []string{
		"tags now: " + repo + ":new at " + wantDigest.String() + " (created; tags cannot be deleted there), " + repo + ":two absent (failed, not moved)",
		"; by hand: delete tag " + repo + ":new",
	} {
		if !strings.Contains(errLine, w) {
			t.Errorf("error %q does not say %q", errLine, w)
		}
	}
	if got := fetchTag(t, reg, "test/app", "new"); got != string(want) {
		t.Errorf("tag new:\n%s", got)
	}
	assertMetadata(t, meta, "{\n"+
		"  \"containerimage.descriptor\": {\n"+
		"    \"mediaType\": \""+ocispec.MediaTypeImageIndex+"\",\n"+
		"    \"digest\": \""+wantDigest.String()+"\",\n"+
		"    \"size\": "+itoa(int64(len(want)))+"\n"+
		"  },\n"+
		"  \"image.name\": \""+repo+"\",\n"+
		"  \"image.tags\": [\n"+
		"    \""+repo+":new\"\n"+
		"  ]\n"+
		"}\n")
}

// TestCreateAppendConcurrent: another push moves the appended tag between
// the read the merge is made from and the tag's write. The merge is made
// again, so that neither push's platform is lost; when the tag keeps moving,
// create fails and moves nothing.
func TestCreateAppendConcurrent(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	ppc := fixture.NewImage(fixture.ImageOptions{Platform: "linux/ppc64le", Layers: 1, Seed: 13})
	for tag, img := range map[string]fixture.Image{"amd64": amd, "arm64": arm, "ppc64le": ppc} {
		pushImage(t, reg, "test/app", tag, img)
	}
	start := fixture.NewIndex([]fixture.Image{amd}, false, nil)
	other := fixture.NewIndex([]fixture.Image{amd, ppc}, false, nil)
	x := newImgx(t)

	t.Run("merged again", func(t *testing.T) {
		pushIndex(t, reg, "test/app", "multi", start)
		// The 2nd read of the tag is the one just before it moves: the
		// other push lands right before it is answered.
		p := faultproxy.Start(t, reg.Host, faultproxy.Fault{Method: http.MethodGet, PathContains: "/manifests/multi", Skip: 1, Times: 1,
			Before: func() { pushIndex(t, reg, "test/app", "multi", other) }})
		repo := p.Host() + "/test/app"
		res := x.MustRun("create", "--append", "--progress", "plain", "-t", repo+":multi", repo+":arm64")
		want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, ppc.Manifest.Desc, arm.Manifest.Desc}, nil)
		if got := fetchTag(t, reg, "test/app", "multi"); got != string(want) {
			t.Fatalf("index:\n%s\nwant:\n%s", got, want)
		}
		if d := mustDigestLine(t, res); d != digest.FromBytes(want) {
			t.Errorf("digest %s, want %s", d, digest.FromBytes(want))
		}
		if line := repo + ":multi moved since it was read: merging again"; !strings.Contains(res.Stderr, line) {
			t.Errorf("progress does not say %q:\n%s", line, res.Stderr)
		}
	})
	t.Run("keeps moving", func(t *testing.T) {
		pushIndex(t, reg, "test/app", "busy", start)
		// Every read after the first finds the tag moved again.
		n := 0
		p := faultproxy.Start(t, reg.Host, faultproxy.Fault{Method: http.MethodGet, PathContains: "/manifests/busy", Skip: 1,
			Before: func() {
				n++
				pushIndex(t, reg, "test/app", "busy", fixture.NewIndex([]fixture.Image{amd}, false, map[string]string{"n": itoa(int64(n))}))
			}})
		repo := p.Host() + "/test/app"
		x.MustFail([]string{repo + ":busy: tag changed since it was read 3 times while appending to it", "no tag moved; run again"},
			"create", "--append", "--progress", "quiet", "-t", repo+":busy", "-t", repo+":second", repo+":arm64")
		if got := fetchTag(t, reg, "test/app", "second"); got != "" {
			t.Errorf("tag second moved:\n%s", got)
		}
	})
}

// lastErrorLine wants exit code 1 and returns the ERROR line that ends stderr.
func lastErrorLine(t *testing.T, res result) string {
	t.Helper()
	if res.ExitCode != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if res.Stdout != "" {
		t.Errorf("stdout %q, want nothing", res.Stdout)
	}
	lines := strings.Split(strings.TrimRight(res.Stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "ERROR: ") {
		t.Fatalf("last stderr line %q does not start with ERROR: \n%s", last, res.Stderr)
	}
	return last
}

func assertMetadata(t *testing.T, path, want string) {
	t.Helper()
	dt, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(dt) != want {
		t.Errorf("metadata file:\n%s\nwant:\n%s", dt, want)
	}
	if !json.Valid(dt) {
		t.Errorf("metadata file is not JSON")
	}
}
