package tests

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/internal/consumers"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// exportImages are the images the export tests push once per registry.
type exportImages struct {
	reg *registrytest.Registry
	// app is one linux/amd64 image of two gzip layers (test/app:1); app2
	// (test/app:2, Docker media types) shares those two layers and adds one.
	app, app2 fixture.Image
	// multi is an index of three platforms with attestations (test/multi:v1).
	multi fixture.Index
	// zstd is one image with zstd layers (test/zstd:1).
	zstd fixture.Image
	// nested is an index listing multi's index (test/nested:v1).
	nested fixture.Blob
}

func pushExportImages(t *testing.T) exportImages {
	t.Helper()
	if p := platforms.DefaultSpec(); p.OS != "linux" || p.Architecture != "amd64" {
		// The fixtures' single images are linux/amd64, what docker load here accepts.
		t.Skipf("export consumer tests expect a linux/amd64 machine, this is %s", platforms.FormatAll(p))
	}
	e := exportImages{
		reg:   registrytest.Start(t, registrytest.Options{}),
		app:   fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 11}),
		app2:  fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 3, Seed: 11, Docker: true}),
		multi: multiIndex(),
		zstd:  fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 21, Compression: fixture.Zstd}),
	}
	pushImage(t, e.reg, "test/app", "1", e.app)
	pushImage(t, e.reg, "test/app", "2", e.app2)
	pushIndex(t, e.reg, "test/multi", "v1", e.multi)
	pushImage(t, e.reg, "test/zstd", "1", e.zstd)
	e.nested = fixture.NewBlob(ocispec.MediaTypeImageIndex, mustMarshal(t, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{MediaType: e.multi.Index.Desc.MediaType, Digest: e.multi.Index.Desc.Digest, Size: e.multi.Index.Desc.Size}},
	}))
	pushIndex(t, e.reg, "test/nested", "inner", e.multi)
	if err := fixture.Push(context.Background(), e.reg.AdminHost, "test/nested", "v1", e.nested); err != nil {
		t.Fatal(err)
	}
	return e
}

// ref is a reference to repo:tag on the registry.
func (e exportImages) ref(repoTag string) string { return e.reg.Host + "/" + repoTag }

// export runs the export with plain progress into a new file and returns its
// path and the progress (stderr).
func export(t *testing.T, x *imgx, args ...string) (string, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.tar")
	res := x.MustRun(append([]string{"export", "--progress", "plain", "-o", out}, args...)...)
	return out, res.Stderr
}

// tarEntry is a tar header with the file's content.
type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var entries []tarEntry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read tar entry %s: %v", hdr.Name, err)
		}
		entries = append(entries, tarEntry{hdr: hdr, data: data})
	}
}

func readTarFile(t *testing.T, path string) []tarEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readTar(t, f)
}

func tarFile(t *testing.T, entries []tarEntry, name string) []byte {
	t.Helper()
	for _, e := range entries {
		if e.hdr.Name == name {
			return e.data
		}
	}
	t.Fatalf("no %s in the tar", name)
	return nil
}

func hasTarFile(entries []tarEntry, name string) bool {
	return slices.ContainsFunc(entries, func(e tarEntry) bool { return e.hdr.Name == name })
}

func blobName(b fixture.Blob) string { return "blobs/sha256/" + b.Desc.Digest.Encoded() }

// dockerManifest is an entry of manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func readManifestJSON(t *testing.T, entries []tarEntry) []dockerManifest {
	t.Helper()
	var m []dockerManifest
	if err := json.Unmarshal(tarFile(t, entries, "manifest.json"), &m); err != nil {
		t.Fatalf("parse manifest.json: %v", err)
	}
	return m
}

func readIndexJSON(t *testing.T, entries []tarEntry) ocispec.Index {
	t.Helper()
	var idx ocispec.Index
	if err := json.Unmarshal(tarFile(t, entries, "index.json"), &idx); err != nil {
		t.Fatalf("parse index.json: %v", err)
	}
	return idx
}

// noFilesLeft fails when dir holds anything (a partial or temporary file).
func noFilesLeft(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files left in %s: %v", dir, names)
	}
}

func TestExportTarEntries(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	x := newImgx(t)
	ref := e.ref("test/app:1")
	path, progress := export(t, x, ref)
	entries := readTarFile(t, path)

	blobs := []fixture.Blob{e.app.Config, e.app.Layers[0], e.app.Layers[1], e.app.Manifest}
	slices.SortFunc(blobs, func(a, b fixture.Blob) int { return strings.Compare(a.Desc.Digest.String(), b.Desc.Digest.String()) })
	wantIndex := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d,"annotations":{"containerd.io/distribution.source.%s":"test/app","io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"1"}}]}`,
		e.app.Manifest.Desc.Digest, e.app.Manifest.Desc.Size, strings.Split(e.reg.Host, ":")[0], ref)
	wantManifest := fmt.Sprintf(`[{"Config":"%s","RepoTags":["%s"],"Layers":["%s","%s"]}]`,
		blobName(e.app.Config), ref, blobName(e.app.Layers[0]), blobName(e.app.Layers[1]))
	wantLayout := `{"imageLayoutVersion":"1.0.0"}`

	want := []string{"d 0755 0 0 0 blobs/", "d 0755 0 0 0 blobs/sha256/"}
	for _, b := range blobs {
		want = append(want, fmt.Sprintf("f 0444 0 0 %d %s", b.Desc.Size, blobName(b)))
	}
	want = append(want,
		fmt.Sprintf("f 0644 0 0 %d index.json", len(wantIndex)),
		fmt.Sprintf("f 0644 0 0 %d manifest.json", len(wantManifest)),
		fmt.Sprintf("f 0444 0 0 %d oci-layout", len(wantLayout)))
	var got []string
	for _, en := range entries {
		h := en.hdr
		kind := "f"
		if h.Typeflag == tar.TypeDir {
			kind = "d"
		}
		if h.ModTime.Unix() != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v, owner %q:%q; want the epoch and no names", h.Name, h.ModTime, h.Uname, h.Gname)
		}
		got = append(got, fmt.Sprintf("%s %04o %d %d %d %s", kind, h.Mode, h.Uid, h.Gid, h.Size, h.Name))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tar entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, b := range blobs {
		if !bytes.Equal(tarFile(t, entries, blobName(b)), b.Data) {
			t.Errorf("blob %s differs from the registry's bytes", b.Desc.Digest)
		}
	}
	for name, want := range map[string]string{"index.json": wantIndex, "manifest.json": wantManifest, "oci-layout": wantLayout} {
		if got := string(tarFile(t, entries, name)); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}

	// Progress as BuildKit's exporter prints it.
	for _, line := range []string{
		"resolving " + ref,
		"exporting to docker image format",
		"exporting layers",
		"exporting manifest " + e.app.Manifest.Desc.Digest.String(),
		"exporting config " + e.app.Config.Desc.Digest.String(),
		"naming to " + ref,
		"sending tarball",
		e.app.Layers[0].Desc.Digest.String(),
	} {
		if !strings.Contains(progress, line) {
			t.Errorf("progress has no %q:\n%s", line, progress)
		}
	}
}

func TestExportDeterministicAndStdout(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	x := newImgx(t)
	args := []string{"--platform", "all", e.ref("test/multi:v1"), e.ref("test/app:1"), e.ref("test/app:2")}
	first, _ := export(t, x, args...)
	second, _ := export(t, x, append([]string{"--max-concurrency", "1"}, args...)...)
	a, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two exports of the same images differ")
	}
	// stdout, not a terminal here: the same bytes.
	res := x.MustRun(append([]string{"export", "--progress", "quiet"}, args...)...)
	if res.Stdout != string(a) {
		t.Fatalf("stdout export (%d bytes) differs from the file (%d bytes)", len(res.Stdout), len(a))
	}
	if len(readTar(t, strings.NewReader(res.Stdout))) == 0 {
		t.Fatal("stdout holds no tar entry")
	}
	// Stdout redirected to a regular file (written at offsets, in parallel):
	// the same bytes.
	redirected, err := os.Create(filepath.Join(t.TempDir(), "redirected.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer redirected.Close()
	toFile := *x
	toFile.StdoutFile = redirected
	toFile.MustRun(append([]string{"export", "--progress", "quiet"}, args...)...)
	if c, err := os.ReadFile(redirected.Name()); err != nil || !bytes.Equal(c, a) {
		t.Fatalf("export > file (%d bytes, %v) differs from -o (%d bytes)", len(c), err, len(a))
	}
	// As a Docker CLI plugin: the same bytes.
	if res := x.RunPlugin(append([]string{"export", "--progress", "quiet"}, args...)...); res.ExitCode != 0 || res.Stdout != string(a) {
		t.Fatalf("docker imgx export: exit %d, %d bytes, want the file's %d\n%s", res.ExitCode, len(res.Stdout), len(a), res.Stderr)
	}
	res = x.MustRun("export", "--progress", "quiet", "-o", "-", e.ref("test/app:1"))
	if len(readTar(t, strings.NewReader(res.Stdout))) == 0 {
		t.Fatal("-o - holds no tar entry")
	}
}

func TestExportDockerLoad(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	d := consumers.StartDocker(t)
	x := newImgx(t)

	load := func(t *testing.T, path string, want map[string]string) {
		t.Helper()
		out, err := d.Load(t, path)
		if err != nil {
			t.Fatalf("docker load: %v", err)
		}
		ids := d.ImageIDs(t)
		for name, id := range want {
			if !strings.Contains(out, "Loaded image: "+name) {
				t.Errorf("docker load output %q does not name %s", out, name)
			}
			if ids[name] != id {
				t.Errorf("image ID of %s = %q, want the config digest %s (have %v)", name, ids[name], id, slices.Sorted(maps.Keys(ids)))
			}
		}
	}
	t.Run("one image", func(t *testing.T) {
		ref := e.ref("test/app:1")
		path, _ := export(t, x, ref)
		load(t, path, map[string]string{ref: e.app.Config.Desc.Digest.String()})
	})
	t.Run("shared layers", func(t *testing.T) {
		path, _ := export(t, x, e.ref("test/app:1"), e.ref("test/app:2"))
		entries := readTarFile(t, path)
		if m := readManifestJSON(t, entries); len(m) != 2 || m[0].Layers[0] != m[1].Layers[0] {
			t.Fatalf("manifest.json: %+v, want two images sharing their first layer", m)
		}
		load(t, path, map[string]string{
			e.ref("test/app:1"): e.app.Config.Desc.Digest.String(),
			e.ref("test/app:2"): e.app2.Config.Desc.Digest.String(),
		})
	})
	for _, plat := range []string{"linux/amd64", "all"} {
		t.Run("index platform "+plat, func(t *testing.T) {
			ref := e.ref("test/multi:v1")
			path, _ := export(t, x, "--platform", plat, ref)
			// Attestations and other platforms are in the OCI view, never
			// in manifest.json: docker load would abort on them.
			m := readManifestJSON(t, readTarFile(t, path))
			if len(m) != 1 || m[0].Config != blobName(e.multi.Images[0].Config) {
				t.Fatalf("manifest.json: %+v, want the amd64 image only", m)
			}
			load(t, path, map[string]string{ref: e.multi.Images[0].Config.Desc.Digest.String()})
		})
	}
	t.Run("nested index", func(t *testing.T) {
		ref := e.ref("test/nested:v1")
		path, _ := export(t, x, ref)
		load(t, path, map[string]string{ref: e.multi.Images[0].Config.Desc.Digest.String()})
	})
	t.Run("rename", func(t *testing.T) {
		path, _ := export(t, x, "--name", "app:renamed", "--name", "127.0.0.1:5999/other/app", e.ref("test/app:1"), e.ref("test/app:2"))
		load(t, path, map[string]string{
			"app:renamed":                     e.app.Config.Desc.Digest.String(),
			"127.0.0.1:5999/other/app:latest": e.app2.Config.Desc.Digest.String(),
		})
	})
	t.Run("zstd", func(t *testing.T) {
		path, progress := export(t, x, e.ref("test/zstd:1"))
		if !strings.Contains(progress, "WARNING: 2 zstd-compressed layer(s), first "+e.zstd.Layers[0].Desc.Digest.String()) &&
			!strings.Contains(progress, "WARNING: 2 zstd-compressed layer(s), first "+e.zstd.Layers[1].Desc.Digest.String()) {
			t.Errorf("no zstd warning in the progress:\n%s", progress)
		}
		if !strings.Contains(progress, "Docker Engine older than 23.0 cannot load them") {
			t.Errorf("the zstd warning does not name the Docker version:\n%s", progress)
		}
		// Docker 20.10 (this machine's engine) refuses zstd layers; Docker
		// 23 and later accept them. Accept a newer engine's success.
		out, err := d.Load(t, path)
		if err == nil {
			ver, _ := d.Run(t, "version", "--format", "{{.Server.Version}}")
			if strings.HasPrefix(strings.TrimSpace(ver), "20.") {
				t.Fatalf("docker %s loaded zstd layers: %s", ver, out)
			}
			return
		}
		t.Logf("docker load refused zstd as expected: %v", err)
	})
}

func TestExportContainerdImport(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	c := consumers.StartContainerd(t)
	x := newImgx(t)

	importTar := func(t *testing.T, path string, all bool, want map[string]string) {
		t.Helper()
		if _, err := c.Import(t, path, all); err != nil {
			t.Fatalf("ctr images import (all platforms: %v): %v", all, err)
		}
		images := c.Images(t)
		for name, dgst := range want {
			if images[name] != dgst {
				t.Errorf("%s -> %q, want the original digest %s (have %v)", name, images[name], dgst, images)
			}
		}
	}
	t.Run("one image", func(t *testing.T) {
		ref := e.ref("test/app:1")
		path, _ := export(t, x, ref)
		importTar(t, path, false, map[string]string{ref: e.app.Manifest.Desc.Digest.String()})
	})
	t.Run("index one platform", func(t *testing.T) {
		path, _ := export(t, x, "--name", "ctr/multi:amd64", e.ref("test/multi:v1"))
		importTar(t, path, false, map[string]string{"docker.io/ctr/multi:amd64": e.multi.Index.Desc.Digest.String()})
	})
	t.Run("index all platforms", func(t *testing.T) {
		path, _ := export(t, x, "--platform", "all", "--name", "ctr/multi:all", e.ref("test/multi:v1"))
		entries := readTarFile(t, path)
		for _, img := range append(slices.Clone(e.multi.Images), e.multi.Attestations...) {
			for _, b := range img.Blobs() {
				if !hasTarFile(entries, blobName(b)) {
					t.Errorf("blob %s missing with --platform all", b.Desc.Digest)
				}
			}
		}
		importTar(t, path, true, map[string]string{"docker.io/ctr/multi:all": e.multi.Index.Desc.Digest.String()})
	})
	t.Run("nested index all platforms", func(t *testing.T) {
		path, _ := export(t, x, "--platform", "all", "--name", "ctr/nested:all", e.ref("test/nested:v1"))
		for _, b := range []fixture.Blob{e.nested, e.multi.Index} {
			if !hasTarFile(readTarFile(t, path), blobName(b)) {
				t.Errorf("index %s missing from the tar", b.Desc.Digest)
			}
		}
		importTar(t, path, true, map[string]string{"docker.io/ctr/nested:all": e.nested.Desc.Digest.String()})
	})
	t.Run("zstd and two images", func(t *testing.T) {
		path, _ := export(t, x, e.ref("test/zstd:1"), e.ref("test/app:2"))
		importTar(t, path, true, map[string]string{
			e.ref("test/zstd:1"): e.zstd.Manifest.Desc.Digest.String(),
			e.ref("test/app:2"):  e.app2.Manifest.Desc.Digest.String(),
		})
	})
	t.Run("oci format", func(t *testing.T) {
		path, _ := export(t, x, "--format", "oci", "--name", "ctr/oci:1", e.ref("test/app:1"))
		entries := readTarFile(t, path)
		if hasTarFile(entries, "manifest.json") {
			t.Error("--format oci wrote manifest.json")
		}
		importTar(t, path, false, map[string]string{"docker.io/ctr/oci:1": e.app.Manifest.Desc.Digest.String()})
	})
	t.Run("oci layout source", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "layout")
		if err := fixture.WriteLayout(dir, map[string]fixture.Blob{"v1": e.multi.Index}, e.multi.Blobs()...); err != nil {
			t.Fatal(err)
		}
		// Without --name an OCI layout source has no name.
		path, _ := export(t, x, "oci-layout://"+dir+":v1")
		if idx := readIndexJSON(t, readTarFile(t, path)); len(idx.Manifests) != 1 || len(idx.Manifests[0].Annotations) != 0 {
			t.Errorf("index.json of an unnamed layout source: %+v", idx.Manifests)
		}
		path, _ = export(t, x, "--name", "ctr/fromlayout:v1", "oci-layout://"+dir+":v1")
		importTar(t, path, false, map[string]string{"docker.io/ctr/fromlayout:v1": e.multi.Index.Desc.Digest.String()})
	})
}

func TestExportPodmanLoad(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	p := consumers.NewPodman(t)
	x := newImgx(t)

	load := func(t *testing.T, path string, want map[string]string) {
		t.Helper()
		out, err := p.Load(t, path)
		if err != nil {
			t.Fatalf("podman load: %v", err)
		}
		images := p.Images(t)
		for name, id := range want {
			if !strings.Contains(out, name) {
				t.Errorf("podman load output %q does not name %s", out, name)
			}
			if images[name] != id {
				t.Errorf("image ID of %s = %q, want the config digest %s (have %v)", name, images[name], id, images)
			}
		}
	}
	// One index.json entry: podman reads the OCI archive.
	t.Run("one image", func(t *testing.T) {
		ref := e.ref("test/app:1")
		path, _ := export(t, x, ref)
		load(t, path, map[string]string{ref: e.app.Config.Desc.Digest.String()})
	})
	// Two entries: podman falls back to manifest.json.
	t.Run("two images", func(t *testing.T) {
		path, _ := export(t, x, e.ref("test/app:1"), e.ref("test/app:2"))
		load(t, path, map[string]string{
			e.ref("test/app:1"): e.app.Config.Desc.Digest.String(),
			e.ref("test/app:2"): e.app2.Config.Desc.Digest.String(),
		})
	})
	t.Run("zstd", func(t *testing.T) {
		ref := e.ref("test/zstd:1")
		path, _ := export(t, x, ref)
		load(t, path, map[string]string{ref: e.zstd.Config.Desc.Digest.String()})
	})
	t.Run("index", func(t *testing.T) {
		path, _ := export(t, x, "--name", "podman/multi:v1", e.ref("test/multi:v1"))
		load(t, path, map[string]string{"docker.io/podman/multi:v1": e.multi.Images[0].Config.Desc.Digest.String()})
	})
}

func TestExportSkopeo(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	x := newImgx(t)
	single, _ := export(t, x, e.ref("test/app:1"))
	double, _ := export(t, x, "--name", "skopeo/app:one", "--name", "skopeo/app:two", e.ref("test/app:1"), e.ref("test/app:2"))
	zstd, _ := export(t, x, e.ref("test/zstd:1"))
	index, _ := export(t, x, "--platform", "all", e.ref("test/multi:v1"))

	tests := []struct {
		name, ref  string
		wantConfig string
		// wantDigest is the digest skopeo reports for an oci-archive;
		// docker-archive synthesises a manifest, so only the config counts.
		wantDigest string
	}{
		{name: "docker-archive", ref: "docker-archive:" + single, wantConfig: e.app.Config.Desc.Digest.String()},
		{name: "oci-archive", ref: "oci-archive:" + single, wantConfig: e.app.Config.Desc.Digest.String(), wantDigest: e.app.Manifest.Desc.Digest.String()},
		{name: "docker-archive @1", ref: "docker-archive:" + double + ":@1", wantConfig: e.app2.Config.Desc.Digest.String()},
		{name: "docker-archive name", ref: "docker-archive:" + double + ":docker.io/skopeo/app:one", wantConfig: e.app.Config.Desc.Digest.String()},
		// skopeo 1.9 looks up a refname among OCI-typed entries only, so the
		// Docker-typed app:2 ("two") is not found there; app:1 is OCI-typed.
		{name: "oci-archive refname", ref: "oci-archive:" + double + ":one", wantConfig: e.app.Config.Desc.Digest.String(), wantDigest: e.app.Manifest.Desc.Digest.String()},
		{name: "zstd oci-archive", ref: "oci-archive:" + zstd, wantConfig: e.zstd.Config.Desc.Digest.String(), wantDigest: e.zstd.Manifest.Desc.Digest.String()},
		{name: "index docker-archive", ref: "docker-archive:" + index, wantConfig: e.multi.Images[0].Config.Desc.Digest.String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := consumers.SkopeoInspectRaw(t, tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				Config struct{ Digest string } `json:"config"`
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("parse raw manifest: %v\n%s", err, raw)
			}
			if m.Config.Digest != tc.wantConfig {
				t.Errorf("config digest %s, want %s", m.Config.Digest, tc.wantConfig)
			}
			if tc.wantDigest == "" {
				return
			}
			got, err := consumers.SkopeoDigest(t, tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.wantDigest {
				t.Errorf("digest %s, want %s", got, tc.wantDigest)
			}
		})
	}
}

// TestExportSkopeoEveryImage reads every image of a multi-image tar (an
// OCI image, a Docker-typed image, an index) and of an OCI layout folder
// with skopeo, each the way the README says: oci-archive:FILE:TAG (oci:DIR:TAG)
// for OCI-typed images and indexes, docker-archive:FILE:NAME or :@N for
// the images of manifest.json; and oci-archive: of a Docker-typed image
// fails and of a shared tag gives the first image, as the README says
// (skopeo 1.9 looks up OCI-typed entries only, the first that matches).
func TestExportSkopeoEveryImage(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	x := newImgx(t)
	app, app2, multi := e.ref("test/app:1"), e.ref("test/app:2"), e.ref("test/multi:v1")
	tarPath, _ := export(t, x, app, app2, multi)
	dir := filepath.Join(t.TempDir(), "layout")
	x.MustRun("export", "--progress", "quiet", "-o", "oci-layout://"+dir, app, multi)
	manifestOf := func(ref string) (digest.Digest, string) {
		t.Helper()
		raw, err := consumers.SkopeoInspectRaw(t, ref)
		if err != nil {
			t.Fatalf("skopeo inspect --raw %s: %v", ref, err)
		}
		var m struct {
			Config struct{ Digest string } `json:"config"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("skopeo inspect --raw %s: %v\n%s", ref, err, raw)
		}
		return digest.FromBytes(raw), m.Config.Digest
	}
	for _, ref := range []string{"oci-archive:" + tarPath + ":1", "oci:" + dir + ":1"} {
		if d, _ := manifestOf(ref); d != e.app.Manifest.Desc.Digest {
			t.Errorf("%s: manifest %s, want the OCI image %s", ref, d, e.app.Manifest.Desc.Digest)
		}
	}
	for _, ref := range []string{"oci-archive:" + tarPath + ":v1", "oci:" + dir + ":v1"} {
		if d, _ := manifestOf(ref); d != e.multi.Index.Desc.Digest {
			t.Errorf("%s: manifest %s, want the index %s", ref, d, e.multi.Index.Desc.Digest)
		}
	}
	if _, err := consumers.SkopeoInspectRaw(t, "oci-archive:"+tarPath+":2"); err == nil || !strings.Contains(err.Error(), "no descriptor found for reference") {
		t.Errorf("oci-archive: of the Docker-typed image: %v, want skopeo 1.9's no descriptor found", err)
	}
	// Two images that share the tag 1: oci-archive: gives the first, and
	// docker-archive: tells them apart by name.
	shared, _ := export(t, x, app, e.ref("test/zstd:1"))
	if d, _ := manifestOf("oci-archive:" + shared + ":1"); d != e.app.Manifest.Desc.Digest {
		t.Errorf("oci-archive: of a shared tag gave %s, want the first image %s", d, e.app.Manifest.Desc.Digest)
	}
	if _, cfg := manifestOf("docker-archive:" + shared + ":" + e.ref("test/zstd:1")); cfg != e.zstd.Config.Desc.Digest.String() {
		t.Errorf("docker-archive: by name gave config %s, want %s", cfg, e.zstd.Config.Desc.Digest)
	}
	wantConfigs := []string{e.app.Config.Desc.Digest.String(), e.app2.Config.Desc.Digest.String(), e.multi.Images[0].Config.Desc.Digest.String()}
	for i, name := range []string{app, app2, multi} {
		for _, ref := range []string{fmt.Sprintf("docker-archive:%s:@%d", tarPath, i), "docker-archive:" + tarPath + ":" + name} {
			if _, cfg := manifestOf(ref); cfg != wantConfigs[i] {
				t.Errorf("%s: config %s, want %s", ref, cfg, wantConfigs[i])
			}
		}
	}
}

func TestExportLayoutDir(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	x := newImgx(t)
	dir := filepath.Join(t.TempDir(), "layout")
	progress := x.MustRun("export", "--progress", "plain", "-o", "oci-layout://"+dir, "--platform", "all", e.ref("test/multi:v1"), e.ref("test/app:1")).Stderr
	if !strings.Contains(progress, "exporting to oci image format") || !strings.Contains(progress, "writing layout") {
		t.Errorf("progress:\n%s", progress)
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("manifest.json in an OCI layout folder: %v", err)
	}
	res := x.MustRun("inspect", "--raw", "oci-layout://"+dir+":v1")
	if res.Stdout != string(e.multi.Index.Data) {
		t.Errorf("inspect oci-layout://DIR:v1 is not the index:\n%s", res.Stdout)
	}
	res = x.MustRun("inspect", "--raw", "oci-layout://"+dir+":1")
	if res.Stdout != string(e.app.Manifest.Data) {
		t.Errorf("inspect oci-layout://DIR:1 is not the app manifest:\n%s", res.Stdout)
	}
	for _, att := range e.multi.Attestations {
		if _, err := os.Stat(filepath.Join(dir, blobName(att.Manifest))); err != nil {
			t.Errorf("attestation manifest missing: %v", err)
		}
	}
	// The folder is written once; a second export refuses it.
	x.MustFail([]string{"not empty"}, "export", "-o", "oci-layout://"+dir, e.ref("test/app:1"))
	if left, err := os.ReadDir(filepath.Dir(dir)); err != nil || len(left) != 1 {
		t.Errorf("beside the layout folder: %v %v, want it alone", left, err)
	}
}

func TestExportRegistryPortName(t *testing.T) {
	t.Parallel()
	// The names carry the registry's 127.0.0.1:PORT; docker and podman keep it.
	e := pushExportImages(t)
	x := newImgx(t)
	ref := e.ref("test/app:2")
	path, _ := export(t, x, ref)
	entries := readTarFile(t, path)
	m := readManifestJSON(t, entries)
	if len(m) != 1 || len(m[0].RepoTags) != 1 || m[0].RepoTags[0] != ref {
		t.Fatalf("manifest.json RepoTags: %+v, want %s", m, ref)
	}
	idx := readIndexJSON(t, entries)
	if got := idx.Manifests[0].Annotations["io.containerd.image.name"]; got != ref {
		t.Fatalf("io.containerd.image.name %q, want %s", got, ref)
	}
	// By digest: no tag for docker load, the repository@digest for containerd.
	byDigest := e.reg.Host + "/test/app@" + e.app2.Manifest.Desc.Digest.String()
	path, _ = export(t, x, byDigest)
	entries = readTarFile(t, path)
	if m := readManifestJSON(t, entries); len(m[0].RepoTags) != 0 {
		t.Errorf("RepoTags of an image by digest: %v", m[0].RepoTags)
	}
	if got := readIndexJSON(t, entries).Manifests[0].Annotations; got["io.containerd.image.name"] != byDigest || got["org.opencontainers.image.ref.name"] != "" {
		t.Errorf("index.json annotations of an image by digest: %v", got)
	}
}

func TestExportUsageErrors(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	x := newImgx(t)
	out := filepath.Join(t.TempDir(), "out.tar")
	x.MustFail([]string{"1 --name for 2 images"}, "export", "-o", out, "--name", "a:1", e.ref("test/app:1"), e.ref("test/app:2"))
	x.MustFail([]string{`invalid --platform "linux/"`}, "export", "-o", out, "--platform", "linux/", e.ref("test/app:1"))
	x.MustFail([]string{`invalid --format "tar"`}, "export", "-o", out, "--format", "tar", e.ref("test/app:1"))
	x.MustFail([]string{"no image for platform linux/s390x", "available: linux/amd64, linux/arm64/v8, linux/arm/v7"}, "export", "-o", out, "--platform", "linux/s390x", e.ref("test/multi:v1"))
	x.MustFail([]string{"not found"}, "export", "-o", out, e.ref("test/nothere:1"))
	noFilesLeft(t, filepath.Dir(out))
	// On stdout, the error says the stream is incomplete.
	x.MustFail([]string{"stdout is incomplete"}, "export", "--progress", "quiet", "--platform", "linux/s390x", e.ref("test/multi:v1"))
}

// blobProxy serves a registry through a reverse proxy whose blob responses
// pass through wrap.
func blobProxy(t *testing.T, backend string, wrap func(path string, body io.ReadCloser) io.ReadCloser) string {
	t.Helper()
	u, err := url.Parse("http://" + backend)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && strings.Contains(resp.Request.URL.Path, "/blobs/sha256:") {
			resp.Body = wrap(resp.Request.URL.Path, resp.Body)
		}
		return nil
	}
	p.ErrorLog = log.New(io.Discard, "", 0) // aborted requests are expected here
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// flipLastByte flips the last byte of a stream.
type flipLastByte struct {
	io.ReadCloser
	buf []byte
	eof bool
}

func (f *flipLastByte) Read(p []byte) (int, error) {
	if f.buf == nil && !f.eof {
		data, err := io.ReadAll(f.ReadCloser)
		if err != nil {
			return 0, err
		}
		if len(data) > 0 {
			data[len(data)-1] ^= 0xff
		}
		f.buf, f.eof = data, true
	}
	if len(f.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

func TestExportTamperedBlob(t *testing.T) {
	t.Parallel()
	e := pushExportImages(t)
	bad := e.app.Layers[1].Desc.Digest
	proxy := blobProxy(t, e.reg.Host, func(path string, body io.ReadCloser) io.ReadCloser {
		if strings.HasSuffix(path, bad.String()) {
			return &flipLastByte{ReadCloser: body}
		}
		return body
	})
	x := newImgx(t)
	dir := t.TempDir()
	x.MustFail([]string{bad.String(), "digest"}, "export", "--progress", "plain", "-o", filepath.Join(dir, "out.tar"), proxy+"/test/app:1")
	noFilesLeft(t, dir)
	x.MustFail([]string{bad.String()}, "export", "--progress", "plain", "-o", "oci-layout://"+filepath.Join(dir, "layout"), proxy+"/test/app:1")
	noFilesLeft(t, dir)
}

// slowBody sends a stream in small pieces with pauses.
type slowBody struct{ io.ReadCloser }

func (s slowBody) Read(p []byte) (int, error) {
	time.Sleep(20 * time.Millisecond)
	return s.ReadCloser.Read(p[:min(len(p), 32<<10)])
}

func TestExportInterrupted(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	big := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, LayerSize: 16 << 20, Seed: 31, Compression: fixture.Uncompressed})
	pushImage(t, reg, "test/big", "1", big)
	// sent counts the layer bytes the proxy has passed on: the file is
	// preallocated, so its size says nothing of the transfer.
	var sent atomic.Int64
	proxy := blobProxy(t, reg.Host, func(_ string, body io.ReadCloser) io.ReadCloser { return slowBody{&countingBody{body, &sent}} })

	dir := t.TempDir()
	x := newImgx(t)
	cmd := exec.Command(imgxBinary, "export", "--progress", "plain", "-o", filepath.Join(dir, "out.tar"), proxy+"/test/big:1")
	cmd.Env = x.Env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once a megabyte of layers has gone through: mid-transfer.
	deadline := time.Now().Add(time.Minute)
	for sent.Load() < 1<<20 {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no layer data sent within a minute:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".out.tar.tmp-*")); len(tmp) != 1 {
		_ = cmd.Process.Kill()
		t.Fatalf("mid-transfer, the temporary file is not there: %v", tmp)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v, want code 130\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "ERROR: interrupted") {
		t.Errorf("stderr does not say interrupted:\n%s", stderr.String())
	}
	noFilesLeft(t, dir)
}

// countingBody adds the bytes read through it to n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	k, err := c.ReadCloser.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// TestExportNoSpace runs an export whose tar cannot fit (a file size limit
// stands in for a full disk): it must fail at once, naming the file and what
// to do, before any layer is downloaded, and leave nothing behind.
func TestExportNoSpace(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, LayerSize: 1 << 20, Seed: 32, Compression: fixture.Uncompressed})
	pushImage(t, reg, "test/big", "1", img)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.tar")
	reg.ResetRequests()
	// ulimit -f counts 512-byte blocks in dash and 1024-byte ones in bash:
	// either way 256 blocks are far below the 2 MiB of layers.
	cmd := exec.Command("sh", "-c", `ulimit -f 256 && exec "$0" "$@"`, imgxBinary, "export", "--progress", "plain", "-o", out, reg.Host+"/test/big:1")
	cmd.Env = newImgx(t).Env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want 1\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"ERROR: export: the tar (", ") does not fit where it is written: ", "free some space, or write elsewhere with -o"} {
		if !strings.Contains(last, want) {
			t.Errorf("error %q does not contain %q", last, want)
		}
	}
	for _, l := range img.Layers {
		for _, req := range reg.Requests() {
			if strings.HasSuffix(req.Path, "/blobs/"+l.Desc.Digest.String()) {
				t.Errorf("layer %s was requested (%s) though the tar could not fit", l.Desc.Digest, req.Method)
			}
		}
	}
	noFilesLeft(t, dir)
}

// benchExportMiB is the environment variable that sets the size of the
// benchmark image in MiB (default 256; the reported figures use 1024).
const benchExportMiB = "IMGX_BENCH_EXPORT_MIB"

// benchExportDir is the environment variable that sets the folder of the
// file benchmarks' output (default: a temporary folder); a tmpfs takes the
// disk out of the figures.
const benchExportDir = "IMGX_BENCH_EXPORT_DIR"

// benchOutput returns a path for a file benchmark's output.
func benchOutput(b *testing.B, name string) string {
	dir := os.Getenv(benchExportDir)
	if dir == "" {
		return filepath.Join(b.TempDir(), name)
	}
	dir, err := os.MkdirTemp(dir, "bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, name)
}

// benchLayerSize is the size of each benchmark layer: few large layers, as
// in the big images users export.
const benchLayerSize = 64 << 20

// benchImage pushes an image of random uncompressed layers, one layer in
// memory at a time, and returns its reference, layers and total size.
func benchImage(b *testing.B) (*registrytest.Registry, string, []ocispec.Descriptor, int64) {
	b.Helper()
	mib := 256
	if v := os.Getenv(benchExportMiB); v != "" {
		if _, err := fmt.Sscan(v, &mib); err != nil || mib < 1 {
			b.Fatalf("%s=%q: want a number of MiB", benchExportMiB, v)
		}
	}
	reg := registrytest.Start(b, registrytest.Options{})
	total := int64(mib) << 20
	rng := rand.New(rand.NewChaCha8([32]byte{42}))
	var layers []ocispec.Descriptor
	for off := int64(0); off < total; off += benchLayerSize {
		data := make([]byte, min(benchLayerSize, total-off))
		for i := 0; i < len(data); i += 8 {
			binary.LittleEndian.PutUint64(data[i:], rng.Uint64())
		}
		blob := fixture.NewBlob(ocispec.MediaTypeImageLayer, data)
		if err := benchUpload(reg.AdminHost, "bench/big", blob); err != nil {
			b.Fatal(err)
		}
		layers = append(layers, blob.Desc)
	}
	benchPushManifest(b, reg, "bench/big", layers)
	return reg, reg.Host + "/bench/big:1", layers, total
}

// benchPushManifest pushes, as repo:1, the config and manifest of an image
// of the local platform over uncompressed layers already in repo (each
// layer is its own diff).
func benchPushManifest(b *testing.B, reg *registrytest.Registry, repo string, layers []ocispec.Descriptor) {
	b.Helper()
	diffIDs := make([]digest.Digest, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.Digest
	}
	cfg, err := json.Marshal(ocispec.Image{Platform: platforms.DefaultSpec(), RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	if err != nil {
		b.Fatal(err)
	}
	config := fixture.NewBlob(ocispec.MediaTypeImageConfig, cfg)
	m, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: config.Desc, Layers: layers})
	if err != nil {
		b.Fatal(err)
	}
	if err := fixture.Push(context.Background(), reg.AdminHost, repo, "1", config, fixture.NewBlob(ocispec.MediaTypeImageManifest, m)); err != nil {
		b.Fatal(err)
	}
}

// benchUpload uploads one blob monolithically (fixture.Push would put a
// lone last blob as a manifest).
func benchUpload(host, repo string, blob fixture.Blob) error {
	resp, err := http.Post("http://"+host+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload of %s: %s", blob.Desc.Digest, resp.Status)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", blob.Desc.Digest.String())
	loc.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(blob.Data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload %s: %s", blob.Desc.Digest, resp.Status)
	}
	return nil
}

// BenchmarkExport runs the real binary exporting the image to stdout (a
// pipe drained by the benchmark) and reports the export process's peak RSS.
func BenchmarkExport(b *testing.B) {
	benchExport(b, false)
}

// BenchmarkExportFile is BenchmarkExport writing to a file with -o, which
// lets the exporter write blobs at their offsets in parallel.
func BenchmarkExportFile(b *testing.B) {
	benchExport(b, true)
}

// BenchmarkExportDevNull is BenchmarkExport with stdout on /dev/null: the
// tar is streamed as to a pipe, but writing it costs nothing, which leaves
// the fetch, the digest checks and the tar framing.
func BenchmarkExportDevNull(b *testing.B) {
	benchExportTo(b, false, true)
}

func benchExport(b *testing.B, toFile bool) {
	benchExportTo(b, toFile, false)
}

func benchExportTo(b *testing.B, toFile, devNull bool) {
	_, ref, _, total := benchImage(b)
	x := newImgx(b)
	out := benchOutput(b, "out.tar")
	b.SetBytes(total)
	var peak int64
	b.ResetTimer()
	for b.Loop() {
		args := []string{"export", "--progress", "quiet", ref}
		if toFile {
			args = append(args, "-o", out)
		}
		cmd := exec.Command(imgxBinary, args...)
		cmd.Env = append(x.Env, "DOCKER_IMGX_CPUPROFILE="+os.Getenv("DOCKER_IMGX_CPUPROFILE"))
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if devNull {
			null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer null.Close()
			cmd.Stdout = null
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		peak = max(peak, watchHWM(cmd.Process.Pid, cmd.Wait, func(err error) {
			b.Fatalf("export: %v\n%s", err, stderr.String())
		}))
		if toFile {
			st, err := os.Stat(out)
			if err != nil || st.Size() < total {
				b.Fatalf("output: %v, size below %d", err, total)
			}
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
}

// watchHWM reads the VmHWM of process pid every 5ms until wait returns, and
// returns the last value read. The rusage of a child is no use here: Linux
// carries the forking parent's peak into the child's ru_maxrss.
func watchHWM(pid int, wait func() error, fail func(error)) int64 {
	done := make(chan error, 1)
	var g errgroup.Group
	g.Go(func() error {
		done <- wait()
		return nil
	})
	var hwm int64
	for {
		select {
		case err := <-done:
			_ = g.Wait()
			if err != nil {
				fail(err)
			}
			return hwm
		case <-time.After(5 * time.Millisecond):
			hwm = max(hwm, readHWM(pid))
		}
	}
}

// readHWM returns the VmHWM line of /proc/PID/status in bytes, 0 when gone.
func readHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kib int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kib); err == nil {
				return kib << 10
			}
		}
	}
	return 0
}

// BenchmarkExportBaseline downloads the same blobs, as many at once as the
// export fetches, and hashes them: the speed an export can hope for.
func BenchmarkExportBaseline(b *testing.B) {
	benchBaseline(b, false)
}

// BenchmarkExportBaselineFile is BenchmarkExportBaseline also writing the
// blobs into one file, synced: what an export to a file can hope for on the
// machine's disk.
func BenchmarkExportBaselineFile(b *testing.B) {
	benchBaseline(b, true)
}

func benchBaseline(b *testing.B, toFile bool) {
	reg, _, layers, total := benchImage(b)
	out := benchOutput(b, "blobs")
	b.SetBytes(total)
	client := &http.Client{}
	b.ResetTimer()
	for b.Loop() {
		var f *os.File
		if toFile {
			var err error
			if f, err = os.Create(out); err != nil {
				b.Fatal(err)
			}
		}
		var g errgroup.Group
		g.SetLimit(4) // the export's default concurrency
		var off int64
		for _, l := range layers {
			w := io.Writer(io.Discard)
			if f != nil {
				w = io.NewOffsetWriter(f, off)
			}
			off += l.Size
			g.Go(func() error {
				resp, err := client.Get(reg.URL() + "/v2/bench/big/blobs/" + l.Digest.String())
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				h := sha256.New()
				if _, err := io.Copy(io.MultiWriter(h, w), resp.Body); err != nil {
					return err
				}
				if got := digest.NewDigest(digest.SHA256, h); got != l.Digest {
					return fmt.Errorf("blob %s: got %s", l.Digest, got)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		if f != nil {
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestExportRefusesTerminal runs the binary with stdout on a pseudo-terminal
// (util-linux script) and wants the refusal before anything is resolved.
func TestExportRefusesTerminal(t *testing.T) {
	t.Parallel()
	requireTool(t, "script", "bsdutils")
	cmd := exec.Command("script", "-qec", imgxBinary+" export 127.0.0.1:1/unreachable/app:1", "/dev/null")
	cmd.Env = newImgx(t).Env
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "ERROR: refusing to write a tar to a terminal") {
		t.Fatalf("output:\n%s", out)
	}
}
