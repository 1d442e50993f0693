// Package inspect reads what `docker imgx inspect` shows: an image or index
// from any place, with its child manifests, image configs and attestations
// (provenance, SBOM), and renders it as text, raw bytes, JSON or a Go
// template.
package inspect

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/docker-imgx/docker-imgx/imagetools/place"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Attestation predicates BuildKit writes into in-toto layers.
const (
	annotationPredicateType = "in-toto.io/predicate-type"
	mediaTypeInToto         = "application/vnd.in-toto+json"
	predicateSPDX           = "https://spdx.dev/Document"
	predicateSLSAPrefix     = "https://slsa.dev/provenance/"
)

// Options say how much of an image inspect needs.
type Options struct {
	// Platform picks one platform of an index; nil keeps the index.
	Platform *ocispec.Platform
	// Configs loads every image config (and child manifests of an index).
	Configs bool
	// Attestations loads provenance and SBOM from attestation manifests.
	Attestations bool
	// ManifestOnly loads the manifest bytes and nothing else (inspect --raw).
	ManifestOnly bool
	// MaxConcurrency bounds parallel fetches; 0 means as many as create's small requests
	// (oci.MetadataLimit of oci.DefaultMaxConcurrency: 20), which reads a 16-child
	// index (8 images, 8 attestations) in one wave instead of two.
	MaxConcurrency int
	// Limits bound the manifests read; zero fields take oci's defaults.
	Limits oci.GraphLimits

	// budget is Read's count of what it reads (Limits).
	budget *oci.GraphBudget
}

// Image is an image or index as inspect shows it.
type Image struct {
	Location ref.Location
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

// Read reads the image or index at loc, from whichever place holds it.
func Read(ctx context.Context, p place.Reader, loc ref.Location, opts Options) (*Image, error) {
	// One GET gives the bytes and the digest; a HEAD first would add a round trip.
	desc, raw, err := p.Manifest(ctx, loc)
	if err != nil {
		return nil, err
	}
	opts.budget = oci.NewGraphBudget(opts.Limits)
	if err := opts.budget.Charge(desc); err != nil {
		return nil, fmt.Errorf("%s: %w", loc, err)
	}
	f, err := p.Fetcher(ctx, loc)
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
		child, err := oci.SelectPlatform(img.Index.Manifests, *opts.Platform)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
		if err := opts.budget.Charge(child); err != nil {
			return nil, fmt.Errorf("%s: %w", loc, err)
		}
		sub, err := readChild(ctx, f, loc, child)
		if err != nil {
			return nil, err
		}
		sub.Attestations = img.Attestations
		img, sub.Index = sub, nil
		if opts.Attestations {
			if err := img.readIndexChildren(ctx, f, desc, raw, opts); err != nil {
				return nil, err
			}
		}
	}
	if opts.ManifestOnly {
		return img, nil
	}
	single := img.Index == nil && img.Desc.Digest == desc.Digest
	if err := img.readDetails(ctx, f, opts); err != nil {
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
	if err := oci.ValidatePlatform(p); err != nil {
		return err
	}
	cfg := img.Configs[img.Desc.Digest]
	if cfg == nil {
		return nil
	}
	return oci.CheckImagePlatform(cfg.Platform, []ocispec.Platform{p})
}

func readChild(ctx context.Context, f remotes.Fetcher, loc ref.Location, desc ocispec.Descriptor) (*Image, error) {
	raw, err := oci.ReadBlob(ctx, f, desc)
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
	case oci.IsIndex(img.Desc.MediaType) || (img.Desc.MediaType == "" && probe.Manifests != nil):
		img.Index = &ocispec.Index{}
		return json.Unmarshal(img.Raw, img.Index)
	case oci.IsManifest(img.Desc.MediaType) || (img.Desc.MediaType == "" && probe.Config != nil):
		img.Manifest = &ocispec.Manifest{}
		return json.Unmarshal(img.Raw, img.Manifest)
	}
	return fmt.Errorf("%s has media type %q, which is neither an image manifest nor an index", img.Desc.Digest, img.Desc.MediaType)
}

// readDetails fetches child manifests, configs and attestations in parallel.
func (img *Image) readDetails(ctx context.Context, f remotes.Fetcher, opts Options) error {
	if img.Manifest != nil {
		if !oci.IsImageConfig(img.Manifest.Config.MediaType) {
			return nil // an artifact or attestation: no image config to read
		}
		cfg, err := fetchConfig(ctx, f, img.Manifest.Config)
		if err != nil {
			return err
		}
		img.Configs[img.Desc.Digest] = cfg
		img.checkConfig(img.Desc.Digest, cfg, *img.Manifest)
		return nil
	}
	if !opts.Configs && !opts.Attestations {
		return nil
	}
	return img.readIndexChildren(ctx, f, img.Desc, img.Raw, opts)
}

// readIndexChildren reads an index's children, each digest once (inspect
// reads one level: a nested index is shown by its descriptor): images get
// their manifest and config, attestation manifests their predicates.
func (img *Image) readIndexChildren(ctx context.Context, f remotes.Fetcher, _ ocispec.Descriptor, raw []byte, opts Options) error {
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return err
	}
	limit := opts.MaxConcurrency
	if limit <= 0 {
		limit = oci.MetadataLimit(oci.DefaultMaxConcurrency)
	}
	var todo []ocispec.Descriptor
	seen := map[digest.Digest]bool{}
	for _, child := range idx.Manifests {
		isAtt := oci.IsAttestation(child)
		if isAtt && !opts.Attestations || !isAtt && !opts.Configs || !oci.IsManifest(child.MediaType) || seen[child.Digest] {
			continue
		}
		if img.Manifest != nil && !isAtt {
			continue // a platform was picked: only its attestation matters
		}
		seen[child.Digest] = true
		if err := opts.budget.Charge(child); err != nil {
			return err
		}
		todo = append(todo, child)
	}
	var mu sync.Mutex
	eg, ctx := errgroup.WithContext(ctx)
	eg.SetLimit(limit)
	for _, child := range todo {
		eg.Go(func() error {
			return img.readIndexChild(ctx, f, child, oci.IsAttestation(child), &mu)
		})
	}
	return eg.Wait()
}

func (img *Image) readIndexChild(ctx context.Context, f remotes.Fetcher, child ocispec.Descriptor, isAtt bool, mu *sync.Mutex) error {
	raw, err := oci.ReadBlob(ctx, f, child)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", child.Digest, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("malformed manifest %s: %w", child.Digest, err)
	}
	if isAtt {
		subject, ok := oci.AttestationSubject(child)
		if !ok || img.Manifest != nil && subject != img.Desc.Digest {
			return nil // about no image, or not the one picked
		}
		att, err := readAttestation(ctx, f, m)
		if err != nil {
			return fmt.Errorf("attestation %s: %w", child.Digest, err)
		}
		mu.Lock()
		img.Attestations[subject] = att
		mu.Unlock()
		return nil
	}
	if !oci.IsImageConfig(m.Config.MediaType) {
		return nil
	}
	cfg, err := fetchConfig(ctx, f, m.Config)
	if err != nil {
		return err
	}
	mu.Lock()
	img.Children[child.Digest] = &m
	img.Configs[child.Digest] = cfg
	img.checkConfig(child.Digest, cfg, m)
	mu.Unlock()
	return nil
}

// checkConfig records a warning when the config of a container image
// disagrees with its manifest; an artifact's config is not checked.
func (img *Image) checkConfig(manifest digest.Digest, cfg *ocispec.Image, m ocispec.Manifest) {
	if !oci.IsContainerImage(m) {
		return
	}
	if err := oci.CheckConfig(cfg, len(m.Layers)); err != nil {
		img.Warnings = append(img.Warnings, fmt.Sprintf("image %s: %v: docker load, podman and buildah will refuse it", manifest, err))
		slices.Sort(img.Warnings)
	}
}

func readAttestation(ctx context.Context, f remotes.Fetcher, m ocispec.Manifest) (*Attestation, error) {
	att := &Attestation{Other: map[string]any{}}
	for _, l := range m.Layers {
		pt := l.Annotations[annotationPredicateType]
		if !strings.HasPrefix(l.MediaType, mediaTypeInToto) || pt == "" {
			continue
		}
		dt, err := oci.ReadBlob(ctx, f, l)
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
	dt, err := oci.ReadBlob(ctx, f, desc)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", desc.Digest, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(dt, &cfg); err != nil {
		return nil, fmt.Errorf("malformed config %s: %w", desc.Digest, err)
	}
	return &cfg, nil
}
