// Package archive is the image tar place: archive:// locations name image
// tars (docker save, podman save, skopeo, buildx, crane, docker-imgx export;
// plain, gzip or zstd), read through package imagetar. Archives implements
// place.Backend and no place.Writer: it is only read from.
package archive

import (
	"context"
	"errors"
	"fmt"
	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools/imagetar"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Archives is the place of archive:// locations. Each tar is opened (and
// spooled, if compressed) once and kept open until Close.
type Archives struct {
	opts imagetar.Options
	open imagetar.Set
}

// It implements no place.Writer: the router refuses writes to it.
var _ place.Backend = (*Archives)(nil)

// New returns the place of image tars.
func New(opts imagetar.Options) *Archives {
	return &Archives{opts: opts}
}

// Close closes every tar opened (and so removes their spools).
func (p *Archives) Close() error { return p.open.Close() }

// get opens loc's tar, or returns the one already open.
func (p *Archives) get(ctx context.Context, loc ref.Location) (*imagetar.Archive, error) {
	key, err := filepath.Abs(loc.Path)
	if err != nil {
		return nil, err
	}
	return p.open.Get(key, nil, func() (*imagetar.Archive, error) { return openFile(ctx, loc, p.opts) })
}

// openFile opens the tar at loc.Path.
func openFile(ctx context.Context, loc ref.Location, opts imagetar.Options) (*imagetar.Archive, error) {
	label := ref.ArchivePrefix + loc.Path
	// Looked at before it is opened: opening a FIFO waits for a writer,
	// and signals do not end that wait.
	fi, err := os.Stat(loc.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: no such file %s", label, loc.Path)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", label, err)
	case fi.IsDir():
		return nil, fmt.Errorf("%s: %s is a folder, not a tar (an OCI layout folder is read as %s%s)", label, loc.Path, ref.LayoutPrefix, loc.Path)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s: %s is %s, not a file: an image tar is read where it lies, in any order; save it to a file first", label, loc.Path, atomicfile.Kind(fi.Mode()))
	}
	f, err := os.Open(loc.Path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	return imagetar.Open(ctx, f, label, opts)
}

// Capabilities implements place.Backend: a tar has one repository, keeps
// no referrers, and holds images as docker save writes them (plain layers
// are compressed for a registry).
func (p *Archives) Capabilities(ref.Location) place.Capabilities {
	return place.Capabilities{Unpacked: true}
}

// Manifest implements place.Reader.
func (p *Archives) Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	a, err := p.get(ctx, loc)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return a.Manifest(ctx, loc)
}

// Fetcher implements place.Reader: the tar's content by descriptor.
func (p *Archives) Fetcher(ctx context.Context, loc ref.Location) (remotes.Fetcher, error) {
	return p.get(ctx, loc)
}

// Tags implements place.Reader: the names of the tar's images.
func (p *Archives) Tags(ctx context.Context, loc ref.Location, _ int) (map[string]bool, bool, error) {
	a, err := p.get(ctx, loc)
	if err != nil {
		return nil, false, err
	}
	tags := map[string]bool{}
	for _, n := range a.Names() {
		tags[n] = true
	}
	return tags, true, nil
}

// Referrers implements place.Reader: a tar keeps no referrers index.
func (p *Archives) Referrers(context.Context, ref.Location) ([]ocispec.Descriptor, bool, error) {
	return nil, false, nil
}
