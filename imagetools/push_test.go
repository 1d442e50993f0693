package imagetools

import (
	"testing"

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
