package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Archives is the place of archive:// locations. Each tar is opened (and
// spooled, if compressed) once and kept open until Close.
type Archives struct {
	ReadOnly
	opts Options
	open Set
}

var _ place.Place = (*Archives)(nil)

// New returns the place of image tars.
func New(opts Options) *Archives {
	return &Archives{ReadOnly: ReadOnly{What: "an image tar"}, opts: opts}
}

// Close closes every tar opened (and so removes their spools).
func (p *Archives) Close() error { return p.open.Close() }

// get opens loc's tar, or returns the one already open.
func (p *Archives) get(ctx context.Context, loc ref.Location) (*Archive, error) {
	key, err := filepath.Abs(loc.Path)
	if err != nil {
		return nil, err
	}
	return p.open.Get(key, nil, func() (*Archive, error) { return openFile(ctx, loc, p.opts) })
}

// openFile opens the tar at loc.Path.
func openFile(ctx context.Context, loc ref.Location, opts Options) (*Archive, error) {
	label := ref.ArchivePrefix + loc.Path
	f, err := os.Open(loc.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: no such file %s", label, loc.Path)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		_ = f.Close() // read only: nothing to lose
		return nil, fmt.Errorf("%s: %s is a folder, not a tar (an OCI layout folder is read as %s%s)", label, loc.Path, ref.LayoutPrefix, loc.Path)
	}
	return Open(ctx, f, label, opts)
}

// Capabilities implements place.Place: read-only, one repository.
func (p *Archives) Capabilities(ref.Location) place.Capabilities {
	return place.Capabilities{ReadOnly: true}
}

// Manifest implements place.Place.
func (p *Archives) Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	a, err := p.get(ctx, loc)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return a.Manifest(ctx, loc)
}

// Fetcher implements place.Place: the tar's content by descriptor.
func (p *Archives) Fetcher(ctx context.Context, loc ref.Location) (remotes.Fetcher, error) {
	return p.get(ctx, loc)
}

// Tags implements place.Place: the names of the tar's images.
func (p *Archives) Tags(ctx context.Context, loc ref.Location) (map[string]bool, error) {
	a, err := p.get(ctx, loc)
	if err != nil {
		return nil, err
	}
	tags := map[string]bool{}
	for _, n := range a.Names() {
		tags[n] = true
	}
	return tags, nil
}

// Referrers implements place.Place: a tar keeps no referrers index.
func (p *Archives) Referrers(context.Context, ref.Location) ([]ocispec.Descriptor, bool, error) {
	return nil, false, nil
}

// ReadOnly is the writer half of a place that is only read from: every
// write is refused with one line that says what writes such places.
type ReadOnly struct {
	// What names the kind of place in the line: "an image tar".
	What string
}

func (r ReadOnly) refuse(loc ref.Location) error {
	return fmt.Errorf("%s: %s is only read from: write image tars with `docker imgx export`, and into the Docker engine with `docker imgx export --load`", loc, r.What)
}

// Prepare implements place.Place: reading needs nothing readied.
func (ReadOnly) Prepare([]ref.Location) (func(), error) { return func() {}, nil }

// CheckBlob implements place.Place: refused.
func (r ReadOnly) CheckBlob(_ context.Context, to ref.Location, _ ocispec.Descriptor) (bool, place.Upload, error) {
	return false, nil, r.refuse(to)
}

// MountBlob implements place.Place: refused.
func (r ReadOnly) MountBlob(_ context.Context, to, _ ref.Location, _ ocispec.Descriptor) (bool, place.Upload, error) {
	return false, nil, r.refuse(to)
}

// PushBlob implements place.Place: refused.
func (r ReadOnly) PushBlob(_ context.Context, to ref.Location, _ place.Blob, _ place.Upload) error {
	return r.refuse(to)
}

// PutManifest implements place.Place: refused.
func (r ReadOnly) PutManifest(_ context.Context, to ref.Location, _ ocispec.Descriptor, _ []byte) (bool, error) {
	return false, r.refuse(to)
}

// Tag implements place.Place: refused.
func (r ReadOnly) Tag(_ context.Context, to ref.Location, _ ocispec.Descriptor, _ []byte) error {
	return r.refuse(to)
}

// ReadTag implements place.Place: refused (it is asked before a write).
func (r ReadOnly) ReadTag(_ context.Context, t ref.Location) ([]byte, bool, error) {
	return nil, false, r.refuse(t)
}

// Untag implements place.Place: refused.
func (r ReadOnly) Untag(_ context.Context, t ref.Location) (bool, error) {
	return false, r.refuse(t)
}
