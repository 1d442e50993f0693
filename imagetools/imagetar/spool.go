package imagetar

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Limits of a compressed tar's spool: it may grow to minDecompressed, or to
// maxRatio times the compressed size when that is more. Image tars compress
// a few times over; a bomb, a thousand times.
const (
	minDecompressed = 1 << 30
	maxRatio        = 100
)

// zstdMaxWindow bounds the memory a zstd stream may ask for (its window).
const zstdMaxWindow = 64 << 20

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// compression names the compression of the stream r starts with: "gzip",
// "zstd" or "" (a plain tar).
func compression(r *bufio.Reader) string {
	head, _ := r.Peek(4)
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return "gzip"
	case bytes.HasPrefix(head, zstdMagic):
		return "zstd"
	}
	return ""
}

// decompressor returns the decompressed stream of r.
func decompressor(kind string, r io.Reader) (io.ReadCloser, error) {
	if kind == "gzip" {
		return gzip.NewReader(r)
	}
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow))
	if err != nil {
		return nil, err
	}
	return d.IOReadCloser(), nil
}

// spoolLimit is how large the decompressed spool of a compressed tar of
// size bytes may grow; override > 0 replaces it.
func spoolLimit(size, override int64) int64 {
	if override > 0 {
		return override
	}
	return max(minDecompressed, size*maxRatio)
}

// Spool copies r, up to limit bytes, into a new temporary file in dir
// ("" for the default) whose name is removed at once: the file lives as
// long as it is open, and nothing is left behind on any exit. It fails on a
// stream longer than limit (tooLarge says why); limit 0 sets none.
func Spool(ctx context.Context, r io.Reader, dir string, limit int64, tooLarge func(limit int64) error) (*os.File, int64, error) {
	f, err := os.CreateTemp(dir, "imgx-spool-*.tar")
	if err != nil {
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	_ = os.Remove(f.Name())
	var n int64
	if limit <= 0 {
		n, err = io.Copy(f, ctxReader{ctx: ctx, r: r})
	} else {
		n, err = io.CopyN(f, ctxReader{ctx: ctx, r: r}, limit+1)
		switch {
		case errors.Is(err, io.EOF):
			err = nil
		case err == nil:
			err = tooLarge(limit)
		}
	}
	if err != nil {
		_ = f.Close() // read only: nothing to lose
		return nil, 0, err
	}
	return f, n, nil
}

// ctxReader stops a copy when its context ends.
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
