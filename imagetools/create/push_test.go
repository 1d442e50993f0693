package create

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/ocilayout"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/imagetools/registry"
	"github.com/docker-imgx/docker-imgx/internal/fakeregistry"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testPlaces is the router the command layer builds, over a registry
// client that is never asked anything but its capabilities unless a test
// runs requests.
func testPlaces() *place.Router {
	return place.NewRouter(map[string]place.Backend{"": registry.New(registry.Options{}), ref.SchemeLayout: ocilayout.NewLayouts()})
}

func mustLoc(t *testing.T, s string) ref.Location {
	t.Helper()
	l, err := ref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func blobNode(s string, origin ref.Location) *node {
	return &node{desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString(s), Size: int64(len(s))}, origin: origin}
}

// imageNode is a manifest with a config and a layer, all from origin.
func imageNode(name string, origin ref.Location, shared *node) *node {
	n := &node{desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(name)}, origin: origin}
	n.children = []*node{blobNode(name+"-config", origin), shared}
	return n
}

func TestPlanPush(t *testing.T) {
	src := mustLoc(t, "reg.example:5000/team/app")
	shared := blobNode("shared-layer", src)
	graph := []*node{imageNode("amd64", src, shared), imageNode("arm64", src, shared)}
	root := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("index")}
	targets := []ref.Location{
		mustLoc(t, "reg.example:5000/team/app:multi"),
		mustLoc(t, "reg.example:5000/team/app:latest"),
		mustLoc(t, "reg.example:5000/team/other:v1"),
		mustLoc(t, "mirror.example/team/app:v1"),
		mustLoc(t, "oci-layout:///tmp/out:v1"),
	}
	plans := planPush(graph, pushInput{root: root}, targets, testPlaces())
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
	plans := planPush(graph, pushInput{root: root}, []ref.Location{
		mustLoc(t, "mirror.example/one/app:v1"),
		mustLoc(t, "mirror.example/two/app:v1"),
		mustLoc(t, "oci-layout:///tmp/out:v1"),
		mustLoc(t, "other.example/one/app:v1"),
		mustLoc(t, "mirror.example/three/app:v1"),
	}, testPlaces())
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
	plans := planPush([]*node{nested}, pushInput{root: root}, []ref.Location{mustLoc(t, "reg.example/team/copy:v1")}, testPlaces())
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
	plans := planPush([]*node{img}, pushInput{root: img.desc}, []ref.Location{mustLoc(t, "other.example/team/app:v1")}, testPlaces())
	p := plans[0]
	// A manifest kept as the root is pushed to the tag, not as a child.
	if len(p.blobs) != 2 || len(p.manifests) != 0 {
		t.Fatalf("%d blobs, %d manifests; want 2 blobs and no child manifest", len(p.blobs), len(p.manifests))
	}
}

// TestPushBlobs checks the requests per kind of blob: one the target has
// (HEAD only), one it lacks (HEAD and POST, then PUT with the source GET), one in
// memory (no HEAD).
func TestPushBlobs(t *testing.T) {
	src, dst := fakeregistry.New(t), fakeregistry.New(t)
	present, presentData := fakeregistry.LayerBlob("present")
	missing, missingData := fakeregistry.LayerBlob("missing")
	config, configData := fakeregistry.LayerBlob("config")
	src.Blobs[present.Digest] = presentData
	src.Blobs[missing.Digest] = missingData
	dst.Blobs[present.Digest] = presentData
	pl := testPlaces()
	srcLoc, dstLoc := mustLoc(t, src.Repository()), mustLoc(t, dst.Repository())
	p := &repoPlan{pl: pl, repo: dstLoc, blobs: []blobJob{
		{desc: present, from: srcLoc}, {desc: missing, from: srcLoc}, {desc: config, from: srcLoc, data: configData},
	}}
	if _, err := pl.Prepare([]ref.Location{srcLoc, dstLoc}); err != nil {
		t.Fatal(err)
	}
	err := progress.Wrap("test", progress.Discard(), func(sub progress.SubLogger) error {
		return p.pushBlobs(context.Background(), sub, newTransferSlots(2), 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	got := dst.Requests()
	slices.Sort(got)
	want := []string{"HEAD blob", "HEAD blob", "POST upload", "POST upload+digest", "PUT session", "PUT session"}
	if !slices.Equal(got, want) {
		t.Errorf("target requests %q, want %q", got, want)
	}
	if s := src.Requests(); !slices.Equal(s, []string{"GET blob"}) {
		t.Errorf("source requests %q, want one GET", s)
	}
	if !dst.Has(missing.Digest) || !dst.Has(config.Digest) {
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

// TestTransferSlots: blobs up to oci.SmallTransferSize take the metadataLimit slots,
// larger ones the limit slots; with limit 1 they share one slot.
func TestTransferSlots(t *testing.T) {
	ctx := context.Background()
	small := ocispec.Descriptor{Size: oci.SmallTransferSize}
	large := ocispec.Descriptor{Size: oci.SmallTransferSize + 1}
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
	if got := held(s, small, 20); got != oci.MetadataLimit(2) {
		t.Errorf("%d small blobs at once beside 2 large ones, want %d", got, oci.MetadataLimit(2))
	}
	one := newTransferSlots(1)
	if got := held(one, small, 2) + held(one, large, 2); got != 1 {
		t.Errorf("%d blobs at once with limit 1, want 1", got)
	}
}
