package tests

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// classicSaveTar writes a classic `docker save` tar (manifest.json only,
// each layer a plain tar in a folder of its own, as Docker before 25
// wrote it) of the images, each under its RepoTags name.
func classicSaveTar(t *testing.T, imgs map[string]fixture.Image) string {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	var entries []map[string]any
	for name, img := range imgs {
		cfg := img.Config.Desc.Digest.Encoded() + ".json"
		add(cfg, img.Config.Data)
		var layers []string
		for _, l := range img.Layers {
			p := l.Desc.Digest.Encoded() + "/layer.tar"
			add(p, l.Data)
			layers = append(layers, p)
		}
		entries = append(entries, map[string]any{"Config": cfg, "RepoTags": []string{name}, "Layers": layers})
	}
	m, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	add("manifest.json", m)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return writeTarFile(t, "saved.tar", b.Bytes())
}

// TestCopyCompressesPlainLayers copies a classic docker save tar of two
// images under a registry prefix (archive:// reads it as OCI images with
// plain layers): their layers are pushed gzip by default, zstd with
// --compression zstd, as they are with none (the tar's own digest); config and
// diff IDs are the source's in every case, the table and --metadata-file
// say that the digest is the copy's own, and a second run is skipped
// after reads only (the compression gives the same bytes again).
func TestCopyCompressesPlainLayers(t *testing.T) {
	t.Parallel()
	b := registrytest.Start(t, registrytest.Options{})
	x := newImgx(t)
	app := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 2401, Compression: fixture.Uncompressed})
	tool := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Layers: 1, Seed: 2402, Compression: fixture.Uncompressed})
	saved := classicSaveTar(t, map[string]fixture.Image{"team/app:1": app, "tool:2": tool})
	srcApp, srcTool := "archive://"+saved+":team/app:1", "archive://"+saved+":tool:2"
	meta := filepath.Join(t.TempDir(), "report.json")

	for _, tc := range []struct {
		flag, prefix, manifestType, layerType string
	}{
		{"", "gz", ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageLayerGzip},
		{"zstd", "zst", ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageLayerZstd},
		{"none", "plain", ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageLayer},
	} {
		args := []string{"copy", "--progress", "plain", "--metadata-file", meta}
		if tc.flag != "" {
			args = append(args, "--compression", tc.flag)
		}
		args = append(args, "archive://"+saved, b.Host+"/"+tc.prefix)
		res := x.MustRun(args...)
		var rows [][4]string
		for _, s := range []struct {
			src, repo, tag string
			img            fixture.Image
		}{{srcApp, tc.prefix + "/team/app", "1", app}, {srcTool, tc.prefix + "/library/tool", "2", tool}} {
			pushed := digest.FromString(fetchTag(t, b, s.repo, s.tag))
			m := pushedManifest(t, b, s.repo, pushed)
			if m.MediaType != tc.manifestType {
				t.Fatalf("%s: manifest type %s, want %s", tc.prefix, m.MediaType, tc.manifestType)
			}
			assertImageOf(t, b, s.repo, pushed, s.img)
			assertLayerTypes(t, b, s.repo, pushed, tc.layerType)
			result := "copied: layers compressed (" + map[string]string{"": "gzip"}[tc.flag] + tc.flag + "): the digest is not the source's"
			if tc.flag == "none" {
				result = "copied"
				if raw := x.MustRun("inspect", "--raw", s.src).Stdout; digest.FromString(raw) != pushed {
					t.Fatalf("--compression none pushed %s, the tar's manifest is %s", pushed, digest.FromString(raw))
				}
			} else if !strings.Contains(res.Stderr, "compressing "+s.img.Layers[0].Desc.Digest.String()) {
				t.Errorf("the progress does not show the compression of %s:\n%s", s.img.Layers[0].Desc.Digest, res.Stderr)
			}
			rows = append(rows, [4]string{s.src, b.Host + "/" + s.repo + ":" + s.tag, pushed.String(), result})
		}
		if want := copyTable(rows...); res.Stdout != want {
			t.Errorf("%s: stdout:\n%s\nwant:\n%s", tc.prefix, res.Stdout, want)
		}
		report, err := os.ReadFile(meta)
		if err != nil || !strings.Contains(string(report), `"reason": "`+strings.TrimPrefix(rows[0][3], "copied: ")+`"`) && tc.flag != "none" {
			t.Errorf("%s: --metadata-file (%v):\n%s", tc.prefix, err, report)
		}
	}

	// Compressed again, the layers are the same bytes: a second run only reads.
	b.ResetRequests()
	res := x.MustRun("copy", "--progress", "quiet", "archive://"+saved, b.Host+"/gz")
	if n := strings.Count(res.Stdout, "  skipped\n"); n != 2 {
		t.Errorf("second run: %d images skipped, want 2:\n%s", n, res.Stdout)
	}
	for _, r := range b.Requests() {
		if r.Method != "GET" && r.Method != "HEAD" {
			t.Errorf("second run sent %s %s", r.Method, r.Path)
		}
	}

	// An index whose images have plain layers (an image tar of it, as
	// export writes it): each image compressed, the index written again
	// with their new descriptors, its platforms and annotations kept; each
	// attestation kept and pointing at the new digest of its image.
	plainIdx := fixture.WithAttestations(fixture.NewIndex([]fixture.Image{app, tool}, false, map[string]string{"org.opencontainers.image.title": "plain"}), 2403)
	pushIndex(t, b, "src/multi", "1", plainIdx)
	idxTar, _ := export(t, x, "--platform", "all", b.Host+"/src/multi:1")
	x.MustRun("copy", "--progress", "quiet", "archive://"+idxTar+":"+b.Host+"/src/multi:1", b.Host+"/gz/multi:1")
	var got, src ocispec.Index
	if err := json.Unmarshal([]byte(fetchTag(t, b, "gz/multi", "1")), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(plainIdx.Index.Data, &src); err != nil {
		t.Fatal(err)
	}
	if len(got.Manifests) != 4 || got.MediaType != src.MediaType || got.Annotations["org.opencontainers.image.title"] != "plain" {
		t.Fatalf("copied index %+v, want the source's two images, two attestations and annotations", got)
	}
	for i := range 2 {
		att := got.Manifests[2+i]
		if att.Digest != src.Manifests[2+i].Digest || att.Annotations[fixture.AnnotationReferenceDigest] != got.Manifests[i].Digest.String() {
			t.Fatalf("attestation %d: %+v, want the source's %s about %s", i, att, src.Manifests[2+i].Digest, got.Manifests[i].Digest)
		}
	}
	for i, img := range []fixture.Image{app, tool} {
		m := got.Manifests[i]
		if m.Digest == src.Manifests[i].Digest || m.Platform == nil || platforms.Format(*m.Platform) != platforms.Format(*src.Manifests[i].Platform) {
			t.Fatalf("index entry %d: %+v, want a new digest and the source's platform %+v", i, m, src.Manifests[i].Platform)
		}
		assertImageOf(t, b, "gz/multi", m.Digest, img)
		assertLayerTypes(t, b, "gz/multi", m.Digest, ocispec.MediaTypeImageLayerGzip)
	}

	x.MustFail([]string{`invalid --compression "lz4": want gzip, zstd, none`}, "copy", "--compression", "lz4", "archive://"+saved, b.Host+"/bad")
	none := digest.FromString(x.MustRun("inspect", "--raw", srcApp).Stdout)
	res = x.Run("copy", "--progress", "quiet", "archive://"+saved+"@"+none.String(), b.Host+"/bad/app@"+none.String())
	if want := "failed: target " + b.Host + "/bad/app@" + none.String() + ": --compression gzip compresses the plain layers of archive://" + saved + "@" + none.String() +
		", which gives the copy another digest: name the target by a tag, or give --compression none\n"; res.ExitCode != 1 || !strings.HasSuffix(res.Stdout, want) {
		t.Errorf("a target by digest: exit %d\nstdout:\n%s\nstderr:\n%s\nwant it to end in %s", res.ExitCode, res.Stdout, res.Stderr, want)
	}
	if got := fetchTag(t, b, "bad/app", none.String()); got != "" {
		t.Errorf("a refused copy pushed bad/app@%s", none)
	}
}
