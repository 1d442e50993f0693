package imagetools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/progress"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// CreateOptions describe one create: sources, targets and how to combine.
type CreateOptions struct {
	// Sources as the user wrote them (see ParseSource), file sources first.
	Sources []string
	// Tags are the targets: registry references (":latest" when untagged)
	// or oci-layout://DIR[:TAG].
	Tags        []string
	Annotations []Annotation
	Platforms   []ocispec.Platform
	PreferIndex bool
	ForceOCI    bool
	// Append makes the image at the first tag the first source; a tag that
	// does not exist yet is created.
	Append bool
	// DryRun combines without pushing anything.
	DryRun bool
	// Referrers copies the cosign signatures and OCI referrers of every
	// manifest copied into another repository (see PushOptions.Referrers).
	Referrers      bool
	MaxConcurrency int
	Progress       progress.Writer
}

// CreateResult is what create made.
type CreateResult struct {
	// Desc describes Bytes (media type, digest, size).
	Desc  ocispec.Descriptor
	Bytes []byte
	// Targets are the tagged locations written (or that would be, in a dry run).
	Targets []Location
	// Replaced are the manifests of the appended image that a new source
	// replaced (same platform, other digest), attestations included.
	Replaced []ocispec.Descriptor
}

// sourceAt is a source with the location its manifest is read from.
type sourceAt struct {
	name string
	loc  Location
	user *ocispec.Descriptor
}

// Create resolves the sources, combines them and pushes the result to every
// tag (blobs and manifests by digest first, tags last).
func Create(ctx context.Context, r *Resolver, opts CreateOptions) (*CreateResult, error) {
	if opts.Progress == nil {
		opts.Progress = progress.Discard()
	}
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = DefaultMaxConcurrency
	}
	targets, err := ParseTargets(opts.Tags)
	if err != nil {
		return nil, err
	}
	srcs, err := locateSources(opts.Sources, targets)
	if err != nil {
		return nil, err
	}
	if opts.Append {
		if len(targets) == 0 {
			return nil, errors.New("--append needs a --tag: the image at the first tag is appended to")
		}
		srcs = append([]sourceAt{{name: targets[0].String(), loc: targets[0]}}, srcs...)
	}
	if len(srcs) == 0 {
		return nil, fmt.Errorf("%w: name images to combine (or use --append with a --tag)", ErrNoSources)
	}
	loaded, known, appended, err := loadSources(ctx, r, srcs, opts)
	if err != nil {
		return nil, err
	}
	if opts.Append && !appended {
		srcs = srcs[1:]
	}
	combined, err := Combine(loaded, CombineOptions{
		Annotations: opts.Annotations, Platforms: opts.Platforms, PreferIndex: opts.PreferIndex,
		ForceOCI: opts.ForceOCI, AppendFirst: appended,
	})
	if err != nil {
		return nil, err
	}
	if len(combined.Replaced) > 0 {
		reportReplaced(opts.Progress, targets[0], combined)
	}
	res := &CreateResult{Desc: combined.Desc, Bytes: combined.Bytes, Targets: targets, Replaced: combined.Replaced}
	if opts.DryRun {
		return res, nil
	}
	if len(targets) == 0 {
		return nil, errors.New("no --tag given: name where to push the result (or use --dry-run)")
	}
	c := PushContent{Root: combined.Desc, RootBytes: combined.Bytes, RootOrigin: srcs[0].loc,
		Children: combined.Children, Known: known}
	for _, o := range combined.Origins {
		c.Origins = append(c.Origins, srcs[o].loc)
	}
	if err := Push(ctx, r, c, PushOptions{Targets: targets, MaxConcurrency: opts.MaxConcurrency, Progress: opts.Progress,
		Referrers: opts.Referrers}); err != nil {
		return nil, err
	}
	return res, nil
}

// ParseTargets parses --tag values: a registry reference without tag gets
// "latest", as does an oci-layout:// folder; a digest is refused.
func ParseTargets(tags []string) ([]Location, error) {
	var out []Location
	for _, t := range tags {
		loc, err := ParseLocation(t)
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
func locateSources(in []string, targets []Location) ([]sourceAt, error) {
	parsed := make([]Source, len(in))
	out := make([]sourceAt, len(in))
	var repos []string
	for _, t := range targets {
		repos = append(repos, t.Repository())
	}
	for i, s := range in {
		p, err := ParseSource(s)
		if err != nil {
			return nil, err
		}
		parsed[i] = p
		if p.NeedsRepository() {
			continue
		}
		loc, err := ParseLocation(p.Ref)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidSource, err)
		}
		out[i] = sourceAt{name: p.Ref, loc: loc}
		repos = append(repos, loc.Repository())
	}
	for i, p := range parsed {
		if !p.NeedsRepository() {
			continue
		}
		repo, err := InferRepository(strings.TrimSpace(in[i]), repos)
		if err != nil {
			return nil, err
		}
		base, err := ParseLocation(repo)
		if err != nil {
			return nil, err
		}
		loc := base.WithDigest(p.Desc.Digest)
		s := sourceAt{name: loc.String(), loc: loc}
		if p.Kind == SourceDescriptor {
			d := p.Desc
			s.user = &d
		}
		out[i] = s
	}
	return out, nil
}

// loadSources fetches every source's manifest (and config, when its platform
// is unknown) in parallel, as many at once as other small requests
// (metadataLimit). With Append, a first source that does not exist
// yet is dropped (appended is false) and the tag created.
func loadSources(ctx context.Context, r *Resolver, srcs []sourceAt, opts CreateOptions) ([]Loaded, map[digest.Digest][]byte, bool, error) {
	loaded := make([]Loaded, len(srcs))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(metadataLimit(opts.MaxConcurrency))
	missing := false
	for i, s := range srcs {
		eg.Go(func() error {
			l, err := loadSource(ectx, r, s)
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

// loadSource reads one source in one request (plus its config when needed).
func loadSource(ctx context.Context, r *Resolver, s sourceAt) (Loaded, error) {
	desc, dt, err := r.GetManifest(ctx, s.loc)
	if err != nil {
		return Loaded{}, err
	}
	if s.user != nil {
		if desc, err = MergeDescriptor(desc, *s.user); err != nil {
			return Loaded{}, fmt.Errorf("source %s: %w", s.name, err)
		}
	}
	l := Loaded{Name: s.name, Desc: desc, Manifest: dt}
	if !NeedsConfig(l) {
		return l, nil
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(dt, &m); err != nil {
		return Loaded{}, fmt.Errorf("parse manifest %s: %w", s.name, err)
	}
	f, err := r.Fetcher(ctx, s.loc)
	if err != nil {
		return Loaded{}, err
	}
	if l.Config, err = fetchBlob(ctx, f, m.Config, MaxManifestSize); err != nil {
		return Loaded{}, fmt.Errorf("config of %s: %w", s.name, err)
	}
	return l, nil
}

// reportReplaced says on the progress which manifests of the appended image
// gave way to a new one of the same platform.
func reportReplaced(w progress.Writer, target Location, c Combined) {
	_ = progress.Wrap("[internal] appending to "+target.String(), w, func(sub progress.SubLogger) error {
		for _, old := range c.Replaced {
			if subject, ok := combineSubject(old); ok {
				logf(sub, "dropping attestation %s of %s", old.Digest, subject)
				continue
			}
			plat := "unknown"
			if old.Platform != nil {
				plat = platforms.Format(*old.Platform)
			}
			with := ""
			for _, n := range c.Children {
				if _, isAtt := combineSubject(n); !isAtt && n.Platform != nil && old.Platform != nil &&
					combinePlatformKey(*n.Platform) == combinePlatformKey(*old.Platform) {
					with = " with " + n.Digest.String()
					break
				}
			}
			logf(sub, "replacing %s %s%s", plat, old.Digest, with)
		}
		return nil
	})
}
