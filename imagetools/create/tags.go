package create

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// The user's tags move all or none. Where each tag points is read before
// any moves; they then move one after the other, in the order given. When
// one cannot be moved, those already moved are put back: rewritten to the
// manifest they held, or, for a tag that did not exist, removed again where
// the place can remove a tag alone (Place.Untag: never a delete by digest,
// which would drop every tag of that manifest). Registries offer no
// compare-and-swap on tags: another push between the read and the write
// is not seen, and a restore puts back what was read.

// tagState is what a tag held before the push moved it.
type tagState struct {
	loc   ref.Location
	found bool
	desc  ocispec.Descriptor
	data  []byte
}

// now is the digest the tag held when read; "" when it did not exist.
func (s tagState) now() digest.Digest {
	if !s.found {
		return ""
	}
	return s.desc.Digest
}

// expectedTag is a tag a result was computed from and the digest it held
// then ("" when it did not exist).
type expectedTag struct {
	Tag    ref.Location
	Digest digest.Digest
}

// tagOutcome says where one tag points after a failed tag step.
type tagOutcome struct {
	Tag ref.Location
	// Now is the digest the tag points at; "" when it does not exist.
	Now digest.Digest
	// Note says what happened to it: not moved, restored, removed again,
	// or why it could not be put back.
	Note string
	// Fix, when set, is what must be done by hand to put it back.
	Fix string
}

// tagsError is a failed tag step: Failed could not be moved, and Tags say
// where each tag points now, after the others were put back.
type tagsError struct {
	Failed ref.Location
	Err    error
	Tags   []tagOutcome
}

func (e *tagsError) Error() string {
	var now, fixes []string
	for _, t := range e.Tags {
		at := "absent"
		if t.Now != "" {
			at = "at " + t.Now.String()
		}
		now = append(now, fmt.Sprintf("%s %s (%s)", t.Tag, at, t.Note))
		if t.Fix != "" {
			fixes = append(fixes, t.Fix)
		}
	}
	msg := fmt.Sprintf("tag %s: %v; tags now: %s", e.Failed, e.Err, strings.Join(now, ", "))
	if errors.Is(e.Err, context.Canceled) {
		msg = fmt.Sprintf("interrupted while moving tag %s; tags now: %s", e.Failed, strings.Join(now, ", "))
	}
	if len(fixes) > 0 {
		msg += "; by hand: " + strings.Join(fixes, ", ")
	}
	return msg
}

func (e *tagsError) Unwrap() error { return e.Err }

// Tagged lists the tags that point at d now.
func (e *tagsError) Tagged(d digest.Digest) []ref.Location {
	var out []ref.Location
	for _, t := range e.Tags {
		if t.Now == d {
			out = append(out, t.Tag)
		}
	}
	return out
}

// readTags reads where every tag points, as many at once as other small
// requests.
func readTags(ctx context.Context, pl place.Writer, tags []ref.Location, limit int) ([]tagState, error) {
	states := make([]tagState, len(tags))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(oci.MetadataLimit(limit))
	for i, t := range tags {
		eg.Go(func() error {
			var err error
			states[i], err = readTag(ectx, pl, t)
			return err
		})
	}
	return states, eg.Wait()
}

// tagsBefore are where the tags point before the tag step: as this run
// read them already (pushOptions.tagsRead), else read now.
func tagsBefore(ctx context.Context, pl place.Writer, tags []ref.Location, opts pushOptions) ([]tagState, error) {
	states := make([]tagState, len(tags))
	for i, t := range tags {
		j := slices.IndexFunc(opts.tagsRead, func(s tagState) bool { return s.loc == t })
		if j < 0 {
			return readTags(ctx, pl, tags, opts.MaxConcurrency)
		}
		states[i] = opts.tagsRead[j]
	}
	return states, nil
}

// readTag reads where one tag points, with the rights its write needs.
func readTag(ctx context.Context, pl place.Writer, t ref.Location) (tagState, error) {
	dt, found, err := pl.ReadTag(ctx, t)
	if err != nil || !found {
		return tagState{loc: t}, err
	}
	mt, err := oci.DetectMediaType(dt)
	if err != nil {
		return tagState{}, fmt.Errorf("read tag %s: not a manifest: %w", t, err)
	}
	desc := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(dt), Size: int64(len(dt))}
	return tagState{loc: t, found: true, desc: desc, data: dt}, nil
}

// tagStep reads every tag, checks that the tag the result was computed
// from still holds what it held, and moves every tag to the root, all or
// none.
func tagStep(ctx context.Context, pl place.Place, c pushInput, opts pushOptions) error {
	return progress.Wrap("[internal] moving tags", opts.Progress, func(sub progress.SubLogger) error {
		var tagged []ref.Location
		for _, t := range opts.Targets {
			if t.Tag != "" {
				tagged = append(tagged, t)
			}
		}
		states, err := tagsBefore(ctx, pl, tagged, opts)
		if err != nil {
			return err
		}
		if e := opts.unchanged; e != nil {
			for _, s := range states {
				if s.loc == e.Tag && s.now() != e.Digest {
					logf(sub, "%s moved to %s since it was read: not moving any tag", s.loc, describeDigest(s.now()))
					return fmt.Errorf("%s: %w", s.loc, imagetools.ErrTagChanged)
				}
			}
		}
		return moveTags(ctx, pl, sub, c.root, c.rootBytes, states)
	})
}

func describeDigest(d digest.Digest) string {
	if d == "" {
		return "nothing (removed)"
	}
	return d.String()
}

// moveTags points each tag at root in order; when one fails, the ones
// moved are put back (restoreTags).
func moveTags(ctx context.Context, pl place.Writer, sub progress.SubLogger, root ocispec.Descriptor, data []byte, states []tagState) error {
	for i, s := range states {
		if s.now() == root.Digest {
			// Already there: a PUT would change nothing.
			logf(sub, "%s is already at %s", s.loc, root.Digest)
			continue
		}
		logf(sub, "pushing %s to %s", root.Digest, s.loc)
		if err := pl.Tag(ctx, s.loc, root, data); err != nil {
			// Putting back is done whatever cancelled the push: a tag
			// left half-moved is worse than a late exit, by a few seconds
			// at most once interrupted.
			rctx, cancel := graceContext(ctx, restoreGrace)
			defer cancel()
			return restoreTags(rctx, pl, sub, root.Digest, states, i, err)
		}
	}
	return nil
}

// restoreGrace is how long the tags already moved may take to be put back
// once the command is interrupted (a PUT that was sent may have moved its tag).
const restoreGrace = 5 * time.Second

// graceContext is ctx without its cancellation, ended grace after ctx ends.
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return gctx, func() {
		stop()
		cancel()
	}
}

// restoreTags puts back the tags before states[failed] and reports where
// every tag points. The failed tag is read again: a write that failed on
// the way back may have moved it.
func restoreTags(ctx context.Context, pl place.Writer, sub progress.SubLogger, root digest.Digest, states []tagState, failed int, cause error) error {
	e := &tagsError{Failed: states[failed].loc, Err: cause, Tags: make([]tagOutcome, len(states))}
	for i := len(states) - 1; i >= 0; i-- {
		s := states[i]
		switch {
		case i > failed || s.now() == root:
			e.Tags[i] = tagOutcome{Tag: s.loc, Now: s.now(), Note: "not moved"}
		case i == failed:
			e.Tags[i] = failedOutcome(ctx, pl, sub, root, s)
		default:
			e.Tags[i] = putBack(ctx, pl, sub, root, s)
		}
	}
	return e
}

// failedOutcome says where the tag that failed points: it is put back when
// the failed write moved it after all.
func failedOutcome(ctx context.Context, pl place.Writer, sub progress.SubLogger, root digest.Digest, s tagState) tagOutcome {
	cur, err := readTag(ctx, pl, s.loc)
	switch {
	case err != nil:
		return tagOutcome{Tag: s.loc, Now: s.now(), Note: fmt.Sprintf("failed; read back: %v", err),
			Fix: fmt.Sprintf("check that %s points at %s", s.loc, describeDigest(s.now()))}
	case cur.now() == root:
		return putBack(ctx, pl, sub, root, s)
	}
	return tagOutcome{Tag: s.loc, Now: cur.now(), Note: "failed, not moved"}
}

// putBack points a moved tag at what it held, or removes it when it did
// not exist.
func putBack(ctx context.Context, pl place.Writer, sub progress.SubLogger, root digest.Digest, s tagState) tagOutcome {
	if s.found {
		if err := pl.Tag(ctx, s.loc, s.desc, s.data); err != nil {
			logf(sub, "could not restore %s to %s: %v", s.loc, s.desc.Digest, err)
			return tagOutcome{Tag: s.loc, Now: root, Note: fmt.Sprintf("moved; restore failed: %v", err),
				Fix: fmt.Sprintf("set %s to %s", s.loc, s.desc.Digest)}
		}
		logf(sub, "restored %s to %s", s.loc, s.desc.Digest)
		return tagOutcome{Tag: s.loc, Now: s.desc.Digest, Note: "restored"}
	}
	removed, err := pl.Untag(ctx, s.loc)
	switch {
	case err != nil:
		logf(sub, "could not remove %s again: %v", s.loc, err)
		return tagOutcome{Tag: s.loc, Now: root, Note: fmt.Sprintf("created; removing it failed: %v", err),
			Fix: "delete tag " + s.loc.String()}
	case !removed:
		logf(sub, "could not remove %s again: tags cannot be deleted there", s.loc)
		return tagOutcome{Tag: s.loc, Now: root, Note: "created; tags cannot be deleted there",
			Fix: "delete tag " + s.loc.String()}
	}
	logf(sub, "removed %s again (it did not exist)", s.loc)
	return tagOutcome{Tag: s.loc, Note: "removed again"}
}
