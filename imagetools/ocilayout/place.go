package ocilayout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layouts is the place of oci-layout:// locations: each call opens the
// folder its location names (Path), so one value serves every folder. Use
// NewLayouts: its calls then never overlap on an index.json (a zero
// Layouts does not serialise them).
type Layouts struct {
	lock *sync.RWMutex
}

// NewLayouts returns the place of OCI layouts, for calls made at once.
func NewLayouts() Layouts { return Layouts{lock: &sync.RWMutex{}} }

// open opens the folder of a location, under the place's lock.
func (p Layouts) open(dir string, create bool) (*ociLayout, error) {
	l, err := openLayout(dir, create)
	if err == nil && p.lock != nil {
		l.lock = p.lock
	}
	return l, err
}

var (
	_ place.Backend = Layouts{}
	_ place.Writer  = Layouts{}
)

// Capabilities implements place.Backend: a layout has one repository (no
// mounts), keeps no referrers, and its writer itself finds a blob present.
func (Layouts) Capabilities(ref.Location) place.Capabilities { return place.Capabilities{} }

// Manifest implements place.Reader: the entry of index.json named by tag or
// digest (or the only one), read and checked.
func (p Layouts) Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	l, err := p.open(loc.Path, false)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	desc, dt, err := l.resolve(ctx, loc)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if dt == nil {
		if dt, err = oci.ReadBlob(ctx, l, desc); err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %w", loc, err)
		}
	}
	// index.json annotations name the entry in the layout, not the image.
	return ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, Platform: desc.Platform}, dt, nil
}

// Fetcher implements place.Reader over the folder's blobs.
func (p Layouts) Fetcher(_ context.Context, loc ref.Location) (remotes.Fetcher, error) {
	return p.open(loc.Path, false)
}

// Tags implements place.Reader: the names of index.json's entries, their
// tags (ref.name) and full image names (io.containerd.image.name, as a
// layout of many images names them).
func (p Layouts) Tags(_ context.Context, loc ref.Location, _ int) (map[string]bool, bool, error) {
	l, err := p.open(loc.Path, false)
	if err != nil {
		return nil, false, err
	}
	idx, err := l.readIndex(loc)
	if err != nil {
		return nil, false, err
	}
	tags := map[string]bool{}
	for _, m := range idx.Manifests {
		if t := m.Annotations[ocispec.AnnotationRefName]; t != "" {
			tags[t] = true
		}
		if n := m.Annotations[images.AnnotationImageName]; n != "" {
			tags[n] = true
		}
	}
	return tags, true, nil
}

// Referrers implements place.Reader: a layout keeps no referrers index.
func (Layouts) Referrers(context.Context, ref.Location) ([]ocispec.Descriptor, bool, error) {
	return nil, false, nil
}

// Prepare implements place.Writer: the undo removes each folder named that
// did not exist yet, which then holds only part of the content and no tag.
func (Layouts) Prepare(locs []ref.Location) (func(), error) {
	var fresh []string
	for _, l := range locs {
		if slices.Contains(fresh, l.Path) {
			continue
		}
		if err := atomicfile.CheckSharedLinks(l.Path); err != nil {
			return nil, fmt.Errorf("OCI layout %w", err)
		}
		if _, err := os.Lstat(l.Path); errors.Is(err, os.ErrNotExist) {
			fresh = append(fresh, l.Path)
		}
	}
	return func() {
		for _, dir := range fresh {
			_ = os.RemoveAll(dir)
		}
	}, nil
}

// CheckBlob implements place.Writer: whether the folder holds the blob.
func (p Layouts) CheckBlob(ctx context.Context, to ref.Location, desc ocispec.Descriptor) (bool, error) {
	l, err := p.open(to.Path, true)
	if err != nil {
		return false, err
	}
	_, err = l.blobSize(desc.Digest)
	return err == nil, nil
}

// MountBlob implements place.Writer: a layout cannot mount; the blob is
// copied instead.
func (Layouts) MountBlob(context.Context, ref.Location, ref.Location, ocispec.Descriptor) (bool, error) {
	return false, nil
}

// PushBlob implements place.Writer: the blob written to its file (blobs.go),
// its size and digest checked on the way; one already there is kept.
func (p Layouts) PushBlob(ctx context.Context, to ref.Location, b place.Blob) error {
	l, err := p.open(to.Path, true)
	if err != nil {
		return err
	}
	return l.write(ctx, b)
}

// PutManifest implements place.Writer: a manifest is a blob in a layout.
func (p Layouts) PutManifest(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) (bool, error) {
	l, err := p.open(to.Path, true)
	if err != nil {
		return false, err
	}
	return false, l.write(ctx, place.Blob{Desc: desc, Data: data, From: to.Repository()})
}

// Tag implements place.Writer: the manifest's bytes, then its entry in
// index.json under the tag (an entry of the same tag is replaced).
func (p Layouts) Tag(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) error {
	l, err := p.open(to.Path, true)
	if err != nil {
		return err
	}
	if err := l.write(ctx, place.Blob{Desc: desc, Data: data, From: to.Repository()}); err != nil {
		return err
	}
	if err := l.putIndex(desc, to.Tag); err != nil {
		return fmt.Errorf("tag %s in %s: %w", to.Tag, to.Repository(), err)
	}
	return nil
}

// Untag implements place.Writer: a layout's tags are not removed (index.json
// is shared with other tools that lock it); removed is false.
func (Layouts) Untag(context.Context, ref.Location) (bool, error) {
	return false, nil
}

// ReadTag implements place.Writer: the manifest index.json names by the tag
// (none in a folder that is not a layout yet).
func (p Layouts) ReadTag(ctx context.Context, t ref.Location) ([]byte, bool, error) {
	l, err := p.open(t.Path, true)
	if err != nil {
		return nil, false, err
	}
	d, err := l.getIndex(t.Tag)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil // a folder the write is about to make a layout
	}
	if err != nil || d == nil {
		return nil, false, err
	}
	dt, err := oci.ReadBlob(ctx, l, *d)
	return dt, err == nil, err
}

// open reads a blob's bytes: from memory, or from its source.
func open(ctx context.Context, b place.Blob) (io.ReadCloser, error) {
	if b.Data != nil {
		return io.NopCloser(bytes.NewReader(b.Data)), nil
	}
	rc, err := b.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", b.Desc.Digest, b.From, err)
	}
	return rc, nil
}
