package imagetools

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// MaxManifestSize is the largest manifest or index accepted (as registries do).
const MaxManifestSize = 4 << 20

// maxAttestationLayerSize bounds an in-toto layer read for inspect.
const maxAttestationLayerSize = 32 << 20

// Attestation annotations BuildKit writes on attestation manifests.
const (
	AnnotationReferenceType   = "vnd.docker.reference.type"
	AnnotationReferenceDigest = "vnd.docker.reference.digest"
	AttestationManifestType   = "attestation-manifest"
	annotationPredicateType   = "in-toto.io/predicate-type"
	mediaTypeInToto           = "application/vnd.in-toto+json"
	predicateSPDX             = "https://spdx.dev/Document"
	predicateSLSAPrefix       = "https://slsa.dev/provenance/"
)

// LoadOptions say how much of an image inspect needs.
type LoadOptions struct {
	// Platform picks one platform of an index; nil keeps the index.
	Platform *ocispec.Platform
	// Configs loads every image config (and child manifests of an index).
	Configs bool
	// Attestations loads provenance and SBOM from attestation manifests.
	Attestations bool
	// ManifestOnly loads the manifest bytes and nothing else (inspect --raw).
	ManifestOnly bool
	// MaxConcurrency bounds parallel fetches; 0 means as many as create's small requests
	// (metadataLimit of DefaultMaxConcurrency: 20), which reads a 16-child
	// index (8 images, 8 attestations) in one wave instead of two.
	MaxConcurrency int
}

// Loaded image data, as inspect shows it.
type Image struct {
	Location Location
	Desc     ocispec.Descriptor
	Raw      []byte
	// Index is set for an index or manifest list, Manifest for an image.
	Index    *ocispec.Index
	Manifest *ocispec.Manifest
	// Children are the loaded child manifests of an index, by digest.
	Children map[digest.Digest]*ocispec.Manifest
	// Configs are image configs by manifest digest.
	Configs map[digest.Digest]*ocispec.Image
	// Attestations by the digest of the image they are about.
	Attestations map[digest.Digest]*Attestation
	// Warnings are problems that do not stop inspect, such as a config
	// whose diff_ids disagree with the layers (docker load would refuse it).
	Warnings []string
}

// Attestation holds the predicates found in an attestation manifest.
type Attestation struct {
	SLSA  any
	SPDX  []any
	Other map[string]any
}

// Load reads the image or index at loc.
func Load(ctx context.Context, r *Resolver, loc Location, opts LoadOptions) (*Image, error) {
	// One GET gives the bytes and the digest; a HEAD first would add a round trip.
	desc, raw, err := r.GetManifest(ctx, loc)
	if err != nil {
		return nil, err
	}
	f, err := r.Fetcher(ctx, loc)
	if err != nil {
		return nil, err
	}
	img := &Image{Location: loc, Desc: desc, Raw: raw,
		Children: map[digest.Digest]*ocispec.Manifest{}, Configs: map[digest.Digest]*ocispec.Image{},
		Attestations: map[digest.Digest]*Attestation{}}
	if err := img.decode(); err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	if img.Index != nil && opts.Platform != nil {
		child, err := SelectPlatform(img.Index.Manifests, *opts.Platform)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
		sub, err := loadChild(ctx, f, loc, child)
		if err != nil {
			return nil, err
		}
		sub.Attestations = img.Attestations
		img, sub.Index = sub, nil
		if opts.Attestations {
			if err := img.loadAttestationsFrom(ctx, f, desc, raw, opts); err != nil {
				return nil, err
			}
		}
	}
	if opts.ManifestOnly {
		return img, nil
	}
	single := img.Index == nil && img.Desc.Digest == desc.Digest
	if err := img.loadDetails(ctx, f, opts); err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	if single && opts.Platform != nil {
		if err := img.checkSinglePlatform(*opts.Platform); err != nil {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
	}
	return img, nil
}

// checkSinglePlatform refuses a platform that a single image (not an index)
// does not match, as docker pull does, rather than show it as if it did.
func (img *Image) checkSinglePlatform(p ocispec.Platform) error {
	if err := ValidatePlatform(p); err != nil {
		return err
	}
	cfg := img.Configs[img.Desc.Digest]
	if cfg == nil || cfg.OS == "" || cfg.Architecture == "" {
		return nil
	}
	if got := cfg.Platform; !platforms.Only(p).Match(got) {
		return fmt.Errorf("a single %s image, not %s: drop --platform (it picks from an index)", platforms.Format(got), platforms.Format(p))
	}
	return nil
}

func loadChild(ctx context.Context, f remotes.Fetcher, loc Location, desc ocispec.Descriptor) (*Image, error) {
	raw, err := FetchManifest(ctx, f, desc)
	if err != nil {
		return nil, fmt.Errorf("%s@%s: %w", loc.Repository(), desc.Digest, err)
	}
	img := &Image{Location: loc, Desc: desc, Raw: raw,
		Children: map[digest.Digest]*ocispec.Manifest{}, Configs: map[digest.Digest]*ocispec.Image{},
		Attestations: map[digest.Digest]*Attestation{}}
	if err := img.decode(); err != nil {
		return nil, fmt.Errorf("%s@%s: %w", loc.Repository(), desc.Digest, err)
	}
	return img, nil
}

// decode parses Raw by the descriptor's media type, checking the body agrees.
func (img *Image) decode() error {
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(img.Raw, &probe); err != nil {
		return fmt.Errorf("malformed manifest %s: %w", img.Desc.Digest, err)
	}
	if probe.SchemaVersion == 1 {
		return fmt.Errorf("manifest %s is Docker schema 1, which is not supported", img.Desc.Digest)
	}
	if probe.MediaType != "" && img.Desc.MediaType != "" && probe.MediaType != img.Desc.MediaType {
		return fmt.Errorf("manifest %s: media type %q in its body contradicts %q", img.Desc.Digest, probe.MediaType, img.Desc.MediaType)
	}
	switch {
	case images.IsIndexType(img.Desc.MediaType) || (img.Desc.MediaType == "" && probe.Manifests != nil):
		img.Index = &ocispec.Index{}
		return json.Unmarshal(img.Raw, img.Index)
	case images.IsManifestType(img.Desc.MediaType) || (img.Desc.MediaType == "" && probe.Config != nil):
		img.Manifest = &ocispec.Manifest{}
		return json.Unmarshal(img.Raw, img.Manifest)
	}
	return fmt.Errorf("%s has media type %q, which is neither an image manifest nor an index", img.Desc.Digest, img.Desc.MediaType)
}

// loadDetails fetches child manifests, configs and attestations in parallel.
func (img *Image) loadDetails(ctx context.Context, f remotes.Fetcher, opts LoadOptions) error {
	if img.Manifest != nil {
		if !isImageConfig(img.Manifest.Config.MediaType) {
			return nil // an artifact or attestation: no image config to read
		}
		cfg, err := fetchConfig(ctx, f, img.Manifest.Config)
		if err != nil {
			return err
		}
		img.Configs[img.Desc.Digest] = cfg
		img.checkConfig(img.Desc.Digest, cfg, len(img.Manifest.Layers))
		return nil
	}
	if !opts.Configs && !opts.Attestations {
		return nil
	}
	return img.loadAttestationsFrom(ctx, f, img.Desc, img.Raw, opts)
}

// loadAttestationsFrom walks an index's children: images get their manifest
// and config, attestation manifests their predicates.
func (img *Image) loadAttestationsFrom(ctx context.Context, f remotes.Fetcher, _ ocispec.Descriptor, raw []byte, opts LoadOptions) error {
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return err
	}
	limit := opts.MaxConcurrency
	if limit <= 0 {
		limit = metadataLimit(DefaultMaxConcurrency)
	}
	var mu sync.Mutex
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(limit)
	for _, child := range idx.Manifests {
		isAtt := child.Annotations[AnnotationReferenceType] == AttestationManifestType
		if isAtt && !opts.Attestations || !isAtt && !opts.Configs || !images.IsManifestType(child.MediaType) {
			continue
		}
		if img.Manifest != nil && !isAtt {
			continue // a platform was picked: only its attestation matters
		}
		eg.Go(func() error {
			return img.loadIndexChild(ctx, f, child, isAtt, &mu)
		})
	}
	return eg.Wait()
}

func (img *Image) loadIndexChild(ctx context.Context, f remotes.Fetcher, child ocispec.Descriptor, isAtt bool, mu *sync.Mutex) error {
	raw, err := FetchManifest(ctx, f, child)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", child.Digest, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("malformed manifest %s: %w", child.Digest, err)
	}
	if isAtt {
		subject := digest.Digest(child.Annotations[AnnotationReferenceDigest])
		if img.Manifest != nil && subject != img.Desc.Digest {
			return nil
		}
		att, err := loadAttestation(ctx, f, m)
		if err != nil {
			return fmt.Errorf("attestation %s: %w", child.Digest, err)
		}
		mu.Lock()
		img.Attestations[subject] = att
		mu.Unlock()
		return nil
	}
	if !isImageConfig(m.Config.MediaType) {
		return nil
	}
	cfg, err := fetchConfig(ctx, f, m.Config)
	if err != nil {
		return err
	}
	mu.Lock()
	img.Children[child.Digest] = &m
	img.Configs[child.Digest] = cfg
	img.checkConfig(child.Digest, cfg, len(m.Layers))
	mu.Unlock()
	return nil
}

// checkConfig records a warning when a config disagrees with its manifest.
func (img *Image) checkConfig(manifest digest.Digest, cfg *ocispec.Image, layers int) {
	if err := CheckConfig(cfg, layers); err != nil {
		img.Warnings = append(img.Warnings, fmt.Sprintf("image %s: %v: docker load, podman and buildah will refuse it", manifest, err))
		slices.Sort(img.Warnings)
	}
}

func loadAttestation(ctx context.Context, f remotes.Fetcher, m ocispec.Manifest) (*Attestation, error) {
	att := &Attestation{Other: map[string]any{}}
	for _, l := range m.Layers {
		pt := l.Annotations[annotationPredicateType]
		if !strings.HasPrefix(l.MediaType, mediaTypeInToto) || pt == "" {
			continue
		}
		dt, err := fetchBlob(ctx, f, l, maxAttestationLayerSize)
		if err != nil {
			return nil, err
		}
		pred, err := decodeInToto(dt)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		switch {
		case pt == predicateSPDX:
			att.SPDX = append(att.SPDX, pred)
		case strings.HasPrefix(pt, predicateSLSAPrefix):
			att.SLSA = pred
		default:
			att.Other[pt] = pred
		}
	}
	return att, nil
}

// decodeInToto returns the predicate of an in-toto statement, unwrapping a
// DSSE envelope (base64 payload) when there is one.
func decodeInToto(dt []byte) (any, error) {
	var env struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
	}
	if err := json.Unmarshal(dt, &env); err == nil && env.Payload != "" && env.PayloadType != "" {
		p, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			return nil, fmt.Errorf("DSSE payload: %w", err)
		}
		dt = p
	}
	var st struct {
		Predicate any `json:"predicate"`
	}
	if err := json.Unmarshal(dt, &st); err != nil {
		return nil, fmt.Errorf("in-toto statement: %w", err)
	}
	return st.Predicate, nil
}

func fetchConfig(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor) (*ocispec.Image, error) {
	dt, err := fetchBlob(ctx, f, desc, MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", desc.Digest, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(dt, &cfg); err != nil {
		return nil, fmt.Errorf("malformed config %s: %w", desc.Digest, err)
	}
	return &cfg, nil
}

// FetchManifest fetches a manifest or index, refusing one over
// MaxManifestSize and checking its size and digest.
func FetchManifest(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	return fetchBlob(ctx, f, desc, MaxManifestSize)
}

// fetchBlob reads a small blob whole, checking size and digest.
func fetchBlob(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the %d byte limit", desc.Digest, desc.Size, limit)
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("invalid digest %q: %w", desc.Digest, err)
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	dt, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	if int64(len(dt)) > limit {
		return nil, fmt.Errorf("%s is over the %d byte limit", desc.Digest, limit)
	}
	if desc.Size > 0 && int64(len(dt)) != desc.Size {
		return nil, fmt.Errorf("%s: got %d bytes, descriptor says %d", desc.Digest, len(dt), desc.Size)
	}
	if got := desc.Digest.Algorithm().FromBytes(dt); got != desc.Digest {
		return nil, fmt.Errorf("%s: content has digest %s", desc.Digest, got)
	}
	return dt, nil
}

// SelectPlatform picks the child of an index that best matches p (containerd
// platform matching: linux/arm64 matches linux/arm64/v8), never an attestation.
func SelectPlatform(children []ocispec.Descriptor, p ocispec.Platform) (ocispec.Descriptor, error) {
	if err := ValidatePlatform(p); err != nil {
		return ocispec.Descriptor{}, err
	}
	m := platforms.Only(p)
	var best *ocispec.Descriptor
	var available []string
	for i, c := range children {
		if c.Platform == nil || c.Annotations[AnnotationReferenceType] == AttestationManifestType {
			continue
		}
		available = append(available, platforms.Format(*c.Platform))
		if !m.Match(*c.Platform) {
			continue
		}
		if best == nil || m.Less(*c.Platform, *best.Platform) {
			best = &children[i]
		}
	}
	if best == nil {
		return ocispec.Descriptor{}, fmt.Errorf("no image for platform %s (the index has: %s)", platforms.Format(p), strings.Join(available, ", "))
	}
	return *best, nil
}

// isImageConfig reports whether a config media type is an image config.
func isImageConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == images.MediaTypeDockerSchema2Config
}

// IsAttestation reports whether a descriptor is a BuildKit attestation manifest.
func IsAttestation(d ocispec.Descriptor) bool {
	return d.Annotations[AnnotationReferenceType] == AttestationManifestType
}
