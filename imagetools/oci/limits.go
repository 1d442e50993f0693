package oci

import ocispec "github.com/opencontainers/image-spec/specs-go/v1"

// DefaultMaxConcurrency bounds the blob transfers running at once, for
// create and export alike, when none is given. Measured with the benchmark
// (create of 8 images to a second registry, 0 and 20 ms latency, 2 cores): 2
// and 4 leave round trips unhidden, 8 and 12 gained nothing over 5 (a copy is
// bound by hashing and the registries' own work, not by waiting). 5 is also
// the Docker daemon's default for concurrent uploads and downloads, a pace
// registries and their rate limits are used to. Export's memory stays
// bounded at any value (it holds a few chunks per blob ahead).
const DefaultMaxConcurrency = 5

// metadataFactor scales a transfer bound into the bound of the small
// requests that carry no layer: reads of manifests and configs, existence
// checks (HEAD) and mounts. They cost the registry a lookup, not a stream,
// and bounding them like transfers made a create of 8 images into a new
// repository wait 8 round trips for its 40 mounts and 4 for its 16 source
// reads (make bench, 20 ms latency); at 4x they take 2 and 2.
const metadataFactor = 4

// MetadataLimit is the bound of the small requests (see metadataFactor) for
// a transfer bound of limit; 1 keeps them one at a time too, so that a
// command can be run in order, request by request, to follow what a
// registry does.
func MetadataLimit(limit int) int {
	if limit <= 1 {
		return 1
	}
	return metadataFactor * limit
}

// SmallTransferSize is the largest blob copied or fetched as a small
// request: at 1 Gbit/s, 4 MiB take about 34 ms, under two round trips to a
// remote registry, so for such a blob the round trips weigh as much as the
// bytes.
const SmallTransferSize = 4 << 20

// MaxManifestSize is the largest manifest or index read: what registries
// accept (distribution's limit), so nothing a registry holds is refused.
const MaxManifestSize = 4 << 20

// MaxBlobReadWhole is the largest other blob read whole into memory: image
// configs and attestation layers (SBOMs of large images pass 10 MiB).
const MaxBlobReadWhole = 32 << 20

// readLimit is the one size policy for content read whole: MaxManifestSize
// for a manifest or index, MaxBlobReadWhole for anything else. create,
// inspect and export all read through it, so an image one of them reads
// the others read too.
func readLimit(desc ocispec.Descriptor) int64 {
	if IsManifestOrIndex(desc.MediaType) {
		return MaxManifestSize
	}
	return MaxBlobReadWhole
}
