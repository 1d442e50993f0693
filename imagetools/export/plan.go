package export

// The planner reads the structure of the images (indexes, manifests,
// configs) in one sequential pass, so that the tar's entries follow the
// images in a fixed order, and decides every record before a byte is
// written.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// plan is everything known before the first byte is written.
type plan struct {
	records  []record
	names    []string
	warnings []string
	// unchecked are the manifest.json images whose config is fetched with
	// the layers and checked once written (checkWrittenConfigs).
	unchecked []dockerImage
}

// planner collects the blobs and images while the structure is read.
type planner struct {
	imgs    []image
	opts    Options
	blobs   map[digest.Digest]*blob
	order   []*blob
	docker  []*dockerImage
	zstd    []digest.Digest
	entries []indexEntry
	// ahead holds the small blobs prefetch read.
	ahead *prefetched
	// deferConfigs leaves the configs of manifest.json's images to be
	// fetched with the layers when nothing else needs them first.
	deferConfigs bool
	// budget counts the manifests and indexes read (Options.Limits).
	budget *oci.GraphBudget
}

// makePlan reads the images' structure and lays out the tar. The plan holds
// the warnings found so far even with an error.
func makePlan(ctx context.Context, imgs []image, opts Options, deferConfigs bool) (plan, error) {
	budget := oci.NewGraphBudget(opts.Limits)
	r := &planner{imgs: imgs, opts: opts, blobs: map[digest.Digest]*blob{}, deferConfigs: deferConfigs, budget: budget,
		ahead: prefetch(ctx, imgs, opts, oci.MetadataLimit(opts.MaxConcurrency), deferConfigs, budget)}
	for i := range imgs {
		if err := r.addImage(ctx, i); err != nil {
			return plan{}, err
		}
	}
	var pl plan
	if len(r.zstd) > 0 {
		pl.warnings = append(pl.warnings, fmt.Sprintf("%d zstd-compressed layer(s), first %s: Docker Engine older than 23.0 cannot load them", len(r.zstd), r.zstd[0]))
	}
	recs, err := r.records()
	if err != nil {
		return pl, err
	}
	pl.records = recs
	for _, d := range r.docker {
		if d.configData == nil {
			pl.unchecked = append(pl.unchecked, *d)
		}
	}
	for _, e := range r.entries {
		if e.Name.full != "" && !slices.Contains(pl.names, e.Name.full) {
			pl.names = append(pl.names, e.Name.full)
		}
	}
	return pl, nil
}

// records renders index.json and, in the docker format, manifest.json, and
// returns every tar record.
func (r *planner) records() ([]record, error) {
	indexJSON, err := renderIndexJSON(r.entries)
	if err != nil {
		return nil, fmt.Errorf("export: index.json: %w", err)
	}
	var manifestJSON []byte
	if r.opts.Format == FormatDocker {
		dockerImgs := make([]dockerImage, 0, len(r.docker))
		for _, d := range r.docker {
			dockerImgs = append(dockerImgs, *d)
		}
		if manifestJSON, err = renderManifestJSON(dockerImgs); err != nil {
			return nil, fmt.Errorf("export: manifest.json: %w", err)
		}
	}
	recs, err := records(r.order, indexJSON, manifestJSON)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return recs, nil
}

// imageLabel names image i in errors.
func (r *planner) imageLabel(i int) string {
	if r.imgs[i].Name != "" {
		return r.imgs[i].Name
	}
	return r.imgs[i].Desc.Digest.String()
}

func (r *planner) addImage(ctx context.Context, i int) error {
	img := r.imgs[i]
	label := r.imageLabel(i)
	if img.Fetcher == nil {
		return fmt.Errorf("export %s: no fetcher", label)
	}
	name, err := parseImageName(img.Name)
	if err != nil {
		return fmt.Errorf("export %s: %w", label, err)
	}
	r.entries = append(r.entries, indexEntry{Desc: img.Desc, Name: name, Source: img.SourceAnnotations, Artifact: img.Artifact})
	if err := r.budget.Charge(img.Desc); err != nil {
		return fmt.Errorf("export %s: %w", label, err)
	}
	if err := r.seedRoot(i); err != nil {
		return fmt.Errorf("export %s: %w", label, err)
	}
	primary, err := r.addRoot(ctx, i)
	if err != nil {
		return fmt.Errorf("export %s: %w", label, err)
	}
	if primary == nil || r.opts.Format != FormatDocker || img.Artifact {
		return nil
	}
	if err := r.addDockerImage(ctx, i, *primary, label, name); err != nil {
		return fmt.Errorf("export %s: %w", label, err)
	}
	return nil
}

// addRoot adds image i's root, an index or a manifest, with what it lists;
// it returns the manifest for manifest.json, nil when an index has none.
func (r *planner) addRoot(ctx context.Context, i int) (*ocispec.Descriptor, error) {
	desc := r.imgs[i].Desc
	switch mt := desc.MediaType; {
	case oci.IsIndex(mt):
		return r.addIndex(ctx, i, desc)
	case oci.IsManifest(mt):
		if err := r.addManifest(ctx, i, desc, false); err != nil {
			return nil, err
		}
		if err := r.checkSinglePlatform(ctx, i, desc); err != nil {
			return nil, err
		}
		return &desc, nil
	case mt == images.MediaTypeDockerSchema1Manifest:
		return nil, errors.New("schema1 manifests are not supported")
	default:
		return nil, fmt.Errorf("unsupported media type %q", mt)
	}
}

// addIndex adds an index and its selected children; it returns the child for
// manifest.json.
func (r *planner) addIndex(ctx context.Context, i int, desc ocispec.Descriptor) (*ocispec.Descriptor, error) {
	data, err := r.addSmall(ctx, i, desc, kindManifest)
	if err != nil {
		return nil, err
	}
	index, err := parseIndex(desc, data)
	if err != nil {
		return nil, err
	}
	if index.Manifests, err = r.flattenIndexes(ctx, i, index.Manifests); err != nil {
		return nil, err
	}
	sel, err := selectChildren(index, r.opts.Platforms, r.opts.AllPlatforms, r.opts.Format == FormatDocker && !r.imgs[i].Artifact)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
	}
	for _, c := range sel.kept {
		if r.opts.SkipAttestations && oci.IsAttestation(c) {
			continue
		}
		if !oci.IsManifest(c.MediaType) {
			return nil, fmt.Errorf("index %s: child %s has unsupported media type %q", desc.Digest, c.Digest, c.MediaType)
		}
		if err := r.addManifest(ctx, i, c, oci.IsAttestation(c)); err != nil {
			return nil, err
		}
	}
	return sel.primary, nil
}

// parseIndex parses the bytes of index desc, refusing a body whose media
// type contradicts the descriptor's.
func parseIndex(desc ocispec.Descriptor, data []byte) (ocispec.Index, error) {
	var index ocispec.Index
	if err := json.Unmarshal(data, &index); err != nil {
		return index, fmt.Errorf("parse index %s: %w", desc.Digest, err)
	}
	if index.MediaType != "" && index.MediaType != desc.MediaType {
		return index, fmt.Errorf("index %s: media type %q in its body contradicts %q", desc.Digest, index.MediaType, desc.MediaType)
	}
	return index, nil
}

// flattenIndexes replaces each index among children by what it lists, so
// that the images of a nested index are chosen like the others, each
// manifest once. The indexes are read by the one graph walk (oci.Graph:
// each once, nested at most oci.MaxIndexDepth deep) and recorded: the tar
// holds them, for consumers that walk the root index down.
func (r *planner) flattenIndexes(ctx context.Context, i int, children []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	g := &oci.Graph[int]{
		Read: func(ctx context.Context, i int, desc ocispec.Descriptor) ([]byte, error) {
			data, err := r.addSmall(ctx, i, desc, kindManifest)
			if err != nil {
				return nil, err
			}
			if _, err := parseIndex(desc, data); err != nil {
				return nil, err
			}
			return data, nil
		},
		Follow: func(c ocispec.Descriptor) bool { return oci.IsIndex(c.MediaType) },
	}
	var roots []oci.GraphRoot[int]
	for _, c := range children {
		if oci.IsIndex(c.MediaType) {
			roots = append(roots, oci.GraphRoot[int]{Desc: c, From: i, Depth: 1})
		}
	}
	if _, err := g.Walk(ctx, roots); err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	seen := map[string]bool{}
	var add func(cs []ocispec.Descriptor)
	add = func(cs []ocispec.Descriptor) {
		for _, c := range cs {
			key := c.Digest.String()
			if c.Platform != nil && !oci.IsIndex(c.MediaType) {
				key += " " + oci.PlatformKey(*c.Platform) // one manifest may serve two platforms
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			if n, ok := g.Node(c.Digest); ok && oci.IsIndex(c.MediaType) {
				add(n.Children)
				continue
			}
			out = append(out, c)
		}
	}
	add(children)
	return out, nil
}

// addManifest adds an image manifest, its config and its layers. Layers and
// configs are streamed later; foreign layers are left out unless asked for.
func (r *planner) addManifest(ctx context.Context, i int, desc ocispec.Descriptor, attestation bool) error {
	m, err := r.readManifest(ctx, i, desc)
	if err != nil {
		return err
	}
	if err := r.addBlob(i, m.Config, kindConfig, nil); err != nil {
		return fmt.Errorf("manifest %s: config: %w", desc.Digest, err)
	}
	for _, l := range m.Layers {
		if err := validateDigest(l.Digest); err != nil {
			return fmt.Errorf("manifest %s: layer: %w", desc.Digest, err)
		}
		if images.IsNonDistributable(l.MediaType) && !r.opts.IncludeForeign {
			continue
		}
		if !attestation && oci.IsZstd(l.MediaType) && !slices.Contains(r.zstd, l.Digest) {
			r.zstd = append(r.zstd, l.Digest)
		}
		if err := r.addBlob(i, l, kindLayer, nil); err != nil {
			return fmt.Errorf("manifest %s: layer: %w", desc.Digest, err)
		}
	}
	return nil
}

func (r *planner) readManifest(ctx context.Context, i int, desc ocispec.Descriptor) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	data, err := r.addSmall(ctx, i, desc, kindManifest)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("parse manifest %s: %w", desc.Digest, err)
	}
	if m.MediaType != "" && m.MediaType != desc.MediaType {
		return m, fmt.Errorf("manifest %s: media type %q in its body contradicts %q", desc.Digest, m.MediaType, desc.MediaType)
	}
	return m, nil
}

// checkSinglePlatform refuses a single image whose config names a platform
// other than the ones the user asked for (an index is where --platform picks).
func (r *planner) checkSinglePlatform(ctx context.Context, i int, desc ocispec.Descriptor) error {
	if !r.opts.ExplicitPlatforms || r.opts.AllPlatforms || r.imgs[i].Artifact {
		return nil
	}
	m, err := r.readManifest(ctx, i, desc)
	if err != nil {
		return err
	}
	dt, err := r.addSmall(ctx, i, m.Config, kindConfig)
	if err != nil {
		return err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(dt, &cfg); err != nil {
		return nil // not an image config: nothing to match
	}
	return oci.CheckImagePlatform(cfg.Platform, r.opts.Platforms)
}

// addDockerImage records the manifest.json entry for manifest desc of image
// i, merging names when the same manifest is exported twice.
func (r *planner) addDockerImage(ctx context.Context, i int, desc ocispec.Descriptor, label string, name imageName) error {
	for _, d := range r.docker {
		if d.manifest.Digest == desc.Digest {
			if name.repoTag != "" && !slices.Contains(d.repoTags, name.repoTag) {
				d.repoTags = append(d.repoTags, name.repoTag)
			}
			return nil
		}
	}
	m, err := r.readManifest(ctx, i, desc)
	if err != nil {
		return err
	}
	d := &dockerImage{name: label, manifest: desc, config: m.Config, layers: m.Layers}
	for _, l := range m.Layers {
		if images.IsNonDistributable(l.MediaType) && !r.opts.IncludeForeign {
			if d.foreign == nil {
				d.foreign = map[digest.Digest]bool{}
			}
			d.foreign[l.Digest] = true
		}
	}
	// Foreign layers need the config's diff_ids to lay out manifest.json.
	if b, ok := r.blobs[m.Config.Digest]; !r.deferConfigs || d.foreign != nil || (ok && b.Data != nil) {
		if d.configData, err = r.addSmall(ctx, i, m.Config, kindConfig); err != nil {
			return err
		}
	}
	if name.repoTag != "" {
		d.repoTags = []string{name.repoTag}
	}
	r.docker = append(r.docker, d)
	return nil
}

// seedRoot records the root bytes the caller already read, after checking
// them, so that they are not fetched a second time.
func (r *planner) seedRoot(i int) error {
	img := r.imgs[i]
	if img.Data == nil {
		return nil
	}
	if err := validateDigest(img.Desc.Digest); err != nil {
		return err
	}
	if int64(len(img.Data)) != img.Desc.Size || digest.FromBytes(img.Data) != img.Desc.Digest {
		return fmt.Errorf("root %s: the bytes given do not match the descriptor: %w", img.Desc.Digest, imagetools.ErrDigestMismatch)
	}
	return r.addBlob(i, img.Desc, kindManifest, img.Data)
}

// addBlob records a blob once; the first image that names it provides it.
// data, when given, is kept to write it from memory.
func (r *planner) addBlob(i int, desc ocispec.Descriptor, kind blobKind, data []byte) error {
	if err := validateDigest(desc.Digest); err != nil {
		return err
	}
	if desc.Size < 0 {
		return fmt.Errorf("blob %s: negative size %d", desc.Digest, desc.Size)
	}
	if b, ok := r.blobs[desc.Digest]; ok {
		if b.Desc.Size != desc.Size {
			return fmt.Errorf("blob %s: conflicting sizes %d and %d", desc.Digest, b.Desc.Size, desc.Size)
		}
		if b.Data == nil {
			b.Data = data
		}
		return nil
	}
	b := &blob{Desc: desc, Kind: kind, Data: data, Source: i}
	r.blobs[desc.Digest] = b
	r.order = append(r.order, b)
	return nil
}

// addSmall fetches a small blob (index, manifest, config) into memory,
// verified, records it and returns its bytes. A blob already read is not
// fetched again.
func (r *planner) addSmall(ctx context.Context, i int, desc ocispec.Descriptor, kind blobKind) ([]byte, error) {
	if err := validateDigest(desc.Digest); err != nil {
		return nil, err
	}
	if b, ok := r.blobs[desc.Digest]; ok && b.Data != nil {
		if b.Desc.Size != desc.Size {
			return nil, fmt.Errorf("blob %s: conflicting sizes %d and %d", desc.Digest, b.Desc.Size, desc.Size)
		}
		return b.Data, nil
	}
	// Refused here, not as a failed fetch: nothing is requested.
	if err := oci.CheckReadable(desc); err != nil {
		return nil, err
	}
	if kind == kindManifest {
		if err := r.budget.Charge(desc); err != nil {
			return nil, err
		}
	}
	data, err := r.ahead.fetch(ctx, r.imgs[i].Fetcher, desc)
	if err != nil {
		return nil, err
	}
	if err := r.addBlob(i, desc, kind, data); err != nil {
		return nil, err
	}
	return data, nil
}
