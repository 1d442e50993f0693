package export

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// exptestConfigAfterLayer is a fetcher whose config fetch waits until a
// layer fetch has started: an export that reads the config before the
// layers waits on it until its context ends.
type exptestConfigAfterLayer struct {
	*exptestStore
	config  digest.Digest
	once    sync.Once
	started chan struct{}
}

func (f *exptestConfigAfterLayer) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if desc.Digest == f.config {
		select {
		case <-f.started:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	} else if desc.MediaType == ocispec.MediaTypeImageLayerGzip {
		f.once.Do(func() { close(f.started) })
	}
	return f.exptestStore.Fetch(ctx, desc)
}

// TestExportFileReadsConfigBesideLayers checks that to a file the config
// manifest.json is checked against is fetched beside the layers, not in a
// round trip of its own before them, that every blob is still fetched once,
// and that the bytes are those of the stream.
func TestExportFileReadsConfigBesideLayers(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one", "two"}})
	f := &exptestConfigAfterLayer{exptestStore: s, config: img.config.Digest, started: make(chan struct{})}
	imgs := []image{{Fetcher: f, Desc: exptestRoot(img.manifest), Name: "localhost:5000/app:1"}}
	// A guard against the wait above, not a timing: a pass takes no waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "out.tar")
	if err := atomicfile.Write(path, func(w io.Writer) error { return exptestWrite(ctx, w, imgs, Options{}) }); err != nil {
		t.Fatalf("Write to a file: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]ocispec.Descriptor{img.manifest, img.config}, img.layers...) {
		if n := s.fetchedBy[d.Digest]; n != 1 {
			t.Errorf("%s fetched %d times, want 1", d.Digest, n)
		}
	}
	s.fetchedBy = map[digest.Digest]int{}
	want, _ := exptestExport(t, []image{{Fetcher: s, Desc: exptestRoot(img.manifest), Name: "localhost:5000/app:1"}}, Options{})
	if string(got) != string(want) {
		t.Error("file output differs from the stream")
	}
}

// TestExportFileConfigCheck checks that a config fetched beside the layers
// is still checked: the export to a file fails, naming the image, and
// leaves no file.
func TestExportFileConfigCheck(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one", "two"}})
	broken := s.manifest(t, img.config, img.layers[:1], nil)
	dir := t.TempDir()
	target := filepath.Join(dir, "out.tar")
	err := atomicfile.Write(target, func(w io.Writer) error {
		return exptestWrite(context.Background(), w, []image{{Fetcher: s, Desc: exptestRoot(broken), Name: "localhost:5000/broken:1"}}, Options{})
	})
	if err == nil || !strings.Contains(err.Error(), "localhost:5000/broken:1") || !strings.Contains(err.Error(), "2 diff_ids for 1 layers") {
		t.Fatalf("got %v, want a config check error naming the image and counts", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*")); len(matches) != 0 {
		t.Errorf("files left: %q", matches)
	}
}

// TestExportWriteOnlyFile checks an export into a regular file that cannot
// be read back (a shell's "> image.tar" opens it write-only): the configs
// are then checked before the first byte, and the bytes are the stream's.
func TestExportWriteOnlyFile(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one", "two"}})
	imgs := []image{{Fetcher: s, Desc: exptestRoot(img.manifest), Name: "localhost:5000/app:1"}}
	path := filepath.Join(t.TempDir(), "out.tar")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := exptestWrite(context.Background(), f, imgs, Options{}); err != nil {
		t.Fatalf("Write to a write-only file: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := exptestExport(t, imgs, Options{})
	if string(got) != string(want) {
		t.Error("write-only file output differs from the stream")
	}
}
