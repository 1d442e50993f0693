// Package fakeregistry is a test double of the blob half of the registry
// API for one repository, which logs every request: for tests that count
// the requests of an upload, which a real registry does not report.
package fakeregistry

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/opencontainers/go-digest"
)

// Registry serves the blob half of the distribution API for one
// repository, and logs each request as "METHOD kind" (kind: blob, upload,
// upload+digest for a POST carrying one, session).
type Registry struct {
	*httptest.Server
	// SinglePost makes a POST with digest and body store the blob (201);
	// else it opens a session (202) and ignores the body, as distribution does.
	SinglePost bool
	// FailPuts is how many session PUTs are answered 503 (body read first).
	FailPuts int
	// Corrupt serves every blob with its last byte changed.
	Corrupt bool

	mu    sync.Mutex
	log   []string
	Blobs map[digest.Digest][]byte
}

// New starts a Registry; it is closed when the test ends.
func New(t testing.TB) *Registry {
	f := &Registry{Blobs: map[digest.Digest][]byte{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *Registry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/v2/team/app/")
	kind := "blob"
	switch {
	case path == "blobs/uploads/" && r.URL.Query().Get("digest") != "":
		kind = "upload+digest"
	case path == "blobs/uploads/":
		kind = "upload"
	case strings.HasPrefix(path, "blobs/uploads/"):
		kind = "session"
	}
	f.log = append(f.log, r.Method+" "+kind)
	switch {
	case kind == "blob" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		data, ok := f.Blobs[digest.Digest(strings.TrimPrefix(path, "blobs/"))]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if f.Corrupt {
			data = append(slices.Clone(data[:len(data)-1]), data[len(data)-1]^1)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		if r.Method == http.MethodGet {
			_, _ = w.Write(data)
		}
	case r.Method == http.MethodPost && kind == "upload+digest" && f.SinglePost:
		f.store(w, r)
	case r.Method == http.MethodPost:
		w.Header().Set("Location", "/v2/team/app/blobs/uploads/s1?_state=x")
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPut && kind == "session" && r.URL.Query().Get("_state") == "expired":
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, `{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}`, http.StatusNotFound)
	case r.Method == http.MethodPut && kind == "session":
		if r.URL.Query().Get("_state") != "x" {
			http.Error(w, "session state lost", http.StatusBadRequest)
			return
		}
		if f.FailPuts > 0 {
			f.FailPuts--
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		f.store(w, r)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// store keeps the body when it hashes to the digest of the query.
func (f *Registry) store(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	want := digest.Digest(r.URL.Query().Get("digest"))
	if err != nil || digest.FromBytes(data) != want {
		http.Error(w, "digest invalid", http.StatusBadRequest)
		return
	}
	f.Blobs[want] = data
	w.WriteHeader(http.StatusCreated)
}

// Requests lists the requests served, as "METHOD kind".
func (f *Registry) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// Repository is the one repository served, as HOST:PORT/team/app.
func (f *Registry) Repository() string {
	return strings.TrimPrefix(f.URL, "http://") + "/team/app"
}

// Has reports whether the registry holds the blob.
func (f *Registry) Has(d digest.Digest) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.Blobs[d]
	return ok
}

// LayerBlob is a layer descriptor and its bytes for the text s.
func LayerBlob(s string) (ocispec.Descriptor, []byte) {
	data := []byte(s)
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(data), Size: int64(len(data))}, data
}

// ClosedAddr is a loopback address where no registry answers: a port just
// released, so a connection to it is refused.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
