package export

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// exptestStore is an in-memory registry: blobs by digest. It counts how many
// fetched readers are open at once.
type exptestStore struct {
	blobs map[digest.Digest][]byte

	mu        sync.Mutex
	open      int
	maxOpen   int
	fetchedBy map[digest.Digest]int
}

func newExptestStore() *exptestStore {
	return &exptestStore{blobs: map[digest.Digest][]byte{}, fetchedBy: map[digest.Digest]int{}}
}

func (s *exptestStore) add(mediaType string, data []byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	s.blobs[d] = data
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func (s *exptestStore) Fetch(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	data, ok := s.blobs[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, errdefs.ErrNotFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open++
	s.maxOpen = max(s.maxOpen, s.open)
	s.fetchedBy[desc.Digest]++
	return &exptestReader{Reader: bytes.NewReader(data), s: s}, nil
}

type exptestReader struct {
	io.Reader
	s    *exptestStore
	once sync.Once
}

func (r *exptestReader) Close() error {
	r.once.Do(func() {
		r.s.mu.Lock()
		r.s.open--
		r.s.mu.Unlock()
	})
	return nil
}

// exptestLayer returns a gzip-compressed layer tar holding one file, and its diff_id.
func exptestLayer(t testing.TB, name, content string) ([]byte, digest.Digest) {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tw, content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return gz.Bytes(), digest.FromBytes(raw.Bytes())
}

// exptestImageSpec describes a test image.
type exptestImageSpec struct {
	platform string
	layers   []string // file contents, one layer each
	// layerMediaType overrides the media type of every layer.
	layerMediaType string
	// foreign makes the last layer non-distributable with a URL.
	foreign bool
}

type exptestImage struct {
	manifest ocispec.Descriptor
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
	diffIDs  []digest.Digest
}

func (s *exptestStore) image(t testing.TB, spec exptestImageSpec) exptestImage {
	t.Helper()
	p := platforms.MustParse(spec.platform)
	var img exptestImage
	var history []ocispec.History
	for i, content := range spec.layers {
		data, diffID := exptestLayer(t, fmt.Sprintf("file%d", i), content)
		mt := ocispec.MediaTypeImageLayerGzip
		if spec.layerMediaType != "" {
			mt = spec.layerMediaType
		}
		if spec.foreign && i == len(spec.layers)-1 {
			mt = images.MediaTypeDockerSchema2LayerForeignGzip
		}
		l := s.add(mt, data)
		if spec.foreign && i == len(spec.layers)-1 {
			l.URLs = []string{"https://example.com/" + l.Digest.Encoded()}
		}
		img.layers = append(img.layers, l)
		img.diffIDs = append(img.diffIDs, diffID)
		history = append(history, ocispec.History{CreatedBy: "COPY file" + fmt.Sprint(i)}, ocispec.History{CreatedBy: "ENV x=1", EmptyLayer: true})
	}
	cfg, err := json.Marshal(ocispec.Image{
		Platform: p,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: img.diffIDs},
		History:  history,
	})
	if err != nil {
		t.Fatal(err)
	}
	img.config = s.add(ocispec.MediaTypeImageConfig, cfg)
	img.manifest = s.manifest(t, img.config, img.layers, nil)
	img.manifest.Platform = &p
	return img
}

func (s *exptestStore) manifest(t testing.TB, config ocispec.Descriptor, layers []ocispec.Descriptor, annotations map[string]string) ocispec.Descriptor {
	t.Helper()
	data, err := json.Marshal(ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      config,
		Layers:      layers,
		Annotations: annotations,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s.add(ocispec.MediaTypeImageManifest, data)
}

// attestation adds a BuildKit-style attestation manifest for img and returns
// its index descriptor and the blob of its in-toto layer.
func (s *exptestStore) attestation(t testing.TB, img exptestImage) (ocispec.Descriptor, ocispec.Descriptor) {
	t.Helper()
	cfg := s.add(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`))
	stmt := s.add(images.MediaTypeInToto, []byte(`{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"digest":{"sha256":"`+img.manifest.Digest.Encoded()+`"}}]}`))
	m := s.manifest(t, cfg, []ocispec.Descriptor{stmt}, nil)
	m.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
	m.Annotations = map[string]string{
		oci.AnnotationReferenceType:   oci.AttestationManifestType,
		oci.AnnotationReferenceDigest: img.manifest.Digest.String(),
	}
	return m, stmt
}

func (s *exptestStore) index(t testing.TB, children ...ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	data, err := json.MarshalIndent(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: children,
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return s.add(ocispec.MediaTypeImageIndex, data)
}

// root strips what an index entry carries and a resolver would not return.
func exptestRoot(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}

// exptestEntry is a tar entry read back.
type exptestEntry struct {
	hdr  *tar.Header
	data []byte
}

func exptestExport(t testing.TB, imgs []image, opts Options) ([]byte, []exptestEntry) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := writeImages(context.Background(), &buf, imgs, opts); err != nil {
		t.Fatalf("writeImages: %v", err)
	}
	return buf.Bytes(), exptestReadTar(t, buf.Bytes())
}

// exptestWrite is writeImages for callers that want its error only.
func exptestWrite(ctx context.Context, w io.Writer, imgs []image, opts Options) error {
	_, err := writeImages(ctx, w, imgs, opts)
	return err
}

func exptestReadTar(t testing.TB, data []byte) []exptestEntry {
	t.Helper()
	var entries []exptestEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, exptestEntry{hdr: hdr, data: content})
	}
}

func exptestFile(t testing.TB, entries []exptestEntry, name string) []byte {
	t.Helper()
	for _, e := range entries {
		if e.hdr.Name == name {
			return e.data
		}
	}
	t.Fatalf("no %s in the tar", name)
	return nil
}

func exptestHasFile(entries []exptestEntry, name string) bool {
	return slices.ContainsFunc(entries, func(e exptestEntry) bool { return e.hdr.Name == name })
}

func exptestBlobName(d ocispec.Descriptor) string {
	return "blobs/sha256/" + d.Digest.Encoded()
}

func exptestLinux(arch string) []ocispec.Platform {
	return []ocispec.Platform{platforms.MustParse("linux/" + arch)}
}

func TestExportSingleImageLayout(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one", "two"}})
	_, entries := exptestExport(t, []image{{Fetcher: s, Desc: exptestRoot(img.manifest), Name: "localhost:5000/app:1"}}, Options{Platforms: exptestLinux("amd64")})

	blobs := []string{exptestBlobName(img.manifest), exptestBlobName(img.config), exptestBlobName(img.layers[0]), exptestBlobName(img.layers[1])}
	slices.Sort(blobs)
	type entry struct {
		name string
		typ  byte
		mode int64
	}
	want := []entry{{"blobs/", tar.TypeDir, 0o755}, {"blobs/sha256/", tar.TypeDir, 0o755}}
	for _, b := range blobs {
		want = append(want, entry{b, tar.TypeReg, 0o444})
	}
	want = append(want, entry{"index.json", tar.TypeReg, 0o644}, entry{"manifest.json", tar.TypeReg, 0o644}, entry{"oci-layout", tar.TypeReg, 0o444})
	var got []entry
	for _, e := range entries {
		got = append(got, entry{e.hdr.Name, e.hdr.Typeflag, e.hdr.Mode})
		h := e.hdr
		if h.ModTime.Unix() != 0 || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || h.Linkname != "" || len(h.PAXRecords) != 0 {
			t.Errorf("%s: unexpected header fields %+v", h.Name, h)
		}
		if h.Format != tar.FormatUSTAR {
			t.Errorf("%s: format %v, want USTAR", h.Name, h.Format)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("entries:\n got %v\nwant %v", got, want)
	}

	for _, d := range append([]ocispec.Descriptor{img.manifest, img.config}, img.layers...) {
		if !bytes.Equal(exptestFile(t, entries, exptestBlobName(d)), s.blobs[d.Digest]) {
			t.Errorf("blob %s differs from the registry's bytes", d.Digest)
		}
	}
	if got := string(exptestFile(t, entries, "oci-layout")); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", got)
	}
	wantIndex := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d,"annotations":{"io.containerd.image.name":"localhost:5000/app:1","org.opencontainers.image.ref.name":"1"}}]}`,
		img.manifest.Digest, img.manifest.Size)
	if got := string(exptestFile(t, entries, "index.json")); got != wantIndex {
		t.Errorf("index.json:\n got %s\nwant %s", got, wantIndex)
	}
	wantManifest := fmt.Sprintf(`[{"Config":"blobs/sha256/%s","RepoTags":["localhost:5000/app:1"],"Layers":["blobs/sha256/%s","blobs/sha256/%s"]}]`,
		img.config.Digest.Encoded(), img.layers[0].Digest.Encoded(), img.layers[1].Digest.Encoded())
	if got := string(exptestFile(t, entries, "manifest.json")); got != wantManifest {
		t.Errorf("manifest.json:\n got %s\nwant %s", got, wantManifest)
	}
}

func TestExportSharedLayersOnce(t *testing.T) {
	s := newExptestStore()
	a := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"base", "a"}})
	b := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"base", "b"}})
	if a.layers[0].Digest != b.layers[0].Digest {
		t.Fatal("fixture: base layers differ")
	}
	_, entries := exptestExport(t, []image{
		{Fetcher: s, Desc: exptestRoot(a.manifest), Name: "localhost:5000/a:1"},
		{Fetcher: s, Desc: exptestRoot(b.manifest), Name: "localhost:5000/b:1"},
		{Fetcher: s, Desc: exptestRoot(a.manifest), Name: "localhost:5000/a:latest"},
	}, Options{Platforms: exptestLinux("amd64")})
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.hdr.Name]++
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s written %d times", name, n)
		}
	}
	// Directories and JSON files, then a, then b without the shared base.
	if want := 5 + 4 + 3; len(entries) != want {
		t.Errorf("%d entries, want %d", len(entries), want)
	}
	if s.fetchedBy[a.layers[0].Digest] != 1 {
		t.Errorf("shared layer fetched %d times, want 1", s.fetchedBy[a.layers[0].Digest])
	}
	var items []manifestItem
	if err := json.Unmarshal(exptestFile(t, entries, "manifest.json"), &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || !slices.Equal(items[0].RepoTags, []string{"localhost:5000/a:1", "localhost:5000/a:latest"}) || !slices.Equal(items[1].RepoTags, []string{"localhost:5000/b:1"}) {
		t.Errorf("manifest.json entries: %+v", items)
	}
	var index ocispec.Index
	if err := json.Unmarshal(exptestFile(t, entries, "index.json"), &index); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range index.Manifests {
		names = append(names, m.Annotations[images.AnnotationImageName])
	}
	if !slices.Equal(names, []string{"localhost:5000/a:1", "localhost:5000/b:1", "localhost:5000/a:latest"}) {
		t.Errorf("index.json names in order: %v", names)
	}
}

// exptestMultiPlatform is an index of amd64 and arm64 images, each with an
// attestation listed before the images, as a hostile order.
type exptestMultiPlatform struct {
	index                ocispec.Descriptor
	amd64, arm64         exptestImage
	attAmd64, attArm64   ocispec.Descriptor
	stmtAmd64, stmtArm64 ocispec.Descriptor
}

func exptestMulti(t testing.TB, s *exptestStore) exptestMultiPlatform {
	var m exptestMultiPlatform
	m.amd64 = s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"amd64 base", "amd64 app"}})
	m.arm64 = s.image(t, exptestImageSpec{platform: "linux/arm64", layers: []string{"arm64 base"}})
	m.attAmd64, m.stmtAmd64 = s.attestation(t, m.amd64)
	m.attArm64, m.stmtArm64 = s.attestation(t, m.arm64)
	m.index = s.index(t, m.attAmd64, m.attArm64, m.amd64.manifest, m.arm64.manifest)
	return m
}

func (m exptestMultiPlatform) blobsOf(img exptestImage, att, stmt ocispec.Descriptor, s *exptestStore) []string {
	var attManifest ocispec.Manifest
	if err := json.Unmarshal(s.blobs[att.Digest], &attManifest); err != nil {
		panic(err)
	}
	names := []string{exptestBlobName(img.manifest), exptestBlobName(img.config), exptestBlobName(att), exptestBlobName(stmt), exptestBlobName(attManifest.Config)}
	for _, l := range img.layers {
		names = append(names, exptestBlobName(l))
	}
	return names
}

func exptestBlobNames(entries []exptestEntry) []string {
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.hdr.Name, "blobs/sha256/") && e.hdr.Name != "blobs/sha256/" {
			names = append(names, e.hdr.Name)
		}
	}
	return names
}

func TestExportIndexPlatforms(t *testing.T) {
	s := newExptestStore()
	m := exptestMulti(t, s)
	amd64Blobs := m.blobsOf(m.amd64, m.attAmd64, m.stmtAmd64, s)
	arm64Blobs := m.blobsOf(m.arm64, m.attArm64, m.stmtArm64, s)
	tests := []struct {
		name      string
		opts      Options
		wantBlobs [][]string
		config    ocispec.Descriptor
	}{
		{name: "arm64 only", opts: Options{Platforms: exptestLinux("arm64")}, wantBlobs: [][]string{arm64Blobs}, config: m.arm64.config},
		{name: "amd64 only", opts: Options{Platforms: exptestLinux("amd64")}, wantBlobs: [][]string{amd64Blobs}, config: m.amd64.config},
		{name: "all platforms", opts: Options{Platforms: exptestLinux("arm64"), AllPlatforms: true}, wantBlobs: [][]string{amd64Blobs, arm64Blobs}, config: m.arm64.config},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, entries := exptestExport(t, []image{{Fetcher: s, Desc: exptestRoot(m.index), Name: "localhost:5000/multi:1"}}, tc.opts)
			want := []string{exptestBlobName(m.index)}
			for _, b := range tc.wantBlobs {
				want = append(want, b...)
			}
			slices.Sort(want)
			want = slices.Compact(want) // the attestations share their config
			if got := exptestBlobNames(entries); !slices.Equal(got, want) {
				t.Errorf("blobs:\n got %v\nwant %v", got, want)
			}
			if !bytes.Equal(exptestFile(t, entries, exptestBlobName(m.index)), s.blobs[m.index.Digest]) {
				t.Error("index blob not kept verbatim")
			}
			var items []manifestItem
			if err := json.Unmarshal(exptestFile(t, entries, "manifest.json"), &items); err != nil {
				t.Fatal(err)
			}
			if len(items) != 1 || items[0].Config != exptestBlobName(tc.config) {
				t.Errorf("manifest.json: %+v, want one entry with config %s", items, tc.config.Digest)
			}
			var index ocispec.Index
			if err := json.Unmarshal(exptestFile(t, entries, "index.json"), &index); err != nil {
				t.Fatal(err)
			}
			if len(index.Manifests) != 1 || index.Manifests[0].Digest != m.index.Digest || index.Manifests[0].Platform != nil || index.Manifests[0].MediaType != ocispec.MediaTypeImageIndex {
				t.Errorf("index.json manifests: %+v", index.Manifests)
			}
		})
	}
}

func TestExportIndexNoMatchingPlatform(t *testing.T) {
	s := newExptestStore()
	m := exptestMulti(t, s)
	var buf bytes.Buffer
	_, err := writeImages(context.Background(), &buf, []image{{Fetcher: s, Desc: exptestRoot(m.index), Name: "localhost:5000/multi:1"}}, Options{Platforms: exptestLinux("s390x")})
	if err == nil || !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), "available: linux/amd64, linux/arm64") || !strings.Contains(err.Error(), "localhost:5000/multi:1") {
		t.Fatalf("got %v, want an error naming the image, the platform and the available ones", err)
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes written before the error", buf.Len())
	}
}

func TestExportOCIFormat(t *testing.T) {
	s := newExptestStore()
	m := exptestMulti(t, s)
	// With all platforms and the OCI format, a missing local platform is fine.
	_, entries := exptestExport(t, []image{{Fetcher: s, Desc: exptestRoot(m.index)}}, Options{Format: FormatOCI, AllPlatforms: true, Platforms: exptestLinux("s390x")})
	if exptestHasFile(entries, "manifest.json") {
		t.Error("manifest.json written in the OCI format")
	}
	wantIndex := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"%s","size":%d}]}`, m.index.Digest, m.index.Size)
	if got := string(exptestFile(t, entries, "index.json")); got != wantIndex {
		t.Errorf("index.json:\n got %s\nwant %s", got, wantIndex)
	}
	want := append(append([]string{exptestBlobName(m.index)}, m.blobsOf(m.amd64, m.attAmd64, m.stmtAmd64, s)...), m.blobsOf(m.arm64, m.attArm64, m.stmtArm64, s)...)
	slices.Sort(want)
	want = slices.Compact(want)
	if got := exptestBlobNames(entries); !slices.Equal(got, want) {
		t.Errorf("blobs:\n got %v\nwant %v", got, want)
	}
}

func TestExportForeignLayers(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "windows/amd64", layers: []string{"app", "base"}, foreign: true})
	foreign := img.layers[1]
	for _, include := range []bool{false, true} {
		t.Run(fmt.Sprint("include=", include), func(t *testing.T) {
			_, entries := exptestExport(t, []image{{Fetcher: s, Desc: exptestRoot(img.manifest), Name: "localhost:5000/win:1"}}, Options{IncludeForeign: include})
			if got := exptestHasFile(entries, exptestBlobName(foreign)); got != include {
				t.Errorf("foreign blob in tar = %v, want %v", got, include)
			}
			manifestJSON := string(exptestFile(t, entries, "manifest.json"))
			layers := fmt.Sprintf(`"Layers":["blobs/sha256/%s","blobs/sha256/%s"]`, img.layers[0].Digest.Encoded(), foreign.Digest.Encoded())
			sources := fmt.Sprintf(`,"LayerSources":{"%s":{"mediaType":"%s","digest":"%s","size":%d,"urls":["https://example.com/%s"]}}`,
				img.diffIDs[1], images.MediaTypeDockerSchema2LayerForeignGzip, foreign.Digest, foreign.Size, foreign.Digest.Encoded())
			if include {
				sources = ""
			}
			want := fmt.Sprintf(`[{"Config":"blobs/sha256/%s","RepoTags":["localhost:5000/win:1"],%s%s}]`, img.config.Digest.Encoded(), layers, sources)
			if manifestJSON != want {
				t.Errorf("manifest.json:\n got %s\nwant %s", manifestJSON, want)
			}
		})
	}
}

// exptestProgress records what writeImages reports.
type exptestProgress struct {
	events   []string
	blobDone map[digest.Digest]int64
	onBlob   func()
}

func (p *exptestProgress) Blob(desc ocispec.Descriptor, written int64) {
	if p.blobDone == nil {
		p.blobDone = map[digest.Digest]int64{}
	}
	if written == 0 {
		p.events = append(p.events, "blob "+desc.Digest.String())
	}
	p.blobDone[desc.Digest] = written
	if p.onBlob != nil {
		p.onBlob()
	}
}
func (p *exptestProgress) Manifest(desc ocispec.Descriptor) {
	p.events = append(p.events, "manifest "+desc.Digest.String())
}
func (p *exptestProgress) Config(desc ocispec.Descriptor) {
	p.events = append(p.events, "config "+desc.Digest.String())
}
func (p *exptestProgress) Naming(name string) { p.events = append(p.events, "naming "+name) }

func TestExportProgressAndZstdWarning(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"z"}, layerMediaType: ocispec.MediaTypeImageLayerZstd})
	plain := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"p"}})
	var p exptestProgress
	var buf bytes.Buffer
	res, err := writeImages(context.Background(), &buf, []image{
		{Fetcher: s, Desc: exptestRoot(img.manifest), Name: "localhost:5000/z:1"},
		{Fetcher: s, Desc: exptestRoot(plain.manifest), Name: "localhost:5000/p:1"},
	}, Options{Platforms: exptestLinux("amd64"), Progress: &p})
	if err != nil {
		t.Fatalf("writeImages: %v", err)
	}
	entries := exptestReadTar(t, buf.Bytes())
	if !exptestHasFile(entries, exptestBlobName(img.layers[0])) {
		t.Error("zstd layer not kept")
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], img.layers[0].Digest.String()) || !strings.Contains(res.Warnings[0], "older than 23") {
		t.Errorf("warnings: %q", res.Warnings)
	}
	for _, l := range append(img.layers, plain.layers...) {
		if p.blobDone[l.Digest] != l.Size {
			t.Errorf("layer %s: last progress %d, want %d", l.Digest, p.blobDone[l.Digest], l.Size)
		}
	}
	for _, want := range []string{"manifest " + img.manifest.Digest.String(), "config " + plain.config.Digest.String(), "blob " + img.layers[0].Digest.String()} {
		if !slices.Contains(p.events, want) {
			t.Errorf("no %q in %q", want, p.events)
		}
	}
	if n := len(p.events); n < 2 || p.events[n-2] != "naming localhost:5000/z:1" || p.events[n-1] != "naming localhost:5000/p:1" {
		t.Errorf("naming events at the end, in order: %q", p.events)
	}
}

// TestWriteWarningsOnError: the warnings found before a failure are
// returned with it, so that the command can still show them.
func TestWriteWarningsOnError(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"z"}, layerMediaType: ocispec.MediaTypeImageLayerZstd})
	s.blobs[img.layers[0].Digest] = append(slices.Clone(s.blobs[img.layers[0].Digest]), 'x')
	res, err := writeImages(context.Background(), io.Discard, []image{{Fetcher: s, Desc: exptestRoot(img.manifest)}}, Options{Platforms: exptestLinux("amd64")})
	if !errors.Is(err, imagetools.ErrSizeMismatch) {
		t.Fatalf("got %v, want ErrSizeMismatch", err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "zstd") {
		t.Errorf("warnings with the error: %q", res.Warnings)
	}
}

func TestExportTamperedBlob(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one", "two"}})
	bad := img.layers[1]
	tampered := slices.Clone(s.blobs[bad.Digest])
	tampered[len(tampered)-1] ^= 0xff
	s.blobs[bad.Digest] = tampered

	dir := t.TempDir()
	target := filepath.Join(dir, "out.tar")
	err := atomicfile.Write(target, func(w io.Writer) error {
		return exptestWrite(context.Background(), w, []image{{Fetcher: s, Desc: exptestRoot(img.manifest), Name: "localhost:5000/app:1"}}, Options{Platforms: exptestLinux("amd64")})
	})
	if !errors.Is(err, imagetools.ErrDigestMismatch) || !strings.Contains(err.Error(), bad.Digest.String()) {
		t.Fatalf("got %v, want imagetools.ErrDigestMismatch naming %s", err, bad.Digest)
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("files left after a failed export: %v", left)
	}
}

func TestExportTamperedManifestFailsBeforeWriting(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one"}})
	s.blobs[img.manifest.Digest] = append(slices.Clone(s.blobs[img.manifest.Digest]), ' ')
	var buf bytes.Buffer
	_, err := writeImages(context.Background(), &buf, []image{{Fetcher: s, Desc: exptestRoot(img.manifest)}}, Options{})
	if !errors.Is(err, imagetools.ErrSizeMismatch) || !strings.Contains(err.Error(), img.manifest.Digest.String()) {
		t.Fatalf("got %v, want imagetools.ErrSizeMismatch naming the manifest", err)
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes written before the error", buf.Len())
	}
}

func TestExportDeterministic(t *testing.T) {
	s := newExptestStore()
	m := exptestMulti(t, s)
	var layers []string
	for i := range 20 {
		layers = append(layers, strings.Repeat(fmt.Sprint(i), 100000+i))
	}
	big := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: layers})
	imgs := []image{
		{Fetcher: s, Desc: exptestRoot(m.index), Name: "localhost:5000/multi:1"},
		{Fetcher: s, Desc: exptestRoot(big.manifest), Name: "localhost:5000/big:1"},
	}
	opts := Options{AllPlatforms: true, Platforms: exptestLinux("amd64"), MaxConcurrency: 3}
	first, _ := exptestExport(t, imgs, opts)
	second, _ := exptestExport(t, imgs, opts)
	if !bytes.Equal(first, second) {
		t.Fatal("two exports of the same images differ")
	}
	if s.maxOpen > opts.MaxConcurrency {
		t.Errorf("%d blobs open at once, limit %d", s.maxOpen, opts.MaxConcurrency)
	}
}

func TestExportConfigCheck(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one", "two"}})
	broken := s.manifest(t, img.config, img.layers[:1], nil)
	var buf bytes.Buffer
	_, err := writeImages(context.Background(), &buf, []image{{Fetcher: s, Desc: exptestRoot(broken), Name: "localhost:5000/broken:1"}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "localhost:5000/broken:1") || !strings.Contains(err.Error(), "2 diff_ids for 1 layers") {
		t.Fatalf("got %v, want a config check error naming the image and counts", err)
	}
	// The OCI format has no manifest.json, hence no Docker config check.
	if _, err := writeImages(context.Background(), io.Discard, []image{{Fetcher: s, Desc: exptestRoot(broken)}}, Options{Format: FormatOCI}); err != nil {
		t.Fatalf("OCI format: %v", err)
	}
}

func TestExportMaliciousDigest(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one"}})
	for _, dgst := range []digest.Digest{"sha256:../../../../etc/passwd", digest.Digest("sha512:" + strings.Repeat("a", 128)), digest.Digest("sha256:" + strings.Repeat("a", 63) + "/")} {
		evil := s.manifest(t, img.config, []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: dgst, Size: 3}}, nil)
		var buf bytes.Buffer
		_, err := writeImages(context.Background(), &buf, []image{{Fetcher: s, Desc: exptestRoot(evil)}}, Options{Format: FormatOCI})
		if err == nil || !strings.Contains(err.Error(), "invalid digest") {
			t.Errorf("layer digest %q: got %v, want an invalid digest error", dgst, err)
		}
		if buf.Len() != 0 {
			t.Errorf("layer digest %q: %d bytes written", dgst, buf.Len())
		}
	}
	var buf bytes.Buffer
	_, err := writeImages(context.Background(), &buf, []image{{Fetcher: s, Desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:../x", Size: 1}}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "invalid digest") {
		t.Errorf("root digest: got %v, want an invalid digest error", err)
	}
}

func TestExportRejects(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one"}})
	tests := []struct {
		name string
		imgs []image
		opts Options
		want string
	}{
		{name: "no images", want: "no image"},
		{name: "bad format", imgs: []image{{Fetcher: s, Desc: exptestRoot(img.manifest)}}, opts: Options{Format: "tarball"}, want: `unknown export format "tarball"`},
		{name: "familiar name", imgs: []image{{Fetcher: s, Desc: exptestRoot(img.manifest), Name: "app:1"}}, want: "must be fully qualified"},
		{name: "schema1", imgs: []image{{Fetcher: s, Desc: ocispec.Descriptor{MediaType: images.MediaTypeDockerSchema1Manifest, Digest: img.manifest.Digest, Size: img.manifest.Size}}}, want: "schema1"},
		{name: "layer as root", imgs: []image{{Fetcher: s, Desc: img.layers[0]}}, want: "unsupported media type"},
		{name: "missing blob", imgs: []image{{Fetcher: s, Desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("nope"), Size: 4}}}, want: "not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := writeImages(context.Background(), io.Discard, tc.imgs, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestExportCancelled(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one", "two", "three"}})
	ctx, cancel := context.WithCancel(context.Background())
	p := &exptestProgress{onBlob: cancel}
	_, err := writeImages(ctx, io.Discard, []image{{Fetcher: s, Desc: exptestRoot(img.manifest)}}, Options{Platforms: exptestLinux("amd64"), Progress: p})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// exptestPattern is an endless, cheap, deterministic byte source for big
// synthetic layers.
type exptestPattern struct {
	seed byte
	off  int64
}

func (p *exptestPattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.off*31>>7) ^ p.seed ^ byte(p.off)
		p.off++
	}
	return len(b), nil
}

// exptestSynthetic serves layers generated on the fly, so that the source
// itself uses no memory; small blobs come from store.
type exptestSynthetic struct {
	store  *exptestStore
	layers map[digest.Digest]byte // digest -> seed
}

func (f *exptestSynthetic) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if seed, ok := f.layers[desc.Digest]; ok {
		return io.NopCloser(io.LimitReader(&exptestPattern{seed: seed}, desc.Size)), nil
	}
	return f.store.Fetch(ctx, desc)
}

// exptestBigImage builds an image of n synthetic layers of size bytes each.
func exptestBigImage(t testing.TB, n int, size int64) (*exptestSynthetic, ocispec.Descriptor) {
	f := &exptestSynthetic{store: newExptestStore(), layers: map[digest.Digest]byte{}}
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	for i := range n {
		d, err := digest.SHA256.FromReader(io.LimitReader(&exptestPattern{seed: byte(i)}, size))
		if err != nil {
			t.Fatal(err)
		}
		f.layers[d] = byte(i)
		layers = append(layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: size})
		diffIDs = append(diffIDs, digest.FromString(fmt.Sprint("diff", i)))
	}
	cfg, err := json.Marshal(ocispec.Image{Platform: platforms.MustParse("linux/amd64"), RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	if err != nil {
		t.Fatal(err)
	}
	config := f.store.add(ocispec.MediaTypeImageConfig, cfg)
	return f, f.store.manifest(t, config, layers, nil)
}

func TestExportMemoryBounded(t *testing.T) {
	const layers, size = 16, 16 << 20
	f, manifest := exptestBigImage(t, layers, size)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before, peak := ms.HeapInuse, ms.HeapInuse
	calls := 0
	p := &exptestProgress{onBlob: func() {
		if calls++; calls%4 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}}
	cw := &exptestCountingWriter{}
	if _, err := writeImages(context.Background(), cw, []image{{Fetcher: f, Desc: manifest}}, Options{Platforms: exptestLinux("amd64"), Progress: p}); err != nil {
		t.Fatal(err)
	}
	if cw.n < layers*size {
		t.Fatalf("wrote %d bytes, want more than %d", cw.n, layers*size)
	}
	growth := int64(peak) - int64(before)
	t.Logf("exported %d MiB; peak heap in use grew by %.1f MiB", cw.n>>20, float64(growth)/(1<<20))
	if growth > 64<<20 {
		t.Errorf("peak heap in use grew by %d MiB while exporting %d MiB", growth>>20, cw.n>>20)
	}
}

type exptestCountingWriter struct{ n int64 }

func (w *exptestCountingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

func BenchmarkExport(b *testing.B) {
	const layers, size = 16, 16 << 20
	f, manifest := exptestBigImage(b, layers, size)
	imgs := []image{{Fetcher: f, Desc: manifest}}
	opts := Options{Platforms: exptestLinux("amd64")}
	b.SetBytes(layers * size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := writeImages(context.Background(), io.Discard, imgs, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func TestExportUnnamed(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one"}})
	var p exptestProgress
	_, entries := exptestExport(t, []image{{Fetcher: s, Desc: exptestRoot(img.manifest)}}, Options{Platforms: exptestLinux("amd64"), Progress: &p})
	wantIndex := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d}]}`, img.manifest.Digest, img.manifest.Size)
	if got := string(exptestFile(t, entries, "index.json")); got != wantIndex {
		t.Errorf("index.json:\n got %s\nwant %s", got, wantIndex)
	}
	wantManifest := fmt.Sprintf(`[{"Config":"blobs/sha256/%s","RepoTags":[],"Layers":["blobs/sha256/%s"]}]`, img.config.Digest.Encoded(), img.layers[0].Digest.Encoded())
	if got := string(exptestFile(t, entries, "manifest.json")); got != wantManifest {
		t.Errorf("manifest.json:\n got %s\nwant %s", got, wantManifest)
	}
	if slices.ContainsFunc(p.events, func(e string) bool { return strings.HasPrefix(e, "naming ") }) {
		t.Errorf("naming reported for an unnamed image: %q", p.events)
	}
}

func TestExportSeededRoot(t *testing.T) {
	s := newExptestStore()
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: []string{"one"}})
	root := exptestRoot(img.manifest)
	var fetched, seeded bytes.Buffer
	if _, err := writeImages(context.Background(), &fetched, []image{{Fetcher: s, Desc: root, Name: "localhost:5000/app:1"}}, Options{Platforms: exptestLinux("amd64")}); err != nil {
		t.Fatal(err)
	}
	s.fetchedBy = map[digest.Digest]int{}
	data := slices.Clone(s.blobs[root.Digest])
	if _, err := writeImages(context.Background(), &seeded, []image{{Fetcher: s, Desc: root, Name: "localhost:5000/app:1", Data: data}}, Options{Platforms: exptestLinux("amd64")}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fetched.Bytes(), seeded.Bytes()) {
		t.Fatal("a seeded root gives another tar")
	}
	if n := s.fetchedBy[root.Digest]; n != 0 {
		t.Fatalf("the seeded root was fetched %d times", n)
	}

	data[len(data)-1] ^= 0xff
	var buf bytes.Buffer
	_, err := writeImages(context.Background(), &buf, []image{{Fetcher: s, Desc: root, Data: data}}, Options{Platforms: exptestLinux("amd64")})
	if !errors.Is(err, imagetools.ErrDigestMismatch) || !strings.Contains(err.Error(), root.Digest.String()) || buf.Len() != 0 {
		t.Fatalf("tampered seed: got %v, %d bytes written", err, buf.Len())
	}
}

// exptestGate holds the fetches it gates (manifests, unless gates says
// otherwise) until want of them are in flight (or a second passes), and
// notes the most in flight at once.
type exptestGate struct {
	*exptestStore
	want   int
	gates  func(ocispec.Descriptor) bool
	mu     sync.Mutex
	flying int
	most   int
	// release is closed, once, when want fetches are in flight.
	release  chan struct{}
	released bool
}

func (g *exptestGate) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	gated := images.IsManifestType(desc.MediaType)
	if g.gates != nil {
		gated = g.gates(desc)
	}
	if gated {
		g.mu.Lock()
		g.flying++
		g.most = max(g.most, g.flying)
		if g.flying == g.want && !g.released {
			g.released = true
			close(g.release)
		}
		g.mu.Unlock()
		select {
		case <-g.release:
		case <-time.After(time.Second):
		}
		defer func() {
			g.mu.Lock()
			g.flying--
			g.mu.Unlock()
		}()
	}
	return g.exptestStore.Fetch(ctx, desc)
}

// TestExportPrefetchesManifests: the manifests an index selects are read at
// once, not one round trip after another, each once, and the tar is the
// one the sequential reading lays out.
func TestExportPrefetchesManifests(t *testing.T) {
	s := newExptestStore()
	m := exptestMulti(t, s)
	opts := Options{Platforms: exptestLinux("amd64"), AllPlatforms: true}
	want, _ := exptestExport(t, []image{{Fetcher: s, Desc: exptestRoot(m.index), Name: "localhost:5000/multi:1"}}, opts)

	s.fetchedBy = map[digest.Digest]int{}
	g := &exptestGate{exptestStore: s, want: 4, release: make(chan struct{})} // 2 images, 2 attestations
	root := image{Fetcher: g, Desc: exptestRoot(m.index), Data: s.blobs[m.index.Digest], Name: "localhost:5000/multi:1"}
	got, _ := exptestExport(t, []image{root}, opts)
	if g.most != 4 {
		t.Errorf("at most %d manifests fetched at once, want all 4", g.most)
	}
	for d, n := range s.fetchedBy {
		if n != 1 {
			t.Errorf("%s fetched %d times", d, n)
		}
	}
	if !bytes.Equal(got, want) {
		t.Error("the tar differs from the one read without prefetching")
	}
}

// TestExportWriteAtSmallBlobs: to a file, small layers are fetched as many
// at once as other small requests (oci.MetadataLimit), not MaxConcurrency at a
// time, and no more; the tar is the one the stream path writes.
func TestExportWriteAtSmallBlobs(t *testing.T) {
	s := newExptestStore()
	var layers []string
	for i := range 12 {
		layers = append(layers, fmt.Sprintf("small layer %d", i))
	}
	img := s.image(t, exptestImageSpec{platform: "linux/amd64", layers: layers})
	opts := Options{Platforms: exptestLinux("amd64"), MaxConcurrency: 2}
	want, _ := exptestExport(t, []image{{Fetcher: s, Desc: exptestRoot(img.manifest)}}, opts)

	limit := oci.MetadataLimit(opts.MaxConcurrency)
	g := &exptestGate{exptestStore: s, want: limit, release: make(chan struct{}),
		gates: func(d ocispec.Descriptor) bool { return images.IsLayerType(d.MediaType) }}
	f, err := os.Create(filepath.Join(t.TempDir(), "out.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := writeImages(context.Background(), f, []image{{Fetcher: g, Desc: exptestRoot(img.manifest)}}, opts); err != nil {
		t.Fatal(err)
	}
	if g.most != limit {
		t.Errorf("at most %d small layers fetched at once, want %d", g.most, limit)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("the tar written at offsets differs from the streamed one")
	}
}

// TestExportNestedIndex: an index that lists an index exports like the
// inner one would, platforms chosen among the inner images, with both
// index blobs in the tar and the outer one as the root.
func TestExportNestedIndex(t *testing.T) {
	s := newExptestStore()
	m := exptestMulti(t, s)
	outer := s.index(t, m.index)
	twice := s.index(t, outer)
	amd64Blobs := m.blobsOf(m.amd64, m.attAmd64, m.stmtAmd64, s)
	arm64Blobs := m.blobsOf(m.arm64, m.attArm64, m.stmtArm64, s)
	for _, tc := range []struct {
		name   string
		root   ocispec.Descriptor
		opts   Options
		blobs  []string
		config ocispec.Descriptor
	}{
		{"arm64 only", outer, Options{Platforms: exptestLinux("arm64")}, arm64Blobs, m.arm64.config},
		{"all platforms", outer, Options{Platforms: exptestLinux("amd64"), AllPlatforms: true}, append(slices.Clone(amd64Blobs), arm64Blobs...), m.amd64.config},
		{"two levels", twice, Options{Platforms: exptestLinux("amd64")}, append(slices.Clone(amd64Blobs), exptestBlobName(outer)), m.amd64.config},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, entries := exptestExport(t, []image{{Fetcher: s, Desc: exptestRoot(tc.root), Name: "localhost:5000/nested:1"}}, tc.opts)
			want := append([]string{exptestBlobName(tc.root), exptestBlobName(m.index)}, tc.blobs...)
			slices.Sort(want)
			want = slices.Compact(want)
			if got := exptestBlobNames(entries); !slices.Equal(got, want) {
				t.Errorf("blobs:\n got %v\nwant %v", got, want)
			}
			var items []manifestItem
			if err := json.Unmarshal(exptestFile(t, entries, "manifest.json"), &items); err != nil {
				t.Fatal(err)
			}
			if len(items) != 1 || items[0].Config != exptestBlobName(tc.config) {
				t.Errorf("manifest.json: %+v, want one entry with config %s", items, tc.config.Digest)
			}
			var index ocispec.Index
			if err := json.Unmarshal(exptestFile(t, entries, "index.json"), &index); err != nil {
				t.Fatal(err)
			}
			if len(index.Manifests) != 1 || index.Manifests[0].Digest != tc.root.Digest {
				t.Errorf("index.json manifests: %+v, want the outer index", index.Manifests)
			}
		})
	}
	t.Run("too deep", func(t *testing.T) {
		root := m.index
		for range oci.MaxIndexDepth {
			root = s.index(t, root)
		}
		_, err := writeImages(context.Background(), io.Discard, []image{{Fetcher: s, Desc: exptestRoot(root)}}, Options{Platforms: exptestLinux("amd64")})
		if err == nil || !strings.Contains(err.Error(), "nested deeper than") {
			t.Fatalf("err = %v, want the nesting refused", err)
		}
	})
}
