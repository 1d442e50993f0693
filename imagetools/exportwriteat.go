package imagetools

// The parallel half of the exporter: when the tar goes to a regular file,
// every entry's offset is known before a blob is fetched, so blobs are
// fetched at once (up to MaxConcurrency) and written where they belong.

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// exportTarBlock is the tar block size: every entry's content is padded to it.
const exportTarBlock = 512

// exportSlot is where one record lies in the tar.
type exportSlot struct {
	rec exportRecord
	// header is the record's header exactly as tar.Writer writes it (one
	// block, or more when it needs PAX records).
	header []byte
	// off is the offset of header; the content follows it, then padding.
	off int64
}

// content returns the offset of the slot's content.
func (s exportSlot) content() int64 { return s.off + int64(len(s.header)) }

// exportTarLayout is the whole tar, offsets included, before a byte is
// written.
type exportTarLayout struct {
	slots   []exportSlot
	trailer []byte
	size    int64
}

// exportLayoutOf places records one after the other as tar.Writer does:
// each header is rendered by tar.Writer itself (so the format it picks, USTAR
// or PAX, is the one the sequential path writes), its content padded to a
// block, and tar.Writer's own trailer at the end.
func exportLayoutOf(records []exportRecord) (exportTarLayout, error) {
	var l exportTarLayout
	for _, rec := range records {
		var buf bytes.Buffer
		if err := tar.NewWriter(&buf).WriteHeader(rec.Header); err != nil {
			return l, fmt.Errorf("export: header of %s: %w", rec.Header.Name, err)
		}
		l.slots = append(l.slots, exportSlot{rec: rec, header: buf.Bytes(), off: l.size})
		l.size += int64(buf.Len()) + rec.Header.Size + exportPadding(rec.Header.Size)
	}
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).Close(); err != nil {
		return l, fmt.Errorf("export: tar trailer: %w", err)
	}
	l.trailer = buf.Bytes()
	l.size += int64(len(l.trailer))
	return l, nil
}

// exportPadding returns the zero bytes that follow content of size bytes.
func exportPadding(size int64) int64 {
	return -size & (exportTarBlock - 1)
}

// exportFileAt returns w as a file that Export may write at offsets, and the
// offset where the tar starts: a regular file, not opened for appending
// (WriteAt refuses those). A pipe, a terminal or any other writer gives false.
func exportFileAt(w io.Writer) (*os.File, int64, bool) {
	f, ok := w.(*os.File)
	if !ok {
		return nil, 0, false
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil, 0, false
	}
	base, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0, false
	}
	if _, err := f.WriteAt(nil, base); err != nil {
		return nil, 0, false
	}
	return f, base, true
}

// exportWriteAt writes the tar into f from offset base: headers and
// in-memory entries first, then the streamed blobs, up to opts.MaxConcurrency
// at once, each written at its offset while its digest and size are checked.
// The bytes are those the sequential path writes; on success f's offset is at
// the end of the tar, as if it had been written in order.
func exportWriteAt(ctx context.Context, f *os.File, base int64, imgs []ExportImage, plan exportPlan, opts ExportOptions) error {
	layout, err := exportLayoutOf(plan.records)
	if err != nil {
		return err
	}
	if err := exportPreallocate(f, base, layout.size); err != nil {
		return err
	}
	// Blobs report from several goroutines; the lock keeps ExportProgress's
	// promise of one call at a time.
	progress := &exportLockedProgress{p: opts.Progress}
	w := &exportOffsetWriter{f: f, base: base}
	var streamed []exportSlot
	for _, s := range layout.slots {
		if err := exportWriteSlotFrame(ctx, w, s, progress); err != nil {
			return err
		}
		if s.rec.Blob != nil && s.rec.Data == nil {
			streamed = append(streamed, s)
		}
	}
	if err := w.writeAt(layout.trailer, layout.size-int64(len(layout.trailer))); err != nil {
		return fmt.Errorf("export: finish tar: %w", err)
	}

	// Large blobs hold the MaxConcurrency transfer slots. A small one is
	// mostly a round trip: small ones go as many at once as the other small
	// requests (metadataLimit), so many small layers do not queue behind 4.
	var small, large []exportSlot
	for _, s := range streamed {
		// With MaxConcurrency 1 every blob waits its turn.
		if s.rec.Blob.Desc.Size <= smallBlobSize && opts.MaxConcurrency > 1 {
			small = append(small, s)
		} else {
			large = append(large, s)
		}
	}
	limitSmall := metadataLimit(opts.MaxConcurrency)
	bufs := &exportBufs{free: make(chan []byte, opts.MaxConcurrency+limitSmall)}
	g, gctx := errgroup.WithContext(ctx)
	launch := func(slots []exportSlot, limit int) error {
		lg, lctx := errgroup.WithContext(gctx)
		lg.SetLimit(limit)
		for _, s := range slots {
			if lctx.Err() != nil {
				break
			}
			b := s.rec.Blob
			lg.Go(func() error {
				if err := exportFetchAt(lctx, w, s.content(), imgs[b.Source].Fetcher, b, bufs, progress); err != nil {
					return fmt.Errorf("export blob %s: %w", b.Desc.Digest, err)
				}
				return nil
			})
		}
		return lg.Wait()
	}
	g.Go(func() error { return launch(large, opts.MaxConcurrency) })
	g.Go(func() error { return launch(small, limitSmall) })
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := f.Seek(base+layout.size, io.SeekStart); err != nil {
		return fmt.Errorf("export: finish tar: %w", err)
	}
	for _, n := range plan.names {
		progress.Naming(n)
	}
	return nil
}

// exportWriteSlotFrame writes what of a slot is known without fetching: its
// header, its padding, and its content when in memory. Streamed blobs are
// reported when their fetch starts.
func exportWriteSlotFrame(ctx context.Context, w *exportOffsetWriter, s exportSlot, progress ExportProgress) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := s.rec.Header.Name
	if s.rec.Blob != nil && s.rec.Data != nil {
		exportReportStart(progress, s.rec.Blob)
	}
	if err := w.writeAt(s.header, s.off); err != nil {
		return fmt.Errorf("export: write %s: %w", name, err)
	}
	if s.rec.Data != nil {
		if err := w.writeAt(s.rec.Data, s.content()); err != nil {
			return fmt.Errorf("export: write %s: %w", name, err)
		}
	}
	if pad := exportPadding(s.rec.Header.Size); pad > 0 {
		if err := w.writeAt(make([]byte, pad), s.content()+s.rec.Header.Size); err != nil {
			return fmt.Errorf("export: write %s: %w", name, err)
		}
	}
	return nil
}

// exportReportStart reports that a blob's entry is being written, as the
// sequential path does at its header.
func exportReportStart(progress ExportProgress, b *exportBlob) {
	switch b.Kind {
	case exportKindManifest:
		progress.Manifest(b.Desc)
	case exportKindConfig:
		progress.Config(b.Desc)
	default:
		progress.Blob(b.Desc, 0)
	}
}

// exportFetchAt fetches blob b and writes it at offset off, checking its
// digest and size on the way; a mismatch fails after at most b.Desc.Size
// bytes were written, all inside the blob's own entry.
func exportFetchAt(ctx context.Context, w *exportOffsetWriter, off int64, f remotes.Fetcher, b *exportBlob, bufs *exportBufs, progress ExportProgress) error {
	exportReportStart(progress, b)
	rc, err := f.Fetch(ctx, b.Desc)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", b.Desc.Digest, err)
	}
	defer rc.Close()
	r := NewVerifyingReader(rc, b.Desc)
	buf := bufs.get()
	defer bufs.put(buf)
	var written int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := w.writeAt(buf[:n], off+written); err != nil {
				return err
			}
			written += int64(n)
			if b.Kind == exportKindLayer {
				progress.Blob(b.Desc, written)
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if written != b.Desc.Size {
		return fmt.Errorf("wrote %d of %d bytes: %w", written, b.Desc.Size, ErrSizeMismatch)
	}
	return nil
}

// exportOffsetWriter writes at offsets relative to where the tar starts.
type exportOffsetWriter struct {
	f    *os.File
	base int64
}

func (w *exportOffsetWriter) writeAt(p []byte, off int64) error {
	_, err := w.f.WriteAt(p, w.base+off)
	return err
}

// exportLockedProgress serializes the calls to an ExportProgress made by
// concurrent fetchers.
type exportLockedProgress struct {
	mu sync.Mutex
	p  ExportProgress
}

// Blob implements ExportProgress.
func (l *exportLockedProgress) Blob(desc ocispec.Descriptor, written int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.Blob(desc, written)
}

// Manifest implements ExportProgress.
func (l *exportLockedProgress) Manifest(desc ocispec.Descriptor) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.Manifest(desc)
}

// Config implements ExportProgress.
func (l *exportLockedProgress) Config(desc ocispec.Descriptor) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.Config(desc)
}

// Naming implements ExportProgress.
func (l *exportLockedProgress) Naming(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.Naming(name)
}

// Warn implements ExportProgress.
func (l *exportLockedProgress) Warn(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.Warn(msg)
}
