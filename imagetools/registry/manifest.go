package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
)

// getManifest fetches the manifest or index at loc (by tag, digest, or
// "latest") in one request and checks it: size limit, digest (the one asked
// for, else the registry's Docker-Content-Digest). The descriptor carries
// media type, digest and size.
func (r *Client) getManifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	loc = loc.TagOrLatest()
	tagOrDigest := loc.Tag
	if loc.Digest != "" {
		tagOrDigest = loc.Digest.String()
	}
	resp, err := r.do(ctx, apiRequest{method: http.MethodGet, loc: loc, path: "manifests/" + tagOrDigest,
		header: http.Header{"Accept": {oci.ManifestAccept}}})
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch %s: %w", loc, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, nil, manifestStatusError("fetch "+loc.String(), loc, resp)
	}
	// The digest asked for, else the one the registry announces.
	want := loc.Digest
	if want == "" {
		want = contentDigest(resp)
	}
	dt, err := readBody(resp, oci.MaxManifestSize, want)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("fetch %s: %w", loc, err)
	}
	desc, err := describeManifest(loc, resp.Header, dt, want)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return desc, dt, nil
}

// describeManifest types fetched manifest bytes, already checked against
// want (when set), from Content-Type, else from the body.
func describeManifest(loc ref.Location, h http.Header, dt []byte, want digest.Digest) (ocispec.Descriptor, error) {
	got := want
	if got == "" {
		got = digest.FromBytes(dt)
	}
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	var body struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(dt, &body) == nil && body.MediaType != "" && (images.IsIndexType(mt) || images.IsManifestType(mt)) && body.MediaType != mt {
		return ocispec.Descriptor{}, fmt.Errorf("fetch %s: media type %q in its body contradicts the registry's %q", loc, body.MediaType, mt)
	}
	if !images.IsIndexType(mt) && !images.IsManifestType(mt) {
		detected, err := oci.DetectMediaType(dt)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("fetch %s: not a manifest: %w", loc, err)
		}
		mt = detected
	}
	return ocispec.Descriptor{MediaType: mt, Digest: got, Size: int64(len(dt))}, nil
}

// pushManifest stores a manifest or index in loc's repository under
// tagOrDigest, without the existence check containerd makes first. indexed
// reports that the registry answered with OCI-Subject: it recorded the
// manifest's subject in its referrers API itself.
func (r *Client) pushManifest(ctx context.Context, loc ref.Location, tagOrDigest string, desc ocispec.Descriptor, dt []byte) (indexed bool, err error) {
	what := fmt.Sprintf("push %s to %s:%s", desc.Digest, loc.Repository(), tagOrDigest)
	if tagOrDigest == desc.Digest.String() {
		what = fmt.Sprintf("push %s to %s", desc.Digest, loc.Repository())
	}
	resp, err := r.do(ctx, apiRequest{method: http.MethodPut, loc: loc, path: "manifests/" + tagOrDigest, push: true,
		header: http.Header{"Content-Type": {desc.MediaType}}, body: dt})
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return false, statusError(what, resp)
	}
	return resp.Header.Get(ociSubjectHeader) != "", nil
}

// ociSubjectHeader is the header a registry with the referrers API answers
// a manifest PUT with when the manifest has a subject.
const ociSubjectHeader = "OCI-Subject"

// getTagForUpdate reads the manifest or index at tag t with push rights, so
// that the token that reads it also serves the write that follows; found is
// false when the tag does not exist. What it reads is merged and pushed
// back: one over the size limit, or not the content the registry's
// Docker-Content-Digest names, is refused.
func (r *Client) getTagForUpdate(ctx context.Context, t ref.Location) ([]byte, bool, error) {
	resp, err := r.do(ctx, apiRequest{method: http.MethodGet, loc: t, path: "manifests/" + t.Tag, push: true,
		header: http.Header{"Accept": {oci.ManifestAccept}}})
	if err != nil {
		return nil, false, fmt.Errorf("read tag %s: %w", t, err)
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		dt, err := readBody(resp, oci.MaxManifestSize, contentDigest(resp))
		if err != nil {
			return nil, false, fmt.Errorf("read tag %s: %w", t, err)
		}
		return dt, true, nil
	case http.StatusNotFound:
		return nil, false, nil
	}
	return nil, false, statusError("read tag "+t.String(), resp)
}

// deleteTag removes tag t with DELETE /v2/<name>/manifests/<tag> (OCI
// distribution spec), which removes the tag alone. A registry that does not
// delete tags (deletes disabled, or only by digest) answers 400, 405 or
// UNSUPPORTED: removed is false, with no error. A delete by digest is never
// sent: it would remove every tag pointing at that manifest.
func (r *Client) deleteTag(ctx context.Context, t ref.Location) (bool, error) {
	what := "delete tag " + t.String()
	resp, err := r.do(ctx, apiRequest{method: http.MethodDelete, loc: t, path: "manifests/" + t.Tag, push: true})
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusAccepted, http.StatusOK, http.StatusNoContent, http.StatusNotFound:
		return true, nil
	case http.StatusBadRequest, http.StatusMethodNotAllowed:
		return false, nil
	}
	return false, statusError(what, resp)
}
