package oci

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// graphStore holds blobs by digest and counts the reads of each.
type graphStore struct {
	mu    sync.Mutex
	blobs map[digest.Digest][]byte
	reads map[digest.Digest]int
}

func (s *graphStore) put(t *testing.T, mediaType string, v any) ocispec.Descriptor {
	t.Helper()
	dt, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	s.blobs[d.Digest] = dt
	return d
}

func (s *graphStore) read(_ context.Context, _ string, desc ocispec.Descriptor) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads[desc.Digest]++
	return s.blobs[desc.Digest], nil
}

// chain makes n indexes, each listing the next twice, over one manifest;
// it returns them outermost first.
func (s *graphStore) chain(t *testing.T, n int) []ocispec.Descriptor {
	cfg := s.put(t, ocispec.MediaTypeImageConfig, map[string]any{})
	m := s.put(t, ocispec.MediaTypeImageManifest, ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg})
	out := []ocispec.Descriptor{m}
	for range n {
		next := out[0]
		idx := s.put(t, ocispec.MediaTypeImageIndex, ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{next, next}})
		out = append([]ocispec.Descriptor{idx}, out...)
	}
	return out
}

func newGraphStore() *graphStore {
	return &graphStore{blobs: map[digest.Digest][]byte{}, reads: map[digest.Digest]int{}}
}

func TestGraphReadsEachDigestOnce(t *testing.T) {
	s := newGraphStore()
	chain := s.chain(t, MaxIndexDepth-1)
	g := &Graph[string]{Read: s.read, Budget: NewGraphBudget(GraphLimits{}), Limit: 4}
	nodes, err := g.Walk(context.Background(), []GraphRoot[string]{{Desc: chain[0], From: "src"}, {Desc: chain[0], From: "src"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != len(chain) {
		t.Errorf("%d nodes, want %d (one per digest)", len(nodes), len(chain))
	}
	for _, d := range chain {
		if s.reads[d.Digest] != 1 {
			t.Errorf("%s read %d times, want once", d.Digest, s.reads[d.Digest])
		}
	}
	// A second walk reads nothing again.
	if _, err := g.Walk(context.Background(), []GraphRoot[string]{{Desc: chain[1], From: "src"}}); err != nil {
		t.Fatal(err)
	}
	if s.reads[chain[1].Digest] != 1 {
		t.Errorf("second walk read %s again", chain[1].Digest)
	}
}

func TestGraphLimits(t *testing.T) {
	s := newGraphStore()
	chain := s.chain(t, 30)
	for _, c := range []struct {
		name   string
		roots  []GraphRoot[string]
		limits GraphLimits
		want   string
	}{
		{"deep chain", []GraphRoot[string]{{Desc: chain[0]}}, GraphLimits{}, "indexes nested deeper than 4"},
		{"deep from depth 1", []GraphRoot[string]{{Desc: chain[26], Depth: 1}}, GraphLimits{}, "indexes nested deeper than 4"},
		{"manifests", []GraphRoot[string]{{Desc: chain[28]}}, GraphLimits{Manifests: 1, Hint: " (--max-manifests raises it)"},
			"more than 1 distinct manifests and indexes to read, the limit (--max-manifests raises it)"},
		{"bytes", []GraphRoot[string]{{Desc: chain[28]}}, GraphLimits{Bytes: chain[28].Size + 1}, "add up to more than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := &Graph[string]{Read: s.read, Budget: NewGraphBudget(c.limits)}
			_, err := g.Walk(context.Background(), c.roots)
			if !errors.Is(err, imagetools.ErrTooLarge) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrTooLarge saying %q", err, c.want)
			}
		})
	}
}
