package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	distref "github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Blob uploads, in the fewest requests the registry protocol allows. A blob
// read from a source is checked first (HEAD: 1 request; nothing more when
// the target has it), and the upload session is opened (POST) as soon as it
// is known missing, while the blob may still wait for a transfer slot. The
// transfer is then one PUT with the digest, its body streamed from the
// source read, which containerd's fetcher sends on the body's first read, so
// source GET and target PUT go out together: 4 requests, and once the blob
// has a slot, one round trip before bytes flow. containerd's pusher makes the
// check, the POST and the PUT in sequence with the slot held. Bytes already
// in memory (configs fetched for their platform) skip the check: they are
// offered to the registry in one POST carrying digest and body (the OCI
// distribution "single POST"); a registry that does not take it, as
// distribution does not, answers 202 with a session, and the PUT follows.

// blobCopyAttempts bounds how often a streamed copy is started over from a
// fresh source read and a fresh upload session: a streamed body cannot be
// replayed, and buffering it whole is what streaming avoids.
const blobCopyAttempts = 3

// singlePostMaxBytes is the largest body offered in a single POST. A
// registry that ignores the body (202) must still read it off the wire to
// keep the connection: Go's server drains up to 256 KiB after a handler.
const singlePostMaxBytes = 64 << 10

// errStartOver marks an upload failure a fresh attempt may cure: a dropped
// connection, a 5xx or 429 answer, a 401 to a streamed request.
var errStartOver = errors.New("upload interrupted")

// uploader puts blobs in registry repositories. It remembers, per
// registry, that a single POST was refused, so that later blobs skip the
// wasted body.
type uploader struct {
	r *Client

	mu           sync.Mutex
	noSinglePost map[string]bool
}

func newUploader(r *Client) *uploader {
	return &uploader{r: r, noSinglePost: map[string]bool{}}
}

// checked is what the check of a blob found: the blob in the repository, or
// an upload session opened for it.
type checked struct {
	present bool
	session *url.URL
}

// check looks for a blob in to's repository (one HEAD) and, when it is
// missing, opens the upload session it will need (one POST) at once, before
// the blob waits for a transfer slot: the transfer then starts with its PUT,
// the source read going out with it, one round trip instead of two. A session
// that expires while the blob waits costs a fresh one (uploadResult starts
// over on 404).
func (u *uploader) check(ctx context.Context, to ref.Location, desc ocispec.Descriptor) (checked, error) {
	ok, err := u.exists(ctx, to, desc)
	if err != nil || ok {
		return checked{present: ok}, err
	}
	session, _, err := u.start(ctx, to, desc, nil, false)
	return checked{session: session}, err
}

// mountBlob asks the registry to link a blob of another repository of the
// same registry into loc's repository. It reports false, with no error, when
// the registry would rather have the blob uploaded, with the upload session
// it opened instead when it did (nil otherwise).
func (r *Client) mountBlob(ctx context.Context, loc ref.Location, desc ocispec.Descriptor, from ref.Location) (bool, *url.URL, error) {
	fromPath := distref.Path(from.Name)
	resp, err := r.do(ctx, apiRequest{method: http.MethodPost, loc: loc, path: "blobs/uploads/", push: true, from: fromPath,
		query: url.Values{"mount": {desc.Digest.String()}, "from": {fromPath}}})
	if err != nil {
		return false, nil, fmt.Errorf("mount %s from %s into %s: %w", desc.Digest, from.Repository(), loc.Repository(), err)
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
		return true, nil, nil
	case http.StatusAccepted:
		// The registry opened an upload session instead: the caller uploads
		// there (or, without a usable ref.Location, opens its own).
		session, _ := resp.Location()
		return false, session, nil
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		// Refused to read the source: the caller uploads.
		return false, nil, nil
	}
	return false, nil, statusError(fmt.Sprintf("mount %s from %s into %s", desc.Digest, from.Repository(), loc.Repository()), resp)
}

// exists reports whether to's repository holds the blob (one HEAD).
func (u *uploader) exists(ctx context.Context, to ref.Location, desc ocispec.Descriptor) (bool, error) {
	resp, err := u.r.do(ctx, apiRequest{method: http.MethodHead, loc: to, path: "blobs/" + desc.Digest.String(), push: true})
	if err != nil {
		return false, fmt.Errorf("check %s in %s: %w", desc.Digest, to.Repository(), err)
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, statusError(fmt.Sprintf("check %s in %s", desc.Digest, to.Repository()), resp)
}

// putBytes uploads a blob held in memory: in one single POST where the
// registry takes it, else in the session it answers with (or session, when
// one is open already) by one PUT.
func (u *uploader) putBytes(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte, session *url.URL) error {
	if session == nil {
		single := len(data) <= singlePostMaxBytes && !u.singlePostRefused(to.Host())
		var err error
		var done bool
		if session, done, err = u.start(ctx, to, desc, data, single); err != nil || done {
			return err
		}
	}
	resp, err := u.r.do(ctx, apiRequest{method: http.MethodPut, loc: to, url: withDigest(session, desc.Digest), push: true,
		header: http.Header{"Content-Type": {"application/octet-stream"}}, body: data})
	return uploadResult(resp, err, to, desc)
}

// start opens an upload session; with single, it offers the whole body in
// the same request and reports done when the registry stored it.
func (u *uploader) start(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte, single bool) (*url.URL, bool, error) {
	req := apiRequest{method: http.MethodPost, loc: to, path: "blobs/uploads/", push: true}
	if single {
		req.query = url.Values{"digest": {desc.Digest.String()}}
		req.header = http.Header{"Content-Type": {"application/octet-stream"}}
		req.body = data
	}
	what := fmt.Sprintf("upload %s to %s", desc.Digest, to.Repository())
	resp, err := u.r.do(ctx, req)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", what, err)
	}
	defer drain(resp)
	switch {
	case resp.StatusCode == http.StatusCreated && single:
		return nil, true, nil
	case resp.StatusCode == http.StatusAccepted:
		if single {
			u.refuseSinglePost(to.Host())
		}
		session, err := resp.Location()
		if err != nil {
			return nil, false, fmt.Errorf("%s: the registry opened no session: %w", what, err)
		}
		return session, false, nil
	}
	return nil, false, statusError(what, resp)
}

func (u *uploader) singlePostRefused(host string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.noSinglePost[host]
}

func (u *uploader) refuseSinglePost(host string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.noSinglePost[host] = true
}

// copyStream copies a blob from its origin into to's repository without
// holding it whole, starting over (a new session, a new source read) when an
// attempt fails in a way another may cure.
func (u *uploader) copyStream(ctx context.Context, b place.Blob, to ref.Location, session *url.URL) error {
	for attempt := 1; ; attempt++ {
		err := u.copyOnce(ctx, b, to, session)
		if err == nil || attempt == blobCopyAttempts || !errors.Is(err, errStartOver) || ctx.Err() != nil {
			return err
		}
		b.Logf("copying %s again (attempt %d/%d): %v", b.Desc.Digest, attempt+1, blobCopyAttempts, err)
		session = nil
		if err := sleepContext(ctx, time.Duration(attempt)*defaultBaseDelay); err != nil {
			return err
		}
	}
}

// copyOnce streams a blob from its source into an upload session, opening
// the session first when none is open, and checks size and digest on the
// way. The source read is lazy: its GET goes out with the PUT's body.
func (u *uploader) copyOnce(ctx context.Context, b place.Blob, to ref.Location, session *url.URL) error {
	var src io.ReadCloser
	var eg errgroup.Group // both run to the end: each is one request
	eg.Go(func() error {
		var err error
		src, err = b.Open(ctx)
		if err != nil {
			return fmt.Errorf("fetch %s from %s: %w", b.Desc.Digest, b.From, err)
		}
		return nil
	})
	if session == nil {
		eg.Go(func() error {
			var err error
			session, _, err = u.start(ctx, to, b.Desc, nil, false)
			return err
		})
	}
	err := eg.Wait()
	if src != nil {
		defer src.Close()
	}
	if err != nil {
		return markStartOver(err)
	}
	in := &sourceReader{r: oci.NewVerifyingReader(src, b.Desc)}
	body, done := b.Counted(in)
	defer done()
	resp, err := u.r.do(ctx, apiRequest{method: http.MethodPut, loc: to, url: withDigest(session, b.Desc.Digest), push: true,
		header: http.Header{"Content-Type": {"application/octet-stream"}}, stream: body, size: b.Desc.Size})
	if in.err != nil {
		// The source broke or lied; the upload failed because of it.
		drainIf(resp)
		return markStartOver(fmt.Errorf("copy %s from %s to %s: %w", b.Desc.Digest, b.From, to.Repository(), in.err))
	}
	return uploadResult(resp, err, to, b.Desc)
}

// sourceReader remembers the first error of the source side of a copy, which
// net/http would otherwise report as a broken request.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// uploadResult turns the answer to a blob PUT into an error, nil on 201.
func uploadResult(resp *http.Response, err error, to ref.Location, desc ocispec.Descriptor) error {
	what := fmt.Sprintf("upload %s to %s", desc.Digest, to.Repository())
	if err != nil {
		return markStartOver(fmt.Errorf("%s: %w", what, err))
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusNoContent:
		return nil
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout,
		// An upload session the registry no longer knows (it expired):
		// a fresh one may do.
		http.StatusNotFound:
		return fmt.Errorf("%w: %w", statusError(what, resp), errStartOver)
	}
	return statusError(what, resp)
}

// markStartOver adds errStartOver to a transient failure: a dropped or
// stalled connection, a body cut short. A digest or size mismatch, a
// refusal, a retry budget spent, a cancel are final.
func markStartOver(err error) error {
	switch {
	case errors.Is(err, errStartOver), errors.Is(err, imagetools.ErrDigestMismatch), errors.Is(err, imagetools.ErrSizeMismatch),
		errors.Is(err, imagetools.ErrRetriesExhausted):
		return err
	case errors.Is(err, imagetools.ErrStalled), isTransientNetError(err):
		return fmt.Errorf("%w: %w", err, errStartOver)
	}
	return err
}

// withDigest returns the session URL with the digest that closes it.
func withDigest(session *url.URL, d digest.Digest) *url.URL {
	u := *session
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	return &u
}

func drainIf(resp *http.Response) {
	if resp != nil {
		drain(resp)
	}
}
