package create

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/placetest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestIsReferrerTag(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for tag, want := range map[string]bool{
		"sha256-" + hex:           true,
		"sha256-" + hex + ".sig":  true,
		"sha256-" + hex + ".att":  true,
		"sha256-" + hex + ".sbom": true,
		"sha256-" + hex + ".txt":  false,
		"sha256-" + hex[:10]:      false,
		"latest":                  false,
		"v1-2":                    false,
	} {
		if got := IsReferrerTag(tag); got != want {
			t.Errorf("IsReferrerTag(%q) = %v, want %v", tag, got, want)
		}
	}
}

// heldSource is a memory place whose source root is held back until the
// target's tag has been read, and which counts the reads of that tag.
type heldSource struct {
	*placetest.Memory
	target  ref.Location
	read    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	tagRead int
}

func (h *heldSource) Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	if loc.Host() != h.target.Host() && loc.Digest == "" {
		select {
		case <-h.read:
		case <-ctx.Done():
			return ocispec.Descriptor{}, nil, ctx.Err()
		}
	}
	return h.Memory.Manifest(ctx, loc)
}

func (h *heldSource) ReadTag(ctx context.Context, t ref.Location) ([]byte, bool, error) {
	if t == h.target {
		h.mu.Lock()
		h.tagRead++
		h.mu.Unlock()
		h.once.Do(func() { close(h.read) })
	}
	return h.Memory.ReadTag(ctx, t)
}

// TestCopyReadsTargetWithSource checks that Copy reads the target's tag
// while it reads the source's root, not after (the place holds the root
// back until the tag is read), and reads it once: the tag step moves it
// from that read.
func TestCopyReadsTargetWithSource(t *testing.T) {
	m := placetest.NewMemory(place.Capabilities{CheckFirst: true})
	addImage(t, m, "src.example/app:1", "amd64")
	h := &heldSource{Memory: m, target: mustLoc(t, "dst.example/app:2"), read: make(chan struct{})}
	// A guard against the wait in Manifest, not a timing: a pass takes no waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Copy(ctx, place.NewRouter(map[string]place.Backend{"": h}), mustLoc(t, "src.example/app:1"), []ref.Location{h.target}, CopyOptions{})
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if _, data, err := m.Manifest(ctx, h.target); err != nil || digest.FromBytes(data) != res.Desc.Digest {
		t.Fatalf("target after the copy: %v, digest %s, want %s", err, digest.FromBytes(data), res.Desc.Digest)
	}
	if h.tagRead != 1 {
		t.Errorf("the target's tag was read %d times, want 1", h.tagRead)
	}
}
