package placetest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Tag is the tag under which a Factory stores the suite's image.
const Tag = "v1"

// Subject is a place under test that holds the suite's image.
type Subject struct {
	// Place is a router over the place under test, as commands build one.
	Place place.Place
	// Image is the image's location, tagged Tag.
	Image ref.Location
	// Target, for a place that is written to, is a location of the same
	// place, in another repository or folder, that holds nothing yet; the
	// zero Location says the place is only read from.
	Target ref.Location
	// Corrupt, when set, stores bytes under a digest they do not have and
	// returns their descriptor, readable through Image's Fetcher: the place
	// must refuse them when read. nil where the place checks no digest on
	// reads (the reader above it does) or cannot hold such bytes.
	Corrupt func(t *testing.T) ocispec.Descriptor
	// Untagged says the place lists no tags (the Docker engine's are not
	// listed); Tags must then answer an empty list.
	Untagged bool
}

// Factory builds the place under test with img stored at tag Tag.
type Factory func(t *testing.T, img fixture.Image) Subject

// Corrupted is a blob whose bytes are not those of its digest (of the same
// size), for a Subject's Corrupt.
func Corrupted() fixture.Blob {
	return fixture.Blob{Desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("good bytes"), Size: 9},
		Data: []byte("bad bytes")}
}

// Image is the small image the suite stores in each place.
func Image() fixture.Image {
	return fixture.NewImage(fixture.ImageOptions{Layers: 2, Seed: 4242})
}

// Run checks the promises of the place seam against the place newPlace
// builds: resolve by tag and by digest, one not-found class, blobs read
// back (and refused when their bytes are wrong), tags listed, writes
// verified or, for a place only read from, refused by the router.
func Run(t *testing.T, newPlace Factory) {
	img := Image()
	s := newPlace(t, img)
	ctx := context.Background()
	t.Run("manifest by tag and digest", func(t *testing.T) { checkManifest(ctx, t, s, img) })
	t.Run("not found", func(t *testing.T) { checkNotFound(ctx, t, s) })
	t.Run("fetch", func(t *testing.T) { checkFetch(ctx, t, s, img) })
	t.Run("tags", func(t *testing.T) {
		tags, _, err := s.Place.Tags(ctx, s.Image, 0)
		if err != nil || tags[Tag] == s.Untagged {
			t.Fatalf("Tags(%s) = %v, %v: want %q in it (unless the place lists none)", s.Image, tags, err, Tag)
		}
	})
	if s.Target == (ref.Location{}) {
		t.Run("read only", func(t *testing.T) { checkRefused(ctx, t, s, img) })
		return
	}
	t.Run("write", func(t *testing.T) { checkWrite(ctx, t, s, img) })
}

func checkManifest(ctx context.Context, t *testing.T, s Subject, img fixture.Image) {
	want := img.Manifest
	for _, loc := range []ref.Location{s.Image, s.Image.WithDigest(want.Desc.Digest)} {
		desc, data, err := s.Place.Manifest(ctx, loc)
		if err != nil {
			t.Fatalf("Manifest(%s): %v", loc, err)
		}
		if desc.Digest != want.Desc.Digest || desc.Size != want.Desc.Size || desc.MediaType != want.Desc.MediaType {
			t.Errorf("Manifest(%s) = %s %s %d, want %s %s %d", loc, desc.MediaType, desc.Digest, desc.Size,
				want.Desc.MediaType, want.Desc.Digest, want.Desc.Size)
		}
		if !bytes.Equal(data, want.Data) {
			t.Errorf("Manifest(%s) bytes differ from the image's", loc)
		}
	}
}

func checkNotFound(ctx context.Context, t *testing.T, s Subject) {
	missing := digest.FromString("not in any place")
	for _, loc := range []ref.Location{s.Image.WithTag("missing"), s.Image.WithDigest(missing)} {
		if _, _, err := s.Place.Manifest(ctx, loc); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Manifest(%s): %v, want errdefs.ErrNotFound", loc, err)
		}
	}
	f, err := s.Place.Fetcher(ctx, s.Image)
	if err != nil {
		t.Fatalf("Fetcher(%s): %v", s.Image, err)
	}
	rc, err := f.Fetch(ctx, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: missing, Size: 3})
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Fetch of a missing blob: %v, want errdefs.ErrNotFound", err)
	}
}

func checkFetch(ctx context.Context, t *testing.T, s Subject, img fixture.Image) {
	f, err := s.Place.Fetcher(ctx, s.Image)
	if err != nil {
		t.Fatalf("Fetcher(%s): %v", s.Image, err)
	}
	for _, b := range append([]fixture.Blob{img.Config}, img.Layers...) {
		data, err := fetchAll(ctx, f.Fetch, b.Desc)
		if err != nil || !bytes.Equal(data, b.Data) {
			t.Errorf("Fetch(%s): %d bytes, %v; want the blob's %d bytes", b.Desc.Digest, len(data), err, len(b.Data))
		}
	}
	if s.Corrupt == nil {
		return
	}
	bad := s.Corrupt(t)
	if _, err := fetchAll(ctx, f.Fetch, bad); !errors.Is(err, imagetools.ErrDigestMismatch) && !errors.Is(err, imagetools.ErrSizeMismatch) {
		t.Errorf("Fetch of bytes that do not match their digest: %v, want a digest or size mismatch", err)
	}
}

func fetchAll(ctx context.Context, fetch func(context.Context, ocispec.Descriptor) (io.ReadCloser, error), desc ocispec.Descriptor) ([]byte, error) {
	rc, err := fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// checkRefused: every write to a place only read from is refused by the
// router with imagetools.ErrReadOnly and the same message.
func checkRefused(ctx context.Context, t *testing.T, s Subject, img fixture.Image) {
	to, d := s.Image, img.Manifest.Desc
	errs := []error{s.Place.Writable(to), s.Place.PushBlob(ctx, to, place.Blob{Desc: img.Config.Desc, Data: img.Config.Data}),
		s.Place.Tag(ctx, to, d, img.Manifest.Data)}
	_, err := s.Place.CheckBlob(ctx, to, img.Config.Desc)
	errs = append(errs, err)
	_, err = s.Place.MountBlob(ctx, to, to, img.Config.Desc)
	errs = append(errs, err)
	_, err = s.Place.PutManifest(ctx, to, d, img.Manifest.Data)
	errs = append(errs, err)
	_, _, err = s.Place.ReadTag(ctx, to)
	errs = append(errs, err)
	_, err = s.Place.Untag(ctx, to)
	errs = append(errs, err)
	for i, err := range errs {
		if !errors.Is(err, imagetools.ErrReadOnly) {
			t.Fatalf("write %d to %s: %v, want imagetools.ErrReadOnly", i, to, err)
		}
		if err.Error() != errs[0].Error() {
			t.Errorf("write %d refused with %q, not the one message %q", i, err, errs[0])
		}
	}
	if !strings.Contains(errs[0].Error(), to.String()) {
		t.Errorf("refusal %q does not name %s", errs[0], to)
	}
}

// checkWrite copies the image to Target blob by blob and tags it there, as
// create does, and checks that a blob whose bytes are wrong is refused.
func checkWrite(ctx context.Context, t *testing.T, s Subject, img fixture.Image) {
	to := s.Target.WithTag(Tag)
	if err := s.Place.Writable(to); err != nil {
		t.Fatalf("Writable(%s): %v", to, err)
	}
	undo, err := s.Place.Prepare([]ref.Location{s.Image, to})
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	defer func() {
		if t.Failed() {
			undo()
		}
	}()
	bad := img.Layers[0]
	bad.Data = bytes.Repeat([]byte{'x'}, len(bad.Data))
	if err := s.Place.PushBlob(ctx, to, place.Blob{Desc: bad.Desc, Data: bad.Data, From: "test"}); err == nil {
		t.Errorf("PushBlob of bytes that do not match their digest was taken")
	}
	src, err := s.Place.Fetcher(ctx, s.Image)
	if err != nil {
		t.Fatalf("Fetcher(%s): %v", s.Image, err)
	}
	for _, b := range append([]fixture.Blob{img.Config}, img.Layers...) {
		present, err := s.Place.CheckBlob(ctx, to, b.Desc)
		if err != nil || present {
			t.Fatalf("CheckBlob(%s) in an empty %s = %v, %v", b.Desc.Digest, to.Repository(), present, err)
		}
		blob := place.Blob{Desc: b.Desc, From: s.Image.Repository(), Open: func(ctx context.Context) (io.ReadCloser, error) {
			return src.Fetch(ctx, b.Desc)
		}}
		if err := s.Place.PushBlob(ctx, to, blob); err != nil {
			t.Fatalf("PushBlob(%s): %v", b.Desc.Digest, err)
		}
		if present, err := s.Place.CheckBlob(ctx, to, b.Desc); err != nil || !present {
			t.Errorf("CheckBlob(%s) after its push = %v, %v", b.Desc.Digest, present, err)
		}
	}
	if err := s.Place.Tag(ctx, to, img.Manifest.Desc, img.Manifest.Data); err != nil {
		t.Fatalf("Tag(%s): %v", to, err)
	}
	data, found, err := s.Place.ReadTag(ctx, to)
	if err != nil || !found || !bytes.Equal(data, img.Manifest.Data) {
		t.Errorf("ReadTag(%s) = %d bytes, %v, %v; want the manifest", to, len(data), found, err)
	}
	checkManifest(ctx, t, Subject{Place: s.Place, Image: to}, img)
}

// LayoutTar returns a tar of an OCI image layout that holds img under the
// name name (its index.json entry's ref.name), as docker save writes with
// the containerd image store: the input of the tar and engine places.
// extra blobs are stored too, under their descriptors' digests whatever
// their bytes.
func LayoutTar(t testing.TB, img fixture.Image, name string, extra ...fixture.Blob) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := fixture.WriteLayout(dir, map[string]fixture.Blob{name: img.Manifest}, append(img.Blobs(), extra...)...); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
