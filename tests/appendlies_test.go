package tests

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifestBytes is the size limit of a manifest read whole (oci.MaxManifestSize).
const maxManifestBytes = 4 << 20

// tagLiar is a proxy in front of a registry that alters GETs of one tag's
// manifest, from the (skip+1)th on.
type tagLiar struct {
	path  string
	skip  int
	alter func(body []byte, h http.Header) []byte

	mu   sync.Mutex
	gets int
	lies int
}

func startTagLiar(t *testing.T, upstream string, liar *tagLiar) string {
	t.Helper()
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream})
	// A request the refusing client leaves mid-way is no news.
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || resp.Request.URL.Path != liar.path || resp.StatusCode != http.StatusOK {
			return nil
		}
		liar.mu.Lock()
		liar.gets++
		lie := liar.gets > liar.skip
		if lie {
			liar.lies++
		}
		liar.mu.Unlock()
		if !lie {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		body = liar.alter(body, resp.Header)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestCreateAppendLyingTag: create --append refuses a tag whose manifest is
// over the size limit (not cut short, merged and pushed back) and one whose
// bytes are not those the registry's Docker-Content-Digest names, both at
// the first read of the tag and at the read just before the tag moves; no
// tag moves.
func TestCreateAppendLyingTag(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, arm := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	pushImage(t, reg, "test/app", "arm64", arm)
	x := newImgx(t)
	x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/appended:latest", reg.Host+"/test/app:amd64")
	before := fetchTag(t, reg, "test/appended", "latest")
	if !strings.Contains(before, amd.Manifest.Desc.Digest.String()) {
		t.Fatalf("target not set up:\n%s", before)
	}

	// oversized pads the manifest with whitespace (still valid JSON when cut
	// at the limit) and announces the padded bytes' digest honestly.
	oversized := func(body []byte, h http.Header) []byte {
		body = append(body, bytes.Repeat([]byte(" "), maxManifestBytes+1-len(body))...)
		h.Set("Docker-Content-Digest", digest.FromBytes(body).String())
		return body
	}
	// mismatching serves other bytes under the tag's digest.
	mismatching := func(body []byte, h http.Header) []byte {
		return []byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageIndex + `","manifests":[]}`)
	}
	for _, c := range []struct {
		name  string
		alter func([]byte, http.Header) []byte
		want  []string
	}{
		{"oversized", oversized, []string{"test/appended:latest", "over the 4194304 byte limit"}},
		{"mismatching", mismatching, []string{"test/appended:latest", "content hashes to sha256:", "digest mismatch"}},
	} {
		for _, skip := range []int{0, 1} {
			when := map[int]string{0: "first read", 1: "read before the write"}[skip]
			t.Run(c.name+" at the "+when, func(t *testing.T) {
				liar := &tagLiar{path: "/v2/test/appended/manifests/latest", skip: skip, alter: c.alter}
				host := startTagLiar(t, reg.Host, liar)
				line := x.MustFail(c.want, "create", "--append", "--progress", "quiet",
					"-t", host+"/test/appended:latest", host+"/test/app:arm64")
				if liar.lies != 1 {
					t.Errorf("%d reads lied to, want 1 (%d reads): %s", liar.lies, liar.gets, line)
				}
				if got := fetchTag(t, reg, "test/appended", "latest"); got != before {
					t.Errorf("the tag moved:\n%s", got)
				}
			})
		}
	}
}
