package tests

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// commitThenHold is a proxy in front of backend that passes the PUT of
// path on to the registry (the tag moves there) and then withholds the
// answer until the client goes away; held is closed once the PUT is
// committed.
func commitThenHold(t *testing.T, backend, path string) (host string, held <-chan struct{}) {
	t.Helper()
	u, err := url.Parse("http://" + backend)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	ch := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || !strings.HasSuffix(r.URL.Path, path) {
			rp.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r)
		once.Do(func() { close(ch) })
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), ch
}

// TestCreateInterruptedTags interrupts a three-tag create while the PUT of
// its second tag is answered by no one, though the registry committed it:
// the first tag is put back, the second removed again, the third never
// moves; the error line says where each tag points and the metadata file
// is written, as for a failed create; exit code 130.
func TestCreateInterruptedTags(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	old := faultOldImage()
	pushImage(t, reg, "test/sig", "amd64", amd)
	pushImage(t, reg, "test/sig", "arm64", arm)
	pushImage(t, reg, "test/sig", "one", old)
	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}, nil)
	wantDigest := digest.FromBytes(want)
	host, held := commitThenHold(t, reg.Host, "/manifests/two")
	repo := host + "/test/sig"
	meta := filepath.Join(t.TempDir(), "meta.json")

	cmd, stderr := startImgx(t, newImgx(t), "create", "--progress", "plain", "--metadata-file", meta,
		"-t", repo+":one", "-t", repo+":two", "-t", repo+":three", repo+":amd64", repo+":arm64")
	select {
	case <-held:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("no PUT of the second tag within a minute:\n%s", stderr)
	}
	if got := fetchTag(t, reg, "test/sig", "two"); got != string(want) {
		t.Fatalf("the registry did not commit tag two:\n%s", got)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit: %v, want code 130\n%s", err, stderr)
	}
	wantLine := "ERROR: interrupted while moving tag " + repo + ":two; tags now: " +
		repo + ":one at " + old.Manifest.Desc.Digest.String() + " (restored), " +
		repo + ":two absent (removed again), " +
		repo + ":three absent (not moved)\n"
	if !strings.HasSuffix(stderr.String(), wantLine) {
		t.Errorf("stderr does not end with\n%s\n%s", wantLine, stderr)
	}
	if got := fetchTag(t, reg, "test/sig", "one"); got != string(old.Manifest.Data) {
		t.Errorf("tag one: not the old manifest:\n%s", got)
	}
	for _, tag := range []string{"two", "three"} {
		if got := fetchTag(t, reg, "test/sig", tag); got != "" {
			t.Errorf("tag %s exists:\n%s", tag, got)
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
}
