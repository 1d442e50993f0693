// Package faultproxy is an HTTP reverse proxy for tests that stands in front
// of a plain-HTTP registry and breaks chosen requests: error statuses, bodies
// cut, truncated, stalled or corrupted, redirects to another host, wrong
// digest headers. Everything else is passed through unchanged.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// FaultKind is what the proxy does to a matching request.
type FaultKind int

const (
	// None marks a request passed through untouched (in the log).
	None FaultKind = iota
	// Status429 answers 429 Too Many Requests without Retry-After.
	Status429
	// Status429RetryAfter answers 429 with Retry-After: Fault.RetryAfter (default "1").
	Status429RetryAfter
	// Status500 answers 500 Internal Server Error.
	Status500
	// Status502 answers 502 Bad Gateway.
	Status502
	// Status503 answers 503 Service Unavailable.
	Status503
	// Status504 answers 504 Gateway Timeout.
	Status504
	// ResetMidBody sends the headers and half the body, then a TCP reset.
	ResetMidBody
	// TruncateBody sends half the body as a complete answer (Content-Length
	// says half): the HTTP layer sees nothing wrong, the blob is short.
	TruncateBody
	// Stall sends the headers and half the body, then nothing for
	// Fault.StallFor (0: until the client goes away), then the rest.
	Stall
	// CorruptBody sends the whole body with its middle byte flipped.
	CorruptBody
	// RedirectOtherHost answers a GET with 307 to a second listener (another
	// port), which serves the same bytes and records whether Authorization
	// arrived. The proxy fetches the bytes upstream with the client's own
	// headers, as a registry signs a URL for its object storage.
	RedirectOtherHost
	// WrongDigestHeader passes the answer on with a Docker-Content-Digest
	// header naming other content.
	WrongDigestHeader
	// Status403 answers 403 Forbidden (an immutable tag, a denied write).
	Status403
	// Status405 answers 405 Method Not Allowed (deletes disabled).
	Status405
	// OversizeBody pads the body with spaces to Fault.Size bytes (still the
	// same JSON) and names the padded bytes in Docker-Content-Digest: an
	// honest registry with a document over a client's limit.
	OversizeBody
)

// String returns the kind's name, for test names.
func (k FaultKind) String() string {
	names := [...]string{"None", "Status429", "Status429RetryAfter", "Status500", "Status502", "Status503",
		"Status504", "ResetMidBody", "TruncateBody", "Stall", "CorruptBody", "RedirectOtherHost", "WrongDigestHeader", "Status403", "Status405", "OversizeBody"}
	if k >= 0 && int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// status is the answer of a status kind, 0 for the others.
func (k FaultKind) status() int {
	switch k {
	case Status429, Status429RetryAfter:
		return http.StatusTooManyRequests
	case Status500:
		return http.StatusInternalServerError
	case Status502:
		return http.StatusBadGateway
	case Status503:
		return http.StatusServiceUnavailable
	case Status504:
		return http.StatusGatewayTimeout
	case Status403:
		return http.StatusForbidden
	case Status405:
		return http.StatusMethodNotAllowed
	}
	return 0
}

// WrongDigest is the digest WrongDigestHeader puts in Docker-Content-Digest.
func WrongDigest() digest.Digest { return digest.FromString("faultproxy: not the content") }

// Fault selects requests and says what to do to them. The first fault that
// matches a request and has hits left applies.
type Fault struct {
	// Method matches the request method; "" matches any.
	Method string
	// PathContains matches requests whose path contains it; "" matches any.
	PathContains string
	// Times is how many matching requests to hit; 0 means all.
	Times int
	Kind  FaultKind
	// RetryAfter is the Retry-After value of Status429RetryAfter (default "1").
	RetryAfter string
	// StallFor is how long Stall stays silent; 0 waits until the client leaves.
	StallFor time.Duration
	// Size is the body size OversizeBody pads to.
	Size int
	// Skip lets the first Skip matching requests through untouched.
	Skip int
	// Before, when set, runs before a hit request is answered (with Kind
	// None, the request then passes through): a test changes the registry
	// at an exact point of a run, with no timing involved.
	Before func()
	// After, when set, runs when the answer to a hit request has ended:
	// a Stall without StallFor ends only when the client goes away.
	After func()
}

// Request is one request the proxy (or its redirect host) received.
type Request struct {
	Method, Path, Range string
	// Authorization tells whether the request carried an Authorization header.
	Authorization bool
	// Fault is the fault applied; None when passed through.
	Fault FaultKind
	// Status is the status sent (0 when the connection was reset first).
	Status int
	// At is when the request arrived.
	At time.Time
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	upstream     string
	host         string
	redirectHost string
	transport    *http.Transport
	passthrough  *httputil.ReverseProxy
	servers      []*http.Server
	serving      errgroup.Group

	mu          sync.Mutex
	faults      []*faultState
	log         []*Request
	redirectLog []Request
	stored      map[string]storedBlob
}

type faultState struct {
	Fault
	hits    int
	skipped int
}

type storedBlob struct {
	header http.Header
	body   []byte
}

// Start starts a proxy on 127.0.0.1:0 in front of upstream (host:port, plain
// HTTP) and stops it in t.Cleanup.
func Start(t testing.TB, upstream string, faults ...Fault) *Proxy {
	t.Helper()
	p := &Proxy{
		upstream:  upstream,
		transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16},
		stored:    map[string]storedBlob{},
	}
	for _, f := range faults {
		p.faults = append(p.faults, &faultState{Fault: f})
	}
	p.passthrough = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: upstream})
			pr.Out.Host = pr.In.Host // the registry builds Location URLs from it
		},
		Transport: p.transport,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close fault proxy: %v", err)
		}
	})
	main, err := p.listen(http.HandlerFunc(p.serveMain))
	if err != nil {
		t.Fatalf("start fault proxy: %v", err)
	}
	redirect, err := p.listen(http.HandlerFunc(p.serveRedirect))
	if err != nil {
		t.Fatalf("start fault proxy: %v", err)
	}
	p.host, p.redirectHost = main, redirect
	return p
}

func (p *Proxy) listen(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Minute, ErrorLog: log.New(io.Discard, "", 0)}
	p.servers = append(p.servers, srv)
	p.serving.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return ln.Addr().String(), nil
}

// Close stops both listeners and ends stalled answers.
func (p *Proxy) Close() error {
	var errs []error
	for _, srv := range p.servers {
		errs = append(errs, srv.Close())
	}
	errs = append(errs, p.serving.Wait())
	p.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

// Host is the proxy's "127.0.0.1:PORT", to use in references.
func (p *Proxy) Host() string { return p.host }

// RedirectHost is the "127.0.0.1:PORT" RedirectOtherHost sends clients to.
func (p *Proxy) RedirectHost() string { return p.redirectHost }

// Hits returns how many requests got a fault of kind.
func (p *Proxy) Hits(kind FaultKind) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.log {
		if r.Fault == kind {
			n++
		}
	}
	return n
}

// Requests returns the requests the proxy received, in arrival order.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Request, len(p.log))
	for i, r := range p.log {
		out[i] = *r
	}
	return out
}

// RedirectRequests returns the requests the redirect host received.
func (p *Proxy) RedirectRequests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.redirectLog...)
}

// Count returns how many requests used method ("" for any) on a path
// containing pathContains.
func (p *Proxy) Count(method, pathContains string) int {
	n := 0
	for _, r := range p.Requests() {
		if (method == "" || r.Method == method) && strings.Contains(r.Path, pathContains) {
			n++
		}
	}
	return n
}

// match picks the fault for a request, uses one of its hits, and logs the
// request.
func (p *Proxy) match(r *http.Request) (*Fault, *Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	entry := &Request{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"),
		Authorization: r.Header.Get("Authorization") != "", At: time.Now()}
	p.log = append(p.log, entry)
	for _, f := range p.faults {
		if f.Method != "" && f.Method != r.Method || !strings.Contains(r.URL.Path, f.PathContains) {
			continue
		}
		if f.skipped < f.Skip {
			f.skipped++
			continue
		}
		if f.Times > 0 && f.hits >= f.Times {
			continue
		}
		f.hits++
		entry.Fault = f.Kind
		fault := f.Fault
		return &fault, entry
	}
	return nil, entry
}

func (p *Proxy) setStatus(entry *Request, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	entry.Status = status
}

func (p *Proxy) serveMain(w http.ResponseWriter, r *http.Request) {
	f, entry := p.match(r)
	if f != nil && f.Before != nil {
		f.Before()
	}
	if f != nil && f.After != nil {
		defer f.After()
	}
	if f == nil || f.Kind == None {
		rec := &statusRecorder{ResponseWriter: w}
		p.passthrough.ServeHTTP(rec, r)
		p.setStatus(entry, rec.status())
		return
	}
	if status := f.Kind.status(); status != 0 {
		p.setStatus(entry, status)
		writeStatus(w, r, *f, status)
		return
	}
	up := r
	if f.Kind == RedirectOtherHost {
		// The whole blob is stored; the other host serves any range of it.
		up = r.Clone(r.Context())
		up.Header.Del("Range")
	}
	resp, body, err := p.fetchUpstream(up)
	if err != nil {
		p.setStatus(entry, http.StatusBadGateway)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	p.setStatus(entry, p.answer(w, r, *f, resp, body))
}

// answer applies a body fault to the upstream answer and returns the status sent.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, f Fault, resp *http.Response, body []byte) int {
	copyHeader(w.Header(), resp.Header)
	if f.Kind == WrongDigestHeader {
		w.Header().Set("Docker-Content-Digest", WrongDigest().String())
	}
	if r.Method == http.MethodHead || resp.StatusCode >= 300 {
		// No body to break: pass the answer on as it is.
		w.Header().Set("Content-Length", resp.Header.Get("Content-Length"))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body)
		return resp.StatusCode
	}
	half := body[:len(body)/2]
	switch f.Kind {
	case ResetMidBody:
		writeWithLength(w, resp.StatusCode, len(body), half)
		resetConn(w)
		return resp.StatusCode
	case TruncateBody:
		writeWithLength(w, resp.StatusCode, len(half), half)
	case Stall:
		writeWithLength(w, resp.StatusCode, len(body), half)
		if !stall(r.Context(), f.StallFor) {
			return resp.StatusCode
		}
		_, _ = w.Write(body[len(half):])
	case CorruptBody:
		bad := append([]byte(nil), body...)
		if len(bad) > 0 {
			bad[len(bad)/2] ^= 0xff
		}
		writeWithLength(w, resp.StatusCode, len(bad), bad)
	case OversizeBody:
		padded := append(append([]byte(nil), body...), bytes.Repeat([]byte(" "), max(0, f.Size-len(body)))...)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(padded).String())
		writeWithLength(w, resp.StatusCode, len(padded), padded)
	case RedirectOtherHost:
		return p.redirect(w, r, resp, body)
	default:
		writeWithLength(w, resp.StatusCode, len(body), body)
	}
	return resp.StatusCode
}

// redirect stores the bytes and sends the client to the redirect host.
func (p *Proxy) redirect(w http.ResponseWriter, r *http.Request, resp *http.Response, body []byte) int {
	if r.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
		writeWithLength(w, resp.StatusCode, len(body), body)
		return resp.StatusCode
	}
	p.mu.Lock()
	key := "/storage/" + strconv.Itoa(len(p.stored))
	p.stored[key] = storedBlob{header: resp.Header.Clone(), body: body}
	p.mu.Unlock()
	for k := range w.Header() {
		w.Header().Del(k)
	}
	w.Header().Set("Location", "http://"+p.redirectHost+key+"?signature=faultproxy")
	w.WriteHeader(http.StatusTemporaryRedirect)
	return http.StatusTemporaryRedirect
}

// serveRedirect is the other host: it serves stored bytes (with Range) and
// logs whether the client sent credentials.
func (p *Proxy) serveRedirect(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	blob, ok := p.stored[r.URL.Path]
	entry := Request{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"),
		Authorization: r.Header.Get("Authorization") != "", At: time.Now(), Status: http.StatusOK}
	if !ok {
		entry.Status = http.StatusNotFound
	}
	p.redirectLog = append(p.redirectLog, entry)
	p.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	for _, k := range []string{"Content-Type", "Docker-Content-Digest"} {
		if v := blob.header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(blob.body)))
}

// fetchUpstream sends the request upstream with the client's headers and
// reads the whole answer (test blobs are small).
func (p *Proxy) fetchUpstream(r *http.Request) (*http.Response, []byte, error) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = "http", p.upstream
	out.Host = r.Host
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		return nil, nil, fmt.Errorf("fault proxy: upstream %s %s: %w", r.Method, r.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("fault proxy: upstream %s %s: %w", r.Method, r.URL.Path, err)
	}
	return resp, body, nil
}

// writeStatus answers with an injected error status and a registry-style body.
func writeStatus(w http.ResponseWriter, r *http.Request, f Fault, status int) {
	if f.Kind == Status429RetryAfter {
		v := f.RetryAfter
		if v == "" {
			v = "1"
		}
		w.Header().Set("Retry-After", v)
	}
	code := "UNKNOWN"
	switch status {
	case http.StatusTooManyRequests:
		code = "TOOMANYREQUESTS"
	case http.StatusServiceUnavailable:
		code = "UNAVAILABLE"
	}
	body := fmt.Sprintf(`{"errors":[{"code":%q,"message":"injected by faultproxy"}]}`, code)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}

// writeWithLength sends status and data under a Content-Length of length,
// flushing so that a client sees the data before whatever comes next.
func writeWithLength(w http.ResponseWriter, status, length int, data []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(length))
	w.Header().Del("Transfer-Encoding")
	w.WriteHeader(status)
	_, _ = w.Write(data)
	_ = http.NewResponseController(w).Flush()
}

// resetConn closes the connection with a TCP reset (SO_LINGER 0).
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection, without a reset
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// stall waits d (0: forever) or until the client leaves; it reports whether
// the client is still there.
func stall(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		<-ctx.Done()
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// copyHeader copies end-to-end headers; the length is set by the writer.
func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		switch k {
		case "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length":
			continue
		}
		dst[k] = append([]string(nil), vs...)
	}
}

// statusRecorder notes the status a passed-through answer had.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
