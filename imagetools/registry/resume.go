package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/containerd/containerd/v2/core/remotes"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// defaultMaxResumes is how many times a cut download is resumed by default.
const defaultMaxResumes = 5

// ResumeOptions configure newResumingFetcher. Zero values take the defaults.
type ResumeOptions struct {
	// maxResumes bounds how many times one fetch is resumed (default 5).
	maxResumes int
	// OnResume is told about each resume before it is made, for progress:
	// the blob, the offset it restarts from and the error that cut it.
	OnResume func(ctx context.Context, desc ocispec.Descriptor, offset int64, cause error)
}

// newResumingFetcher wraps a remotes.Fetcher: when the body of a fetch fails
// mid-way (a reset, an EOF before desc.Size, a stall), it fetches again from
// the offset reached and carries on, up to maxResumes times. It stops early
// when a resumed request fails before delivering a byte: the request itself
// was already retried by the retry transport. The digest of the whole blob is
// still the caller's to check.
//
// The re-fetch uses what containerd offers rather than a Range request of our
// own: the reader of containerd's docker fetcher (httpReadSeeker) is an
// io.Seeker that, after Seek(offset), opens the blob with "Range: bytes=N-"
// and copes with registries that ignore Range (it discards up to the offset).
// A fetcher whose readers cannot seek gets no resume.
func newResumingFetcher(f remotes.Fetcher, opts ResumeOptions) remotes.Fetcher {
	if opts.maxResumes <= 0 {
		opts.maxResumes = defaultMaxResumes
	}
	return &resumingFetcher{f: f, opts: opts}
}

type resumingFetcher struct {
	f    remotes.Fetcher
	opts ResumeOptions
}

// Fetch implements remotes.Fetcher.
func (r *resumingFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := r.f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	if _, ok := rc.(io.Seeker); !ok {
		return rc, nil
	}
	return &resumingReader{ctx: ctx, fetcher: r, desc: desc, rc: rc}, nil
}

// resumingReader reads a blob, re-opening it at the offset reached when the
// body breaks.
type resumingReader struct {
	ctx     context.Context
	fetcher *resumingFetcher
	desc    ocispec.Descriptor

	rc         io.ReadCloser
	offset     int64
	resumes    int
	progressed bool // a byte arrived since the last (re)open
	err        error
}

func (r *resumingReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for {
		n, err := r.rc.Read(p)
		r.offset += int64(n)
		if n > 0 {
			r.progressed = true
		}
		if err == nil {
			return n, nil
		}
		if serr := r.sizeError(err); serr != nil {
			r.err = serr
			return n, serr
		}
		if err == io.EOF {
			if r.desc.Size <= 0 || r.offset >= r.desc.Size {
				return n, err
			}
			err = fmt.Errorf("%w: the body ended at byte %d of %d", io.ErrUnexpectedEOF, r.offset, r.desc.Size)
		}
		if rerr := r.resume(err); rerr != nil {
			r.err = rerr
			return n, rerr
		}
		if n > 0 {
			return n, nil
		}
	}
}

// resume replaces the broken body with a fresh fetch positioned at the
// offset reached, or says why it cannot.
func (r *resumingReader) resume(cause error) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	if errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	if !resumable(cause) || r.resumes >= r.fetcher.opts.maxResumes || (r.resumes > 0 && !r.progressed) {
		return r.giveUp(cause)
	}
	_ = r.rc.Close()
	r.rc = io.NopCloser(errReader{cause})
	if r.fetcher.opts.OnResume != nil {
		r.fetcher.opts.OnResume(r.ctx, r.desc, r.offset, cause)
	}
	rc, err := r.fetcher.f.Fetch(r.ctx, r.desc)
	if err != nil {
		return r.giveUp(fmt.Errorf("%w; resuming: %w", cause, err))
	}
	s, ok := rc.(io.Seeker)
	if !ok {
		_ = rc.Close()
		return r.giveUp(cause)
	}
	if _, err := s.Seek(r.offset, io.SeekStart); err != nil {
		_ = rc.Close()
		return r.giveUp(fmt.Errorf("%w; resuming: %w", cause, err))
	}
	r.rc = rc
	r.resumes++
	r.progressed = false
	return nil
}

// resumable reports whether an error broke a body (a reset, an early EOF, a
// timeout, a stall) rather than a request: a request that failed was already
// retried by the retry transport, or failed for good (404, 401, a 4xx).
func resumable(err error) bool {
	if errors.Is(err, imagetools.ErrRetriesExhausted) {
		return false
	}
	return errors.Is(err, imagetools.ErrStalled) || isTransientNetError(err)
}

// sizeError tells a blob whose size is not its descriptor's from a cut
// transfer: containerd's reader refuses a byte past desc.Size, and a blob
// that ends early ends cleanly, so its resume, at the blob's real end, is
// answered 416. Either is final. The callers name the blob.
func (r *resumingReader) sizeError(err error) error {
	var status remoteerrors.ErrUnexpectedStatus
	switch {
	case errdefs.IsFailedPrecondition(err):
		return fmt.Errorf("the registry sent more than the %d bytes the descriptor gives: %w", r.desc.Size, imagetools.ErrSizeMismatch)
	case r.resumes > 0 && errors.As(err, &status) && status.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("the registry's blob ends at byte %d, the descriptor gives %d bytes: %w", r.offset, r.desc.Size, imagetools.ErrSizeMismatch)
	}
	return nil
}

func (r *resumingReader) giveUp(cause error) error {
	if r.resumes == 0 {
		return cause
	}
	return fmt.Errorf("%w (at byte %d of %d, after %d resume attempts)", cause, r.offset, r.desc.Size, r.resumes)
}

func (r *resumingReader) Close() error { return r.rc.Close() }

// errReader stands in for a closed body until a resume succeeds.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
