package create

import (
	"context"
	"fmt"
	"sync"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

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
	rp := &referrerPlan{content: &repoPlan{repo: p.repo, pl: p.pl}, top: map[digest.Digest]bool{},
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
	for _, rf := range found {
		if rf.tag != "" {
			if !tagged[rf.tag] {
				tagged[rf.tag] = true
				rp.tags = append(rp.tags, rf)
				for _, child := range rf.n.children {
					rp.content.addNode(child, seen)
				}
			}
			continue
		}
		if key := rf.subject.String() + rf.n.desc.Digest.String(); !listed[key] {
			listed[key] = true
			if _, ok := rp.bySubject[rf.subject]; !ok {
				rp.subjects = append(rp.subjects, rf.subject)
			}
			rp.bySubject[rf.subject] = append(rp.bySubject[rf.subject], rf.n.desc)
		}
		if !seen[rf.n.desc.Digest] {
			rp.top[rf.n.desc.Digest] = true
		}
		rp.content.addNode(rf.n, seen)
	}
	return rp
}

// empty reports whether there is nothing to copy.
func (rp *referrerPlan) empty() bool {
	return rp == nil || (len(rp.tags) == 0 && len(rp.bySubject) == 0)
}

// prepareReferrers finds the referrers of what p copies and copies their
// blobs; their manifests wait for p's own content (pushReferrerManifests).
func (f *referrerFinder) prepareReferrers(ctx context.Context, p *repoPlan, sub progress.SubLogger, slots *transferSlots) (*referrerPlan, error) {
	subjects := f.subjects(p)
	if len(subjects) == 0 {
		return nil, nil
	}
	found, err := f.find(ctx, subjects)
	if err != nil {
		return nil, err
	}
	rp := planReferrers(p, found)
	for _, rf := range found {
		kind := "referrer"
		if rf.tag != "" {
			kind = rf.tag
		}
		logf(sub, "copying %s %s of %s", kind, rf.n.desc.Digest, rf.subject)
	}
	return rp, rp.content.pushBlobs(ctx, sub, slots, f.limit)
}

// pushManifests puts the referrer manifests by digest, children first,
// noting whether the registry indexed the OCI referrers itself.
func (rp *referrerPlan) pushManifests(ctx context.Context, sub progress.SubLogger, limit int) error {
	if rp.empty() {
		return nil
	}
	return rp.content.putManifests(ctx, sub, limit, func(n *node, indexed bool) {
		if rp.top[n.desc.Digest] && !indexed {
			rp.mu.Lock()
			rp.fallback = true
			rp.mu.Unlock()
		}
	})
}

// tagReferrers writes the cosign tags and, where the registry did not index
// the OCI referrers, merges them into the fallback tag of their subject.
func (rp *referrerPlan) tagReferrers(ctx context.Context, sub progress.SubLogger) error {
	if rp.empty() {
		return nil
	}
	pl, repo := rp.content.pl, rp.content.repo
	for _, rf := range rp.tags {
		t := repo.WithTag(rf.tag)
		logf(sub, "pushing %s to %s", rf.n.desc.Digest, t)
		if err := pl.Tag(ctx, t, rf.n.desc, rf.n.data); err != nil {
			return fmt.Errorf("tag %s: %w", t, err)
		}
	}
	if !rp.fallback {
		return nil
	}
	for _, s := range rp.subjects {
		if err := mergeFallbackTag(ctx, pl, sub, repo.WithTag(fallbackTag(s)), rp.bySubject[s]); err != nil {
			return err
		}
	}
	return nil
}

// mergeFallbackTag adds referrers to the fallback tag index at t (read
// first, so that referrers already there stay listed).
func mergeFallbackTag(ctx context.Context, pl place.Place, sub progress.SubLogger, t ref.Location, descs []ocispec.Descriptor) error {
	existing, _, err := pl.ReadTag(ctx, t)
	if err != nil {
		return fmt.Errorf("read referrers tag %s: %w", t, err)
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
	if err := pl.Tag(ctx, t, desc, dt); err != nil {
		return fmt.Errorf("tag %s: %w", t, err)
	}
	return nil
}

// pushWithReferrers puts the plan's content and, at the same time, finds
// the referrers of what it copies and copies their blobs; their manifests
// follow the content they refer to.
func (p *repoPlan) pushWithReferrers(ctx context.Context, sub progress.SubLogger, slots *transferSlots, limit int, refs *referrerFinder) (*referrerPlan, error) {
	if refs == nil {
		return nil, p.pushContent(ctx, sub, slots, limit)
	}
	var rp *referrerPlan
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() error { return p.pushContent(ectx, sub, slots, limit) })
	eg.Go(func() error {
		var err error
		rp, err = refs.prepareReferrers(ectx, p, sub, slots)
		return err
	})
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	return rp, rp.pushManifests(ctx, sub, limit)
}
