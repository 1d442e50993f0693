package place

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Router is the Place that hands each call to the backend of its
// location's scheme ("" for registries). It is the one piece of code that
// tells kinds of place apart; the command layer builds it from the
// implementations.
type Router struct {
	places map[string]Backend
}

var _ Place = (*Router)(nil)

// NewRouter returns a router over places, keyed by scheme: "" for the
// registry, ref.SchemeLayout for OCI layouts, and so on. A place that does
// not implement Writer is only read from.
func NewRouter(places map[string]Backend) *Router {
	return &Router{places: places}
}

// placeOf returns the implementation for loc.
func (r *Router) placeOf(loc ref.Location) (Backend, error) {
	p, ok := r.places[loc.Scheme]
	if !ok {
		return nil, fmt.Errorf("%s: no place reads %s:// locations", loc, loc.Scheme)
	}
	return p, nil
}

// writerOf returns the writer for loc, or the one refusal of a write to a
// place that is only read from.
func (r *Router) writerOf(loc ref.Location) (Writer, error) {
	p, err := r.placeOf(loc)
	if err != nil {
		return nil, err
	}
	w, ok := p.(Writer)
	if !ok {
		return nil, fmt.Errorf("%s: %w: push to a registry or an %sDIR folder; write image tars with `docker imgx export` (--load for the Docker engine)",
			loc, imagetools.ErrReadOnly, ref.LayoutPrefix)
	}
	return w, nil
}

// Writable implements Place.
func (r *Router) Writable(loc ref.Location) error {
	_, err := r.writerOf(loc)
	return err
}

// Mountable reports whether a blob in from's repository can be linked into
// to's without moving its bytes: both of one kind of place that mounts, on
// one host.
func Mountable(p Place, from, to ref.Location) bool {
	return from.Scheme == to.Scheme && from.Host() == to.Host() && p.Capabilities(to).Mount
}

// SameRepository reports whether two locations name the same repository or
// folder, where content read from one is already in the other.
func SameRepository(a, b ref.Location) bool {
	return a.Repository() == b.Repository()
}

// Capabilities implements Place; an unknown scheme can do nothing.
func (r *Router) Capabilities(loc ref.Location) Capabilities {
	p, err := r.placeOf(loc)
	if err != nil {
		return Capabilities{}
	}
	return p.Capabilities(loc)
}

// Manifest implements Place.
func (r *Router) Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	p, err := r.placeOf(loc)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return p.Manifest(ctx, loc)
}

// Fetcher implements Place.
func (r *Router) Fetcher(ctx context.Context, loc ref.Location) (remotes.Fetcher, error) {
	p, err := r.placeOf(loc)
	if err != nil {
		return nil, err
	}
	return p.Fetcher(ctx, loc)
}

// Tags implements Place.
func (r *Router) Tags(ctx context.Context, loc ref.Location, limit int) (map[string]bool, bool, error) {
	p, err := r.placeOf(loc)
	if err != nil {
		return nil, false, err
	}
	return p.Tags(ctx, loc, limit)
}

// Referrers implements Place.
func (r *Router) Referrers(ctx context.Context, loc ref.Location) ([]ocispec.Descriptor, bool, error) {
	p, err := r.placeOf(loc)
	if err != nil {
		return nil, false, err
	}
	return p.Referrers(ctx, loc)
}

// Prepare implements Place: each place prepares its own locations, in the
// order of their schemes; the undo undoes them all. A place only read from
// (a source's) has nothing to ready.
func (r *Router) Prepare(locs []ref.Location) (func(), error) {
	byScheme := map[string][]ref.Location{}
	for _, l := range locs {
		byScheme[l.Scheme] = append(byScheme[l.Scheme], l)
	}
	schemes := make([]string, 0, len(byScheme))
	for s := range byScheme {
		schemes = append(schemes, s)
	}
	sort.Strings(schemes)
	var undos []func()
	undoAll := func() {
		for _, u := range slices.Backward(undos) {
			u()
		}
	}
	for _, s := range schemes {
		p, err := r.placeOf(byScheme[s][0])
		if err != nil {
			return undoAll, err
		}
		w, ok := p.(Writer)
		if !ok {
			continue
		}
		undo, err := w.Prepare(byScheme[s])
		if undo != nil {
			undos = append(undos, undo)
		}
		if err != nil {
			return undoAll, err
		}
	}
	return undoAll, nil
}

// CheckBlob implements Place.
func (r *Router) CheckBlob(ctx context.Context, to ref.Location, desc ocispec.Descriptor) (bool, error) {
	p, err := r.writerOf(to)
	if err != nil {
		return false, err
	}
	return p.CheckBlob(ctx, to, desc)
}

// MountBlob implements Place.
func (r *Router) MountBlob(ctx context.Context, to, from ref.Location, desc ocispec.Descriptor) (bool, error) {
	p, err := r.writerOf(to)
	if err != nil {
		return false, err
	}
	return p.MountBlob(ctx, to, from, desc)
}

// PushBlob implements Place.
func (r *Router) PushBlob(ctx context.Context, to ref.Location, b Blob) error {
	p, err := r.writerOf(to)
	if err != nil {
		return err
	}
	return p.PushBlob(ctx, to, b)
}

// PutManifest implements Place.
func (r *Router) PutManifest(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) (bool, error) {
	p, err := r.writerOf(to)
	if err != nil {
		return false, err
	}
	return p.PutManifest(ctx, to, desc, data)
}

// Tag implements Place.
func (r *Router) Tag(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) error {
	p, err := r.writerOf(to)
	if err != nil {
		return err
	}
	return p.Tag(ctx, to, desc, data)
}

// ReadTag implements Place.
func (r *Router) ReadTag(ctx context.Context, t ref.Location) ([]byte, bool, error) {
	p, err := r.writerOf(t)
	if err != nil {
		return nil, false, err
	}
	return p.ReadTag(ctx, t)
}

// Untag implements Place.
func (r *Router) Untag(ctx context.Context, t ref.Location) (bool, error) {
	p, err := r.writerOf(t)
	if err != nil {
		return false, err
	}
	return p.Untag(ctx, t)
}
