// Package sets copies sets of images, each unchanged (manifest bytes and
// digest kept), from where they are to a target: one image to a tag or
// digest, or many under a registry prefix, each under its repository path.
// It expands the sources (every image of an image tar), names each target
// (Pairs), runs create.Copy once per image under one bound of transfers, and
// reports every image: copied, skipped (already there) or failed, with why.
// One image failing stops the others only when asked (FailFast); its tags
// are not touched.
package sets

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/create"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Pair is one image of a set and where it goes.
type Pair struct {
	Source ref.Location
	Target ref.Location
	// Referrer marks a tag that holds referrers of another image of the
	// set (a cosign tag, a fallback tag), carried into an image tar.
	Referrer bool
}

// ErrNoTagOrDigest is a source that names a repository without a tag or a
// digest: copy copies what is named, never a guessed "latest".
var ErrNoTagOrDigest = errors.New("names no tag or digest")

// ExpandOptions say how Expand reads sources that name no single image.
type ExpandOptions struct {
	// Referrers keeps the referrer tags an image tar carries (create's
	// IsReferrerTag); without it they are left out.
	Referrers bool
	// AllTags makes a repository without tag or digest every tag it has
	// (referrer tags aside: they travel with their images).
	AllTags bool
}

// Expand turns the sources as given into one location per image: an
// image tar named without an image (archive://FILE) is every image it
// holds, by name; a repository without tag or digest is refused, or with
// AllTags is every tag it has; any other source names one image.
func Expand(ctx context.Context, pl place.Reader, sources []string, opts ExpandOptions) ([]ref.Location, error) {
	var out []ref.Location
	for _, s := range sources {
		loc, err := ref.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", imagetools.ErrInvalidSource, err)
		}
		if loc.Tag != "" || loc.Digest != "" {
			out = append(out, loc)
			continue
		}
		if loc.Name != nil && !opts.AllTags {
			return nil, fmt.Errorf("%s %w: name the tag to copy (%s:TAG) or a digest (%s@sha256:...)", s, ErrNoTagOrDigest, s, s)
		}
		names, _, err := pl.Tags(ctx, loc, 0)
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%s: has no tags, and its images no names: name one by %s@DIGEST", s, s)
		}
		for _, n := range imageNames(names) {
			tag := n
			if loc.Name == nil {
				tag = tagOf(n)
			}
			// Referrer tags go with their images (and with --referrers only).
			if (loc.Name != nil || !opts.Referrers) && create.IsReferrerTag(tag) {
				continue
			}
			out = append(out, loc.WithTag(n))
		}
	}
	return out, nil
}

// tagOf is the tag of an image's full name; "" when it has none.
func tagOf(name string) string {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return ""
	}
	if t, ok := named.(reference.Tagged); ok {
		return t.Tag()
	}
	return ""
}

// WithReferrers adds to pairs the tags that hold referrers of each image
// (create.ReferrerTags: cosign tags, fallback tags; of its root and, for
// an index, of the manifests it lists), each a pair of its own:
//
//   - into an image tar or an OCI layout, from a place that keeps
//     referrers: named entries beside the image, REPOSITORY:sha256-<hex>.sig
//     (a layout written by a bare tag keeps them by bare tags,
//     sha256-<hex>.sig). Referrers a source knows through the referrers
//     API go as the fallback tag index they would have without it; the
//     place returned serves those indexes, so copy and export read them
//     as any tag.
//   - out of a tar or a layout (an image named by its tag) into a place
//     that keeps referrers: the entries named so beside it, which the copy
//     merges into the target's (create.Copy).
//
// The sources are looked at as many at once as small requests go
// (oci.MetadataLimit): a few reads a subject. The place returned also
// answers a read of each image's root looked at here with the bytes read
// then (the copy's own read of the root is not sent again); it is pl when
// no image was looked at.
func WithReferrers(ctx context.Context, pl place.Place, pairs []Pair) ([]Pair, place.Place, error) {
	found := make([][]Pair, len(pairs))
	made := make([]map[string]madeTag, len(pairs))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(oci.MetadataLimit(oci.DefaultMaxConcurrency))
	lists := new(create.TagLists) // a repository of several images is listed once
	roots := make([]madeTag, len(pairs))
	for i, p := range pairs {
		from, to := pl.Capabilities(p.Source).Referrers, pl.Capabilities(p.Target).Referrers
		// Out of a place, only a tar or a layout holds referrer tags by name.
		if from == to || (!from && !p.Source.NamesImages()) || p.Referrer ||
			create.IsReferrerTag(tagOf(p.Source.Tag)) || create.IsReferrerTag(p.Source.Tag) {
			continue
		}
		eg.Go(func() (err error) {
			found[i], made[i], roots[i], err = referrerPairs(ectx, pl, p, from, lists)
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, nil, err
	}
	view := referrerView{Place: pl, made: map[string]madeTag{}}
	for i, m := range made {
		maps.Copy(view.made, m)
		if roots[i].data != nil {
			view.made[pairs[i].Source.String()] = roots[i]
		}
	}
	out := append(slices.Clone(pairs), slices.Concat(found...)...)
	if len(view.made) == 0 {
		return out, pl, nil
	}
	return out, view, nil
}

// referrerPairs are the pairs of the tags holding referrers of p's image,
// with the fallback tag indexes made from the referrers API's answers, by
// source location, and the image's root as read. into says the pair goes
// from a place that keeps referrers into one that holds them as named
// entries; else the reverse.
func referrerPairs(ctx context.Context, pl place.Place, p Pair, into bool, lists *create.TagLists) ([]Pair, map[string]madeTag, madeTag, error) {
	desc, dt, err := pl.Manifest(ctx, p.Source)
	if err != nil {
		return nil, nil, madeTag{}, err
	}
	root := madeTag{desc: desc, data: dt}
	// Tags beside the image in a tar or layout are named after it: a bare
	// tag where the place is written tag by tag (a layout), else beside its
	// full name (an image tar is written in one piece, by names), the same
	// way in and out.
	srcAt, tgtAt := p.Source.WithTag, p.Target.WithTag
	if into {
		tgtAt, err = besideImage(p.Target, pl.Writable(p.Target) == nil)
	} else {
		srcAt, err = besideImage(p.Source, pl.Writable(p.Source) == nil)
	}
	if err != nil || srcAt == nil || tgtAt == nil {
		return nil, nil, root, err
	}
	tags, err := create.ReferrerTags(ctx, pl, p.Source, desc, dt, oci.DefaultMaxConcurrency, srcAt, lists)
	if err != nil {
		return nil, nil, madeTag{}, err
	}
	var out []Pair
	made := map[string]madeTag{}
	for _, t := range tags {
		src, tgt := srcAt(t.Tag), tgtAt(t.Tag)
		out = append(out, Pair{Source: src, Target: tgt, Referrer: true})
		if t.Index != nil {
			made[src.String()] = madeTag{
				desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(t.Index), Size: int64(len(t.Index))},
				data: t.Index,
			}
		}
	}
	return out, made, root, nil
}

// besideImage returns where a referrer tag of the image at loc, in a tar
// or layout, is: beside its full name (REPOSITORY:TAG), or the tag itself
// where bare may be and the image has a bare tag. An image a tar names by
// digest alone has no name for its referrers to be beside: nil, and none
// are carried.
func besideImage(loc ref.Location, bare bool) (func(tag string) ref.Location, error) {
	if bare && !strings.ContainsAny(loc.Tag, "/:@") {
		return loc.WithTag, nil
	}
	if loc.Tag == "" {
		return nil, nil
	}
	named, err := reference.ParseNormalizedNamed(loc.Tag)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	repo := reference.TrimNamed(named).String()
	return func(tag string) ref.Location { return loc.WithTag(repo + ":" + tag) }, nil
}

// madeTag is a manifest a referrerView serves: a fallback tag index made
// from a referrers API's answer, or an image's root as read.
type madeTag struct {
	desc ocispec.Descriptor
	data []byte
}

// referrerView is a place whose sources also hold the fallback tags made
// from their referrers APIs' answers: a read of such a tag gives the
// index made, and a read of an image's root WithReferrers read gives the
// bytes read then; every other call goes to the place.
type referrerView struct {
	place.Place
	made map[string]madeTag
}

// Manifest implements place.Reader.
func (v referrerView) Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	if m, ok := v.made[loc.String()]; ok {
		return m.desc, m.data, nil
	}
	return v.Place.Manifest(ctx, loc)
}

// imageNames are the names of a tar's images to copy, sorted: its full
// names (NAME:TAG, from manifest.json), without the bare tags its OCI
// index.json gives the same images; only bare tags when it has no other.
func imageNames(names map[string]bool) []string {
	var full, bare []string
	for n := range names {
		if strings.ContainsAny(n, ":/@") {
			full = append(full, n)
		} else {
			bare = append(bare, n)
		}
	}
	if len(full) == 0 {
		full = bare
	}
	sort.Strings(full)
	return full
}

// Pairs names the target of every source. A target with a tag or a digest
// takes one source, copied there. Otherwise the target is a prefix (a
// registry repository path, or a bundle): each source goes to the prefix
// plus its repository path (docker.io/library/alpine:3.20 to
// PREFIX/library/alpine:3.20), with the source's host first when scoped,
// and keeps its tag and digest.
func Pairs(sources []ref.Location, target string, scoped bool) ([]Pair, error) {
	tgt, err := ref.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("invalid target %q: %w", target, err)
	}
	if tgt.Tag != "" || tgt.Digest != "" {
		if len(sources) != 1 {
			return nil, fmt.Errorf("target %s names one image (a tag or digest) for %d sources: name a registry prefix such as registry.local/mirror", target, len(sources))
		}
		if tgt.Digest != "" && sources[0].Digest != tgt.Digest {
			return nil, fmt.Errorf("target %s: a copy keeps the digest, so a target by digest must name the source's (%s); name a tag instead", target, describe(sources[0].Digest))
		}
		return []Pair{{Source: sources[0], Target: tgt}}, nil
	}
	out := make([]Pair, 0, len(sources))
	seen := map[string]string{}
	for _, s := range sources {
		t, err := underPrefix(tgt, s, scoped)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[t.String()]; dup {
			return nil, fmt.Errorf("%s and %s both go to %s: copy them in two runs, or use --scoped to keep their registries apart", prev, s, t)
		}
		seen[t.String()] = s.String()
		out = append(out, Pair{Source: s, Target: t})
	}
	return out, nil
}

func describe(d digest.Digest) string {
	if d != "" {
		return d.String()
	}
	return "none: it is named by tag"
}

// underPrefix is the place of src under the target prefix tgt.
func underPrefix(tgt, src ref.Location, scoped bool) (ref.Location, error) {
	name, tag, dgst, err := imageName(src)
	if err != nil {
		return ref.Location{}, err
	}
	if tgt.Name == nil {
		if !tgt.NamesImages() {
			return ref.Location{}, fmt.Errorf("target %s holds no images by name: copy many images into a registry, an OCI layout (%sDIR) or an image tar (%sFILE)", tgt, ref.LayoutPrefix, ref.ArchivePrefix)
		}
		// A bundle or a layout names each image by its full name.
		full := name.String()
		switch {
		case tag != "":
			full += ":" + tag
		default:
			full += "@" + dgst.String()
		}
		return tgt.WithTag(full), nil
	}
	path := reference.Path(name)
	if scoped {
		// A host:port is no path component: the port joins by '_'.
		path = strings.ReplaceAll(reference.Domain(name), ":", "_") + "/" + path
	}
	named, err := reference.ParseNormalizedNamed(tgt.Name.String() + "/" + path)
	if err != nil {
		return ref.Location{}, fmt.Errorf("%s under %s: %w", src, tgt, err)
	}
	out := ref.Location{Name: reference.TrimNamed(named), Tag: tag}
	if tag == "" {
		out.Digest = dgst
	}
	return out, nil
}

// imageName is the repository name, tag and digest of an image source: a
// registry's or the Docker engine's own; an image tar's or a layout's from
// the full name it has there. A bare tag names no repository.
func imageName(src ref.Location) (reference.Named, string, digest.Digest, error) {
	if src.Name != nil {
		return src.Name, src.Tag, src.Digest, nil
	}
	if src.NamesImages() && strings.ContainsAny(src.Tag, "/:@") {
		named, err := reference.ParseNormalizedNamed(src.Tag)
		if err == nil {
			tag := ""
			if t, ok := named.(reference.Tagged); ok {
				tag = t.Tag()
			}
			if tag == "" && src.Digest == "" {
				if d, ok := named.(reference.Digested); ok {
					return reference.TrimNamed(named), "", d.Digest(), nil
				}
			}
			return reference.TrimNamed(named), tag, src.Digest, nil
		}
	}
	return nil, "", "", fmt.Errorf("%s has no repository name to copy it under a prefix: name the target with a tag (one source), or give the image a name", src)
}
