package imagetar

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// readOCIView lists index.json's entries; each must be a manifest or index
// the tar holds under blobs/, of the size index.json says.
func (a *Archive) readOCIView() error {
	dt, err := a.readSmall("index.json", oci.MaxManifestSize)
	if err != nil {
		return err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(dt, &idx); err != nil {
		return fmt.Errorf("index.json is not an OCI image index: %w", err)
	}
	for i, m := range idx.Manifests {
		if err := m.Digest.Validate(); err != nil {
			return fmt.Errorf("index.json entry %d: invalid digest %q", i+1, m.Digest)
		}
		if !oci.IsManifestOrIndex(m.MediaType) {
			return fmt.Errorf("index.json entry %d (%s) is %q, not a manifest or index", i+1, m.Digest, m.MediaType)
		}
		e, ok := a.tar.entries[blobName(m.Digest)]
		if !ok {
			return fmt.Errorf("index.json names %s, which the tar does not hold under blobs/", m.Digest)
		}
		if e.size != m.Size {
			return fmt.Errorf("index.json says %s is %d bytes; the tar holds %d", m.Digest, m.Size, e.size)
		}
		var names []string
		for _, k := range []string{images.AnnotationImageName, ocispec.AnnotationRefName, oci.AnnotationArtifactName} {
			if n := m.Annotations[k]; n != "" {
				names = append(names, n)
			}
		}
		desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size, Platform: m.Platform}
		a.images = append(a.images, image{desc: desc, names: names})
	}
	return nil
}

// dockerManifest is one image of a Docker image tar's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// readDockerView makes a manifest for each image of manifest.json. Each
// config and layer entry is read once however often manifest.json names
// it, and the manifests made are held to the limits of manifests read
// (oci.MaxManifestSize each, oci.MaxGraphBytes in all) as they are made.
func (a *Archive) readDockerView(ctx context.Context) error {
	dt, err := a.readSmall("manifest.json", oci.MaxManifestSize)
	if err != nil {
		return err
	}
	var ms []dockerManifest
	if err := json.Unmarshal(dt, &ms); err != nil {
		return fmt.Errorf("manifest.json is not a Docker image tar's manifest: %w", err)
	}
	v := &dockerView{configs: map[string]configInfo{}, layers: map[string]ocispec.Descriptor{}, hashed: map[int64]digest.Digest{}}
	var made int64
	for i, m := range ms {
		img, err := a.makeManifest(ctx, v, m)
		if err != nil {
			return fmt.Errorf("manifest.json image %d: %w", i+1, err)
		}
		if made += img.desc.Size; made > oci.MaxGraphBytes {
			return fmt.Errorf("manifest.json image %d: the manifests made for its images add up to more than %d bytes, the limit of manifests read: %w", i+1, oci.MaxGraphBytes, imagetools.ErrTooLarge)
		}
		a.images = append(a.images, img)
	}
	return nil
}

// dockerView holds what readDockerView read of each entry, by name, so
// that an entry named by many images is read (and hashed) once.
type dockerView struct {
	configs map[string]configInfo
	layers  map[string]ocispec.Descriptor
	// hashed holds the digests of compressed layers hashed, by offset:
	// links to one entry share it.
	hashed map[int64]digest.Digest
}

// configInfo is what a manifest needs of an image config.
type configInfo struct {
	desc     ocispec.Descriptor
	diffIDs  []digest.Digest
	platform *ocispec.Platform
}

// makeManifest makes the OCI manifest of a Docker view image: the config
// as it is, each layer as the tar holds it (an uncompressed layer tar's
// digest is its diff ID, checked when it is read). Its bytes depend only
// on the tar.
func (a *Archive) makeManifest(ctx context.Context, v *dockerView, m dockerManifest) (image, error) {
	cfg, err := a.config(v, m.Config)
	if err != nil {
		return image{}, err
	}
	if len(cfg.diffIDs) != len(m.Layers) {
		return image{}, fmt.Errorf("lists %d layers, its config %d", len(m.Layers), len(cfg.diffIDs))
	}
	// A manifest lists ~100 bytes a layer: more layers than fit in the
	// largest manifest are refused before any is looked at.
	if len(m.Layers) > oci.MaxManifestSize/100 {
		return image{}, fmt.Errorf("lists %d layers: its manifest would pass the %d byte limit of a manifest: %w", len(m.Layers), oci.MaxManifestSize, imagetools.ErrTooLarge)
	}
	mf := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg.desc}
	for i, l := range m.Layers {
		desc, ok := v.layers[l]
		if !ok || desc.Digest != cfg.diffIDs[i] && desc.MediaType == ocispec.MediaTypeImageLayer {
			if desc, err = a.layer(ctx, v, l, cfg.diffIDs[i]); err != nil {
				return image{}, err
			}
			v.layers[l] = desc
		}
		mf.Layers = append(mf.Layers, desc)
	}
	dt, err := json.Marshal(mf)
	if err != nil {
		return image{}, err
	}
	if len(dt) > oci.MaxManifestSize {
		return image{}, fmt.Errorf("its manifest would be %d bytes, over the %d byte limit of a manifest: %w", len(dt), oci.MaxManifestSize, imagetools.ErrTooLarge)
	}
	desc := ocispec.Descriptor{MediaType: mf.MediaType, Digest: digest.FromBytes(dt), Size: int64(len(dt)), Platform: cfg.platform}
	a.made[desc.Digest] = dt
	return image{desc: desc, names: m.RepoTags}, nil
}

// config reads the image config manifest.json names p, once per entry.
func (a *Archive) config(v *dockerView, p string) (configInfo, error) {
	cfgName, err := a.member(p)
	if err != nil {
		return configInfo{}, err
	}
	if c, ok := v.configs[cfgName]; ok {
		return c, nil
	}
	cfgBytes, err := a.readSmall(cfgName, oci.MaxBlobReadWhole)
	if err != nil {
		return configInfo{}, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		return configInfo{}, fmt.Errorf("config %s is not an image config: %w", p, err)
	}
	c := configInfo{desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgBytes), Size: int64(len(cfgBytes))},
		diffIDs: cfg.RootFS.DiffIDs}
	if cfg.OS != "" && cfg.Architecture != "" {
		c.platform = &ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, OSVersion: cfg.OSVersion}
	}
	a.files[c.desc.Digest] = cfgName
	v.configs[cfgName] = c
	return c, nil
}

// digestInName finds the digest a compressed layer's name carries
// (crane: sha256:HEX.tar.gz; OCI: blobs/sha256/HEX).
var digestInName = regexp.MustCompile(`sha256[:/]([0-9a-f]{64})`)

// layer describes one layer entry: uncompressed, by its diff ID; gzip or
// zstd, by the digest its name carries, else by hashing it once.
func (a *Archive) layer(ctx context.Context, v *dockerView, p string, diffID digest.Digest) (ocispec.Descriptor, error) {
	name, err := a.member(p)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	e := a.tar.entries[name]
	head := make([]byte, 4)
	n, _ := a.tar.at(e).ReadAt(head, e.off)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: diffID, Size: e.size}
	switch {
	case hasPrefix(head[:n], gzipMagic):
		desc.MediaType = ocispec.MediaTypeImageLayerGzip
	case hasPrefix(head[:n], zstdMagic):
		desc.MediaType = ocispec.MediaTypeImageLayerZstd
	default:
		if err := diffID.Validate(); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("layer %s: its config's diff ID %q is not a digest", p, diffID)
		}
		a.files[diffID] = name
		return desc, nil
	}
	if sm := digestInName.FindStringSubmatch(p); sm != nil {
		desc.Digest = digest.NewDigestFromEncoded(digest.SHA256, sm[1])
	} else if d, ok := v.hashed[e.off]; ok {
		desc.Digest = d
	} else {
		d, err := digest.SHA256.FromReader(ctxReader{ctx: ctx, r: a.tar.section(e)})
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("read layer %s: %w", p, err)
		}
		desc.Digest, v.hashed[e.off] = d, d
	}
	a.files[desc.Digest] = name
	return desc, nil
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

// member resolves a path manifest.json names to an entry of the tar,
// refusing one outside it, manifest.json or index.json themselves, and one
// the tar does not hold.
func (a *Archive) member(p string) (string, error) {
	name, err := cleanName(p)
	if err != nil {
		return "", fmt.Errorf("names %q: %w", p, err)
	}
	if name == "manifest.json" || name == "index.json" {
		return "", fmt.Errorf("names %q as image content: refused", p)
	}
	if _, ok := a.tar.entries[name]; !ok {
		return "", fmt.Errorf("names %q, which is not a file in the tar", p)
	}
	return name, nil
}
