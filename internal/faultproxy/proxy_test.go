package faultproxy

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upstream serves "0123456789abcdef" at every path, with a digest header.
func upstream(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Content-Digest", "sha256:upstream")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader("0123456789abcdef"))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func get(t *testing.T, client *http.Client, url string) (*http.Response, string, error) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

func TestFaults(t *testing.T) {
	p := Start(t, upstream(t),
		Fault{Method: "GET", PathContains: "/limited", Times: 2, Kind: Status429RetryAfter, RetryAfter: "7"},
		Fault{PathContains: "/truncate", Kind: TruncateBody},
		Fault{PathContains: "/corrupt", Kind: CorruptBody},
		Fault{PathContains: "/reset", Kind: ResetMidBody},
		Fault{PathContains: "/digest", Kind: WrongDigestHeader},
		Fault{PathContains: "/stall", Kind: Stall, StallFor: 50 * time.Millisecond},
	)
	client := &http.Client{Transport: &http.Transport{}}
	base := "http://" + p.Host()

	for i, want := range []int{429, 429, 200} {
		resp, _, err := get(t, client, base+"/limited")
		if err != nil || resp.StatusCode != want {
			t.Fatalf("request %d: %v %v, want %d", i, resp, err, want)
		}
		if want == 429 && resp.Header.Get("Retry-After") != "7" {
			t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
	}
	if _, body, err := get(t, client, base+"/truncate"); err != nil || body != "01234567" {
		t.Fatalf("truncated: %q %v", body, err)
	}
	if _, body, err := get(t, client, base+"/corrupt"); err != nil || len(body) != 16 || body == "0123456789abcdef" {
		t.Fatalf("corrupt: %q %v", body, err)
	}
	if _, body, err := get(t, client, base+"/reset"); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reset: %q %v, want a reset", body, err)
	}
	if resp, _, err := get(t, client, base+"/digest"); err != nil || resp.Header.Get("Docker-Content-Digest") != WrongDigest().String() {
		t.Fatalf("digest header: %v", err)
	}
	if _, body, err := get(t, client, base+"/stall"); err != nil || body != "0123456789abcdef" {
		t.Fatalf("stall: %q %v", body, err)
	}
	for kind, n := range map[FaultKind]int{Status429RetryAfter: 2, TruncateBody: 1, CorruptBody: 1, ResetMidBody: 1, WrongDigestHeader: 1, Stall: 1, None: 1} {
		if got := p.Hits(kind); got != n {
			t.Errorf("%s: %d hits, want %d", kind, got, n)
		}
	}
	if n := p.Count("GET", "/limited"); n != 3 {
		t.Errorf("Count: %d, want 3", n)
	}
}

func TestRedirectOtherHost(t *testing.T) {
	p := Start(t, upstream(t), Fault{PathContains: "/blob", Kind: RedirectOtherHost})
	req, _ := http.NewRequest(http.MethodGet, "http://"+p.Host()+"/blob", nil)
	req.Header.Set("Range", "bytes=4-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	// The proxy fetched the whole blob upstream; the other host serves the
	// range asked for.
	if string(body) != "456789abcdef" {
		t.Fatalf("body %q", body)
	}
	got := p.RedirectRequests()
	if len(got) != 1 || got[0].Path != "/storage/0" || got[0].Status != http.StatusOK {
		t.Fatalf("redirect host saw %+v", got)
	}
	if p.Hits(RedirectOtherHost) != 1 {
		t.Fatalf("hits %d", p.Hits(RedirectOtherHost))
	}
}
