package export

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/ocilayout"
)

// writeLayoutDir writes the images as a layout folder as export -o
// oci-layout://DIR does.
func writeLayoutDir(ctx context.Context, dir string, imgs []image, opts Options) (result, error) {
	var res result
	err := ocilayout.WriteFolder(ctx, dir, func(w io.Writer) error {
		var err error
		res, err = writeImages(ctx, w, imgs, opts)
		return err
	})
	return res, err
}

func TestWriteLayoutDirMatchesTar(t *testing.T) {
	s := newExptestStore()
	m := exptestMulti(t, s)
	imgs := []image{{Fetcher: s, Desc: exptestRoot(m.index), Name: "localhost:5000/multi:1"}}
	opts := Options{Format: FormatOCI, AllPlatforms: true, Platforms: exptestLinux("amd64")}
	_, entries := exptestExport(t, imgs, opts)

	dir := filepath.Join(t.TempDir(), "out", "layout")
	if _, err := writeLayoutDir(context.Background(), dir, imgs, opts); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		p := filepath.Join(dir, filepath.FromSlash(e.hdr.Name))
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if e.hdr.Typeflag == tar.TypeDir {
			if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: mode %v, want a 0755 folder", e.hdr.Name, fi.Mode())
			}
			continue
		}
		files = append(files, e.hdr.Name)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, e.data) || int64(fi.Mode().Perm()) != e.hdr.Mode {
			t.Errorf("%s: mode %v and content differ from the tar entry (mode %o)", e.hdr.Name, fi.Mode(), e.hdr.Mode)
		}
	}
	var onDisk []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			onDisk = append(onDisk, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if !slices.Equal(onDisk, files) {
		t.Errorf("files on disk %v, want %v", onDisk, files)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("layout folder mode: %v %v", fi, err)
	}
	// Only the layout is left beside it.
	if left, _ := os.ReadDir(filepath.Dir(dir)); len(left) != 1 {
		t.Errorf("beside the layout: %v", left)
	}
}

func TestWriteLayoutDirTarget(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one"}})
	imgs := []image{{Fetcher: s, Desc: exptestRoot(img.manifest), Name: "localhost:5000/app:1"}}
	opts := Options{Format: FormatOCI, Platforms: exptestLinux("amd64")}

	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := writeLayoutDir(context.Background(), empty, imgs, opts); err != nil {
		t.Fatalf("an empty folder is replaced: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "index.json")); err != nil {
		t.Fatal(err)
	}
	_, err := writeLayoutDir(context.Background(), empty, imgs, opts)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("export into a non-empty folder: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := writeLayoutDir(context.Background(), file, imgs, opts); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Fatalf("export onto a file: %v", err)
	}
}

func TestWriteLayoutDirFailureLeavesNothing(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one", "two"}})
	bad := img.layers[1]
	tampered := slices.Clone(s.blobs[bad.Digest])
	tampered[len(tampered)-1] ^= 0xff
	s.blobs[bad.Digest] = tampered
	parent := t.TempDir()
	_, err := writeLayoutDir(context.Background(), filepath.Join(parent, "layout"),
		[]image{{Fetcher: s, Desc: exptestRoot(img.manifest)}}, Options{Platforms: exptestLinux("amd64")})
	if !errors.Is(err, imagetools.ErrDigestMismatch) {
		t.Fatalf("got %v, want imagetools.ErrDigestMismatch", err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("left after a failed export: %v", left)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = writeLayoutDir(ctx, filepath.Join(parent, "layout"), []image{{Fetcher: s, Desc: exptestRoot(img.manifest)}}, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("left after a cancelled export: %v", left)
	}
}
