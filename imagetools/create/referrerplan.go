package create

import (
	"context"
	"fmt"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
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
	// tags are the cosign manifests, put by tag.
	tags []referrer
	// bySubject lists the OCI referrers of each subject, in subject order.
	subjects  []digest.Digest
	bySubject map[digest.Digest][]ocispec.Descriptor
}

// planReferrers builds the referrer plan of p from what was found,
// skipping content p already receives.
func planReferrers(p *repoPlan, found []referrer) *referrerPlan {
	rp := &referrerPlan{content: &repoPlan{repo: p.repo, pl: p.pl}, bySubject: map[digest.Digest][]ocispec.Descriptor{}}
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

// pushManifests puts the referrer manifests by digest, children first.
func (rp *referrerPlan) pushManifests(ctx context.Context, sub progress.SubLogger, limit int) error {
	if rp.empty() {
		return nil
	}
	return rp.content.putManifests(ctx, sub, limit)
}

// tagReferrers writes the cosign tags (merged with what the target holds
// under them) and, where the registry did not index an OCI referrer put by
// digest, here or as part of main's content (a referrer that is also a
// child of the copied index), merges the referrers into the fallback tag of
// their subject.
func (rp *referrerPlan) tagReferrers(ctx context.Context, sub progress.SubLogger, main *repoPlan) error {
	if rp.empty() {
		return nil
	}
	pl, repo := rp.content.pl, rp.content.repo
	for _, rf := range rp.tags {
		if err := mergeCosignTag(ctx, pl, sub, repo.WithTag(rf.tag), rf.n.desc, rf.n.data); err != nil {
			return err
		}
	}
	for _, s := range rp.subjects {
		if !main.unindexedAny(rp.bySubject[s]) && !rp.content.unindexedAny(rp.bySubject[s]) {
			continue
		}
		if err := mergeFallbackTag(ctx, pl, sub, repo.WithTag(fallbackTag(s)), rp.bySubject[s]); err != nil {
			return err
		}
	}
	return nil
}

// mergeCosignTag points the cosign tag t at the source's manifest or, when
// the target holds other signatures there, at the two merged: a signature
// made in the target is never dropped.
func mergeCosignTag(ctx context.Context, pl place.Writer, sub progress.SubLogger, t ref.Location, desc ocispec.Descriptor, data []byte) error {
	existing, found, err := pl.ReadTag(ctx, t)
	if err != nil {
		return fmt.Errorf("read cosign tag %s: %w", t, err)
	}
	if found {
		merged, changed, err := mergeCosignManifest(existing, data)
		if err != nil {
			return fmt.Errorf("cosign tag %s: %w", t, err)
		}
		if !changed {
			return nil
		}
		data = merged
		desc = ocispec.Descriptor{MediaType: desc.MediaType, Digest: digest.FromBytes(merged), Size: int64(len(merged))}
		if mt, err := oci.DetectMediaType(existing); err == nil {
			desc.MediaType = mt
		}
	}
	logf(sub, "pushing %s to %s", desc.Digest, t)
	if err := pl.Tag(ctx, t, desc, data); err != nil {
		return fmt.Errorf("tag %s: %w", t, err)
	}
	return nil
}

// mergeFallbackTag adds referrers to the fallback tag index at t (read
// first, so that referrers already there stay listed).
func mergeFallbackTag(ctx context.Context, pl place.Writer, sub progress.SubLogger, t ref.Location, descs []ocispec.Descriptor) error {
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
