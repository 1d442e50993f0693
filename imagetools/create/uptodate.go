package create

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// thereCheck asks whether every target holds what the source src has of
// the referrers of a copied image: the cosign tags as the source has them
// and the OCI referrers the source lists, of the root, of each manifest an
// index lists, and of the referrers found (a signature on an SBOM), up to
// maxReferrerDepth levels, as the copy follows them. A target is asked
// only about what the source has. The source's tags come from its one
// list (lists) where it has one: a subject without referrers then costs
// the source nothing but its share of the one probe of the referrers API.
type thereCheck struct {
	pl      place.Place
	src     ref.Location
	targets []ref.Location
	lists   *TagLists
	limit   int
	probe   *apiProbe
}

// referrersThere reports whether every target holds what the source has of
// the referrers of desc (thereCheck). The subjects of a level are asked at
// once, as many as small requests go (oci.MetadataLimit of limit). A read
// that fails answers false: the full copy then says what is wrong.
func referrersThere(ctx context.Context, pl place.Place, src ref.Location, desc ocispec.Descriptor, dt []byte, targets []ref.Location, lists *TagLists, limit int) (bool, error) {
	subjects, err := rootSubjects(desc, dt)
	if err != nil {
		return false, nil
	}
	c := &thereCheck{pl: pl, src: src, targets: targets, lists: lists, limit: limit, probe: newAPIProbe()}
	err = walkReferrerLevels(subjects, func(level []digest.Digest, depth int) ([]digest.Digest, error) {
		next, ok := c.level(ctx, level, depth == 0)
		if !ok {
			return nil, errNotThere
		}
		return next, nil
	})
	return err == nil, nil
}

// rootSubjects are the first level of a walk of an image's referrers: the
// root desc and, for an index (its bytes dt), each manifest it lists.
func rootSubjects(desc ocispec.Descriptor, dt []byte) ([]digest.Digest, error) {
	subjects := []digest.Digest{desc.Digest}
	if oci.IsIndex(desc.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(dt, &idx); err != nil {
			return nil, err
		}
		for _, m := range idx.Manifests {
			subjects = append(subjects, m.Digest)
		}
	}
	return subjects, nil
}

// walkReferrerLevels calls visit with each level of subjects, level 0
// first, each digest in one level only, up to maxReferrerDepth levels;
// visit returns the referrers it found, the next level's subjects. It
// stops at visit's first error and returns it.
func walkReferrerLevels(subjects []digest.Digest, visit func(level []digest.Digest, depth int) ([]digest.Digest, error)) error {
	seen := map[digest.Digest]bool{}
	for depth := 0; depth < maxReferrerDepth && len(subjects) > 0; depth++ {
		var level []digest.Digest
		for _, d := range subjects {
			if !seen[d] {
				seen[d] = true
				level = append(level, d)
			}
		}
		next, err := visit(level, depth)
		if err != nil {
			return err
		}
		subjects = next
	}
	return nil
}

// level checks the subjects of one level, at once, and returns the
// referrers found, the next level's subjects; ok is false at the first
// subject a target lacks. With root, the first subject is the root, whose
// list probes the source's referrers API (apiProbe).
func (c *thereCheck) level(ctx context.Context, subjects []digest.Digest, root bool) (next []digest.Digest, ok bool) {
	found := make([][]digest.Digest, len(subjects))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(oci.MetadataLimit(c.limit))
	// The root goes first: it holds a slot while the children wait on its probe.
	for i, d := range subjects {
		eg.Go(func() error {
			refs, there := c.subject(ectx, d, root && i == 0)
			if !there {
				return errNotThere // the others need not be asked
			}
			found[i] = refs
			return nil
		})
	}
	if eg.Wait() != nil {
		return nil, false
	}
	return slices.Concat(found...), true
}

// errNotThere stops a level, and the walk, at the first subject a target
// lacks.
var errNotThere = errors.New("a target lacks a referrer")

// apiProbe is what the source's referrers API answered about the root:
// whether the registry has the API. The other subjects' lists wait on it
// rather than each ask an API the registry may not have (one request a
// manifest saved where it has none).
type apiProbe struct {
	done      chan struct{}
	supported bool
}

// newAPIProbe returns a probe waiting for the root's answer.
func newAPIProbe() *apiProbe { return &apiProbe{done: make(chan struct{})} }

// referrers asks the referrers API about d in loc's repository. The root
// (root true) asks and records whether the registry has the API; the
// other subjects wait for that answer and ask only where it has.
// supported is false without the API.
func (p *apiProbe) referrers(ctx context.Context, pl place.Reader, loc ref.Location, d digest.Digest, root bool) ([]ocispec.Descriptor, bool, error) {
	if root {
		defer close(p.done)
		descs, supported, err := pl.Referrers(ctx, loc.WithDigest(d))
		p.supported = supported && err == nil
		return descs, supported, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, false, context.Cause(ctx)
	}
	if !p.supported {
		return nil, false, nil
	}
	return pl.Referrers(ctx, loc.WithDigest(d))
}

// subject reports whether every target holds the cosign tags of d as the
// source has them and lists the OCI referrers of d the source lists
// (sourceList), and returns those referrers of d.
func (c *thereCheck) subject(ctx context.Context, d digest.Digest, root bool) ([]digest.Digest, bool) {
	// The cosign tags and the list are asked for at once.
	var cosign map[string]digest.Digest
	var listed map[digest.Digest]bool
	var eg errgroup.Group
	eg.Go(func() (err error) {
		cosign, err = taggedReferrers(ctx, c.pl, c.src, cosignTags(d), c.lists)
		return err
	})
	eg.Go(func() (err error) { listed, err = c.sourceList(ctx, d, root); return err })
	if eg.Wait() != nil {
		return nil, false
	}
	for _, t := range c.targets {
		for tag, want := range cosign {
			s, err := readTag(ctx, c.pl, t.WithTag(tag))
			if err != nil || s.now() != want {
				return nil, false
			}
		}
		if len(listed) == 0 {
			continue
		}
		have, err := listReferrers(ctx, c.pl, t, d, false, nil)
		if err != nil {
			return nil, false
		}
		for l := range listed {
			if !have[l] {
				return nil, false
			}
		}
	}
	refs := make([]digest.Digest, 0, len(cosign)+len(listed))
	for _, tag := range cosignTags(d) {
		if dg, ok := cosign[tag]; ok {
			refs = append(refs, dg)
		}
	}
	for l := range listed {
		refs = append(refs, l)
	}
	slices.Sort(refs[len(refs)-len(listed):])
	return refs, true
}

// sourceList lists the OCI referrers of d in the source: the root asks the
// API (and says what it found, c.probe), the others ask the API only where
// the root found it, else read the fallback tag at once (where the
// source's tag list does not show it missing).
func (c *thereCheck) sourceList(ctx context.Context, d digest.Digest, root bool) (map[digest.Digest]bool, error) {
	descs, supported, err := c.probe.referrers(ctx, c.pl, c.src, d, root)
	if err != nil || supported {
		return digestSet(descs), err
	}
	return listReferrers(ctx, c.pl, c.src, d, true, c.lists)
}

// taggedReferrers reads the tags of src's repository named, at once, and
// returns the digest of each that exists; a tag its list (lists) shows
// missing is not read.
func taggedReferrers(ctx context.Context, pl place.Backend, src ref.Location, tags []string, lists *TagLists) (map[string]digest.Digest, error) {
	digests := make([]digest.Digest, len(tags))
	eg, ectx := errgroup.WithContext(ctx)
	for i, t := range tags {
		if lists.absent(ctx, pl, src, t) {
			continue
		}
		eg.Go(func() error {
			desc, _, err := pl.Manifest(ectx, src.WithTag(t))
			if isNotFound(err) {
				return nil
			}
			digests[i] = desc.Digest
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	out := map[string]digest.Digest{}
	for i, t := range tags {
		if digests[i] != "" {
			out[t] = digests[i]
		}
	}
	return out, nil
}

// listReferrers lists the digests of the OCI referrers of d in loc's
// repository: the referrers API's answer, else the fallback tag's index.
// skipAPI reads the fallback tag without asking the API (known to be
// missing); a fallback tag the repository's list (lists) shows missing is
// not read.
func listReferrers(ctx context.Context, pl place.Backend, loc ref.Location, d digest.Digest, skipAPI bool, lists *TagLists) (map[digest.Digest]bool, error) {
	var descs []ocispec.Descriptor
	supported := false
	if !skipAPI {
		var err error
		if descs, supported, err = pl.Referrers(ctx, loc.WithDigest(d)); err != nil {
			return nil, err
		}
	}
	if !supported && !lists.absent(ctx, pl, loc, fallbackTag(d)) {
		_, dt, err := pl.Manifest(ctx, loc.WithTag(fallbackTag(d)))
		if err != nil && !isNotFound(err) {
			return nil, err
		}
		var idx ocispec.Index
		if err == nil {
			if err := json.Unmarshal(dt, &idx); err != nil {
				return nil, fmt.Errorf("parse referrers tag of %s: %w", d, err)
			}
		}
		descs = idx.Manifests
	}
	return digestSet(descs), nil
}

// digestSet is the set of the descriptors' digests.
func digestSet(descs []ocispec.Descriptor) map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for _, desc := range descs {
		out[desc.Digest] = true
	}
	return out
}
