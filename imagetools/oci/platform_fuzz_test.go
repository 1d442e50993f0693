package oci

import (
	"testing"

	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzPlatform feeds platform strings through containerd's parser and
// normaliser and our platform selection: none may panic, and a child
// SelectPlatform picks is one the requested platform matches.
func FuzzPlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm64/v8", "linux/arm/v7", "arm64", "windows/amd64", "linux/", "/", "",
		"linux/amd64/x/y", "darwin/arm64", "linux/arm", "LINUX/AMD64", "linux/amd64/v3", "unknown/unknown", "linux/aarch64"} {
		f.Add(s, "linux/arm64")
	}
	f.Fuzz(func(t *testing.T, requested, child string) {
		p, err := platforms.Parse(requested)
		if err != nil {
			return
		}
		p = platforms.Normalize(p)
		_ = platforms.FormatAll(p)
		children := fuzzChildren()
		if c, err := platforms.Parse(child); err == nil {
			children = append(children, ocispec.Descriptor{Digest: digest.FromString("fuzzed"), Platform: &c})
		}
		got, err := SelectPlatform(children, p)
		if err != nil {
			return
		}
		if got.Platform == nil || !platforms.Only(p).Match(*got.Platform) {
			t.Fatalf("SelectPlatform(%s) picked %v", platforms.Format(p), got.Platform)
		}
		if IsAttestation(got) {
			t.Fatalf("SelectPlatform(%s) picked an attestation", platforms.Format(p))
		}
	})
}

// fuzzChildren is an index's children: images, an attestation and one
// without a platform.
func fuzzChildren() []ocispec.Descriptor {
	plat := func(os, arch, variant string) *ocispec.Platform {
		return &ocispec.Platform{OS: os, Architecture: arch, Variant: variant}
	}
	return []ocispec.Descriptor{
		{Digest: digest.FromString("1"), Platform: plat("linux", "amd64", "")},
		{Digest: digest.FromString("2"), Platform: plat("linux", "arm64", "v8")},
		{Digest: digest.FromString("3"), Platform: plat("linux", "arm", "v7")},
		{Digest: digest.FromString("4"), Platform: plat("unknown", "unknown", ""),
			Annotations: map[string]string{AnnotationReferenceType: AttestationManifestType}},
		{Digest: digest.FromString("5")},
	}
}
