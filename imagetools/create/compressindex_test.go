package create

import (
	"encoding/json"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestRewriteIndex(t *testing.T) {
	oldImg, otherImg := digest.FromString("old image"), digest.FromString("other image")
	att := digest.FromString("attestation")
	newImg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("new image"), Size: 7}
	for _, tc := range []struct {
		name    string
		in      string
		renamed map[digest.Digest]ocispec.Descriptor
		want    string
	}{{
		name: "an image renamed, its platform and annotations kept, other fields as they were",
		in: `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
			`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + oldImg.String() + `","size":3,"annotations":{"a":"b"},"platform":{"architecture":"amd64","os":"linux"}},` +
			`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + otherImg.String() + `","size":4}],"annotations":{"t":"x"},"x-extra":[1, 2]}`,
		renamed: map[digest.Digest]ocispec.Descriptor{oldImg: newImg},
		want: `{"annotations":{"t":"x"},"manifests":[` +
			`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + newImg.Digest.String() + `","size":7,"annotations":{"a":"b"},"platform":{"architecture":"amd64","os":"linux"}},` +
			`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + otherImg.String() + `","size":4}],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2,"x-extra":[1,2]}`,
	}, {
		name: "an attestation follows its image; one about another image stays",
		in: `{"manifests":[` +
			`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + att.String() + `","size":5,"annotations":{"vnd.docker.reference.digest":"` + oldImg.String() + `","vnd.docker.reference.type":"attestation-manifest"}},` +
			`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + att.String() + `","size":5,"annotations":{"vnd.docker.reference.digest":"` + otherImg.String() + `","vnd.docker.reference.type":"attestation-manifest"}}]}`,
		renamed: map[digest.Digest]ocispec.Descriptor{oldImg: newImg},
		want: `{"manifests":[` +
			`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + att.String() + `","size":5,"annotations":{"vnd.docker.reference.digest":"` + newImg.Digest.String() + `","vnd.docker.reference.type":"attestation-manifest"}},` +
			`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + att.String() + `","size":5,"annotations":{"vnd.docker.reference.digest":"` + otherImg.String() + `","vnd.docker.reference.type":"attestation-manifest"}}]}`,
	}, {
		name: "a Docker list that lists an OCI manifest now (zstd) becomes an OCI index",
		in: `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[` +
			`{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"` + oldImg.String() + `","size":3}]}`,
		renamed: map[digest.Digest]ocispec.Descriptor{oldImg: newImg},
		want: `{"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + newImg.Digest.String() + `","size":7}],` +
			`"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}`,
	}, {
		name: "a Docker list of Docker manifests (gzip) stays one",
		in: `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[` +
			`{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"` + oldImg.String() + `","size":3}]}`,
		renamed: map[digest.Digest]ocispec.Descriptor{oldImg: {MediaType: "application/vnd.docker.distribution.manifest.v2+json", Digest: newImg.Digest, Size: 7}},
		want: `{"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"` + newImg.Digest.String() + `","size":7}],` +
			`"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","schemaVersion":2}`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			in := ocispec.Descriptor{MediaType: mediaTypeOf(t, tc.in), Digest: digest.FromString(tc.in), Size: int64(len(tc.in))}
			desc, dt, err := rewriteIndex(in, []byte(tc.in), tc.renamed)
			if err != nil {
				t.Fatal(err)
			}
			if string(dt) != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", dt, tc.want)
			}
			if desc.MediaType != mediaTypeOf(t, tc.want) || desc.Digest != digest.FromString(tc.want) || desc.Size != int64(len(tc.want)) {
				t.Fatalf("descriptor %+v does not describe the bytes", desc)
			}
		})
	}
}

// mediaTypeOf is the media type an index's JSON names; an OCI index when
// it names none.
func mediaTypeOf(t *testing.T, dt string) string {
	t.Helper()
	var v struct{ MediaType string }
	if err := json.Unmarshal([]byte(dt), &v); err != nil {
		t.Fatal(err)
	}
	if v.MediaType == "" {
		return ocispec.MediaTypeImageIndex
	}
	return v.MediaType
}

func TestWithSubject(t *testing.T) {
	oldImg := digest.FromString("old image")
	newImg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("new image"), Size: 7}
	renamed := map[digest.Digest]ocispec.Descriptor{oldImg: newImg}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("attestation"), Size: 9}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"no subject", `{"schemaVersion":2,"layers":[]}`, ""},
		{"a subject not renamed", `{"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + digest.FromString("x").String() + `","size":1}}`, ""},
		{
			"a subject renamed, the rest kept",
			`{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.in-toto+json","digest":"` + digest.FromString("l").String() + `","size":1}],` +
				`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + oldImg.String() + `","size":3,"annotations":{"k":"v"}}}`,
			`{"layers":[{"mediaType":"application/vnd.in-toto+json","digest":"` + digest.FromString("l").String() + `","size":1}],"schemaVersion":2,` +
				`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + newImg.Digest.String() + `","size":7,"annotations":{"k":"v"}}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, dt, ok, err := withSubject(desc, []byte(tc.in), renamed)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tc.want != "") || string(dt) != tc.want {
				t.Fatalf("ok %v, got\n%s\nwant\n%s", ok, dt, tc.want)
			}
			if ok && (got.Digest != digest.FromString(tc.want) || got.Size != int64(len(tc.want)) || got.MediaType != desc.MediaType) {
				t.Fatalf("descriptor %+v does not describe the bytes", got)
			}
		})
	}
	if _, _, _, err := withSubject(desc, []byte(`{"subject":"x"}`), renamed); err == nil {
		t.Fatal("a subject that is no descriptor was taken")
	}
}
