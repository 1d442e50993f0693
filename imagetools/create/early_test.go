package create

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/placetest"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// addImage stores a single-platform image at loc: a config and two layers.
func addImage(t *testing.T, m *placetest.Memory, loc, arch string) []ocispec.Descriptor {
	t.Helper()
	at := mustLoc(t, loc)
	blob := func(mt string, data []byte) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}
		m.Add(at.WithTag(""), d, data)
		return d
	}
	cfg, err := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: arch},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("1" + arch), digest.FromString("2" + arch)}}})
	if err != nil {
		t.Fatal(err)
	}
	layers := []ocispec.Descriptor{blob(ocispec.MediaTypeImageLayer, []byte("one "+arch)), blob(ocispec.MediaTypeImageLayer, []byte("two "+arch))}
	data, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: blob(ocispec.MediaTypeImageConfig, cfg), Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	m.Add(at, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(data), Size: int64(len(data))}, data)
	return layers
}

// TestCreateChecksBesideConfigs checks that the layers of the sources are
// checked in the target while their configs are read, not after, and that
// each is still checked once and read once.
func TestCreateChecksBesideConfigs(t *testing.T) {
	// The place holds a config back until a layer check has come: a create
	// that reads every config before its first check waits on it until its
	// context ends.
	m := placetest.NewMemory(place.Capabilities{CheckFirst: true})
	checked := make(chan struct{})
	var once sync.Once
	m.OnCheck = func(ref.Location, ocispec.Descriptor) { once.Do(func() { close(checked) }) }
	m.BeforeFetch = func(ctx context.Context, desc ocispec.Descriptor) error {
		if desc.MediaType != ocispec.MediaTypeImageConfig {
			return nil
		}
		select {
		case <-checked:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	layers := append(addImage(t, m, "src.example/app:amd64", "amd64"), addImage(t, m, "src.example/app:arm64", "arm64")...)
	// A guard against the wait in Fetch, not a timing: a pass takes no waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Create(ctx, m.Router(), Options{Sources: []string{"src.example/app:amd64", "src.example/app:arm64"}, Tags: []string{"dst.example/app:multi"}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for _, l := range layers {
		if checks, fetches := m.Calls("check", l.Digest), m.Calls("fetch", l.Digest); checks != 1 || fetches != 1 {
			t.Errorf("layer %s: checked %d times, read %d times; want 1 and 1", l.Digest, checks, fetches)
		}
	}
}
