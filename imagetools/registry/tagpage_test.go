package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
)

// TestListTagsPage: a list with a limit is one request, tags/list?n=LIMIT,
// whose answer is read up to tagPageBytes; the list is complete only when
// the registry points at no next page and sent at most LIMIT tags. A page
// too large to read is an incomplete list, not an error; an unknown
// repository has no tags.
func TestListTagsPage(t *testing.T) {
	for _, c := range []struct {
		name     string
		status   int
		header   http.Header
		body     string
		tags     []string
		complete bool
		err      error
	}{
		{name: "complete", status: 200, body: `{"name":"test/app","tags":["1","sha256-ab.sig"]}`, tags: []string{"1", "sha256-ab.sig"}, complete: true},
		{name: "next page", status: 200, header: http.Header{"Link": {`</v2/test/app/tags/list?n=2&last=b>; rel="next"`}},
			body: `{"tags":["a","b"]}`, tags: []string{"a", "b"}},
		{name: "more than asked", status: 200, body: `{"tags":["a","b","c"]}`, tags: []string{"a", "b", "c"}},
		{name: "too large", status: 200, body: `{"tags":["` + strings.Repeat("x", tagPageBytes) + `"]}`},
		{name: "unknown repository", status: 404, body: `{"errors":[{"code":"NAME_UNKNOWN"}]}`, complete: true},
		{name: "denied", status: 403, body: `{"errors":[{"code":"DENIED"}]}`, err: imagetools.ErrReferrers},
	} {
		t.Run(c.name, func(t *testing.T) {
			var asked []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					return
				}
				asked = append(asked, r.URL.RequestURI())
				for k, v := range c.header {
					w.Header()[k] = v
				}
				w.WriteHeader(c.status)
				_, _ = w.Write([]byte(c.body))
			}))
			t.Cleanup(srv.Close)
			loc, err := ref.Parse(strings.TrimPrefix(srv.URL, "http://") + "/test/app:1")
			if err != nil {
				t.Fatal(err)
			}
			limit := 2
			if c.name == "complete" {
				limit = 1000
			}
			tags, complete, err := New(Options{}).Tags(context.Background(), loc, limit)
			if !errors.Is(err, c.err) || (c.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			var got []string
			for tag := range tags {
				got = append(got, tag)
			}
			slices.Sort(got)
			if !slices.Equal(got, c.tags) || complete != c.complete {
				t.Errorf("tags %v complete %v, want %v %v", got, complete, c.tags, c.complete)
			}
			if want := []string{fmt.Sprintf("/v2/test/app/tags/list?n=%d", limit)}; !slices.Equal(asked, want) {
				t.Errorf("asked %v, want %v", asked, want)
			}
		})
	}
}
