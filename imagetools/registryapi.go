package imagetools

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/reference"
	"github.com/containerd/errdefs"
	distref "github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The few registry calls containerd's resolver makes in two round trips or
// more are made here in one, through the same cached hosts (client,
// authorizer, tokens): a manifest GET by tag (containerd: HEAD, then GET),
// a manifest PUT (containerd: HEAD, then PUT) and a blob mount (containerd:
// HEAD, then POST).

// manifestAccept lists every manifest and index type we read.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
	images.MediaTypeDockerSchema2ManifestList, images.MediaTypeDockerSchema2Manifest,
}, ", ")

// apiRequest is one registry API call on the repository of a location.
type apiRequest struct {
	method string
	loc    Location
	// path under /v2/<repository>/, e.g. "manifests/v1".
	path   string
	query  url.Values
	header http.Header
	body   []byte
	// push asks for a token with push access; from adds pull access to
	// another repository (a mount's source).
	push bool
	from string
}

// do sends req to the first host of its registry that can serve it, with
// the host's authorizer: a 401 is answered by the authorizer once and the
// request retried. The caller closes the response body.
func (r *Resolver) do(ctx context.Context, req apiRequest) (*http.Response, error) {
	host, err := r.apiHost(req.loc.Host(), req.push)
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
	u := url.URL{
		Scheme:   host.Scheme,
		Host:     host.Host,
		Path:     strings.TrimSuffix(host.Path, "/") + "/" + distref.Path(req.loc.Name) + "/" + req.path,
		RawQuery: req.query.Encode(),
	}
	var resp *http.Response
	for attempt := 0; attempt < 2; attempt++ {
		resp, err = r.send(ctx, host, req, u.String())
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.method, req.loc, explainTLS(req.loc.Host(), err))
		}
		if resp.StatusCode != http.StatusUnauthorized || host.Authorizer == nil || attempt == 1 {
			break
		}
		aerr := host.Authorizer.AddResponses(ctx, []*http.Response{resp})
		drain(resp)
		if aerr != nil {
			return nil, fmt.Errorf("%s %s: authorize: %w", req.method, req.loc, aerr)
		}
	}
	return resp, nil
}

func (r *Resolver) send(ctx context.Context, host docker.RegistryHost, req apiRequest, u string) (*http.Response, error) {
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, err
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
			return nil, err
		}
	}
	return host.Client.Do(hr)
}

// apiHost returns the first configured host of a registry able to pull (or push).
func (r *Resolver) apiHost(registry string, push bool) (docker.RegistryHost, error) {
	hosts, err := r.registryHosts(registry)
	if err != nil {
		return docker.RegistryHost{}, err
	}
	want := docker.HostCapabilityPull
	if push {
		want = docker.HostCapabilityPush
	}
	for _, h := range hosts {
		if h.Capabilities.Has(want) {
			if h.Client == nil {
				h.Client = http.DefaultClient
			}
			return h, nil
		}
	}
	return docker.RegistryHost{}, fmt.Errorf("registry %s: no host configured to %s: %w", registry, map[bool]string{true: "push", false: "pull"}[push], errdefs.ErrNotFound)
}

// statusError turns an unexpected answer into an error naming the call;
// 404 wraps errdefs.ErrNotFound.
func statusError(what string, resp *http.Response) error {
	dt, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(dt))
	if msg != "" {
		msg = ": " + msg
	}
	err := fmt.Errorf("%s: %s%s", what, resp.Status, msg)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
	}
	return err
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// GetManifest fetches the manifest or index at loc (by tag, digest, or
// "latest") in one request and checks it: size limit, digest (the one asked
// for, else the registry's Docker-Content-Digest). The descriptor carries
// media type, digest and size.
func (r *Resolver) GetManifest(ctx context.Context, loc Location) (ocispec.Descriptor, []byte, error) {
	if loc.IsLayout() {
		desc, err := r.Resolve(ctx, loc)
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		f, err := r.Fetcher(ctx, loc)
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		dt, err := FetchManifest(ctx, f, desc)
		if err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %w", loc, err)
		}
		// index.json annotations name the entry in the layout, not the image.
		return ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, Platform: desc.Platform}, dt, nil
	}
	loc = loc.TagOrLatest()
	ref := loc.Tag
	if loc.Digest != "" {
		ref = loc.Digest.String()
	}
	resp, err := r.do(ctx, apiRequest{method: http.MethodGet, loc: loc, path: "manifests/" + ref,
		header: http.Header{"Accept": {manifestAccept}}})
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch %s: %w", loc, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, nil, statusError("fetch "+loc.String(), resp)
	}
	dt, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch %s: %w", loc, err)
	}
	if len(dt) > MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch %s: manifest over the %d byte limit", loc, MaxManifestSize)
	}
	desc, err := describeManifest(loc, resp.Header, dt)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return desc, dt, nil
}

// describeManifest checks fetched manifest bytes against the digest asked
// for or announced, and types them from Content-Type (else from the body).
func describeManifest(loc Location, h http.Header, dt []byte) (ocispec.Descriptor, error) {
	want := loc.Digest
	if want == "" {
		if d, err := digest.Parse(h.Get("Docker-Content-Digest")); err == nil {
			want = d
		}
	}
	got := digest.FromBytes(dt)
	if want != "" {
		if err := want.Validate(); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("fetch %s: %w", loc, err)
		}
		if want.Algorithm() != digest.SHA256 {
			got = want.Algorithm().FromBytes(dt)
		}
		if got != want {
			return ocispec.Descriptor{}, fmt.Errorf("fetch %s: content hashes to %s, want %s: %w", loc, got, want, ErrDigestMismatch)
		}
	}
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if !images.IsIndexType(mt) && !images.IsManifestType(mt) {
		detected, err := combineDetectMediaType(dt)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("fetch %s: not a manifest: %w", loc, err)
		}
		mt = detected
	}
	return ocispec.Descriptor{MediaType: mt, Digest: got, Size: int64(len(dt))}, nil
}

// putManifest stores a manifest or index in loc's repository under ref (a
// tag or its digest), without the existence check containerd makes first.
func (r *Resolver) putManifest(ctx context.Context, loc Location, ref string, desc ocispec.Descriptor, dt []byte) error {
	resp, err := r.do(ctx, apiRequest{method: http.MethodPut, loc: loc, path: "manifests/" + ref, push: true,
		header: http.Header{"Content-Type": {desc.MediaType}}, body: dt})
	if err != nil {
		return fmt.Errorf("push %s to %s:%s: %w", desc.Digest, loc.Repository(), ref, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return statusError(fmt.Sprintf("push %s to %s:%s", desc.Digest, loc.Repository(), ref), resp)
	}
	return nil
}

// mountBlob asks the registry to link a blob of another repository of the
// same registry into loc's repository. It reports false, with no error, when
// the registry would rather have the blob uploaded.
func (r *Resolver) mountBlob(ctx context.Context, loc Location, desc ocispec.Descriptor, from Location) (bool, error) {
	fromPath := distref.Path(from.Name)
	resp, err := r.do(ctx, apiRequest{method: http.MethodPost, loc: loc, path: "blobs/uploads/", push: true, from: fromPath,
		query: url.Values{"mount": {desc.Digest.String()}, "from": {fromPath}}})
	if err != nil {
		return false, fmt.Errorf("mount %s from %s into %s: %w", desc.Digest, from.Repository(), loc.Repository(), err)
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
		return true, nil
	case http.StatusAccepted, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		// The registry opened an upload session instead (or refused to
		// read the source): the caller uploads. An opened session expires
		// on its own.
		return false, nil
	}
	return false, statusError(fmt.Sprintf("mount %s from %s into %s", desc.Digest, from.Repository(), loc.Repository()), resp)
}
