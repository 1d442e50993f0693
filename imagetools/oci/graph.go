package oci

// The manifest graph under an image is a DAG that a hostile index can make
// exponential as a tree: 30 indexes, each listing the next twice, are 13 KB
// and 2^30 paths. Every command reads it through one walk (Graph) that reads
// each digest once, bounds how deep indexes nest, and charges what it reads
// to the command's GraphBudget, so that time and memory follow the distinct
// content, and a graph past a limit is refused with a line naming it.

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// MaxIndexDepth bounds how deep indexes nest: the root is at depth 0, and an
// index at depth MaxIndexDepth or deeper is refused. Images as tools write
// them nest none (an index of images and attestations) or one (an index of
// indexes, as some mirrors keep); 4 leaves room for those and refuses
// chains made to blow up.
const MaxIndexDepth = 4

// DefaultMaxManifests is how many distinct manifests and indexes one command
// reads at most by default: a multi-platform image with attestations is
// about 20, a large tar of many images a few thousand.
const DefaultMaxManifests = 10000

// MaxGraphBytes bounds the bytes of distinct manifests and indexes one
// command reads (and holds): 16 of the largest manifests a registry accepts
// (MaxManifestSize), or 10000 manifests of 6 KiB.
const MaxGraphBytes = 64 << 20

// GraphLimits bound what one command reads of manifest graphs.
type GraphLimits struct {
	// Manifests bounds the distinct manifests and indexes read; 0 means
	// DefaultMaxManifests.
	Manifests int
	// Bytes bounds their total size; 0 means MaxGraphBytes.
	Bytes int64
	// Hint ends the line of a graph over the Manifests limit, saying how
	// to raise it (the command's flag).
	Hint string
}

// GraphBudget counts what one command reads of manifests and indexes, each
// digest once, against its GraphLimits. It is safe for concurrent use; a nil
// budget counts nothing.
type GraphBudget struct {
	limits GraphLimits
	mu     sync.Mutex
	seen   map[digest.Digest]bool
	bytes  int64
}

// NewGraphBudget returns an empty budget of limits l (zero fields: defaults).
func NewGraphBudget(l GraphLimits) *GraphBudget {
	if l.Manifests <= 0 {
		l.Manifests = DefaultMaxManifests
	}
	if l.Bytes <= 0 {
		l.Bytes = MaxGraphBytes
	}
	return &GraphBudget{limits: l, seen: map[digest.Digest]bool{}}
}

// Charge counts the manifest or index desc before it is read; a digest
// counted before costs nothing. It refuses the one that would pass a limit,
// wrapping imagetools.ErrTooLarge.
func (b *GraphBudget) Charge(desc ocispec.Descriptor) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[desc.Digest] {
		return nil
	}
	if len(b.seen) >= b.limits.Manifests {
		return limitError(fmt.Sprintf("%s: more than %d distinct manifests and indexes to read, the limit%s", desc.Digest, b.limits.Manifests, b.limits.Hint))
	}
	if desc.Size > b.limits.Bytes-b.bytes {
		return limitError(fmt.Sprintf("%s: the manifests and indexes to read add up to more than %d bytes, the limit of what one command reads of them", desc.Digest, b.limits.Bytes))
	}
	b.seen[desc.Digest] = true
	b.bytes += desc.Size
	return nil
}

// limitError is a graph over a limit: its line says which; it is an
// imagetools.ErrTooLarge.
type limitError string

func (e limitError) Error() string { return string(e) }
func (e limitError) Unwrap() error { return imagetools.ErrTooLarge }

// GraphNode is a manifest or index a Graph read, with From, where it was
// read (a root's, inherited by what it lists).
type GraphNode[T any] struct {
	Desc ocispec.Descriptor
	From T
	Data []byte
	// Children are what it lists: an index's manifests, a manifest's
	// config and layers, in its order.
	Children []ocispec.Descriptor

	done chan struct{}
	err  error
}

// GraphRoot is where a walk starts: Data, when set, are Desc's bytes already
// read; Depth is Desc's depth in the whole graph (1 for the children of an
// index made by the command).
type GraphRoot[T any] struct {
	Desc  ocispec.Descriptor
	From  T
	Data  []byte
	Depth int
}

// Graph is the one walk of manifest graphs: it reads each digest once over
// all its walks (concurrent walks included) through Read, charging Budget
// first. Follow, when set, says which listed manifests and indexes are read
// and walked (nil: all of them); Limit bounds the reads at once (<= 0: 1).
type Graph[T any] struct {
	Read   func(ctx context.Context, from T, desc ocispec.Descriptor) ([]byte, error)
	Follow func(child ocispec.Descriptor) bool
	Budget *GraphBudget
	Limit  int

	mu    sync.Mutex
	nodes map[digest.Digest]*GraphNode[T]
}

// Node returns the node of d once a walk has read it.
func (g *Graph[T]) Node(d digest.Digest) (*GraphNode[T], bool) {
	g.mu.Lock()
	n, ok := g.nodes[d]
	g.mu.Unlock()
	if !ok {
		return nil, false
	}
	select {
	case <-n.done:
		return n, n.err == nil
	default:
		return nil, false
	}
}

// Walk reads roots and, level by level, what they list that Follow keeps,
// each digest once. It returns the nodes this walk reached (roots first,
// then by level, each once), or the first error: a read, a body that does
// not parse, an index nested deeper than MaxIndexDepth, or a limit of the
// budget.
func (g *Graph[T]) Walk(ctx context.Context, roots []GraphRoot[T]) ([]*GraphNode[T], error) {
	seen := map[digest.Digest]bool{}
	var out []*GraphNode[T]
	level := roots
	for len(level) > 0 {
		// Known manifests are walked without I/O: the walk itself stops.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var next []GraphRoot[T]
		for _, r := range level {
			if IsIndex(r.Desc.MediaType) && r.Depth >= MaxIndexDepth {
				return nil, limitError(fmt.Sprintf("index %s: indexes nested deeper than %d, the limit (images nest one or none)", r.Desc.Digest, MaxIndexDepth))
			}
		}
		nodes, err := g.readLevel(ctx, level)
		if err != nil {
			return nil, err
		}
		for i, n := range nodes {
			if seen[n.Desc.Digest] {
				continue
			}
			seen[n.Desc.Digest] = true
			out = append(out, n)
			for _, c := range n.Children {
				if !seen[c.Digest] && IsManifestOrIndex(c.MediaType) && (g.Follow == nil || g.Follow(c)) {
					next = append(next, GraphRoot[T]{Desc: c, From: n.From, Depth: level[i].Depth + 1})
				}
			}
		}
		level = dedupRoots(next, seen)
	}
	return out, nil
}

// dedupRoots keeps the first of each digest not seen yet.
func dedupRoots[T any](rs []GraphRoot[T], seen map[digest.Digest]bool) []GraphRoot[T] {
	var out []GraphRoot[T]
	in := map[digest.Digest]bool{}
	for _, r := range rs {
		if !seen[r.Desc.Digest] && !in[r.Desc.Digest] {
			in[r.Desc.Digest] = true
			out = append(out, r)
		}
	}
	return out
}

// readLevel reads (or waits for another walk's read of) each root, Limit at
// a time; nodes[i] is roots[i]'s.
func (g *Graph[T]) readLevel(ctx context.Context, roots []GraphRoot[T]) ([]*GraphNode[T], error) {
	nodes := make([]*GraphNode[T], len(roots))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(max(g.Limit, 1))
	for i, r := range roots {
		eg.Go(func() error {
			n, err := g.node(ectx, r)
			nodes[i] = n
			return err
		})
	}
	return nodes, eg.Wait()
}

// node returns r's node, read once over all walks.
func (g *Graph[T]) node(ctx context.Context, r GraphRoot[T]) (*GraphNode[T], error) {
	g.mu.Lock()
	if g.nodes == nil {
		g.nodes = map[digest.Digest]*GraphNode[T]{}
	}
	n, ok := g.nodes[r.Desc.Digest]
	if !ok {
		n = &GraphNode[T]{Desc: r.Desc, From: r.From, done: make(chan struct{})}
		g.nodes[r.Desc.Digest] = n
	}
	g.mu.Unlock()
	if !ok {
		n.Data, n.Children, n.err = g.read(ctx, r)
		close(n.done)
	}
	select {
	case <-n.done:
		return n, n.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (g *Graph[T]) read(ctx context.Context, r GraphRoot[T]) ([]byte, []ocispec.Descriptor, error) {
	data := r.Data
	if data == nil {
		if err := g.Budget.Charge(r.Desc); err != nil {
			return nil, nil, err
		}
		var err error
		if data, err = g.Read(ctx, r.From, r.Desc); err != nil {
			return nil, nil, err
		}
	}
	children, err := Children(r.Desc, data)
	return data, children, err
}

// Children lists what the manifest or index desc (bytes data) refers to:
// an index's manifests, a manifest's config and layers.
func Children(desc ocispec.Descriptor, data []byte) ([]ocispec.Descriptor, error) {
	if IsIndex(desc.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			return nil, fmt.Errorf("parse index %s: %w", desc.Digest, err)
		}
		return idx.Manifests, nil
	}
	if !IsManifest(desc.MediaType) {
		return nil, nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", desc.Digest, err)
	}
	return append([]ocispec.Descriptor{m.Config}, m.Layers...), nil
}
