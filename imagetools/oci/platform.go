package oci

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// platformVariantMax is the highest numeric variant of the architectures
// whose lower variants containerd's matcher walks one by one (amd64 levels
// v1 to v4, arm v5 to v8): a variant such as v6888888864 would keep
// platforms.Only busy for minutes and fill memory (found by FuzzPlatform).
var platformVariantMax = map[string]int{"amd64": 4, "arm": 8}

// ValidatePlatform refuses a requested platform whose variant does not
// exist for its architecture. Use it on every platform a user gives before
// it reaches platforms.Only.
func ValidatePlatform(p ocispec.Platform) error {
	limit, ok := platformVariantMax[p.Architecture]
	if !ok || p.Variant == "" {
		return nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(p.Variant, "v"))
	if err != nil || n <= limit {
		return nil // not numeric: containerd compares it as it is
	}
	return fmt.Errorf("%s has no variant %s (the highest is v%d)", p.Architecture, p.Variant, limit)
}

// BestMatch returns the child of an index that best matches p (containerd's
// platforms.Only preference order: linux/arm64 takes linux/arm64/v8, and
// linux/amd64 falls back to lower levels; the earlier child on ties), never
// an attestation; nil when none matches. p must have passed ValidatePlatform.
func BestMatch(children []ocispec.Descriptor, p ocispec.Platform) *ocispec.Descriptor {
	m := platforms.Only(p)
	var best *ocispec.Descriptor
	for i := range children {
		c := &children[i]
		if c.Platform == nil || IsAttestation(*c) || !m.Match(*c.Platform) {
			continue
		}
		if best == nil || m.Less(*c.Platform, *best.Platform) {
			best = c
		}
	}
	return best
}

// SelectPlatform picks the child of an index that best matches p (see
// BestMatch), with an error that lists what the index has when none does.
func SelectPlatform(children []ocispec.Descriptor, p ocispec.Platform) (ocispec.Descriptor, error) {
	if err := ValidatePlatform(p); err != nil {
		return ocispec.Descriptor{}, err
	}
	best := BestMatch(children, p)
	if best == nil {
		return ocispec.Descriptor{}, NoPlatformError(children, p)
	}
	return *best, nil
}

// NoPlatformError says that an index has no image for p and which it has.
func NoPlatformError(children []ocispec.Descriptor, p ocispec.Platform) error {
	return fmt.Errorf("no image for platform %s; available: %s", platforms.FormatAll(p), availablePlatforms(children))
}

// availablePlatforms lists the platforms of an index's images (not its
// attestations), in index order, each once; "none" when there are none.
func availablePlatforms(children []ocispec.Descriptor) string {
	var names []string
	for _, c := range children {
		if c.Platform == nil || IsAttestation(c) {
			continue
		}
		if name := platforms.FormatAll(*c.Platform); !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// PlatformKey is a platform normalized and written out whole (OS version
// and features included), for telling whether two images are of the same
// platform.
func PlatformKey(p ocispec.Platform) string {
	return platforms.FormatAll(platforms.Normalize(p))
}

// Serves reports whether an image of platform got serves a request for
// want, as containerd matches them (both normalized: linux/arm64/v8 serves
// linux/arm64; linux/amd64 asked of a Docker engine serves linux/amd64 images).
func Serves(want, got ocispec.Platform) bool {
	return platforms.Only(want).Match(platforms.Normalize(got))
}

// CheckImagePlatform refuses a single image (not an index), whose config
// names platform got, for a request of platforms none of which it serves:
// a platform picks an image from an index, and showing or exporting the
// image as if it matched would mislead. It wraps
// imagetools.ErrSingleImagePlatform.
func CheckImagePlatform(got ocispec.Platform, want []ocispec.Platform) error {
	if got.OS == "" || got.Architecture == "" || len(want) == 0 {
		return nil // not an image config: nothing to match
	}
	for _, p := range want {
		if Serves(p, got) {
			return nil
		}
	}
	return fmt.Errorf("a single %s image, not %s: %w", platforms.Format(platforms.Normalize(got)), platforms.Format(want[0]), imagetools.ErrSingleImagePlatform)
}
