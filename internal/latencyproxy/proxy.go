// Package latencyproxy is an HTTP reverse proxy for benchmarks: it stands in
// front of a plain-HTTP registry on 127.0.0.1, waits a fixed delay before it
// forwards each request, so round trips weigh as they do against a remote
// registry, and counts the body bytes that pass in each direction. Bodies are
// streamed, never held whole in memory.
package latencyproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// Options configures a Proxy.
type Options struct {
	// Upstream is the "host:port" of the plain-HTTP server to forward to.
	Upstream string
	// Latency is added before each request is forwarded; 0 forwards at once
	// (bytes are still counted).
	Latency time.Duration
	// Rate, in bytes per second, is the capacity of the link in each
	// direction, shared by every connection: request bodies go up at most at
	// Rate, response bodies come down at most at Rate. 0 is no limit.
	Rate int64
}

// rateBurst is how many bytes a rate-limited link passes at once.
const rateBurst = 64 << 10

// Stats are the counters of a Proxy since it started or was last reset.
type Stats struct {
	// Requests is the number of requests received.
	Requests int64
	// RequestBytes is the sum of the request bodies read from clients.
	RequestBytes int64
	// ResponseBytes is the sum of the response bodies written to clients.
	ResponseBytes int64
}

// Bytes returns the body bytes moved in both directions.
func (s Stats) Bytes() int64 { return s.RequestBytes + s.ResponseBytes }

// Proxy is a running latency-adding reverse proxy.
type Proxy struct {
	host    string
	latency time.Duration
	rp      *httputil.ReverseProxy
	srv     *http.Server
	serving *errgroup.Group

	requests      atomic.Int64
	requestBytes  atomic.Int64
	responseBytes atomic.Int64
	// up and down pace request and response bodies; nil without a rate.
	up, down *pacer
}

// pacer paces one direction of the link. rate.Limiter.WaitN reads the clock
// before it takes its lock, so two goroutines can reserve in the opposite
// order of their clock readings; the limiter then moves its clock back and
// grants the same interval twice (a link of 4 MiB/s moved 4 MiB in 971 ms
// under load). The pacer reads the clock and reserves under one lock.
type pacer struct {
	mu sync.Mutex
	l  *rate.Limiter
}

func newPacer(bytesPerSecond int64) *pacer {
	return &pacer{l: rate.NewLimiter(rate.Limit(bytesPerSecond), rateBurst)}
}

// wait blocks until n more bytes may pass, or ctx ends. n is at most rateBurst.
func (p *pacer) wait(ctx context.Context, n int) error {
	p.mu.Lock()
	now := time.Now()
	r := p.l.ReserveN(now, n)
	p.mu.Unlock()
	if !r.OK() {
		return fmt.Errorf("latency proxy: %d bytes exceed the burst of %d", n, rateBurst)
	}
	delay := r.DelayFrom(now)
	if delay <= 0 {
		return nil
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.CancelAt(time.Now())
		return ctx.Err()
	}
}

// Start listens on a free port of 127.0.0.1 and forwards to opts.Upstream
// until Close. ctx bounds the start only.
func Start(ctx context.Context, opts Options) (*Proxy, error) {
	if opts.Upstream == "" {
		return nil, errors.New("start latency proxy: no upstream")
	}
	if opts.Latency < 0 {
		return nil, fmt.Errorf("start latency proxy to %s: negative latency %v", opts.Upstream, opts.Latency)
	}
	if opts.Rate < 0 {
		return nil, fmt.Errorf("start latency proxy to %s: negative rate %d", opts.Upstream, opts.Rate)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start latency proxy to %s: %w", opts.Upstream, err)
	}
	p := &Proxy{
		host:    ln.Addr().String(),
		latency: opts.Latency,
		serving: &errgroup.Group{},
	}
	if opts.Rate > 0 {
		p.up = newPacer(opts.Rate)
		p.down = newPacer(opts.Rate)
	}
	upstream := opts.Upstream
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: upstream})
			pr.Out.Host = pr.In.Host // the registry builds Location URLs from it
		},
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true},
		// Flush as bytes arrive: a blob reaches the client while it is read upstream.
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serve),
		ReadHeaderTimeout: time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	p.serving.Go(func() error {
		if err := p.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return p, nil
}

// Host returns "127.0.0.1:PORT", the address clients use instead of the upstream's.
func (p *Proxy) Host() string { return p.host }

// Latency returns the delay added to each request.
func (p *Proxy) Latency() time.Duration { return p.latency }

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Requests:      p.requests.Load(),
		RequestBytes:  p.requestBytes.Load(),
		ResponseBytes: p.responseBytes.Load(),
	}
}

// Reset sets the counters to zero.
func (p *Proxy) Reset() {
	p.requests.Store(0)
	p.requestBytes.Store(0)
	p.responseBytes.Store(0)
}

// Close stops the proxy.
func (p *Proxy) Close() error {
	err := errors.Join(p.srv.Close(), p.serving.Wait())
	if err != nil {
		return fmt.Errorf("close latency proxy %s: %w", p.host, err)
	}
	return nil
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	if !sleep(r.Context(), p.latency) {
		return // the client went away
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &countingReader{ReadCloser: r.Body, n: &p.requestBytes, pace: p.up, ctx: r.Context()}
	}
	p.rp.ServeHTTP(&countingWriter{ResponseWriter: w, n: &p.responseBytes, pace: p.down, ctx: r.Context()}, r)
}

// sleep waits d or until ctx ends, and tells whether the whole delay passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// countingReader adds the bytes read through it to n, paced by pace when
// set.
type countingReader struct {
	io.ReadCloser
	n    *atomic.Int64
	pace *pacer
	ctx  context.Context
}

func (c *countingReader) Read(b []byte) (int, error) {
	if c.pace != nil && len(b) > rateBurst {
		b = b[:rateBurst]
	}
	k, err := c.ReadCloser.Read(b)
	c.n.Add(int64(k))
	if c.pace != nil && k > 0 {
		if werr := c.pace.wait(c.ctx, k); werr != nil && err == nil {
			err = werr
		}
	}
	return k, err
}

// countingWriter adds the body bytes written through it to n, paced by pace
// when set.
type countingWriter struct {
	http.ResponseWriter
	n    *atomic.Int64
	pace *pacer
	ctx  context.Context
}

func (c *countingWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		chunk := b
		if c.pace != nil {
			chunk = b[:min(len(b), rateBurst)]
			if err := c.pace.wait(c.ctx, len(chunk)); err != nil {
				return written, err
			}
		}
		k, err := c.ResponseWriter.Write(chunk)
		c.n.Add(int64(k))
		written += k
		if err != nil {
			return written, err
		}
		b = b[len(chunk):]
	}
	return written, nil
}

// Unwrap lets http.ResponseController (used by the reverse proxy to flush)
// reach the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
