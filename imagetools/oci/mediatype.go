package oci

import (
	"encoding/json"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DockerMediaTypePrefix starts every Docker media type; buildx makes a
// Docker manifest list only when all children have it.
const DockerMediaTypePrefix = "application/vnd.docker."

// ManifestAccept lists every manifest and index type the core reads, for
// a manifest request's Accept header.
var ManifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
	images.MediaTypeDockerSchema2ManifestList, images.MediaTypeDockerSchema2Manifest,
}, ", ")

// IsIndex reports whether mt is an OCI index or a Docker manifest list.
func IsIndex(mt string) bool { return images.IsIndexType(mt) }

// IsManifest reports whether mt is an image manifest (OCI or Docker schema 2).
func IsManifest(mt string) bool { return images.IsManifestType(mt) }

// IsManifestOrIndex reports whether mt is either: content that names other
// content and is stored by the manifest API, not as a blob.
func IsManifestOrIndex(mt string) bool { return IsIndex(mt) || IsManifest(mt) }

// IsImageConfig reports whether a config media type is an image config (not
// an artifact's or an attestation's).
func IsImageConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == images.MediaTypeDockerSchema2Config
}

// IsZstd reports whether a layer media type is zstd-compressed, which
// Docker Engine before 23.0 cannot load.
func IsZstd(mt string) bool {
	return strings.Contains(mt, "+zstd") || strings.HasSuffix(mt, ".zstd")
}

// DetectMediaType guesses a manifest's media type from its bytes when no
// descriptor or header gave one, with buildx's rules (anything unrecognised
// counts as a Docker manifest list).
func DetectMediaType(b []byte) (string, error) {
	var m struct {
		MediaType string            `json:"mediaType"`
		Config    json.RawMessage   `json:"config"`
		FSLayers  []json.RawMessage `json:"fsLayers"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", err
	}
	switch {
	case m.MediaType != "":
		return m.MediaType, nil
	case m.Config != nil:
		return images.MediaTypeDockerSchema2Manifest, nil
	case len(m.FSLayers) > 0:
		return images.MediaTypeDockerSchema1Manifest, nil
	default:
		return images.MediaTypeDockerSchema2ManifestList, nil
	}
}

// IsContainerImage reports whether a manifest is a container image, whose
// config's diff_ids must match its layers: an image config, no
// artifactType, and every blob a filesystem layer. An artifact that uses an
// image config type ({} over a blob that is no layer tar, as buildx and
// regctl write them) is not, and its config is not checked.
func IsContainerImage(m ocispec.Manifest) bool {
	if !IsImageConfig(m.Config.MediaType) || m.ArtifactType != "" {
		return false
	}
	for _, l := range m.Layers {
		if !images.IsLayerType(l.MediaType) {
			return false
		}
	}
	return true
}

// IsSchema1 reports whether a manifest is Docker schema 1, by its media
// type (signed or not) or, whatever the descriptor says, by its body's
// schemaVersion: no index may list it and no place here reads it.
func IsSchema1(mt string, b []byte) bool {
	if mt == images.MediaTypeDockerSchema1Manifest || mt == "application/vnd.docker.distribution.manifest.v1+json" {
		return true
	}
	var m struct {
		SchemaVersion int `json:"schemaVersion"`
	}
	return json.Unmarshal(b, &m) == nil && m.SchemaVersion == 1
}

// IsUncompressedLayer reports whether a layer media type is a plain tar
// (the layers of classic docker save tars and of the Docker engine), which
// a push to a registry compresses, as docker push does.
func IsUncompressedLayer(mt string) bool {
	return mt == ocispec.MediaTypeImageLayer || mt == images.MediaTypeDockerSchema2Layer
}

// CompressedLayerType is the media type of an uncompressed layer of type mt
// once compressed with format ("gzip" or "zstd"): Docker's gzip type for a
// Docker layer, else OCI's +gzip or +zstd. Docker schema 2 has no zstd
// layer type: a Docker manifest becomes OCI first (ToOCIManifest).
func CompressedLayerType(mt, format string) string {
	switch {
	case format == "zstd":
		return ocispec.MediaTypeImageLayerZstd
	case mt == images.MediaTypeDockerSchema2Layer:
		return images.MediaTypeDockerSchema2LayerGzip
	}
	return ocispec.MediaTypeImageLayerGzip
}

// ToOCIManifest gives a Docker schema 2 manifest OCI's media types (its
// own, its config's, its plain and gzip layers'), as buildx does for zstd
// layers; the content the descriptors name is unchanged. Other manifests
// are left as they are.
func ToOCIManifest(m *ocispec.Manifest) {
	if m.MediaType != images.MediaTypeDockerSchema2Manifest {
		return
	}
	m.MediaType = ocispec.MediaTypeImageManifest
	if m.Config.MediaType == images.MediaTypeDockerSchema2Config {
		m.Config.MediaType = ocispec.MediaTypeImageConfig
	}
	for i, l := range m.Layers {
		switch l.MediaType {
		case images.MediaTypeDockerSchema2Layer:
			m.Layers[i].MediaType = ocispec.MediaTypeImageLayer
		case images.MediaTypeDockerSchema2LayerGzip:
			m.Layers[i].MediaType = ocispec.MediaTypeImageLayerGzip
		}
	}
}
