package tests

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/consumers"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/klauspost/compress/zstd"
)

// decompressed reads a gzip (one stream: docker load refuses bytes after
// it) or zstd file whole.
func decompressed(t *testing.T, compressed []byte) []byte {
	t.Helper()
	var r io.Reader
	switch {
	case bytes.HasPrefix(compressed, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(compressed))
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		r = zr
	case bytes.HasPrefix(compressed, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(bytes.NewReader(compressed))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("neither gzip nor zstd: starts % x", compressed[:min(len(compressed), 4)])
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExportCompressed writes compressed bundles: by the name of -o
// (.tar.gz, .tgz, .tar.zst) or --compression (also to stdout), each the
// plain export's tar compressed, which docker load (Docker 29: zstd too)
// takes with the source's image ID (there: the manifest digest) and archive:// reads back with the digest kept (its
// layers, compressed already, are not compressed again).
func TestExportCompressed(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	d := consumers.StartDocker29(t)
	b := registrytest.Start(t, registrytest.Options{})
	x := newImgx(t)
	name := e.ref("test/app:1")
	plainPath, _ := export(t, x, name)
	plain, err := os.ReadFile(plainPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		file  string
		flags []string
		magic []byte
	}{
		// gzip: no time, no name, the fastest level (XFL 4).
		{"app.tar.gz", nil, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4}},
		{"app.tgz", nil, []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4}},
		{"app.tar.zst", nil, []byte{0x28, 0xb5, 0x2f, 0xfd}},
		{"app.bundle", []string{"--compression", "zstd"}, []byte{0x28, 0xb5, 0x2f, 0xfd}},
		{"plain.tar.gz", []string{"--compression", "none"}, plain[:9]},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			x.MustRun(append(append([]string{"export", "--progress", "quiet", "-o", path}, tc.flags...), name)...)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(got, tc.magic) {
				t.Fatalf("%s starts % x, want % x", tc.file, got[:len(tc.magic)], tc.magic)
			}
			if !bytes.Equal(got, plain) && !bytes.Equal(decompressed(t, got), plain) {
				t.Fatalf("%s is not the plain export compressed", tc.file)
			}
			if out, err := d.Load(t, path); err != nil || !strings.Contains(out, "Loaded image: "+name) {
				t.Fatalf("docker load %s: %v\n%s", tc.file, err, out)
			}
			if id := d.ImageIDs(t)[name]; id != e.app.Manifest.Desc.Digest.String() {
				t.Fatalf("image ID %q, want %s", id, e.app.Manifest.Desc.Digest)
			}
			// Read back: the image's layers stay as the registry had them.
			pushed := createFrom(t, x, b, "back/"+strings.ReplaceAll(tc.file, ".", "-")+":1", "archive://"+path)
			if pushed != e.app.Manifest.Desc.Digest {
				t.Fatalf("archive://%s pushed %s, want the source's %s", tc.file, pushed, e.app.Manifest.Desc.Digest)
			}
		})
	}
	t.Run("stdout", func(t *testing.T) {
		res := x.MustRun("export", "--progress", "quiet", "--compression", "gzip", name)
		if !bytes.Equal(decompressed(t, []byte(res.Stdout)), plain) {
			t.Fatal("gzip on stdout is not the plain export compressed")
		}
	})
	t.Run("refused", func(t *testing.T) {
		x.MustFail([]string{"--compression gzip: an OCI layout folder is not compressed: write a tar (-o FILE) to compress it"},
			"export", "--compression", "gzip", "-o", "oci-layout://"+filepath.Join(dir, "layout"), name)
		x.MustFail([]string{"--load and --compression are exclusive"}, "export", "--load", "--compression", "gzip", name)
		x.MustFail([]string{`invalid --compression "lz4": want gzip, zstd, none`}, "export", "--compression", "lz4", "-o", filepath.Join(dir, "x.tar"), name)
		for _, p := range []string{filepath.Join(dir, "layout"), filepath.Join(dir, "x.tar")} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("%s was written (%v)", p, err)
			}
		}
	})
}
