package registry

import (
	"context"
	"time"

	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The registry as a place: each method is one of the calls above, or the
// upload protocol (upload.go) over them.

var (
	_ place.Backend = (*Client)(nil)
	_ place.Writer  = (*Client)(nil)
)

// Capabilities implements place.Backend: a registry mounts blobs between its
// repositories, keeps referrers, is worth asking before a transfer, lists
// tags a page at a time, and stores layers compressed.
func (r *Client) Capabilities(ref.Location) place.Capabilities {
	return place.Capabilities{Mount: true, Referrers: true, CheckFirst: true, Compress: true, ListTags: true}
}

// Manifest implements place.Reader with one GET (getManifest).
func (r *Client) Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	return r.getManifest(ctx, loc)
}

// Tags implements place.Reader (listTags).
func (r *Client) Tags(ctx context.Context, loc ref.Location, limit int) (map[string]bool, bool, error) {
	return r.listTags(ctx, loc, limit)
}

// Referrers implements place.Reader (listReferrers).
func (r *Client) Referrers(ctx context.Context, loc ref.Location) ([]ocispec.Descriptor, bool, error) {
	return r.listReferrers(ctx, loc)
}

// Prepare implements place.Writer: it configures every host named, so that a
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

// CheckBlob implements place.Writer: one HEAD and, when the blob is
// missing, one POST that opens the upload session PushBlob will use (kept
// in r.sessions).
func (r *Client) CheckBlob(ctx context.Context, to ref.Location, desc ocispec.Descriptor) (bool, error) {
	c, err := r.uploads.check(ctx, to, desc)
	if err == nil && !c.present {
		r.sessions.put(to.Repository(), desc.Digest, c.session, time.Now())
	}
	return c.present, err
}

// MountBlob implements place.Writer with one POST ?mount=&from=; the
// session a registry opens instead of mounting is kept for PushBlob.
func (r *Client) MountBlob(ctx context.Context, to, from ref.Location, desc ocispec.Descriptor) (bool, error) {
	ok, session, err := r.mountBlob(ctx, to, desc, from)
	if err == nil && !ok {
		r.sessions.put(to.Repository(), desc.Digest, session, time.Now())
	}
	return ok, err
}

// PushBlob implements place.Writer: bytes in memory in one single POST
// where the registry takes it (else a POST and a PUT), a stream in one PUT
// to the session a check or mount opened for it, or to a new one, started
// over on a transient failure.
func (r *Client) PushBlob(ctx context.Context, to ref.Location, b place.Blob) error {
	session := r.sessions.take(to.Repository(), b.Desc.Digest, time.Now())
	if b.Data != nil {
		return r.uploads.putBytes(ctx, to, b.Desc, b.Data, session)
	}
	return r.uploads.copyStream(ctx, b, to, session)
}

// PutManifest implements place.Writer with one PUT by digest.
func (r *Client) PutManifest(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) (bool, error) {
	return r.pushManifest(ctx, to, desc.Digest.String(), desc, data)
}

// Tag implements place.Writer with one PUT by tag.
func (r *Client) Tag(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) error {
	_, err := r.pushManifest(ctx, to, to.Tag, desc, data)
	return err
}

// Untag implements place.Writer (deleteTag).
func (r *Client) Untag(ctx context.Context, t ref.Location) (bool, error) {
	return r.deleteTag(ctx, t)
}

// ReadTag implements place.Writer (getTagForUpdate).
func (r *Client) ReadTag(ctx context.Context, t ref.Location) ([]byte, bool, error) {
	return r.getTagForUpdate(ctx, t)
}
