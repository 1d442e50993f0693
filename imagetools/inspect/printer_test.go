package inspect

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"slices"
	"testing"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func testIndexImage(t *testing.T) *Image {
	t.Helper()
	loc, err := ref.Parse("127.0.0.1:5000/app:1")
	if err != nil {
		t.Fatal(err)
	}
	amd := digest.FromString("amd64")
	att := digest.FromString("att")
	idx := &ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Annotations: map[string]string{"z.key": "z", "a.key": "a"},
		Manifests: []ocispec.Descriptor{
			{MediaType: ocispec.MediaTypeImageManifest, Digest: amd, Size: 10, Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
			{MediaType: ocispec.MediaTypeImageManifest, Digest: att, Size: 11, Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"},
				Annotations: map[string]string{oci.AnnotationReferenceType: oci.AttestationManifestType, oci.AnnotationReferenceDigest: amd.String()}},
		}}
	return &Image{Location: loc, Desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromString("idx"), Size: 100}, Index: idx,
		Configs:      map[digest.Digest]*ocispec.Image{amd: {Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}},
		Attestations: map[digest.Digest]*Attestation{amd: {SLSA: map[string]any{"builder": "b"}, SPDX: []any{"doc1", "doc2"}}}}
}

func TestPrinterTextIndex(t *testing.T) {
	img := testIndexImage(t)
	var b bytes.Buffer
	if err := NewPrinter(img).Format(&b, ""); err != nil {
		t.Fatal(err)
	}
	want := "Name:        127.0.0.1:5000/app:1\n" +
		"MediaType:   application/vnd.oci.image.index.v1+json\n" +
		"Digest:      " + digest.FromString("idx").String() + "\n" +
		"Annotations: \n" +
		"  a.key: a\n" +
		"  z.key: z\n" +
		"\n" +
		"Manifests:\n" +
		"  Name:      127.0.0.1:5000/app@" + digest.FromString("amd64").String() + "\n" +
		"  MediaType: application/vnd.oci.image.manifest.v1+json\n" +
		"  Platform:  linux/amd64\n" +
		"\n" +
		"  Name:        127.0.0.1:5000/app@" + digest.FromString("att").String() + "\n" +
		"  MediaType:   application/vnd.oci.image.manifest.v1+json\n" +
		"  Platform:    unknown/unknown\n" +
		"  Annotations: \n" +
		"    vnd.docker.reference.digest: " + digest.FromString("amd64").String() + "\n" +
		"    vnd.docker.reference.type:   attestation-manifest\n"
	if b.String() != want {
		t.Fatalf("text view:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestPrinterTemplate(t *testing.T) {
	img := testIndexImage(t)
	var b bytes.Buffer
	if err := NewPrinter(img).Format(&b, `{{range .Platforms}}{{.}} {{end}}{{(index .Provenance "linux/amd64").SLSA.builder}} {{json (index .SBOM "linux/amd64").AdditionalSPDXs}}`); err != nil {
		t.Fatal(err)
	}
	if want := "linux/amd64 b [\n  \"doc2\"\n]\n"; b.String() != want {
		t.Fatalf("got %q want %q", b.String(), want)
	}
	b.Reset()
	if err := NewPrinter(img).Format(&b, "{{.Name}}{{.Nope}}"); err == nil {
		t.Fatal("template over a missing field did not fail")
	}
}

func TestDecodeInToto(t *testing.T) {
	st := `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"x","predicate":{"k":"v"}}`
	for name, in := range map[string]string{
		"plain": st,
		"dsse":  `{"payloadType":"application/vnd.in-toto+json","payload":"` + base64.StdEncoding.EncodeToString([]byte(st)) + `","signatures":[]}`,
	} {
		p, err := decodeInToto([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m, ok := p.(map[string]any); !ok || m["k"] != "v" {
			t.Fatalf("%s: predicate %#v", name, p)
		}
	}
}

// TestTemplateFieldsAreTheData: the fields inspect's help and errors list
// are those of TemplateData, in its order.
func TestTemplateFieldsAreTheData(t *testing.T) {
	typ := reflect.TypeFor[TemplateData]()
	var want, got []string
	for i := range typ.NumField() {
		want = append(want, "."+typ.Field(i).Name)
	}
	for _, f := range TemplateFields {
		got = append(got, f.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("TemplateFields %q, TemplateData has %q", got, want)
	}
}
