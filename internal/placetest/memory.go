// Package placetest holds what tests of the place seam share: Memory, an
// in-memory place for unit tests of the code above the seam (create,
// inspect), and Run, the conformance suite that every place passes.
package placetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Memory is a place in memory: repositories (by ref.Location.Repository)
// of blobs and tags. It checks what it is given as the real places do
// (size and digest of pushed blobs), answers errdefs.ErrNotFound for what
// it lacks, and counts the calls it gets. Hooks let a test hold a call
// back. Build it with NewMemory.
type Memory struct {
	// Caps is what Capabilities answers for every location.
	Caps place.Capabilities
	// BeforeFetch, when set, runs before every Fetch; an error fails it.
	BeforeFetch func(ctx context.Context, desc ocispec.Descriptor) error
	// OnCheck, when set, runs at every CheckBlob.
	OnCheck func(to ref.Location, desc ocispec.Descriptor)

	mu    sync.Mutex
	repos map[string]*memRepo
	calls map[call]int
}

type memRepo struct {
	blobs map[digest.Digest][]byte
	types map[digest.Digest]string // media types of manifests
	tags  map[string]digest.Digest
}

type call struct {
	op   string
	dgst digest.Digest
}

var (
	_ place.Backend = (*Memory)(nil)
	_ place.Writer  = (*Memory)(nil)
)

// NewMemory returns an empty place that says it can do caps.
func NewMemory(caps place.Capabilities) *Memory {
	return &Memory{Caps: caps, repos: map[string]*memRepo{}, calls: map[call]int{}}
}

// Router returns a router with m as the registry place (scheme ""), as the
// command layer builds one: what create and inspect are handed.
func (m *Memory) Router() *place.Router {
	return place.NewRouter(map[string]place.Backend{"": m})
}

// Add stores data as desc in loc's repository and, when loc has a tag,
// tags it there (desc is then a manifest or index).
func (m *Memory) Add(loc ref.Location, desc ocispec.Descriptor, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(loc)
	r.blobs[desc.Digest] = bytes.Clone(data)
	if oci.IsManifestOrIndex(desc.MediaType) {
		r.types[desc.Digest] = desc.MediaType
	}
	if loc.Tag != "" {
		r.tags[loc.Tag] = desc.Digest
	}
}

// Calls counts the calls op ("check", "mount", "push", "fetch") got for d.
func (m *Memory) Calls(op string, d digest.Digest) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[call{op, d}]
}

// repo returns loc's repository, made empty if new; m.mu is held.
func (m *Memory) repo(loc ref.Location) *memRepo {
	r, ok := m.repos[loc.Repository()]
	if !ok {
		r = &memRepo{blobs: map[digest.Digest][]byte{}, types: map[digest.Digest]string{}, tags: map[string]digest.Digest{}}
		m.repos[loc.Repository()] = r
	}
	return r
}

func (m *Memory) count(op string, d digest.Digest) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls[call{op, d}]++
}

// Capabilities implements place.Backend.
func (m *Memory) Capabilities(ref.Location) place.Capabilities { return m.Caps }

// Manifest implements place.Reader: by digest, or by tag ("latest" when
// loc has neither).
func (m *Memory) Manifest(_ context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.repo(loc)
	d := loc.Digest
	if d == "" {
		d = r.tags[loc.TagOrLatest().Tag]
	}
	data, ok := r.blobs[d]
	if !ok || r.types[d] == "" {
		return ocispec.Descriptor{}, nil, ref.NotFound(loc, false, "")
	}
	return ocispec.Descriptor{MediaType: r.types[d], Digest: d, Size: int64(len(data))}, bytes.Clone(data), nil
}

// Fetcher implements place.Reader: every read is checked against its
// descriptor.
func (m *Memory) Fetcher(_ context.Context, loc ref.Location) (remotes.Fetcher, error) {
	return remotes.FetcherFunc(func(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
		if m.BeforeFetch != nil {
			if err := m.BeforeFetch(ctx, desc); err != nil {
				return nil, err
			}
		}
		m.count("fetch", desc.Digest)
		m.mu.Lock()
		data, ok := m.repo(loc).blobs[desc.Digest]
		m.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("%s: blob %s: %w", loc.Repository(), desc.Digest, errdefs.ErrNotFound)
		}
		return io.NopCloser(oci.NewVerifyingReader(bytes.NewReader(data), desc)), nil
	}), nil
}

// Tags implements place.Reader.
func (m *Memory) Tags(_ context.Context, loc ref.Location, _ int) (map[string]bool, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	tags := map[string]bool{}
	for t := range maps.Keys(m.repo(loc).tags) {
		tags[t] = true
	}
	return tags, true, nil
}

// Referrers implements place.Reader: Memory keeps no referrers index.
func (m *Memory) Referrers(context.Context, ref.Location) ([]ocispec.Descriptor, bool, error) {
	return nil, false, nil
}

// Prepare implements place.Writer: nothing to ready.
func (m *Memory) Prepare([]ref.Location) (func(), error) { return func() {}, nil }

// CheckBlob implements place.Writer.
func (m *Memory) CheckBlob(_ context.Context, to ref.Location, desc ocispec.Descriptor) (bool, error) {
	m.count("check", desc.Digest)
	if m.OnCheck != nil {
		m.OnCheck(to, desc)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.repo(to).blobs[desc.Digest]
	return ok, nil
}

// MountBlob implements place.Writer: a blob from's repository holds is
// linked when Caps.Mount is set.
func (m *Memory) MountBlob(_ context.Context, to, from ref.Location, desc ocispec.Descriptor) (bool, error) {
	m.count("mount", desc.Digest)
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.repo(from).blobs[desc.Digest]
	if !ok || !m.Caps.Mount {
		return false, nil
	}
	m.repo(to).blobs[desc.Digest] = data
	return true, nil
}

// PushBlob implements place.Writer: the bytes are read whole and checked.
func (m *Memory) PushBlob(ctx context.Context, to ref.Location, b place.Blob) error {
	m.count("push", b.Desc.Digest)
	var src io.Reader = bytes.NewReader(b.Data)
	if b.Data == nil {
		rc, err := b.Open(ctx)
		if err != nil {
			return fmt.Errorf("fetch %s from %s: %w", b.Desc.Digest, b.From, err)
		}
		defer rc.Close()
		src = rc
	}
	data, err := io.ReadAll(oci.NewVerifyingReader(src, b.Desc))
	if err != nil {
		return fmt.Errorf("push %s to %s: %w", b.Desc.Digest, to.Repository(), err)
	}
	m.Add(to.WithTag(""), b.Desc, data)
	return nil
}

// PutManifest implements place.Writer; it indexes no subject.
func (m *Memory) PutManifest(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) (bool, error) {
	return false, m.PushBlob(ctx, to.WithTag(""), place.Blob{Desc: desc, Data: data})
}

// Tag implements place.Writer.
func (m *Memory) Tag(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) error {
	if err := m.PushBlob(ctx, to, place.Blob{Desc: desc, Data: data}); err != nil {
		return err
	}
	m.Add(to, desc, data)
	return nil
}

// ReadTag implements place.Writer.
func (m *Memory) ReadTag(ctx context.Context, t ref.Location) ([]byte, bool, error) {
	m.mu.Lock()
	d, ok := m.repo(t).tags[t.Tag]
	m.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	_, data, err := m.Manifest(ctx, t.WithDigest(d))
	return data, err == nil, err
}

// Untag implements place.Writer.
func (m *Memory) Untag(_ context.Context, t ref.Location) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.repo(t).tags, t.Tag)
	return true, nil
}

// ReadOnly returns b without its writer: a place the router refuses to
// write to, as it does an image tar.
func ReadOnly(b place.Backend) place.Backend {
	return readOnly{b}
}

// readOnly hides the Writer of the backend it holds (an embedded interface
// promotes only its own methods).
type readOnly struct{ place.Backend }
