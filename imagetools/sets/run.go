package sets

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/imagetools/create"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/termtext"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Options describe one run over a set.
type Options struct {
	// Platforms, when set, keep only these platforms of an index: the
	// copy is a new index, with a digest of its own.
	Platforms []ocispec.Platform
	// Referrers carries cosign tags and OCI referrers along.
	Referrers bool
	// FailFast stops the other images at the first failure.
	FailFast bool
	// MaxConcurrency bounds the run: blob transfers over all images, and
	// the images copied at once (oci.MetadataLimit of it).
	MaxConcurrency int
	// Compression compresses the plain layers of images from docker save
	// tars and the Docker engine copied to a registry (create.CopyOptions).
	Compression compression.Format
	Progress    progress.Writer
}

// Outcome is what happened to one image.
type Outcome string

// The outcomes of an image.
const (
	Copied  Outcome = "copied"
	Skipped Outcome = "skipped"
	Failed  Outcome = "failed"
)

// Item is the report of one image.
type Item struct {
	Source  string        `json:"source"`
	Target  string        `json:"target"`
	Digest  digest.Digest `json:"digest,omitempty"`
	Outcome Outcome       `json:"outcome"`
	// Reason says why it failed (one line), or what a skip found.
	Reason string `json:"reason,omitempty"`
}

// Report lists every image of a run, in the order of the set.
type Report struct {
	Items []Item `json:"images"`
}

// Failed counts the images that failed.
func (r Report) Failed() int {
	n := 0
	for _, it := range r.Items {
		if it.Outcome == Failed {
			n++
		}
	}
	return n
}

// ErrSomeFailed is the error of a run in which an image failed; the
// Report says which and why.
var ErrSomeFailed = errors.New("images failed")

// Copy copies every pair, as many images at once as small requests go
// (oci.MetadataLimit of MaxConcurrency) and their blob transfers under one
// bound (create.Transfers), and reports each. The error is
// ErrSomeFailed (wrapped with the count) when an image failed.
func Copy(ctx context.Context, pl place.Place, pairs []Pair, opts Options) (Report, error) {
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = oci.DefaultMaxConcurrency
	}
	if opts.Progress == nil {
		opts.Progress = progress.Discard()
	}
	targets := make([]ref.Location, len(pairs))
	for i, p := range pairs {
		if err := pl.Writable(p.Target); err != nil {
			return Report{}, err
		}
		targets[i] = p.Target
	}
	// Many images may go into one new layout folder (a copy's first read
	// of its tag makes it): it is removed when every image failed.
	undo, err := pl.Prepare(targets)
	if err != nil {
		return Report{}, err
	}
	rep, err := copyAll(ctx, pl, pairs, opts)
	if rep.Failed() == len(pairs) {
		undo()
	}
	return rep, err
}

// copyAll copies every pair under one progress step (see Copy).
func copyAll(ctx context.Context, pl place.Place, pairs []Pair, opts Options) (Report, error) {
	rep := Report{Items: make([]Item, len(pairs))}
	transfers := create.NewTransfers(opts.MaxConcurrency)
	var mu sync.Mutex
	done := 0
	err := progress.Wrap(fmt.Sprintf("copying %d images", len(pairs)), opts.Progress, func(sub progress.SubLogger) error {
		eg, ectx := errgroup.WithContext(ctx)
		// An image is mostly small requests: as many at once as those go.
		eg.SetLimit(oci.MetadataLimit(opts.MaxConcurrency))
		first := -1
		for i, p := range pairs {
			eg.Go(func() error {
				if ectx.Err() != nil {
					return nil // cancelled, or fail-fast after a failure
				}
				it, err := copyOne(ectx, pl, p, opts, transfers)
				mu.Lock()
				if err != nil && first < 0 {
					first = i
				} else if err != nil && opts.FailFast && ectx.Err() != nil {
					it.Reason = "stopped: an earlier image failed (--fail-fast)"
				}
				rep.Items[i] = it
				done++
				sub.Log(1, fmt.Appendf(nil, "%d/%d %s %s -> %s\n", done, len(pairs), it.Outcome, p.Source, p.Target))
				mu.Unlock()
				if opts.FailFast {
					return err
				}
				return nil
			})
		}
		return eg.Wait()
	})
	notStarted(rep, pairs, ctx.Err() != nil)
	if n := rep.Failed(); n > 0 && ctx.Err() != nil {
		return rep, fmt.Errorf("%d of %d %w: %w", n, len(pairs), ErrSomeFailed, context.Cause(ctx))
	} else if n > 0 {
		return rep, fmt.Errorf("%d of %d %w", n, len(pairs), ErrSomeFailed)
	}
	return rep, err
}

// notStarted reports the images a run never started: it was cancelled,
// or a fail-fast run stopped at an earlier failure.
func notStarted(rep Report, pairs []Pair, cancelled bool) {
	reason := "not copied: an earlier image failed (--fail-fast)"
	if cancelled {
		reason = "not copied: the run was cancelled"
	}
	for i, it := range rep.Items {
		if it.Outcome == "" {
			rep.Items[i] = Item{Source: pairs[i].Source.String(), Target: pairs[i].Target.String(), Outcome: Failed, Reason: reason}
		}
	}
}

// copyOne copies one image under its own progress step.
func copyOne(ctx context.Context, pl place.Place, p Pair, opts Options, transfers *create.Transfers) (Item, error) {
	it := Item{Source: p.Source.String(), Target: p.Target.String()}
	var res create.Copied
	err := progress.Wrap("copy "+it.Source+" to "+it.Target, opts.Progress, func(sub progress.SubLogger) error {
		var err error
		if len(opts.Platforms) > 0 {
			res, err = copyPlatforms(ctx, pl, p, opts)
		} else {
			res, err = create.Copy(ctx, pl, p.Source, []ref.Location{p.Target}, create.CopyOptions{
				Referrers: opts.Referrers, MaxConcurrency: opts.MaxConcurrency, Progress: opts.Progress, Transfers: transfers,
				Compression: opts.Compression,
			})
		}
		if err == nil && res.Skipped {
			sub.Log(1, fmt.Appendf(nil, "%s already holds %s\n", it.Target, res.Desc.Digest))
		}
		return err
	})
	it.Digest = res.Desc.Digest
	switch {
	case err != nil:
		it.Outcome, it.Reason = Failed, termtext.Line(err.Error(), 1000)
	case res.Skipped:
		it.Outcome, it.Reason = Skipped, "already there"
	case len(opts.Platforms) > 0:
		it.Outcome, it.Reason = Copied, "--platform made a new index: its digest is not the source's"
	case res.Compressed != "":
		it.Outcome, it.Reason = Copied, "layers compressed ("+string(res.Compressed)+"): the digest is not the source's"
	default:
		it.Outcome = Copied
	}
	return it, err
}

// copyPlatforms copies the platforms asked for of an index as a new index
// (create's combine): the digest is the new index's.
func copyPlatforms(ctx context.Context, pl place.Place, p Pair, opts Options) (create.Copied, error) {
	if p.Target.Tag == "" {
		return create.Copied{}, fmt.Errorf("%s: --platform makes a new index with a digest of its own: it needs a tag to go to, not %s", p.Source, p.Target)
	}
	res, err := create.Create(ctx, pl, create.Options{
		Sources: []string{p.Source.String()}, Tags: []string{p.Target.String()}, Platforms: opts.Platforms,
		Referrers: opts.Referrers, MaxConcurrency: opts.MaxConcurrency, Compression: opts.Compression, Progress: opts.Progress,
	})
	if res == nil {
		return create.Copied{}, err
	}
	return create.Copied{Desc: res.Desc}, err
}
