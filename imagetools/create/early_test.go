package create

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memPlace is a place in memory that holds a config back until a layer
// check has come: a create that reads every config before its first check
// waits on it until its context ends.
type memPlace struct {
	mu        sync.Mutex
	manifests map[string][]byte // by location
	blobs     map[digest.Digest][]byte
	checks    map[digest.Digest]int
	fetches   map[digest.Digest]int
	checked   chan struct{}
	once      sync.Once
}

func (m *memPlace) Capabilities(ref.Location) place.Capabilities {
	return place.Capabilities{CheckFirst: true}
}

func (m *memPlace) Manifest(_ context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.manifests[loc.String()]
	if !ok {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %w", loc, errdefs.ErrNotFound)
	}
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(data), Size: int64(len(data))}, data, nil
}

func (m *memPlace) Fetcher(context.Context, ref.Location) (remotes.Fetcher, error) { return m, nil }

func (m *memPlace) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if desc.MediaType == ocispec.MediaTypeImageConfig {
		select {
		case <-m.checked:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetches[desc.Digest]++
	return io.NopCloser(bytes.NewReader(m.blobs[desc.Digest])), nil
}

func (m *memPlace) Tags(context.Context, ref.Location) (map[string]bool, error) { return nil, nil }
func (m *memPlace) Referrers(context.Context, ref.Location) ([]ocispec.Descriptor, bool, error) {
	return nil, false, nil
}
func (m *memPlace) Prepare([]ref.Location) (func(), error) { return func() {}, nil }

func (m *memPlace) CheckBlob(_ context.Context, _ ref.Location, desc ocispec.Descriptor) (bool, place.Upload, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checks[desc.Digest]++
	m.once.Do(func() { close(m.checked) })
	return false, nil, nil
}

func (m *memPlace) MountBlob(context.Context, ref.Location, ref.Location, ocispec.Descriptor) (bool, place.Upload, error) {
	return false, nil, nil
}

func (m *memPlace) PushBlob(ctx context.Context, _ ref.Location, b place.Blob, _ place.Upload) error {
	if b.Data != nil {
		return nil
	}
	rc, err := b.Open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

func (m *memPlace) PutManifest(context.Context, ref.Location, ocispec.Descriptor, []byte) (bool, error) {
	return false, nil
}
func (m *memPlace) Tag(context.Context, ref.Location, ocispec.Descriptor, []byte) error { return nil }
func (m *memPlace) ReadTag(context.Context, ref.Location) ([]byte, bool, error) {
	return nil, false, nil
}
func (m *memPlace) Untag(context.Context, ref.Location) (bool, error) { return false, nil }

// add stores a single-platform image at loc: a config and two layers.
func (m *memPlace) add(t *testing.T, loc, arch string) []ocispec.Descriptor {
	t.Helper()
	blob := func(mt string, data []byte) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}
		m.blobs[d.Digest] = data
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
	m.manifests[loc] = data
	return layers
}

// TestCreateChecksBesideConfigs checks that the layers of the sources are
// checked in the target while their configs are read, not after, and that
// each is still checked once and read once.
func TestCreateChecksBesideConfigs(t *testing.T) {
	m := &memPlace{manifests: map[string][]byte{}, blobs: map[digest.Digest][]byte{}, checks: map[digest.Digest]int{},
		fetches: map[digest.Digest]int{}, checked: make(chan struct{})}
	layers := append(m.add(t, "src.example/app:amd64", "amd64"), m.add(t, "src.example/app:arm64", "arm64")...)
	// A guard against the wait in Fetch, not a timing: a pass takes no waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Create(ctx, m, Options{Sources: []string{"src.example/app:amd64", "src.example/app:arm64"}, Tags: []string{"dst.example/app:multi"}})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	for _, l := range layers {
		if m.checks[l.Digest] != 1 || m.fetches[l.Digest] != 1 {
			t.Errorf("layer %s: checked %d times, read %d times; want 1 and 1", l.Digest, m.checks[l.Digest], m.fetches[l.Digest])
		}
	}
}
