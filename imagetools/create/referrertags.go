package create

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// ReferrerTag is a tag that holds referrers of an image, as it goes into a
// place without a referrers API (an image tar, an OCI layout): a cosign
// tag or a fallback tag of the source's repository.
type ReferrerTag struct {
	Tag string
	// Index, when set, is the fallback tag index to carry instead of what
	// the source holds at Tag: the referrers its API lists merged into the
	// source's fallback tag (or alone, when it has none). Its descriptors
	// are the API's, artifact type and annotations kept.
	Index []byte
}

// ReferrerTags lists the tags that hold referrers of the image desc (its
// bytes dt) read from src: of the root and, for an index, of each manifest
// it lists, the cosign tags the source has and the fallback tag, made from
// the referrers API's answer where the source has one; then the tags of
// the referrers found (a signature on an SBOM), up to maxReferrerDepth
// levels, as create follows them. The referrers API is asked about the
// root first, and about the other subjects only where it answered. A
// subject costs a read of each of its three cosign tags and its fallback
// tag, except those the source repository's list (lists, when set:
// TagLists) shows missing. The subjects of a level are asked at once, as
// many as small requests go (oci.MetadataLimit of limit); the tags come
// level by level, in subject order. at is where a tag is read (a tar names
// them beside the image's full name); nil reads them in src's repository.
func ReferrerTags(ctx context.Context, pl place.Backend, src ref.Location, desc ocispec.Descriptor, dt []byte, limit int, at func(tag string) ref.Location, lists *TagLists) ([]ReferrerTag, error) {
	if at == nil {
		at = src.WithTag
	}
	subjects, err := rootSubjects(desc, dt)
	if err != nil {
		return nil, fmt.Errorf("parse index %s: %w", src, err)
	}
	var out []ReferrerTag
	rs := referrerSource{pl: pl, src: src, at: at, lists: lists, probe: newAPIProbe()}
	err = walkReferrerLevels(subjects, func(level []digest.Digest, depth int) ([]digest.Digest, error) {
		found, next, err := rs.level(ctx, level, limit, depth == 0)
		out = append(out, found...)
		return next, err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// referrerSource is where ReferrerTags reads a source's referrers.
type referrerSource struct {
	pl    place.Backend
	src   ref.Location
	at    func(string) ref.Location
	lists *TagLists
	// probe is the referrers API's answer about the root: the other
	// subjects ask the API only where it has one.
	probe *apiProbe
}

// level lists the referrer tags of the subjects, asked at once, and the
// referrers they hold, the next level's subjects; with root, the first
// subject is the root, which probes the API.
func (rs referrerSource) level(ctx context.Context, subjects []digest.Digest, limit int, root bool) ([]ReferrerTag, []digest.Digest, error) {
	found := make([][]ReferrerTag, len(subjects))
	next := make([][]digest.Digest, len(subjects))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(oci.MetadataLimit(limit))
	for i, d := range subjects {
		eg.Go(func() (err error) {
			found[i], next[i], err = rs.subject(ectx, d, root && i == 0)
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, nil, err
	}
	return slices.Concat(found...), slices.Concat(next...), nil
}

// subject lists the referrer tags of one subject, its fallback tag first,
// then its cosign tags, sorted; and the manifests they hold.
func (rs referrerSource) subject(ctx context.Context, d digest.Digest, root bool) ([]ReferrerTag, []digest.Digest, error) {
	fallback := fallbackTag(d)
	r, err := rs.read(ctx, d, root)
	if err != nil {
		return nil, nil, fmt.Errorf("referrers of %s@%s: %w", rs.src.Repository(), d, err)
	}
	var out []ReferrerTag
	var next []digest.Digest
	if r.existing != nil || len(r.api) > 0 {
		merged, changed, err := mergeReferrerIndex(r.existing, r.api)
		var idx ocispec.Index
		if err == nil {
			err = json.Unmarshal(merged, &idx)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("referrers of %s@%s: %s: %w", rs.src.Repository(), d, fallback, err)
		}
		rt := ReferrerTag{Tag: fallback}
		if changed {
			rt.Index = merged
		}
		out = append(out, rt)
		for _, m := range idx.Manifests {
			if oci.IsManifestOrIndex(m.MediaType) {
				next = append(next, m.Digest)
			}
		}
	}
	for i, t := range cosignTags(d) {
		if r.cosign[i] != "" {
			out = append(out, ReferrerTag{Tag: t})
			next = append(next, r.cosign[i])
		}
	}
	return out, next, nil
}

// subjectReferrers is what a source holds of the referrers of a subject.
type subjectReferrers struct {
	// cosign are the digests at its cosign tags, in cosignTags order; ""
	// where a tag does not exist.
	cosign []digest.Digest
	// api is the referrers API's answer; nil without the API.
	api []ocispec.Descriptor
	// existing is the fallback tag's index; nil without one.
	existing []byte
}

// read reads the cosign tags, the referrers API (where the root's probe
// found it) and the fallback tag of subject d, at once; a tag the source's
// list shows missing is not read.
func (rs referrerSource) read(ctx context.Context, d digest.Digest, root bool) (subjectReferrers, error) {
	cosign := cosignTags(d)
	r := subjectReferrers{cosign: make([]digest.Digest, len(cosign))}
	read := func(ctx context.Context, tag string) (ocispec.Descriptor, []byte, error) {
		loc := rs.at(tag)
		if rs.lists.absent(ctx, rs.pl, loc, tag) {
			return ocispec.Descriptor{}, nil, nil
		}
		desc, data, err := rs.pl.Manifest(ctx, loc)
		if isNotFound(err) {
			return ocispec.Descriptor{}, nil, nil
		}
		return desc, data, err
	}
	eg, ectx := errgroup.WithContext(ctx)
	for i, t := range cosign {
		eg.Go(func() error {
			desc, _, err := read(ectx, t)
			r.cosign[i] = desc.Digest
			return err
		})
	}
	eg.Go(func() (err error) {
		r.api, err = rs.api(ectx, d, root)
		return err
	})
	eg.Go(func() (err error) {
		_, r.existing, err = read(ectx, fallbackTag(d))
		return err
	})
	err := eg.Wait() // before r is read
	return r, err
}

// api asks the referrers API about d: the root asks it and records on the
// probe whether the source has it; the others wait for that answer and ask
// only where it has. nil without the API.
func (rs referrerSource) api(ctx context.Context, d digest.Digest, root bool) ([]ocispec.Descriptor, error) {
	descs, supported, err := rs.probe.referrers(ctx, rs.pl, rs.src, d, root)
	if !supported {
		descs = nil
	}
	return descs, err
}

// indexedByAPI asks the referrers API of the place of t, a fallback tag
// (sha256-<hex>), about its subject: supported is false where the place
// keeps no referrers index (then the fallback tag holds them). listed are
// the referrers it lists.
func indexedByAPI(ctx context.Context, pl place.Reader, t ref.Location) (listed map[digest.Digest]bool, supported bool, err error) {
	if !IsReferrerTag(t.Tag) || strings.Contains(t.Tag, ".") {
		return nil, false, nil
	}
	alg, hex, _ := strings.Cut(t.Tag, "-")
	descs, supported, err := pl.Referrers(ctx, t.WithDigest(digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)))
	if err != nil || !supported {
		return nil, false, err
	}
	listed = map[digest.Digest]bool{}
	for _, d := range descs {
		listed[d.Digest] = true
	}
	return listed, true, nil
}

// pushReferrers puts each referrer a fallback tag index lists (dt, read
// from src) into the repository of t, a fallback tag of a place with the
// referrers API: the place lists them by their subjects, so neither the
// index nor the tag is written.
func pushReferrers(ctx context.Context, pl place.Place, src ref.Location, dt []byte, t ref.Location, opts CopyOptions) error {
	var idx ocispec.Index
	if err := json.Unmarshal(dt, &idx); err != nil {
		return fmt.Errorf("parse referrers index %s: %w", src, err)
	}
	for _, m := range idx.Manifests {
		desc, data, err := pl.Manifest(ctx, src.WithDigest(m.Digest))
		if err != nil {
			return fmt.Errorf("referrer %s of %s: %w", m.Digest, src, err)
		}
		c := pushInput{root: desc, rootBytes: data, rootOrigin: src, known: map[digest.Digest][]byte{desc.Digest: data}}
		popts := pushOptions{Targets: []ref.Location{t.WithDigest(desc.Digest)}, MaxConcurrency: opts.MaxConcurrency, Progress: opts.Progress}
		if opts.Transfers != nil {
			popts.slots, popts.shared = opts.Transfers.slots, opts.Transfers
		}
		if err := pushAll(ctx, pl, c, popts); err != nil {
			return err
		}
	}
	return nil
}
