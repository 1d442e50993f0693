// Package create combines images and indexes into one and pushes it: it
// reads the sources from their places, combines them (package combine),
// plans what each target repository lacks, copies blobs and manifests by
// digest (mounting where the place can, with the referrers of what it
// copies), and moves the tags last, so that no tag points at a half-made
// image.
package create

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/combine"
	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Options describe one create: sources, targets and how to combine.
type Options struct {
	// Sources as the user wrote them (see parseSource), file sources first.
	Sources []string
	// Tags are the targets: registry references (":latest" when untagged)
	// or oci-layout://DIR[:TAG].
	Tags        []string
	Annotations []combine.Annotation
	Platforms   []ocispec.Platform
	PreferIndex bool
	ForceOCI    bool
	// Append makes the image at the first tag the first source; a tag that
	// does not exist yet is created.
	Append bool
	// DryRun combines without pushing anything.
	DryRun bool
	// Referrers copies the cosign signatures and OCI referrers of every
	// manifest copied into another repository (see pushOptions.Referrers).
	Referrers      bool
	MaxConcurrency int
	// Limits bound the manifests read (the sources', what they list and
	// their referrers'); zero fields take oci's defaults.
	Limits oci.GraphLimits
	// Compression compresses the uncompressed layers of image manifests
	// (docker save tars, the Docker engine) pushed to a place that stores
	// layers compressed (a registry); "" or compression.None pushes them
	// as they are.
	Compression compression.Format
	Progress    progress.Writer
}

// Result is what create made.
type Result struct {
	// Desc describes Bytes (media type, digest, size).
	Desc  ocispec.Descriptor
	Bytes []byte
	// Targets are the tagged locations written (or that would be, in a dry run).
	Targets []ref.Location
	// Tagged are the targets that point at the result: all of them, unless
	// the tag step failed (see tagsError).
	Tagged []ref.Location
	// Replaced are the manifests of the appended image that a new source
	// replaced (same platform, other digest), attestations included.
	Replaced []ocispec.Descriptor
}

// sourceAt is a source with the location its manifest is read from.
type sourceAt struct {
	name string
	loc  ref.Location
	user *ocispec.Descriptor
}

// Create resolves the sources, combines them and pushes the result to every
// tag (blobs and manifests by digest first, tags last, all or none). When
// the push got to the tags and failed there, the Result comes with the
// error: the content is in every target repository, Tagged says which tags
// point at it.
func Create(ctx context.Context, pl place.Place, opts Options) (*Result, error) {
	opts = opts.withDefaults()
	targets, err := writableTargets(pl, opts.Tags)
	if err != nil {
		return nil, err
	}
	srcs, err := locateSources(opts.Sources, targets)
	if err != nil {
		return nil, err
	}
	if opts.Append {
		if len(targets) == 0 {
			return nil, fmt.Errorf("%w: appending needs a target: the image at the first tag is appended to", imagetools.ErrNoTarget)
		}
		srcs = append([]sourceAt{{name: targets[0].String(), loc: targets[0]}}, srcs...)
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("%w: name images to combine", imagetools.ErrNoSources)
	}
	// Another push may move the appended tag while this one runs: the merge
	// is made again from what it holds then, up to maxMerges times.
	for merges := 1; ; merges++ {
		res, err := createOnce(ctx, pl, srcs, targets, opts)
		if !opts.Append || merges == maxMerges || !errors.Is(err, imagetools.ErrTagChanged) {
			if errors.Is(err, imagetools.ErrTagChanged) {
				err = fmt.Errorf("%w %d times while appending to it (another push is moving it): no tag moved; run again", err, merges)
			}
			return res, err
		}
		_ = progress.Wrap("[internal] appending to "+targets[0].String(), opts.Progress, func(sub progress.SubLogger) error {
			logf(sub, "%s moved since it was read: merging again", targets[0])
			return nil
		})
	}
}

// maxMerges bounds how often an append is merged: once, then twice again
// when another push moved the tag meanwhile.
const maxMerges = 3

// createOnce reads the sources, combines them and pushes the result.
func createOnce(ctx context.Context, pl place.Place, srcs []sourceAt, targets []ref.Location, opts Options) (*Result, error) {
	early := newEarlyChecks(ctx, pl, targets, opts)
	defer early.close()
	budget := oci.NewGraphBudget(opts.Limits)
	inputs, known, appended, err := readSources(ctx, pl, srcs, opts, early, budget)
	if err != nil {
		return nil, err
	}
	unchanged, srcs := appendBase(opts.Append, appended, targets, srcs, inputs)
	if compressing(pl, targets, opts.Compression) { // a dry run too: it shows the digest a push makes
		var done func()
		if pl, done, err = compressInputs(ctx, pl, srcs, inputs, known, appended, budget, opts); err != nil {
			return nil, err
		}
		defer done()
	}
	combined, err := combine.Index(inputs, combine.Options{
		Annotations: opts.Annotations, Platforms: opts.Platforms, PreferIndex: opts.PreferIndex,
		ForceOCI: opts.ForceOCI, AppendFirst: appended,
	})
	if err != nil {
		return nil, err
	}
	if len(combined.Replaced) > 0 {
		reportReplaced(opts.Progress, targets[0], combined)
	}
	res := &Result{Desc: combined.Desc, Bytes: combined.Bytes, Targets: targets, Tagged: targets, Replaced: combined.Replaced}
	if opts.DryRun {
		return res, nil
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w: name where to push the result", imagetools.ErrNoTarget)
	}
	c := pushInput{root: combined.Desc, rootBytes: combined.Bytes, rootOrigin: srcs[0].loc,
		children: combined.Children, known: known}
	for _, o := range combined.Origins {
		c.origins = append(c.origins, srcs[o].loc)
	}
	err = pushAll(ctx, pl, c, pushOptions{Targets: targets, MaxConcurrency: opts.MaxConcurrency, Progress: opts.Progress,
		Referrers: opts.Referrers, unchanged: unchanged, early: early, budget: budget})
	var tagsErr *tagsError
	switch {
	case errors.As(err, &tagsErr):
		res.Tagged = tagsErr.Tagged(res.Desc.Digest)
		return res, err
	case errors.Is(err, imagetools.ErrTagChanged):
		res.Tagged = nil
		return res, err
	case err != nil:
		return nil, err
	}
	return res, nil
}

// appendBase returns, for --append, the tag that must not move before ours
// (at the digest read, or absent) and the sources left to combine.
func appendBase(appending, appended bool, targets []ref.Location, srcs []sourceAt, inputs []combine.Input) (*expectedTag, []sourceAt) {
	if !appending {
		return nil, srcs
	}
	unchanged := &expectedTag{Tag: targets[0]}
	if appended {
		unchanged.Digest = inputs[0].Desc.Digest
		return unchanged, srcs
	}
	return unchanged, srcs[1:]
}

func (o Options) withDefaults() Options {
	if o.Progress == nil {
		o.Progress = progress.Discard()
	}
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = oci.DefaultMaxConcurrency
	}
	return o
}

// writableTargets parses the tags (parseTargets) and refuses, before
// anything is read, one in a place that is only read from (an image tar,
// the Docker engine), with the place's own refusal.
func writableTargets(pl place.Place, tags []string) ([]ref.Location, error) {
	targets, err := parseTargets(tags)
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		if err := pl.Writable(t); err != nil {
			return nil, err
		}
	}
	return targets, nil
}

// parseTargets parses --tag values: a registry reference without tag gets
// "latest", as does an oci-layout:// folder; a digest is refused.
func parseTargets(tags []string) ([]ref.Location, error) {
	var out []ref.Location
	for _, t := range tags {
		loc, err := ref.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("invalid tag %q: %w", t, err)
		}
		if loc.Digest != "" {
			return nil, fmt.Errorf("invalid tag %q: a tag cannot name a digest", t)
		}
		out = append(out, loc.TagOrLatest())
	}
	return out, nil
}

// locateSources parses the sources and gives each a location; a bare
// digest or descriptor takes the one repository named anywhere.
func locateSources(in []string, targets []ref.Location) ([]sourceAt, error) {
	parsed := make([]sourceArg, len(in))
	out := make([]sourceAt, len(in))
	var repos []string
	for _, t := range targets {
		repos = append(repos, t.Repository())
	}
	for i, s := range in {
		p, err := parseSource(s)
		if err != nil {
			return nil, err
		}
		parsed[i] = p
		if p.needsRepository() {
			continue
		}
		loc, err := ref.Parse(p.Ref)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", imagetools.ErrInvalidSource, err)
		}
		out[i] = sourceAt{name: p.Ref, loc: loc}
		repos = append(repos, loc.Repository())
	}
	for i, p := range parsed {
		if !p.needsRepository() {
			continue
		}
		repo, err := inferRepository(strings.TrimSpace(in[i]), repos)
		if err != nil {
			return nil, err
		}
		base, err := ref.Parse(repo)
		if err != nil {
			return nil, err
		}
		loc := base.WithDigest(p.Desc.Digest)
		s := sourceAt{name: loc.String(), loc: loc}
		if p.Kind == sourceDescriptor {
			d := p.Desc
			s.user = &d
		}
		out[i] = s
	}
	return out, nil
}

// readSources reads every source's manifest (and config, when its platform
// is unknown) in parallel, as many at once as other small requests
// (oci.MetadataLimit). With Append, a first source that does not exist
// yet is dropped (appended is false) and the tag created.
func readSources(ctx context.Context, pl place.Reader, srcs []sourceAt, opts Options, early *earlyChecks, budget *oci.GraphBudget) ([]combine.Input, map[digest.Digest][]byte, bool, error) {
	loaded := make([]combine.Input, len(srcs))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(oci.MetadataLimit(opts.MaxConcurrency))
	missing := false
	for i, s := range srcs {
		eg.Go(func() error {
			l, err := readSource(ectx, pl, s, early)
			if err != nil && i == 0 && opts.Append && isNotFound(err) {
				missing = true
				return nil
			}
			loaded[i] = l
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, nil, false, err
	}
	if missing {
		_ = progress.Wrap("[internal] appending to "+srcs[0].loc.String(), opts.Progress, func(sub progress.SubLogger) error {
			logf(sub, "%s does not exist yet: creating it", srcs[0].loc)
			return nil
		})
		loaded = loaded[1:]
	}
	known := map[digest.Digest][]byte{}
	for _, l := range loaded {
		if err := budget.Charge(l.Desc); err != nil {
			return nil, nil, false, fmt.Errorf("%s: %w", l.Name, err)
		}
		known[l.Desc.Digest] = l.Manifest
		if l.Config != nil {
			known[digest.FromBytes(l.Config)] = l.Config
		}
	}
	return loaded, known, opts.Append && !missing, nil
}

func isNotFound(err error) bool {
	return errdefs.IsNotFound(err) || errors.Is(err, os.ErrNotExist)
}

// readSource reads one source in one request (plus its config when needed,
// while the checks of its layers start early).
func readSource(ctx context.Context, pl place.Reader, s sourceAt, early *earlyChecks) (combine.Input, error) {
	desc, dt, err := pl.Manifest(ctx, s.loc)
	if err != nil {
		return combine.Input{}, err
	}
	if oci.IsSchema1(desc.MediaType, dt) {
		return combine.Input{}, fmt.Errorf("%s: manifest %s is Docker schema 1, which is not supported: %w", s.name, desc.Digest, imagetools.ErrSchema1)
	}
	early.startLayers(s.loc, desc, dt)
	if s.user != nil {
		if desc, err = combine.MergeDescriptor(desc, *s.user); err != nil {
			return combine.Input{}, fmt.Errorf("source %s: %w", s.name, err)
		}
	}
	l := combine.Input{Name: s.name, Desc: desc, Manifest: dt}
	if !combine.NeedsConfig(l) {
		return l, nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(dt, &m); err != nil {
		return combine.Input{}, fmt.Errorf("parse manifest %s: %w", s.name, err)
	}
	f, err := pl.Fetcher(ctx, s.loc)
	if err != nil {
		return combine.Input{}, err
	}
	if l.Config, err = oci.ReadBlob(ctx, f, m.Config); err != nil {
		return combine.Input{}, fmt.Errorf("config of %s: %w", s.name, err)
	}
	return l, nil
}

// reportReplaced says on the progress which manifests of the appended image
// gave way to a new one of the same platform.
func reportReplaced(w progress.Writer, target ref.Location, c combine.Result) {
	_ = progress.Wrap("[internal] appending to "+target.String(), w, func(sub progress.SubLogger) error {
		for _, old := range c.Replaced {
			if subject, ok := oci.AttestationSubject(old); ok {
				logf(sub, "dropping attestation %s of %s", old.Digest, subject)
				continue
			}
			plat := "unknown"
			if old.Platform != nil {
				plat = platforms.Format(*old.Platform)
			}
			with := ""
			for _, n := range c.Children {
				if _, isAtt := oci.AttestationSubject(n); !isAtt && n.Platform != nil && old.Platform != nil &&
					oci.PlatformKey(*n.Platform) == oci.PlatformKey(*old.Platform) {
					with = " with " + n.Digest.String()
					break
				}
			}
			logf(sub, "replacing %s %s%s", plat, old.Digest, with)
		}
		return nil
	})
}
