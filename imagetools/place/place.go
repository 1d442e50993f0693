// Package place defines where images live for the core: the Reader and
// Writer interfaces, which every kind of location implements (a registry,
// an OCI layout folder; an image tar and the Docker engine only read), and
// the Router, which picks the implementation for a location by its scheme
// and refuses writes to a place that is only read from. Code above this
// package (create, inspect, export) is written once against these
// interfaces and never asks which kind of place it holds; what differs
// between kinds is said by Capabilities.
//
// A missing tag, digest or blob is errdefs.ErrNotFound (containerd errdefs)
// in every place, and a write to a read-only place is
// imagetools.ErrReadOnly; test them with errors.Is.
package place

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Place is what code above this package holds (a Router): every kind of
// location, read and written through one value. Every method takes the
// location it acts on: a repository (or folder), with the tag or digest the
// call needs.
type Place interface {
	Reader
	Writer
	// Capabilities says what the place at loc can do beyond reading and
	// writing content.
	Capabilities(loc ref.Location) Capabilities
	// Writable returns nil when loc's place is written to, else the error
	// (imagetools.ErrReadOnly) that every write to loc returns: a command
	// checks its targets before it reads anything.
	Writable(loc ref.Location) error
}

// Backend is one kind of place as the Router holds it: it reads and says
// what it can do. A backend that also implements Writer is written to; the
// Router refuses writes to any other.
type Backend interface {
	Reader
	// Capabilities says what the place at loc can do.
	Capabilities(loc ref.Location) Capabilities
}

// Reader reads images. A tag, digest or blob the place does not hold is an
// error that is errdefs.ErrNotFound to errors.Is, in every place.
type Reader interface {
	// Manifest reads the manifest or index at loc: by digest, by tag
	// ("latest" when loc has neither), or the only image of a place that
	// holds one. The bytes are checked against the digest asked for or
	// announced and typed; one request where the place is remote. A missing
	// tag or digest is errdefs.ErrNotFound.
	Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error)
	// Fetcher reads content of loc's repository by descriptor, blobs and
	// manifests alike; a remote place resumes a cut download. Its Fetch of
	// a blob the place lacks is errdefs.ErrNotFound; bytes that do not
	// match the descriptor fail the read where the place checks them.
	Fetcher(ctx context.Context, loc ref.Location) (remotes.Fetcher, error)
	// Tags lists the tags of loc's repository; a repository the place does
	// not know has none. With limit 0 every tag is listed and complete is
	// true. With limit > 0 a place where listing is a request
	// (Capabilities.ListTags) asks for one page of at most limit tags:
	// complete is false when the repository has more (or the page was too
	// large to read), and the tags are then a part of them; other places
	// list every tag.
	Tags(ctx context.Context, loc ref.Location, limit int) (tags map[string]bool, complete bool, err error)
	// Referrers lists the OCI referrers of the manifest at loc (a location
	// with a digest); supported is false when the place keeps no index of
	// referrers (then the fallback tag holds them, if anyone wrote it).
	Referrers(ctx context.Context, loc ref.Location) (descs []ocispec.Descriptor, supported bool, err error)
}

// Writer writes images: blobs and manifests by digest, then tags.
//
// An upload a place starts while it checks or mounts a blob (a registry's
// upload session) stays inside the place, kept for the PushBlob of that
// blob into that repository: the upload protocol is the place's business,
// as ggcr's remote.Write and regclient's ocidir keep theirs, and no caller
// carries a handle it cannot read.
type Writer interface {
	// Prepare readies the places of locs before anything runs in parallel,
	// so that a bad configuration fails before anything moves. The undo it
	// returns removes what a failed write left that nobody had before (an
	// OCI layout folder the write created).
	Prepare(locs []ref.Location) (undo func(), err error)
	// CheckBlob reports whether to's repository holds desc. When it does
	// not, the place may start the upload at once (an upload session) and
	// keep it for PushBlob, so that the transfer starts with its bytes.
	CheckBlob(ctx context.Context, to ref.Location, desc ocispec.Descriptor) (present bool, err error)
	// MountBlob links desc from another repository of the same place into
	// to's (see Mountable). mounted is false, with no error, when the
	// place wants the blob uploaded instead (keeping, as CheckBlob does,
	// the upload it may have started then).
	MountBlob(ctx context.Context, to, from ref.Location, desc ocispec.Descriptor) (mounted bool, err error)
	// PushBlob writes a blob into to's repository, checking size and digest
	// on the way, in an upload CheckBlob or MountBlob started for it when
	// there is one.
	PushBlob(ctx context.Context, to ref.Location, b Blob) error
	// PutManifest stores a manifest or index by digest. indexed reports
	// that the place recorded its subject itself (the OCI-Subject answer),
	// so that no fallback tag is needed.
	PutManifest(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) (indexed bool, err error)
	// Tag points to's tag at the manifest or index desc, whose bytes are
	// data, storing them first where the place needs it.
	Tag(ctx context.Context, to ref.Location, desc ocispec.Descriptor, data []byte) error
	// ReadTag reads the manifest at a tag about to be rewritten, with the
	// rights the write needs; found is false when the tag does not exist.
	ReadTag(ctx context.Context, t ref.Location) (data []byte, found bool, err error)
	// Untag removes tag t alone: the manifest it points at and every other
	// tag stay. removed is false, with no error, when the place cannot
	// remove a tag alone (a registry that refuses deletes); it never
	// deletes by digest, which would drop every tag of that manifest.
	Untag(ctx context.Context, t ref.Location) (removed bool, err error)
}

// Capabilities say what a place can do beyond reading and writing content.
type Capabilities struct {
	// Mount: blobs can be linked between repositories of the same host
	// (ref.Location.Host) without moving their bytes.
	Mount bool
	// Referrers: the place keeps cosign signatures and OCI referrers beside
	// images, which create copies along with the images.
	Referrers bool
	// CheckFirst: looking for a blob before sending it saves a transfer
	// (a remote place); where the write itself finds what is there, a
	// separate check is skipped.
	CheckFirst bool
	// Compress: layers are stored compressed here (a registry, as docker
	// push does), so a push compresses the Unpacked places' plain layers
	// before they are written.
	Compress bool
	// ListTags: the tags of a repository are listed in one request (a
	// registry's tags/list, a page at a time): one bounded list of a
	// source's tags answers at once which referrer tags exist, in place of
	// a read by name each. Where tags are read locally, they are read by
	// name.
	ListTags bool
	// Unpacked: images here are as an engine keeps them (a docker save
	// tar, the Docker engine): plain layers whose bytes were never pushed
	// anywhere, which a push to a place that compresses compresses. The
	// plain layers of any other place are content, copied as they are.
	Unpacked bool
}

// Blob is a blob to write, with how to read it.
type Blob struct {
	Desc ocispec.Descriptor
	// Data holds the bytes when they are in memory; nil to stream them.
	Data []byte
	// Open opens the source bytes afresh: a write that fails half way may
	// start over with a new read. Unused when Data is set.
	Open func(ctx context.Context) (io.ReadCloser, error)
	// From names where the bytes come from, for messages.
	From string
	// Progress receives byte counts and notices; nil shows nothing.
	Progress progress.SubLogger
}

// progressMinBytes is the size from which a copy shows a byte count.
const progressMinBytes = 1 << 20

// Counted returns r with the blob's byte count shown on its Progress as it
// is read (for blobs of 1 MiB or more), and the func that ends the count.
func (b Blob) Counted(r io.Reader) (io.Reader, func()) {
	if b.Progress == nil || b.Desc.Size < progressMinBytes {
		return r, func() {}
	}
	counter := progress.NewByteCounter(b.Progress, b.Desc.Digest.String(), b.Desc.Size)
	return io.TeeReader(r, counter), counter.Done
}

// Logf writes a line to the blob's Progress, if it has one.
func (b Blob) Logf(format string, args ...any) {
	if b.Progress != nil {
		b.Progress.Log(1, fmt.Appendf(nil, format+"\n", args...))
	}
}
