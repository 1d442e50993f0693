package ocilayout

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/placetest"
)

// TestConformance runs the place seam's suite against an OCI layout
// folder, written to a second folder. A layout's Fetch does not check
// digests (its readers do: oci.ReadBlob, export), so Corrupt is not set.
func TestConformance(t *testing.T) {
	placetest.Run(t, func(t *testing.T, img fixture.Image) placetest.Subject {
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		if err := os.Mkdir(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := fixture.WriteLayout(src, map[string]fixture.Blob{placetest.Tag: img.Manifest}, img.Blobs()...); err != nil {
			t.Fatal(err)
		}
		loc, err := ref.Parse(ref.LayoutPrefix + src + ":" + placetest.Tag)
		if err != nil {
			t.Fatal(err)
		}
		target, err := ref.Parse(ref.LayoutPrefix + filepath.Join(dir, "copy"))
		if err != nil {
			t.Fatal(err)
		}
		return placetest.Subject{Place: place.NewRouter(map[string]place.Backend{ref.SchemeLayout: NewLayouts()}), Image: loc, Target: target}
	})
}
