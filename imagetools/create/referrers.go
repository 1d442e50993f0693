package create

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
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
// it copies into another repository, and the referrers of those (a
// signature on an attestation), up to maxReferrerDepth levels.
//
// Cost per source repository read from: one referrers API request for the
// first copied manifest, which tells whether the registry has the API. Per
// copied manifest: a GET of each of its three cosign tags, by name, as
// cosign looks them up (a tags list would cost memory and time in
// proportion to every tag of the repository, ~19 MB a page on a busy one),
// and either the referrers API or a GET of its fallback tag. Then each
// referrer found is read and copied like any manifest. Nothing is asked
// when no manifest is copied (every target is the source repository). A
// referrer that a source lists but cannot serve fails the create before
// any tag moves.

// cosignSuffixes are the tag suffixes of cosign's tag scheme.
var cosignSuffixes = []string{".att", ".sbom", ".sig"}

// fallbackTag is the OCI referrers tag schema tag of a subject: <alg>-<hex>.
func fallbackTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

// cosignTags returns the cosign tags a subject may have, sorted.
func cosignTags(subject digest.Digest) []string {
	out := make([]string, len(cosignSuffixes))
	for i, s := range cosignSuffixes {
		out[i] = fallbackTag(subject) + s
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

// mergeCosignManifest adds the layers of a cosign manifest (each a
// signature, attestation or SBOM, with its annotations) to the manifest a
// target already holds under the same tag, as cosign itself accumulates
// them: the target's manifest, config and layers are kept, the source's
// layers not already there (same descriptor, annotations included) are
// appended. It reports false when nothing was added.
func mergeCosignManifest(existing, add []byte) ([]byte, bool, error) {
	var have, more ocispec.Manifest
	if json.Unmarshal(existing, &have) != nil || have.Config.Digest == "" {
		return nil, false, errors.New("the target's is not an image manifest: cannot add to it")
	}
	if json.Unmarshal(add, &more) != nil || more.Config.Digest == "" {
		return nil, false, errors.New("the source's is not an image manifest")
	}
	seen := map[string]bool{}
	key := func(d ocispec.Descriptor) string {
		dt, _ := json.Marshal(d) // map keys marshal sorted: one key per descriptor
		return string(dt)
	}
	for _, l := range have.Layers {
		seen[key(l)] = true
	}
	changed := false
	for _, l := range more.Layers {
		if k := key(l); !seen[k] {
			seen[k] = true
			have.Layers = append(have.Layers, l)
			changed = true
		}
	}
	if !changed {
		return existing, false, nil
	}
	dt, err := json.Marshal(have)
	return dt, true, err
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
	pl     place.Place
	c      pushInput
	g      *graphReader
	limit  int
	tags   *TagLists
	apis   onceMap[bool]
	lists  onceMap[referrerList]
	tagged onceMap[*node]
}

// newReferrerFinder reads what it finds through g, the graph of the push;
// a referrer tag the source's list (lists, when set) shows missing is not
// read.
func newReferrerFinder(pl place.Place, c pushInput, g *graphReader, limit int, lists *TagLists) *referrerFinder {
	return &referrerFinder{pl: pl, c: c, limit: limit, g: g, tags: lists}
}

// subject is a manifest copied into a target, with the repository it is
// read from.
type subject struct {
	digest digest.Digest
	origin ref.Location
}

// subjects lists the manifests the plan copies from other repositories of
// places that keep referrers: the manifests it puts by digest and the root,
// when the root is a source's manifest or index kept as it is.
func (f *referrerFinder) subjects(p *repoPlan) []subject {
	if !f.pl.Capabilities(p.repo).Referrers {
		return nil
	}
	var out []subject
	seen := map[digest.Digest]bool{}
	add := func(d digest.Digest, origin ref.Location) {
		if !seen[d] && f.pl.Capabilities(origin).Referrers && !place.SameRepository(origin, p.repo) {
			seen[d] = true
			out = append(out, subject{digest: d, origin: origin})
		}
	}
	if _, fromSource := f.c.known[f.c.root.Digest]; fromSource || !oci.IsIndex(f.c.root.MediaType) {
		add(f.c.root.Digest, f.c.rootOrigin)
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
		for _, rf := range found {
			d := rf.n.desc
			if !seen[d.Digest] && (oci.IsManifestOrIndex(d.MediaType)) {
				seen[d.Digest] = true
				subjects = append(subjects, subject{digest: d.Digest, origin: rf.n.origin})
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
	api, err := f.hasAPI(ctx, s.origin, all)
	if err != nil {
		return nil, err
	}
	tags := cosignTags(s.digest)
	tagged := make([]*node, len(tags))
	var list referrerList
	eg, ectx := errgroup.WithContext(ctx)
	for i, tag := range tags {
		if f.tags.absent(ctx, f.pl, s.origin, tag) {
			continue
		}
		eg.Go(func() error {
			var err error
			tagged[i], err = f.tagged.do(s.origin.Repository()+":"+tag, func() (*node, error) {
				return f.readTagged(ectx, s.origin.WithTag(tag))
			})
			return err
		})
	}
	eg.Go(func() error {
		var err error
		if api {
			list, err = f.apiList(ectx, s)
		} else {
			list, err = f.lists.do(s.origin.Repository()+":"+fallbackTag(s.digest), func() (referrerList, error) {
				return f.readFallback(ectx, s)
			})
		}
		return err
	})
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	var out []referrer
	for i, n := range tagged {
		if n != nil {
			out = append(out, referrer{subject: s.digest, n: n, tag: tags[i]})
		}
	}
	for _, d := range list.descs {
		n := &node{desc: d, origin: s.origin, data: f.c.known[d.Digest]}
		if err := f.g.expand(ctx, 0, n); err != nil {
			return nil, fmt.Errorf("referrer %s of %s@%s: %w", d.Digest, s.origin.Repository(), s.digest, err)
		}
		out = append(out, referrer{subject: s.digest, n: n})
	}
	return out, nil
}

// hasAPI asks the referrers API of a source repository about the first
// subject read from it, once, which tells whether the registry has it.
func (f *referrerFinder) hasAPI(ctx context.Context, origin ref.Location, all []subject) (bool, error) {
	return f.apis.do(origin.Repository(), func() (bool, error) {
		for _, s := range all {
			if s.origin.Repository() == origin.Repository() {
				list, err := f.apiList(ctx, s)
				return list.supported, err
			}
		}
		return false, nil
	})
}

// apiList asks the referrers API about a subject (once).
func (f *referrerFinder) apiList(ctx context.Context, s subject) (referrerList, error) {
	return f.lists.do(s.origin.Repository()+"@"+s.digest.String(), func() (referrerList, error) {
		descs, supported, err := f.pl.Referrers(ctx, s.origin.WithDigest(s.digest))
		return referrerList{descs: descs, supported: supported}, err
	})
}

// readFallback reads the fallback tag index of a subject.
func (f *referrerFinder) readFallback(ctx context.Context, s subject) (referrerList, error) {
	if f.tags.absent(ctx, f.pl, s.origin, fallbackTag(s.digest)) {
		return referrerList{}, nil
	}
	_, dt, err := f.pl.Manifest(ctx, s.origin.WithTag(fallbackTag(s.digest)))
	if errdefs.IsNotFound(err) {
		return referrerList{}, nil // no referrers
	}
	if err == nil {
		err = f.g.charge(ocispec.Descriptor{Digest: digest.FromBytes(dt), Size: int64(len(dt))})
	}
	if err != nil {
		return referrerList{}, fmt.Errorf("referrers of %s@%s: %w", s.origin.Repository(), s.digest, err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(dt, &idx); err != nil {
		return referrerList{}, fmt.Errorf("referrers of %s@%s: parse %s: %w", s.origin.Repository(), s.digest, fallbackTag(s.digest), err)
	}
	return referrerList{descs: idx.Manifests}, nil
}

// readTagged reads a cosign manifest by its tag, and what is under it; nil
// when the tag does not exist.
func (f *referrerFinder) readTagged(ctx context.Context, loc ref.Location) (*node, error) {
	desc, dt, err := f.pl.Manifest(ctx, loc)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err == nil {
		err = f.g.charge(desc)
	}
	if err != nil {
		return nil, fmt.Errorf("referrer %s: %w", loc, err)
	}
	n := &node{desc: desc, origin: loc.WithTag(""), data: dt}
	if err := f.g.expand(ctx, 0, n); err != nil {
		return nil, fmt.Errorf("referrer %s: %w", loc, err)
	}
	return n, nil
}
