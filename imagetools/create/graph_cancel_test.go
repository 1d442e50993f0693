package create

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestExpandStopsWithContext walks a graph of 40 indexes, each listing the
// next twice (2^40 paths), whose bytes are all known, so that no fetch
// checks the context: the walk must end when its context does.
func TestExpandStopsWithContext(t *testing.T) {
	known := map[digest.Digest][]byte{}
	next := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("leaf"), Size: 4}
	known[next.Digest] = []byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `","config":{},"layers":[]}`)
	for range 40 {
		dt, err := json.Marshal(ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{next, next}})
		if err != nil {
			t.Fatal(err)
		}
		next = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
		known[next.Digest] = dt
	}
	g := newGraphReader(nil, known)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.expand(ctx, &node{desc: next, origin: ref.Location{}, data: known[next.Digest]}) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("expand: %v, want the context's end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("expand still walking 10 s after its context ended")
	}
}
