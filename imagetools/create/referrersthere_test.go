package create

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/placetest"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestReferrersThereAsksChildren checks that the up-to-date check asks
// about the referrers of each manifest an index lists, not the root's
// alone, and all subjects at once (the place holds the root's back until
// the last child's is asked for): a signature of a child that the target
// lacks makes the image not up to date.
func TestReferrersThereAsksChildren(t *testing.T) {
	m := placetest.NewMemory(place.Capabilities{Referrers: true})
	src, dst := mustLoc(t, "src.example/app:1"), mustLoc(t, "dst.example/app:1")
	var children []ocispec.Descriptor
	for _, arch := range []string{"amd64", "arm64", "s390x"} {
		children = append(children, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(arch), Size: 1})
	}
	dt, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: children})
	if err != nil {
		t.Fatal(err)
	}
	root := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	h := placetest.NewHeld(m, src.WithTag(cosignTags(root.Digest)[0]), src.WithTag(cosignTags(children[2].Digest)[0]))
	pl := place.NewRouter(map[string]place.Backend{"": h})
	// A guard against the wait in Manifest, not a timing: a pass takes no waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	there := func() bool {
		t.Helper()
		ok, err := referrersThere(ctx, pl, src, root, dt, []ref.Location{dst}, nil, 4)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !there() {
		t.Fatal("no referrers anywhere: not up to date")
	}
	sig := []byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `","config":{"mediaType":"x","digest":"` + digest.FromString("c").String() + `","size":1},"layers":[]}`)
	sigDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(sig), Size: int64(len(sig))}
	childSig := cosignTags(children[1].Digest)[2]
	m.Add(src.WithTag(childSig), sigDesc, sig)
	h.Again()
	if there() {
		t.Error("a child's signature the target lacks: up to date")
	}
	m.Add(dst.WithTag(childSig), sigDesc, sig)
	h.Again()
	if !there() {
		t.Error("the child's signature in the target too: not up to date")
	}
}
