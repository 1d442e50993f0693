package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// hostileEntry is one entry of a hand-made hostile tar.
type hostileEntry struct {
	name string
	body []byte
	typ  byte // tar.TypeReg when 0
	link string
}

func writeHostileTar(t *testing.T, entries []hostileEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// imageEntries is a valid OCI layout view of img: index.json and its blobs.
func imageEntries(t *testing.T, img fixture.Image) []hostileEntry {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{img.Manifest.Desc}}
	out := []hostileEntry{{name: "index.json", body: mustMarshal(t, idx)}}
	for _, b := range append([]fixture.Blob{img.Manifest, img.Config}, img.Layers...) {
		out = append(out, hostileEntry{name: "blobs/sha256/" + b.Desc.Digest.Encoded(), body: b.Data})
	}
	return out
}

// TestArchiveHostile feeds hostile and broken tars to create through the
// binary: each is one line naming what is wrong, and nothing is pushed.
func TestArchiveHostile(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	x := newImgx(t)
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 41})
	valid := imageEntries(t, img)
	dockerView := func(cfg string, layers ...string) []hostileEntry {
		m := []map[string]any{{"Config": cfg, "RepoTags": []string{"x/y:1"}, "Layers": layers}}
		dt, _ := json.Marshal(m)
		return []hostileEntry{{name: "manifest.json", body: dt}, {name: "c.json", body: img.Config.Data}}
	}
	tampered := append([]hostileEntry{}, valid...)
	tampered[len(tampered)-1] = hostileEntry{name: tampered[len(tampered)-1].name, body: bytes.Repeat([]byte{'x'}, len(img.Layers[0].Data))}
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	_, _ = zw.Write(make([]byte, 4<<20))
	_ = zw.Close()
	var huge bytes.Buffer
	tw := tar.NewWriter(&huge)
	_ = tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + strings.Repeat("a", 64), Size: 1 << 40, Mode: 0o644, Typeflag: tar.TypeReg})
	huge.Write(make([]byte, 2048))
	whole := writeHostileTar(t, valid)

	cases := []struct {
		name string
		tar  []byte
		want []string
	}{
		{"parent folder", writeHostileTar(t, append(valid, hostileEntry{name: "../evil", body: []byte("x")})), []string{`"../evil"`, "parent folder"}},
		{"absolute name", writeHostileTar(t, append(valid, hostileEntry{name: "/etc/evil", body: []byte("x")})), []string{`"/etc/evil"`, "absolute"}},
		{"symlink outside", writeHostileTar(t, append(valid, hostileEntry{name: "blobs/link", typ: tar.TypeSymlink, link: "../../etc/passwd"})), []string{"links outside the tar"}},
		{"hard link to nothing", writeHostileTar(t, append(valid, hostileEntry{name: "l", typ: tar.TypeLink, link: "nothing"})), []string{`links to "nothing"`}},
		{"device", writeHostileTar(t, append(valid, hostileEntry{name: "dev", typ: tar.TypeChar})), []string{`"dev"`, "is a character device"}},
		{"duplicate", writeHostileTar(t, append(valid, valid[0])), []string{`"index.json" appears twice`}},
		{"huge header", huge.Bytes(), []string{"claims 1099511627776 bytes"}},
		{"gzip bomb", bomb.Bytes(), []string{"decompresses to more than 1048576 bytes", "DOCKER_IMGX_MAX_DECOMPRESSED"}},
		{"index.json names a missing blob", writeHostileTar(t, valid[:1]), []string{"does not hold under blobs/"}},
		{"manifest.json points outside", writeHostileTar(t, dockerView("../c.json")), []string{`"../c.json"`, "parent folder"}},
		{"manifest.json lists itself", writeHostileTar(t, dockerView("manifest.json")), []string{`"manifest.json" as image content`}},
		{"manifest.json names nothing", writeHostileTar(t, dockerView("c.json", "layer.tar")), []string{`"layer.tar", which is not a file`}},
		{"not an image tar", writeHostileTar(t, []hostileEntry{{name: "hello.txt", body: []byte("hi")}}), []string{"neither index.json nor manifest.json"}},
		{"not a tar", bytes.Repeat([]byte("not a tar "), 200), []string{"not a tar"}},
		{"truncated", whole[:len(whole)/2], []string{"truncated"}},
		{"tampered blob", writeHostileTar(t, tampered), []string{img.Layers[0].Desc.Digest.String(), "hashes to"}},
	}
	y := x.With("DOCKER_IMGX_MAX_DECOMPRESSED=1MiB")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hostile.tar")
			if err := os.WriteFile(path, tc.tar, 0o644); err != nil {
				t.Fatal(err)
			}
			y.MustFail(append([]string{"archive://" + path}, tc.want...), "create", "--progress", "quiet", "-t", reg.Host+"/hostile/app:1", "archive://"+path)
			if got := fetchTag(t, reg, "hostile/app", "1"); got != "" {
				t.Fatal("a tag was pushed from a hostile tar")
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "valid.tar")
		if err := os.WriteFile(path, whole, 0o644); err != nil {
			t.Fatal(err)
		}
		if d := createFrom(t, x, reg, "hostile/valid:1", "archive://"+path); d != img.Manifest.Desc.Digest {
			t.Fatalf("digest %s, want %s", d, img.Manifest.Desc.Digest)
		}
	})
}
