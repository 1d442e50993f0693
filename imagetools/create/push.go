package create

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// pushOptions say where and how pushAll writes.
type pushOptions struct {
	// Targets are tagged locations: registry references or OCI layouts.
	Targets []ref.Location
	// MaxConcurrency bounds blob transfers running at once over all targets;
	// 0 means oci.DefaultMaxConcurrency.
	MaxConcurrency int
	// Progress receives one vertex per target repository; nil discards.
	Progress progress.Writer
	// Referrers copies, with every manifest copied into another repository
	// of a place that keeps referrers, its cosign tags and OCI referrers
	// (see referrers.go).
	Referrers bool
	// budget counts the manifests read, the sources' included.
	budget *oci.GraphBudget
	// early holds the checks Create started while reading the sources.
	early *earlyChecks
	// slots, when set, are shared with other pushes of the same run;
	// shared, when set, makes them upload each blob once (Transfers.share).
	slots  *transferSlots
	shared *Transfers
	// unchanged, when set, is the tag the content was computed from (the
	// tag --append merges into): if it holds anything else when the tags
	// are about to move, no tag moves and pushAll fails with
	// imagetools.ErrTagChanged.
	unchanged *expectedTag
	// tagsRead, when set, are where the tagged targets pointed when this
	// run read them (Copy reads them to see whether it has anything to
	// do): the tag step moves them from there without reading them again.
	tagsRead []tagState
	// tagLists, when set, are the sources' tag lists the referrers are
	// found through (TagLists); nil reads each referrer tag by name.
	tagLists *TagLists
}

// pushAll copies content to every target: each blob and child manifest by
// digest first (skipping what a target repository is known to hold because
// the source is that repository), then, once every target repository holds
// all of it, the root to each tag, all or none (tags.go). A failure before
// the tag step moves no tag; a failure in it is a *tagsError.
func pushAll(ctx context.Context, pl place.Place, c pushInput, opts pushOptions) error {
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = oci.DefaultMaxConcurrency
	}
	if opts.Progress == nil {
		opts.Progress = progress.Discard()
	}
	// Every place is readied before anything runs in parallel, so that a bad
	// configuration fails before anything moves.
	undo, err := pl.Prepare(slices.Concat([]ref.Location{c.rootOrigin}, c.origins, opts.Targets))
	if err != nil {
		return err
	}
	if err := push(ctx, pl, c, opts); err != nil {
		// What this push created holds only part of the content and no tag
		// (a new layout folder): remove it, as a failed export removes its
		// output.
		undo()
		return err
	}
	return nil
}

// push reads what is under the root, plans each target repository and runs
// the plans.
func push(ctx context.Context, pl place.Place, c pushInput, opts pushOptions) error {
	g := newGraphReader(pl, c.known, opts.budget, opts.MaxConcurrency)
	graph, err := readGraph(ctx, g, c, opts.Targets)
	if err != nil {
		return err
	}
	plans := planPush(graph, c, opts.Targets, pl)
	if opts.shared != nil {
		opts.shared.share(plans)
	}
	for _, p := range plans {
		p.early = opts.early
	}
	var refs *referrerFinder
	if opts.Referrers {
		refs = newReferrerFinder(pl, c, g, opts.MaxConcurrency, opts.tagLists)
	}
	if err := runPlans(ctx, plans, refs, opts); err != nil {
		return err
	}
	return tagStep(ctx, pl, c, opts)
}

// runPlans runs every repository's plan in its own progress vertex: content
// (with referrers, when refs is set) first; then, when every repository has
// all its content, the referrers' tags. The user's tags follow (tagStep).
func runPlans(ctx context.Context, plans []*repoPlan, refs *referrerFinder, opts pushOptions) error {
	slots := opts.slots
	if slots == nil {
		slots = newTransferSlots(opts.MaxConcurrency)
	}
	contentDone := make(chan struct{})
	var mu sync.Mutex
	remaining := len(plans)
	eg, ctx := errgroup.WithContext(ctx)
	for _, p := range plans {
		eg.Go(func() error {
			return progress.Wrap("[internal] pushing "+p.repo.Repository(), opts.Progress, func(sub progress.SubLogger) error {
				rp, err := p.pushWithReferrers(ctx, sub, slots, opts.MaxConcurrency, refs)
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
				return rp.tagReferrers(ctx, sub, p)
			})
		})
	}
	return eg.Wait()
}

// pushContent puts blobs (in parallel), then manifests, children before
// parents (putManifests), then the root by digest when it goes first.
func (p *repoPlan) pushContent(ctx context.Context, sub progress.SubLogger, slots *transferSlots, limit int) error {
	if err := p.pushBlobs(ctx, sub, slots, limit); err != nil {
		return err
	}
	if err := p.putManifests(ctx, sub, limit); err != nil {
		return err
	}
	if p.pushRoot {
		return p.putByDigest(ctx, p.rootDesc, p.rootBytes)
	}
	return nil
}

// putManifests puts the plan's manifests by digest, children before
// parents, each level in parallel, as many at once as other small requests,
// noting those the place did not index by their subject itself.
func (p *repoPlan) putManifests(ctx context.Context, sub progress.SubLogger, limit int) error {
	for _, level := range manifestLevels(p.manifests) {
		eg, ectx := errgroup.WithContext(ctx)
		eg.SetLimit(oci.MetadataLimit(limit))
		for _, n := range level {
			eg.Go(func() error {
				logf(sub, "copying %s from %s to %s", n.desc.Digest, n.origin.Repository(), p.repo.Repository())
				indexed, err := p.pl.PutManifest(ectx, p.repo, n.desc, n.data)
				if err == nil && !indexed {
					p.mu.Lock()
					if p.unindexed == nil {
						p.unindexed = map[digest.Digest]bool{}
					}
					p.unindexed[n.desc.Digest] = true
					p.mu.Unlock()
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

// unindexedAny reports whether the plan put one of descs without the place
// indexing it by its subject.
func (p *repoPlan) unindexedAny(descs []ocispec.Descriptor) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range descs {
		if p.unindexed[d.Digest] {
			return true
		}
	}
	return false
}

// pushBlobs puts in the repository the blobs it lacks. Mounts move no
// bytes: they run beside the transfers, up to metadataLimit at once, and
// take a transfer slot only when the registry wants an upload instead. The
// existence checks of the others run ahead, also up to metadataLimit,
// while transfers start in plan order, each holding one of the slots shared
// by every target: a transfer rarely waits on a check, and
// --max-concurrency 1 keeps the transfers in plan order.
func (p *repoPlan) pushBlobs(ctx context.Context, sub progress.SubLogger, slots *transferSlots, limit int) error {
	defer p.failUnsignalled()
	eg, ectx := errgroup.WithContext(ctx)
	found := make([]chan checked, len(p.blobs))
	for i, b := range p.blobs {
		if p.needsCheck(b) {
			found[i] = make(chan checked, 1)
		}
	}
	// Mounts and checks run in groups of their own: a mount waiting on
	// another target's upload holds up no check.
	eg.Go(func() error {
		var mounts errgroup.Group
		mounts.SetLimit(oci.MetadataLimit(limit))
		for _, b := range p.blobs {
			if b.mount {
				mounts.Go(func() error { return p.mountOrCopy(ectx, sub, slots, b) })
			}
		}
		return mounts.Wait()
	})
	eg.Go(func() error {
		var checks errgroup.Group
		checks.SetLimit(oci.MetadataLimit(limit))
		for i, b := range p.blobs {
			if found[i] != nil {
				checks.Go(func() error {
					c, err := p.check(ectx, b.desc)
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
			return p.copyBlob(ectx, sub, b)
		})
	}
	return eg.Wait()
}

// failUnsignalled marks as failed every blob of the plan not signalled
// present: whatever ends a push, no mount of another push waits on one of
// its blobs for ever.
func (p *repoPlan) failUnsignalled() {
	for _, b := range p.blobs {
		b.ready.fail()
	}
}

// checked is what the check of a blob found: the blob in the repository or
// not (the place keeps any upload it started for it).
type checked struct {
	present bool
}

// mountOrCopy links a blob from another repository of the place, once it is
// there; when the place wants an upload instead, the blob is uploaded in a
// transfer slot.
func (p *repoPlan) mountOrCopy(ctx context.Context, sub progress.SubLogger, slots *transferSlots, b blobJob) error {
	err := b.after.wait(ctx)
	switch {
	case errors.Is(err, errUploadFailed):
		// Another push's upload failed: send the blob here instead.
		return p.copyInSlot(ctx, sub, slots, b)
	case err != nil:
		return err
	case place.SameRepository(b.mountFrom, p.repo):
		// Another push of the run put it into this very repository.
		b.ready.signal()
		return nil
	}
	logf(sub, "mounting %s from %s", b.desc.Digest, b.mountFrom.Repository())
	ok, err := p.pl.MountBlob(ctx, p.repo, b.mountFrom, b.desc)
	if err != nil || ok {
		b.ready.signal()
		return err
	}
	return p.copyInSlot(ctx, sub, slots, b)
}

// copyInSlot copies a blob once a transfer slot is free.
func (p *repoPlan) copyInSlot(ctx context.Context, sub progress.SubLogger, slots *transferSlots, b blobJob) error {
	release, err := slots.acquire(ctx, b.desc)
	if err != nil {
		return err
	}
	defer release()
	return p.copyBlob(ctx, sub, b)
}

// check looks for a blob in the repository, or takes the answer of the
// check started early for it.
func (p *repoPlan) check(ctx context.Context, desc ocispec.Descriptor) (checked, error) {
	if c := p.early.take(p.repo, desc.Digest); c != nil {
		return c.wait(ctx)
	}
	present, err := p.pl.CheckBlob(ctx, p.repo, desc)
	return checked{present: present}, err
}

// needsCheck reports whether a blob is looked for in the target before it
// is sent: only where the place says a check saves a transfer (a layout's
// writer finds the blob itself), not when mounted (a mount is one request
// either way), not for bytes in memory (sending them costs no more than
// asking).
func (p *repoPlan) needsCheck(b blobJob) bool {
	return p.pl.Capabilities(p.repo).CheckFirst && !b.mount && b.data == nil
}

// copyBlob puts one blob in the repository by copying it, in the fewest
// requests the place allows (see place.Writer.PushBlob), in the upload a
// check or a refused mount started, which the place kept.
func (p *repoPlan) copyBlob(ctx context.Context, sub progress.SubLogger, b blobJob) error {
	logf(sub, "copying %s from %s to %s", b.desc.Digest, b.from.Repository(), p.repo.Repository())
	err := p.pl.PushBlob(ctx, p.repo, place.Blob{Desc: b.desc, Data: b.data, Open: p.opener(b), From: b.from.Repository(), Progress: sub})
	if err == nil {
		b.ready.signal()
	}
	return err
}

// opener reads a blob from where the plan found it, afresh at each call.
func (p *repoPlan) opener(b blobJob) func(ctx context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		f, err := p.pl.Fetcher(ctx, b.from)
		if err != nil {
			return nil, err
		}
		return f.Fetch(ctx, b.desc)
	}
}

// putByDigest stores a manifest by digest.
func (p *repoPlan) putByDigest(ctx context.Context, desc ocispec.Descriptor, dt []byte) error {
	_, err := p.pl.PutManifest(ctx, p.repo, desc, dt)
	return err
}

func logf(sub progress.SubLogger, format string, args ...any) {
	sub.Log(1, fmt.Appendf(nil, format+"\n", args...))
}
