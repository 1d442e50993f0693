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
// levels, as create follows them. Each subject costs five reads (three
// cosign tags by name, the fallback tag, the API), the subjects of a level
// asked at once, as many as small requests go (oci.MetadataLimit of
// limit); the tags come level by level, in subject order. at is where a
// tag is read (a tar names them beside the image's full name); nil reads
// them in src's repository.
func ReferrerTags(ctx context.Context, pl place.Reader, src ref.Location, desc ocispec.Descriptor, dt []byte, limit int, at func(tag string) ref.Location) ([]ReferrerTag, error) {
	if at == nil {
		at = src.WithTag
	}
	subjects := []digest.Digest{desc.Digest}
	if oci.IsIndex(desc.MediaType) {
		var idx ocispec.Index
		if err := json.Unmarshal(dt, &idx); err != nil {
			return nil, fmt.Errorf("parse index %s: %w", src, err)
		}
		for _, m := range idx.Manifests {
			subjects = append(subjects, m.Digest)
		}
	}
	seen := map[digest.Digest]bool{}
	var out []ReferrerTag
	for depth := 0; depth < maxReferrerDepth && len(subjects) > 0; depth++ {
		var level []digest.Digest
		for _, d := range subjects {
			if !seen[d] {
				seen[d] = true
				level = append(level, d)
			}
		}
		found, next, err := referrerTagsLevel(ctx, pl, src, level, limit, at)
		if err != nil {
			return nil, err
		}
		out, subjects = append(out, found...), next
	}
	return out, nil
}

// referrerTagsLevel lists the referrer tags of the subjects, asked at
// once, and the referrers they hold, the next level's subjects.
func referrerTagsLevel(ctx context.Context, pl place.Reader, src ref.Location, subjects []digest.Digest, limit int, at func(string) ref.Location) ([]ReferrerTag, []digest.Digest, error) {
	found := make([][]ReferrerTag, len(subjects))
	next := make([][]digest.Digest, len(subjects))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(oci.MetadataLimit(limit))
	for i, d := range subjects {
		eg.Go(func() (err error) {
			found[i], next[i], err = subjectReferrerTags(ectx, pl, src, d, at)
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, nil, err
	}
	return slices.Concat(found...), slices.Concat(next...), nil
}

// subjectReferrerTags lists the referrer tags of one subject, its fallback
// tag first, then its cosign tags, sorted; and the manifests they hold.
func subjectReferrerTags(ctx context.Context, pl place.Reader, src ref.Location, d digest.Digest, at func(string) ref.Location) ([]ReferrerTag, []digest.Digest, error) {
	fallback := fallbackTag(d)
	r, err := readSubjectReferrers(ctx, pl, src, d, at)
	if err != nil {
		return nil, nil, fmt.Errorf("referrers of %s@%s: %w", src.Repository(), d, err)
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
			return nil, nil, fmt.Errorf("referrers of %s@%s: %s: %w", src.Repository(), d, fallback, err)
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

// readSubjectReferrers reads the cosign tags, the referrers API and the
// fallback tag of subject d, at once.
func readSubjectReferrers(ctx context.Context, pl place.Reader, src ref.Location, d digest.Digest, at func(string) ref.Location) (subjectReferrers, error) {
	cosign := cosignTags(d)
	r := subjectReferrers{cosign: make([]digest.Digest, len(cosign))}
	read := func(ctx context.Context, tag string) (ocispec.Descriptor, []byte, error) {
		desc, data, err := pl.Manifest(ctx, at(tag))
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
	eg.Go(func() error {
		api, supported, err := pl.Referrers(ectx, src.WithDigest(d))
		if supported {
			r.api = api
		}
		return err
	})
	eg.Go(func() (err error) {
		_, r.existing, err = read(ectx, fallbackTag(d))
		return err
	})
	err := eg.Wait() // before r is read
	return r, err
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
