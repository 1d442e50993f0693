package registry

import (
	"net/http"
	"net/url"
	"testing"
)

func TestNextLink(t *testing.T) {
	req := &http.Request{URL: &url.URL{Scheme: "https", Host: "r.example", Path: "/v2/app/tags/list"}}
	for _, c := range []struct {
		link, want string
	}{
		{`</v2/app/tags/list?last=b&n=2>; rel="next"`, "https://r.example/v2/app/tags/list?last=b&n=2"},
		{`<https://other.example/v2/app/tags/list?last=c>; rel=next, </x>; rel="prev"`, ""},
		{`</x>; rel="prev", </v2/app/tags/list?last=d>; rel="next"`, "https://r.example/v2/app/tags/list?last=d"},
		{`</v2/app/tags/list?last=e>; rel=next`, "https://r.example/v2/app/tags/list?last=e"},
		{"", ""},
	} {
		resp := &http.Response{Header: http.Header{}, Request: req}
		if c.link != "" {
			resp.Header.Set("Link", c.link)
		}
		got := ""
		if u := nextLink(resp); u != nil {
			got = u.String()
		}
		if got != c.want {
			t.Errorf("nextLink(%q) = %q, want %q", c.link, got, c.want)
		}
	}
}
