package create

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blobJob is one blob to put in a target repository.
type blobJob struct {
	desc ocispec.Descriptor
	// from is where the blob is read when it is uploaded.
	from ref.Location
	data []byte
	// mount links the blob from mountFrom, a repository of the target's
	// registry (from itself, or another target), instead of copying it.
	mount     bool
	mountFrom ref.Location
	// after, for a mount from another target, is closed once that target
	// holds the blob; ready, for the upload it waits on, is that signal.
	after *blobReady
	ready *blobReady
}

// blobReady tells the mounts waiting on a blob's upload to another
// repository of the same registry that it is there, or that the upload
// failed (then they copy the blob themselves).
type blobReady struct {
	once   sync.Once
	done   chan struct{}
	failed bool
}

// errUploadFailed is what a mount that waited on another push's upload
// learns when that upload failed.
var errUploadFailed = errors.New("the upload waited on failed")

// fail marks the upload as failed, unless it was signalled before.
func (r *blobReady) fail() {
	if r != nil {
		r.once.Do(func() { r.failed = true; close(r.done) })
	}
}

func newBlobReady() *blobReady { return &blobReady{done: make(chan struct{})} }

// signal marks the blob as present; later calls do nothing.
func (r *blobReady) signal() {
	if r != nil {
		r.once.Do(func() { close(r.done) })
	}
}

// wait returns when the blob is present or ctx ends.
func (r *blobReady) wait(ctx context.Context) error {
	if r == nil {
		return nil
	}
	select {
	case <-r.done:
		if r.failed {
			return errUploadFailed
		}
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// repoPlan is everything one target repository receives, in order: blobs
// (any order, in parallel), manifests (children before parents), the root
// by digest (only when several repositories are written), then the tags.
type repoPlan struct {
	// pl is the place the plan writes to; planning asks only its
	// capabilities.
	pl        place.Place
	repo      ref.Location
	blobs     []blobJob
	manifests []*node
	pushRoot  bool
	tags      []ref.Location
	rootDesc  ocispec.Descriptor
	rootBytes []byte
	// early holds the checks started while the sources were read.
	early *earlyChecks
	// unindexed are the manifests put that the place did not index by
	// their subject (no referrers API): their subjects need fallback tags.
	mu        sync.Mutex
	unindexed map[digest.Digest]bool
}

// planPush lists, per target repository (in the order of first mention),
// what it must receive. It is pure: the graph is already loaded.
func planPush(graph []*node, c pushInput, targets []ref.Location, pl place.Place) []*repoPlan {
	var plans []*repoPlan
	byRepo := map[string]*repoPlan{}
	for _, t := range targets {
		p, ok := byRepo[t.Repository()]
		if !ok {
			p = &repoPlan{repo: t.WithTag(""), rootDesc: c.root, rootBytes: c.rootBytes, pl: pl}
			byRepo[t.Repository()] = p
			plans = append(plans, p)
		}
		p.tags = append(p.tags, t)
	}
	isIndex := oci.IsIndex(c.root.MediaType)
	for _, p := range plans {
		seen := map[digest.Digest]bool{}
		for _, n := range graph {
			if isIndex {
				p.addNode(n, seen)
			} else {
				p.addBlobs(n, seen)
			}
		}
		// With one target repository the first tag stores the root as safely
		// as a put by digest would: nothing else has moved before it. A
		// target without a tag (a copy by digest) gets it by digest.
		p.pushRoot = len(plans) > 1 || slices.ContainsFunc(p.tags, func(t ref.Location) bool { return t.Tag == "" })
	}
	mountFromSiblings(plans)
	return plans
}

// mountFromSiblings uploads a blob that several target repositories of one
// registry need to the first of them only: the others mount it from there
// once it is in (1 request and no bytes instead of a check and an upload).
// A mount only ever waits on a plan listed before its own, so no two plans
// wait on each other.
func mountFromSiblings(plans []*repoPlan) {
	type key struct {
		host string
		dgst digest.Digest
	}
	first := map[key]*blobJob{}
	firstRepo := map[key]ref.Location{}
	for _, p := range plans {
		if !p.pl.Capabilities(p.repo).Mount {
			continue
		}
		for i := range p.blobs {
			b := &p.blobs[i]
			if b.mount {
				continue
			}
			k := key{p.repo.Host(), b.desc.Digest}
			up, ok := first[k]
			if !ok {
				first[k], firstRepo[k] = b, p.repo
				continue
			}
			if up.ready == nil {
				up.ready = newBlobReady()
			}
			b.mount, b.mountFrom, b.after = true, firstRepo[k], up.ready
		}
	}
}

// addNode plans a manifest (or index) and what is under it, children first.
func (p *repoPlan) addNode(n *node, seen map[digest.Digest]bool) {
	if seen[n.desc.Digest] || place.SameRepository(n.origin, p.repo) {
		return
	}
	seen[n.desc.Digest] = true
	if !oci.IsManifestOrIndex(n.desc.MediaType) {
		mount := place.Mountable(p.pl, n.origin, p.repo)
		b := blobJob{desc: n.desc, from: n.origin, data: n.data, mount: mount}
		if mount {
			b.mountFrom = n.origin
		}
		p.blobs = append(p.blobs, b)
		return
	}
	for _, child := range n.children {
		p.addNode(child, seen)
	}
	p.manifests = append(p.manifests, n)
}

// addBlobs plans the config and layers of a root manifest (the manifest
// itself is the root, pushed to the tags).
func (p *repoPlan) addBlobs(n *node, seen map[digest.Digest]bool) {
	for _, child := range n.children {
		p.addNode(child, seen)
	}
}

// manifestLevels groups manifests (listed children before parents) so that
// each group only refers to manifests of earlier groups: image manifests
// first, then indexes of them, and so on. Order within a group is kept.
func manifestLevels(ms []*node) [][]*node {
	depth := map[digest.Digest]int{}
	var levels [][]*node
	for _, n := range ms {
		d := 0
		for _, c := range n.children {
			if cd, ok := depth[c.desc.Digest]; ok && cd+1 > d {
				d = cd + 1
			}
		}
		depth[n.desc.Digest] = d
		for len(levels) <= d {
			levels = append(levels, nil)
		}
		levels[d] = append(levels[d], n)
	}
	return levels
}
