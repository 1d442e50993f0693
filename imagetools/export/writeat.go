package export

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
	"slices"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// tarBlock is the tar block size: every entry's content is padded to it.
const tarBlock = 512

// slot is where one record lies in the tar.
type slot struct {
	rec record
	// header is the record's header exactly as tar.Writer writes it (one
	// block, or more when it needs PAX records).
	header []byte
	// off is the offset of header; the content follows it, then padding.
	off int64
}

// content returns the offset of the slot's content.
func (s slot) content() int64 { return s.off + int64(len(s.header)) }

// tarOffsets is the whole tar, offsets included, before a byte is
// written.
type tarOffsets struct {
	slots   []slot
	trailer []byte
	size    int64
}

// offsetsOf places records one after the other as tar.Writer does:
// each header is rendered by tar.Writer itself (so the format it picks, USTAR
// or PAX, is the one the stream writer writes), its content padded to a
// block, and tar.Writer's own trailer at the end.
func offsetsOf(records []record) (tarOffsets, error) {
	var l tarOffsets
	for _, rec := range records {
		var buf bytes.Buffer
		if err := tar.NewWriter(&buf).WriteHeader(rec.Header); err != nil {
			return l, fmt.Errorf("export: header of %s: %w", rec.Header.Name, err)
		}
		l.slots = append(l.slots, slot{rec: rec, header: buf.Bytes(), off: l.size})
		l.size += int64(buf.Len()) + rec.Header.Size + padding(rec.Header.Size)
	}
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).Close(); err != nil {
		return l, fmt.Errorf("export: tar trailer: %w", err)
	}
	l.trailer = buf.Bytes()
	l.size += int64(len(l.trailer))
	return l, nil
}

// readable reports whether f can be read back: a one-byte read at 0 fails
// with EBADF (on Windows, access denied) on a write-only file, and gives
// io.EOF on an empty one.
func readable(f *os.File) bool {
	_, err := f.ReadAt(make([]byte, 1), 0)
	return err == nil || errors.Is(err, io.EOF)
}

// padding returns the zero bytes that follow content of size bytes.
func padding(size int64) int64 {
	return -size & (tarBlock - 1)
}

// fileAt returns w as a file that writeImages may write at offsets, and the
// offset where the tar starts: a regular file, not opened for appending
// (WriteAt refuses those). A pipe, a terminal or any other writer gives false.
func fileAt(w io.Writer) (*os.File, int64, bool) {
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

// writeFileAt writes the tar into f from offset base: headers and
// in-memory entries first, then the streamed blobs, up to opts.MaxConcurrency
// at once, each written at its offset while its digest and size are checked.
// The bytes are those the stream writer writes; on success f's offset is at
// the end of the tar, as if it had been written in order.
func writeFileAt(ctx context.Context, f *os.File, base int64, imgs []image, pl plan, opts Options) error {
	offs, err := offsetsOf(pl.records)
	if err != nil {
		return err
	}
	if err := preallocate(f, base, offs.size); err != nil {
		return err
	}
	// Blobs report from several goroutines; the lock keeps Progress's
	// promise of one call at a time.
	progress := &lockedProgress{p: opts.Progress}
	w := &offsetWriter{f: f, base: base, writeback: func(off, n int64) { startWriteback(f, base+off, n) }}
	var streamed []slot
	for _, s := range offs.slots {
		if err := writeSlotFrame(ctx, w, s, progress); err != nil {
			return err
		}
		if s.rec.Blob != nil && s.rec.Data == nil {
			streamed = append(streamed, s)
		}
	}
	if err := w.writeAt(offs.trailer, offs.size-int64(len(offs.trailer))); err != nil {
		return fmt.Errorf("export: finish tar: %w", err)
	}
	if err := fetchSlots(ctx, w, imgs, streamed, opts.MaxConcurrency, progress); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkWrittenConfigs(w, offs.slots, pl.unchecked); err != nil {
		return err
	}
	if _, err := f.Seek(base+offs.size, io.SeekStart); err != nil {
		return fmt.Errorf("export: finish tar: %w", err)
	}
	for _, n := range pl.names {
		progress.Naming(n)
	}
	return nil
}

// fetchSlots fetches the streamed blobs into their slots. Large blobs hold
// the maxConcurrency transfer slots. A small one is mostly a round trip:
// small ones go as many at once as the other small requests
// (oci.MetadataLimit), so many small layers do not queue behind a few.
func fetchSlots(ctx context.Context, w *offsetWriter, imgs []image, streamed []slot, maxConcurrency int, progress Progress) error {
	var small, large []slot
	for _, s := range streamed {
		// With maxConcurrency 1 every blob waits its turn.
		if s.rec.Blob.Desc.Size <= oci.SmallTransferSize && maxConcurrency > 1 {
			small = append(small, s)
		} else {
			large = append(large, s)
		}
	}
	limitSmall := oci.MetadataLimit(maxConcurrency)
	bufs := &chunkBufs{free: make(chan []byte, maxConcurrency+limitSmall)}
	g, gctx := errgroup.WithContext(ctx)
	launch := func(slots []slot, limit int) error {
		lg, lctx := errgroup.WithContext(gctx)
		lg.SetLimit(limit)
		for _, s := range slots {
			if lctx.Err() != nil {
				break
			}
			b := s.rec.Blob
			lg.Go(func() error {
				if err := fetchAt(lctx, w, s.content(), imgs[b.Source].Fetcher, b, bufs, progress); err != nil {
					return fmt.Errorf("export blob %s: %w", b.Desc.Digest, err)
				}
				return nil
			})
		}
		return lg.Wait()
	}
	g.Go(func() error { return launch(large, maxConcurrency) })
	g.Go(func() error { return launch(small, limitSmall) })
	return g.Wait()
}

// writeSlotFrame writes what of a slot is known without fetching: its
// header, its padding, and its content when in memory. Streamed blobs are
// reported when their fetch starts.
func writeSlotFrame(ctx context.Context, w *offsetWriter, s slot, progress Progress) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := s.rec.Header.Name
	if s.rec.Blob != nil && s.rec.Data != nil {
		reportStart(progress, s.rec.Blob)
	}
	if err := w.writeAt(s.header, s.off); err != nil {
		return fmt.Errorf("export: write %s: %w", name, err)
	}
	if s.rec.Data != nil {
		if err := w.writeAt(s.rec.Data, s.content()); err != nil {
			return fmt.Errorf("export: write %s: %w", name, err)
		}
	}
	if pad := padding(s.rec.Header.Size); pad > 0 {
		if err := w.writeAt(make([]byte, pad), s.content()+s.rec.Header.Size); err != nil {
			return fmt.Errorf("export: write %s: %w", name, err)
		}
	}
	return nil
}

// reportStart reports that a blob's entry is being written, as the
// stream writer does at its header.
func reportStart(progress Progress, b *blob) {
	switch b.Kind {
	case kindManifest:
		progress.Manifest(b.Desc)
	case kindConfig:
		progress.Config(b.Desc)
	default:
		progress.Blob(b.Desc, 0)
	}
}

// fetchAt fetches blob b and writes it at offset off, checking its
// digest and size on the way; a mismatch fails after at most b.Desc.Size
// bytes were written, all inside the blob's own entry.
func fetchAt(ctx context.Context, w *offsetWriter, off int64, f remotes.Fetcher, b *blob, bufs *chunkBufs, progress Progress) error {
	reportStart(progress, b)
	rc, err := f.Fetch(ctx, b.Desc)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", b.Desc.Digest, err)
	}
	defer rc.Close()
	r := oci.NewVerifyingReader(rc, b.Desc)
	buf := bufs.get()
	defer bufs.put(buf)
	var written, flushed int64
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
			if b.Kind == kindLayer {
				progress.Blob(b.Desc, written)
			}
			if written-flushed >= writebackStep {
				w.writeback(off+flushed, written-flushed)
				flushed = written
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
		return fmt.Errorf("wrote %d of %d bytes: %w", written, b.Desc.Size, imagetools.ErrSizeMismatch)
	}
	if written > flushed {
		w.writeback(off+flushed, written-flushed)
	}
	return nil
}

// writebackStep is how many bytes of a blob are written before their
// writeback to the disk is started: few calls, and the fsync before the
// rename finds at most this much of each blob left to write.
const writebackStep = 8 << 20

// offsetWriter writes at offsets relative to where the tar starts.
type offsetWriter struct {
	f    *os.File
	base int64
	// writeback starts writing n bytes from off (relative to base) to the
	// disk, without waiting (startWriteback); called on blob content that
	// is complete, so the final fsync has little left.
	writeback func(off, n int64)
}

func (w *offsetWriter) writeAt(p []byte, off int64) error {
	_, err := w.f.WriteAt(p, w.base+off)
	return err
}

// lockedProgress serializes the calls to a Progress made by
// concurrent fetchers.
type lockedProgress struct {
	mu sync.Mutex
	p  Progress
}

// Blob implements Progress.
func (l *lockedProgress) Blob(desc ocispec.Descriptor, written int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.Blob(desc, written)
}

// Manifest implements Progress.
func (l *lockedProgress) Manifest(desc ocispec.Descriptor) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.Manifest(desc)
}

// Config implements Progress.
func (l *lockedProgress) Config(desc ocispec.Descriptor) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.Config(desc)
}

// Naming implements Progress.
func (l *lockedProgress) Naming(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.p.Naming(name)
}

// checkWrittenConfigs checks, as manifest.json's images require, the
// configs fetched with the layers: each is read back from where it was
// written, its digest already verified on the way in.
func checkWrittenConfigs(w *offsetWriter, slots []slot, imgs []dockerImage) error {
	for _, img := range imgs {
		i := slices.IndexFunc(slots, func(s slot) bool { return s.rec.Blob != nil && s.rec.Blob.Desc.Digest == img.config.Digest })
		if i < 0 {
			return fmt.Errorf("export: image %s: config %s is not in the tar", img.name, img.config.Digest)
		}
		if err := oci.CheckReadable(img.config); err != nil {
			return fmt.Errorf("export: image %s: config: %w", img.name, err)
		}
		img.configData = make([]byte, img.config.Size)
		if _, err := w.f.ReadAt(img.configData, w.base+slots[i].content()); err != nil {
			return fmt.Errorf("export: image %s: read back config %s: %w", img.name, img.config.Digest, err)
		}
		if _, err := checkConfig(img); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	return nil
}
