package export

import (
	"context"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/placetest"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestResolveAllAtOnce checks that the sources' roots are read at once,
// not one after the other (the place holds the first back until the last
// is asked for), and come back in the order of the sources.
func TestResolveAllAtOnce(t *testing.T) {
	m := placetest.NewMemory(place.Capabilities{})
	var sources []Source
	for _, s := range []string{"src.example/a:1", "src.example/b:1", "src.example/c:1"} {
		loc, err := ref.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		data := []byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `","config":{"mediaType":"` +
			ocispec.MediaTypeImageConfig + `","digest":"` + digest.FromString(s).String() + `","size":1},"layers":[]}`)
		m.Add(loc, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(data), Size: int64(len(data))}, data)
		sources = append(sources, Source{Loc: loc, Name: s})
	}
	h := placetest.NewHeld(m, sources[0].Loc, sources[2].Loc)
	// A guard against the wait in Manifest, not a timing: a pass takes no waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	imgs, err := resolveAll(ctx, progress.Discard(), h, sources)
	if err != nil {
		t.Fatalf("resolveAll: %v", err)
	}
	for i, img := range imgs {
		if img.Name != sources[i].Name {
			t.Errorf("image %d is %s, want %s", i, img.Name, sources[i].Name)
		}
	}
}
