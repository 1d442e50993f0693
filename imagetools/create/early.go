package create

// Early checks: a source's layers are known from its manifest, while its
// config (read for its platform) is still on the way. When the sources all
// go to one target repository that wants a check before a transfer, the
// checks of their layers start then, beside the config reads, instead of a
// round trip after them; the push takes their answers in place of its own
// checks, so no blob is checked twice (the upload sessions they opened
// wait in the place for the push of their blobs).

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// earlyCheck is the answer of one check started early.
type earlyCheck struct {
	done chan struct{}
	checked
	err error
}

// earlyChecks are the checks started early in one target repository.
type earlyChecks struct {
	pl     place.Place
	target ref.Location
	ctx    context.Context
	cancel context.CancelFunc
	eg     errgroup.Group
	sem    chan struct{}

	// skipUncompressed leaves out the plain layers of Unpacked places,
	// which the push compresses (their compressed digests are checked
	// with the push).
	skipUncompressed bool

	mu     sync.Mutex
	checks map[digest.Digest]*earlyCheck
}

// newEarlyChecks returns the early checks of a create, nil when they do
// not apply: a dry run, an append or a platform filter (a source's layers
// may then not be copied), more than one target repository (blobs go to
// the first and are mounted from there), a place that wants no check, or
// one request at a time.
func newEarlyChecks(ctx context.Context, pl place.Place, targets []ref.Location, opts Options) *earlyChecks {
	if opts.DryRun || opts.Append || len(opts.Platforms) > 0 || len(targets) == 0 || opts.MaxConcurrency <= 1 {
		return nil
	}
	for _, t := range targets[1:] {
		if !place.SameRepository(t, targets[0]) {
			return nil
		}
	}
	if !pl.Capabilities(targets[0]).CheckFirst {
		return nil
	}
	e := &earlyChecks{pl: pl, target: targets[0].WithTag(""), sem: make(chan struct{}, oci.MetadataLimit(opts.MaxConcurrency)),
		checks: map[digest.Digest]*earlyCheck{}, skipUncompressed: compressing(pl, targets, opts.Compression)}
	e.ctx, e.cancel = context.WithCancel(ctx)
	return e
}

// startLayers starts the checks of the layers of a source's manifest
// (nothing for an index, or when from is the target or can be mounted
// into it). It does not wait for them.
func (e *earlyChecks) startLayers(from ref.Location, desc ocispec.Descriptor, data []byte) {
	if e == nil || !oci.IsManifest(desc.MediaType) || place.SameRepository(from, e.target) || place.Mountable(e.pl, from, e.target) {
		return
	}
	var m ocispec.Manifest
	if json.Unmarshal(data, &m) != nil {
		return // the source read reports it
	}
	unpacked := e.pl.Capabilities(from).Unpacked
	for _, l := range m.Layers {
		if l.Digest.Validate() != nil || (e.skipUncompressed && unpacked && oci.IsUncompressedLayer(l.MediaType)) {
			continue
		}
		e.mu.Lock()
		_, started := e.checks[l.Digest]
		c := &earlyCheck{done: make(chan struct{})}
		if !started {
			e.checks[l.Digest] = c
		}
		e.mu.Unlock()
		if started {
			continue
		}
		e.eg.Go(func() error {
			defer close(c.done)
			select {
			case e.sem <- struct{}{}:
			case <-e.ctx.Done():
				c.err = context.Cause(e.ctx)
				return nil
			}
			defer func() { <-e.sem }()
			c.present, c.err = e.pl.CheckBlob(e.ctx, e.target, l)
			return nil // kept for whoever takes the answer
		})
	}
}

// take returns the check started early for d in repo, once: nil when none
// was.
func (e *earlyChecks) take(repo ref.Location, d digest.Digest) *earlyCheck {
	if e == nil || !place.SameRepository(repo, e.target) {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.checks[d]
	delete(e.checks, d)
	return c
}

// wait returns the check's answer.
func (c *earlyCheck) wait(ctx context.Context) (checked, error) {
	select {
	case <-c.done:
		return c.checked, c.err
	case <-ctx.Done():
		return checked{}, context.Cause(ctx)
	}
}

// close stops the checks no one took and waits for them to end.
func (e *earlyChecks) close() {
	if e == nil {
		return
	}
	e.cancel()
	_ = e.eg.Wait()
}
