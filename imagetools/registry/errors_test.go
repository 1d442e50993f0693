package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestErrorFromRegistry: every call that gets an error status returns an
// *Error to errors.As, with the request, the status, the OCI codes and the
// registry's message rid of escapes and control characters, and the
// errdefs class of its status.
func TestErrorFromRegistry(t *testing.T) {
	const hostile = "denied \x1b]0;owned\x07\x1b[31mred\x1b[0m\r\nforged line\u202e\x00 end"
	for _, c := range []struct {
		name      string
		status    int
		body      string
		header    http.Header
		wantCodes []string
		wantMsg   string
		class     error
	}{
		{name: "denied", status: http.StatusForbidden,
			body:      `{"errors":[{"code":"DENIED","message":"` + jsonEscape(hostile) + `"}]}`,
			wantCodes: []string{"DENIED"}, wantMsg: "denied red forged line end", class: errdefs.ErrPermissionDenied},
		{name: "unauthorized", status: http.StatusUnauthorized, header: http.Header{"Www-Authenticate": {`Basic realm="x"`}},
			body:      `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"},{"code":"DENIED","message":"no"}]}`,
			wantCodes: []string{"UNAUTHORIZED", "DENIED"}, wantMsg: "authentication required; no", class: errdefs.ErrUnauthenticated},
		{name: "not found", status: http.StatusNotFound,
			body:      `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`,
			wantCodes: []string{"NAME_UNKNOWN"}, wantMsg: "repository name not known to registry", class: errdefs.ErrNotFound},
		{name: "too many requests", status: http.StatusTooManyRequests,
			body:      `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`,
			wantCodes: []string{"TOOMANYREQUESTS"}, wantMsg: "slow down", class: errdefs.ErrResourceExhausted},
		{name: "html page", status: http.StatusBadRequest,
			body:    "<html><head><title>400 \x1b[2JBad</title></head><body>" + strings.Repeat("x", 4<<10) + "</body></html>",
			wantMsg: "HTML page: 400 Bad", class: errdefs.ErrInvalidArgument},
		// An error body over its limit is left out, not cut.
		{name: "huge error body", status: http.StatusInternalServerError,
			body:    `{"errors":[{"code":"UNKNOWN","message":"` + strings.Repeat("x", 70<<10) + `"}]}`,
			wantMsg: "", class: errdefs.ErrInternal},
		{name: "plain text", status: http.StatusForbidden, body: "go \x1b[1maway\x1b[0m\n",
			wantMsg: "go away", class: errdefs.ErrPermissionDenied},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					return
				}
				for k, v := range c.header {
					w.Header()[k] = v
				}
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body))
			}))
			t.Cleanup(srv.Close)
			host := strings.TrimPrefix(srv.URL, "http://")
			loc, err := ref.Parse(host + "/test/app:v1")
			if err != nil {
				t.Fatal(err)
			}
			r := New(Options{})
			ctx := context.Background()
			desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: emptyDigest, Size: 2}
			// missingOK: a 404 means "none" to the call (a tag about to be
			// written, the tags of an unknown repository), not an error.
			calls := []struct {
				method, path string
				missingOK    bool
				call         func() error
			}{
				{http.MethodGet, "/v2/test/app/manifests/v1", false, func() error { _, _, err := r.getManifest(ctx, loc); return err }},
				{http.MethodGet, "/v2/test/app/manifests/v1", true, func() error { _, _, err := r.getTagForUpdate(ctx, loc); return err }},
				{http.MethodPut, "/v2/test/app/manifests/v1", false, func() error { _, err := r.pushManifest(ctx, loc, "v1", desc, []byte("{}")); return err }},
				{http.MethodGet, "/v2/test/app/tags/list", true, func() error { _, _, err := r.listTags(ctx, loc, 0); return err }},
			}
			for _, call := range calls {
				err := call.call()
				if c.status == http.StatusNotFound && call.missingOK {
					if err != nil {
						t.Errorf("%s %s: %v", call.method, call.path, err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("%s %s: no error", call.method, call.path)
				}
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("%s %s: %v is no *Error", call.method, call.path, err)
				}
				if e.Method != call.method || e.Host != host || e.Path != call.path || e.StatusCode != c.status {
					t.Errorf("%s %s: got %+v", call.method, call.path, e)
				}
				if !slices.Equal(e.Codes, c.wantCodes) {
					t.Errorf("%s %s: codes %q, want %q", call.method, call.path, e.Codes, c.wantCodes)
				}
				if e.Message != c.wantMsg {
					t.Errorf("%s %s: message %q, want %q", call.method, call.path, e.Message, c.wantMsg)
				}
				if !errors.Is(err, c.class) {
					t.Errorf("%s %s: %v is not %v", call.method, call.path, err, c.class)
				}
				if strings.ContainsFunc(err.Error(), func(r rune) bool { return r < ' ' || r == 0x7f || r == '\u202e' }) {
					t.Errorf("%s %s: control characters in %q", call.method, call.path, err)
				}
			}
		})
	}
}

func jsonEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < ' ' {
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&15])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestFetcherError: a blob read refused by the registry is an *Error too,
// not containerd's error that repeats the URL with its query.
func TestFetcherError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"errors":[{"code":"DENIED","message":"no \u001b[31mblobs"}]}`))
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	loc, err := ref.Parse(host + "/test/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(Options{}).Fetcher(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: emptyDigest, Size: 10}
	rc, err := f.Fetch(context.Background(), desc)
	if err == nil {
		// containerd's fetcher opens the blob on the first read.
		_, err = io.ReadAll(rc)
		_ = rc.Close()
	}
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusForbidden || e.Method != http.MethodGet || e.Host != host ||
		e.Path != "/v2/test/app/blobs/"+emptyDigest || !slices.Equal(e.Codes, []string{"DENIED"}) || e.Message != "no blobs" {
		t.Fatalf("%v: %+v", err, e)
	}
	if !errdefs.IsPermissionDenied(err) {
		t.Errorf("%v is not permission denied", err)
	}
}

func TestErrorSaysWhatToDo(t *testing.T) {
	for _, c := range []struct {
		e    Error
		want string
	}{
		{Error{Method: "GET", Host: "r.example:5000", Path: "/v2/team/app/manifests/1", StatusCode: 401, Codes: []string{"UNAUTHORIZED"}, Message: "authentication required"},
			"authentication required for r.example:5000: run `docker login r.example:5000` (401 Unauthorized: authentication required)"},
		{Error{Method: "HEAD", Host: "registry-1.docker.io", Path: "/v2/library/alpine/manifests/3", StatusCode: 401},
			"authentication required for docker.io: run `docker login` (401 Unauthorized)"},
		{Error{Method: "PUT", Host: "r.example", Path: "/v2/team/app/manifests/sha256:ab", StatusCode: 403, Codes: []string{"DENIED"}, Message: "requested access to the resource is denied"},
			"denied: your credentials for r.example cannot push to team/app (403 Forbidden: requested access to the resource is denied)"},
		{Error{Method: "GET", Host: "r.example", Path: "/v2/team/app/blobs/sha256:ab", StatusCode: 403, Codes: []string{"DENIED"}},
			"denied: your credentials for r.example cannot pull from team/app (403 Forbidden)"},
		{Error{Method: "PUT", Host: "r.example", Path: "/v2/team/app/manifests/1", StatusCode: 403, Codes: []string{"TAG_INVALID"}, Message: "immutable"},
			"403 Forbidden: TAG_INVALID: immutable"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

func TestTransportError(t *testing.T) {
	refusedErr := &url.Error{Op: "Get", URL: "https://127.0.0.1:1/v2/a/manifests/1?sig=x",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	noHost := &url.Error{Op: "Get", URL: "https://nowhere.invalid/v2/",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nowhere.invalid", IsNotFound: true}}}
	reset := &url.Error{Op: "Put", URL: "https://r.example/v2/a/blobs/uploads/x?_state=secret",
		Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}
	for _, c := range []struct {
		err  error
		want string
		is   error
	}{
		{fmt.Errorf("failed to do request: %w", refusedErr), "cannot reach 127.0.0.1:1 (connection refused)", syscall.ECONNREFUSED},
		{noHost, "cannot reach nowhere.invalid (no such host)", nil},
		{reset, "PUT https://r.example/v2/a/blobs/uploads/x: read tcp: read: connection reset by peer", syscall.ECONNRESET},
		{errors.New("not a request"), "not a request", nil},
	} {
		got := transportError(c.err)
		if got.Error() != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
		if c.is != nil && !errors.Is(got, c.is) {
			t.Errorf("%s: not %v", got, c.is)
		}
	}
}
