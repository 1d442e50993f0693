package placetest

import (
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func mustParse(t *testing.T, s string) ref.Location {
	t.Helper()
	l, err := ref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// memoryFactory stores img in a Memory; readOnly hides its writer.
func memoryFactory(readOnly bool) Factory {
	return func(t *testing.T, img fixture.Image) Subject {
		m := NewMemory(place.Capabilities{CheckFirst: true})
		loc := mustParse(t, "mem.example/app:"+Tag)
		for _, b := range img.Blobs() {
			m.Add(loc.WithTag(""), b.Desc, b.Data)
		}
		m.Add(loc, img.Manifest.Desc, img.Manifest.Data)
		s := Subject{Place: m.Router(), Image: loc, Target: mustParse(t, "mem.example/copy")}
		if readOnly {
			s.Place, s.Target = place.NewRouter(map[string]place.Backend{"": ReadOnly(m)}), ref.Location{}
		}
		s.Corrupt = func(t *testing.T) ocispec.Descriptor {
			d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("other bytes"), Size: 9}
			m.Add(loc.WithTag(""), d, []byte("bad bytes"))
			return d
		}
		return s
	}
}

// TestMemoryConformance: the fake keeps the promises of the places it
// stands in for, written to and read only.
func TestMemoryConformance(t *testing.T) {
	t.Run("writable", func(t *testing.T) { Run(t, memoryFactory(false)) })
	t.Run("read only", func(t *testing.T) { Run(t, memoryFactory(true)) })
}
