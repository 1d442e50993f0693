package create

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools/combine"
	"github.com/docker-imgx/docker-imgx/imagetools/compression"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// plainIndex is an index whose images have plain layers to compress, as
// create and copy compress them: the index, the bytes of the image
// manifests to compress and of the attestation manifests about them.
type plainIndex struct {
	desc ocispec.Descriptor
	data []byte
	// todo holds the image manifests with plain layers, by digest.
	todo map[digest.Digest][]byte
	// attestations holds the attestation manifests the index lists, by
	// digest: their layers are no image layers and stay, but what they
	// say they are about follows the images renamed (see compress).
	attestations map[digest.Digest][]byte
	// read holds every manifest read, so that none is read again.
	read map[digest.Digest][]byte
}

// readPlainIndex reads, through fetch, the image manifests index dt lists
// that plats keeps (combine.Selected) and notes those with plain layers,
// and reads the attestation manifests, each charged to budget (nil: not
// counted). A nested index and a manifest the place does not hold are left
// as they are.
func readPlainIndex(ctx context.Context, fetch remotes.Fetcher, desc ocispec.Descriptor, dt []byte, plats []ocispec.Platform,
	budget *oci.GraphBudget) (plainIndex, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(dt, &idx); err != nil {
		return plainIndex{}, fmt.Errorf("parse index %s: %w", desc.Digest, err)
	}
	p := plainIndex{desc: desc, data: dt, todo: map[digest.Digest][]byte{}, attestations: map[digest.Digest][]byte{}, read: map[digest.Digest][]byte{}}
	for _, c := range combine.Selected(idx.Manifests, plats) {
		if _, done := p.read[c.Digest]; done || !oci.IsManifest(c.MediaType) {
			continue
		}
		if err := budget.Charge(c); err != nil {
			return plainIndex{}, err
		}
		cdt, err := oci.ReadBlob(ctx, fetch, c)
		if errdefs.IsNotFound(err) {
			// Not held (a single-platform export keeps the whole index):
			// the push says which platforms the source holds.
			continue
		}
		if err != nil {
			return plainIndex{}, fmt.Errorf("read %s of index %s: %w", c.Digest, desc.Digest, err)
		}
		p.read[c.Digest] = cdt
		switch {
		case oci.IsAttestation(c):
			p.attestations[c.Digest] = cdt
		case compression.Needed(c.MediaType, cdt):
			p.todo[c.Digest] = cdt
		}
	}
	return p, nil
}

// compress compresses the plain layers of p's images into layers (in
// digest order; the output does not depend on it) and writes the index
// again (rewriteIndex): the new descriptor and bytes, and every manifest
// written anew by digest. An attestation manifest whose subject field
// names a renamed image is written again with the new descriptor (its
// layers kept); its BuildKit reference annotation is moved in the index.
func (p plainIndex) compress(ctx context.Context, layers *compression.Layers, fetch remotes.Fetcher,
	logf func(format string, args ...any)) (ocispec.Descriptor, []byte, map[digest.Digest][]byte, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(p.data, &idx); err != nil {
		return p.desc, nil, nil, fmt.Errorf("parse index %s: %w", p.desc.Digest, err)
	}
	byDigest := map[digest.Digest]ocispec.Descriptor{}
	for _, c := range idx.Manifests {
		byDigest[c.Digest] = c
	}
	renamed := map[digest.Digest]ocispec.Descriptor{}
	written := map[digest.Digest][]byte{}
	for _, d := range sortedDigests(p.todo) {
		nd, ndt, err := layers.Manifest(ctx, fetch, byDigest[d], p.todo[d], compressLayers, logf)
		if err != nil {
			return p.desc, nil, nil, err
		}
		renamed[d], written[nd.Digest] = nd, ndt
	}
	for _, d := range sortedDigests(p.attestations) {
		nd, ndt, ok, err := withSubject(byDigest[d], p.attestations[d], renamed)
		if err != nil {
			return p.desc, nil, nil, fmt.Errorf("attestation %s of index %s: %w", d, p.desc.Digest, err)
		}
		if ok {
			renamed[d], written[nd.Digest] = nd, ndt
		}
	}
	desc, dt, err := rewriteIndex(p.desc, p.data, renamed)
	if err != nil {
		return p.desc, nil, nil, fmt.Errorf("write index %s again: %w", p.desc.Digest, err)
	}
	return desc, dt, written, nil
}

// withSubject writes manifest dt (desc) again with its subject field
// renamed, every other field kept; ok is false when it names no manifest
// of renamed.
func withSubject(desc ocispec.Descriptor, dt []byte, renamed map[digest.Digest]ocispec.Descriptor) (ocispec.Descriptor, []byte, bool, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(dt, &fields); err != nil {
		return desc, nil, false, err
	}
	raw, ok := fields["subject"]
	if !ok {
		return desc, nil, false, nil
	}
	var subject ocispec.Descriptor
	if err := json.Unmarshal(raw, &subject); err != nil {
		return desc, nil, false, err
	}
	n, ok := renamed[subject.Digest]
	if !ok {
		return desc, nil, false, nil
	}
	subject.MediaType, subject.Digest, subject.Size = n.MediaType, n.Digest, n.Size
	out, err := setField(fields, "subject", subject)
	if err != nil {
		return desc, nil, false, err
	}
	desc.Digest, desc.Size = digest.FromBytes(out), int64(len(out))
	return desc, out, true, nil
}

// rewriteIndex writes index dt again with the descriptors of the manifests
// renamed (media type, digest, size; platform and annotations kept), the
// reference annotation of each attestation about a renamed image moved to
// its new digest, and every other field as it was, but for the media type
// of a Docker list that now lists an OCI manifest: an OCI index.
func rewriteIndex(desc ocispec.Descriptor, dt []byte, renamed map[digest.Digest]ocispec.Descriptor) (ocispec.Descriptor, []byte, error) {
	var fields map[string]json.RawMessage
	var idx ocispec.Index
	if err := json.Unmarshal(dt, &fields); err != nil {
		return desc, nil, err
	}
	if err := json.Unmarshal(dt, &idx); err != nil {
		return desc, nil, err
	}
	for i, m := range idx.Manifests {
		if n, ok := renamed[m.Digest]; ok {
			idx.Manifests[i].MediaType, idx.Manifests[i].Digest, idx.Manifests[i].Size = n.MediaType, n.Digest, n.Size
		}
		if subject, ok := oci.AttestationSubject(m); ok {
			if n, ok := renamed[subject]; ok {
				idx.Manifests[i].Annotations = maps.Clone(m.Annotations)
				idx.Manifests[i].Annotations[oci.AnnotationReferenceDigest] = n.Digest.String()
			}
		}
	}
	// A Docker list that now lists an OCI manifest (zstd layers) becomes
	// an OCI index, as combine makes one.
	if mt := combine.IndexMediaType(idx.Manifests, false); idx.MediaType != "" && idx.MediaType != ocispec.MediaTypeImageIndex && mt == ocispec.MediaTypeImageIndex {
		raw, err := json.Marshal(mt)
		if err != nil {
			return desc, nil, err
		}
		fields["mediaType"], desc.MediaType = raw, mt
	}
	out, err := setField(fields, "manifests", idx.Manifests)
	if err != nil {
		return desc, nil, err
	}
	desc.Digest, desc.Size = digest.FromBytes(out), int64(len(out))
	return desc, out, nil
}

// setField sets field key of a JSON object read into fields to v and
// writes the object again (keys sorted, compact: the same bytes for the
// same input).
func setField(fields map[string]json.RawMessage, key string, v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	fields[key] = raw
	return json.Marshal(fields)
}
