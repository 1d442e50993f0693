package registry

import (
	"context"
	"net/url"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The registry as a place: each method is one of the calls above, or the
// upload protocol (upload.go) over them.

var _ place.Place = (*Client)(nil)

// Capabilities implements place.Place: a registry mounts blobs between its
// repositories, keeps referrers, and is worth asking before a transfer.
func (r *Client) Capabilities(ref.Location) place.Capabilities {
	return place.Capabilities{Mount: true, Referrers: true, CheckFirst: true}
}

// Manifest implements place.Place with one GET (GetManifest).
func (r *Client) Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	return r.GetManifest(ctx, loc)
}

// Tags implements place.Place (ListTags).
func (r *Client) Tags(ctx context.Context, loc ref.Location) (map[string]bool, error) {
	return r.ListTags(ctx, loc)
}

// Referrers implements place.Place (ListReferrers).
func (r *Client) Referrers(ctx context.Context, loc ref.Location) ([]ocispec.Descriptor, bool, error) {
	return r.ListReferrers(ctx, loc)
}

// Prepare implements place.Place: it configures every host named, so that a
// host's bad configuration (a CA file that does not parse, a hosts.toml in
// error) fails before anything moves. It leaves nothing to undo.
func (r *Client) Prepare(locs []ref.Location) (func(), error) {
	for _, l := range locs {
		if l.Host() == "" {
			continue // not set (the origin of a root that needs none)
		}
		if _, err := r.registryHosts(l.Host()); err != nil {
			return func() {}, err
		}
	}
	return func() {}, nil
}

// CheckBlob implements place.Place: one HEAD and, when the blob is missing,
// one POST that opens the upload session PushBlob will use.
func (r *Client) CheckBlob(ctx context.Context, to ref.Location, desc ocispec.Descriptor) (bool, place.Upload, error) {
	c, err := r.uploads.check(ctx, to, desc)
	if err != nil || c.present || c.session == nil {
		return c.present, nil, err
	}
	return false, c.session, nil
}

// MountBlob implements place.Place with one POST ?mount=&from=.
func (r *Client) MountBlob(ctx context.Context, to, from ref.Location, desc ocispec.Descriptor) (bool, place.Upload, error) {
	ok, session, err := r.mountBlob(ctx, to, desc, from)
	if err != nil || ok || session == nil {
		return ok, nil, err
	}
	return false, session, nil
}

// PushBlob implements place.Place: bytes in memory in one single POST where
// the registry takes it (else a POST and a PUT), a stream in one PUT to the
// session up, or to a new one, started over on a transient failure.
func (r *Client) PushBlob(ctx context.Context, to ref.Location, b place.Blob, up place.Upload) error {
	session, _ := up.(*url.URL)
	if b.Data != nil {
		return r.uploads.putBytes(ctx, to, b.Desc, b.Data, session)
	}
	return r.uploads.copyStream(ctx, b, to, session)
}

// PutManifest implements place.Place with one PUT by digest.
func (r *Client) PutManifest(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) (bool, error) {
	return r.PushManifest(ctx, to, desc.Digest.String(), desc, data)
}

// Tag implements place.Place with one PUT by tag.
func (r *Client) Tag(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) error {
	_, err := r.PushManifest(ctx, to, to.Tag, desc, data)
	return err
}

// Untag implements place.Place (DeleteTag).
func (r *Client) Untag(ctx context.Context, t ref.Location) (bool, error) {
	return r.DeleteTag(ctx, t)
}

// ReadTag implements place.Place (GetTagForUpdate).
func (r *Client) ReadTag(ctx context.Context, t ref.Location) ([]byte, bool, error) {
	return r.GetTagForUpdate(ctx, t)
}
