// Package compression holds the compressions the project writes (gzip,
// zstd, none) and their writers: parallel across cores, streamed (memory
// flat in the size of what they compress) and deterministic (the same
// input gives the same bytes: a fixed level, no name or time in a gzip
// header), so that a layer compressed twice keeps its digest. It also
// compresses the layers of image manifests that arrive uncompressed
// (layers.go), for pushes to a registry.
package compression

import (
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Format is a compression.
type Format string

// The compressions: Gzip is what docker push and skopeo write.
const (
	Gzip Format = "gzip"
	Zstd Format = "zstd"
	None Format = "none"
)

// Formats lists the names --compression takes.
func Formats() []string { return []string{string(Gzip), string(Zstd), string(None)} }

// ParseFormat reads a --compression value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case Gzip, Zstd, None:
		return f, nil
	}
	return "", fmt.Errorf("invalid --compression %q: want %s", s, strings.Join(Formats(), ", "))
}

// ForPath is the compression a file name asks for by its extension:
// .gz and .tgz gzip, .zst, .zstd and .tzst zstd, anything else none.
func ForPath(path string) Format {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".gz", ".tgz":
		return Gzip
	case ".zst", ".zstd", ".tzst":
		return Zstd
	}
	return None
}

// Level is how hard a writer compresses: fixed per use, so that its output
// is the same for the same input.
type Level int

const (
	// Default is the default level of Go's compress/gzip (and zstd's
	// default), which BuildKit, containerd and the Docker engine use for
	// the layers they push: what layers pushed here get.
	Default Level = iota
	// Fast is gzip's level 1 (zstd's fastest), for bundles: about the size
	// of `gzip -1`'s output at less than half its work, before the work is
	// spread over the cores.
	Fast
)

// gzipBlockSize is the size of the blocks compressed in parallel: each is
// compressed on its own (with the 32 KiB before it as dictionary), so the
// output depends on it and it is fixed.
const gzipBlockSize = 1 << 20

// NewWriter returns a writer that compresses into w with f at level l
// (klauspost's deflate and zstd); Close ends the stream (and does not
// close w). None writes through.
func NewWriter(w io.Writer, f Format, l Level) (io.WriteCloser, error) {
	switch f {
	case Gzip:
		level := pgzip.DefaultCompression
		if l == Fast {
			level = pgzip.BestSpeed
		}
		z, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, err
		}
		// 2 blocks in flight per core keeps every core busy while one
		// block is written out.
		if err := z.SetConcurrency(gzipBlockSize, 2*runtime.GOMAXPROCS(0)); err != nil {
			return nil, err
		}
		// The zero time.Time is no Unix time of 0: pgzip would write its
		// low bits as the header's MTIME.
		z.ModTime = time.Unix(0, 0)
		return z, nil
	case Zstd:
		level := zstd.SpeedDefault
		if l == Fast {
			level = zstd.SpeedFastest
		}
		return zstd.NewWriter(w, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	case None, "":
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", f)
}

// reset makes a writer NewWriter returned (and closed) write a new stream
// into w, as NewWriter would, keeping its buffers: a parallel gzip writer
// allocates its blocks and deflate state afresh, and the garbage of one
// writer per layer let the heap grow with the number of layers. It
// reports false for a writer it cannot reset.
func reset(wc io.WriteCloser, w io.Writer) bool {
	switch z := wc.(type) {
	case *pgzip.Writer:
		z.Reset(w)
		z.ModTime = time.Unix(0, 0) // Reset clears it (see NewWriter)
		return true
	case *zstd.Encoder:
		z.Reset(w)
		return true
	}
	return false
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
