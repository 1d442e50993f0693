package create

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// pushInput is what pushAll writes: a root (the new index, or a manifest
// kept as is) and the manifests under it, each with where it can be read.
type pushInput struct {
	// root describes rootBytes.
	root      ocispec.Descriptor
	rootBytes []byte
	// rootOrigin is where the content under a root manifest (not an index)
	// lives; unused for an index.
	rootOrigin ref.Location
	// children are the manifests an index lists; Origins[i] is the
	// repository (or layout) children[i] and its blobs are read from.
	children []ocispec.Descriptor
	origins  []ref.Location
	// known holds bytes already fetched (manifests, configs) by digest, so
	// that nothing is fetched twice.
	known map[digest.Digest][]byte
}

// node is one object of the pushed graph, with where it is read from.
type node struct {
	desc     ocispec.Descriptor
	origin   ref.Location
	data     []byte // manifests and known blobs; nil for blobs to stream
	children []*node
}

// readGraph reads the manifests under the root that some target does not
// already hold (a target that is the origin repository needs nothing), so
// their blobs are known. Every manifest is read once.
func readGraph(parent context.Context, pl place.Reader, c pushInput, targets []ref.Location, limit int) ([]*node, error) {
	tops := c.topLevel()
	var needed []*node
	for _, n := range tops {
		for _, t := range targets {
			if !place.SameRepository(n.origin, t) {
				needed = append(needed, n)
				break
			}
		}
	}
	g := newGraphReader(pl, c.known)
	eg, ctx := errgroup.WithContext(parent)
	eg.SetLimit(oci.MetadataLimit(limit))
	for _, n := range needed {
		eg.Go(func() error { return g.expand(ctx, n) })
	}
	if err := eg.Wait(); err != nil {
		return nil, explainMissing(parent, g, needed, err)
	}
	return tops, nil
}

// topLevel lists the nodes directly under the root: an index's children,
// or for a root manifest its own config and layers.
func (c pushInput) topLevel() []*node {
	if oci.IsIndex(c.root.MediaType) {
		out := make([]*node, len(c.children))
		for i, d := range c.children {
			out[i] = &node{desc: d, origin: c.origins[i], data: c.known[d.Digest]}
		}
		return out
	}
	return []*node{{desc: c.root, origin: c.rootOrigin, data: c.rootBytes, children: nil}}
}

type manifestFetch struct {
	once sync.Once
	data []byte
	err  error
}

// graphReader reads manifest bytes once per digest.
type graphReader struct {
	pl      place.Reader
	known   map[digest.Digest][]byte
	mu      sync.Mutex
	fetched map[digest.Digest]*manifestFetch
}

func newGraphReader(pl place.Reader, known map[digest.Digest][]byte) *graphReader {
	return &graphReader{pl: pl, known: known, fetched: map[digest.Digest]*manifestFetch{}}
}

func (g *graphReader) manifest(ctx context.Context, n *node) ([]byte, error) {
	if n.data != nil {
		return n.data, nil
	}
	g.mu.Lock()
	f, ok := g.fetched[n.desc.Digest]
	if !ok {
		f = &manifestFetch{}
		g.fetched[n.desc.Digest] = f
	}
	g.mu.Unlock()
	f.once.Do(func() {
		fetcher, err := g.pl.Fetcher(ctx, n.origin)
		if err != nil {
			f.err = err
			return
		}
		f.data, f.err = oci.ReadBlob(ctx, fetcher, n.desc)
		if f.err != nil {
			f.err = fmt.Errorf("fetch %s@%s: %w", n.origin.Repository(), n.desc.Digest, f.err)
		}
	})
	return f.data, f.err
}

// expand fills in a manifest's or index's children, recursively.
func (g *graphReader) expand(ctx context.Context, n *node) error {
	// Known manifests are expanded without I/O: the walk itself must stop.
	if err := ctx.Err(); err != nil {
		return err
	}
	isIndex, isManifest := oci.IsIndex(n.desc.MediaType), oci.IsManifest(n.desc.MediaType)
	if !isIndex && !isManifest {
		return nil
	}
	dt, err := g.manifest(ctx, n)
	if err != nil {
		return err
	}
	n.data = dt
	if isIndex {
		var idx ocispec.Index
		if err := json.Unmarshal(dt, &idx); err != nil {
			return fmt.Errorf("parse index %s: %w", n.desc.Digest, err)
		}
		for _, d := range idx.Manifests {
			child := &node{desc: d, origin: n.origin, data: g.known[d.Digest]}
			if err := g.expand(ctx, child); err != nil {
				return err
			}
			n.children = append(n.children, child)
		}
		return nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(dt, &m); err != nil {
		return fmt.Errorf("parse manifest %s: %w", n.desc.Digest, err)
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		n.children = append(n.children, &node{desc: d, origin: n.origin, data: g.known[d.Digest]})
	}
	return nil
}
