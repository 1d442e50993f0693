package registry

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/fakeregistry"
)

// connCounter counts a server's connections: those that never carried a
// request to the handler, and those whose first byte opened a TLS
// handshake. Only the second says how many HTTPS attempts reached a server:
// http.Transport may dial a connection for a waiting request and park it
// idle when another connection frees up first, which carries no request
// either (and no byte at all).
type connCounter struct {
	mu     sync.Mutex
	served map[net.Conn]bool
	hellos atomic.Int64
}

type connKey struct{}

// opened notes a new connection; served notes that one carried a request
// to the handler (a connection is "active" from its first byte, a TLS
// handshake's too, so ConnState cannot tell).
func (c *connCounter) opened(ctx context.Context, conn net.Conn) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.served[conn] = false
	return context.WithValue(ctx, connKey{}, conn)
}

func (c *connCounter) serve(r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.served[r.Context().Value(connKey{}).(net.Conn)] = true
}

func (c *connCounter) unserved() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ok := range c.served {
		if !ok {
			n++
		}
	}
	return n
}

// helloListener hands out connections that tell counter when their first
// byte is a TLS handshake record (0x16): a client's ClientHello.
type helloListener struct {
	net.Listener
	counter *connCounter
}

func (l helloListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &helloConn{Conn: conn, counter: l.counter}, nil
}

type helloConn struct {
	net.Conn
	counter *connCounter
	seen    bool
}

// Read is called by one goroutine at a time (the server's reader), so seen
// needs no lock.
func (c *helloConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.seen && n > 0 {
		c.seen = true
		if p[0] == 0x16 {
			c.counter.hellos.Add(1)
		}
	}
	return n, err
}

func newCountingServer(t *testing.T, tlsServer bool) (*httptest.Server, *connCounter, *atomic.Int64) {
	t.Helper()
	var requests atomic.Int64
	counter := &connCounter{served: map[net.Conn]bool{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		counter.serve(r)
		body, _ := io.ReadAll(r.Body)
		_, _ = w.Write(append([]byte(r.Method+" "), body...))
	}))
	srv.Listener = helloListener{Listener: srv.Listener, counter: counter}
	srv.Config.ConnContext = counter.opened
	if tlsServer {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, counter, &requests
}

// A burst of parallel requests to a plain-HTTP server costs one refused
// TLS handshake, not one per request, and every request is answered over
// HTTP with its body.
func TestPlainFallbackProbesOnce(t *testing.T) {
	srv, counter, requests := newCountingServer(t, false)
	host := strings.TrimPrefix(srv.URL, "http://")
	rt := newPlainFallback(newTransport(defaultTLSConfig()))
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			method, body := http.MethodGet, ""
			if i%2 == 1 {
				method, body = http.MethodPut, "payload"
			}
			req, err := http.NewRequestWithContext(context.Background(), method, "https://"+host+"/x", strings.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			resp, err := rt.RoundTrip(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if want := method + " " + body; string(got) != want {
				t.Errorf("answer %q, want %q", got, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := counter.hellos.Load(); got != 1 {
		t.Errorf("%d TLS handshakes reached the plain-HTTP server, want 1", got)
	}
	if got := requests.Load(); got != n {
		t.Errorf("server answered %d requests, want %d", got, n)
	}
}

// A server that speaks TLS keeps being asked over HTTPS.
func TestPlainFallbackKeepsTLS(t *testing.T) {
	srv, counter, requests := newCountingServer(t, true)
	host := strings.TrimPrefix(srv.URL, "https://")
	tr := newTransport(srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone())
	rt := newPlainFallback(tr)
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, "https://"+host+"/x", nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.TLS == nil {
			t.Fatal("answered without TLS")
		}
	}
	if got := counter.unserved(); got != 0 {
		t.Errorf("%d connections carried no request, want 0", got)
	}
	if requests.Load() != 3 {
		t.Errorf("server answered %d requests, want 3", requests.Load())
	}
}

// A first request that fails another way (nothing listens on the port
// given) decides nothing: the next one asks over HTTPS again.
func TestPlainFallbackUndecidedAfterOtherErrors(t *testing.T) {
	host := fakeregistry.ClosedAddr(t)
	rt := newPlainFallback(newTransport(defaultTLSConfig()))
	for range 2 {
		req, _ := http.NewRequest(http.MethodGet, "https://"+host+"/x", nil)
		if _, err := rt.RoundTrip(req); err == nil || !refused(err) {
			t.Fatalf("want a refused connection, got %v", err)
		}
		rt.mu.Lock()
		_, known := rt.probes[host]
		rt.mu.Unlock()
		if known {
			t.Fatal("a refused connection with a port given decided the scheme")
		}
	}
}

// silentTLSListener passes on the connections whose first byte is not a
// TLS handshake record; it leaves a ClientHello unanswered, as a plain HTTP
// server waiting for the rest of a request does.
type silentTLSListener struct {
	net.Listener
}

func (l silentTLSListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		first := make([]byte, 1)
		if _, err := io.ReadFull(conn, first); err != nil || first[0] == 0x16 {
			go func() { _, _ = io.Copy(io.Discard, conn); _ = conn.Close() }()
			continue
		}
		return &prefixConn{Conn: conn, prefix: first}, nil
	}
}

type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// A server that leaves the TLS handshake unanswered until it times out
// speaks plain HTTP, even with a port given: the request goes again over it.
func TestPlainFallbackHandshakeTimeout(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "plain")
	}))
	srv.Listener = silentTLSListener{Listener: srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	base := newTransport(defaultTLSConfig())
	base.TLSHandshakeTimeout = 100 * time.Millisecond
	t.Cleanup(base.CloseIdleConnections)
	rt := newPlainFallback(base)
	host := strings.TrimPrefix(srv.URL, "http://")
	req, _ := http.NewRequest(http.MethodGet, "https://"+host+"/v2/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "plain" || resp.Request.URL.Scheme != "http" {
		t.Fatalf("answer %q over %s", body, resp.Request.URL.Scheme)
	}
	// A timeout that is not the handshake's (dialling, with a port given)
	// decides nothing.
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
	if plainHTTPAnswer(timeout, host, false) || !plainHTTPAnswer(timeout, "registry.example", false) {
		t.Error("a dial timeout decides the scheme with a port given, or not without")
	}
}
