package create

import (
	"context"
	"fmt"
	"sync"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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
// their blobs are known. Every manifest is read once (oci.Graph).
func readGraph(ctx context.Context, g *graphReader, c pushInput, targets []ref.Location) ([]*node, error) {
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
	depth := 0
	if oci.IsIndex(c.root.MediaType) {
		depth = 1 // the children of the index create makes
	}
	if err := g.expand(ctx, depth, needed...); err != nil {
		return nil, explainMissing(ctx, g, needed, err)
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

// graphReader reads the graphs create copies (the sources' and their
// referrers') through one oci.Graph, so that each manifest is read once and
// counted against the command's budget; nodes met twice are shared.
type graphReader struct {
	pl    place.Reader
	known map[digest.Digest][]byte
	graph *oci.Graph[ref.Location]
	mu    sync.Mutex
	nodes map[digest.Digest]*node
}

func newGraphReader(pl place.Reader, known map[digest.Digest][]byte, budget *oci.GraphBudget, limit int) *graphReader {
	g := &graphReader{pl: pl, known: known, nodes: map[digest.Digest]*node{}}
	g.graph = &oci.Graph[ref.Location]{Read: g.read, Budget: budget, Limit: oci.MetadataLimit(limit)}
	return g
}

// read reads one manifest or index from origin (or known bytes).
func (g *graphReader) read(ctx context.Context, origin ref.Location, desc ocispec.Descriptor) ([]byte, error) {
	if dt, ok := g.known[desc.Digest]; ok {
		return dt, nil
	}
	fetcher, err := g.pl.Fetcher(ctx, origin)
	if err != nil {
		return nil, err
	}
	dt, err := oci.ReadBlob(ctx, fetcher, desc)
	if err != nil {
		return nil, fmt.Errorf("fetch %s@%s: %w", origin.Repository(), desc.Digest, err)
	}
	return dt, nil
}

// charge counts a manifest read outside the graph (a tag's) in its budget.
func (g *graphReader) charge(desc ocispec.Descriptor) error { return g.graph.Budget.Charge(desc) }

// manifest reads n's bytes alone, without the graph (explainMissing asks
// again after a failed walk).
func (g *graphReader) manifest(ctx context.Context, n *node) ([]byte, error) {
	if n.data != nil {
		return n.data, nil
	}
	return g.read(ctx, n.origin, n.desc)
}

// expand fills in the children of the manifests and indexes among ns, at
// depth in the graph, and everything under them.
func (g *graphReader) expand(ctx context.Context, depth int, ns ...*node) error {
	var roots []oci.GraphRoot[ref.Location]
	for _, n := range ns {
		if oci.IsManifestOrIndex(n.desc.MediaType) {
			roots = append(roots, oci.GraphRoot[ref.Location]{Desc: n.desc, From: n.origin, Data: n.data, Depth: depth})
		}
	}
	if _, err := g.graph.Walk(ctx, roots); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, n := range ns {
		if gn, ok := g.graph.Node(n.desc.Digest); ok && oci.IsManifestOrIndex(n.desc.MediaType) {
			n.data = gn.Data
			n.children = g.childrenOf(gn)
		}
	}
	return nil
}

// childrenOf makes the nodes a graph node lists: manifests and indexes
// shared by digest, blobs each its own.
func (g *graphReader) childrenOf(gn *oci.GraphNode[ref.Location]) []*node {
	out := make([]*node, 0, len(gn.Children))
	for _, d := range gn.Children {
		out = append(out, g.shared(d, gn.From))
	}
	return out
}

// shared returns the one node of manifest or index d, made once with its
// children; a blob gets a node of its own.
func (g *graphReader) shared(d ocispec.Descriptor, from ref.Location) *node {
	gn, ok := g.graph.Node(d.Digest)
	if !oci.IsManifestOrIndex(d.MediaType) || !ok {
		return &node{desc: d, origin: from, data: g.known[d.Digest]}
	}
	if n, ok := g.nodes[d.Digest]; ok {
		return n
	}
	n := &node{desc: d, origin: gn.From, data: gn.Data}
	g.nodes[d.Digest] = n
	n.children = g.childrenOf(gn)
	return n
}
