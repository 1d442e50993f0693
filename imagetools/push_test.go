package imagetools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func mustLoc(t *testing.T, s string) Location {
	t.Helper()
	l, err := ParseLocation(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func blobNode(s string, origin Location) *node {
	return &node{desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString(s), Size: int64(len(s))}, origin: origin}
}

// imageNode is a manifest with a config and a layer, all from origin.
func imageNode(name string, origin Location, shared *node) *node {
	n := &node{desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(name)}, origin: origin}
	n.children = []*node{blobNode(name+"-config", origin), shared}
	return n
}

func TestPlanPush(t *testing.T) {
	src := mustLoc(t, "reg.example:5000/team/app")
	shared := blobNode("shared-layer", src)
	graph := []*node{imageNode("amd64", src, shared), imageNode("arm64", src, shared)}
	root := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("index")}
	targets := []Location{
		mustLoc(t, "reg.example:5000/team/app:multi"),
		mustLoc(t, "reg.example:5000/team/app:latest"),
		mustLoc(t, "reg.example:5000/team/other:v1"),
		mustLoc(t, "mirror.example/team/app:v1"),
		mustLoc(t, "oci-layout:///tmp/out:v1"),
	}
	plans := planPush(graph, PushContent{Root: root}, targets)
	if len(plans) != 4 {
		t.Fatalf("%d plans, want one per repository (4)", len(plans))
	}
	cases := []struct {
		repo      string
		tags      int
		blobs     int
		mounts    int
		manifests int
	}{
		// The source repository holds everything: only tags are written.
		{"reg.example:5000/team/app", 2, 0, 0, 0},
		// Same registry: 3 distinct blobs (shared layer once), all mounted.
		{"reg.example:5000/team/other", 1, 3, 3, 2},
		// Another registry: copied.
		{"mirror.example/team/app", 1, 3, 0, 2},
		{"oci-layout:///tmp/out", 1, 3, 0, 2},
	}
	for i, c := range cases {
		p := plans[i]
		if p.repo.Repository() != c.repo {
			t.Fatalf("plan %d is for %s, want %s", i, p.repo.Repository(), c.repo)
		}
		mounts := 0
		for _, b := range p.blobs {
			if b.mount {
				mounts++
			}
			if b.from.Repository() != src.Repository() {
				t.Errorf("%s: blob %s read from %s", c.repo, b.desc.Digest, b.from.Repository())
			}
		}
		if len(p.tags) != c.tags || len(p.blobs) != c.blobs || mounts != c.mounts || len(p.manifests) != c.manifests {
			t.Errorf("%s: %d tags, %d blobs, %d mounts, %d manifests; want %+v", c.repo, len(p.tags), len(p.blobs), mounts, len(p.manifests), c)
		}
		// Several repositories: the root goes by digest before any tag.
		if !p.pushRoot {
			t.Errorf("%s: root not pushed by digest although several repositories are written", c.repo)
		}
	}
}

// TestPlanPushSiblings: several repositories of a registry the blobs are
// copied into get each blob uploaded once, into the first; the others mount
// it from there after it is in. Layouts and other registries copy.
func TestPlanPushSiblings(t *testing.T) {
	src := mustLoc(t, "reg.example/team/app")
	shared := blobNode("shared-layer", src)
	graph := []*node{imageNode("amd64", src, shared), imageNode("arm64", src, shared)}
	root := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("index")}
	plans := planPush(graph, PushContent{Root: root}, []Location{
		mustLoc(t, "mirror.example/one/app:v1"),
		mustLoc(t, "mirror.example/two/app:v1"),
		mustLoc(t, "oci-layout:///tmp/out:v1"),
		mustLoc(t, "other.example/one/app:v1"),
		mustLoc(t, "mirror.example/three/app:v1"),
	})
	first := plans[0]
	for _, b := range first.blobs {
		if b.mount || b.after != nil || b.ready == nil {
			t.Errorf("first repository: blob %s mount=%v after=%v ready=%v; want an upload others wait on", b.desc.Digest, b.mount, b.after, b.ready)
		}
	}
	for _, i := range []int{1, 4} {
		for j, b := range plans[i].blobs {
			if !b.mount || b.mountFrom.Repository() != "mirror.example/one/app" || b.after != first.blobs[j].ready {
				t.Errorf("%s: blob %s mount=%v from %q; want a mount from mirror.example/one/app after its upload",
					plans[i].repo.Repository(), b.desc.Digest, b.mount, b.mountFrom.Repository())
			}
			if b.from.Repository() != src.Repository() {
				t.Errorf("%s: blob %s would be uploaded from %s, want the source", plans[i].repo.Repository(), b.desc.Digest, b.from.Repository())
			}
		}
	}
	for _, i := range []int{2, 3} {
		for _, b := range plans[i].blobs {
			if b.mount || b.after != nil || b.ready != nil {
				t.Errorf("%s: blob %s is tied to another repository", plans[i].repo.Repository(), b.desc.Digest)
			}
		}
	}
}

func TestPlanPushSingleRepository(t *testing.T) {
	src := mustLoc(t, "reg.example/team/app")
	nested := &node{desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("nested")}, origin: src,
		children: []*node{imageNode("amd64", src, blobNode("l", src))}}
	root := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("index")}
	plans := planPush([]*node{nested}, PushContent{Root: root}, []Location{mustLoc(t, "reg.example/team/copy:v1")})
	p := plans[0]
	if p.pushRoot {
		t.Error("one repository: the tag PUT stores the root, no PUT by digest wanted")
	}
	// Children before parents: the image manifest, then the nested index.
	if len(p.manifests) != 2 || p.manifests[0].desc.MediaType != ocispec.MediaTypeImageManifest || p.manifests[1].desc.Digest != nested.desc.Digest {
		t.Fatalf("manifest order wrong: %v", p.manifests)
	}
}

func TestPlanPushRootManifest(t *testing.T) {
	src := mustLoc(t, "reg.example/team/app")
	img := imageNode("amd64", src, blobNode("l", src))
	plans := planPush([]*node{img}, PushContent{Root: img.desc}, []Location{mustLoc(t, "other.example/team/app:v1")})
	p := plans[0]
	// A manifest kept as the root is pushed to the tag, not as a child.
	if len(p.blobs) != 2 || len(p.manifests) != 0 {
		t.Fatalf("%d blobs, %d manifests; want 2 blobs and no child manifest", len(p.blobs), len(p.manifests))
	}
}

func TestTrackerKeyed(t *testing.T) {
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("x"), Annotations: map[string]string{"a": "b"}}
	a, b := trackerKeyed(d, mustLoc(t, "r.example/one")), trackerKeyed(d, mustLoc(t, "r.example/two"))
	if a.Annotations[ocispec.AnnotationRefName] == b.Annotations[ocispec.AnnotationRefName] {
		t.Fatal("pushes to two repositories share a tracker key")
	}
	if d.Annotations["a"] != "b" || len(d.Annotations) != 1 {
		t.Fatal("the caller's descriptor was changed")
	}
}

// fakeRegistry serves the blob half of the distribution API for one
// repository, and logs each request as "METHOD kind" (kind: blob, upload,
// upload+digest for a POST carrying one, session).
type fakeRegistry struct {
	*httptest.Server
	// singlePost makes a POST with digest and body store the blob (201);
	// else it opens a session (202) and ignores the body, as distribution does.
	singlePost bool
	// failPuts is how many session PUTs are answered 503 (body read first).
	failPuts int
	// corrupt serves every blob with its last byte changed.
	corrupt bool

	mu    sync.Mutex
	log   []string
	blobs map[digest.Digest][]byte
}

func newFakeRegistry(t *testing.T) *fakeRegistry {
	f := &fakeRegistry{blobs: map[digest.Digest][]byte{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/v2/team/app/")
	kind := "blob"
	switch {
	case path == "blobs/uploads/" && r.URL.Query().Get("digest") != "":
		kind = "upload+digest"
	case path == "blobs/uploads/":
		kind = "upload"
	case strings.HasPrefix(path, "blobs/uploads/"):
		kind = "session"
	}
	f.log = append(f.log, r.Method+" "+kind)
	switch {
	case kind == "blob" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		data, ok := f.blobs[digest.Digest(strings.TrimPrefix(path, "blobs/"))]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if f.corrupt {
			data = append(slices.Clone(data[:len(data)-1]), data[len(data)-1]^1)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(data)
		}
	case r.Method == http.MethodPost && kind == "upload+digest" && f.singlePost:
		f.store(w, r)
	case r.Method == http.MethodPost:
		w.Header().Set("Location", "/v2/team/app/blobs/uploads/s1?_state=x")
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPut && kind == "session" && r.URL.Query().Get("_state") == "expired":
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, `{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}`, http.StatusNotFound)
	case r.Method == http.MethodPut && kind == "session":
		if r.URL.Query().Get("_state") != "x" {
			http.Error(w, "session state lost", http.StatusBadRequest)
			return
		}
		if f.failPuts > 0 {
			f.failPuts--
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		f.store(w, r)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// store keeps the body when it hashes to the digest of the query.
func (f *fakeRegistry) store(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	want := digest.Digest(r.URL.Query().Get("digest"))
	if err != nil || digest.FromBytes(data) != want {
		http.Error(w, "digest invalid", http.StatusBadRequest)
		return
	}
	f.blobs[want] = data
	w.WriteHeader(http.StatusCreated)
}

func (f *fakeRegistry) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

func (f *fakeRegistry) loc(t *testing.T) Location {
	return mustLoc(t, strings.TrimPrefix(f.URL, "http://")+"/team/app")
}

func (f *fakeRegistry) has(d digest.Digest) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.blobs[d]
	return ok
}

// newTestUploader configures the registries first, as Push does.
func newTestUploader(t *testing.T, regs ...*fakeRegistry) *uploader {
	r := NewResolver(ResolverOptions{})
	var locs []Location
	for _, reg := range regs {
		locs = append(locs, reg.loc(t))
	}
	if err := configureRegistries(r, PushContent{}, locs); err != nil {
		t.Fatal(err)
	}
	return newUploader(r)
}

func layerBlob(s string) (ocispec.Descriptor, []byte) {
	data := []byte(s)
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}, data
}

func TestPutBytesSinglePost(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name       string
		singlePost bool
		want       []string
	}{
		// One request where the registry takes the body with the POST.
		{"accepted", true, []string{"POST upload+digest", "POST upload+digest"}},
		// distribution answers 202: the PUT follows in the session it
		// opened, and the next blob is not offered in a single POST again.
		{"refused", false, []string{"POST upload+digest", "PUT session", "POST upload", "PUT session"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := newFakeRegistry(t)
			reg.singlePost = c.singlePost
			up := newTestUploader(t, reg)
			for _, s := range []string{"config one", "config two"} {
				desc, data := layerBlob(s)
				if err := up.putBytes(ctx, reg.loc(t), desc, data, nil); err != nil {
					t.Fatal(err)
				}
				if !reg.has(desc.Digest) {
					t.Fatalf("%s not stored", desc.Digest)
				}
			}
			if got := reg.requests(); !slices.Equal(got, c.want) {
				t.Errorf("requests %q, want %q", got, c.want)
			}
		})
	}
}

func TestCopyStream(t *testing.T) {
	ctx := context.Background()
	desc, data := layerBlob(strings.Repeat("layer bytes ", 1000))
	setup := func(t *testing.T) (src, dst *fakeRegistry, b blobJob) {
		src, dst = newFakeRegistry(t), newFakeRegistry(t)
		src.blobs[desc.Digest] = data
		return src, dst, blobJob{desc: desc, from: src.loc(t)}
	}
	sub := progress.Discard()
	err := progress.Wrap("test", sub, func(sub progress.SubLogger) error {
		t.Run("one session, one PUT", func(t *testing.T) {
			src, dst, b := setup(t)
			if err := newTestUploader(t, src, dst).copyStream(ctx, sub, b, dst.loc(t), nil); err != nil {
				t.Fatal(err)
			}
			if got, want := dst.requests(), []string{"POST upload", "PUT session"}; !slices.Equal(got, want) || !dst.has(desc.Digest) {
				t.Errorf("requests %q, want %q; stored %v", got, want, dst.has(desc.Digest))
			}
		})
		t.Run("a failed PUT starts over from the source", func(t *testing.T) {
			src, dst, b := setup(t)
			dst.failPuts = 1
			if err := newTestUploader(t, src, dst).copyStream(ctx, sub, b, dst.loc(t), nil); err != nil {
				t.Fatal(err)
			}
			if got, want := dst.requests(), []string{"POST upload", "PUT session", "POST upload", "PUT session"}; !slices.Equal(got, want) {
				t.Errorf("target requests %q, want %q", got, want)
			}
			if got := src.requests(); len(got) != 2 {
				t.Errorf("source requests %q, want the blob read twice", got)
			}
		})
		t.Run("an expired session starts over with a new one", func(t *testing.T) {
			src, dst, b := setup(t)
			expired, err := url.Parse(dst.URL + "/v2/team/app/blobs/uploads/s0?_state=expired")
			if err != nil {
				t.Fatal(err)
			}
			if err := newTestUploader(t, src, dst).copyStream(ctx, sub, b, dst.loc(t), expired); err != nil {
				t.Fatal(err)
			}
			if got, want := dst.requests(), []string{"PUT session", "POST upload", "PUT session"}; !slices.Equal(got, want) || !dst.has(desc.Digest) {
				t.Errorf("requests %q, want %q; stored %v", got, want, dst.has(desc.Digest))
			}
		})
		t.Run("attempts are bounded", func(t *testing.T) {
			src, dst, b := setup(t)
			dst.failPuts = blobCopyAttempts + 1
			err := newTestUploader(t, src, dst).copyStream(ctx, sub, b, dst.loc(t), nil)
			if err == nil || !strings.Contains(err.Error(), "503") {
				t.Fatalf("err = %v, want the 503", err)
			}
			if n := len(dst.requests()); n != 2*blobCopyAttempts {
				t.Errorf("%d target requests, want %d", n, 2*blobCopyAttempts)
			}
		})
		t.Run("a corrupt source is not retried", func(t *testing.T) {
			src, dst, b := setup(t)
			src.corrupt = true
			err := newTestUploader(t, src, dst).copyStream(ctx, sub, b, dst.loc(t), nil)
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("err = %v, want ErrDigestMismatch", err)
			}
			if dst.has(desc.Digest) || len(src.requests()) != 1 {
				t.Errorf("stored %v, source requests %q", dst.has(desc.Digest), src.requests())
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPushBlobs checks the requests per kind of blob: one the target has
// (HEAD only), one it lacks (HEAD and POST, then PUT with the source GET), one in
// memory (no HEAD).
func TestPushBlobs(t *testing.T) {
	src, dst := newFakeRegistry(t), newFakeRegistry(t)
	present, presentData := layerBlob("present")
	missing, missingData := layerBlob("missing")
	config, configData := layerBlob("config")
	src.blobs[present.Digest] = presentData
	src.blobs[missing.Digest] = missingData
	dst.blobs[present.Digest] = presentData
	p := &repoPlan{repo: dst.loc(t), blobs: []blobJob{
		{desc: present, from: src.loc(t)}, {desc: missing, from: src.loc(t)}, {desc: config, from: src.loc(t), data: configData},
	}}
	up := newTestUploader(t, src, dst)
	err := progress.Wrap("test", progress.Discard(), func(sub progress.SubLogger) error {
		return p.pushBlobs(context.Background(), up, sub, newTransferSlots(2), 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	got := dst.requests()
	slices.Sort(got)
	want := []string{"HEAD blob", "HEAD blob", "POST upload", "POST upload+digest", "PUT session", "PUT session"}
	if !slices.Equal(got, want) {
		t.Errorf("target requests %q, want %q", got, want)
	}
	if s := src.requests(); !slices.Equal(s, []string{"GET blob"}) {
		t.Errorf("source requests %q, want one GET", s)
	}
	if !dst.has(missing.Digest) || !dst.has(config.Digest) {
		t.Error("a blob is missing in the target")
	}
}

func TestManifestLevels(t *testing.T) {
	src := mustLoc(t, "reg.example/team/app")
	a, b := imageNode("a", src, blobNode("l", src)), imageNode("b", src, blobNode("l", src))
	nested := &node{desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("nested")}, children: []*node{a}}
	levels := manifestLevels([]*node{a, b, nested})
	if len(levels) != 2 || len(levels[0]) != 2 || levels[1][0] != nested {
		t.Fatalf("levels %v: want the two manifests, then the index", levels)
	}
}

// TestTransferSlots: blobs up to smallBlobSize take the metadataLimit slots,
// larger ones the limit slots; with limit 1 they share one slot.
func TestTransferSlots(t *testing.T) {
	ctx := context.Background()
	small := ocispec.Descriptor{Size: smallBlobSize}
	large := ocispec.Descriptor{Size: smallBlobSize + 1}
	held := func(s *transferSlots, d ocispec.Descriptor, n int) int {
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		got := 0
		for range n {
			if _, err := s.acquire(ctx, d); err != nil {
				break
			}
			got++
		}
		return got
	}
	s := newTransferSlots(2)
	if got := held(s, large, 5); got != 2 {
		t.Errorf("%d large blobs at once, want 2", got)
	}
	if got := held(s, small, 20); got != metadataLimit(2) {
		t.Errorf("%d small blobs at once beside 2 large ones, want %d", got, metadataLimit(2))
	}
	one := newTransferSlots(1)
	if got := held(one, small, 2) + held(one, large, 2); got != 1 {
		t.Errorf("%d blobs at once with limit 1, want 1", got)
	}
}
