package ocilayout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The layout's blobs are files blobs/<alg>/<hex>, read and written here
// rather than through containerd's local content store: that store makes
// an ingest/ folder in every layout it opens, read or written, which
// nothing removes. A blob is written to a temporary file beside its name
// and renamed once its bytes are checked, so a layout holds whole blobs
// and nothing else of ours.

// blobPath is where the layout keeps d; a digest that is not valid (a path
// in its hex) is refused.
func (l *ociLayout) blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%s%s: blob %q: %w", ref.LayoutPrefix, l.dir, d, err)
	}
	return filepath.Join(l.dir, ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded()), nil
}

// blobSize is the size of the blob d; errdefs.ErrNotFound when the layout
// lacks it.
func (l *ociLayout) blobSize(d digest.Digest) (int64, error) {
	path, err := l.blobPath(d)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("blob %s in %s%s: %w", d, ref.LayoutPrefix, l.dir, errdefs.ErrNotFound)
	case err != nil:
		return 0, err
	case !fi.Mode().IsRegular():
		return 0, fmt.Errorf("blob %s in %s%s is not a regular file", d, ref.LayoutPrefix, l.dir)
	}
	return fi.Size(), nil
}

// Fetch implements remotes.Fetcher over the layout's blobs.
func (l *ociLayout) Fetch(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	path, err := l.blobPath(desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s%s: blob %s: %w", ref.LayoutPrefix, l.dir, desc.Digest, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", ref.LayoutPrefix, l.dir, err)
	}
	// A stream, as a registry's: nothing above reads at offsets.
	return struct {
		io.Reader
		io.Closer
	}{f, f}, nil
}

// write copies a blob into the layout, checking size and digest on the
// way: to a temporary file in its blobs/<alg> folder, synced, then renamed
// to its name. A blob already there is kept.
func (l *ociLayout) write(ctx context.Context, b place.Blob) (retErr error) {
	path, err := l.blobPath(b.Desc.Digest)
	if err != nil {
		return err
	}
	if _, err := l.blobSize(b.Desc.Digest); err == nil {
		return nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("push %s to %s%s: %w", b.Desc.Digest, ref.LayoutPrefix, l.dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".imgx-"+b.Desc.Digest.Encoded()+"-*")
	if err != nil {
		return fmt.Errorf("push %s to %s%s: %w", b.Desc.Digest, ref.LayoutPrefix, l.dir, err)
	}
	defer func() {
		if retErr != nil {
			_ = tmp.Close() // the write failed already: nothing to keep
			_ = os.Remove(tmp.Name())
		}
	}()
	src, err := open(ctx, b)
	if err != nil {
		return err
	}
	defer src.Close()
	in, done := b.Counted(oci.NewVerifyingReader(src, b.Desc))
	defer done()
	if _, err := io.Copy(tmp, readerWithContext(ctx, in)); err != nil {
		return fmt.Errorf("copy %s from %s to %s%s: %w", b.Desc.Digest, b.From, ref.LayoutPrefix, l.dir, err)
	}
	if err := tmp.Chmod(0o444); err != nil {
		return fmt.Errorf("push %s to %s%s: %w", b.Desc.Digest, ref.LayoutPrefix, l.dir, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("push %s to %s%s: %w", b.Desc.Digest, ref.LayoutPrefix, l.dir, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("push %s to %s%s: %w", b.Desc.Digest, ref.LayoutPrefix, l.dir, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("push %s to %s%s: %w", b.Desc.Digest, ref.LayoutPrefix, l.dir, err)
	}
	return nil
}

// readerWithContext stops a copy once ctx is done (Ctrl-C during a large
// blob from a local source).
func readerWithContext(ctx context.Context, r io.Reader) io.Reader {
	return ctxReader{ctx: ctx, r: r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
