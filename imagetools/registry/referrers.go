package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
)

// nextLink returns the next page a list answer points at (RFC 8288 Link
// with rel="next"), resolved against the request, or nil. A page on
// another host is not followed: the registry's credentials stay with it.
func nextLink(resp *http.Response) *url.URL {
	for _, h := range resp.Header.Values("Link") {
		for _, part := range strings.Split(h, ",") {
			target, params, ok := strings.Cut(part, ";")
			params = strings.NewReplacer(" ", "", `"`, "").Replace(params)
			if !ok || !strings.Contains(";"+params+";", ";rel=next;") {
				continue
			}
			u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
			if err != nil {
				return nil
			}
			next := resp.Request.URL.ResolveReference(u)
			if next.Host != resp.Request.URL.Host {
				return nil
			}
			return next
		}
	}
	return nil
}

// maxListPages bounds the pages of a tags or referrers list followed.
const maxListPages = 1000

// tagPageBytes bounds the answer of one tags/list page asked with n: a
// page of 1000 tags of the longest names the distribution spec allows
// (128 characters) is under 140 KiB.
const tagPageBytes = 1 << 20

// listTags reads a repository's tags; a repository the registry does not
// know has none. With limit 0 it reads every page and complete is true.
// With limit > 0 it asks for one page of at most limit tags (n=limit) and
// reads at most tagPageBytes of it: complete is false when the registry
// points at a next page, answers with more than limit tags or with a page
// over that size, and the tags are then a part of the repository's. A
// failure wraps imagetools.ErrReferrers: tags are listed to find cosign
// referrers.
func (r *Client) listTags(ctx context.Context, origin ref.Location, limit int) (map[string]bool, bool, error) {
	if limit > 0 {
		return r.tagPage(ctx, origin, limit)
	}
	tags := map[string]bool{}
	req := apiRequest{method: http.MethodGet, loc: origin, path: "tags/list"}
	for page := 0; ; page++ {
		if page == maxListPages {
			return nil, false, fmt.Errorf("%w: list tags of %s: over %d pages", imagetools.ErrReferrers, origin.Repository(), maxListPages)
		}
		var body struct {
			Tags []string `json:"tags"`
		}
		next, status, err := r.getJSON(ctx, req, "list tags of "+origin.Repository(), &body)
		if status == http.StatusNotFound {
			return tags, true, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("%w: %w", imagetools.ErrReferrers, err)
		}
		for _, t := range body.Tags {
			tags[t] = true
		}
		if next == nil {
			return tags, true, nil
		}
		req.url = next
	}
}

// tagPage reads the first page of at most limit tags (listTags).
func (r *Client) tagPage(ctx context.Context, origin ref.Location, limit int) (map[string]bool, bool, error) {
	req := apiRequest{method: http.MethodGet, loc: origin, path: "tags/list", query: url.Values{"n": {strconv.Itoa(limit)}}}
	var body struct {
		Tags []string `json:"tags"`
	}
	next, status, err := r.getJSONLimit(ctx, req, "list tags of "+origin.Repository(), &body, tagPageBytes)
	switch {
	case status == http.StatusNotFound:
		return map[string]bool{}, true, nil
	case errors.Is(err, imagetools.ErrTooLarge):
		return map[string]bool{}, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("%w: %w", imagetools.ErrReferrers, err)
	}
	tags := make(map[string]bool, len(body.Tags))
	for _, t := range body.Tags {
		tags[t] = true
	}
	return tags, next == nil && len(body.Tags) <= limit, nil
}

// listReferrers reads every page of the referrers API's answer about the
// manifest at subject (a location with a digest); a 404 (or 405) means the
// registry has no such API (supported false). A failure wraps
// imagetools.ErrReferrers.
func (r *Client) listReferrers(ctx context.Context, subject ref.Location) (descs []ocispec.Descriptor, supported bool, err error) {
	req := apiRequest{method: http.MethodGet, loc: subject, path: "referrers/" + subject.Digest.String(),
		header: http.Header{"Accept": {ocispec.MediaTypeImageIndex}}}
	what := fmt.Sprintf("list referrers of %s@%s", subject.Repository(), subject.Digest)
	for page := 0; ; page++ {
		if page == maxListPages {
			return nil, false, fmt.Errorf("%w: %s: over %d pages", imagetools.ErrReferrers, what, maxListPages)
		}
		var idx ocispec.Index
		next, status, err := r.getJSON(ctx, req, what, &idx)
		if page == 0 && (status == http.StatusNotFound || status == http.StatusMethodNotAllowed) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("%w: %w", imagetools.ErrReferrers, err)
		}
		descs = append(descs, idx.Manifests...)
		if next == nil {
			return descs, true, nil
		}
		req.url = next
	}
}

// getJSON GETs a list page into v; it reports the next page and the status
// (0 when no answer came), with an error for anything but 200.
func (r *Client) getJSON(ctx context.Context, req apiRequest, what string, v any) (*url.URL, int, error) {
	return r.getJSONLimit(ctx, req, what, v, oci.MaxManifestSize)
}

// getJSONLimit is getJSON with the answer read up to limit bytes; a longer
// one is an error that is imagetools.ErrTooLarge.
func (r *Client) getJSONLimit(ctx context.Context, req apiRequest, what string, v any, limit int64) (*url.URL, int, error) {
	resp, err := r.do(ctx, req)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", what, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, statusError(what, resp)
	}
	dt, err := readBody(resp, limit, "")
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("%s: %w", what, err)
	}
	if err := json.Unmarshal(dt, v); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("%s: %w", what, err)
	}
	return nextLink(resp), resp.StatusCode, nil
}
