package tests

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestCreateCosignSignaturesMerged: the target holds a signature of the
// image under the cosign tag already (made there, by another key); create
// adds the source's signature to it, as cosign accumulates them, instead of
// overwriting it. A second run changes nothing.
func TestCreateCosignSignaturesMerged(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, _ := twoImages()
	pushImage(t, reg, "test/app", "amd64", amd)
	refs := newReferrers(t, amd.Manifest.Desc, amd.Manifest.Desc)
	refs.push(t, reg, "test/app")
	sigCfg, payload := refs.sig[0], refs.sig[1]

	pushImage(t, reg, "test/dst", "", amd)
	theirs := payload
	theirs.Desc.Annotations = map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQDsignedInTheTarget"}
	sigManifest := func(layers ...ocispec.Descriptor) fixture.Blob {
		return fixture.NewBlob(ocispec.MediaTypeImageManifest, mustMarshal(t, ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			Config: sigCfg.Desc, Layers: layers,
		}))
	}
	if err := fixture.Push(context.Background(), reg.AdminHost, "test/dst", refs.sigTag, sigCfg, theirs, sigManifest(theirs.Desc)); err != nil {
		t.Fatal(err)
	}
	want := sigManifest(theirs.Desc, payload.Desc)
	x := newImgx(t)
	for run := range 2 {
		x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/dst:1", reg.Host+"/test/app:amd64")
		if got := fetchTag(t, reg, "test/dst", refs.sigTag); got != string(want.Data) {
			t.Fatalf("run %d: %s:\n%s\nwant both signatures:\n%s", run+1, refs.sigTag, got, want.Data)
		}
	}
}

// TestCreateReferrerInIndex: an attestation listed in the index it is
// copied with, whose subject is its platform's manifest (as buildx and
// regctl make them), is listed for that subject in the target too: the
// fallback tag is written though the attestation went with the index.
func TestCreateReferrerInIndex(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	amd, _ := twoImages()
	pushImage(t, reg, "test/src", "amd64", amd)
	empty := fixture.NewBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	statement := fixture.NewBlob("application/vnd.in-toto+json", []byte(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://slsa.dev/provenance/v0.2"}`))
	subject := amd.Manifest.Desc
	subject.Platform, subject.Annotations = nil, nil
	att := fixture.NewBlob(ocispec.MediaTypeImageManifest, mustMarshal(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.in-toto+json", Config: empty.Desc, Layers: []ocispec.Descriptor{statement.Desc}, Subject: &subject,
	}))
	inIndex := att.Desc
	inIndex.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
	inIndex.Annotations = map[string]string{
		"vnd.docker.reference.digest": amd.Manifest.Desc.Digest.String(),
		"vnd.docker.reference.type":   "attestation-manifest",
	}
	index := fixture.NewBlob(ocispec.MediaTypeImageIndex, mustMarshal(t, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{amd.Manifest.Desc, inIndex},
	}))
	listed := att.Desc
	listed.ArtifactType = "application/vnd.in-toto+json"
	fallback := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{listed}}
	ctx := context.Background()
	if err := fixture.Push(ctx, reg.AdminHost, "test/src", "", empty, statement, att); err != nil {
		t.Fatal(err)
	}
	if err := fixture.Push(ctx, reg.AdminHost, "test/src", "1", index); err != nil {
		t.Fatal(err)
	}
	fallbackTag := tagOf(amd.Manifest.Desc.Digest)
	if err := fixture.Push(ctx, reg.AdminHost, "test/src", fallbackTag, fixture.NewBlob(ocispec.MediaTypeImageIndex, mustMarshal(t, fallback))); err != nil {
		t.Fatal(err)
	}
	x := newImgx(t)
	x.MustRun("create", "--progress", "quiet", "-t", reg.Host+"/test/dst:1", reg.Host+"/test/src:1")
	if got := fetchTag(t, reg, "test/dst", "1"); got != string(index.Data) {
		t.Fatalf("index not copied as it is:\n%s", got)
	}
	// The target's fallback index is written as create writes one: indented.
	want, err := json.MarshalIndent(fallback, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if got := fetchTag(t, reg, "test/dst", fallbackTag); got != string(want) {
		t.Fatalf("%s in the target:\n%s\nwant:\n%s", fallbackTag, got, want)
	}
}
