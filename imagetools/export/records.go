package export

// The pure half of the exporter: which children of an index are exported,
// names, index.json, manifest.json, config checks and the sorted tar records.
// Nothing here does I/O, so all of it is table-tested.

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// manifestFile is the Docker image tar's index, which docker load reads.
const manifestFile = "manifest.json"

// blobPath returns the layout path of a blob after checking that the
// digest is a well-formed sha256 digest, so that it cannot escape blobs/sha256/.
func blobPath(dgst digest.Digest) (string, error) {
	if err := validateDigest(dgst); err != nil {
		return "", err
	}
	return path.Join(ocispec.ImageBlobsDir, dgst.Algorithm().String(), dgst.Encoded()), nil
}

// validateDigest accepts only a well-formed sha256 digest: stricter than
// the OCI rules on purpose, since the digest becomes a path in the tar and
// docker load knows no other algorithm.
func validateDigest(dgst digest.Digest) error {
	if err := dgst.Validate(); err != nil {
		return fmt.Errorf("invalid digest %q: %w", dgst, err)
	}
	if dgst.Algorithm() != digest.SHA256 {
		return fmt.Errorf("invalid digest %q: only sha256 is supported", dgst)
	}
	return nil
}

// selection is what selectChildren decides for one index.
type selection struct {
	// kept are the children written to the OCI layout, in index order.
	kept []ocispec.Descriptor
	// primary is the child that goes to manifest.json; nil when none matched
	// and none was required.
	primary *ocispec.Descriptor
}

// selectChildren picks the children of index to export. For every
// wanted platform the best matching image (platforms.Only preference order,
// the earlier child on ties) is kept; the first wanted platform's pick is
// Primary. With all, every child is kept and the wanted platforms only choose
// Primary. Children without a platform are always kept, since consumers that
// filter by platform keep them and would fail on a missing blob. Attestation
// manifests are kept when the image they describe is kept.
// A wanted platform without a match is an error unless all is set; with all,
// a missing Primary is an error only when needPrimary.
func selectChildren(index ocispec.Index, want []ocispec.Platform, all, needPrimary bool) (selection, error) {
	var sel selection
	chosen := map[digest.Digest]bool{}
	for i, p := range want {
		best := oci.BestMatch(index.Manifests, p)
		if best == nil {
			if !all || (i == 0 && needPrimary) {
				return sel, oci.NoPlatformError(index.Manifests, p)
			}
			continue
		}
		if i == 0 {
			sel.primary = best
		}
		chosen[best.Digest] = true
	}
	for _, c := range index.Manifests {
		if !oci.IsAttestation(c) && c.Platform == nil {
			chosen[c.Digest] = true
		}
	}
	for _, c := range index.Manifests {
		keep := all || chosen[c.Digest]
		if !all && oci.IsAttestation(c) {
			subject, _ := oci.AttestationSubject(c)
			keep = chosen[subject]
		}
		if keep {
			sel.kept = append(sel.kept, c)
		}
	}
	return sel, nil
}

// imageName is a requested image name in the forms the tar needs.
type imageName struct {
	// full is the fully qualified reference (io.containerd.image.name).
	full string
	// tag is the tag alone (org.opencontainers.image.ref.name); "" if untagged.
	tag string
	// repoTag is repository:tag for manifest.json; "" if untagged.
	repoTag string
}

// parseImageName parses a fully qualified name such as
// "localhost:5000/app:1". A familiar name ("app:1") is refused: podman and
// Docker would each qualify it differently.
func parseImageName(name string) (imageName, error) {
	if name == "" {
		return imageName{}, nil
	}
	ref, err := reference.ParseNamed(name)
	if err != nil {
		return imageName{}, fmt.Errorf("invalid image name %q (must be fully qualified, like docker.io/library/app:1): %w", name, err)
	}
	n := imageName{full: ref.String()}
	if tagged, ok := ref.(reference.Tagged); ok {
		n.tag = tagged.Tag()
		n.repoTag = reference.TrimNamed(ref).String() + ":" + n.tag
	}
	return n, nil
}

// indexEntry is one top-level entry of index.json.
type indexEntry struct {
	Desc ocispec.Descriptor
	Name imageName
	// Source are the annotations of where the image came from.
	Source map[string]string
	// Artifact is named by oci.AnnotationArtifactName only.
	Artifact bool
}

// renderIndexJSON renders index.json: one descriptor per entry in order, with
// the original media type, digest and size, the name annotations and no
// platform (ctr refuses a top-level entry with a foreign platform). Exact
// duplicates are written once.
func renderIndexJSON(entries []indexEntry) ([]byte, error) {
	manifests := []ocispec.Descriptor{}
	for _, e := range entries {
		d := ocispec.Descriptor{MediaType: e.Desc.MediaType, Digest: e.Desc.Digest, Size: e.Desc.Size}
		if e.Name.full != "" || len(e.Source) > 0 {
			d.Annotations = maps.Clone(e.Source)
			if d.Annotations == nil {
				d.Annotations = map[string]string{}
			}
		}
		if e.Artifact && e.Name.full != "" {
			d.Annotations = map[string]string{oci.AnnotationArtifactName: e.Name.full}
		} else if e.Name.full != "" {
			d.Annotations[images.AnnotationImageName] = e.Name.full
			if e.Name.tag != "" {
				d.Annotations[ocispec.AnnotationRefName] = e.Name.tag
			}
		}
		if !slices.ContainsFunc(manifests, func(m ocispec.Descriptor) bool { return sameEntry(m, d) }) {
			manifests = append(manifests, d)
		}
	}
	return json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	})
}

func sameEntry(a, b ocispec.Descriptor) bool {
	return a.MediaType == b.MediaType && a.Digest == b.Digest && a.Size == b.Size && maps.Equal(a.Annotations, b.Annotations)
}

// dockerImage is one image for manifest.json.
type dockerImage struct {
	// name identifies the image in errors (a name or the root digest).
	name     string
	manifest ocispec.Descriptor
	config   ocispec.Descriptor
	// configData is the raw config, needed for the diff_ids.
	configData []byte
	layers     []ocispec.Descriptor
	// foreign marks the layers left out of the tar; their descriptors go to
	// LayerSources so that the Docker engine can fetch them from their URLs.
	foreign  map[digest.Digest]bool
	repoTags []string
}

// manifestItem is an entry of manifest.json as Docker writes it.
type manifestItem struct {
	Config       string
	RepoTags     []string
	Layers       []string
	LayerSources map[digest.Digest]ocispec.Descriptor `json:",omitempty"`
}

// imageConfig holds the parts of an image config that docker load checks.
type imageConfig struct {
	RootFS struct {
		DiffIDs []digest.Digest `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		EmptyLayer bool `json:"empty_layer,omitempty"`
	} `json:"history,omitempty"`
}

// checkConfig parses a config and checks what docker load checks:
// as many diff_ids as layers and, when there is a history, as many non-empty
// history entries as layers.
func checkConfig(img dockerImage) (imageConfig, error) {
	var cfg imageConfig
	var full ocispec.Image
	// Parsed twice: CheckConfig wants the full config, manifest.json only
	// the diff_ids, and both parses are of a few KiB already in memory.
	if err := json.Unmarshal(img.configData, &full); err != nil {
		return cfg, fmt.Errorf("image %s: parse config %s: %w", img.name, img.config.Digest, err)
	}
	if err := oci.CheckConfig(&full, len(img.layers)); err != nil {
		return cfg, fmt.Errorf("image %s (config %s): %w", img.name, img.config.Digest, err)
	}
	if err := json.Unmarshal(img.configData, &cfg); err != nil {
		return cfg, fmt.Errorf("image %s: parse config %s: %w", img.name, img.config.Digest, err)
	}
	return cfg, nil
}

// renderManifestJSON renders manifest.json, one entry per image in order,
// after checking every config read (one not read yet, ConfigData nil, is
// checked once written: checkWrittenConfigs). LayerSources is keyed by
// diff_id, as Docker reads it.
func renderManifestJSON(imgs []dockerImage) ([]byte, error) {
	items := make([]manifestItem, 0, len(imgs))
	for _, img := range imgs {
		var cfg imageConfig
		var err error
		if img.configData != nil {
			if cfg, err = checkConfig(img); err != nil {
				return nil, err
			}
		}
		item := manifestItem{RepoTags: []string{}, Layers: []string{}}
		if item.Config, err = blobPath(img.config.Digest); err != nil {
			return nil, fmt.Errorf("image %s: config: %w", img.name, err)
		}
		item.RepoTags = append(item.RepoTags, img.repoTags...)
		for i, l := range img.layers {
			p, err := blobPath(l.Digest)
			if err != nil {
				return nil, fmt.Errorf("image %s: layer: %w", img.name, err)
			}
			item.Layers = append(item.Layers, p)
			if img.foreign[l.Digest] {
				if item.LayerSources == nil {
					item.LayerSources = map[digest.Digest]ocispec.Descriptor{}
				}
				item.LayerSources[cfg.RootFS.DiffIDs[i]] = l
			}
		}
		items = append(items, item)
	}
	return json.Marshal(items)
}

// record is one tar entry: a header and either in-memory content or a
// blob to stream (Blob set, Data nil).
type record struct {
	Header *tar.Header
	Data   []byte
	Blob   *blob
}

// blobKind says how a blob is reported while it is written.
type blobKind int

const (
	kindLayer blobKind = iota // layers and any other streamed blob
	kindManifest
	kindConfig
)

// blob is a blob of the layout. Data holds small blobs (manifests,
// indexes, configs) read while resolving; the others are streamed from Source.
type blob struct {
	Desc   ocispec.Descriptor
	Kind   blobKind
	Data   []byte
	Source int // index of the image whose fetcher provides the blob
}

// tarHeader returns a header with the Unix epoch as mtime, uid/gid 0 and
// no user names, as docker save writes. Format is left to archive/tar, which
// picks USTAR and switches to PAX only for huge sizes or long names.
func tarHeader(name string, typ byte, mode, size int64) *tar.Header {
	return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: time.Unix(0, 0)}
}

// records returns the tar entries sorted bytewise by name: the blob
// directories, every blob once, index.json, manifest.json (when not nil) and
// oci-layout.
func records(blobs []*blob, indexJSON, manifestJSON []byte) ([]record, error) {
	recs := []record{
		{Header: tarHeader(ocispec.ImageBlobsDir+"/", tar.TypeDir, 0o755, 0)},
		{Header: tarHeader(ocispec.ImageBlobsDir+"/"+digest.SHA256.String()+"/", tar.TypeDir, 0o755, 0)},
		{Header: tarHeader(ocispec.ImageIndexFile, tar.TypeReg, 0o644, int64(len(indexJSON))), Data: indexJSON},
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return nil, err
	}
	recs = append(recs, record{Header: tarHeader(ocispec.ImageLayoutFile, tar.TypeReg, 0o444, int64(len(layout))), Data: layout})
	if manifestJSON != nil {
		recs = append(recs, record{Header: tarHeader(manifestFile, tar.TypeReg, 0o644, int64(len(manifestJSON))), Data: manifestJSON})
	}
	seen := map[string]bool{}
	for _, b := range blobs {
		p, err := blobPath(b.Desc.Digest)
		if err != nil {
			return nil, err
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		recs = append(recs, record{Header: tarHeader(p, tar.TypeReg, 0o444, b.Desc.Size), Data: b.Data, Blob: b})
	}
	slices.SortFunc(recs, func(a, b record) int { return strings.Compare(a.Header.Name, b.Header.Name) })
	return recs, nil
}
