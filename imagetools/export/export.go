package export

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Output formats.
const (
	// FormatDocker writes manifest.json and the OCI layout in one tar.
	FormatDocker = "docker"
	// FormatOCI writes the OCI layout only.
	FormatOCI = "oci"
)

const (
	// chunkSize and chunksAhead bound the memory of one blob being fetched
	// ahead: at most chunksAhead full chunks of its own wait in its pipe,
	// which keeps the blob being written going whatever the others do.
	chunkSize   = 512 << 10
	chunksAhead = 4
	// streamExtraChunks are shared by the blobs fetched ahead when the tar
	// is streamed, so that large layers download in parallel rather than
	// waiting for the one before them: 16 MiB, which keeps the process well
	// under 64 MiB (it reaches about 57 MiB with 24 MiB).
	streamExtraChunks = 32
)

// image is one image to write.
type image struct {
	// Fetcher reads the image's blobs (manifests, configs, layers) by descriptor.
	Fetcher remotes.Fetcher
	// Desc is the resolved root: an image manifest or an index.
	Desc ocispec.Descriptor
	// Name is the fully qualified name to write, e.g. "localhost:5000/app:1";
	// "" writes the image without a name.
	Name string
	// Artifact leaves the image out of manifest.json (see Source.Artifact).
	Artifact bool
	// Data is the root's bytes when the caller already read them (checked
	// against Desc); nil means they are fetched.
	Data []byte
	// SourceAnnotations are added to the image's index.json entry: the
	// distribution source (ref.Location.DistributionSource) that docker save
	// writes there for an image it pulled.
	SourceAnnotations map[string]string
	// PullRepository is the registry repository the image was read from,
	// for the Docker engine's pull (ref.Location.PullRepository); "" when
	// it is not in a registry.
	PullRepository string
	// From is the location the image was read from, for messages.
	From string
}

// Options controls writeImages.
type Options struct {
	// Platforms selects the images kept from an index; the first one's image
	// goes to manifest.json. Default: the local platform.
	Platforms []ocispec.Platform
	// AllPlatforms keeps every child of an index in the OCI layout; Platforms
	// then only choose the manifest.json image.
	AllPlatforms bool
	// ExplicitPlatforms says the user named Platforms: then a single image
	// (not an index) of another platform is an error rather than written.
	ExplicitPlatforms bool
	// Format is FormatDocker (default) or FormatOCI.
	Format string
	// SkipAttestations leaves out the attestation manifests (provenance,
	// SBOM) of the exported platforms. By default they are kept, as the
	// Docker engine's containerd image store pulls and saves them.
	SkipAttestations bool
	// IncludeForeign writes non-distributable layers too; by default they are
	// left out and their descriptors (with URLs) go to manifest.json's LayerSources.
	IncludeForeign bool
	// MaxConcurrency is the number of blobs fetched in parallel (default
	// oci.DefaultMaxConcurrency).
	MaxConcurrency int
	// Limits bound the manifests and indexes read; zero fields take oci's
	// defaults.
	Limits oci.GraphLimits
	// Progress receives the progress of the write; nil reports nothing.
	Progress Progress
}

// Progress receives the progress of writeImages. Calls come from one goroutine at
// a time.
type Progress interface {
	// Blob reports that written bytes of a streamed blob (a layer, or a blob of
	// an attestation) are in the tar: 0 when it starts, desc.Size when done.
	Blob(desc ocispec.Descriptor, written int64)
	// Manifest reports that an image manifest or index is written.
	Manifest(desc ocispec.Descriptor)
	// Config reports that an image config is written.
	Config(desc ocispec.Descriptor)
	// Naming reports a name given to an image in the tar.
	Naming(name string)
}

// discard is the Progress of a write nobody follows.
type discard struct{}

func (discard) Blob(ocispec.Descriptor, int64) {}
func (discard) Manifest(ocispec.Descriptor)    {}
func (discard) Config(ocispec.Descriptor)      {}
func (discard) Naming(string)                  {}

// result is what a write found that the caller shows, whether or not it
// succeeded.
type result struct {
	// Warnings are problems that do not stop the write, one sentence each
	// (layers that older Docker engines cannot load), known before a byte is written.
	Warnings []string
}

func (o Options) withDefaults() (Options, error) {
	switch o.Format {
	case "":
		o.Format = FormatDocker
	case FormatDocker, FormatOCI:
	default:
		return o, fmt.Errorf("unknown export format %q: want %q or %q", o.Format, FormatDocker, FormatOCI)
	}
	if len(o.Platforms) == 0 {
		o.Platforms = []ocispec.Platform{platforms.DefaultSpec()}
	}
	for _, p := range o.Platforms {
		if err := oci.ValidatePlatform(p); err != nil {
			return o, fmt.Errorf("export: platform %s: %w", platforms.Format(p), err)
		}
	}
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = oci.DefaultMaxConcurrency
	}
	if o.Progress == nil {
		o.Progress = discard{}
	}
	return o, nil
}

// writeImages writes images into one tar on w: an OCI image layout (oci-layout,
// index.json, blobs/sha256/...) and, in the docker format, a Docker
// manifest.json beside it, so that docker load, ctr images import, podman
// load and skopeo all accept it. Blobs are the registry's bytes, written once
// each, and checked against their digest and size while they are copied.
//
// writeImages first fetches the small blobs (indexes, manifests, configs) and
// validates the structure, so that most errors come before a byte is
// written. When w is a regular *os.File (as atomicfile.writeImages hands out), the
// whole tar is laid out first and up to MaxConcurrency blobs are fetched at
// once, each written at its offset. Otherwise the blobs are streamed in tar
// order while up to MaxConcurrency blobs are fetched ahead. Either way, same
// inputs give the same bytes. The Result holds the warnings found before an
// error too.
func writeImages(ctx context.Context, w io.Writer, imgs []image, opts Options) (result, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return result{}, err
	}
	if len(imgs) == 0 {
		return result{}, errors.New("export: no image given")
	}
	// A file is written at offsets: the configs manifest.json is checked
	// against can then be read beside the layers and checked once written,
	// sparing the round trip that reading them first costs. A stream is
	// written in order, so they are checked before its first byte; so is a
	// file that cannot be read back (a shell's "> image.tar" opens it
	// write-only).
	f, base, toFile := fileAt(w)
	pl, err := makePlan(ctx, imgs, opts, toFile && readable(f))
	res := result{Warnings: pl.warnings}
	if err != nil {
		return res, err
	}
	if toFile {
		return res, writeFileAt(ctx, f, base, imgs, pl, opts)
	}
	return res, writeStream(ctx, w, imgs, pl, opts)
}
