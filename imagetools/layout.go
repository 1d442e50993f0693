package imagetools

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/moby/buildkit/client/ociindex"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ociLayout reads and writes an OCI image layout folder through containerd's
// local content store (same blobs/<alg>/<hex> layout) and BuildKit's
// index.json handling.
type ociLayout struct {
	dir   string
	store content.Store
	index ociindex.StoreIndex
}

func openLayout(dir string, create bool) (*ociLayout, error) {
	if !create {
		if _, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile)); err != nil {
			return nil, fmt.Errorf("%s%s is not an OCI image layout (no %s file): %w", LayoutPrefix, dir, ocispec.ImageLayoutFile, err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create OCI layout %s: %w", dir, err)
	}
	store, err := local.NewStore(dir)
	if err != nil {
		return nil, fmt.Errorf("open OCI layout %s: %w", dir, err)
	}
	return &ociLayout{dir: dir, store: store, index: ociindex.NewStoreIndex(dir)}, nil
}

// resolve finds the descriptor for a tag, a digest, or the only entry.
func (l *ociLayout) resolve(ctx context.Context, loc Location) (ocispec.Descriptor, error) {
	switch {
	case loc.Digest != "":
		return l.resolveDigest(ctx, loc)
	case loc.Tag != "":
		d, err := l.index.Get(loc.Tag)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("read %s: %w", loc, err)
		}
		if d == nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s: tag %q not found in index.json: %w", loc, loc.Tag, errdefs.ErrNotFound)
		}
		return *d, nil
	default:
		d, err := l.index.GetSingle()
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("read %s: %w", loc, err)
		}
		if d == nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s: index.json does not hold exactly one image: name one with :TAG or @DIGEST", loc)
		}
		return *d, nil
	}
}

// resolveDigest finds a digest in index.json, or else reads the blob and
// takes its media type from its body.
func (l *ociLayout) resolveDigest(ctx context.Context, loc Location) (ocispec.Descriptor, error) {
	if idx, err := l.index.Read(); err == nil {
		for _, m := range idx.Manifests {
			if m.Digest == loc.Digest {
				return m, nil
			}
		}
	}
	info, err := l.store.Info(ctx, loc.Digest)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", loc, err)
	}
	desc := ocispec.Descriptor{Digest: loc.Digest, Size: info.Size}
	dt, err := content.ReadBlob(ctx, l.store, desc)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("read %s: %w", loc, err)
	}
	var mt struct {
		MediaType string `json:"mediaType"`
	}
	if err := json.Unmarshal(dt, &mt); err != nil || mt.MediaType == "" {
		return ocispec.Descriptor{}, fmt.Errorf("%s: blob is not a manifest or index with a mediaType", loc)
	}
	desc.MediaType = mt.MediaType
	return desc, nil
}

// Fetch implements remotes.Fetcher over the layout's blobs.
func (l *ociLayout) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	ra, err := l.store.ReaderAt(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", LayoutPrefix, l.dir, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{content.NewReader(ra), ra}, nil
}

// layoutPusher implements remotes.Pusher; a manifest or index pushed to a
// tagged location is also named in index.json once its bytes are committed.
type layoutPusher struct {
	layout *ociLayout
	tag    string
}

func (p layoutPusher) Push(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	if _, err := p.layout.store.Info(ctx, desc.Digest); err == nil {
		if err := p.tagIfRoot(desc); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", desc.Digest, errdefs.ErrAlreadyExists)
	}
	w, err := p.layout.store.Writer(ctx, content.WithRef("imgx-"+desc.Digest.Encoded()), content.WithDescriptor(desc))
	if err != nil {
		return nil, err
	}
	return &layoutWriter{Writer: w, pusher: p, desc: desc}, nil
}

func (p layoutPusher) tagIfRoot(desc ocispec.Descriptor) error {
	if p.tag == "" || !(images.IsManifestType(desc.MediaType) || images.IsIndexType(desc.MediaType)) {
		return nil
	}
	if err := p.layout.index.Put(desc, ociindex.Tag(p.tag)); err != nil {
		return fmt.Errorf("tag %s in %s%s: %w", p.tag, LayoutPrefix, p.layout.dir, err)
	}
	return nil
}

type layoutWriter struct {
	content.Writer
	pusher layoutPusher
	desc   ocispec.Descriptor
}

func (w *layoutWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	if err := w.Writer.Commit(ctx, size, expected, opts...); err != nil && !errdefs.IsAlreadyExists(err) {
		return err
	}
	return w.pusher.tagIfRoot(w.desc)
}
