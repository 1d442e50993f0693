package imagetools

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Referrers are manifests about other manifests: cosign signatures,
// attestations and SBOMs stored under the tags sha256-<hex>.sig, .att and
// .sbom of the repository of the manifest they describe, and OCI 1.1
// artifacts whose "subject" is that manifest, listed by the registry's
// referrers API or, where the registry has none, in an index at the
// fallback tag sha256-<hex>. Create copies the referrers of every manifest
// it copies into another repository, one level deep (not the referrers of
// referrers).
//
// Cost per source repository read from: one tags list (all its cosign and
// fallback tags at once) and, at the same time, one referrers API request
// for the first copied manifest; only when the registry answers it, one more
// per other copied manifest. Then each referrer found is read and copied
// like any manifest. Nothing is asked when no manifest is copied (every
// target is the source repository). A referrer that a source lists but
// cannot serve fails the create before any tag moves.

// cosignSuffixes are the tag suffixes of cosign's tag scheme.
var cosignSuffixes = []string{".att", ".sbom", ".sig"}

// ociSubjectHeader is the header a registry with the referrers API answers
// a manifest PUT with when the manifest has a subject.
const ociSubjectHeader = "OCI-Subject"

// maxListPages bounds the pages of a tags or referrers list followed.
const maxListPages = 1000

// fallbackTag is the OCI referrers tag schema tag of a subject: <alg>-<hex>.
func fallbackTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

// cosignTags returns the cosign tags of subject found among tags, sorted.
func cosignTags(tags map[string]bool, subject digest.Digest) []string {
	var out []string
	for _, s := range cosignSuffixes {
		if t := fallbackTag(subject) + s; tags[t] {
			out = append(out, t)
		}
	}
	return out
}

// mergeReferrerIndex adds descriptors to a fallback tag index (nil or empty
// existing: a new one), keeping what it lists. It reports false when
// nothing was added.
func mergeReferrerIndex(existing []byte, add []ocispec.Descriptor) ([]byte, bool, error) {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	if len(existing) > 0 {
		if err := json.Unmarshal(existing, &idx); err != nil {
			return nil, false, fmt.Errorf("parse referrers index: %w", err)
		}
	}
	have := map[digest.Digest]bool{}
	for _, d := range idx.Manifests {
		have[d.Digest] = true
	}
	changed := false
	for _, d := range add {
		if have[d.Digest] {
			continue
		}
		have[d.Digest] = true
		idx.Manifests = append(idx.Manifests, d)
		changed = true
	}
	if !changed {
		return existing, false, nil
	}
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	dt, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, false, err
	}
	return dt, true, nil
}

// nextLink returns the next page a list answer points at (RFC 8288 Link
// with rel="next"), resolved against the request, or nil. A page on
// another host is not followed: the registry's credentials stay with it.
func nextLink(resp *http.Response) *url.URL {
	for _, h := range resp.Header.Values("Link") {
		for _, part := range strings.Split(h, ",") {
			target, params, ok := strings.Cut(part, ";")
			params = strings.NewReplacer(" ", "", `"`, "").Replace(params)
			if !ok || !strings.Contains(";"+params+";", ";rel=next;") {
				continue
			}
			u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
			if err != nil {
				return nil
			}
			next := resp.Request.URL.ResolveReference(u)
			if next.Host != resp.Request.URL.Host {
				return nil
			}
			return next
		}
	}
	return nil
}

// onceMap computes one value per key, once, however many ask at a time.
type onceMap[T any] struct {
	mu sync.Mutex
	m  map[string]*onceValue[T]
}

type onceValue[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (o *onceMap[T]) do(key string, f func() (T, error)) (T, error) {
	o.mu.Lock()
	if o.m == nil {
		o.m = map[string]*onceValue[T]{}
	}
	v, ok := o.m[key]
	if !ok {
		v = &onceValue[T]{}
		o.m[key] = v
	}
	o.mu.Unlock()
	v.once.Do(func() { v.v, v.err = f() })
	return v.v, v.err
}

// repoTags is what one source repository told about referrers at once.
type repoTags struct {
	tags map[string]bool
	api  bool
}

// referrerList is the OCI referrers of one subject; supported is false when
// the registry has no referrers API.
type referrerList struct {
	descs     []ocispec.Descriptor
	supported bool
}

// referrer is a manifest found to refer to a copied manifest.
type referrer struct {
	subject digest.Digest
	n       *node
	// tag is the cosign tag it is stored under; "" for an OCI referrer.
	tag string
}

// referrerFinder discovers and reads referrers, each source repository
// listed once and each referrer read once, for all target repositories.
type referrerFinder struct {
	r      *Resolver
	c      PushContent
	g      *graphLoader
	limit  int
	repos  onceMap[repoTags]
	lists  onceMap[referrerList]
	tagged onceMap[*node]
}

func newReferrerFinder(r *Resolver, c PushContent, limit int) *referrerFinder {
	return &referrerFinder{r: r, c: c, limit: limit,
		g: &graphLoader{r: r, known: c.Known, fetched: map[digest.Digest]*manifestFetch{}}}
}

// subject is a manifest copied into a target, with the repository it is
// read from.
type subject struct {
	digest digest.Digest
	origin Location
}

// subjects lists the manifests the plan copies from other registry
// repositories: the manifests it puts by digest and the root, when the
// root is a source's manifest or index kept as it is.
func (f *referrerFinder) subjects(p *repoPlan) []subject {
	if p.repo.IsLayout() {
		return nil
	}
	var out []subject
	seen := map[digest.Digest]bool{}
	add := func(d digest.Digest, origin Location) {
		if !seen[d] && !origin.IsLayout() && !sameRepository(origin, p.repo) {
			seen[d] = true
			out = append(out, subject{digest: d, origin: origin})
		}
	}
	if _, fromSource := f.c.Known[f.c.Root.Digest]; fromSource || !images.IsIndexType(f.c.Root.MediaType) {
		add(f.c.Root.Digest, f.c.RootOrigin)
	}
	for _, n := range p.manifests {
		add(n.desc.Digest, n.origin)
	}
	return out
}

// maxReferrerDepth bounds how deep referrers of referrers are followed: a
// signature on an attestation of an image is 2.
const maxReferrerDepth = 4

// find returns the referrers of the subjects, in subject order, then the
// referrers of those (a signature on an attestation), and so on, each
// manifest once.
func (f *referrerFinder) find(ctx context.Context, subjects []subject) ([]referrer, error) {
	seen := map[digest.Digest]bool{}
	for _, s := range subjects {
		seen[s.digest] = true
	}
	var all []referrer
	for depth := 0; depth < maxReferrerDepth && len(subjects) > 0; depth++ {
		found, err := f.findLevel(ctx, subjects)
		if err != nil {
			return nil, err
		}
		all = append(all, found...)
		subjects = nil
		for _, ref := range found {
			d := ref.n.desc
			if !seen[d.Digest] && (images.IsManifestType(d.MediaType) || images.IsIndexType(d.MediaType)) {
				seen[d.Digest] = true
				subjects = append(subjects, subject{digest: d.Digest, origin: ref.n.origin})
			}
		}
	}
	return all, nil
}

// findLevel returns the referrers of the subjects, in subject order.
func (f *referrerFinder) findLevel(ctx context.Context, subjects []subject) ([]referrer, error) {
	found := make([][]referrer, len(subjects))
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(f.limit)
	for i, s := range subjects {
		eg.Go(func() error {
			var err error
			found[i], err = f.findOne(ctx, s, subjects)
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return slices.Concat(found...), nil
}

// findOne returns the cosign and OCI referrers of one subject.
func (f *referrerFinder) findOne(ctx context.Context, s subject, all []subject) ([]referrer, error) {
	rt, err := f.repoTags(ctx, s.origin, all)
	if err != nil {
		return nil, err
	}
	var out []referrer
	for _, tag := range cosignTags(rt.tags, s.digest) {
		n, err := f.tagged.do(s.origin.Repository()+":"+tag, func() (*node, error) {
			return f.readTagged(ctx, s.origin.WithTag(tag))
		})
		if err != nil {
			return nil, err
		}
		out = append(out, referrer{subject: s.digest, n: n, tag: tag})
	}
	var list referrerList
	switch {
	case rt.api:
		list, err = f.apiList(ctx, s)
	case rt.tags[fallbackTag(s.digest)]:
		list, err = f.lists.do(s.origin.Repository()+":"+fallbackTag(s.digest), func() (referrerList, error) {
			return f.readFallback(ctx, s)
		})
	}
	if err != nil {
		return nil, err
	}
	for _, d := range list.descs {
		n := &node{desc: d, origin: s.origin, data: f.c.Known[d.Digest]}
		if err := f.g.expand(ctx, n); err != nil {
			return nil, fmt.Errorf("referrer %s of %s@%s: %w", d.Digest, s.origin.Repository(), s.digest, err)
		}
		out = append(out, referrer{subject: s.digest, n: n})
	}
	return out, nil
}

// repoTags lists the tags of a source repository and, at the same time,
// asks its referrers API about the first subject read from it, which tells
// whether the registry has that API.
func (f *referrerFinder) repoTags(ctx context.Context, origin Location, all []subject) (repoTags, error) {
	return f.repos.do(origin.Repository(), func() (repoTags, error) {
		var probe subject
		for _, s := range all {
			if s.origin.Repository() == origin.Repository() {
				probe = s
				break
			}
		}
		var rt repoTags
		eg, ectx := errgroup.WithContext(ctx)
		eg.Go(func() error {
			var err error
			rt.tags, err = f.listTags(ectx, origin)
			return err
		})
		eg.Go(func() error {
			list, err := f.apiList(ectx, probe)
			rt.api = list.supported
			return err
		})
		return rt, eg.Wait()
	})
}

// apiList asks the referrers API about a subject (once).
func (f *referrerFinder) apiList(ctx context.Context, s subject) (referrerList, error) {
	return f.lists.do(s.origin.Repository()+"@"+s.digest.String(), func() (referrerList, error) {
		return f.readAPI(ctx, s)
	})
}

// listTags reads every page of a repository's tags; a repository the
// registry does not know has none.
func (f *referrerFinder) listTags(ctx context.Context, origin Location) (map[string]bool, error) {
	tags := map[string]bool{}
	req := apiRequest{method: http.MethodGet, loc: origin, path: "tags/list"}
	for page := 0; ; page++ {
		if page == maxListPages {
			return nil, fmt.Errorf("list tags of %s: over %d pages", origin.Repository(), maxListPages)
		}
		var body struct {
			Tags []string `json:"tags"`
		}
		next, status, err := f.getJSON(ctx, req, "list tags of "+origin.Repository(), &body)
		if status == http.StatusNotFound {
			return tags, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w (--referrers=false skips referrers)", err)
		}
		for _, t := range body.Tags {
			tags[t] = true
		}
		if next == nil {
			return tags, nil
		}
		req.url = next
	}
}

// readAPI reads every page of the referrers API's answer about a subject;
// a 404 (or 405) means the registry has no such API.
func (f *referrerFinder) readAPI(ctx context.Context, s subject) (referrerList, error) {
	list := referrerList{supported: true}
	req := apiRequest{method: http.MethodGet, loc: s.origin, path: "referrers/" + s.digest.String(),
		header: http.Header{"Accept": {ocispec.MediaTypeImageIndex}}}
	what := fmt.Sprintf("list referrers of %s@%s", s.origin.Repository(), s.digest)
	for page := 0; ; page++ {
		if page == maxListPages {
			return referrerList{}, fmt.Errorf("%s: over %d pages", what, maxListPages)
		}
		var idx ocispec.Index
		next, status, err := f.getJSON(ctx, req, what, &idx)
		if page == 0 && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed) {
			return referrerList{}, nil
		}
		if err != nil {
			return referrerList{}, fmt.Errorf("%w (--referrers=false skips referrers)", err)
		}
		list.descs = append(list.descs, idx.Manifests...)
		if next == nil {
			return list, nil
		}
		req.url = next
	}
}

// readFallback reads the fallback tag index of a subject.
func (f *referrerFinder) readFallback(ctx context.Context, s subject) (referrerList, error) {
	_, dt, err := f.r.GetManifest(ctx, s.origin.WithTag(fallbackTag(s.digest)))
	if err != nil {
		return referrerList{}, fmt.Errorf("referrers of %s@%s: %w", s.origin.Repository(), s.digest, err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(dt, &idx); err != nil {
		return referrerList{}, fmt.Errorf("referrers of %s@%s: parse %s: %w", s.origin.Repository(), s.digest, fallbackTag(s.digest), err)
	}
	return referrerList{descs: idx.Manifests}, nil
}

// readTagged reads a cosign manifest by its tag, and what is under it.
func (f *referrerFinder) readTagged(ctx context.Context, loc Location) (*node, error) {
	desc, dt, err := f.r.GetManifest(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("referrer %s: %w", loc, err)
	}
	n := &node{desc: desc, origin: loc.WithTag(""), data: dt}
	if err := f.g.expand(ctx, n); err != nil {
		return nil, fmt.Errorf("referrer %s: %w", loc, err)
	}
	return n, nil
}

// getJSON GETs a list page into v; it reports the next page and the status
// (0 when no answer came), with an error for anything but 200.
func (f *referrerFinder) getJSON(ctx context.Context, req apiRequest, what string, v any) (*url.URL, int, error) {
	resp, err := f.r.do(ctx, req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, statusError(what, resp)
	}
	dt, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("%s: %w", what, err)
	}
	if len(dt) > MaxManifestSize {
		return nil, resp.StatusCode, fmt.Errorf("%s: answer over the %d byte limit", what, MaxManifestSize)
	}
	if err := json.Unmarshal(dt, v); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("%s: %w", what, err)
	}
	return nextLink(resp), resp.StatusCode, nil
}

// referrerPlan is what one target repository receives of referrers:
// blobs and manifests by digest (content), then cosign tags and, where the
// registry has no referrers API, fallback tag indexes (tag step).
type referrerPlan struct {
	content *repoPlan
	// top are the OCI referrers put by digest, whose answer tells whether
	// the registry indexes subjects itself.
	top map[digest.Digest]bool
	// tags are the cosign manifests, put by tag.
	tags []referrer
	// bySubject lists the OCI referrers of each subject, in subject order.
	subjects  []digest.Digest
	bySubject map[digest.Digest][]ocispec.Descriptor
	// fallback is set when a put by digest was not indexed by the registry.
	mu       sync.Mutex
	fallback bool
}

// planReferrers builds the referrer plan of p from what was found,
// skipping content p already receives.
func planReferrers(p *repoPlan, found []referrer) *referrerPlan {
	rp := &referrerPlan{content: &repoPlan{repo: p.repo}, top: map[digest.Digest]bool{},
		bySubject: map[digest.Digest][]ocispec.Descriptor{}}
	seen := map[digest.Digest]bool{}
	for _, b := range p.blobs {
		seen[b.desc.Digest] = true
	}
	for _, n := range p.manifests {
		seen[n.desc.Digest] = true
	}
	tagged := map[string]bool{}
	listed := map[string]bool{}
	for _, ref := range found {
		if ref.tag != "" {
			if !tagged[ref.tag] {
				tagged[ref.tag] = true
				rp.tags = append(rp.tags, ref)
				for _, child := range ref.n.children {
					rp.content.addNode(child, seen)
				}
			}
			continue
		}
		if key := ref.subject.String() + ref.n.desc.Digest.String(); !listed[key] {
			listed[key] = true
			if _, ok := rp.bySubject[ref.subject]; !ok {
				rp.subjects = append(rp.subjects, ref.subject)
			}
			rp.bySubject[ref.subject] = append(rp.bySubject[ref.subject], ref.n.desc)
		}
		if !seen[ref.n.desc.Digest] {
			rp.top[ref.n.desc.Digest] = true
		}
		rp.content.addNode(ref.n, seen)
	}
	return rp
}

// empty reports whether there is nothing to copy.
func (rp *referrerPlan) empty() bool {
	return rp == nil || (len(rp.tags) == 0 && len(rp.bySubject) == 0)
}

// prepareReferrers finds the referrers of what p copies and copies their
// blobs; their manifests wait for p's own content (pushReferrerManifests).
func (f *referrerFinder) prepareReferrers(ctx context.Context, p *repoPlan, up *uploader, sub progress.SubLogger, slots *transferSlots) (*referrerPlan, error) {
	subjects := f.subjects(p)
	if len(subjects) == 0 {
		return nil, nil
	}
	found, err := f.find(ctx, subjects)
	if err != nil {
		return nil, err
	}
	rp := planReferrers(p, found)
	for _, ref := range found {
		kind := "referrer"
		if ref.tag != "" {
			kind = ref.tag
		}
		logf(sub, "copying %s %s of %s", kind, ref.n.desc.Digest, ref.subject)
	}
	return rp, rp.content.pushBlobs(ctx, up, sub, slots, f.limit)
}

// pushManifests puts the referrer manifests by digest, children first,
// noting whether the registry indexed the OCI referrers itself.
func (rp *referrerPlan) pushManifests(ctx context.Context, r *Resolver, sub progress.SubLogger, limit int) error {
	if rp.empty() {
		return nil
	}
	p := rp.content
	for _, level := range manifestLevels(p.manifests) {
		eg, ectx := errgroup.WithContext(ctx)
		eg.SetLimit(metadataLimit(limit))
		for _, n := range level {
			eg.Go(func() error {
				logf(sub, "copying %s from %s to %s", n.desc.Digest, n.origin.Repository(), p.repo.Repository())
				indexed, err := r.putManifestSubject(ectx, p.repo, n.desc, n.data)
				if err == nil && rp.top[n.desc.Digest] && !indexed {
					rp.mu.Lock()
					rp.fallback = true
					rp.mu.Unlock()
				}
				return err
			})
		}
		if err := eg.Wait(); err != nil {
			return err
		}
	}
	return nil
}

// pushTags writes the cosign tags and, where the registry did not index
// the OCI referrers, merges them into the fallback tag of their subject.
func (rp *referrerPlan) pushTags(ctx context.Context, r *Resolver, sub progress.SubLogger) error {
	if rp.empty() {
		return nil
	}
	repo := rp.content.repo
	for _, ref := range rp.tags {
		t := repo.WithTag(ref.tag)
		logf(sub, "pushing %s to %s", ref.n.desc.Digest, t)
		if err := r.putManifest(ctx, t, ref.tag, ref.n.desc, ref.n.data); err != nil {
			return fmt.Errorf("tag %s: %w", t, err)
		}
	}
	if !rp.fallback {
		return nil
	}
	for _, s := range rp.subjects {
		if err := mergeFallbackTag(ctx, r, sub, repo.WithTag(fallbackTag(s)), rp.bySubject[s]); err != nil {
			return err
		}
	}
	return nil
}

// mergeFallbackTag adds referrers to the fallback tag index at t (read
// first, so that referrers already there stay listed).
func mergeFallbackTag(ctx context.Context, r *Resolver, sub progress.SubLogger, t Location, descs []ocispec.Descriptor) error {
	resp, err := r.do(ctx, apiRequest{method: http.MethodGet, loc: t, path: "manifests/" + t.Tag, push: true,
		header: http.Header{"Accept": {ocispec.MediaTypeImageIndex}}})
	if err != nil {
		return fmt.Errorf("read referrers tag %s: %w", t, err)
	}
	var existing []byte
	switch resp.StatusCode {
	case http.StatusOK:
		existing, err = io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize))
		drain(resp)
		if err != nil {
			return fmt.Errorf("read referrers tag %s: %w", t, err)
		}
	case http.StatusNotFound:
		drain(resp)
	default:
		err := statusError("read referrers tag "+t.String(), resp)
		drain(resp)
		return err
	}
	dt, changed, err := mergeReferrerIndex(existing, descs)
	if err != nil {
		return fmt.Errorf("referrers tag %s: %w", t, err)
	}
	if !changed {
		return nil
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	logf(sub, "pushing %s to %s", desc.Digest, t)
	if err := r.putManifest(ctx, t, t.Tag, desc, dt); err != nil {
		return fmt.Errorf("tag %s: %w", t, err)
	}
	return nil
}

// putManifestSubject puts a manifest by digest and reports whether the
// registry answered with OCI-Subject, i.e. indexed its subject itself.
func (r *Resolver) putManifestSubject(ctx context.Context, loc Location, desc ocispec.Descriptor, dt []byte) (bool, error) {
	ref := desc.Digest.String()
	resp, err := r.do(ctx, apiRequest{method: http.MethodPut, loc: loc, path: "manifests/" + ref, push: true,
		header: http.Header{"Content-Type": {desc.MediaType}}, body: dt})
	if err != nil {
		return false, fmt.Errorf("push %s to %s: %w", desc.Digest, loc.Repository(), err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return false, statusError(fmt.Sprintf("push %s to %s", desc.Digest, loc.Repository()), resp)
	}
	return resp.Header.Get(ociSubjectHeader) != "", nil
}

// pushWithReferrers puts the plan's content and, at the same time, finds
// the referrers of what it copies and copies their blobs; their manifests
// follow the content they refer to.
func (p *repoPlan) pushWithReferrers(ctx context.Context, up *uploader, sub progress.SubLogger, slots *transferSlots, limit int, refs *referrerFinder) (*referrerPlan, error) {
	if refs == nil {
		return nil, p.pushContent(ctx, up, sub, slots, limit)
	}
	var rp *referrerPlan
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() error { return p.pushContent(ectx, up, sub, slots, limit) })
	eg.Go(func() error {
		var err error
		rp, err = refs.prepareReferrers(ectx, p, up, sub, slots)
		return err
	})
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return rp, rp.pushManifests(ctx, up.r, sub, limit)
}
