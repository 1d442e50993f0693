package latencyproxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream echoes: GET /size/N answers N bytes, PUT answers with the number
// of body bytes it read.
func upstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			n, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/size/"), 10, 64)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			_, _ = io.CopyN(w, zeros{}, n)
		case http.MethodPut:
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			_, _ = io.WriteString(w, strconv.FormatInt(n, 10))
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// zeros is an endless reader of zero bytes that allocates nothing.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

func startProxy(t *testing.T, latency time.Duration) *Proxy {
	t.Helper()
	p, err := Start(context.Background(), Options{Upstream: upstream(t), Latency: latency})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func do(t *testing.T, method, url string, body io.Reader) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", method, url, resp.StatusCode, data)
	}
	return data
}

func TestLatencyIsAdded(t *testing.T) {
	const latency = 50 * time.Millisecond
	p := startProxy(t, latency)
	for range 3 {
		start := time.Now()
		do(t, http.MethodGet, "http://"+p.Host()+"/size/10", nil)
		if took := time.Since(start); took < latency {
			t.Errorf("request took %v through a proxy adding %v", took, latency)
		}
	}
	if got := p.Stats().Requests; got != 3 {
		t.Errorf("Requests = %d, want 3", got)
	}
}

func TestBodyBytesCountedExactly(t *testing.T) {
	p := startProxy(t, 0)
	base := "http://" + p.Host()
	do(t, http.MethodGet, base+"/size/12345", nil)
	got := do(t, http.MethodPut, base+"/upload", bytes.NewReader(make([]byte, 7000)))
	if string(got) != "7000" {
		t.Fatalf("upstream read %s bytes of a 7000-byte upload", got)
	}
	want := Stats{Requests: 2, RequestBytes: 7000, ResponseBytes: 12345 + 4}
	if s := p.Stats(); s != want {
		t.Errorf("Stats = %+v, want %+v", s, want)
	}
	if want.Bytes() != 7000+12349 {
		t.Errorf("Bytes = %d", want.Bytes())
	}
	p.Reset()
	if s := p.Stats(); s != (Stats{}) {
		t.Errorf("after Reset: Stats = %+v", s)
	}
}

// TestBodiesAreStreamed moves 64 MiB each way and checks that the process
// allocated far less than that: a proxy that buffers a body allocates at
// least its size.
func TestBodiesAreStreamed(t *testing.T) {
	const size = 64 << 20
	p := startProxy(t, 0)
	base := "http://" + p.Host()
	do(t, http.MethodGet, base+"/size/1", nil) // warm up connections

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/size/"+strconv.Itoa(size), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("download through proxy: %d bytes, %v", n, err)
	}
	got := do(t, http.MethodPut, base+"/upload", io.LimitReader(zeros{}, size))
	if string(got) != strconv.Itoa(size) {
		t.Fatalf("upstream read %s bytes of a %d-byte upload", got, size)
	}

	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("moving 2 x 64 MiB through the proxy allocated %d MiB: bodies are buffered", alloc>>20)
	}
	if s := p.Stats(); s.ResponseBytes != size+1+int64(len(got)) || s.RequestBytes != size {
		t.Errorf("Stats = %+v", s)
	}
}

// TestRateIsKept sends bodies both ways through a link of 4 MiB/s, shared by
// two transfers at once: 4 MiB in all cannot pass in less than about a
// second, and every byte arrives.
func TestRateIsKept(t *testing.T) {
	const rate = 4 << 20
	p, err := Start(context.Background(), Options{Upstream: upstream(t), Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	for _, dir := range []string{"down", "up"} {
		start := time.Now()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				// Not do: it fails the test with Fatal, which belongs to the test's goroutine.
				method, url, body, want := http.MethodGet, "http://"+p.Host()+"/size/2097152", io.Reader(nil), 2<<20
				if dir == "up" {
					method, url, body, want = http.MethodPut, "http://"+p.Host()+"/up", io.LimitReader(zeros{}, 2<<20), len("2097152")
				}
				req, err := http.NewRequestWithContext(context.Background(), method, url, body)
				if err != nil {
					t.Error(err)
					return
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				data, err := io.ReadAll(resp.Body)
				if err != nil || resp.StatusCode != http.StatusOK || len(data) != want {
					t.Errorf("%s %s: status %d, %d bytes (%v), want 200 and %d bytes", method, url, resp.StatusCode, len(data), err, want)
				}
			})
		}
		wg.Wait()
		// The bucket starts full: one burst passes at once.
		if took, least := time.Since(start), time.Duration(float64(4<<20-rateBurst)/rate*float64(time.Second)); took < least {
			t.Errorf("%s: 4 MiB took %v through a 4 MiB/s link, want at least %v", dir, took, least)
		}
	}
}
