package export

// The stream writer: the tar is written in order to any io.Writer, while
// the blobs behind the one being written are fetched ahead into bounded
// pipes.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// writeStream writes the records to w: in-memory ones directly, streamed
// ones from pipes filled ahead by at most opts.MaxConcurrency fetchers.
func writeStream(ctx context.Context, w io.Writer, imgs []image, pl plan, opts Options) error {
	var streamed []*blob
	for _, rec := range pl.records {
		if rec.Blob != nil && rec.Data == nil {
			streamed = append(streamed, rec.Blob)
		}
	}
	shared := make(chan struct{}, streamExtraChunks)
	pipes := make([]*pipe, len(streamed))
	for i := range pipes {
		pipes[i] = newPipe(shared)
	}
	bufs := &chunkBufs{free: make(chan []byte, opts.MaxConcurrency*(chunksAhead+1)+streamExtraChunks)}

	tw := tar.NewWriter(w)
	g, gctx := errgroup.WithContext(ctx)
	// fetchErr is the fetchers' first error: when one fails, the others
	// end with context.Canceled, which the writer may report first.
	var fetchErr error
	g.Go(func() error {
		fetchErr = fillPipes(gctx, imgs, streamed, pipes, bufs, opts.MaxConcurrency)
		return fetchErr
	})
	g.Go(func() error {
		next := 0
		for _, rec := range pl.records {
			var p *pipe
			if rec.Blob != nil && rec.Data == nil {
				p = pipes[next]
				next++
			}
			if err := writeRecord(gctx, tw, rec, p, bufs, opts.Progress); err != nil {
				return err
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		if fetchErr != nil && errors.Is(err, context.Canceled) && ctx.Err() == nil {
			return fetchErr
		}
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export: finish tar: %w", err)
	}
	for _, n := range pl.names {
		opts.Progress.Naming(n)
	}
	return nil
}

// fillPipes launches the fetchers in tar order; SetLimit makes Go wait
// until a fetcher has been drained, so at most limit blobs are ahead.
func fillPipes(ctx context.Context, imgs []image, streamed []*blob, pipes []*pipe, bufs *chunkBufs, limit int) error {
	fg, fctx := errgroup.WithContext(ctx)
	fg.SetLimit(limit)
	for i, b := range streamed {
		if fctx.Err() != nil {
			break
		}
		fg.Go(func() error {
			if err := pipes[i].fill(fctx, imgs[b.Source].Fetcher, b.Desc, bufs); err != nil {
				// Reported as is when it stops the writer too: name the blob.
				return fmt.Errorf("export blob %s: %w", b.Desc.Digest, err)
			}
			return nil
		})
	}
	return fg.Wait()
}

// writeRecord writes one tar entry: its content from memory, or from p.
func writeRecord(ctx context.Context, tw *tar.Writer, rec record, p *pipe, bufs *chunkBufs, progress Progress) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if rec.Blob != nil {
		reportStart(progress, rec.Blob)
	}
	if err := tw.WriteHeader(rec.Header); err != nil {
		return fmt.Errorf("export: write %s: %w", rec.Header.Name, err)
	}
	if p == nil {
		if _, err := tw.Write(rec.Data); err != nil {
			return fmt.Errorf("export: write %s: %w", rec.Header.Name, err)
		}
		return nil
	}
	return p.drain(ctx, tw, rec, bufs, progress)
}

// drain writes the chunks of rec's blob into tw as they arrive.
func (p *pipe) drain(ctx context.Context, tw *tar.Writer, rec record, bufs *chunkBufs, progress Progress) error {
	desc := rec.Blob.Desc
	var written int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c, ok := <-p.chunks:
			if !ok {
				// fill sets err before it closes chunks.
				if p.err != nil {
					return fmt.Errorf("export blob %s: %w", desc.Digest, p.err)
				}
				if written != desc.Size {
					return fmt.Errorf("export blob %s: wrote %d of %d bytes: %w", desc.Digest, written, desc.Size, imagetools.ErrSizeMismatch)
				}
				return nil
			}
			_, err := tw.Write(c.buf)
			p.release(c)
			bufs.put(c.buf)
			if err != nil {
				return fmt.Errorf("export: write %s: %w", rec.Header.Name, err)
			}
			written += int64(len(c.buf))
			if rec.Blob.Kind == kindLayer {
				progress.Blob(desc, written)
			}
		}
	}
}

// pipe carries one blob from its fetcher to the tar writer in bounded
// chunks. Each chunk in the pipe holds a token: one of the pipe's own
// chunksAhead, or one of the tokens shared by all pipes. A pipe can always
// use its own tokens, so the blob being written never waits for the blobs
// behind it; the shared ones let blobs behind it download meanwhile.
type pipe struct {
	chunks chan chunk
	own    chan struct{}
	shared chan struct{}
	err    error // set by fill before chunks is closed
}

// chunk is a piece of a blob and the token it holds.
type chunk struct {
	buf    []byte
	shared bool
}

func newPipe(shared chan struct{}) *pipe {
	return &pipe{
		// Room for every token, so a send never blocks: tokens bound the pipe.
		chunks: make(chan chunk, chunksAhead+cap(shared)),
		own:    make(chan struct{}, chunksAhead),
		shared: shared,
	}
}

// acquire takes a token, the pipe's own first.
func (p *pipe) acquire(ctx context.Context) (shared bool, err error) {
	select {
	case p.own <- struct{}{}:
		return false, nil
	default:
	}
	select {
	case p.own <- struct{}{}:
		return false, nil
	case p.shared <- struct{}{}:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// release gives back the token of a chunk taken from the pipe.
func (p *pipe) release(c chunk) {
	if c.shared {
		<-p.shared
	} else {
		<-p.own
	}
}

// fill fetches desc, verifying digest and size, into the pipe.
func (p *pipe) fill(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor, bufs *chunkBufs) error {
	defer close(p.chunks)
	p.err = p.copyFrom(ctx, f, desc, bufs)
	return p.err
}

func (p *pipe) copyFrom(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor, bufs *chunkBufs) error {
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	r := oci.NewVerifyingReader(rc, desc)
	for {
		shared, err := p.acquire(ctx)
		if err != nil {
			return err
		}
		c := chunk{buf: bufs.get(), shared: shared}
		n, err := io.ReadFull(r, c.buf)
		if n > 0 {
			c.buf = c.buf[:n]
			p.chunks <- c
		} else {
			p.release(c)
			bufs.put(c.buf)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// chunkBufs recycles chunk buffers within one write.
type chunkBufs struct {
	free chan []byte
}

func (b *chunkBufs) get() []byte {
	select {
	case buf := <-b.free:
		return buf[:cap(buf)]
	default:
		return make([]byte, chunkSize)
	}
}

func (b *chunkBufs) put(buf []byte) {
	select {
	case b.free <- buf:
	default:
	}
}
