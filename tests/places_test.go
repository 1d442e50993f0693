package tests

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/consumers"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// createFrom pushes src as it is (no index around a single image) to
// reg/repo:tag and returns the digest create printed.
func createFrom(t *testing.T, x *imgx, reg *registrytest.Registry, repoTag, src string) digest.Digest {
	t.Helper()
	res := x.MustRun("create", "--progress", "quiet", "--prefer-index=false", "-t", reg.Host+"/"+repoTag, src)
	return mustDigestLine(t, res)
}

// pushedManifest reads the manifest at repo@d from reg, checked against d.
func pushedManifest(t *testing.T, reg *registrytest.Registry, repo string, d digest.Digest) ocispec.Manifest {
	t.Helper()
	dt, _, err := fixture.Fetch(context.Background(), reg.AdminHost, repo, d.String())
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(dt) != d {
		t.Fatalf("%s@%s: bytes hash to %s", repo, d, digest.FromBytes(dt))
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(dt, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// assertImageOf checks that the manifest pushed at repo@d carries img's
// config byte for byte, and that each layer is in reg under its digest,
// uncompressed (a Docker image tar's layers), so its digest is the diff ID.
func assertImageOf(t *testing.T, reg *registrytest.Registry, repo string, d digest.Digest, img fixture.Image) {
	t.Helper()
	m := pushedManifest(t, reg, repo, d)
	if m.Config.Digest != img.Config.Desc.Digest {
		t.Fatalf("config %s, want the source's %s", m.Config.Digest, img.Config.Desc.Digest)
	}
	cfg, err := fixture.FetchBlob(context.Background(), reg.AdminHost, repo, m.Config.Digest)
	if err != nil || !bytes.Equal(cfg, img.Config.Data) {
		t.Fatalf("config bytes differ from the source's (%v)", err)
	}
	var c ocispec.Image
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != len(c.RootFS.DiffIDs) {
		t.Fatalf("%d layers, config has %d diff IDs", len(m.Layers), len(c.RootFS.DiffIDs))
	}
	for i, l := range m.Layers {
		dt, err := fixture.FetchBlob(context.Background(), reg.AdminHost, repo, l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if digest.FromBytes(dt) != l.Digest || int64(len(dt)) != l.Size {
			t.Fatalf("layer %d: blob does not match its descriptor", i)
		}
		if l.MediaType == ocispec.MediaTypeImageLayer && l.Digest != c.RootFS.DiffIDs[i] {
			t.Fatalf("layer %d: uncompressed %s is not the diff ID %s", i, l.Digest, c.RootFS.DiffIDs[i])
		}
		if l.MediaType != ocispec.MediaTypeImageLayer {
			if got := uncompressedDigest(t, l.MediaType, dt); got != c.RootFS.DiffIDs[i] {
				t.Fatalf("layer %d (%s): uncompressed %s is not the diff ID %s", i, l.MediaType, got, c.RootFS.DiffIDs[i])
			}
		}
	}
}

// uncompressedDigest is the digest of a gzip or zstd layer uncompressed; a
// gzip layer must be one stream (docker load refuses bytes after it).
func uncompressedDigest(t *testing.T, mediaType string, dt []byte) digest.Digest {
	t.Helper()
	var r io.Reader
	switch {
	case strings.HasSuffix(mediaType, "gzip"):
		zr, err := gzip.NewReader(bytes.NewReader(dt))
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		r = zr
	case strings.HasSuffix(mediaType, "zstd"):
		zr, err := zstd.NewReader(bytes.NewReader(dt))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("layer type %s: not a compression this test reads", mediaType)
	}
	d, err := digest.SHA256.FromReader(r)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// gzipFile writes path gzip-compressed beside it and returns the new path.
func gzipFile(t *testing.T, path string) string {
	t.Helper()
	dt, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(dt); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out := path + ".gz"
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestArchiveAirGap is the air-gapped round trip: images of registry A
// exported with --platform all into one tar, each created from the tar into
// registry B (plain and gzip-compressed), where every digest and byte
// equals A's.
func TestArchiveAirGap(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	b := registrytest.Start(t, registrytest.Options{})
	x := newImgx(t)
	tarPath, _ := export(t, x, "--platform", "all", e.ref("test/app:1"), e.ref("test/app:2"), e.ref("test/multi:v1"), e.ref("test/zstd:1"))
	gz := gzipFile(t, tarPath)
	want := map[string]fixture.Blob{"test/app:1": e.app.Manifest, "test/app:2": e.app2.Manifest,
		"test/multi:v1": e.multi.Index, "test/zstd:1": e.zstd.Manifest}
	for _, file := range []string{tarPath, gz} {
		for name, blob := range want {
			src := "archive://" + file + ":" + e.ref(name)
			d := createFrom(t, x, b, "copy/"+name, src)
			if d != blob.Desc.Digest {
				t.Fatalf("%s: digest %s, want A's %s", src, d, blob.Desc.Digest)
			}
			repo, tag, _ := strings.Cut("copy/"+name, ":")
			if got := fetchTag(t, b, repo, tag); got != string(blob.Data) {
				t.Fatalf("%s: B holds other bytes than A", src)
			}
		}
	}
	for _, img := range append(append([]fixture.Image{}, e.multi.Images...), e.multi.Attestations...) {
		assertBlobsIn(t, b, "copy/test/multi", img)
	}
	assertBlobsIn(t, b, "copy/test/app", e.app, e.app2)
	assertBlobsIn(t, b, "copy/test/zstd", e.zstd)

	t.Run("inspect", func(t *testing.T) {
		res := x.MustRun("inspect", "--raw", "archive://"+tarPath+":"+e.ref("test/multi:v1"))
		if res.Stdout != string(e.multi.Index.Data) {
			t.Fatalf("inspect --raw:\n%s\nwant:\n%s", res.Stdout, e.multi.Index.Data)
		}
		res = x.RunPlugin("inspect", "--raw", "archive://"+gz+"@"+e.app.Manifest.Desc.Digest.String())
		if res.ExitCode != 0 || res.Stdout != string(e.app.Manifest.Data) {
			t.Fatalf("docker imgx inspect --raw by digest: exit %d\n%s%s", res.ExitCode, res.Stdout, res.Stderr)
		}
	})
	t.Run("several images need a name", func(t *testing.T) {
		x.MustFail([]string{"holds 4 images", e.ref("test/app:1"), e.ref("test/zstd:1"), "archive://FILE:NAME"}, "inspect", "archive://"+tarPath)
		x.MustFail([]string{`no image named "nope:1"`, e.ref("test/multi:v1")}, "inspect", "archive://"+tarPath+":nope:1")
	})
	t.Run("a bare file is refused", func(t *testing.T) {
		x.MustFail([]string{"is a file here", "archive://" + tarPath}, "create", "-t", b.Host+"/bare:1", tarPath)
		x.MustFail([]string{"is a file here", "archive://" + tarPath}, "inspect", tarPath)
	})
	t.Run("read only", func(t *testing.T) {
		x.MustFail([]string{"only read from", "export"}, "create", "-t", "archive://"+tarPath, e.ref("test/app:1"))
		x.MustFail([]string{"only read from"}, "create", "-t", "docker-daemon://app:1", e.ref("test/app:1"))
	})
	t.Run("skopeo spellings", func(t *testing.T) {
		d := createFrom(t, x, b, "alias/app:1", "docker-archive:"+tarPath+":"+e.ref("test/app:1"))
		if d != e.app.Manifest.Desc.Digest {
			t.Fatalf("digest %s, want %s", d, e.app.Manifest.Desc.Digest)
		}
	})
}

// TestArchiveDockerSave pushes the classic `docker save` tar of the private
// Docker engine, and the same image read from the engine through
// docker-daemon://: both keep the source's config and push the same
// manifest, its plain layers compressed (gzip by default, as docker push
// does; the same bytes from either source); an image the engine lacks is
// one line. The engine pulls the pushed image back with the source's image
// ID.
func TestArchiveDockerSave(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	b := registrytest.Start(t, registrytest.Options{})
	d := consumers.StartDocker(t)
	x := newImgx(t)
	name := e.ref("test/app:1")
	exported, _ := export(t, x, name)
	if _, err := d.Load(t, exported); err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(t.TempDir(), "saved.tar")
	if _, err := d.Run(t, "save", "-o", saved, name); err != nil {
		t.Fatal(err)
	}
	fromTar := createFrom(t, x, b, "saved/app:1", "archive://"+saved)
	assertImageOf(t, b, "saved/app", fromTar, e.app)
	assertLayerTypes(t, b, "saved/app", fromTar, ocispec.MediaTypeImageLayerGzip)
	again := createFrom(t, x, b, "saved/app:gz", "archive://"+gzipFile(t, saved)+":"+name)
	if again != fromTar {
		t.Fatalf("gzip-compressed tar gave %s, plain %s", again, fromTar)
	}

	// Re-exported from the tar under another name, docker load takes it
	// back with the same image ID.
	reexported, _ := export(t, x, "--name", "reexported/app:1", "archive://"+saved)
	if _, err := d.Load(t, reexported); err != nil {
		t.Fatal(err)
	}
	if id := d.ImageIDs(t)["reexported/app:1"]; id != e.app.Config.Desc.Digest.String() {
		t.Fatalf("re-exported image ID %q, want %s", id, e.app.Config.Desc.Digest)
	}

	engine := x.With("DOCKER_HOST=" + d.Host)
	fromEngine := createFrom(t, engine, b, "engine/app:1", "docker-daemon://"+name)
	assertImageOf(t, b, "engine/app", fromEngine, e.app)
	if fromEngine != fromTar {
		t.Fatalf("docker-daemon:// gave %s, the saved tar %s", fromEngine, fromTar)
	}
	// copy compresses them as create does: the same image from either.
	for from, prefix := range map[string]string{"docker-daemon://" + name: "copied-engine", "archive://" + saved: "copied-tar"} {
		engine.MustRun("copy", "--progress", "quiet", from, b.Host+"/"+prefix)
		if got := digest.FromString(fetchTag(t, b, prefix+"/test/app", "1")); got != fromTar {
			t.Fatalf("copy %s pushed %s, create %s", from, got, fromTar)
		}
	}
	// Completion after docker-daemon:// lists the engine's images.
	patient := engine.With("DOCKER_IMGX_COMPLETION_TIMEOUT=20s")
	completeBoth(t, patient, []string{"docker-daemon://" + name, "docker-daemon://reexported/app:1"}, "inspect", "docker-daemon://")
	completeBoth(t, patient, []string{"docker-daemon://reexported/app:1"}, "create", "-t", b.Host+"/engine/x:1", "docker-daemon://re")
	// The engine's own manifest (plain layers) is what --compression none
	// pushes.
	pushed := compressions(t, x, b, saved, e.app)
	if pushed["gzip"] != fromTar {
		t.Fatalf("--compression gzip pushed %s, the default %s", pushed["gzip"], fromTar)
	}
	res := engine.RunPlugin("inspect", "--raw", "docker-daemon://"+name)
	if res.ExitCode != 0 || digest.FromString(res.Stdout) != pushed["none"] {
		t.Fatalf("docker imgx inspect docker-daemon://: exit %d\n%s%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	engine.MustFail([]string{"docker-daemon://nope/missing:1", "the Docker engine has no image"}, "create", "-t", b.Host+"/engine/missing:1", "docker-daemon://nope/missing:1")
	if got := fetchTag(t, b, "engine/missing", "1"); got != "" {
		t.Fatalf("a tag was pushed for a missing image")
	}

	// Pulled back (the engine forgets the image first, so that it fetches
	// and checks every layer), the image has the source's ID.
	if out, err := d.Run(t, "rmi", name, "reexported/app:1"); err != nil {
		t.Fatalf("rmi: %v\n%s", err, out)
	}
	pulled := b.Host + "/saved/app:1"
	if out, err := d.Run(t, "pull", pulled); err != nil {
		t.Fatalf("docker pull of the compressed push: %v\n%s", err, out)
	}
	if id := d.ImageIDs(t)[pulled]; id != e.app.Config.Desc.Digest.String() {
		t.Fatalf("pulled image ID %q, want the source's %s", id, e.app.Config.Desc.Digest)
	}
}

// compressions pushes the plain layers of a docker save tar with each
// --compression: zstd and none as asked; the same bytes twice. It returns
// the digest pushed with each.
func compressions(t *testing.T, x *imgx, b *registrytest.Registry, saved string, img fixture.Image) map[string]digest.Digest {
	t.Helper()
	pushed := map[string]digest.Digest{}
	for _, tc := range []struct{ flag, layerType string }{
		{"zstd", ocispec.MediaTypeImageLayerZstd},
		{"none", ocispec.MediaTypeImageLayer},
		{"gzip", ocispec.MediaTypeImageLayerGzip},
	} {
		d := mustDigestLine(t, x.MustRun("create", "--progress", "quiet", "--prefer-index=false", "--compression", tc.flag,
			"-t", b.Host+"/saved/app:"+tc.flag, "archive://"+saved))
		assertImageOf(t, b, "saved/app", d, img)
		assertLayerTypes(t, b, "saved/app", d, tc.layerType)
		again := mustDigestLine(t, x.MustRun("create", "--progress", "quiet", "--prefer-index=false", "--compression", tc.flag,
			"-t", b.Host+"/again/app:"+tc.flag, "archive://"+saved))
		if again != d {
			t.Fatalf("--compression %s: a second push made %s, the first %s", tc.flag, again, d)
		}
		pushed[tc.flag] = d
	}
	x.MustFail([]string{`invalid --compression "xz": want gzip, zstd, none`}, "create", "--compression", "xz", "-t", b.Host+"/saved/app:xz", "archive://"+saved)
	// A dry run shows the manifest the push makes, compressed layers named.
	res := x.MustRun("create", "--dry-run", "--progress", "quiet", "--prefer-index=false", "-t", b.Host+"/saved/app:dry", "archive://"+saved)
	if got := digest.FromString(strings.TrimSuffix(res.Stdout, "\n")); got != pushed["gzip"] {
		t.Fatalf("--dry-run printed %s, the push made %s:\n%s", got, pushed["gzip"], res.Stdout)
	}
	return pushed
}

// assertLayerTypes checks that every layer of repo@d has media type mt.
func assertLayerTypes(t *testing.T, reg *registrytest.Registry, repo string, d digest.Digest, mt string) {
	t.Helper()
	for i, l := range pushedManifest(t, reg, repo, d).Layers {
		if l.MediaType != mt {
			t.Fatalf("%s@%s: layer %d is %s, want %s", repo, d, i, l.MediaType, mt)
		}
	}
}

// TestArchivePodmanSave pushes both formats of `podman save`.
func TestArchivePodmanSave(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	b := registrytest.Start(t, registrytest.Options{})
	p := consumers.NewPodman(t)
	x := newImgx(t)
	name := e.ref("test/app:1")
	exported, _ := export(t, x, name)
	if _, err := p.Load(t, exported); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"docker-archive", "oci-archive"} {
		t.Run(format, func(t *testing.T) {
			saved := filepath.Join(t.TempDir(), "saved.tar")
			if _, err := p.Run(t, "save", "--format", format, "-o", saved, name); err != nil {
				t.Fatal(err)
			}
			d := createFrom(t, x, b, "podman/"+format+":1", "archive://"+saved)
			assertImageOf(t, b, "podman/"+format, d, e.app)
			res := x.MustRun("inspect", "--format", "{{json .Image}}", "archive://"+saved)
			if !strings.Contains(res.Stdout, e.app.Platform.Architecture) {
				t.Fatalf("inspect of the podman tar names no platform: %s", res.Stdout)
			}
		})
	}
}

// TestArchiveSkopeoCopy pushes tars skopeo copied out of registry A, in
// both of its archive formats.
func TestArchiveSkopeoCopy(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	b := registrytest.Start(t, registrytest.Options{})
	x := newImgx(t)
	name := e.ref("test/app:1")
	for _, transport := range []string{"docker-archive", "oci-archive"} {
		t.Run(transport, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "copied.tar")
			if err := consumers.SkopeoCopy(t, "docker://"+name, transport+":"+path+":"+name, "--src-tls-verify=false"); err != nil {
				t.Fatal(err)
			}
			d := createFrom(t, x, b, "skopeo/"+transport+":1", "archive://"+path)
			assertImageOf(t, b, "skopeo/"+transport, d, e.app)
			if transport == "oci-archive" && d != e.app.Manifest.Desc.Digest {
				t.Fatalf("oci-archive: digest %s, want the source's %s", d, e.app.Manifest.Desc.Digest)
			}
		})
	}
}

// layoutFiles lists every file and folder under dir, relative, sorted.
func layoutFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		out = append(out, rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestCreateLayoutLeavesOnlyLayout: create into a new OCI layout, from a
// registry and from another layout, leaves exactly the layout's files in
// the target (no ingest/ folder, no temporary file) and nothing new in the
// source layout.
func TestCreateLayoutLeavesOnlyLayout(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	idx := multiIndex()
	pushIndex(t, reg, "test/multi", "v1", idx)
	want := []string{"blobs", "blobs/sha256", "index.json", "oci-layout"}
	for _, b := range idx.Blobs() {
		want = append(want, "blobs/sha256/"+b.Desc.Digest.Encoded())
	}
	slices.Sort(want)
	x := newImgx(t)
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first"), filepath.Join(dir, "second")
	for _, c := range []struct{ target, src string }{
		{first, reg.Host + "/test/multi:v1"},
		{second, "oci-layout://" + first + ":1"},
	} {
		d := mustDigestLine(t, x.MustRun("create", "--progress", "quiet", "-t", "oci-layout://"+c.target+":1", c.src))
		if d != idx.Index.Desc.Digest {
			t.Fatalf("create from %s made %s, want the index %s", c.src, d, idx.Index.Desc.Digest)
		}
		if got := layoutFiles(t, c.target); !slices.Equal(got, want) {
			t.Errorf("create from %s left in the layout:\n%s\nwant:\n%s", c.src, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if got := layoutFiles(t, first); !slices.Equal(got, want) {
		t.Errorf("reading the layout left in it:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
