package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools"
)

// Defaults of RetryOptions.
const (
	defaultMaxAttempts   = 5
	defaultBaseDelay     = 200 * time.Millisecond
	defaultMaxDelay      = 10 * time.Second
	defaultMaxRetryAfter = 30 * time.Second
	defaultStallTimeout  = 60 * time.Second
)

// RetryOptions configure newRetryTransport. Zero values take the defaults.
type RetryOptions struct {
	// maxAttempts is the number of attempts per request, the first included
	// (default 5).
	maxAttempts int
	// baseDelay and maxDelay bound the exponential backoff with full jitter:
	// before attempt n+1 the transport waits rand*min(maxDelay, baseDelay*2^(n-1))
	// (defaults 200ms and 10s).
	baseDelay, maxDelay time.Duration
	// maxRetryAfter caps the wait a server asks for in Retry-After (seconds
	// or an HTTP date), default 30s.
	maxRetryAfter time.Duration
	// StallTimeout fails a response body read that delivers no byte for this
	// long (default 60s). It is not a total timeout: a slow transfer that
	// keeps moving is never cut. Negative turns the watchdog off.
	StallTimeout time.Duration
	// OnRetry is told about each retry before the wait, for progress output.
	// attempt is the number of the attempt about to be made (2..max).
	OnRetry func(req *http.Request, attempt, max int, reason string)
	// sleep waits d or until ctx ends; tests inject it. Default: a timer.
	sleep func(ctx context.Context, d time.Duration) error
	// rand returns a number in [0,1) for the jitter; tests inject it.
	rand func() float64
}

func (o RetryOptions) withDefaults() RetryOptions {
	if o.maxAttempts <= 0 {
		o.maxAttempts = defaultMaxAttempts
	}
	if o.baseDelay <= 0 {
		o.baseDelay = defaultBaseDelay
	}
	if o.maxDelay <= 0 {
		o.maxDelay = defaultMaxDelay
	}
	if o.maxRetryAfter <= 0 {
		o.maxRetryAfter = defaultMaxRetryAfter
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = defaultStallTimeout
	}
	if o.sleep == nil {
		o.sleep = sleepContext
	}
	if o.rand == nil {
		o.rand = rand.Float64
	}
	return o
}

// newRetryTransport returns a round tripper that retries transient registry
// failures with backoff, watches response bodies for stalls, and never sends
// Authorization to another origin on a redirect.
//
// Retried, for replayable requests only (GET and HEAD, or a body that can be
// re-read through GetBody): 408, 429 (honouring Retry-After, capped), 500,
// 502, 503, 504, and connection resets, EOFs and timeouts before the response
// arrives. Other 4xx answers and other errors are returned at once.
//
// containerd's resolver, which sits above this transport, retries too: 408
// and 429 at once with no backoff, 500/503/504 once, EOF and timeouts with a
// 50ms pause, all within 5 attempts per request. So that the two layers do not
// multiply (5 x 5), this transport answers with an error matching
// imagetools.ErrRetriesExhausted when its own attempts are spent, instead of the last
// retryable response or transient error: containerd treats such an error as
// final. A request therefore makes at most maxAttempts attempts for retryable
// failures; containerd's own retries remain only for what this layer passes up
// (401 challenges, a HEAD refused with 405).
func newRetryTransport(base http.RoundTripper, opts RetryOptions) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &retryTransport{base: base, opts: opts.withDefaults()}
}

type retryTransport struct {
	base http.RoundTripper
	opts RetryOptions
}

// RoundTrip implements http.RoundTripper.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = dropCrossOriginAuth(req)
	ctx := req.Context()
	replayable := isReplayable(req)
	max := t.opts.maxAttempts
	if !replayable {
		max = 1
	}
	for attempt := 1; ; attempt++ {
		try, err := attemptRequest(req, attempt)
		if err != nil {
			return nil, err
		}
		resp, err := t.base.RoundTrip(try)
		if ctx.Err() != nil {
			closeResponse(resp)
			return nil, ctx.Err()
		}
		reason, wait, retry := t.classify(resp, err)
		if !retry {
			if err != nil {
				return nil, err
			}
			return t.watch(resp), nil
		}
		if attempt >= max {
			if !replayable {
				// Not ours to retry: hand the answer up unchanged.
				return t.watch(resp), err
			}
			exhausted := &retriesExhaustedError{attempts: attempt, reason: reason, cause: err}
			if resp != nil {
				exhausted.status = newError(resp)
				if d := exhausted.status.detail(); d != "" {
					exhausted.reason += ": " + d
				}
			}
			closeResponse(resp)
			return nil, exhausted
		}
		closeResponse(resp)
		if t.opts.OnRetry != nil {
			t.opts.OnRetry(req, attempt+1, max, reason)
		}
		if wait < 0 {
			wait = t.backoff(attempt)
		}
		if err := t.opts.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// attemptRequest returns the request for attempt n: the original the first
// time, a clone with a fresh body afterwards.
func attemptRequest(req *http.Request, n int) (*http.Request, error) {
	if n == 1 {
		return req, nil
	}
	try := req.Clone(req.Context())
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("replay %s %s: %w", req.Method, redactURL(req.URL), err)
		}
		try.Body = body
	}
	return try, nil
}

// classify says whether an outcome is retried, why, and how long the server
// asked to wait (-1 when it did not say).
func (t *retryTransport) classify(resp *http.Response, err error) (reason string, wait time.Duration, retry bool) {
	if err != nil {
		if isTransientNetError(err) {
			return err.Error(), -1, true
		}
		return "", -1, false
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		return "", -1, false
	}
	reason = resp.Status
	if reason == "" {
		reason = strconv.Itoa(resp.StatusCode)
	}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		if d > t.opts.maxRetryAfter {
			d = t.opts.maxRetryAfter
		}
		return fmt.Sprintf("%s (Retry-After: %s)", reason, d), d, true
	}
	return reason, -1, true
}

// backoff is the full-jitter exponential delay after attempt n.
func (t *retryTransport) backoff(n int) time.Duration {
	ceiling := t.opts.baseDelay
	for i := 1; i < n && ceiling < t.opts.maxDelay; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, t.opts.maxDelay)
	return time.Duration(t.opts.rand() * float64(ceiling))
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	when, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(when.Sub(now), 0), true
}

// isReplayable reports whether a request may be sent again: it has no body
// (GET and HEAD always qualify) or its body can be re-read through GetBody.
func isReplayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// isTransientNetError reports whether a transport error is worth another
// attempt: resets, EOFs and timeouts. Refused connections, DNS and TLS errors
// are not: they do not heal in seconds.
func isTransientNetError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retriesExhaustedError is returned when every attempt failed. It wraps
// neither io.EOF nor a timeout on purpose: containerd would retry those again.
// When the last attempt got an error status, it wraps that answer's *Error.
type retriesExhaustedError struct {
	attempts int
	reason   string
	cause    error
	status   *Error
}

func (e *retriesExhaustedError) Error() string {
	return fmt.Sprintf("gave up after %d attempts: %s", e.attempts, e.reason)
}

// Is makes errors.Is(err, imagetools.ErrRetriesExhausted) true, and nothing else.
func (e *retriesExhaustedError) Is(target error) bool {
	return target == imagetools.ErrRetriesExhausted
}

// Unwrap returns the *Error of the last answer, nil when none came.
func (e *retriesExhaustedError) Unwrap() error {
	if e.status == nil {
		return nil
	}
	return e.status
}

// Timeout is false so that containerd's transient-error check stops here.
func (e *retriesExhaustedError) Timeout() bool { return false }

// closeResponse drains a little of a discarded body so the connection can be
// reused, then closes it.
func closeResponse(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
}

func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// redactURL drops the query (it may hold signatures) and any user info.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// RetryMessage formats a retry for people: "retrying GET https://host/v2/...
// (attempt 2/5): 503 Service Unavailable". The query is left out.
func RetryMessage(req *http.Request, attempt, max int, reason string) string {
	return fmt.Sprintf("retrying %s %s (attempt %d/%d): %s", req.Method, redactURL(req.URL), attempt, max, reason)
}

// dropCrossOriginAuth removes Authorization from a request that follows a
// redirect to another origin (scheme, host or port). Go's client keeps the
// header when only the port differs, and containerd authorizes redirects
// again; a registry that sends blobs elsewhere (object storage, a CDN) must
// never see the registry's credentials.
func dropCrossOriginAuth(req *http.Request) *http.Request {
	if req.Response == nil || req.Response.Request == nil || req.Header.Get("Authorization") == "" {
		return req
	}
	if sameOrigin(originOf(req), req.URL) {
		return req
	}
	out := req.Clone(req.Context())
	out.Header.Del("Authorization")
	return out
}

// originOf returns the URL of the first request of a redirect chain.
func originOf(req *http.Request) *url.URL {
	for req.Response != nil && req.Response.Request != nil {
		req = req.Response.Request
	}
	return req.URL
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "http") {
		return "80"
	}
	return "443"
}

// watch wraps a response body in the stall watchdog.
func (t *retryTransport) watch(resp *http.Response) *http.Response {
	if resp == nil || resp.Body == nil || resp.Body == http.NoBody || t.opts.StallTimeout < 0 {
		return resp
	}
	resp.Body = &stallReader{rc: resp.Body, timeout: t.opts.StallTimeout}
	return resp
}

// stallReader fails a Read that blocks longer than timeout: a timer armed for
// the duration of each Read closes the body, which unblocks the Read. Time
// the caller spends between Reads does not count.
type stallReader struct {
	rc      io.ReadCloser
	timeout time.Duration

	mu      sync.Mutex
	stalled bool
}

func (s *stallReader) Read(p []byte) (int, error) {
	timer := time.AfterFunc(s.timeout, s.stall)
	n, err := s.rc.Read(p)
	timer.Stop()
	s.mu.Lock()
	stalled := s.stalled
	s.mu.Unlock()
	if stalled && err != nil {
		return n, fmt.Errorf("%w: no data for %s", imagetools.ErrStalled, s.timeout)
	}
	return n, err
}

func (s *stallReader) stall() {
	s.mu.Lock()
	s.stalled = true
	s.mu.Unlock()
	_ = s.rc.Close()
}

func (s *stallReader) Close() error { return s.rc.Close() }
