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

// holdRule picks the nth PUT (from 1) of a path ending in suffix; commit
// passes it on to the registry before the answer is withheld.
type holdRule struct {
	suffix string
	nth    int
	commit bool
}

// holdProxy is a proxy in front of backend that withholds the answer to the
// PUTs its rules pick until the client goes away (after passing each on to
// the registry when its rule says so); held is closed once the first rule's
// PUT is reached (and committed).
func holdProxy(t *testing.T, backend string, rules ...holdRule) (host string, held <-chan struct{}) {
	t.Helper()
	u, err := url.Parse("http://" + backend)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	ch := make(chan struct{})
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut {
			rp.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		seen[r.URL.Path]++
		n := seen[r.URL.Path]
		mu.Unlock()
		for i, rule := range rules {
			if !strings.HasSuffix(r.URL.Path, rule.suffix) || n != rule.nth {
				continue
			}
			if rule.commit {
				rp.ServeHTTP(httptest.NewRecorder(), r)
			} else {
				// Read whole, so that the server notices the client leave.
				_, _ = io.Copy(io.Discard, r.Body)
			}
			if i == 0 {
				close(ch)
			}
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
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
	host, held := holdProxy(t, reg.Host, holdRule{suffix: "/manifests/two", nth: 1, commit: true})
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

// TestCreateInterruptedTagsGrace: as TestCreateInterruptedTags, but the PUT
// that would put the first tag back is never answered either: the restore
// gives up after its grace period and the error line says which tag is left
// moved and what to do by hand; the metadata file lists it.
func TestCreateInterruptedTagsGrace(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	old := faultOldImage()
	pushImage(t, reg, "test/grace", "amd64", amd)
	pushImage(t, reg, "test/grace", "arm64", arm)
	pushImage(t, reg, "test/grace", "one", old)
	want := wantIndex(ocispec.MediaTypeImageIndex, []ocispec.Descriptor{amd.Manifest.Desc, arm.Manifest.Desc}, nil)
	wantDigest := digest.FromBytes(want)
	host, held := holdProxy(t, reg.Host,
		holdRule{suffix: "/manifests/two", nth: 1, commit: true},
		holdRule{suffix: "/manifests/one", nth: 2}) // the restore
	repo := host + "/test/grace"
	meta := filepath.Join(t.TempDir(), "meta.json")

	cmd, stderr := startImgx(t, newImgx(t), "create", "--progress", "plain", "--metadata-file", meta,
		"-t", repo+":one", "-t", repo+":two", "-t", repo+":three", repo+":amd64", repo+":arm64")
	select {
	case <-held:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("no PUT of the second tag within a minute:\n%s", stderr)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
	defer stop.Stop()
	err := cmd.Wait()
	took := time.Since(start)
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit: %v, want code 130\n%s", err, stderr)
	}
	// The grace is 5 s; the ceiling is generous.
	if took > 20*time.Second {
		t.Errorf("exited %v after SIGINT, want the grace period of 5 s and little more", took)
	}
	lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
	last := lines[len(lines)-1]
	head := "ERROR: interrupted while moving tag " + repo + ":two; tags now: " + repo + ":one at " + wantDigest.String() + " (moved; restore failed: "
	tail := "), " + repo + ":two absent (removed again), " + repo + ":three absent (not moved); by hand: set " + repo + ":one to " + old.Manifest.Desc.Digest.String()
	if !strings.HasPrefix(last, head) || !strings.HasSuffix(last, tail) {
		t.Errorf("last line\n%s\nwant\n%s...%s", last, head, tail)
	}
	if got := fetchTag(t, reg, "test/grace", "one"); got != string(want) {
		t.Errorf("tag one: not the new index:\n%s", got)
	}
	assertMetadata(t, meta, "{\n"+
		"  \"containerimage.descriptor\": {\n"+
		"    \"mediaType\": \""+ocispec.MediaTypeImageIndex+"\",\n"+
		"    \"digest\": \""+wantDigest.String()+"\",\n"+
		"    \"size\": "+itoa(int64(len(want)))+"\n"+
		"  },\n"+
		"  \"image.name\": \""+repo+"\",\n"+
		"  \"image.tags\": [\n"+
		"    \""+repo+":one\"\n"+
		"  ]\n"+
		"}\n")
}
