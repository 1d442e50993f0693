// Package imagetar reads image tars: files written by docker save, podman
// save, skopeo (docker-archive:, oci-archive:), buildx, crane or docker-imgx
// export, plain or gzip- or zstd-compressed. A tar is indexed once (names to
// offsets) and each blob read by offset, its digest checked as it is read; a
// compressed tar is first spooled, decompressed, to a temporary file that has
// no name. Two views of a tar are read: its OCI layout (index.json and
// blobs/), else its Docker image manifest.json, whose images get manifests
// made here (the config as it is, the layer tars as they are). Two places
// read through it: archive (archive:// files) and daemon (what the Docker
// engine's image-save API answers), so that neither imports the other.
package imagetar

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Options say where a compressed tar is spooled and how large it may grow.
type Options struct {
	// TempDir holds spools; "" for the system's temporary folder.
	TempDir string
	// MaxDecompressed, when over 0, replaces the spool limit of a
	// compressed tar (minDecompressed, or maxRatio times its size).
	MaxDecompressed int64
	// LimitHint ends the line of a tar over the spool limit, saying how to
	// raise it.
	LimitHint string
}

// Archive is one opened image tar: its entries indexed, its images listed.
// It reads blobs by descriptor (remotes.Fetcher), and is safe for
// concurrent use once open.
type Archive struct {
	label  string
	tar    *tarIndex
	images []image
	// made holds the manifests made for the Docker view, by digest.
	made map[digest.Digest][]byte
	// files names the entry of content the Docker view found outside
	// blobs/ (configs, layer tars), by digest.
	files map[digest.Digest]string
}

// image is one image a tar names at its top: its root and its names.
type image struct {
	desc  ocispec.Descriptor
	names []string
}

// Open indexes the image tar f (read from its start), label naming it in
// messages; a compressed tar is spooled first. The Archive owns f: Close
// closes it (a spool, having no name, is gone with it).
func Open(ctx context.Context, f *os.File, label string, opts Options) (*Archive, error) {
	a := &Archive{label: label, made: map[digest.Digest][]byte{}, files: map[digest.Digest]string{}}
	fail := func(err error) (*Archive, error) {
		_ = f.Close() // read only: nothing to lose
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	size := fi.Size()
	br := bufio.NewReaderSize(f, 1<<16)
	if kind := compression(br); kind != "" {
		dec, err := decompressor(kind, br)
		if err != nil {
			return fail(fmt.Errorf("read %s stream: %w", kind, err))
		}
		limit := spoolLimit(size, opts.MaxDecompressed)
		spool, n, err := Spool(ctx, dec, opts.TempDir, limit, func(limit int64) error {
			return fmt.Errorf("decompresses to more than %d bytes, the limit for this %s tar (a compression bomb?)%s", limit, kind, opts.LimitHint)
		})
		dec.Close()
		if err != nil {
			return fail(fmt.Errorf("decompress %s: %w", kind, err))
		}
		_ = f.Close() // read only: nothing to lose
		f, size = spool, n
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	if a.tar, err = indexTar(ctx, f, size, opts.TempDir); err != nil {
		return fail(err)
	}
	if err := a.readViews(ctx); err != nil {
		_ = a.tar.close() // read only: nothing to lose
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	return a, nil
}

// Close closes the tar (and so removes its spool).
func (a *Archive) Close() error { return a.tar.close() }

// readViews lists the images: those of index.json when it names any, else
// those of manifest.json.
func (a *Archive) readViews(ctx context.Context) error {
	_, hasIndex := a.tar.entries["index.json"]
	_, hasManifest := a.tar.entries["manifest.json"]
	if !hasIndex && !hasManifest {
		return fmt.Errorf("holds neither index.json nor manifest.json: not an image tar")
	}
	if hasIndex {
		if err := a.readOCIView(); err != nil || len(a.images) > 0 || !hasManifest {
			return err
		}
	}
	return a.readDockerView(ctx)
}

// readSmall reads a whole entry of at most limit bytes.
func (a *Archive) readSmall(name string, limit int64) ([]byte, error) {
	e, ok := a.tar.entries[name]
	if !ok {
		return nil, fmt.Errorf("%s is not a file in the tar", name)
	}
	if e.size > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the %d byte limit of what is read whole", name, e.size, limit)
	}
	dt := make([]byte, e.size)
	if _, err := a.tar.at(e).ReadAt(dt, e.off); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return dt, nil
}

// blobName is where an OCI layout keeps d.
func blobName(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// Fetch implements remotes.Fetcher: a manifest made for the Docker view, or
// an entry of the tar read by offset, its size and digest checked; reads
// end when ctx does (a copy into a layout checks no context of its own).
func (a *Archive) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("%s: invalid digest %q: %w", a.label, desc.Digest, err)
	}
	if dt, ok := a.made[desc.Digest]; ok {
		return io.NopCloser(oci.NewVerifyingReader(bytes.NewReader(dt), desc)), nil
	}
	name, ok := a.files[desc.Digest]
	if !ok {
		name = blobName(desc.Digest)
	}
	e, ok := a.tar.entries[name]
	if !ok {
		return nil, fmt.Errorf("%s: %s is not in the tar: %w", a.label, desc.Digest, errdefs.ErrNotFound)
	}
	if e.size != desc.Size {
		return nil, fmt.Errorf("%s: %s is %d bytes in the tar, %d expected: %w", a.label, desc.Digest, e.size, desc.Size, imagetools.ErrSizeMismatch)
	}
	return io.NopCloser(oci.NewVerifyingReader(ctxReader{ctx: ctx, r: a.tar.section(e)}, desc)), nil
}

// Has reports whether the tar holds content d (or made its manifest).
func (a *Archive) Has(d digest.Digest) bool {
	if _, ok := a.made[d]; ok {
		return true
	}
	if _, ok := a.files[d]; ok {
		return true
	}
	if d.Validate() != nil {
		return false
	}
	_, ok := a.tar.entries[blobName(d)]
	return ok
}

// Names lists the names of the tar's images, sorted, each once.
func (a *Archive) Names() []string {
	seen := map[string]bool{}
	var out []string
	for _, img := range a.images {
		for _, n := range img.names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}

// namesHint lists the names for a message.
func (a *Archive) namesHint() string {
	names := a.Names()
	if len(names) == 0 {
		return "its images have no names: pick one by @DIGEST"
	}
	return "it holds " + strings.Join(names, ", ")
}
