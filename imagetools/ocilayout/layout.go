// Package ocilayout is the OCI image layout place: a folder with oci-layout,
// index.json and blobs/<alg>/<hex>: blobs read and written as files,
// index.json through BuildKit's index handling. Layouts
// implements place.Backend and place.Writer for oci-layout:// locations.
package ocilayout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/moby/buildkit/client/ociindex"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ociLayout reads and writes an OCI image layout folder: its blobs as
// files (blobs.go), index.json through BuildKit's index handling.
type ociLayout struct {
	dir   string
	index ociindex.StoreIndex
	// lock serialises this process's reads and writes of index.json, which
	// BuildKit's flock (TryLock, then the lock file removed) refuses to
	// overlap: a set of images copied into one layout at once.
	lock *sync.RWMutex
}

// openLayout opens dir with no lock of its own (Layouts.open gives one).
func openLayout(dir string, create bool) (*ociLayout, error) {
	if !create {
		if err := checkLayoutDir(dir); err != nil {
			return nil, err
		}
	} else if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("OCI layout %s: exists and is not a folder", dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create OCI layout %s: %w", dir, err)
	}
	return &ociLayout{dir: dir, index: ociindex.NewStoreIndex(dir), lock: &sync.RWMutex{}}, nil
}

// getIndex is index.json's entry named name (a tag, or a full image name).
func (l *ociLayout) getIndex(name string) (*ocispec.Descriptor, error) {
	l.lock.RLock()
	defer l.lock.RUnlock()
	return l.index.Get(name)
}

// readIndexJSON reads index.json.
func (l *ociLayout) readIndexJSON() (*ocispec.Index, error) {
	l.lock.RLock()
	defer l.lock.RUnlock()
	return l.index.Read()
}

// putIndex names desc in index.json by name: a tag (ref.name), or a full
// image name (NAME:TAG, NAME@DIGEST) as export and containerd write it:
// io.containerd.image.name the name, ref.name its tag. An entry of the
// same name is replaced; a name by digest alone gets no ref.name, and is
// added once.
func (l *ociLayout) putIndex(desc ocispec.Descriptor, name string) error {
	l.lock.Lock()
	defer l.lock.Unlock()
	if !isImageName(name) {
		return l.index.Put(desc, ociindex.Tag(name))
	}
	named, err := reference.ParseNamed(name)
	if err != nil {
		return fmt.Errorf("image name %q: %w", name, err)
	}
	if _, tagged := named.(reference.Tagged); tagged {
		return l.index.Put(desc, ociindex.Name(name))
	}
	if d, err := l.index.Get(name); err == nil && d != nil && d.Digest == desc.Digest {
		return nil
	}
	desc.Annotations = map[string]string{images.AnnotationImageName: name}
	return l.index.Put(desc)
}

// isImageName reports whether a layout's name for an image is a full image
// name (a tag holds no '/', ':' or '@').
func isImageName(name string) bool {
	return strings.ContainsAny(name, "/:@")
}

// checkLayoutDir says why dir is not a layout to read: missing, a file, or
// a folder without the oci-layout file.
func checkLayoutDir(dir string) error {
	notLayout := ref.LayoutPrefix + dir + " is not an OCI image layout"
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: folder %s does not exist", notLayout, dir)
	case err != nil:
		return fmt.Errorf("%s: %w", notLayout, err)
	case !fi.IsDir():
		return fmt.Errorf("%s: %s is a file, not a folder", notLayout, dir)
	}
	_, err = os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: no %s file in %s (want a folder with %s, index.json and blobs/)", notLayout, ocispec.ImageLayoutFile, dir, ocispec.ImageLayoutFile)
	case err != nil:
		return fmt.Errorf("%s: %w", notLayout, err)
	}
	return nil
}

// resolve finds the descriptor for a tag, a digest, or the only entry;
// data holds the bytes when finding it meant reading them (else nil).
func (l *ociLayout) resolve(ctx context.Context, loc ref.Location) (desc ocispec.Descriptor, data []byte, err error) {
	if loc.Digest != "" {
		return l.resolveDigest(ctx, loc)
	}
	idx, err := l.readIndex(loc)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if loc.Tag != "" {
		d, err := l.getIndex(loc.Tag)
		if err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("read %s: %w", loc, err)
		}
		if d == nil {
			return ocispec.Descriptor{}, nil, ref.NotFound(loc, false, layoutTagsHint(idx))
		}
		return *d, nil, nil
	}
	if len(idx.Manifests) != 1 {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: index.json holds %d images, not one: name one with %s:TAG or @DIGEST (%s)",
			loc, len(idx.Manifests), loc.Repository(), layoutTagsHint(idx))
	}
	return idx.Manifests[0], nil, nil
}

// readIndex reads index.json, saying plainly when it is missing or not JSON.
func (l *ociLayout) readIndex(loc ref.Location) (*ocispec.Index, error) {
	idx, err := l.readIndexJSON()
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: no index.json in %s: not a complete OCI image layout", loc, l.dir)
	case errors.As(err, &syntaxErr):
		return nil, fmt.Errorf("%s: index.json is not valid JSON: %w", loc, syntaxErr)
	case errors.As(err, &typeErr):
		return nil, fmt.Errorf("%s: index.json is not an OCI image index: %w", loc, typeErr)
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", loc, err)
	}
	return idx, nil
}

// layoutTagsHint lists the tags of index.json, for an error message.
func layoutTagsHint(idx *ocispec.Index) string {
	var tags []string
	for _, m := range idx.Manifests {
		if t := m.Annotations[ocispec.AnnotationRefName]; t != "" {
			tags = append(tags, t)
		}
	}
	if len(tags) == 0 {
		return "it has no tags: name an image by @DIGEST"
	}
	sort.Strings(tags)
	return "tags: " + strings.Join(tags, ", ")
}

// resolveDigest finds a digest in index.json, or else reads the blob
// (bounded, checked: oci.ReadBlob) and takes its media type from its body;
// then it returns the bytes too, so that they are not read twice.
func (l *ociLayout) resolveDigest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	if idx, err := l.readIndexJSON(); err == nil {
		for _, m := range idx.Manifests {
			if m.Digest == loc.Digest {
				return m, nil, nil
			}
		}
	}
	size, err := l.blobSize(loc.Digest)
	if errdefs.IsNotFound(err) {
		return ocispec.Descriptor{}, nil, ref.NotFound(loc, false, "")
	}
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %w", loc, err)
	}
	desc := ocispec.Descriptor{Digest: loc.Digest, Size: size}
	dt, err := oci.ReadBlob(ctx, l, desc)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("read %s: %w", loc, err)
	}
	var mt struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(dt, &mt); err != nil || mt.MediaType == "" {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: blob is not a manifest or index with a mediaType", loc)
	}
	desc.MediaType = mt.MediaType
	// Typed now: a manifest over the manifest limit is refused like any.
	if err := oci.CheckReadable(desc); err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("read %s: %w", loc, err)
	}
	return desc, dt, nil
}
