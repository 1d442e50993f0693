package archive_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/archive"
	"github.com/docker-imgx/docker-imgx/imagetools/imagetar"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/placetest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestConformance runs the place seam's suite against an image tar (an OCI
// layout inside, as docker save writes with the containerd image store):
// only read from, its blobs checked as they are read.
func TestConformance(t *testing.T) {
	placetest.Run(t, func(t *testing.T, img fixture.Image) placetest.Subject {
		bad := placetest.Corrupted()
		path := filepath.Join(t.TempDir(), "image.tar")
		if err := os.WriteFile(path, placetest.LayoutTar(t, img, placetest.Tag, bad), 0o644); err != nil {
			t.Fatal(err)
		}
		loc, err := ref.Parse(ref.ArchivePrefix + path + ":" + placetest.Tag)
		if err != nil {
			t.Fatal(err)
		}
		tars := archive.New(imagetar.Options{})
		t.Cleanup(func() { _ = tars.Close() })
		return placetest.Subject{Place: place.NewRouter(map[string]place.Backend{ref.SchemeArchive: tars}), Image: loc,
			Corrupt: func(*testing.T) ocispec.Descriptor { return bad.Desc }}
	})
}
