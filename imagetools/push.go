package imagetools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/errdefs"
	distref "github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// DefaultMaxConcurrency bounds parallel blob transfers when none is given.
// Measured with the benchmark (create of 8 images to a second registry, 0
// and 20 ms latency, 2 cores): 2 and 4 leave round trips unhidden, 8 and 12
// gained nothing over 5 (the copy is bound by hashing and the registries'
// own work, not by waiting). 5 is also the Docker daemon's default for
// concurrent uploads, a pace registries and their rate limits are used to.
// It bounds the transfers of blobs over smallBlobSize; smaller blobs and
// the requests that move no blob run beside them, up to metadataFactor
// times as many (see metadataLimit and transferSlots).
const DefaultMaxConcurrency = 5

// metadataFactor scales --max-concurrency into the bound of the small
// requests that carry no layer: reads of source manifests and configs,
// existence checks (HEAD) and mounts. They cost the registry a lookup, not
// a stream, and bounding them like transfers made a create of 8 images into
// a new repository wait 8 round trips for its 40 mounts and 4 for its 16
// source reads (make bench, 20 ms latency); at 4x they take 2 and 2.
const metadataFactor = 4

// smallBlobSize is the largest blob copied or fetched as a small request:
// at 1 Gbit/s, 4 MiB take about 34 ms, under two round trips to a remote
// registry, so for such a blob the round trips weigh as much as the bytes.
// A copy or a fetch into a file holds one buffer whatever the blob's size.
const smallBlobSize = 4 << 20

// transferSlots bound the blob copies running at once over all targets: a
// large blob takes one of limit slots, a small one one of metadataLimit
// (with limit 1, both share the one slot).
type transferSlots struct {
	large, small chan struct{}
}

func newTransferSlots(limit int) *transferSlots {
	if limit == 1 {
		// One at a time, whatever the size.
		one := make(chan struct{}, 1)
		return &transferSlots{large: one, small: one}
	}
	return &transferSlots{large: make(chan struct{}, limit), small: make(chan struct{}, metadataLimit(limit))}
}

// acquire takes a slot for desc; the returned func gives it back.
func (s *transferSlots) acquire(ctx context.Context, desc ocispec.Descriptor) (func(), error) {
	slots := s.large
	if desc.Size <= smallBlobSize {
		slots = s.small
	}
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// metadataLimit is the bound of the small requests (see metadataFactor;
// export's and inspect's manifest and config reads use it too) for a
// transfer bound of limit; 1 keeps them one at a time too, so that a command
// can be run in order, request by request, to follow what a registry does.
func metadataLimit(limit int) int {
	if limit == 1 {
		return 1
	}
	return metadataFactor * limit
}

// PushContent is what Push writes: a root (the new index, or a manifest
// kept as is) and the manifests under it, each with where it can be read.
type PushContent struct {
	// Root describes RootBytes.
	Root      ocispec.Descriptor
	RootBytes []byte
	// RootOrigin is where the content under a root manifest (not an index)
	// lives; unused for an index.
	RootOrigin Location
	// Children are the manifests an index lists; Origins[i] is the
	// repository (or layout) Children[i] and its blobs are read from.
	Children []ocispec.Descriptor
	Origins  []Location
	// Known holds bytes already fetched (manifests, configs) by digest, so
	// that nothing is fetched twice.
	Known map[digest.Digest][]byte
}

// PushOptions say where and how Push writes.
type PushOptions struct {
	// Targets are tagged locations: registry references or OCI layouts.
	Targets []Location
	// MaxConcurrency bounds blob transfers running at once over all targets;
	// 0 means DefaultMaxConcurrency.
	MaxConcurrency int
	// Progress receives one vertex per target repository; nil discards.
	Progress progress.Writer
	// Referrers copies, with every manifest copied into another registry
	// repository, its cosign tags and OCI referrers (see referrers.go).
	Referrers bool
}

// node is one object of the pushed graph, with where it is read from.
type node struct {
	desc     ocispec.Descriptor
	origin   Location
	data     []byte // manifests and known blobs; nil for blobs to stream
	children []*node
}

// blobJob is one blob to put in a target repository.
type blobJob struct {
	desc ocispec.Descriptor
	// from is where the blob is read when it is uploaded.
	from Location
	data []byte
	// mount links the blob from mountFrom, a repository of the target's
	// registry (from itself, or another target), instead of copying it.
	mount     bool
	mountFrom Location
	// after, for a mount from another target, is closed once that target
	// holds the blob; ready, for the upload it waits on, is that signal.
	after *blobReady
	ready *blobReady
}

// blobReady tells the mounts waiting on a blob's upload to another
// repository of the same registry that it is there.
type blobReady struct {
	once sync.Once
	done chan struct{}
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
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// repoPlan is everything one target repository receives, in order: blobs
// (any order, in parallel), manifests (children before parents), the root
// by digest (only when several repositories are written), then the tags.
type repoPlan struct {
	repo      Location
	blobs     []blobJob
	manifests []*node
	pushRoot  bool
	tags      []Location
	rootDesc  ocispec.Descriptor
	rootBytes []byte
}

// Push copies content to every target: each blob and child manifest by
// digest first (skipping what a target repository is known to hold because
// the source is that repository), then, once every target repository holds
// all of it, the root to each tag. A failure before the tag step moves no tag.
func Push(ctx context.Context, r *Resolver, c PushContent, opts PushOptions) error {
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = DefaultMaxConcurrency
	}
	if opts.Progress == nil {
		opts.Progress = progress.Discard()
	}
	if err := configureRegistries(r, c, opts.Targets); err != nil {
		return err
	}
	fresh := newLayoutFolders(opts.Targets)
	if err := push(ctx, r, c, opts); err != nil {
		// A layout this push created holds only part of the content and no
		// tag: remove it, as a failed export removes its output.
		for _, dir := range fresh {
			_ = os.RemoveAll(dir)
		}
		return err
	}
	return nil
}

// newLayoutFolders lists the layout targets whose folder does not exist yet.
func newLayoutFolders(targets []Location) []string {
	var out []string
	for _, t := range targets {
		if !t.IsLayout() || slices.Contains(out, t.Layout) {
			continue
		}
		if _, err := os.Lstat(t.Layout); errors.Is(err, os.ErrNotExist) {
			out = append(out, t.Layout)
		}
	}
	return out
}

// push loads what is under the root, plans each target repository and runs
// the plans.
func push(ctx context.Context, r *Resolver, c PushContent, opts PushOptions) error {
	graph, err := loadGraph(ctx, r, c, opts.Targets, opts.MaxConcurrency)
	if err != nil {
		return err
	}
	plans := planPush(graph, c, opts.Targets)
	var refs *referrerFinder
	if opts.Referrers {
		refs = newReferrerFinder(r, c, opts.MaxConcurrency)
	}
	return runPlans(ctx, r, plans, refs, opts)
}

// configureRegistries sets up every registry Push reaches before anything
// runs in parallel: a host's bad configuration fails before anything moves,
// and no host is configured while the shared transport makes its first
// request (configuring a host clones the TLS settings that request writes).
func configureRegistries(r *Resolver, c PushContent, targets []Location) error {
	for _, l := range append(append([]Location{c.RootOrigin}, c.Origins...), targets...) {
		if l.IsLayout() || l.Host() == "" {
			continue
		}
		if _, err := r.registryHosts(l.Host()); err != nil {
			return err
		}
	}
	return nil
}

// loadGraph fetches the manifests under the root that some target does not
// already hold (a target that is the origin repository needs nothing), so
// their blobs are known. Every manifest is fetched once.
func loadGraph(ctx context.Context, r *Resolver, c PushContent, targets []Location, limit int) ([]*node, error) {
	tops := c.topLevel()
	var needed []*node
	for _, n := range tops {
		for _, t := range targets {
			if !sameRepository(n.origin, t) {
				needed = append(needed, n)
				break
			}
		}
	}
	g := &graphLoader{r: r, known: c.Known, fetched: map[digest.Digest]*manifestFetch{}}
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(metadataLimit(limit))
	for _, n := range needed {
		eg.Go(func() error { return g.expand(ctx, n) })
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return tops, nil
}

// topLevel lists the nodes directly under the root: an index's children,
// or for a root manifest its own config and layers.
func (c PushContent) topLevel() []*node {
	if images.IsIndexType(c.Root.MediaType) {
		out := make([]*node, len(c.Children))
		for i, d := range c.Children {
			out[i] = &node{desc: d, origin: c.Origins[i], data: c.Known[d.Digest]}
		}
		return out
	}
	return []*node{{desc: c.Root, origin: c.RootOrigin, data: c.RootBytes, children: nil}}
}

type manifestFetch struct {
	once sync.Once
	data []byte
	err  error
}

// graphLoader fetches manifest bytes once per digest.
type graphLoader struct {
	r       *Resolver
	known   map[digest.Digest][]byte
	mu      sync.Mutex
	fetched map[digest.Digest]*manifestFetch
}

func (g *graphLoader) manifest(ctx context.Context, n *node) ([]byte, error) {
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
		fetcher, err := g.r.Fetcher(ctx, n.origin)
		if err != nil {
			f.err = err
			return
		}
		f.data, f.err = FetchManifest(ctx, fetcher, n.desc)
		if f.err != nil {
			f.err = fmt.Errorf("fetch %s@%s: %w", n.origin.Repository(), n.desc.Digest, f.err)
		}
	})
	return f.data, f.err
}

// expand fills in a manifest's or index's children, recursively.
func (g *graphLoader) expand(ctx context.Context, n *node) error {
	isIndex, isManifest := images.IsIndexType(n.desc.MediaType), images.IsManifestType(n.desc.MediaType)
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

// sameRepository reports whether two locations name the same repository or
// layout folder, where content read from one is already in the other.
func sameRepository(a, b Location) bool {
	return a.Repository() == b.Repository()
}

// sameRegistry reports whether blobs can be mounted from a to b.
func sameRegistry(a, b Location) bool {
	return !a.IsLayout() && !b.IsLayout() && a.Host() == b.Host()
}

// planPush lists, per target repository (in the order of first mention),
// what it must receive. It is pure: the graph is already loaded.
func planPush(graph []*node, c PushContent, targets []Location) []*repoPlan {
	var plans []*repoPlan
	byRepo := map[string]*repoPlan{}
	for _, t := range targets {
		p, ok := byRepo[t.Repository()]
		if !ok {
			p = &repoPlan{repo: t.WithTag(""), rootDesc: c.Root, rootBytes: c.RootBytes}
			byRepo[t.Repository()] = p
			plans = append(plans, p)
		}
		p.tags = append(p.tags, t)
	}
	isIndex := images.IsIndexType(c.Root.MediaType)
	for _, p := range plans {
		seen := map[digest.Digest]bool{}
		for _, n := range graph {
			if isIndex {
				p.addNode(n, seen)
			} else {
				p.addBlobs(n, seen)
			}
		}
		// With one target repository the first tag's PUT stores the root as
		// safely as a PUT by digest would: nothing else has moved before it.
		p.pushRoot = len(plans) > 1 || p.repo.IsLayout()
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
	firstRepo := map[key]Location{}
	for _, p := range plans {
		if p.repo.IsLayout() {
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
	if seen[n.desc.Digest] || sameRepository(n.origin, p.repo) {
		return
	}
	seen[n.desc.Digest] = true
	if !images.IsIndexType(n.desc.MediaType) && !images.IsManifestType(n.desc.MediaType) {
		mount := sameRegistry(n.origin, p.repo)
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

// runPlans runs every repository's plan in its own progress vertex: content
// (with referrers, when refs is set) first; then, when every repository has
// all its content, the tags: referrers' first, the user's last.
func runPlans(ctx context.Context, r *Resolver, plans []*repoPlan, refs *referrerFinder, opts PushOptions) error {
	slots := newTransferSlots(opts.MaxConcurrency)
	up := newUploader(r)
	contentDone := make(chan struct{})
	var mu sync.Mutex
	remaining := len(plans)
	eg, ctx := errgroup.WithContext(ctx)
	for _, p := range plans {
		eg.Go(func() error {
			return progress.Wrap("[internal] pushing "+p.repo.Repository(), opts.Progress, func(sub progress.SubLogger) error {
				rp, err := p.pushWithReferrers(ctx, up, sub, slots, opts.MaxConcurrency, refs)
				if err != nil {
					return err
				}
				mu.Lock()
				remaining--
				if remaining == 0 {
					close(contentDone)
				}
				mu.Unlock()
				select {
				case <-contentDone:
				case <-ctx.Done():
					return context.Cause(ctx)
				}
				if err := rp.pushTags(ctx, r, sub); err != nil {
					return err
				}
				return p.pushTags(ctx, r, sub)
			})
		})
	}
	return eg.Wait()
}

// pushContent puts blobs (in parallel), then manifests, children before
// parents, each level in parallel, as many at once as other small requests.
func (p *repoPlan) pushContent(ctx context.Context, up *uploader, sub progress.SubLogger, slots *transferSlots, limit int) error {
	if err := p.pushBlobs(ctx, up, sub, slots, limit); err != nil {
		return err
	}
	for _, level := range manifestLevels(p.manifests) {
		eg, ectx := errgroup.WithContext(ctx)
		eg.SetLimit(metadataLimit(limit))
		for _, n := range level {
			eg.Go(func() error {
				logf(sub, "copying %s from %s to %s", n.desc.Digest, n.origin.Repository(), p.repo.Repository())
				return p.putByDigest(ectx, up.r, n.desc, n.data)
			})
		}
		if err := eg.Wait(); err != nil {
			return err
		}
	}
	if p.pushRoot {
		return p.putByDigest(ctx, up.r, p.rootDesc, p.rootBytes)
	}
	return nil
}

// pushBlobs puts in the repository the blobs it lacks. Mounts move no
// bytes: they run beside the transfers, up to metadataLimit at once, and
// take a transfer slot only when the registry wants an upload instead. The
// existence checks of the others run ahead, also up to metadataLimit,
// while transfers start in plan order, each holding one of the slots shared
// by every target: a transfer rarely waits on a check, and
// --max-concurrency 1 keeps the transfers in plan order.
func (p *repoPlan) pushBlobs(ctx context.Context, up *uploader, sub progress.SubLogger, slots *transferSlots, limit int) error {
	eg, ectx := errgroup.WithContext(ctx)
	found := make([]chan checked, len(p.blobs))
	for i, b := range p.blobs {
		if needsCheck(p.repo, b) {
			found[i] = make(chan checked, 1)
		}
	}
	// Mounts and checks run in groups of their own: a mount waiting on
	// another target's upload holds up no check.
	eg.Go(func() error {
		var mounts errgroup.Group
		mounts.SetLimit(metadataLimit(limit))
		for _, b := range p.blobs {
			if b.mount {
				mounts.Go(func() error { return p.mountBlob(ectx, up, sub, slots, b) })
			}
		}
		return mounts.Wait()
	})
	eg.Go(func() error {
		var checks errgroup.Group
		checks.SetLimit(metadataLimit(limit))
		for i, b := range p.blobs {
			if found[i] != nil {
				checks.Go(func() error {
					c, err := up.check(ectx, p.repo, b.desc)
					found[i] <- c
					return err
				})
			}
		}
		return checks.Wait()
	})
	for i, b := range p.blobs {
		if b.mount {
			continue
		}
		var c checked
		if found[i] != nil {
			c = <-found[i]
		}
		if c.present {
			b.ready.signal()
			continue
		}
		release, err := slots.acquire(ectx, b.desc)
		if err != nil {
			break // eg.Wait has the cause
		}
		eg.Go(func() error {
			defer release()
			return p.pushBlob(ectx, up, sub, b, c.session)
		})
	}
	return eg.Wait()
}

// checked is what the check of a blob found: the blob in the repository, or
// an upload session opened for it.
type checked struct {
	present bool
	session *url.URL
}

// mountBlob links a blob from another repository of the registry, once it
// is there; when the registry wants an upload instead, the blob is uploaded
// in a transfer slot.
func (p *repoPlan) mountBlob(ctx context.Context, up *uploader, sub progress.SubLogger, slots *transferSlots, b blobJob) error {
	if err := b.after.wait(ctx); err != nil {
		return err
	}
	logf(sub, "mounting %s from %s", b.desc.Digest, b.mountFrom.Repository())
	ok, session, err := up.r.mountBlob(ctx, p.repo, b.desc, b.mountFrom)
	if err != nil || ok {
		b.ready.signal()
		return err
	}
	release, err := slots.acquire(ctx, b.desc)
	if err != nil {
		return err
	}
	defer release()
	return p.pushBlob(ctx, up, sub, b, session)
}

// needsCheck reports whether a blob is looked for in the target before it
// is sent: not in a layout (its writer checks), not when mounted (a mount
// is one request either way), not for bytes in memory (sending them costs
// no more than asking).
func needsCheck(to Location, b blobJob) bool {
	return !to.IsLayout() && !b.mount && b.data == nil
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

// pushBlob puts one blob in the repository by copying it, in the fewest
// requests its case allows: bytes in memory (1 single POST, or 2), else,
// the check done, the source read and the upload session opened at once,
// then the streamed upload. session, when set, is an upload session a
// refused mount opened.
func (p *repoPlan) pushBlob(ctx context.Context, up *uploader, sub progress.SubLogger, b blobJob, session *url.URL) error {
	logf(sub, "copying %s from %s to %s", b.desc.Digest, b.from.Repository(), p.repo.Repository())
	var err error
	switch {
	case p.repo.IsLayout():
		err = copyBlob(ctx, up.r, sub, b, p.repo)
	case b.data != nil:
		err = up.putBytes(ctx, p.repo, b.desc, b.data, session)
	default:
		err = up.copyStream(ctx, sub, b, p.repo, session)
	}
	if err == nil {
		b.ready.signal()
	}
	return err
}

// copyBlob streams a blob from its origin into an OCI layout through
// containerd's content writer, checking size and digest on the way.
func copyBlob(ctx context.Context, r *Resolver, sub progress.SubLogger, b blobJob, to Location) error {
	pusher, err := r.Pusher(ctx, to)
	if err != nil {
		return err
	}
	w, err := pusher.Push(ctx, trackerKeyed(b.desc, to))
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("push %s to %s: %w", b.desc.Digest, to.Repository(), err)
	}
	src, closeSrc, err := openBlob(ctx, r, b)
	if err != nil {
		_ = w.Close()
		return err
	}
	defer closeSrc()
	in := src
	if b.data == nil {
		in = NewVerifyingReader(src, b.desc)
	}
	if b.data == nil && b.desc.Size >= progressMinBytes {
		counter := progress.NewByteCounter(sub, b.desc.Digest.String(), b.desc.Size)
		defer counter.Done()
		in = io.TeeReader(in, counter)
	}
	if err := content.Copy(ctx, w, in, b.desc.Size, b.desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("copy %s from %s to %s: %w", b.desc.Digest, b.from.Repository(), to.Repository(), err)
	}
	return nil
}

// trackerKeyed names the push after its target repository: containerd's
// upload tracker is shared by the resolver and keyed by digest, and would
// otherwise take a blob pushed to one repository as present in the next.
func trackerKeyed(desc ocispec.Descriptor, to Location) ocispec.Descriptor {
	out := desc
	out.Annotations = map[string]string{ocispec.AnnotationRefName: to.Repository()}
	return out
}

// progressMinBytes is the size from which a copy shows a byte count.
const progressMinBytes = 1 << 20

func openBlob(ctx context.Context, r *Resolver, b blobJob) (io.Reader, func(), error) {
	if b.data != nil {
		return bytes.NewReader(b.data), func() {}, nil
	}
	f, err := r.Fetcher(ctx, b.from)
	if err != nil {
		return nil, nil, err
	}
	rc, err := f.Fetch(ctx, b.desc)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s from %s: %w", b.desc.Digest, b.from.Repository(), err)
	}
	return rc, func() { _ = rc.Close() }, nil
}

// putByDigest stores a manifest by digest: one PUT in a registry, a blob
// write in a layout.
func (p *repoPlan) putByDigest(ctx context.Context, r *Resolver, desc ocispec.Descriptor, dt []byte) error {
	if !p.repo.IsLayout() {
		return r.putManifest(ctx, p.repo, desc.Digest.String(), desc, dt)
	}
	return writeAll(ctx, r, p.repo, desc, dt)
}

// pushTags points every tag of the repository at the root.
func (p *repoPlan) pushTags(ctx context.Context, r *Resolver, sub progress.SubLogger) error {
	for _, t := range p.tags {
		logf(sub, "pushing %s to %s", p.rootDesc.Digest, t)
		var err error
		if t.IsLayout() {
			err = writeAll(ctx, r, t, p.rootDesc, p.rootBytes)
		} else {
			err = r.putManifest(ctx, t, t.Tag, p.rootDesc, p.rootBytes)
		}
		if err != nil {
			return fmt.Errorf("tag %s: %w", t, err)
		}
	}
	return nil
}

// writeAll writes small content through a pusher (a layout's tags it too).
func writeAll(ctx context.Context, r *Resolver, to Location, desc ocispec.Descriptor, dt []byte) error {
	return copyBlob(ctx, r, nil, blobJob{desc: desc, from: to, data: dt}, to)
}

func logf(sub progress.SubLogger, format string, args ...any) {
	sub.Log(1, fmt.Appendf(nil, format+"\n", args...))
}

// The few registry calls containerd's resolver makes in two round trips or
// more are made here in one, through the same cached hosts (client,
// authorizer, tokens): a manifest GET by tag (containerd: HEAD, then GET),
// a manifest PUT (containerd: HEAD, then PUT) and a blob mount (containerd:
// HEAD, then POST).

// manifestAccept lists every manifest and index type we read.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
	images.MediaTypeDockerSchema2ManifestList, images.MediaTypeDockerSchema2Manifest,
}, ", ")

// apiRequest is one registry API call on the repository of a location.
type apiRequest struct {
	method string
	loc    Location
	// path under /v2/<repository>/, e.g. "manifests/v1".
	path  string
	query url.Values
	// url, when set, is used instead of path and query: an upload session
	// the registry handed out.
	url    *url.URL
	header http.Header
	body   []byte
	// stream, when set, is the body instead: size bytes read once, so the
	// request is never replayed (a 401 is reported, not answered).
	stream io.Reader
	size   int64
	// push asks for a token with push access; from adds pull access to
	// another repository (a mount's source).
	push bool
	from string
}

// do sends req to the first host of its registry that can serve it, with
// the host's authorizer: a 401 is answered by the authorizer once and the
// request retried. The caller closes the response body.
func (r *Resolver) do(ctx context.Context, req apiRequest) (*http.Response, error) {
	host, err := r.apiHost(req.loc.Host(), req.push)
	if err != nil {
		return nil, err
	}
	spec, err := reference.Parse(req.loc.Repository() + "@" + emptyDigest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.loc, err)
	}
	ctx, err = docker.ContextWithRepositoryScope(ctx, spec, req.push)
	if err != nil {
		return nil, err
	}
	if req.from != "" {
		ctx = docker.ContextWithAppendPullRepositoryScope(ctx, req.from)
	}
	u := req.url
	if u == nil {
		u = &url.URL{
			Scheme:   host.Scheme,
			Host:     host.Host,
			Path:     strings.TrimSuffix(host.Path, "/") + "/" + distref.Path(req.loc.Name) + "/" + req.path,
			RawQuery: req.query.Encode(),
		}
	}
	var resp *http.Response
	for attempt := 0; attempt < 2; attempt++ {
		resp, err = r.send(ctx, host, req, u.String())
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.method, req.loc, err)
		}
		if resp.StatusCode != http.StatusUnauthorized || host.Authorizer == nil || attempt == 1 {
			break
		}
		if req.stream != nil {
			// The body is spent: teach the authorizer, let the caller start over.
			aerr := host.Authorizer.AddResponses(ctx, []*http.Response{resp})
			drain(resp)
			return nil, fmt.Errorf("%s %s: %w", req.method, req.loc, errors.Join(errStartOver, aerr))
		}
		aerr := host.Authorizer.AddResponses(ctx, []*http.Response{resp})
		drain(resp)
		if aerr != nil {
			return nil, fmt.Errorf("%s %s: authorize: %w", req.method, req.loc, aerr)
		}
	}
	return resp, nil
}

func (r *Resolver) send(ctx context.Context, host docker.RegistryHost, req apiRequest, u string) (*http.Response, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	if req.stream != nil {
		// Hidden behind a plain io.Reader so net/http sees no GetBody.
		body = struct{ io.Reader }{req.stream}
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, err
	}
	if req.stream != nil {
		hr.ContentLength = req.size
		if req.size == 0 {
			hr.Body = http.NoBody
		}
	}
	for k, v := range host.Header {
		hr.Header[k] = append([]string(nil), v...)
	}
	for k, v := range req.header {
		hr.Header[k] = append([]string(nil), v...)
	}
	if r.opts.UserAgent != "" {
		hr.Header.Set("User-Agent", r.opts.UserAgent)
	}
	if host.Authorizer != nil {
		if err := host.Authorizer.Authorize(ctx, hr); err != nil {
			return nil, err
		}
	}
	return host.Client.Do(hr)
}

// apiHost returns the first configured host of a registry able to pull (or push).
func (r *Resolver) apiHost(registry string, push bool) (docker.RegistryHost, error) {
	hosts, err := r.registryHosts(registry)
	if err != nil {
		return docker.RegistryHost{}, err
	}
	want := docker.HostCapabilityPull
	if push {
		want = docker.HostCapabilityPush
	}
	for _, h := range hosts {
		if h.Capabilities.Has(want) {
			if h.Client == nil {
				h.Client = http.DefaultClient
			}
			return h, nil
		}
	}
	return docker.RegistryHost{}, fmt.Errorf("registry %s: no host configured to %s: %w", registry, map[bool]string{true: "push", false: "pull"}[push], errdefs.ErrNotFound)
}

// statusError turns an unexpected answer into an error naming the call;
// 404 wraps errdefs.ErrNotFound.
func statusError(what string, resp *http.Response) error {
	dt, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(dt))
	if msg != "" {
		msg = ": " + msg
	}
	err := fmt.Errorf("%s: %s%s", what, resp.Status, msg)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
	}
	return err
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// GetManifest fetches the manifest or index at loc (by tag, digest, or
// "latest") in one request and checks it: size limit, digest (the one asked
// for, else the registry's Docker-Content-Digest). The descriptor carries
// media type, digest and size.
func (r *Resolver) GetManifest(ctx context.Context, loc Location) (ocispec.Descriptor, []byte, error) {
	if loc.IsLayout() {
		desc, err := r.Resolve(ctx, loc)
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		f, err := r.Fetcher(ctx, loc)
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		dt, err := FetchManifest(ctx, f, desc)
		if err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %w", loc, err)
		}
		// index.json annotations name the entry in the layout, not the image.
		return ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, Platform: desc.Platform}, dt, nil
	}
	loc = loc.TagOrLatest()
	ref := loc.Tag
	if loc.Digest != "" {
		ref = loc.Digest.String()
	}
	resp, err := r.do(ctx, apiRequest{method: http.MethodGet, loc: loc, path: "manifests/" + ref,
		header: http.Header{"Accept": {manifestAccept}}})
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch %s: %w", loc, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, nil, manifestStatusError("fetch "+loc.String(), loc, resp)
	}
	dt, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch %s: %w", loc, err)
	}
	if len(dt) > MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch %s: manifest over the %d byte limit", loc, MaxManifestSize)
	}
	desc, err := describeManifest(loc, resp.Header, dt)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return desc, dt, nil
}

// describeManifest checks fetched manifest bytes against the digest asked
// for or announced, and types them from Content-Type (else from the body).
func describeManifest(loc Location, h http.Header, dt []byte) (ocispec.Descriptor, error) {
	want := loc.Digest
	if want == "" {
		if d, err := digest.Parse(h.Get("Docker-Content-Digest")); err == nil {
			want = d
		}
	}
	got := digest.FromBytes(dt)
	if want != "" {
		if err := want.Validate(); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("fetch %s: %w", loc, err)
		}
		if want.Algorithm() != digest.SHA256 {
			got = want.Algorithm().FromBytes(dt)
		}
		if got != want {
			return ocispec.Descriptor{}, fmt.Errorf("fetch %s: content hashes to %s, want %s: %w", loc, got, want, ErrDigestMismatch)
		}
	}
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	var body struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(dt, &body) == nil && body.MediaType != "" && (images.IsIndexType(mt) || images.IsManifestType(mt)) && body.MediaType != mt {
		return ocispec.Descriptor{}, fmt.Errorf("fetch %s: media type %q in its body contradicts the registry's %q", loc, body.MediaType, mt)
	}
	if !images.IsIndexType(mt) && !images.IsManifestType(mt) {
		detected, err := combineDetectMediaType(dt)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("fetch %s: not a manifest: %w", loc, err)
		}
		mt = detected
	}
	return ocispec.Descriptor{MediaType: mt, Digest: got, Size: int64(len(dt))}, nil
}

// putManifest stores a manifest or index in loc's repository under ref (a
// tag or its digest), without the existence check containerd makes first.
func (r *Resolver) putManifest(ctx context.Context, loc Location, ref string, desc ocispec.Descriptor, dt []byte) error {
	resp, err := r.do(ctx, apiRequest{method: http.MethodPut, loc: loc, path: "manifests/" + ref, push: true,
		header: http.Header{"Content-Type": {desc.MediaType}}, body: dt})
	if err != nil {
		return fmt.Errorf("push %s to %s:%s: %w", desc.Digest, loc.Repository(), ref, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return statusError(fmt.Sprintf("push %s to %s:%s", desc.Digest, loc.Repository(), ref), resp)
	}
	return nil
}

// mountBlob asks the registry to link a blob of another repository of the
// same registry into loc's repository. It reports false, with no error, when
// the registry would rather have the blob uploaded, with the upload session
// it opened instead when it did (nil otherwise).
func (r *Resolver) mountBlob(ctx context.Context, loc Location, desc ocispec.Descriptor, from Location) (bool, *url.URL, error) {
	fromPath := distref.Path(from.Name)
	resp, err := r.do(ctx, apiRequest{method: http.MethodPost, loc: loc, path: "blobs/uploads/", push: true, from: fromPath,
		query: url.Values{"mount": {desc.Digest.String()}, "from": {fromPath}}})
	if err != nil {
		return false, nil, fmt.Errorf("mount %s from %s into %s: %w", desc.Digest, from.Repository(), loc.Repository(), err)
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
		return true, nil, nil
	case http.StatusAccepted:
		// The registry opened an upload session instead: the caller uploads
		// there (or, without a usable Location, opens its own).
		session, _ := resp.Location()
		return false, session, nil
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		// Refused to read the source: the caller uploads.
		return false, nil, nil
	}
	return false, nil, statusError(fmt.Sprintf("mount %s from %s into %s", desc.Digest, from.Repository(), loc.Repository()), resp)
}

// Blob uploads, in the fewest requests the registry protocol allows. A blob
// read from a source is checked first (HEAD: 1 request; nothing more when
// the target has it), and the upload session is opened (POST) as soon as it
// is known missing, while the blob may still wait for a transfer slot. The
// transfer is then one PUT with the digest, its body streamed from the
// source read, which containerd's fetcher sends on the body's first read, so
// source GET and target PUT go out together: 4 requests, and once the blob
// has a slot, one round trip before bytes flow. containerd's pusher makes the
// check, the POST and the PUT in sequence with the slot held. Bytes already
// in memory (configs fetched for their platform) skip the check: they are
// offered to the registry in one POST carrying digest and body (the OCI
// distribution "single POST"); a registry that does not take it, as
// distribution does not, answers 202 with a session, and the PUT follows.

// blobCopyAttempts bounds how often a streamed copy is started over from a
// fresh source read and a fresh upload session: a streamed body cannot be
// replayed, and buffering it whole is what streaming avoids.
const blobCopyAttempts = 3

// singlePostMaxBytes is the largest body offered in a single POST. A
// registry that ignores the body (202) must still read it off the wire to
// keep the connection: Go's server drains up to 256 KiB after a handler.
const singlePostMaxBytes = 64 << 10

// errStartOver marks an upload failure a fresh attempt may cure: a dropped
// connection, a 5xx or 429 answer, a 401 to a streamed request.
var errStartOver = errors.New("upload interrupted")

// uploader puts blobs in registry repositories. It remembers, per
// registry, that a single POST was refused, so that later blobs skip the
// wasted body.
type uploader struct {
	r *Resolver

	mu           sync.Mutex
	noSinglePost map[string]bool
}

func newUploader(r *Resolver) *uploader {
	return &uploader{r: r, noSinglePost: map[string]bool{}}
}

// check looks for a blob in to's repository (one HEAD) and, when it is
// missing, opens the upload session it will need (one POST) at once, before
// the blob waits for a transfer slot: the transfer then starts with its PUT,
// the source read going out with it, one round trip instead of two. A session
// that expires while the blob waits costs a fresh one (uploadResult starts
// over on 404).
func (u *uploader) check(ctx context.Context, to Location, desc ocispec.Descriptor) (checked, error) {
	ok, err := u.exists(ctx, to, desc)
	if err != nil || ok {
		return checked{present: ok}, err
	}
	session, _, err := u.start(ctx, to, desc, nil, false)
	return checked{session: session}, err
}

// exists reports whether to's repository holds the blob (one HEAD).
func (u *uploader) exists(ctx context.Context, to Location, desc ocispec.Descriptor) (bool, error) {
	resp, err := u.r.do(ctx, apiRequest{method: http.MethodHead, loc: to, path: "blobs/" + desc.Digest.String(), push: true})
	if err != nil {
		return false, fmt.Errorf("check %s in %s: %w", desc.Digest, to.Repository(), err)
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, statusError(fmt.Sprintf("check %s in %s", desc.Digest, to.Repository()), resp)
}

// putBytes uploads a blob held in memory: in one single POST where the
// registry takes it, else in the session it answers with (or session, when
// one is open already) by one PUT.
func (u *uploader) putBytes(ctx context.Context, to Location, desc ocispec.Descriptor, data []byte, session *url.URL) error {
	if session == nil {
		single := len(data) <= singlePostMaxBytes && !u.singlePostRefused(to.Host())
		var err error
		var done bool
		if session, done, err = u.start(ctx, to, desc, data, single); err != nil || done {
			return err
		}
	}
	resp, err := u.r.do(ctx, apiRequest{method: http.MethodPut, loc: to, url: withDigest(session, desc.Digest), push: true,
		header: http.Header{"Content-Type": {"application/octet-stream"}}, body: data})
	return uploadResult(resp, err, to, desc)
}

// start opens an upload session; with single, it offers the whole body in
// the same request and reports done when the registry stored it.
func (u *uploader) start(ctx context.Context, to Location, desc ocispec.Descriptor, data []byte, single bool) (*url.URL, bool, error) {
	req := apiRequest{method: http.MethodPost, loc: to, path: "blobs/uploads/", push: true}
	if single {
		req.query = url.Values{"digest": {desc.Digest.String()}}
		req.header = http.Header{"Content-Type": {"application/octet-stream"}}
		req.body = data
	}
	what := fmt.Sprintf("upload %s to %s", desc.Digest, to.Repository())
	resp, err := u.r.do(ctx, req)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	defer drain(resp)
	switch {
	case resp.StatusCode == http.StatusCreated && single:
		return nil, true, nil
	case resp.StatusCode == http.StatusAccepted:
		if single {
			u.refuseSinglePost(to.Host())
		}
		session, err := resp.Location()
		if err != nil {
			return nil, false, fmt.Errorf("%s: the registry opened no session: %w", what, err)
		}
		return session, false, nil
	}
	return nil, false, statusError(what, resp)
}

func (u *uploader) singlePostRefused(host string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.noSinglePost[host]
}

func (u *uploader) refuseSinglePost(host string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.noSinglePost[host] = true
}

// copyStream copies a blob from its origin into to's repository without
// holding it whole, starting over (a new session, a new source read) when an
// attempt fails in a way another may cure.
func (u *uploader) copyStream(ctx context.Context, sub progress.SubLogger, b blobJob, to Location, session *url.URL) error {
	for attempt := 1; ; attempt++ {
		err := u.copyOnce(ctx, sub, b, to, session)
		if err == nil || attempt == blobCopyAttempts || !errors.Is(err, errStartOver) || ctx.Err() != nil {
			return err
		}
		logf(sub, "copying %s again (attempt %d/%d): %v", b.desc.Digest, attempt+1, blobCopyAttempts, err)
		session = nil
		if err := sleepContext(ctx, time.Duration(attempt)*DefaultBaseDelay); err != nil {
			return err
		}
	}
}

// copyOnce streams a blob from its source into an upload session, opening
// the session first when none is open, and checks size and digest on the
// way. The source read is lazy: its GET goes out with the PUT's body.
func (u *uploader) copyOnce(ctx context.Context, sub progress.SubLogger, b blobJob, to Location, session *url.URL) error {
	var src io.Reader
	closeSrc := func() {}
	var eg errgroup.Group // both run to the end: each is one request
	eg.Go(func() error {
		var err error
		src, closeSrc, err = openBlob(ctx, u.r, b)
		return err
	})
	if session == nil {
		eg.Go(func() error {
			var err error
			session, _, err = u.start(ctx, to, b.desc, nil, false)
			return err
		})
	}
	err := eg.Wait()
	defer closeSrc()
	if err != nil {
		return markStartOver(err)
	}
	in := &sourceReader{r: NewVerifyingReader(src, b.desc)}
	var body io.Reader = in
	if b.desc.Size >= progressMinBytes {
		counter := progress.NewByteCounter(sub, b.desc.Digest.String(), b.desc.Size)
		defer counter.Done()
		body = io.TeeReader(in, counter)
	}
	resp, err := u.r.do(ctx, apiRequest{method: http.MethodPut, loc: to, url: withDigest(session, b.desc.Digest), push: true,
		header: http.Header{"Content-Type": {"application/octet-stream"}}, stream: body, size: b.desc.Size})
	if in.err != nil {
		// The source broke or lied; the upload failed because of it.
		drainIf(resp)
		return markStartOver(fmt.Errorf("copy %s from %s to %s: %w", b.desc.Digest, b.from.Repository(), to.Repository(), in.err))
	}
	return uploadResult(resp, err, to, b.desc)
}

// sourceReader remembers the first error of the source side of a copy, which
// net/http would otherwise report as a broken request.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// uploadResult turns the answer to a blob PUT into an error, nil on 201.
func uploadResult(resp *http.Response, err error, to Location, desc ocispec.Descriptor) error {
	what := fmt.Sprintf("upload %s to %s", desc.Digest, to.Repository())
	if err != nil {
		return markStartOver(fmt.Errorf("%s: %w", what, err))
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusNoContent:
		return nil
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
		// An upload session the registry no longer knows (it expired):
		// a fresh one may do.
		http.StatusNotFound:
		return fmt.Errorf("%w: %w", statusError(what, resp), errStartOver)
	}
	return statusError(what, resp)
}

// markStartOver adds errStartOver to a transient failure: a dropped or
// stalled connection, a body cut short. A digest or size mismatch, a
// refusal, a retry budget spent, a cancel are final.
func markStartOver(err error) error {
	switch {
	case errors.Is(err, errStartOver), errors.Is(err, ErrDigestMismatch), errors.Is(err, ErrSizeMismatch),
		errors.Is(err, ErrRetriesExhausted):
		return err
	case errors.Is(err, ErrStalled), isTransientNetError(err):
		return fmt.Errorf("%w: %w", err, errStartOver)
	}
	return err
}

// withDigest returns the session URL with the digest that closes it.
func withDigest(session *url.URL, d digest.Digest) *url.URL {
	u := *session
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	return &u
}

func drainIf(resp *http.Response) {
	if resp != nil {
		drain(resp)
	}
}
