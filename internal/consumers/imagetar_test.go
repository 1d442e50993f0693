package consumers

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// tarLayout says which views of the images a test tar carries.
type tarLayout int

const (
	// layoutDocker is manifest.json only, as classic `docker save` writes.
	layoutDocker tarLayout = iota
	// layoutOCI is an OCI image layout only (oci-layout, index.json).
	layoutOCI
	// layoutBoth is both at once, over one set of blobs.
	layoutBoth
)

// testImage is a one-layer OCI image built in memory for the tests.
type testImage struct {
	name           string
	configDigest   string
	manifestDigest string
	manifest       []byte
	blobs          map[string][]byte
}

// blobDigest returns the sha256 digest string of b.
func blobDigest(b []byte) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

// blobPath is where a blob lives in both layouts.
func blobPath(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

// newTestImage builds an image for the host's platform whose single gzip
// layer holds one file with the given content; its config carries the
// matching diff_id.
func newTestImage(t *testing.T, name, content string) testImage {
	t.Helper()
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	if _, err := zw.Write(layerTar.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	config := mustJSON(t, map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Cmd": []string{"/hello"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{blobDigest(layerTar.Bytes())}},
	})
	manifest := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor("application/vnd.oci.image.config.v1+json", config),
		"layers":        []any{descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer.Bytes())},
	})
	return testImage{
		name:           name,
		configDigest:   blobDigest(config),
		manifestDigest: blobDigest(manifest),
		manifest:       manifest,
		blobs: map[string][]byte{
			blobDigest(config):        config,
			blobDigest(layer.Bytes()): layer.Bytes(),
			blobDigest(manifest):      manifest,
		},
	}
}

// descriptor describes a blob.
func descriptor(mediaType string, blob []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": blobDigest(blob), "size": len(blob)}
}

// mustJSON marshals v or fails the test.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// layerDigest returns the digest of the image's only layer.
func (img testImage) layerDigest(t *testing.T) string {
	t.Helper()
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal(img.manifest, &m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("manifest of %s: %v", img.name, err)
	}
	return m.Layers[0].Digest
}

// writeImageTar writes the images into a tar at a new path under t.TempDir()
// and returns the path. Index entries carry no platform field and are named
// the way `docker save` names them.
func writeImageTar(t *testing.T, layout tarLayout, images ...testImage) string {
	t.Helper()
	files := map[string][]byte{}
	var index, manifestJSON []any
	for _, img := range images {
		for digest, blob := range img.blobs {
			files[blobPath(digest)] = blob
		}
		entry := descriptor("application/vnd.oci.image.manifest.v1+json", img.manifest)
		entry["annotations"] = map[string]string{
			"io.containerd.image.name":          img.name,
			"org.opencontainers.image.ref.name": img.name[strings.LastIndex(img.name, ":")+1:],
		}
		index = append(index, entry)
		manifestJSON = append(manifestJSON, map[string]any{
			"Config":   blobPath(img.configDigest),
			"RepoTags": []string{img.name},
			"Layers":   []string{blobPath(img.layerDigest(t))},
		})
	}
	if layout != layoutDocker {
		files["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)
		files["index.json"] = mustJSON(t, map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.index.v1+json",
			"manifests":     index,
		})
	}
	if layout != layoutOCI {
		files["manifest.json"] = mustJSON(t, manifestJSON)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(path, tarBytes(t, files), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// tarBytes returns a tar of the files, sorted by name, with the blob
// directories first.
func tarBytes(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
			t.Fatal(err)
		}
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o444, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
