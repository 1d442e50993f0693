package combine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/moby/buildkit/util/attestation"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The golden manifests: tiny OCI manifests whose digests were computed outside the code under test.
const (
	goldenAmd64 = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[],"annotations":{"n":"amd64"}}`
	goldenArm64 = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[],"annotations":{"n":"arm64"}}`
)

// goldenIndex is what buildx writes for the two golden manifests with the annotations of
// TestCombineGolden: two-space indent, no trailing newline, descriptor fields in OCI order.
const goldenIndex = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:726ff9029e5d7cbcb34e870759a0aea7f7638aad15b00f8742b1ecad7922d68a",
      "size": 128,
      "platform": {
        "architecture": "amd64",
        "os": "linux"
      }
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:fcb99ec4017b97c99694635fdd299736e05f3afd8f9c23b56d1d96faa7e86a21",
      "size": 128,
      "annotations": {
        "com.example.arch": "arm"
      },
      "platform": {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8"
      }
    }
  ],
  "annotations": {
    "org.opencontainers.image.title": "golden"
  }
}`

func TestCombineGolden(t *testing.T) {
	srcs := []Input{
		{Name: "amd64", Manifest: []byte(goldenAmd64), Desc: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    "sha256:726ff9029e5d7cbcb34e870759a0aea7f7638aad15b00f8742b1ecad7922d68a",
			Size:      128,
			Platform:  &ocispec.Platform{OS: "linux", Architecture: "amd64"},
		}},
		{Name: "arm64", Manifest: []byte(goldenArm64), Desc: ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    "sha256:fcb99ec4017b97c99694635fdd299736e05f3afd8f9c23b56d1d96faa7e86a21",
			Size:      128,
			Platform:  &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
		}},
	}
	anns := mustAnnotations(t, "index:org.opencontainers.image.title=golden", "manifest-descriptor[linux/arm64]:com.example.arch=arm")
	got, err := Index(srcs, Options{Annotations: anns, PreferIndex: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Bytes) != goldenIndex {
		t.Fatalf("bytes differ:\n%s\nwant:\n%s", got.Bytes, goldenIndex)
	}
	want := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString(goldenIndex), Size: int64(len(goldenIndex))}
	if !reflect.DeepEqual(got.Desc, want) {
		t.Fatalf("desc = %+v, want %+v", got.Desc, want)
	}
	if got.Desc.Digest != "sha256:4f84b5d756073a391a33118bc7e9240eece714d344f1f29e749673e6749bb508" {
		t.Fatalf("golden digest changed: %s", got.Desc.Digest)
	}
	if !reflect.DeepEqual(got.Origins, []int{0, 1}) {
		t.Fatalf("origins = %v", got.Origins)
	}
}

// testImage is a single-platform image: manifest and config bytes, descriptor without platform.
func testImage(t *testing.T, mediaType, os, arch, variant string) Input {
	t.Helper()
	cfgMT := ocispec.MediaTypeImageConfig
	if mediaType == images.MediaTypeDockerSchema2Manifest {
		cfgMT = images.MediaTypeDockerSchema2Config
	}
	cfg := mustJSON(t, map[string]any{"os": os, "architecture": arch, "variant": variant, "rootfs": map[string]any{"type": "layers"}})
	m := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaType,
		"config":        ocispec.Descriptor{MediaType: cfgMT, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		"layers":        []any{},
	})
	return Input{
		Name:     fmt.Sprintf("%s/%s", os, arch),
		Desc:     ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(m), Size: int64(len(m))},
		Manifest: m,
		Config:   cfg,
	}
}

// testIndex is an index source listing children.
func testIndex(t *testing.T, mediaType string, children ...ocispec.Descriptor) Input {
	t.Helper()
	b := mustJSON(t, ocispec.Index{MediaType: mediaType, Manifests: children})
	return Input{Name: "index", Desc: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}, Manifest: b}
}

// testChild is the descriptor an index would list for l with platform p.
func testChild(l Input, p string) ocispec.Descriptor {
	d := l.Desc
	d.Platform = testPlatform(p)
	return d
}

// testAttestation is an attestation manifest descriptor for subject.
func testAttestation(t *testing.T, subject ocispec.Descriptor) ocispec.Descriptor {
	t.Helper()
	b := mustJSON(t, map[string]string{"attestation-for": subject.Digest.String()})
	return ocispec.Descriptor{
		MediaType:   ocispec.MediaTypeImageManifest,
		Digest:      digest.FromBytes(b),
		Size:        int64(len(b)),
		Platform:    &ocispec.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{attestation.DockerAnnotationReferenceType: attestation.DockerAnnotationReferenceTypeDefault, attestation.DockerAnnotationReferenceDigest: subject.Digest.String()},
	}
}

func testPlatform(s string) *ocispec.Platform {
	var p ocispec.Platform
	parts := bytes.Split([]byte(s), []byte("/"))
	p.OS, p.Architecture = string(parts[0]), string(parts[1])
	if len(parts) > 2 {
		p.Variant = string(parts[2])
	}
	return &p
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustAnnotations(t *testing.T, in ...string) []Annotation {
	t.Helper()
	anns, err := ParseAnnotations(in)
	if err != nil {
		t.Fatal(err)
	}
	return anns
}

func parseIndex(t *testing.T, b []byte) ocispec.Index {
	t.Helper()
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("result is not an index: %v\n%s", err, b)
	}
	return idx
}

// summary renders children as "digest-prefix platform" lines for compact comparisons.
func summary(ds []ocispec.Descriptor, names map[digest.Digest]string) []string {
	var out []string
	for _, d := range ds {
		p := "-"
		if d.Platform != nil {
			p = d.Platform.OS + "/" + d.Platform.Architecture
			if d.Platform.Variant != "" {
				p += "/" + d.Platform.Variant
			}
		}
		out = append(out, names[d.Digest]+" "+p)
	}
	return out
}

func TestCombine(t *testing.T) {
	dAmd := testImage(t, images.MediaTypeDockerSchema2Manifest, "linux", "amd64", "")
	dArm := testImage(t, images.MediaTypeDockerSchema2Manifest, "linux", "arm64", "v8")
	oAmd := testImage(t, ocispec.MediaTypeImageManifest, "linux", "amd64", "")
	oArm := testImage(t, ocispec.MediaTypeImageManifest, "linux", "arm64", "v8")
	oArmV7 := testImage(t, ocispec.MediaTypeImageManifest, "linux", "arm", "v7")
	attAmd := testAttestation(t, testChild(oAmd, "linux/amd64"))
	attArm := testAttestation(t, testChild(oArm, "linux/arm64/v8"))
	ociIdx := testIndex(t, ocispec.MediaTypeImageIndex, testChild(oAmd, "linux/amd64"), attAmd, testChild(oArm, "linux/arm64/v8"), attArm)
	names := map[digest.Digest]string{
		dAmd.Desc.Digest: "dAmd", dArm.Desc.Digest: "dArm", oAmd.Desc.Digest: "oAmd", oArm.Desc.Digest: "oArm",
		oArmV7.Desc.Digest: "oArmV7", attAmd.Digest: "attAmd", attArm.Digest: "attArm",
	}

	tests := []struct {
		name      string
		srcs      []Input
		opts      Options
		wantMT    string
		want      []string // summary of the result's manifests
		wantRepl  []string
		wantErr   error
		sameBytes int // when >= 0... compared with srcs[sameBytes].Manifest; -1 for no check
	}{
		{
			name: "docker manifests make a docker list, platforms normalized from config",
			srcs: []Input{dAmd, dArm}, opts: Options{PreferIndex: true},
			wantMT: images.MediaTypeDockerSchema2ManifestList, want: []string{"dAmd linux/amd64", "dArm linux/arm64"}, sameBytes: -1,
		},
		{
			name: "one OCI child makes an OCI index",
			srcs: []Input{dAmd, oArm}, opts: Options{PreferIndex: true},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"dAmd linux/amd64", "oArm linux/arm64"}, sameBytes: -1,
		},
		{
			name: "force OCI over docker manifests",
			srcs: []Input{dAmd, dArm}, opts: Options{ForceOCI: true},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"dAmd linux/amd64", "dArm linux/arm64"}, sameBytes: -1,
		},
		{
			name: "force OCI with one manifest kept as it is: conflicting options",
			srcs: []Input{dAmd}, opts: Options{ForceOCI: true, PreferIndex: false},
			wantErr: imagetools.ErrConflictingOptions, sameBytes: -1,
		},
		{
			name: "force OCI wraps one docker manifest in an OCI index",
			srcs: []Input{dAmd}, opts: Options{ForceOCI: true, PreferIndex: true},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"dAmd linux/amd64"}, sameBytes: -1,
		},
		{
			name:   "an index contributes its children, in order",
			srcs:   []Input{ociIdx, oArmV7},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"oAmd linux/amd64", "attAmd unknown/unknown", "oArm linux/arm64/v8", "attArm unknown/unknown", "oArmV7 linux/arm/v7"}, sameBytes: -1,
		},
		{
			name: "same platform with different digests: both kept",
			srcs: []Input{oAmd, dAmd}, opts: Options{PreferIndex: true},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"oAmd linux/amd64", "dAmd linux/amd64"}, sameBytes: -1,
		},
		{
			name: "single index returned byte for byte",
			srcs: []Input{ociIdx}, opts: Options{PreferIndex: true},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"oAmd linux/amd64", "attAmd unknown/unknown", "oArm linux/arm64/v8", "attArm unknown/unknown"}, sameBytes: 0,
		},
		{
			name: "single index with a filter matching everything stays byte for byte",
			srcs: []Input{ociIdx}, opts: Options{Platforms: []ocispec.Platform{*testPlatform("linux/amd64"), *testPlatform("linux/arm64")}},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"oAmd linux/amd64", "attAmd unknown/unknown", "oArm linux/arm64/v8", "attArm unknown/unknown"}, sameBytes: 0,
		},
		{
			name: "single index filtered: the attestation follows its subject",
			srcs: []Input{ociIdx}, opts: Options{Platforms: []ocispec.Platform{*testPlatform("linux/arm64")}},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"oArm linux/arm64/v8", "attArm unknown/unknown"}, sameBytes: -1,
		},
		{
			name: "several sources filtered",
			srcs: []Input{ociIdx, oArmV7}, opts: Options{Platforms: []ocispec.Platform{*testPlatform("linux/amd64"), *testPlatform("linux/arm/v7")}},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"oAmd linux/amd64", "attAmd unknown/unknown", "oArmV7 linux/arm/v7"}, sameBytes: -1,
		},
		{
			name: "filter matching nothing",
			srcs: []Input{ociIdx, oArmV7}, opts: Options{Platforms: []ocispec.Platform{*testPlatform("linux/s390x")}},
			wantErr: imagetools.ErrNoPlatformMatch,
		},
		{
			name: "single manifest wrapped in a list by default",
			srcs: []Input{dArm}, opts: Options{PreferIndex: true},
			wantMT: images.MediaTypeDockerSchema2ManifestList, want: []string{"dArm linux/arm64"}, sameBytes: -1,
		},
		{
			name:   "single manifest as is without prefer-index",
			srcs:   []Input{dArm},
			wantMT: images.MediaTypeDockerSchema2Manifest, sameBytes: 0,
		},
		{
			name: "single manifest without prefer-index, filtered out",
			srcs: []Input{dArm}, opts: Options{Platforms: []ocispec.Platform{*testPlatform("linux/amd64")}},
			wantErr: imagetools.ErrNoPlatformMatch,
		},
		{
			name: "single docker list source forced to OCI",
			srcs: []Input{testIndex(t, images.MediaTypeDockerSchema2ManifestList, testChild(dAmd, "linux/amd64"))}, opts: Options{ForceOCI: true},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"dAmd linux/amd64"}, sameBytes: -1,
		},
		{
			name: "annotations on a docker list are refused",
			srcs: []Input{dAmd, dArm}, opts: Options{Annotations: mustAnnotations(t, "index:a=b")},
			wantErr: imagetools.ErrDockerListAnnotations,
		},
		{
			name:   "append replaces the existing platform and its attestation",
			srcs:   []Input{ociIdx, oArmV7, testImage(t, ocispec.MediaTypeImageManifest, "linux", "arm64", "")},
			opts:   Options{AppendFirst: true, PreferIndex: true},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"oAmd linux/amd64", "attAmd unknown/unknown", "oArmV7 linux/arm/v7", " linux/arm64"},
			wantRepl: []string{"oArm linux/arm64/v8", "attArm unknown/unknown"}, sameBytes: -1,
		},
		{
			name:   "without append the same platforms are all kept",
			srcs:   []Input{ociIdx, testImage(t, ocispec.MediaTypeImageManifest, "linux", "arm64", "")},
			wantMT: ocispec.MediaTypeImageIndex, want: []string{"oAmd linux/amd64", "attAmd unknown/unknown", "oArm linux/arm64/v8", "attArm unknown/unknown", " linux/arm64"}, sameBytes: -1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Index(tc.srcs, tc.opts)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Desc.MediaType != tc.wantMT || got.Desc.Digest != digest.FromBytes(got.Bytes) || got.Desc.Size != int64(len(got.Bytes)) {
				t.Fatalf("desc %+v does not describe the %d result bytes with media type %s", got.Desc, len(got.Bytes), tc.wantMT)
			}
			if tc.sameBytes >= 0 && !bytes.Equal(got.Bytes, tc.srcs[tc.sameBytes].Manifest) {
				t.Fatalf("bytes changed:\n%s", got.Bytes)
			}
			if tc.want != nil {
				idx := parseIndex(t, got.Bytes)
				if idx.MediaType != tc.wantMT {
					t.Fatalf("index media type %q, want %q", idx.MediaType, tc.wantMT)
				}
				if s := summary(idx.Manifests, names); !reflect.DeepEqual(s, tc.want) {
					t.Fatalf("manifests = %q, want %q", s, tc.want)
				}
				if !reflect.DeepEqual(idx.Manifests, got.Children) {
					t.Fatalf("Children %+v differ from the index's manifests %+v", got.Children, idx.Manifests)
				}
				if len(got.Origins) != len(got.Children) {
					t.Fatalf("%d origins for %d children", len(got.Origins), len(got.Children))
				}
			}
			if s := summary(got.Replaced, names); !reflect.DeepEqual(s, tc.wantRepl) {
				t.Fatalf("replaced = %q, want %q", s, tc.wantRepl)
			}
		})
	}
}

func TestCombineDuplicates(t *testing.T) {
	a := testImage(t, ocispec.MediaTypeImageManifest, "linux", "amd64", "")
	first := testChild(a, "linux/amd64")
	first.Annotations = map[string]string{"k1": "first", "k2": "first"}
	second := testChild(a, "linux/amd64/v2")
	second.MediaType = images.MediaTypeDockerSchema2Manifest
	second.Annotations = map[string]string{"k2": "second"}
	i1 := testIndex(t, ocispec.MediaTypeImageIndex, first)
	i2 := testIndex(t, ocispec.MediaTypeImageIndex, second)

	got, err := Index([]Input{i1, i2}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []ocispec.Descriptor{{
		MediaType:   ocispec.MediaTypeImageManifest, // first media type kept
		Digest:      a.Desc.Digest,
		Size:        a.Desc.Size,
		Platform:    testPlatform("linux/amd64/v2"),                   // later platform wins
		Annotations: map[string]string{"k1": "first", "k2": "second"}, // merged
	}}
	if !reflect.DeepEqual(got.Children, want) || !reflect.DeepEqual(got.Origins, []int{0}) {
		t.Fatalf("children = %+v origins %v, want %+v", got.Children, got.Origins, want)
	}
	if first.Annotations["k2"] != "first" {
		t.Fatal("Combine changed a caller's descriptor")
	}
}

func TestCombineManifestDescriptorAnnotations(t *testing.T) {
	amd := testImage(t, ocispec.MediaTypeImageManifest, "linux", "amd64", "")
	arm := testImage(t, ocispec.MediaTypeImageManifest, "linux", "arm64", "")
	att := testAttestation(t, testChild(arm, "linux/arm64/v8"))
	idx := testIndex(t, ocispec.MediaTypeImageIndex, testChild(arm, "linux/arm64/v8"), att)
	anns := mustAnnotations(t, "manifest-descriptor:all=1", "manifest-descriptor[linux/arm64]:arm=1", "index:i=1", "i=2")

	got, err := Index([]Input{amd, idx}, Options{Annotations: anns})
	if err != nil {
		t.Fatal(err)
	}
	out := parseIndex(t, got.Bytes)
	if !reflect.DeepEqual(out.Annotations, map[string]string{"i": "2"}) {
		t.Fatalf("index annotations = %v (a later value must win)", out.Annotations)
	}
	wantAnn := []map[string]string{
		{"all": "1"},
		{"all": "1", "arm": "1"},
		{"all": "1", attestation.DockerAnnotationReferenceType: attestation.DockerAnnotationReferenceTypeDefault, attestation.DockerAnnotationReferenceDigest: arm.Desc.Digest.String()},
	}
	for i, m := range out.Manifests {
		if !reflect.DeepEqual(m.Annotations, wantAnn[i]) {
			t.Errorf("manifest %d annotations = %v, want %v", i, m.Annotations, wantAnn[i])
		}
	}
	if att.Annotations["all"] != "" {
		t.Fatal("Combine changed a caller's descriptor")
	}
}

func TestCombineAnnotationsOnDockerListMessage(t *testing.T) {
	d := testImage(t, images.MediaTypeDockerSchema2Manifest, "linux", "amd64", "")
	_, err := Index([]Input{d}, Options{Annotations: mustAnnotations(t, "manifest-descriptor:a=b"), PreferIndex: true})
	if !errors.Is(err, imagetools.ErrDockerListAnnotations) || !bytes.Contains([]byte(err.Error()), []byte("make an OCI image index instead")) {
		t.Fatalf("error = %v, want imagetools.ErrDockerListAnnotations suggesting an OCI index", err)
	}
	got, err := Index([]Input{d}, Options{Annotations: mustAnnotations(t, "manifest-descriptor:a=b"), ForceOCI: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.Desc.MediaType != ocispec.MediaTypeImageIndex || got.Children[0].Annotations["a"] != "b" {
		t.Fatalf("forced OCI result = %+v", got.Children)
	}
}

func TestCombinePrepareErrors(t *testing.T) {
	good := testImage(t, ocispec.MediaTypeImageManifest, "linux", "amd64", "")
	schema1 := []byte(`{"schemaVersion":1,"fsLayers":[{"blobSum":"sha256:` + testHex + `"}]}`)
	tests := []struct {
		name string
		src  Input
		want error
	}{
		{name: "schema1 by media type", src: Input{Manifest: schema1, Desc: ocispec.Descriptor{MediaType: images.MediaTypeDockerSchema1Manifest, Digest: digest.FromBytes(schema1)}}, want: imagetools.ErrSchema1},
		{name: "schema1 detected", src: Input{Manifest: schema1, Desc: ocispec.Descriptor{Digest: digest.FromBytes(schema1)}}, want: imagetools.ErrSchema1},
		{name: "config missing", src: Input{Manifest: good.Manifest, Desc: good.Desc}, want: imagetools.ErrConfigRequired},
		{name: "config of another image", src: Input{Manifest: good.Manifest, Desc: good.Desc, Config: []byte(`{}`)}, want: imagetools.ErrContentMismatch},
		{name: "manifest bytes do not match", src: Input{Manifest: []byte(`{}`), Desc: good.Desc, Config: good.Config}, want: imagetools.ErrContentMismatch},
		{name: "wrong size", src: Input{Manifest: good.Manifest, Desc: ocispec.Descriptor{MediaType: good.Desc.MediaType, Digest: good.Desc.Digest, Size: 1}, Config: good.Config}, want: imagetools.ErrContentMismatch},
		{name: "no digest", src: Input{Manifest: good.Manifest, Config: good.Config}, want: imagetools.ErrContentMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Index([]Input{good, tc.src}, Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := Index(nil, Options{}); !errors.Is(err, imagetools.ErrNoSources) {
		t.Fatalf("no sources: error = %v", err)
	}
}

func TestCombinePlatformFromConfig(t *testing.T) {
	tests := []struct {
		name    string
		descP   *ocispec.Platform
		cfgArch string
		cfgVar  string
		want    ocispec.Platform
	}{
		{name: "arm64/v8 normalized", cfgArch: "arm64", cfgVar: "v8", want: ocispec.Platform{OS: "linux", Architecture: "arm64"}},
		{name: "aarch64 normalized", cfgArch: "aarch64", want: ocispec.Platform{OS: "linux", Architecture: "arm64"}},
		{name: "arm gets v7", cfgArch: "arm", want: ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{name: "user OS kept, architecture read", descP: &ocispec.Platform{OS: "linux", OSVersion: "x"}, cfgArch: "amd64", want: ocispec.Platform{OS: "linux", OSVersion: "x", Architecture: "amd64"}},
		{name: "user variant kept", descP: &ocispec.Platform{OS: "linux", Variant: "v6"}, cfgArch: "arm", cfgVar: "v7", want: ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := testImage(t, ocispec.MediaTypeImageManifest, "linux", tc.cfgArch, tc.cfgVar)
			l.Desc.Platform = tc.descP
			if !NeedsConfig(l) {
				t.Fatal("NeedsConfig = false for a descriptor without full platform")
			}
			got, err := Index([]Input{l}, Options{PreferIndex: true})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got.Children[0].Platform, tc.want) {
				t.Fatalf("platform = %+v, want %+v", *got.Children[0].Platform, tc.want)
			}
		})
	}
}

func TestNeedsConfig(t *testing.T) {
	img := testImage(t, ocispec.MediaTypeImageManifest, "linux", "amd64", "")
	full := img
	full.Desc.Platform = testPlatform("linux/amd64")
	noMT := img
	noMT.Desc.MediaType = ""
	idx := testIndex(t, ocispec.MediaTypeImageIndex)
	tests := map[string]struct {
		l    Input
		want bool
	}{
		"manifest without platform":        {img, true},
		"manifest with platform":           {full, false},
		"media type detected from bytes":   {noMT, true},
		"index":                            {idx, false},
		"garbage without media type":       {Input{Manifest: []byte("x")}, false},
		"docker manifest without platform": {testImage(t, images.MediaTypeDockerSchema2Manifest, "linux", "amd64", ""), true},
	}
	for name, tc := range tests {
		if got := NeedsConfig(tc.l); got != tc.want {
			t.Errorf("%s: NeedsConfig = %v, want %v", name, got, tc.want)
		}
	}
}

func TestMergeDescriptor(t *testing.T) {
	resolved := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:" + testHex, Size: 10,
		Platform: testPlatform("linux/amd64"), Annotations: map[string]string{"r": "1"},
	}
	tests := []struct {
		name    string
		user    ocispec.Descriptor
		want    ocispec.Descriptor
		wantErr error
	}{
		{name: "empty user keeps resolved", user: ocispec.Descriptor{}, want: resolved},
		{
			name: "user fields replace",
			user: ocispec.Descriptor{MediaType: images.MediaTypeDockerSchema2Manifest, Digest: "sha256:" + testHex, Size: 10, Platform: &ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.1"}, Annotations: map[string]string{"u": "1"}},
			want: ocispec.Descriptor{MediaType: images.MediaTypeDockerSchema2Manifest, Digest: "sha256:" + testHex, Size: 10, Platform: &ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.1"}, Annotations: map[string]string{"u": "1"}},
		},
		{name: "size mismatch", user: ocispec.Descriptor{Size: 11}, wantErr: imagetools.ErrDescriptorMismatch},
		{name: "digest mismatch", user: ocispec.Descriptor{Digest: digest.FromString("x")}, wantErr: imagetools.ErrDescriptorMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MergeDescriptor(resolved, tc.user)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("MergeDescriptor = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestReplacePlatforms(t *testing.T) {
	d := func(name, p string) ocispec.Descriptor {
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(name), Size: 1}
		if p != "" {
			desc.Platform = testPlatform(p)
		}
		return desc
	}
	amd, arm, armV8, win := d("amd", "linux/amd64"), d("arm", "linux/arm64"), d("arm-new", "linux/arm64/v8"), d("win", "windows/amd64")
	noPlat := d("noplat", "")
	attArm := testAttestation(t, arm)
	names := map[digest.Digest]string{amd.Digest: "amd", arm.Digest: "arm", armV8.Digest: "armV8", win.Digest: "win", noPlat.Digest: "noPlat", attArm.Digest: "attArm"}

	tests := []struct {
		name                   string
		existing, added        []ocispec.Descriptor
		wantKept, wantReplaced []string
	}{
		{name: "nothing added", existing: []ocispec.Descriptor{amd, arm, attArm}, wantKept: []string{"amd linux/amd64", "arm linux/arm64", "attArm unknown/unknown"}},
		{name: "normalized platform replaced with its attestation", existing: []ocispec.Descriptor{amd, arm, attArm, noPlat}, added: []ocispec.Descriptor{armV8},
			wantKept: []string{"amd linux/amd64", "noPlat -"}, wantReplaced: []string{"arm linux/arm64", "attArm unknown/unknown"}},
		{name: "same digest re-added is not a replacement", existing: []ocispec.Descriptor{arm, attArm}, added: []ocispec.Descriptor{arm},
			wantKept: []string{"arm linux/arm64", "attArm unknown/unknown"}},
		{name: "other OS not replaced", existing: []ocispec.Descriptor{amd}, added: []ocispec.Descriptor{win},
			wantKept: []string{"amd linux/amd64"}},
		{name: "an added attestation replaces nothing", existing: []ocispec.Descriptor{amd}, added: []ocispec.Descriptor{testAttestation(t, amd)},
			wantKept: []string{"amd linux/amd64"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept, replaced := replacePlatforms(tc.existing, tc.added)
			if s := summary(kept, names); !reflect.DeepEqual(s, tc.wantKept) {
				t.Errorf("kept = %q, want %q", s, tc.wantKept)
			}
			if s := summary(replaced, names); !reflect.DeepEqual(s, tc.wantReplaced) {
				t.Errorf("replaced = %q, want %q", s, tc.wantReplaced)
			}
		})
	}
}

func TestCombineDeterministic(t *testing.T) {
	a := testImage(t, ocispec.MediaTypeImageManifest, "linux", "amd64", "")
	b := testImage(t, ocispec.MediaTypeImageManifest, "linux", "arm64", "")
	anns := mustAnnotations(t, "index:z=1", "index:a=2", "index:m=3", "manifest-descriptor:y=1", "manifest-descriptor:b=2")
	first, err := Index([]Input{a, b}, Options{Annotations: anns})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := Index([]Input{a, b}, Options{Annotations: anns})
		if err != nil || !bytes.Equal(again.Bytes, first.Bytes) {
			t.Fatalf("result changed between runs: %v\n%s\n%s", err, first.Bytes, again.Bytes)
		}
	}
}

// testHex is 64 hex digits, a well-formed sha256 digest body.
const testHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
