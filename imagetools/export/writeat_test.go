package export

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// exptestExportFile exports into a new file, after prefix, through the
// offset path, and returns what follows prefix.
func exptestExportFile(t testing.TB, imgs []image, opts Options, prefix []byte) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(prefix); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := fileAt(f); !ok {
		t.Fatal("a new regular file is not taken for the offset path")
	}
	if _, err := writeImages(context.Background(), f, imgs, opts); err != nil {
		t.Fatalf("Write to a file: %v", err)
	}
	// The offset must be at the end, as after sequential writes.
	if _, err := f.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, prefix) || !bytes.HasSuffix(data, []byte("after")) {
		t.Fatalf("file does not hold prefix, tar, suffix in order")
	}
	return data[len(prefix) : len(data)-len("after")]
}

// TestExportFileSameBytes checks that the offset path writes exactly the
// bytes of the sequential path, whatever the mix of entries.
func TestExportFileSameBytes(t *testing.T) {
	s := newExptestStore()
	m := exptestMulti(t, s)
	a := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"base", "a"}})
	b := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"base", strings.Repeat("b", 5000)}})
	win := s.image(t, exptestImageSpec{platform: "windows/amd64", layers: []string{"app", "base"}, foreign: true})
	var layers []string
	for i := range 12 {
		layers = append(layers, strings.Repeat(fmt.Sprint(i), 70000+i*511))
	}
	big := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: layers})
	shared := []image{
		{Fetcher: s, Desc: exptestRoot(a.manifest), Name: "localhost:5000/a:1"},
		{Fetcher: s, Desc: exptestRoot(b.manifest), Name: "localhost:5000/b:1"},
		{Fetcher: s, Desc: exptestRoot(a.manifest), Name: "localhost:5000/a:latest"},
	}
	tests := []struct {
		name string
		imgs []image
		opts Options
	}{
		{name: "shared layers", imgs: shared, opts: Options{Platforms: exptestLinux("amd64")}},
		{name: "index one platform", imgs: []image{{Fetcher: s, Desc: exptestRoot(m.index), Name: "localhost:5000/multi:1"}}, opts: Options{Platforms: exptestLinux("arm64")}},
		{name: "index all platforms oci", imgs: []image{{Fetcher: s, Desc: exptestRoot(m.index)}}, opts: Options{Format: FormatOCI, AllPlatforms: true, Platforms: exptestLinux("amd64")}},
		{name: "foreign excluded", imgs: []image{{Fetcher: s, Desc: exptestRoot(win.manifest), Name: "localhost:5000/win:1"}}},
		{name: "foreign included", imgs: []image{{Fetcher: s, Desc: exptestRoot(win.manifest), Name: "localhost:5000/win:1"}}, opts: Options{IncludeForeign: true}},
		{name: "many layers, one at a time", imgs: append(slices.Clone(shared), image{Fetcher: s, Desc: exptestRoot(big.manifest), Name: "localhost:5000/big:1"}), opts: Options{Platforms: exptestLinux("amd64"), MaxConcurrency: 1}},
		{name: "many layers", imgs: append(slices.Clone(shared), image{Fetcher: s, Desc: exptestRoot(big.manifest), Name: "localhost:5000/big:1"}), opts: Options{Platforms: exptestLinux("amd64"), MaxConcurrency: 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, _ := exptestExport(t, tc.imgs, tc.opts)
			got := exptestExportFile(t, tc.imgs, tc.opts, nil)
			if !bytes.Equal(got, want) {
				t.Fatalf("file output (%d bytes) differs from the stream (%d bytes)", len(got), len(want))
			}
			if got := exptestExportFile(t, tc.imgs, tc.opts, []byte("prefix")); !bytes.Equal(got, want) {
				t.Fatalf("file output after a prefix differs from the stream")
			}
		})
	}
}

// TestOffsetsMatchTarWriter checks the offsets against archive/tar,
// including a header that needs PAX records and sizes on and off a block.
func TestOffsetsMatchTarWriter(t *testing.T) {
	records := []record{
		{Header: tarHeader("blobs/", tar.TypeDir, 0o755, 0)},
		{Header: tarHeader("a", tar.TypeReg, 0o644, 512), Data: bytes.Repeat([]byte("a"), 512)},
		{Header: tarHeader("dir/"+strings.Repeat("n", 120), tar.TypeReg, 0o644, 3), Data: []byte("xyz")},
		{Header: tarHeader("b", tar.TypeReg, 0o644, 0), Data: []byte{}},
		{Header: tarHeader("c", tar.TypeReg, 0o644, 1025), Data: bytes.Repeat([]byte("c"), 1025)},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var offsets []int64
	for _, r := range records {
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		offsets = append(offsets, int64(buf.Len()))
		if err := tw.WriteHeader(r.Header); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(r.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	offs, err := offsetsOf(records)
	if err != nil {
		t.Fatal(err)
	}
	if offs.size != int64(buf.Len()) {
		t.Errorf("tar size %d, tar.Writer wrote %d", offs.size, buf.Len())
	}
	for i, s := range offs.slots {
		if s.off != offsets[i] {
			t.Errorf("%s at %d, tar.Writer put it at %d", s.rec.Header.Name, s.off, offsets[i])
		}
		if !bytes.Equal(s.header, buf.Bytes()[s.off:s.content()]) {
			t.Errorf("%s: header bytes differ from tar.Writer's", s.rec.Header.Name)
		}
	}
	if len(offs.slots[2].header) <= tarBlock {
		t.Error("the long name did not take a PAX header: the test no longer covers it")
	}
}

// exptestLockstepStore holds back the last byte of every layer until every
// layer has delivered all the others. The stream path, which buffers only a
// bounded amount ahead of the tar, cannot finish such an export when the
// layers are larger than that; the offset path must.
type exptestLockstepStore struct {
	*exptestSynthetic

	mu      sync.Mutex
	waiting int
	all     chan struct{}
}

func (s *exptestLockstepStore) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := s.exptestSynthetic.Fetch(ctx, desc)
	if _, ok := s.layers[desc.Digest]; err != nil || !ok {
		return rc, err
	}
	return &exptestLockstepReader{ReadCloser: rc, ctx: ctx, s: s, left: desc.Size}, nil
}

type exptestLockstepReader struct {
	io.ReadCloser
	ctx  context.Context
	s    *exptestLockstepStore
	left int64
}

func (r *exptestLockstepReader) Read(p []byte) (int, error) {
	if r.left == 1 {
		r.s.mu.Lock()
		if r.s.waiting++; r.s.waiting == len(r.s.layers) {
			close(r.s.all)
		}
		r.s.mu.Unlock()
		select {
		case <-r.s.all:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
	if r.left > 1 && int64(len(p)) >= r.left {
		p = p[:r.left-1]
	}
	n, err := r.ReadCloser.Read(p)
	r.left -= int64(n)
	return n, err
}

// exptestHashWriter hashes what is written to it.
type exptestHashWriter struct{ d digest.Digester }

func (w exptestHashWriter) Write(p []byte) (int, error) { return w.d.Hash().Write(p) }

func TestExportFileFetchesInParallel(t *testing.T) {
	// Larger than all the stream path may hold ahead of the tar.
	const size = (chunksAhead+streamExtraChunks+2)*chunkSize + 1
	f, manifest := exptestBigImage(t, 2, size)
	lockstep := &exptestLockstepStore{exptestSynthetic: f, all: make(chan struct{})}
	imgs := []image{{Fetcher: lockstep, Desc: manifest, Name: "localhost:5000/app:1"}}
	opts := Options{Platforms: exptestLinux("amd64"), MaxConcurrency: 2}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var p exptestProgress
	opts.Progress = &p
	target := filepath.Join(t.TempDir(), "out.tar")
	err := atomicfile.Write(target, func(w io.Writer) error { return exptestWrite(ctx, w, imgs, opts) })
	if err != nil {
		t.Fatalf("writeImages: %v", err)
	}
	file, err := os.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	got, err := digest.SHA256.FromReader(file)
	if err != nil {
		t.Fatal(err)
	}
	want := exptestHashWriter{d: digest.SHA256.Digester()}
	opts.Progress = nil
	if _, err := writeImages(context.Background(), want, []image{{Fetcher: f, Desc: manifest, Name: "localhost:5000/app:1"}}, opts); err != nil {
		t.Fatal(err)
	}
	if got != want.d.Digest() {
		t.Error("file output differs from the stream")
	}
	for d := range f.layers {
		if p.blobDone[d] != size {
			t.Errorf("layer %s: last progress %d, want %d", d, p.blobDone[d], size)
		}
	}
	if n := len(p.events); n == 0 || p.events[n-1] != "naming localhost:5000/app:1" {
		t.Errorf("naming is not the last event: %q", p.events)
	}
}

func TestExportFileFallsBack(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one", "two"}})
	imgs := []image{{Fetcher: s, Desc: exptestRoot(img.manifest), Name: "localhost:5000/app:1"}}
	opts := Options{Platforms: exptestLinux("amd64")}
	want, _ := exptestExport(t, imgs, opts)

	// A file opened for appending cannot be written at offsets.
	path := filepath.Join(t.TempDir(), "append.tar")
	if err := os.WriteFile(path, []byte("head"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, ok := fileAt(f); ok {
		t.Error("a file opened for appending is taken for the offset path")
	}
	if _, err := writeImages(context.Background(), f, imgs, opts); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, append([]byte("head"), want...)) {
		t.Error("appended tar differs from the stream")
	}

	// A pipe is streamed.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, _, ok := fileAt(w); ok {
		t.Error("a pipe is taken for the offset path")
	}
	var got []byte
	var readErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, readErr = io.ReadAll(r)
	}()
	_, err = writeImages(context.Background(), w, imgs, opts)
	w.Close()
	wg.Wait()
	if err != nil || readErr != nil {
		t.Fatalf("export to a pipe: %v, read: %v", err, readErr)
	}
	if !bytes.Equal(got, want) {
		t.Error("piped tar differs from the stream")
	}
}

func TestExportFileCancelled(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one", "two", "three"}})
	ctx, cancel := context.WithCancel(context.Background())
	p := &exptestProgress{onBlob: cancel}
	dir := t.TempDir()
	err := atomicfile.Write(filepath.Join(dir, "out.tar"), func(w io.Writer) error {
		return exptestWrite(ctx, w, []image{{Fetcher: s, Desc: exptestRoot(img.manifest)}}, Options{Platforms: exptestLinux("amd64"), Progress: p})
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("files left after a cancelled export: %v", left)
	}
}

// TestExportStreamFetchesAhead checks that, when streaming, a layer behind
// the one being written downloads further than its own chunks, into the
// budget shared by the pipes.
func TestExportStreamFetchesAhead(t *testing.T) {
	const size = 4 * (chunksAhead + 2) * chunkSize
	if size >= streamExtraChunks*chunkSize {
		t.Fatal("fixture: layers must fit in the shared budget")
	}
	f, manifest := exptestBigImage(t, 2, size)
	lockstep := &exptestLockstepStore{exptestSynthetic: f, all: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts := Options{Platforms: exptestLinux("amd64"), MaxConcurrency: 2}
	got := exptestHashWriter{d: digest.SHA256.Digester()}
	if _, err := writeImages(ctx, got, []image{{Fetcher: lockstep, Desc: manifest}}, opts); err != nil {
		t.Fatalf("writeImages: %v", err)
	}
	want := exptestHashWriter{d: digest.SHA256.Digester()}
	if _, err := writeImages(context.Background(), want, []image{{Fetcher: f, Desc: manifest}}, opts); err != nil {
		t.Fatal(err)
	}
	if got.d.Digest() != want.d.Digest() {
		t.Error("two streamed exports differ")
	}
}
