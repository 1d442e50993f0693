package imagetar

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest reads the manifest or index at loc: the image named loc.Tag
// (its NAME), the one with loc.Digest (or any manifest the tar holds by
// that digest), or the tar's only image; checked as it is read.
func (a *Archive) Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	desc, err := a.find(loc)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	dt, err := oci.ReadBlob(ctx, a, desc)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("read %s: %w", loc, err)
	}
	if desc.MediaType == "" {
		var mt struct {
			MediaType string `json:"mediaType"`
		}
		if err := json.Unmarshal(dt, &mt); err != nil || !oci.IsManifestOrIndex(mt.MediaType) {
			return ocispec.Descriptor{}, nil, fmt.Errorf("%s: blob is not a manifest or index with a mediaType", loc)
		}
		desc.MediaType = mt.MediaType
	}
	return desc, dt, nil
}

// find picks the descriptor loc names.
func (a *Archive) find(loc ref.Location) (ocispec.Descriptor, error) {
	cands := a.images
	if loc.Tag != "" {
		cands = nil
		for _, img := range a.images {
			if nameMatches(img.names, loc.Tag) {
				cands = append(cands, img)
			}
		}
		if len(cands) == 0 {
			return ocispec.Descriptor{}, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("%s: no image named %q in %s (%s)", loc, loc.Tag, a.label, a.namesHint()))
		}
	}
	if loc.Digest != "" {
		return a.findDigest(loc, cands)
	}
	switch len(cands) {
	case 0:
		return ocispec.Descriptor{}, fmt.Errorf("%s: the tar holds no image", loc)
	case 1:
		return cands[0].desc, nil
	}
	if loc.Tag != "" {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %d images are named %q: pick one by @DIGEST", loc, len(cands), loc.Tag)
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s: the tar holds %d images: name one as %sFILE:NAME (%s)", loc, len(cands), ref.ArchivePrefix, a.namesHint())
}

// findDigest finds loc's digest among the images, else (without a NAME)
// among the manifests the tar holds; the media type is then read from the
// bytes.
func (a *Archive) findDigest(loc ref.Location, cands []image) (ocispec.Descriptor, error) {
	for _, img := range cands {
		if img.desc.Digest == loc.Digest {
			return img.desc, nil
		}
	}
	if loc.Tag == "" {
		if dt, ok := a.made[loc.Digest]; ok {
			return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: loc.Digest, Size: int64(len(dt))}, nil
		}
		if e, ok := a.tar.entries[blobName(loc.Digest)]; ok {
			return ocispec.Descriptor{Digest: loc.Digest, Size: e.size, MediaType: ""}, nil
		}
	}
	return ocispec.Descriptor{}, ref.NotFound(loc, false, a.namesHint())
}

// nameMatches reports whether want is one of names, as written or both
// normalized (alpine:3 is docker.io/library/alpine:3).
func nameMatches(names []string, want string) bool {
	w := normalName(want)
	for _, n := range names {
		if n == want || (w != "" && normalName(n) == w) {
			return true
		}
	}
	return false
}

func normalName(s string) string {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return ""
	}
	return reference.TagNameOnly(named).String()
}
