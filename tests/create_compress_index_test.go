package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/internal/consumers"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// compressedImage is what a push that compresses an image's plain layers
// gives: its manifest and the compressed layers, by the source's digests.
type compressedImage struct {
	manifest fixture.Blob
	layers   map[digest.Digest]fixture.Blob
}

// compressImage compresses img's layers as the product does (at the
// default level: deterministic) and writes its manifest again with them
// (a Docker manifest with zstd layers becomes OCI).
func compressImage(t *testing.T, img fixture.Image, f compression.Format) compressedImage {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(img.Manifest.Data, &m); err != nil {
		t.Fatal(err)
	}
	layerType := ocispec.MediaTypeImageLayerGzip
	switch {
	case f == compression.Zstd:
		layerType, m.MediaType, m.Config.MediaType = ocispec.MediaTypeImageLayerZstd, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig
	case m.MediaType == fixture.MediaTypeDockerManifest:
		layerType = images.MediaTypeDockerSchema2LayerGzip
	}
	out := compressedImage{layers: map[digest.Digest]fixture.Blob{}}
	for i, l := range img.Layers {
		var b bytes.Buffer
		w, err := compression.NewWriter(&b, f, compression.Default)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(l.Data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		c := fixture.NewBlob(layerType, b.Bytes())
		out.layers[l.Desc.Digest], m.Layers[i] = c, c.Desc
	}
	dt, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out.manifest = fixture.NewBlob(m.MediaType, dt)
	return out
}

// compressedIndex is src's index as create writes it again when its
// images' layers are compressed: each image descriptor renamed (platform
// kept), each attestation's reference annotation moved to the new digest
// of its image, the other fields kept (written compact, keys sorted) but
// for a Docker list's media type, OCI's when it lists OCI manifests now.
func compressedIndex(t *testing.T, src fixture.Index, imgs []compressedImage) fixture.Blob {
	t.Helper()
	var fields map[string]json.RawMessage
	var idx ocispec.Index
	if json.Unmarshal(src.Index.Data, &fields) != nil || json.Unmarshal(src.Index.Data, &idx) != nil {
		t.Fatal("parse the source index")
	}
	renamed := map[string]ocispec.Descriptor{}
	for i, img := range src.Images {
		renamed[img.Manifest.Desc.Digest.String()] = imgs[i].manifest.Desc
	}
	for i, m := range idx.Manifests {
		if n, ok := renamed[m.Digest.String()]; ok {
			idx.Manifests[i].MediaType, idx.Manifests[i].Digest, idx.Manifests[i].Size = n.MediaType, n.Digest, n.Size
			if n.MediaType == ocispec.MediaTypeImageManifest && idx.MediaType == fixture.MediaTypeDockerManifestList {
				idx.MediaType = ocispec.MediaTypeImageIndex
				fields["mediaType"] = json.RawMessage(`"` + idx.MediaType + `"`)
			}
		}
		if n, ok := renamed[m.Annotations[fixture.AnnotationReferenceDigest]]; ok {
			idx.Manifests[i].Annotations = maps.Clone(m.Annotations)
			idx.Manifests[i].Annotations[fixture.AnnotationReferenceDigest] = n.Digest.String()
		}
	}
	var err error
	if fields["manifests"], err = json.Marshal(idx.Manifests); err != nil {
		t.Fatal(err)
	}
	dt, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return fixture.NewBlob(idx.MediaType, dt)
}

// assertPushedBlob checks that reg holds b at repo, byte for byte.
func assertPushedBlob(t *testing.T, reg *registrytest.Registry, repo string, b fixture.Blob) {
	t.Helper()
	var got []byte
	var err error
	if fixture.IsManifest(b.Desc.MediaType) {
		got, _, err = fixture.Fetch(context.Background(), reg.AdminHost, repo, b.Desc.Digest.String())
	} else {
		got, err = fixture.FetchBlob(context.Background(), reg.AdminHost, repo, b.Desc.Digest)
	}
	if err != nil || !bytes.Equal(got, b.Data) {
		t.Fatalf("%s@%s (%s): not the bytes wanted (%v):\n%.600s\nwant:\n%.600s", repo, b.Desc.Digest, b.Desc.MediaType, err, got, b.Data)
	}
}

// TestCreateCompressesIndexOfPlainLayers creates, into a TLS registry, from
// an image tar holding an OCI index of two platform images with plain
// layers and their BuildKit attestations: each image's layers are pushed
// gzip (the bytes a deterministic compression gives), each manifest
// written again with them (config and diff IDs kept), the index lists the
// new manifests with their platforms, its annotations kept and each
// attestation (its manifest and layers as they were) pointing at the new
// digest of its image. Two runs give the same index. --platform keeps one
// image and its attestation and compresses that image only; --compression
// none pushes the source's index as it is, and so does a create from an
// OCI layout (plain layers there are content). A Docker 29 engine pulls each
// platform of the index made and holds the source's layers (diff IDs); the
// source tar loaded into it, docker-daemon:// gives the same index.
func TestCreateCompressesIndexOfPlainLayers(t *testing.T) {
	t.Parallel()
	a := registrytest.Start(t, registrytest.Options{})
	b := registrytest.Start(t, registrytest.Options{TLS: true})
	x := newImgx(t)
	if err := b.WriteCertsDir(x.CertsDir()); err != nil {
		t.Fatal(err)
	}
	app := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 2431, Compression: fixture.Uncompressed})
	tool := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Layers: 1, Seed: 2432, Compression: fixture.Uncompressed})
	src := fixture.WithAttestations(fixture.NewIndex([]fixture.Image{app, tool}, false, map[string]string{"org.opencontainers.image.title": "plain"}), 2433)
	pushIndex(t, a, "src/multi", "1", src)
	tarPath, _ := export(t, x, "--platform", "all", a.Host+"/src/multi:1")
	source := "archive://" + tarPath + ":" + a.Host + "/src/multi:1"

	imgs := []compressedImage{compressImage(t, app, compression.Gzip), compressImage(t, tool, compression.Gzip)}
	want := compressedIndex(t, src, imgs)
	for _, repo := range []string{"gz/one", "gz/two"} {
		res := x.MustRun("create", "--progress", "plain", "-t", b.Host+"/"+repo+":1", source)
		if got := mustDigestLine(t, res); got != want.Desc.Digest {
			t.Fatalf("%s: created %s, want %s:\n%s\nwant:\n%s", repo, got, want.Desc.Digest, fetchTag(t, b, repo, "1"), want.Data)
		}
		assertPushedBlob(t, b, repo, want)
		for i, img := range []fixture.Image{app, tool} {
			assertPushedBlob(t, b, repo, imgs[i].manifest)
			assertPushedBlob(t, b, repo, img.Config)
			for _, l := range img.Layers {
				assertPushedBlob(t, b, repo, imgs[i].layers[l.Desc.Digest])
				if !strings.Contains(res.Stderr, "compressing "+l.Desc.Digest.String()+" (gzip): "+imgs[i].layers[l.Desc.Digest].Desc.Digest.String()) {
					t.Errorf("%s: the progress does not show the compression of %s:\n%s", repo, l.Desc.Digest, res.Stderr)
				}
			}
			for _, blob := range src.Attestations[i].Blobs() {
				assertPushedBlob(t, b, repo, blob)
			}
		}
	}

	// One platform: that image and its attestation, only its layer compressed.
	res := x.MustRun("create", "--progress", "plain", "--platform", "linux/arm64", "-t", b.Host+"/gz/arm:1", source)
	var full ocispec.Index
	if err := json.Unmarshal(want.Data, &full); err != nil {
		t.Fatal(err)
	}
	full.Manifests = []ocispec.Descriptor{full.Manifests[1], full.Manifests[3]}
	armDT, err := json.MarshalIndent(full, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	arm := fixture.NewBlob(full.MediaType, armDT)
	if got := mustDigestLine(t, res); got != arm.Desc.Digest {
		t.Fatalf("--platform linux/arm64: created %s, want %s:\n%s\nwant:\n%s", got, arm.Desc.Digest, fetchTag(t, b, "gz/arm", "1"), armDT)
	}
	assertPushedBlob(t, b, "gz/arm", arm)
	assertPushedBlob(t, b, "gz/arm", imgs[1].manifest)
	if strings.Contains(res.Stderr, "compressing "+app.Layers[0].Desc.Digest.String()) {
		t.Errorf("--platform linux/arm64 compressed a layer of linux/amd64:\n%s", res.Stderr)
	}

	// A tar of one platform's content under the whole index (a single-
	// platform export): refused with the platforms it holds, as without
	// compression; with -p, that image compressed to the same index.
	armTar, _ := export(t, x, "--platform", "linux/arm64", a.Host+"/src/multi:1")
	armSource := "archive://" + armTar + ":" + a.Host + "/src/multi:1"
	x.MustFail([]string{"holds the content of linux/arm64 only, not of linux/amd64", "take what it holds with -p linux/arm64"},
		"create", "--progress", "quiet", "-t", b.Host+"/gz/partial:1", armSource)
	if got := fetchTag(t, b, "gz/partial", "1"); got != "" {
		t.Fatalf("a refused create tagged gz/partial:1")
	}
	res = x.MustRun("create", "--progress", "quiet", "-p", "linux/arm64", "-t", b.Host+"/gz/partial:1", armSource)
	if got := mustDigestLine(t, res); got != arm.Desc.Digest {
		t.Fatalf("-p linux/arm64 from a tar of that platform: created %s, want %s", got, arm.Desc.Digest)
	}

	// --compression none: the source's index, as it is.
	res = x.MustRun("create", "--progress", "quiet", "--compression", "none", "-t", b.Host+"/plain/multi:1", source)
	if got := mustDigestLine(t, res); got != src.Index.Desc.Digest {
		t.Fatalf("--compression none: created %s, want the source's %s", got, src.Index.Desc.Digest)
	}
	for _, blob := range src.Blobs() {
		assertPushedBlob(t, b, "plain/multi", blob)
	}

	// An OCI layout is content, not an engine's store: its plain layers are
	// pushed as they are, the index keeps its digest (as copy does).
	layout := t.TempDir()
	if err := fixture.WriteLayout(layout, map[string]fixture.Blob{"1": src.Index}, src.Blobs()...); err != nil {
		t.Fatal(err)
	}
	res = x.MustRun("create", "--progress", "quiet", "-t", b.Host+"/layout/multi:1", "oci-layout://"+layout+":1")
	if got := mustDigestLine(t, res); got != src.Index.Desc.Digest {
		t.Fatalf("from an OCI layout: created %s, want the source's %s", got, src.Index.Desc.Digest)
	}

	// A Docker 29 engine pulls each platform of the index made.
	d := consumers.StartDocker29(t)
	for i, img := range []fixture.Image{app, tool} {
		plat := img.Platform.OS + "/" + img.Platform.Architecture
		name := b.Host + "/gz/one:1"
		if out, err := d.Run(t, "pull", "-q", "--platform", plat, name); err != nil {
			t.Fatalf("docker pull --platform %s: %v\n%s", plat, err, out)
		}
		out, err := d.Run(t, "image", "inspect", "--platform", plat, "--format", "{{json .RootFS.Layers}}", name)
		var diffIDs []digest.Digest
		if err != nil || json.Unmarshal([]byte(out), &diffIDs) != nil {
			t.Fatalf("inspect --platform %s: %v\n%s", plat, err, out)
		}
		var cfg ocispec.Image
		if err := json.Unmarshal(img.Config.Data, &cfg); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(diffIDs, cfg.RootFS.DiffIDs) {
			t.Fatalf("%s: the engine's layers %v, want the source's diff IDs %v", plat, diffIDs, cfg.RootFS.DiffIDs)
		}
		if i == 1 {
			if got := d.ImagePlatforms(t, name); !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
				t.Fatalf("the engine holds %v of %s, want both platforms", got, name)
			}
		}
	}

	// The engine holds the source tar's index as loaded, plain layers and
	// all: from docker-daemon:// it is compressed alike, to the same digest.
	if out, err := d.Load(t, tarPath); err != nil {
		t.Fatalf("docker load: %v\n%s", err, out)
	}
	res = x.With(d.Env()...).MustRun("create", "--progress", "plain", "-t", b.Host+"/engine/multi:1", "docker-daemon://"+a.Host+"/src/multi:1")
	if got := mustDigestLine(t, res); got != want.Desc.Digest {
		t.Fatalf("from docker-daemon://: created %s, want %s:\n%s\n%s", got, want.Desc.Digest, fetchTag(t, b, "engine/multi", "1"), res.Stderr)
	}
}

// TestCreateCompressesDockerListOfPlainLayers creates from an image tar
// holding a Docker manifest list of two Docker images with plain layers:
// gzip keeps the Docker types (Docker's gzip layers, a Docker list); zstd
// makes each manifest OCI and the list an OCI index, as combine makes one
// of OCI manifests. Every pushed manifest and layer is the bytes computed.
func TestCreateCompressesDockerListOfPlainLayers(t *testing.T) {
	t.Parallel()
	a := registrytest.Start(t, registrytest.Options{})
	b := registrytest.Start(t, registrytest.Options{})
	x := newImgx(t)
	app := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 2434, Compression: fixture.Uncompressed, Docker: true})
	tool := fixture.NewImage(fixture.ImageOptions{Platform: "linux/arm64", Layers: 1, Seed: 2435, Compression: fixture.Uncompressed, Docker: true})
	src := fixture.NewIndex([]fixture.Image{app, tool}, true, nil)
	pushIndex(t, a, "src/list", "1", src)
	tarPath, _ := export(t, x, "--platform", "all", a.Host+"/src/list:1")
	source := "archive://" + tarPath + ":" + a.Host + "/src/list:1"
	for _, tc := range []struct {
		format    compression.Format
		indexType string
	}{
		{compression.Gzip, fixture.MediaTypeDockerManifestList},
		{compression.Zstd, ocispec.MediaTypeImageIndex},
	} {
		repo := "list/" + string(tc.format)
		imgs := []compressedImage{compressImage(t, app, tc.format), compressImage(t, tool, tc.format)}
		want := compressedIndex(t, src, imgs)
		if want.Desc.MediaType != tc.indexType {
			t.Fatalf("%s: the index computed is %s, want %s", tc.format, want.Desc.MediaType, tc.indexType)
		}
		res := x.MustRun("create", "--progress", "quiet", "--compression", string(tc.format), "-t", b.Host+"/"+repo+":1", source)
		if got := mustDigestLine(t, res); got != want.Desc.Digest {
			t.Fatalf("%s: created %s, want %s:\n%s\nwant:\n%s", tc.format, got, want.Desc.Digest, fetchTag(t, b, repo, "1"), want.Data)
		}
		assertPushedBlob(t, b, repo, want)
		for i, img := range []fixture.Image{app, tool} {
			assertPushedBlob(t, b, repo, imgs[i].manifest)
			assertPushedBlob(t, b, repo, img.Config)
			for _, l := range img.Layers {
				assertPushedBlob(t, b, repo, imgs[i].layers[l.Desc.Digest])
			}
		}
	}
}
