package tests

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/docker-imgx/docker-imgx/internal/consumers"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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

// TestCreateCompressesPlainLayers pushes images whose layers are plain
// tars (OCI and Docker media types) from an image tar to a registry: gzip
// by default (Docker's gzip type in a Docker manifest), zstd on request (a
// Docker manifest then becomes OCI), config and diff IDs kept; a Docker 29
// engine pulls each and holds the source's layers (diff IDs). From a
// registry, the same images are copied as they are, digests kept.
func TestCreateCompressesPlainLayers(t *testing.T) {
	t.Parallel()
	a := registrytest.Start(t, registrytest.Options{})
	b := registrytest.Start(t, registrytest.Options{})
	d := consumers.StartDocker29(t)
	x := newImgx(t)
	ociImg := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 24, Compression: fixture.Uncompressed})
	dockerImg := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 25, Compression: fixture.Uncompressed, Docker: true})
	pushImage(t, a, "plain/oci", "1", ociImg)
	pushImage(t, a, "plain/docker", "1", dockerImg)
	for _, img := range []fixture.Image{ociImg, dockerImg} {
		repo := map[bool]string{true: "plain/docker", false: "plain/oci"}[img.Manifest.Desc.MediaType == images.MediaTypeDockerSchema2Manifest]
		if got := createFrom(t, x, b, "kept/"+repo+":1", a.Host+"/"+repo+":1"); got != img.Manifest.Desc.Digest {
			t.Fatalf("%s from a registry: pushed %s, want the source's %s", repo, got, img.Manifest.Desc.Digest)
		}
	}
	tarPath, _ := export(t, x, a.Host+"/plain/oci:1", a.Host+"/plain/docker:1")
	for _, tc := range []struct {
		name, src, flag     string
		img                 fixture.Image
		manifestType, layer string
	}{
		{"oci gzip", "plain/oci", "", ociImg, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageLayerGzip},
		{"oci zstd", "plain/oci", "zstd", ociImg, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageLayerZstd},
		{"docker gzip", "plain/docker", "gzip", dockerImg, images.MediaTypeDockerSchema2Manifest, images.MediaTypeDockerSchema2LayerGzip},
		{"docker zstd", "plain/docker", "zstd", dockerImg, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageLayerZstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := "pushed/" + strings.ReplaceAll(tc.name, " ", "-")
			args := []string{"create", "--progress", "plain", "--prefer-index=false", "-t", b.Host + "/" + repo + ":1"}
			if tc.flag != "" {
				args = append(args, "--compression", tc.flag)
			}
			res := x.MustRun(append(args, "archive://"+tarPath+":"+a.Host+"/"+tc.src+":1")...)
			pushed := mustDigestLine(t, res)
			if !strings.Contains(res.Stderr, "compressing "+tc.img.Layers[0].Desc.Digest.String()) {
				t.Errorf("the progress does not show the compression of %s:\n%s", tc.img.Layers[0].Desc.Digest, res.Stderr)
			}
			m := pushedManifest(t, b, repo, pushed)
			if m.MediaType != tc.manifestType {
				t.Fatalf("manifest type %s, want %s", m.MediaType, tc.manifestType)
			}
			assertImageOf(t, b, repo, pushed, tc.img)
			assertLayerTypes(t, b, repo, pushed, tc.layer)

			name := b.Host + "/" + repo + ":1"
			if out, err := d.Run(t, "pull", "-q", name); err != nil {
				t.Fatalf("docker pull: %v\n%s", err, out)
			}
			if id := d.ImageIDs(t)[name]; id != pushed.String() {
				t.Fatalf("image ID %q, want the pushed manifest %s", id, pushed)
			}
			out, err := d.Run(t, "image", "inspect", "--format", "{{json .RootFS.Layers}}", name)
			var diffIDs []digest.Digest
			if err != nil || json.Unmarshal([]byte(out), &diffIDs) != nil {
				t.Fatalf("inspect: %v\n%s", err, out)
			}
			var cfg ocispec.Image
			if err := json.Unmarshal(tc.img.Config.Data, &cfg); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(diffIDs, cfg.RootFS.DiffIDs) {
				t.Fatalf("the engine's layers %v, want the source's diff IDs %v", diffIDs, cfg.RootFS.DiffIDs)
			}
		})
	}
}
