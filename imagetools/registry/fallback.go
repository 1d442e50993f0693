package registry

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
)

// plainFallback is the transport of a host that may speak plain HTTP: a
// loopback host, one marked insecure, or an http:// server with TLS
// settings. It asks over HTTPS first and, when the server answers TLS with
// plain HTTP (or, without a port given, refuses the connection), over HTTP,
// as containerd's docker.NewHTTPFallback does. Unlike that one, the first
// request to the host goes alone: requests sent while it is on the way wait
// for what it found, then go straight to the scheme that works. A burst of
// parallel requests (eight tag reads, twenty blob checks) thus costs one
// refused TLS handshake instead of one each, which on a remote registry is a
// connection and a round trip per request.
type plainFallback struct {
	super http.RoundTripper

	mu sync.Mutex
	// probes holds, per host, what the first request found or is finding:
	// per host, because a registry may redirect a blob read to another host
	// (a CDN), which is asked over HTTPS on its own account.
	probes map[string]*schemeProbe
}

// schemeProbe is what the first request to a host found: done is closed
// once it knows; plain then says the host speaks plain HTTP. A probe that
// ended without knowing (the request failed another way) is dropped, and
// the next request probes again.
type schemeProbe struct {
	done  chan struct{}
	plain bool
	known bool
}

func newPlainFallback(super http.RoundTripper) *plainFallback {
	return &plainFallback{super: super, probes: map[string]*schemeProbe{}}
}

func (f *plainFallback) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		return f.super.RoundTrip(r)
	}
	host := r.URL.Host
	for {
		f.mu.Lock()
		p, ok := f.probes[host]
		if !ok {
			p = &schemeProbe{done: make(chan struct{})}
			f.probes[host] = p
		}
		f.mu.Unlock()
		if !ok {
			return f.probe(r, host, p)
		}
		select {
		case <-p.done:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
		if !p.known {
			continue // the probe learnt nothing; this request may be the next one
		}
		if p.plain {
			return f.super.RoundTrip(plainRequest(r))
		}
		return f.super.RoundTrip(r)
	}
}

// probe sends the first request to host over HTTPS and records what it
// found; when the server speaks plain HTTP, the request goes again over it.
func (f *plainFallback) probe(r *http.Request, host string, p *schemeProbe) (*http.Response, error) {
	// Whether the TLS handshake itself timed out: a plain HTTP server reads
	// a ClientHello as the start of a request and waits for its end.
	var handshakeTimedOut atomic.Bool
	trace := &httptrace.ClientTrace{TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
		if isTimeout(err) {
			handshakeTimedOut.Store(true)
		}
	}}
	resp, err := f.super.RoundTrip(r.WithContext(httptrace.WithClientTrace(r.Context(), trace)))
	plain := plainHTTPAnswer(err, host, handshakeTimedOut.Load())
	f.mu.Lock()
	if err == nil || plain {
		p.known, p.plain = true, plain
	} else {
		delete(f.probes, host)
	}
	f.mu.Unlock()
	close(p.done)
	if !plain {
		return resp, err
	}
	return f.super.RoundTrip(plainRequest(r))
}

// plainRequest is r over plain HTTP, with a fresh body when r can give one
// (a refused TLS handshake sent none of it).
func plainRequest(r *http.Request) *http.Request {
	u := *r.URL
	u.Scheme = "http"
	out := r.Clone(r.Context())
	out.URL = &u
	out.Body = r.Body
	if r.Body != nil && r.GetBody != nil {
		if body, err := r.GetBody(); err == nil {
			out.Body = body
		}
	}
	return out
}

// plainHTTPAnswer reports whether err says the server at host speaks plain
// HTTP: it answered the TLS handshake with an HTTP response, or left it
// unanswered until it timed out, or, when host names no port, nothing
// listens on 443 (containerd's rule: with a port given, the scheme is not
// changed for a refused connection).
func plainHTTPAnswer(err error, host string, handshakeTimedOut bool) bool {
	if err == nil {
		return false
	}
	var rec tls.RecordHeaderError
	if errors.As(err, &rec) && string(rec.RecordHeader[:]) == "HTTP/" {
		return true
	}
	if handshakeTimedOut {
		return true
	}
	if refused(err) || isTimeout(err) {
		_, port, _ := net.SplitHostPort(host)
		return port == ""
	}
	return false
}

// isTimeout reports a timeout as net.Error does (net/http's TLS handshake
// timeout is one).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
