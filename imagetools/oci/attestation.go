package oci

import (
	"github.com/moby/buildkit/util/attestation"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotations BuildKit writes on the attestation manifests of an index.
const (
	// AnnotationReferenceType is "attestation-manifest" on an attestation.
	AnnotationReferenceType = attestation.DockerAnnotationReferenceType
	// AnnotationReferenceDigest is the digest of the image it is about.
	AnnotationReferenceDigest = attestation.DockerAnnotationReferenceDigest
	// AttestationManifestType is the value of AnnotationReferenceType.
	AttestationManifestType = attestation.DockerAnnotationReferenceTypeDefault
)

// IsAttestation reports whether an index child is an attestation manifest.
// BuildKit marks them both ways, the annotation and the unknown/unknown
// platform; either is enough, so that a tool that kept only one still has
// its attestations treated as such (never picked as a platform's image).
func IsAttestation(d ocispec.Descriptor) bool {
	if d.Annotations[AnnotationReferenceType] == AttestationManifestType {
		return true
	}
	return d.Platform != nil && d.Platform.OS == "unknown" && d.Platform.Architecture == "unknown"
}

// AttestationSubject returns the digest of the image an attestation
// manifest is about; false when d is no attestation or names no valid digest.
func AttestationSubject(d ocispec.Descriptor) (digest.Digest, bool) {
	if !IsAttestation(d) {
		return "", false
	}
	dgst, err := digest.Parse(d.Annotations[AnnotationReferenceDigest])
	if err != nil {
		return "", false
	}
	return dgst, true
}

// AnnotationArtifactName names, in the index.json of an image tar, an entry
// that is no image: a cosign tag or referrers fallback tag carried beside
// its image (REPOSITORY:sha256-<hex>.sig). Loaders (ctr import) would take
// an entry named by the standard annotations for an image to unpack; this
// one they leave alone, and the tar's reader counts it among the names.
const AnnotationArtifactName = "dev.docker-imgx.artifact.name"
