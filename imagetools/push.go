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
	"strings"
	"sync"

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

// DefaultMaxConcurrency bounds parallel blob transfers when none is given:
// the Docker daemon's default for concurrent uploads, a pace registries and
// their rate limits are used to.
const DefaultMaxConcurrency = 5

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
	desc  ocispec.Descriptor
	from  Location
	data  []byte
	mount bool // same registry: link it instead of copying
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
	graph, err := loadGraph(ctx, r, c, opts.Targets, opts.MaxConcurrency)
	if err != nil {
		return err
	}
	plans := planPush(graph, c, opts.Targets)
	return runPlans(ctx, r, plans, opts)
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
	eg.SetLimit(limit)
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
	return plans
}

// addNode plans a manifest (or index) and what is under it, children first.
func (p *repoPlan) addNode(n *node, seen map[digest.Digest]bool) {
	if seen[n.desc.Digest] || sameRepository(n.origin, p.repo) {
		return
	}
	seen[n.desc.Digest] = true
	if !images.IsIndexType(n.desc.MediaType) && !images.IsManifestType(n.desc.MediaType) {
		p.blobs = append(p.blobs, blobJob{desc: n.desc, from: n.origin, data: n.data, mount: sameRegistry(n.origin, p.repo)})
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
// first; then, when every repository has all its content, the tags.
func runPlans(ctx context.Context, r *Resolver, plans []*repoPlan, opts PushOptions) error {
	slots := make(chan struct{}, opts.MaxConcurrency)
	contentDone := make(chan struct{})
	var mu sync.Mutex
	remaining := len(plans)
	eg, ctx := errgroup.WithContext(ctx)
	for _, p := range plans {
		eg.Go(func() error {
			return progress.Wrap("[internal] pushing "+p.repo.Repository(), opts.Progress, func(sub progress.SubLogger) error {
				if err := p.pushContent(ctx, r, sub, slots, opts.MaxConcurrency); err != nil {
					return explainTLS(p.repo.Host(), err)
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
				return explainTLS(p.repo.Host(), p.pushTags(ctx, r, sub))
			})
		})
	}
	return eg.Wait()
}

// pushContent puts blobs (in parallel, each holding a slot), then manifests.
func (p *repoPlan) pushContent(ctx context.Context, r *Resolver, sub progress.SubLogger, slots chan struct{}, limit int) error {
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(limit)
	for _, b := range p.blobs {
		eg.Go(func() error {
			select {
			case slots <- struct{}{}:
			case <-ectx.Done():
				return context.Cause(ectx)
			}
			defer func() { <-slots }()
			return p.pushBlob(ectx, r, sub, b)
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	for _, n := range p.manifests {
		logf(sub, "copying %s from %s to %s", n.desc.Digest, n.origin.Repository(), p.repo.Repository())
		if err := p.putByDigest(ctx, r, n.desc, n.data); err != nil {
			return err
		}
	}
	if p.pushRoot {
		return p.putByDigest(ctx, r, p.rootDesc, p.rootBytes)
	}
	return nil
}

func (p *repoPlan) pushBlob(ctx context.Context, r *Resolver, sub progress.SubLogger, b blobJob) error {
	if b.mount {
		logf(sub, "mounting %s from %s", b.desc.Digest, b.from.Repository())
		ok, err := r.mountBlob(ctx, p.repo, b.desc, b.from)
		if err != nil || ok {
			return err
		}
	}
	logf(sub, "copying %s from %s to %s", b.desc.Digest, b.from.Repository(), p.repo.Repository())
	return copyBlob(ctx, r, sub, b, p.repo)
}

// copyBlob streams a blob from its origin to the target through the
// process, checking size and digest on the way; it is never held whole.
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
	// Bytes in memory were checked when fetched and stay seekable, so that
	// containerd can replay them when the registry asks for a retry.
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
		if errors.Is(err, io.ErrUnexpectedEOF) && b.data == nil {
			// containerd retries a refused upload by asking for the body
			// again, which a stream cannot give: its cause is lost there.
			return fmt.Errorf("copy %s from %s to %s: the registry refused or restarted the upload: %w", b.desc.Digest, b.from.Repository(), to.Repository(), err)
		}
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
	path   string
	query  url.Values
	header http.Header
	body   []byte
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
	u := url.URL{
		Scheme:   host.Scheme,
		Host:     host.Host,
		Path:     strings.TrimSuffix(host.Path, "/") + "/" + distref.Path(req.loc.Name) + "/" + req.path,
		RawQuery: req.query.Encode(),
	}
	var resp *http.Response
	for attempt := 0; attempt < 2; attempt++ {
		resp, err = r.send(ctx, host, req, u.String())
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.method, req.loc, explainTLS(req.loc.Host(), err))
		}
		if resp.StatusCode != http.StatusUnauthorized || host.Authorizer == nil || attempt == 1 {
			break
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
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, err
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
		return ocispec.Descriptor{}, nil, statusError("fetch "+loc.String(), resp)
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
// the registry would rather have the blob uploaded.
func (r *Resolver) mountBlob(ctx context.Context, loc Location, desc ocispec.Descriptor, from Location) (bool, error) {
	fromPath := distref.Path(from.Name)
	resp, err := r.do(ctx, apiRequest{method: http.MethodPost, loc: loc, path: "blobs/uploads/", push: true, from: fromPath,
		query: url.Values{"mount": {desc.Digest.String()}, "from": {fromPath}}})
	if err != nil {
		return false, fmt.Errorf("mount %s from %s into %s: %w", desc.Digest, from.Repository(), loc.Repository(), err)
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
		return true, nil
	case http.StatusAccepted, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		// The registry opened an upload session instead (or refused to
		// read the source): the caller uploads. An opened session expires
		// on its own.
		return false, nil
	}
	return false, statusError(fmt.Sprintf("mount %s from %s into %s", desc.Digest, from.Repository(), loc.Repository()), resp)
}
