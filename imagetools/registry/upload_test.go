package registry

import (
	"context"
	"errors"
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/fakeregistry"
	"github.com/docker-imgx/docker-imgx/progress"
)

// newTestClient configures the registries first, as a push does.
func newTestClient(t *testing.T, regs ...*fakeregistry.Registry) *Client {
	r := New(Options{})
	var locs []ref.Location
	for _, reg := range regs {
		locs = append(locs, repoOf(t, reg))
	}
	if _, err := r.Prepare(locs); err != nil {
		t.Fatal(err)
	}
	return r
}

func repoOf(t *testing.T, reg *fakeregistry.Registry) ref.Location {
	t.Helper()
	l, err := ref.Parse(reg.Repository())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestPutBytesSinglePost(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name       string
		singlePost bool
		want       []string
	}{
		// One request where the registry takes the body with the POST.
		{"accepted", true, []string{"POST upload+digest", "POST upload+digest"}},
		// distribution answers 202: the PUT follows in the session it
		// opened, and the next blob is not offered in a single POST again.
		{"refused", false, []string{"POST upload+digest", "PUT session", "POST upload", "PUT session"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := fakeregistry.New(t)
			reg.SinglePost = c.singlePost
			r := newTestClient(t, reg)
			for _, s := range []string{"config one", "config two"} {
				desc, data := fakeregistry.LayerBlob(s)
				if err := r.uploads.putBytes(ctx, repoOf(t, reg), desc, data, nil); err != nil {
					t.Fatal(err)
				}
				if !reg.Has(desc.Digest) {
					t.Fatalf("%s not stored", desc.Digest)
				}
			}
			if got := reg.Requests(); !slices.Equal(got, c.want) {
				t.Errorf("requests %q, want %q", got, c.want)
			}
		})
	}
}

func TestCopyStream(t *testing.T) {
	ctx := context.Background()
	desc, data := fakeregistry.LayerBlob(strings.Repeat("layer bytes ", 1000))
	setup := func(t *testing.T) (src, dst *fakeregistry.Registry, b place.Blob) {
		src, dst = fakeregistry.New(t), fakeregistry.New(t)
		src.Blobs[desc.Digest] = data
		return src, dst, place.Blob{Desc: desc, From: src.Repository(), Open: func(ctx context.Context) (io.ReadCloser, error) {
			f, err := New(Options{}).Fetcher(ctx, repoOf(t, src))
			if err != nil {
				return nil, err
			}
			return f.Fetch(ctx, desc)
		}}
	}
	sub := progress.Discard()
	err := progress.Wrap("test", sub, func(sub progress.SubLogger) error {
		t.Run("one session, one PUT", func(t *testing.T) {
			src, dst, b := setup(t)
			if err := newTestClient(t, src, dst).uploads.copyStream(ctx, withProgress(b, sub), repoOf(t, dst), nil); err != nil {
				t.Fatal(err)
			}
			if got, want := dst.Requests(), []string{"POST upload", "PUT session"}; !slices.Equal(got, want) || !dst.Has(desc.Digest) {
				t.Errorf("requests %q, want %q; stored %v", got, want, dst.Has(desc.Digest))
			}
		})
		t.Run("a failed PUT starts over from the source", func(t *testing.T) {
			src, dst, b := setup(t)
			dst.FailPuts = 1
			if err := newTestClient(t, src, dst).uploads.copyStream(ctx, withProgress(b, sub), repoOf(t, dst), nil); err != nil {
				t.Fatal(err)
			}
			if got, want := dst.Requests(), []string{"POST upload", "PUT session", "POST upload", "PUT session"}; !slices.Equal(got, want) {
				t.Errorf("target requests %q, want %q", got, want)
			}
			if got := src.Requests(); len(got) != 2 {
				t.Errorf("source requests %q, want the blob read twice", got)
			}
		})
		t.Run("an expired session starts over with a new one", func(t *testing.T) {
			src, dst, b := setup(t)
			expired, err := url.Parse(dst.URL + "/v2/team/app/blobs/uploads/s0?_state=expired")
			if err != nil {
				t.Fatal(err)
			}
			if err := newTestClient(t, src, dst).uploads.copyStream(ctx, withProgress(b, sub), repoOf(t, dst), expired); err != nil {
				t.Fatal(err)
			}
			if got, want := dst.Requests(), []string{"PUT session", "POST upload", "PUT session"}; !slices.Equal(got, want) || !dst.Has(desc.Digest) {
				t.Errorf("requests %q, want %q; stored %v", got, want, dst.Has(desc.Digest))
			}
		})
		t.Run("attempts are bounded", func(t *testing.T) {
			src, dst, b := setup(t)
			dst.FailPuts = blobCopyAttempts + 1
			err := newTestClient(t, src, dst).uploads.copyStream(ctx, withProgress(b, sub), repoOf(t, dst), nil)
			if err == nil || !strings.Contains(err.Error(), "503") {
				t.Fatalf("err = %v, want the 503", err)
			}
			if n := len(dst.Requests()); n != 2*blobCopyAttempts {
				t.Errorf("%d target requests, want %d", n, 2*blobCopyAttempts)
			}
		})
		t.Run("a corrupt source is not retried", func(t *testing.T) {
			src, dst, b := setup(t)
			src.Corrupt = true
			err := newTestClient(t, src, dst).uploads.copyStream(ctx, withProgress(b, sub), repoOf(t, dst), nil)
			if !errors.Is(err, imagetools.ErrDigestMismatch) {
				t.Fatalf("err = %v, want imagetools.ErrDigestMismatch", err)
			}
			if dst.Has(desc.Digest) || len(src.Requests()) != 1 {
				t.Errorf("stored %v, source requests %q", dst.Has(desc.Digest), src.Requests())
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func withProgress(b place.Blob, sub progress.SubLogger) place.Blob {
	b.Progress = sub
	return b
}
