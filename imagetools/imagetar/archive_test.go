package imagetar

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// tarOf writes a tar of files, in order; a value starting with "->" is a
// symlink to the rest.
func tarOf(t testing.TB, files ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for i := 0; i+1 < len(files); i += 2 {
		hdr := &tar.Header{Name: files[i], Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(files[i+1]))}
		if target, ok := strings.CutPrefix(files[i+1], "->"); ok {
			hdr = &tar.Header{Name: files[i], Typeflag: tar.TypeSymlink, Linkname: target}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(files[i+1]))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func openBytes(t testing.TB, dt []byte) (*Archive, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "a.tar")
	if err := os.WriteFile(path, dt, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return Open(context.Background(), f, "archive://a.tar", Options{})
}

// dockerSave is a classic docker save tar: one image of two layers, the
// second a symlink to the first (docker save writes one for a repeated
// layer).
func dockerSave(t testing.TB) ([]byte, string, string) {
	layer := string(tarOf(t, "file", "hello"))
	diff := digest.FromString(layer)
	cfg := `{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{"type":"layers","diff_ids":["` + diff.String() + `","` + diff.String() + `"]}}`
	manifest := `[{"Config":"c.json","RepoTags":["example.com/app:1"],"Layers":["aa/layer.tar","bb/layer.tar"]}]`
	return tarOf(t, "c.json", cfg, "aa/layer.tar", layer, "bb/layer.tar", "->../aa/layer.tar", "manifest.json", manifest), cfg, layer
}

func TestDockerViewManifest(t *testing.T) {
	dt, cfg, layer := dockerSave(t)
	a, err := openBytes(t, dt)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, name := range []string{"", "example.com/app:1"} {
		desc, mdt, err := a.Manifest(context.Background(), ref.Location{Scheme: ref.SchemeArchive, Path: "a.tar", Tag: name})
		if err != nil {
			t.Fatal(err)
		}
		ld := `{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + digest.FromString(layer).String() + `","size":` + itoa(len(layer)) + `}`
		want := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
			digest.FromString(cfg).String() + `","size":` + itoa(len(cfg)) + `},"layers":[` + ld + `,` + ld + `]}`
		if string(mdt) != want {
			t.Fatalf("manifest:\n%s\nwant:\n%s", mdt, want)
		}
		if desc.Digest != digest.FromString(want) || desc.Platform == nil || desc.Platform.Variant != "v8" {
			t.Fatalf("descriptor %+v", desc)
		}
		var m ocispec.Manifest
		_ = json.Unmarshal(mdt, &m)
		rc, err := a.Fetch(context.Background(), m.Layers[1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || string(got) != layer {
			t.Fatalf("layer through the symlink: %v", err)
		}
	}
	if _, _, err := a.Manifest(context.Background(), ref.Location{Path: "a.tar", Tag: "other:1"}); err == nil || !strings.Contains(err.Error(), "it holds example.com/app:1") {
		t.Fatalf("unknown name: %v", err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestFetchVerifies(t *testing.T) {
	blob := "content"
	d := digest.FromString(blob)
	idx := `{"schemaVersion":2,"manifests":[]}`
	a, err := openBytes(t, tarOf(t, "index.json", idx, "blobs/sha256/"+d.Encoded(), "tampered"))
	if err == nil {
		defer a.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	rc, err := a.Fetch(context.Background(), ocispec.Descriptor{Digest: d, Size: int64(len("tampered"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, imagetools.ErrDigestMismatch) {
		t.Fatalf("tampered blob read with %v", err)
	}
}

func TestIndexTarRefuses(t *testing.T) {
	for name, files := range map[string][]string{
		"parent folder":   {"a/../../x", "1"},
		"absolute":        {"/x", "1"},
		"duplicate":       {"x", "1", "./x", "2"},
		"symlink outside": {"x", "->../../etc/passwd"},
		"dangling link":   {"x", "->y"},
		"link to link":    {"y", "1", "x", "->z", "z", "->y"},
	} {
		if _, err := openBytes(t, tarOf(t, files...)); err == nil || !strings.Contains(err.Error(), "archive://a.tar: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzArchive opens a fuzzed tar and reads every image it names and every
// blob of theirs: nothing may panic, and only what the tar holds is read.
func FuzzArchive(f *testing.F) {
	save, _, _ := dockerSave(f)
	f.Add(save)
	f.Add(tarOf(f, "index.json", `{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":2}]}`,
		"blobs/sha256/"+strings.Repeat("a", 64), "{}"))
	f.Add(tarOf(f, "manifest.json", `[{"Config":"../x","Layers":["/y"]}]`))
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Fuzz(func(t *testing.T, dt []byte) {
		dir, err := os.MkdirTemp("", "imgx-fuzz-archive-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "a.tar")
		if err := os.WriteFile(path, dt, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		a, err := Open(context.Background(), file, "archive://a.tar", Options{MaxDecompressed: 1 << 20})
		if err != nil {
			return
		}
		defer a.Close()
		for _, img := range a.images {
			_, mdt, err := a.Manifest(context.Background(), ref.Location{Path: path, Digest: img.desc.Digest})
			if err != nil {
				continue
			}
			var m ocispec.Manifest
			if json.Unmarshal(mdt, &m) != nil {
				continue
			}
			for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
				if rc, err := a.Fetch(context.Background(), d); err == nil {
					_, _ = io.Copy(io.Discard, rc)
				}
			}
		}
	})
}

// TestIndexBounds refuses a tar past the entries or names an index holds
// (here with limits scaled down), before memory holds them.
func TestIndexBounds(t *testing.T) {
	var files []string
	for i := range 10 {
		files = append(files, fmt.Sprintf("%03d", i)+strings.Repeat("n", 97), "x")
	}
	path := filepath.Join(t.TempDir(), "a.tar")
	if err := os.WriteFile(path, tarOf(t, files...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		limits indexLimits
		want   string
	}{
		{indexLimits{entries: 9, nameBytes: 1000}, "holds more than 9 entries: not an image tar"},
		{indexLimits{entries: 10, nameBytes: 999}, "names add up to more than 999 bytes: not an image tar"},
		{indexLimits{entries: 10, nameBytes: 1000}, ""},
	} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = indexTarWithin(context.Background(), f, 1<<20, "", c.limits)
		_ = f.Close()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("limits %+v: err = %v, want %q", c.limits, err, c.want)
		}
	}
}
