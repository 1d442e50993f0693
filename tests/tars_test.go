package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// writeTarFile writes b to a new file in a temporary folder.
func writeTarFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// repeatedLayerTar is a docker save tar of one image whose manifest.json
// names one gzip layer (no digest in its name) n times, over a config with
// n diff_ids: the layer must be hashed once, not n times.
func repeatedLayerTar(t *testing.T, n, layerSize int) ([]byte, fixture.Blob) {
	t.Helper()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.NoCompression)
	_, _ = zw.Write(bytes.Repeat([]byte("imgx"), layerSize/4))
	_ = zw.Close()
	layer := fixture.NewBlob(ocispec.MediaTypeImageLayerGzip, gz.Bytes())
	diffIDs := make([]string, n)
	layers := make([]string, n)
	for i := range n {
		diffIDs[i] = digest.FromString("layer").String()
		layers[i] = "l/layer.tar.gz"
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	m, _ := json.Marshal([]map[string]any{{"Config": "c.json", "RepoTags": []string{"x/y:1"}, "Layers": layers}})
	return writeHostileTar(t, []hostileEntry{{name: "c.json", body: cfg}, {name: "l/layer.tar.gz", body: layer.Data}, {name: "manifest.json", body: m}}), layer
}

// TestTarRepeatedLayerHashedOnce drives inspect and export over a 16 MB
// tar whose manifest.json names its one compressed layer 2000 times: it was
// hashed per mention (32 GB of hashing); now once, within generous
// ceilings. A tar whose manifest would pass the manifest size limit is
// refused before any layer is read.
func TestTarRepeatedLayerHashedOnce(t *testing.T) {
	t.Parallel()
	x := newImgx(t)
	tb, layer := repeatedLayerTar(t, 2000, 16<<20)
	path := writeTarFile(t, "repeated.tar", tb)
	res := mustRunMeasured(t, x, "inspect", "--raw", "archive://"+path)
	checkCeilings(t, res)
	var m ocispec.Manifest
	if err := json.Unmarshal([]byte(res.Stdout), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 2000 || m.Layers[0].Digest != layer.Desc.Digest || m.Layers[1999].Digest != layer.Desc.Digest {
		t.Fatalf("manifest lists %d layers, first %v, want 2000 of %s", len(m.Layers), m.Layers[0], layer.Desc.Digest)
	}
	out := filepath.Join(t.TempDir(), "out.tar")
	res = mustRunMeasured(t, x, "export", "--progress", "quiet", "-o", out, "archive://"+path)
	checkCeilings(t, res)
	blobs := 0
	for _, e := range readTarFile(t, out) {
		if e.hdr.Name == "blobs/sha256/"+layer.Desc.Digest.Encoded() {
			blobs++
		}
	}
	if blobs != 1 {
		t.Errorf("the layer is in the export %d times, want once", blobs)
	}

	big, _ := repeatedLayerTar(t, 42000, 4)
	res = x.RunMeasured("inspect", "--raw", "archive://"+writeTarFile(t, "big.tar", big))
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, "manifest.json image 1: lists 42000 layers: its manifest would pass the 4194304 byte limit of a manifest") {
		t.Fatalf("exit %d, want the made manifest refused:\n%s", res.ExitCode, res.Stderr)
	}
	checkCeilings(t, res)
}

// rawTarHeader is a ustar header block, for the entries archive/tar will
// not write (a PAX header of GNU sparse records).
func rawTarHeader(name string, typ byte, size int64) []byte {
	h := make([]byte, 512)
	copy(h[0:], name)
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", size))
	copy(h[136:], "00000000000\x00")
	h[156] = typ
	copy(h[257:], "ustar\x0000")
	copy(h[148:], "        ")
	sum := 0
	for _, b := range h {
		sum += int(b)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

// paxRecord is one PAX record: its length (itself included), key, value.
func paxRecord(k, v string) string {
	base := len(" " + k + "=" + v + "\n")
	n := base + len(fmt.Sprint(base))
	if len(fmt.Sprint(n)) != len(fmt.Sprint(base)) {
		n = base + len(fmt.Sprint(n))
	}
	return fmt.Sprintf("%d %s=%s\n", n, k, v)
}

// pad512 pads b to a whole number of tar blocks.
func pad512(b []byte) []byte {
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

// sparseEntry is a PAX (GNU 1.0) sparse file as GNU tar --sparse writes
// it: its data up to the trailing zeros stored, the zeros a hole.
func sparseEntry(name string, data []byte) []byte {
	stored := len(bytes.TrimRight(data, "\x00"))
	var recs bytes.Buffer
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", name},
		{"GNU.sparse.realsize", fmt.Sprint(len(data))}} {
		recs.WriteString(paxRecord(kv[0], kv[1]))
	}
	body := pad512([]byte(fmt.Sprintf("1\n0\n%d\n", stored)))
	body = append(body, data[:stored]...)
	out := rawTarHeader("./PaxHeaders/"+name, tar.TypeXHeader, int64(recs.Len()))
	out = append(out, pad512(recs.Bytes())...)
	out = append(out, rawTarHeader("GNUSparseFile.0/"+name, tar.TypeReg, int64(len(body)))...)
	return append(out, pad512(body)...)
}

// loadableTar is a docker save tar as a rewriting tool leaves it: a PAX
// global header first (Python's tarfile), PAX long names, and the layer
// tar stored sparse (its trailing zero blocks a hole).
func loadableTar(t *testing.T, img fixture.Image) []byte {
	t.Helper()
	long := strings.Repeat("d", 120) + "/layer.tar"
	m, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{"x/loadable:1"}, "Layers": []string{long}}})
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "rewritten by tarfile"}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"config.json", img.Config.Data}, {"manifest.json", m}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(f.data)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	b.Write(sparseEntry(long, img.Layers[0].Data))
	b.Write(make([]byte, 1024)) // the end of the archive
	return b.Bytes()
}

// TestTarLoadableVariants drives inspect and export from archive:// over
// a docker save tar with a PAX global header, PAX long names and a sparse
// layer, as docker load reads it (global header ignored, sparse file
// expanded); a FIFO in a tar is refused with a line naming it.
func TestTarLoadableVariants(t *testing.T) {
	t.Parallel()
	x := newImgx(t)
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 2309, Compression: fixture.Uncompressed})
	path := writeTarFile(t, "loadable.tar", loadableTar(t, img))
	var m ocispec.Manifest
	if err := json.Unmarshal([]byte(x.MustRun("inspect", "--raw", "archive://"+path).Stdout), &m); err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest != img.Config.Desc.Digest || len(m.Layers) != 1 || m.Layers[0].Digest != img.Layers[0].Desc.Digest || m.Layers[0].Size != img.Layers[0].Desc.Size {
		t.Fatalf("manifest %+v, want config %s and layer %s", m, img.Config.Desc.Digest, img.Layers[0].Desc.Digest)
	}
	out := filepath.Join(t.TempDir(), "out.tar")
	x.MustRun("export", "--progress", "quiet", "-o", out, "archive://"+path)
	if got := tarFile(t, readTarFile(t, out), "blobs/sha256/"+img.Layers[0].Desc.Digest.Encoded()); !bytes.Equal(got, img.Layers[0].Data) {
		t.Errorf("exported layer is %d bytes, want the %d of the expanded sparse file", len(got), len(img.Layers[0].Data))
	}
	fifo := writeTarFile(t, "fifo.tar", writeHostileTar(t, append(imageEntries(t, img), hostileEntry{name: "pipe", typ: tar.TypeFifo})))
	x.MustFail([]string{`entry "pipe" is a FIFO (tar type '6'): an image tar holds files, folders and links only`}, "inspect", "archive://"+fifo)
}
