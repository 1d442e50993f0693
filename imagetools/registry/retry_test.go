package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/internal/fakeregistry"
)

// answer is what a test server sends for one request.
type answer struct {
	status     int
	retryAfter string
	body       string
	reset      bool // close the connection with a TCP reset instead of answering
}

// scriptServer answers requests in order from a script; past its end it
// repeats the last answer. It records each request's body.
type scriptServer struct {
	*httptest.Server
	mu     sync.Mutex
	script []answer
	bodies []string
}

func newScriptServer(t *testing.T, script ...answer) *scriptServer {
	s := &scriptServer{script: script}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		i := min(len(s.bodies), len(s.script)-1)
		s.bodies = append(s.bodies, string(body))
		a := s.script[i]
		s.mu.Unlock()
		if a.reset {
			resetConn(t, w)
			return
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scriptServer) attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

// resetConn closes the connection with a TCP reset (SO_LINGER 0). What the
// handler wrote and flushed before has been sent; nothing else is.
func resetConn(t testing.TB, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// recorder collects the waits and retry notices of a transport.
type recorder struct {
	mu      sync.Mutex
	sleeps  []time.Duration
	notices []string
}

func (r *recorder) options(o RetryOptions) RetryOptions {
	o.sleep = func(ctx context.Context, d time.Duration) error {
		r.mu.Lock()
		r.sleeps = append(r.sleeps, d)
		r.mu.Unlock()
		return ctx.Err()
	}
	if o.rand == nil {
		o.rand = func() float64 { return 0.5 }
	}
	o.OnRetry = func(req *http.Request, attempt, max int, reason string) {
		r.mu.Lock()
		r.notices = append(r.notices, RetryMessage(req, attempt, max, reason))
		r.mu.Unlock()
	}
	return o
}

func TestRetryTransportScenarios(t *testing.T) {
	ms := time.Millisecond
	httpDate := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		opts       RetryOptions
		script     []answer
		wantStatus int    // 0: an error is wanted
		wantErr    string // substring of the error
		attempts   int
		sleeps     []time.Duration
	}{
		{name: "ok", script: []answer{{status: 200}}, wantStatus: 200, attempts: 1},
		{name: "503 then ok", script: []answer{{status: 503}, {status: 503}, {status: 200}},
			wantStatus: 200, attempts: 3, sleeps: []time.Duration{100 * ms, 200 * ms}},
		{name: "every retryable status", script: []answer{{status: 408}, {status: 429}, {status: 500}, {status: 502}, {status: 504}, {status: 200}},
			opts: RetryOptions{maxAttempts: 6}, wantStatus: 200, attempts: 6,
			sleeps: []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms}},
		{name: "429 Retry-After seconds", script: []answer{{status: 429, retryAfter: "3"}, {status: 200}},
			wantStatus: 200, attempts: 2, sleeps: []time.Duration{3 * time.Second}},
		{name: "Retry-After capped", script: []answer{{status: 429, retryAfter: "3600"}, {status: 200}},
			opts: RetryOptions{maxRetryAfter: 5 * time.Second}, wantStatus: 200, attempts: 2, sleeps: []time.Duration{5 * time.Second}},
		{name: "Retry-After HTTP date capped", script: []answer{{status: 503, retryAfter: httpDate}, {status: 200}},
			wantStatus: 200, attempts: 2, sleeps: []time.Duration{defaultMaxRetryAfter}},
		{name: "backoff capped by MaxDelay", script: []answer{{status: 500}},
			opts:    RetryOptions{maxAttempts: 4, baseDelay: time.Second, maxDelay: 3 * time.Second, rand: func() float64 { return 1 }},
			wantErr: "gave up after 4 attempts: 500 Internal Server Error", attempts: 4,
			sleeps: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}},
		{name: "exhausted with registry message", script: []answer{{status: 503, body: `{"errors":[{"code":"UNAVAILABLE","message":"maintenance"}]}`}},
			wantErr: "gave up after 5 attempts: 503 Service Unavailable: UNAVAILABLE: maintenance", attempts: 5,
			sleeps: []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms}},
		{name: "404 not retried", script: []answer{{status: 404}}, wantStatus: 404, attempts: 1},
		{name: "401 not retried", script: []answer{{status: 401}}, wantStatus: 401, attempts: 1},
		{name: "403 not retried", script: []answer{{status: 403}}, wantStatus: 403, attempts: 1},
		{name: "reset before the answer", script: []answer{{reset: true}, {status: 200}},
			wantStatus: 200, attempts: 2, sleeps: []time.Duration{100 * ms}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScriptServer(t, tc.script...)
			var rec recorder
			client := &http.Client{Transport: newRetryTransport(http.DefaultTransport, rec.options(tc.opts))}
			resp, err := client.Get(srv.URL + "/v2/test/blobs/sha256:abc")
			if tc.wantStatus == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("status %d, want an error", resp.StatusCode)
				}
				if !errors.Is(err, imagetools.ErrRetriesExhausted) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q, want imagetools.ErrRetriesExhausted with %q", err, tc.wantErr)
				}
				// The last answer stays at hand, typed.
				var e *Error
				if !errors.As(err, &e) || e.StatusCode != tc.script[len(tc.script)-1].status || e.Path != "/v2/test/blobs/sha256:abc" {
					t.Fatalf("error %q: the last answer is no *Error: %+v", err, e)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.wantStatus {
					t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
				}
			}
			if n := srv.attempts(); n != tc.attempts {
				t.Errorf("attempts %d, want %d", n, tc.attempts)
			}
			if !equalDurations(rec.sleeps, tc.sleeps) {
				t.Errorf("waits %v, want %v", rec.sleeps, tc.sleeps)
			}
			if len(rec.notices) != len(tc.sleeps) {
				t.Errorf("notices %q, want %d", rec.notices, len(tc.sleeps))
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRetryMessage(t *testing.T) {
	srv := newScriptServer(t, answer{status: 503}, answer{status: 429, retryAfter: "2"}, answer{status: 200})
	var rec recorder
	client := &http.Client{Transport: newRetryTransport(nil, rec.options(RetryOptions{}))}
	resp, err := client.Get(srv.URL + "/v2/a/blobs/sha256:abc?token=secret")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := []string{
		"retrying GET " + srv.URL + "/v2/a/blobs/sha256:abc (attempt 2/5): 503 Service Unavailable",
		"retrying GET " + srv.URL + "/v2/a/blobs/sha256:abc (attempt 3/5): 429 Too Many Requests (Retry-After: 2s)",
	}
	if strings.Join(rec.notices, "\n") != strings.Join(want, "\n") {
		t.Fatalf("notices:\n%s\nwant:\n%s", strings.Join(rec.notices, "\n"), strings.Join(want, "\n"))
	}
}

func TestRetryBodies(t *testing.T) {
	t.Run("POST without GetBody is not retried", func(t *testing.T) {
		srv := newScriptServer(t, answer{status: 503}, answer{status: 200})
		var rec recorder
		rt := newRetryTransport(nil, rec.options(RetryOptions{}))
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v2/a/blobs/uploads/", io.NopCloser(strings.NewReader("data")))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || srv.attempts() != 1 || len(rec.sleeps) != 0 {
			t.Fatalf("status %d after %d attempts, waits %v: want the 503 after 1", resp.StatusCode, srv.attempts(), rec.sleeps)
		}
	})
	t.Run("PUT with GetBody is replayed", func(t *testing.T) {
		srv := newScriptServer(t, answer{status: 502}, answer{status: 201})
		var rec recorder
		rt := newRetryTransport(nil, rec.options(RetryOptions{}))
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v2/a/manifests/v1", bytes.NewReader([]byte("manifest")))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if resp.StatusCode != 201 || len(srv.bodies) != 2 || srv.bodies[0] != "manifest" || srv.bodies[1] != "manifest" {
			t.Fatalf("status %d, bodies %q", resp.StatusCode, srv.bodies)
		}
	})
}

func TestRetryConnectionRefusedNotRetried(t *testing.T) {
	addr := fakeregistry.ClosedAddr(t)
	var rec recorder
	client := &http.Client{Transport: newRetryTransport(nil, rec.options(RetryOptions{}))}
	if _, err := client.Get("http://" + addr + "/v2/"); err == nil {
		t.Fatal("no error from a closed port")
	}
	if len(rec.sleeps) != 0 {
		t.Fatalf("refused connection retried: waits %v", rec.sleeps)
	}
}

func TestRetryCancellation(t *testing.T) {
	srv := newScriptServer(t, answer{status: 503})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waits := 0
	rt := newRetryTransport(nil, RetryOptions{sleep: func(ctx context.Context, d time.Duration) error {
		waits++
		cancel() // the user presses ^C during the backoff
		return sleepContext(ctx, time.Hour)
	}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v2/", nil)
	start := time.Now()
	_, err := rt.RoundTrip(req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if waits != 1 || srv.attempts() != 1 {
		t.Fatalf("%d waits, %d attempts after cancel; want 1 and 1", waits, srv.attempts())
	}
	if time.Since(start) > 30*time.Second {
		t.Fatal("cancellation did not stop the wait")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// slowBody sends its body in pieces with a pause between them; with hang set
// it sends half and then waits until the client goes away.
func slowBody(pieces int, pause time.Duration, hang bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "64")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for i := range pieces {
			if hang && i == pieces/2 {
				<-r.Context().Done()
				return
			}
			_, _ = w.Write(bytes.Repeat([]byte{'x'}, 64/pieces))
			_ = rc.Flush()
			time.Sleep(pause)
		}
	}
}

func TestStallWatchdog(t *testing.T) {
	t.Run("a silent body fails", func(t *testing.T) {
		srv := httptest.NewServer(slowBody(4, 0, true))
		defer srv.Close()
		client := &http.Client{Transport: newRetryTransport(nil, RetryOptions{StallTimeout: 100 * time.Millisecond})}
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if !errors.Is(err, imagetools.ErrStalled) || !strings.Contains(err.Error(), "registry stalled: no data for 100ms") {
			t.Fatalf("error %v, want a stall", err)
		}
		if len(got) != 32 {
			t.Fatalf("read %d bytes before the stall, want 32", len(got))
		}
	})
	t.Run("a slow body that keeps moving is not cut", func(t *testing.T) {
		// 8 pieces 20ms apart: 160ms in all, more than the stall timeout,
		// each gap far below it.
		srv := httptest.NewServer(slowBody(8, 20*time.Millisecond, false))
		defer srv.Close()
		client := &http.Client{Transport: newRetryTransport(nil, RetryOptions{StallTimeout: time.Second})}
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil || len(got) != 64 {
			t.Fatalf("read %d bytes, error %v", len(got), err)
		}
	})
	t.Run("time between reads does not count", func(t *testing.T) {
		srv := httptest.NewServer(slowBody(2, 0, false))
		defer srv.Close()
		client := &http.Client{Transport: newRetryTransport(nil, RetryOptions{StallTimeout: 50 * time.Millisecond})}
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 32)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // a slow consumer, not a slow registry
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatalf("second half: %v", err)
		}
	})
}

func TestRedirectDropsAuthorizationAcrossOrigins(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{}
	note := func(name string, r *http.Request) {
		mu.Lock()
		seen[name] = r.Header.Get("Authorization")
		mu.Unlock()
	}
	// other listens on 127.0.0.1 too: same host name, another port, which
	// Go's client alone would trust with the header.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		note("other", r)
		_, _ = io.WriteString(w, "blob")
	}))
	defer other.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		note(r.URL.Path, r)
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/blob?sig=1", http.StatusTemporaryRedirect)
		case "/here":
			http.Redirect(w, r, "/local", http.StatusTemporaryRedirect)
		default:
			_, _ = io.WriteString(w, "local")
		}
	}))
	defer origin.Close()
	client := &http.Client{Transport: newRetryTransport(nil, RetryOptions{})}
	for _, path := range []string{"/away", "/here"} {
		req, _ := http.NewRequest(http.MethodGet, origin.URL+path, nil)
		req.Header.Set("Authorization", "Basic c2VjcmV0")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["/away"] == "" || seen["/here"] == "" {
		t.Fatalf("the origin did not get the header: %q", seen)
	}
	if seen["other"] != "" {
		t.Fatal("Authorization was sent to another origin on a redirect")
	}
	if seen["/local"] == "" {
		t.Fatal("Authorization was dropped on a same-origin redirect")
	}
}
