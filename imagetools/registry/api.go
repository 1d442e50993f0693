package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/errdefs"
	distref "github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
)

// The few registry calls containerd's resolver makes in two round trips or
// more are made here in one, through the same cached hosts (client,
// authorizer, tokens): a manifest GET by tag (containerd: HEAD, then GET),
// a manifest PUT (containerd: HEAD, then PUT) and a blob mount (containerd:
// HEAD, then POST).

// apiRequest is one registry API call on the repository of a location.
type apiRequest struct {
	method string
	loc    ref.Location
	// path under /v2/<repository>/, e.g. "manifests/v1".
	path  string
	query url.Values
	// url, when set, is used instead of path and query: an upload session
	// the registry handed out.
	url    *url.URL
	header http.Header
	body   []byte
	// stream, when set, is the body instead: size bytes read once, so the
	// request is never replayed (a 401 is reported, not answered).
	stream io.Reader
	size   int64
	// push asks for a token with push access; from adds pull access to
	// another repository (a mount's source).
	push bool
	from string
}

// do sends req to the hosts of its registry that can serve it, in order
// (hostsFor), with each host's authorizer: a 401 is answered by the
// authorizer once and the request retried. A read that fails on a host (no
// connection, or an error status such as 404) goes on to the next, as
// containerd's resolver does; the last host's answer is returned. The
// caller closes the response body.
func (r *Client) do(ctx context.Context, req apiRequest) (*http.Response, error) {
	hosts, err := r.hostsFor(req)
	if err != nil {
		return nil, err
	}
	spec, err := reference.Parse(req.loc.Repository() + "@" + emptyDigest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", req.loc, err)
	}
	ctx, err = docker.ContextWithRepositoryScope(ctx, spec, req.push)
	if err != nil {
		return nil, err
	}
	if req.from != "" {
		ctx = docker.ContextWithAppendPullRepositoryScope(ctx, req.from)
	}
	for i, host := range hosts {
		resp, err := r.doOn(ctx, host, req)
		if i == len(hosts)-1 || ctx.Err() != nil || (err == nil && resp.StatusCode < 400) {
			return resp, err
		}
		if resp != nil {
			drain(resp)
		}
	}
	return nil, errors.New("no host") // unreachable: hostsFor returns at least one
}

// doOn sends req to one host, answering a 401 challenge once.
func (r *Client) doOn(ctx context.Context, host docker.RegistryHost, req apiRequest) (*http.Response, error) {
	u := requestURL(host, req)
	var resp *http.Response
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		resp, err = r.send(ctx, host, req, u.String())
		if err != nil {
			// The caller names the call; the error names the host.
			return nil, transportError(err)
		}
		if resp.StatusCode != http.StatusUnauthorized || host.Authorizer == nil || attempt == 1 {
			break
		}
		if noChallenge(resp) {
			err := newError(resp)
			drain(resp)
			return nil, err
		}
		if req.stream != nil {
			// The body is spent: teach the authorizer, let the caller start over.
			aerr := host.Authorizer.AddResponses(ctx, []*http.Response{resp})
			drain(resp)
			return nil, fmt.Errorf("%s %s: %w", req.method, req.loc, errors.Join(errStartOver, aerr))
		}
		aerr := host.Authorizer.AddResponses(ctx, []*http.Response{resp})
		if errdefs.IsNotImplemented(aerr) {
			// No way to answer this challenge (as containerd, the 401 is the answer).
			return resp, nil
		}
		if aerr != nil {
			// Credentials missing or refused: the registry's answer says
			// what to do. Another failure (a token service that cannot
			// be reached) is told as well.
			var err error = newError(resp)
			if !errors.Is(aerr, docker.ErrInvalidAuthorization) {
				err = fmt.Errorf("%w; authorize: %w", err, transportError(aerr))
			}
			drain(resp)
			return nil, err
		}
		drain(resp)
	}
	return resp, nil
}

// requestURL is where req goes on host: the upload session it names, else
// its path and query under the host's API root.
func requestURL(host docker.RegistryHost, req apiRequest) *url.URL {
	if req.url != nil {
		return req.url
	}
	query := req.query
	if mirrors(host, req.loc.Host()) {
		// Tell a mirror which registry it stands in for, as containerd does.
		query = url.Values{}
		for k, v := range req.query {
			query[k] = v
		}
		query.Set("ns", req.loc.Host())
	}
	return &url.URL{
		Scheme:   host.Scheme,
		Host:     host.Host,
		Path:     strings.TrimSuffix(host.Path, "/") + "/" + distref.Path(req.loc.Name) + "/" + req.path,
		RawQuery: query.Encode(),
	}
}

// mirrors reports whether host stands in for another registry (a
// hosts.toml mirror), containerd's test for sending "ns".
func mirrors(host docker.RegistryHost, registry string) bool {
	return host.Host != registryEndpoint(registry)
}

func (r *Client) send(ctx context.Context, host docker.RegistryHost, req apiRequest, u string) (*http.Response, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	if req.stream != nil {
		// Hidden behind a plain io.Reader so net/http sees no GetBody.
		body = struct{ io.Reader }{req.stream}
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, err
	}
	if req.stream != nil {
		hr.ContentLength = req.size
		if req.size == 0 {
			hr.Body = http.NoBody
		}
	}
	for k, v := range host.Header {
		hr.Header[k] = append([]string(nil), v...)
	}
	for k, v := range req.header {
		hr.Header[k] = append([]string(nil), v...)
	}
	if r.opts.UserAgent != "" {
		hr.Header.Set("User-Agent", r.opts.UserAgent)
	}
	if host.Authorizer != nil {
		if err := host.Authorizer.Authorize(ctx, hr); err != nil {
			return nil, authorizeError(host.Host, hr, err)
		}
	}
	return host.Client.Do(hr)
}

// hostsFor returns the hosts req may go to, in the order they are tried:
// a write goes to the first host with the push capability only; a tag is
// resolved (its manifest read, the tag list read) on hosts with resolve;
// referrers are listed on hosts with referrers, else on those with resolve
// (as containerd does); anything by digest is read from hosts with pull.
func (r *Client) hostsFor(req apiRequest) ([]docker.RegistryHost, error) {
	hosts, err := r.registryHosts(req.loc.Host())
	if err != nil {
		return nil, err
	}
	want, what := req.capability()
	var out []docker.RegistryHost
	for _, h := range hosts {
		if h.Capabilities.Has(want) {
			if h.Client == nil {
				h.Client = http.DefaultClient
			}
			out = append(out, h)
		}
	}
	if len(out) == 0 && want == docker.HostCapabilityReferrers {
		return r.hostsFor(apiRequest{loc: req.loc, path: "tags/list"})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("registry %s: no host configured to %s: %w", req.loc.Host(), what, errdefs.ErrNotFound)
	}
	if req.push {
		out = out[:1]
	}
	return out, nil
}

// capability is what a host must be able to do to serve req, and its name.
func (req apiRequest) capability() (docker.HostCapabilities, string) {
	switch {
	case req.push:
		return docker.HostCapabilityPush, "push"
	case strings.HasPrefix(req.path, "tags/"):
		return docker.HostCapabilityResolve, "resolve"
	case strings.HasPrefix(req.path, "referrers/"):
		return docker.HostCapabilityReferrers, "list referrers"
	case strings.HasPrefix(req.path, "manifests/"):
		if _, err := digest.Parse(strings.TrimPrefix(req.path, "manifests/")); err != nil {
			return docker.HostCapabilityResolve, "resolve"
		}
	}
	return docker.HostCapabilityPull, "pull"
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}
