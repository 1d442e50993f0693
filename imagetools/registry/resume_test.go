package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blobAction is how the test registry answers one blob request.
type blobAction int

const (
	serveBlob   blobAction = iota // the bytes asked for, honouring Range
	cutBlob                       // half of them, then a TCP reset
	shortBlob                     // half of them, as a complete (short) answer
	hangBlob                      // half of them, then silence until the client leaves
	ignoreRange                   // the whole blob with 200, whatever the Range
	fail500                       // 500 Internal Server Error
)

// blobRegistry serves one blob at /v2/test/blob/blobs/<digest>, answering
// request n with actions[n] (the last action repeats), and records the
// Range header of each request.
type blobRegistry struct {
	*httptest.Server
	t       *testing.T
	data    []byte
	desc    ocispec.Descriptor
	actions []blobAction

	mu     sync.Mutex
	ranges []string
}

func newBlobRegistry(t *testing.T, actions ...blobAction) *blobRegistry {
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	b := &blobRegistry{t: t, data: data, actions: actions, desc: ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data)),
	}}
	b.Server = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.Close)
	return b
}

func (b *blobRegistry) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v2/test/blob/blobs/"+b.desc.Digest.String() {
		http.NotFound(w, r)
		return
	}
	b.mu.Lock()
	action := b.actions[min(len(b.ranges), len(b.actions)-1)]
	b.ranges = append(b.ranges, r.Header.Get("Range"))
	b.mu.Unlock()
	start := rangeStart(r.Header.Get("Range"))
	rest := b.data[start:]
	status := http.StatusOK
	if start > 0 {
		status = http.StatusPartialContent
		w.Header().Set("Content-Range", "bytes "+strconv.Itoa(start)+"-"+strconv.Itoa(len(b.data)-1)+"/"+strconv.Itoa(len(b.data)))
	}
	half := rest[:len(rest)/2]
	switch action {
	case serveBlob:
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b.data))
	case ignoreRange:
		w.Header().Del("Content-Range")
		_, _ = w.Write(b.data)
	case fail500:
		w.WriteHeader(http.StatusInternalServerError)
	case shortBlob:
		w.Header().Set("Content-Length", strconv.Itoa(len(half)))
		w.WriteHeader(status)
		_, _ = w.Write(half)
	case cutBlob, hangBlob:
		w.Header().Set("Content-Length", strconv.Itoa(len(rest)))
		w.WriteHeader(status)
		_, _ = w.Write(half)
		_ = http.NewResponseController(w).Flush()
		if action == hangBlob {
			<-r.Context().Done()
			return
		}
		resetConn(b.t, w)
	}
}

func rangeStart(h string) int {
	v, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v, "-"))
	if err != nil {
		return 0
	}
	return n
}

func (b *blobRegistry) requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.ranges...)
}

// fetch reads the blob through containerd's docker fetcher, the retry
// transport and the resuming fetcher, as the resolver does.
func (b *blobRegistry) fetch(ctx context.Context, t *testing.T, retry RetryOptions, resume ResumeOptions) ([]byte, error) {
	t.Helper()
	if retry.sleep == nil {
		retry.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	}
	client := &http.Client{Transport: newRetryTransport(nil, retry)}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(
		docker.WithClient(client), docker.WithPlainHTTP(docker.MatchAllHosts))})
	host := strings.TrimPrefix(b.URL, "http://")
	f, err := resolver.Fetcher(ctx, host+"/test/blob@"+b.desc.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	rc, err := newResumingFetcher(f, resume).Fetch(ctx, b.desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestResumingFetcher(t *testing.T) {
	const half = 32 << 10
	tests := []struct {
		name    string
		actions []blobAction
		ranges  []string // "*" matches any resumed range within the first half
	}{
		{name: "whole", actions: []blobAction{serveBlob}, ranges: []string{""}},
		{name: "short answer", actions: []blobAction{shortBlob, serveBlob}, ranges: []string{"", "bytes=32768-"}},
		{name: "reset mid-body", actions: []blobAction{cutBlob, serveBlob}, ranges: []string{"", "*"}},
		{name: "stall", actions: []blobAction{hangBlob, serveBlob}, ranges: []string{"", "bytes=32768-"}},
		{name: "two cuts", actions: []blobAction{shortBlob, shortBlob, serveBlob}, ranges: []string{"", "bytes=32768-", "bytes=49152-"}},
		{name: "registry ignores Range", actions: []blobAction{shortBlob, ignoreRange}, ranges: []string{"", "bytes=32768-"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := newBlobRegistry(t, tc.actions...)
			var resumed []int64
			got, err := reg.fetch(context.Background(), t, RetryOptions{StallTimeout: 200 * time.Millisecond},
				ResumeOptions{OnResume: func(_ context.Context, _ ocispec.Descriptor, off int64, _ error) { resumed = append(resumed, off) }})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, reg.data) {
				t.Fatalf("got %d bytes, not the blob", len(got))
			}
			ranges := reg.requests()
			if len(ranges) != len(tc.ranges) {
				t.Fatalf("requests with Range %q, want %q", ranges, tc.ranges)
			}
			for i, want := range tc.ranges {
				if want == "*" {
					if n := rangeStart(ranges[i]); n > half || (ranges[i] != "" && n == 0) {
						t.Errorf("request %d: Range %q, want bytes=N- with N <= %d", i, ranges[i], half)
					}
					continue
				}
				if ranges[i] != want {
					t.Errorf("request %d: Range %q, want %q", i, ranges[i], want)
				}
			}
			if len(resumed) > len(ranges)-1 {
				t.Errorf("%d resumes for %d requests", len(resumed), len(ranges))
			}
		})
	}
}

func TestResumingFetcherGivesUp(t *testing.T) {
	t.Run("after maxResumes", func(t *testing.T) {
		reg := newBlobRegistry(t, shortBlob)
		_, err := reg.fetch(context.Background(), t, RetryOptions{}, ResumeOptions{maxResumes: 3})
		if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "after 3 resume attempts") {
			t.Fatalf("error %v, want an unexpected EOF after 3 resumes", err)
		}
		if n := len(reg.requests()); n != 4 {
			t.Fatalf("%d requests, want 4", n)
		}
	})
	t.Run("when the resumed request fails", func(t *testing.T) {
		reg := newBlobRegistry(t, shortBlob, fail500)
		_, err := reg.fetch(context.Background(), t, RetryOptions{maxAttempts: 2}, ResumeOptions{})
		if !errors.Is(err, imagetools.ErrRetriesExhausted) || !strings.Contains(err.Error(), "after 1 resume attempts") {
			t.Fatalf("error %v, want exhausted retries after 1 resume", err)
		}
		// One cut request, then two attempts of the one resume; containerd
		// does not add its own retries on top.
		if n := len(reg.requests()); n != 3 {
			t.Fatalf("%d requests, want 3", n)
		}
	})
	t.Run("stalls every time", func(t *testing.T) {
		reg := newBlobRegistry(t, hangBlob)
		_, err := reg.fetch(context.Background(), t, RetryOptions{StallTimeout: 100 * time.Millisecond}, ResumeOptions{maxResumes: 2})
		if !errors.Is(err, imagetools.ErrStalled) || !strings.Contains(err.Error(), "registry stalled: no data for 100ms") {
			t.Fatalf("error %v, want a stall", err)
		}
		if n := len(reg.requests()); n != 3 {
			t.Fatalf("%d requests, want 3", n)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		reg := newBlobRegistry(t, hangBlob)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		timer := time.AfterFunc(100*time.Millisecond, cancel)
		defer timer.Stop()
		_, err := reg.fetch(ctx, t, RetryOptions{StallTimeout: time.Minute}, ResumeOptions{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if n := len(reg.requests()); n != 1 {
			t.Fatalf("%d requests after cancel, want 1", n)
		}
	})
}
