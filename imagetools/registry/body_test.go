package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestReadBody(t *testing.T) {
	const limit = 16
	exact := strings.Repeat("x", limit)
	for _, c := range []struct {
		name    string
		body    string
		length  int64 // Content-Length; -1 unknown (chunked)
		want    digest.Digest
		wantErr error
	}{
		{name: "exact limit", body: exact, length: limit},
		{name: "exact limit, length unknown", body: exact, length: -1},
		{name: "digest checked", body: exact, length: limit, want: digest.FromString(exact)},
		{name: "other algorithm", body: exact, length: -1, want: digest.SHA512.FromString(exact)},
		{name: "one byte over", body: exact + "y", length: limit + 1, wantErr: imagetools.ErrTooLarge},
		{name: "one byte over, length unknown", body: exact + "y", length: -1, wantErr: imagetools.ErrTooLarge},
		// A server that announces less than it sends is still refused.
		{name: "over, length understated", body: exact + "y", length: limit, wantErr: imagetools.ErrTooLarge},
		{name: "digest mismatch", body: exact, length: limit, want: digest.FromString("other"), wantErr: imagetools.ErrDigestMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := &http.Response{ContentLength: c.length, Body: io.NopCloser(strings.NewReader(c.body))}
			dt, err := readBody(resp, limit, c.want)
			if c.wantErr == nil {
				if err != nil || string(dt) != c.body {
					t.Fatalf("got %q, %v", dt, err)
				}
				return
			}
			if !errors.Is(err, c.wantErr) || dt != nil {
				t.Fatalf("got %q, %v; want %v", dt, err, c.wantErr)
			}
			if c.wantErr == imagetools.ErrTooLarge && !strings.Contains(err.Error(), "16 byte limit") {
				t.Errorf("the error does not name the limit: %v", err)
			}
		})
	}
}

// lyingTagServer serves manifests/v1 of test/app: body as it is, with
// Docker-Content-Digest set to announced when not empty.
func lyingTagServer(t *testing.T, body []byte, announced digest.Digest) ref.Location {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/test/app/manifests/v1" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if announced != "" {
			w.Header().Set("Docker-Content-Digest", announced.String())
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	loc, err := ref.Parse(strings.TrimPrefix(srv.URL, "http://") + "/test/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestTagReadsRefuse: the tag read before a merge and the manifest read
// both refuse a manifest over the limit (never cut) and one that does not
// hash to the registry's Docker-Content-Digest.
func TestTagReadsRefuse(t *testing.T) {
	index := []byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageIndex + `","manifests":[]}`)
	// Whitespace keeps the cut body valid JSON: only a refusal catches it.
	big := append(append([]byte{}, index...), strings.Repeat(" ", oci.MaxManifestSize+1-len(index))...)
	atLimit := big[:oci.MaxManifestSize]
	for _, c := range []struct {
		name      string
		body      []byte
		announced digest.Digest
		wantErr   error
	}{
		{"honest", index, digest.FromBytes(index), nil},
		{"no digest header", index, "", nil},
		{"at the limit", atLimit, digest.FromBytes(atLimit), nil},
		{"over the limit", big, digest.FromBytes(big), imagetools.ErrTooLarge},
		{"digest mismatch", index, digest.FromString("other"), imagetools.ErrDigestMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			loc := lyingTagServer(t, c.body, c.announced)
			r := New(Options{})
			dt, found, err := r.getTagForUpdate(context.Background(), loc)
			if c.wantErr == nil {
				if err != nil || !found || string(dt) != string(c.body) {
					t.Fatalf("getTagForUpdate: %d bytes, found %v, %v", len(dt), found, err)
				}
			} else if !errors.Is(err, c.wantErr) || dt != nil {
				t.Fatalf("getTagForUpdate: %d bytes, %v; want %v", len(dt), err, c.wantErr)
			}
			_, dt, err = r.getManifest(context.Background(), loc)
			if c.wantErr == nil {
				if err != nil || string(dt) != string(c.body) {
					t.Fatalf("getManifest: %d bytes, %v", len(dt), err)
				}
			} else if !errors.Is(err, c.wantErr) || dt != nil {
				t.Fatalf("getManifest: %d bytes, %v; want %v", len(dt), err, c.wantErr)
			}
		})
	}
}
