// Package combine is the pure core of create: resolved sources (descriptors
// and manifest bytes) in, index bytes and their descriptor out, with
// buildx's rules for merging, platforms, annotations and media types. It does
// no I/O.
package combine

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Input is one resolved source: its descriptor (after merging the user's descriptor JSON over
// the resolved one with MergeDescriptor) and the raw manifest or index bytes. For an image
// manifest whose descriptor has no OS or architecture (see NeedsConfig), the caller fetches the
// config blob and passes it in Config so the platform can be read from it.
type Input struct {
	// Name identifies the source in error messages (the argument or the resolved reference).
	Name     string
	Desc     ocispec.Descriptor
	Manifest []byte
	Config   []byte
}

// Options controls Combine.
type Options struct {
	// Annotations are added to the index or its manifest descriptors, in order (a later value
	// for the same key wins).
	Annotations []Annotation
	// Platforms keeps only the manifests matching one of these platforms (containerd
	// platforms.Any: both sides normalized, then OS, architecture and variant equal, so
	// linux/arm64 matches linux/arm64/v8 but linux/arm/v6 does not match linux/arm/v7).
	// Manifests without a platform are kept, and attestation manifests follow their subject.
	// Empty keeps everything.
	Platforms []ocispec.Platform
	// PreferIndex wraps a single image manifest in an index instead of returning it as is
	// (buildx --prefer-index, true by default there).
	PreferIndex bool
	// ForceOCI makes the result an OCI image index even when every child is a Docker type,
	// which would otherwise give a Docker manifest list.
	ForceOCI bool
	// AppendFirst says srcs[0] is the image already at the target tag (create --append). Its
	// manifests whose platform a later source provides with another digest are dropped, with
	// their attestation manifests, and reported in Result.Replaced. buildx keeps both instead.
	AppendFirst bool
}

// Result is the result of Combine.
type Result struct {
	// Desc describes Bytes: media type, digest and size only.
	Desc ocispec.Descriptor
	// Bytes is the index, or the single manifest returned as is, to push to the tags.
	Bytes []byte
	// Children are the manifests the index lists, in order; nil when Bytes is a single manifest.
	Children []ocispec.Descriptor
	// Origins[i] is the index in srcs of the first source that contributed Children[i], that is
	// the repository its content can be copied from.
	Origins []int
	// Replaced lists the manifests of the existing image dropped because of AppendFirst.
	Replaced []ocispec.Descriptor
}

// NeedsConfig reports whether l is an image manifest whose descriptor lacks the OS or the
// architecture, so the caller must load its config into l.Config before calling Combine.
func NeedsConfig(l Input) bool {
	mt := l.Desc.MediaType
	if mt == "" {
		var err error
		if mt, err = oci.DetectMediaType(l.Manifest); err != nil {
			return false
		}
	}
	if !images.IsManifestType(mt) {
		return false
	}
	p := l.Desc.Platform
	return p == nil || p.OS == "" || p.Architecture == ""
}

// MergeDescriptor lays the user's descriptor (descriptor JSON given as a source) over the resolved
// one: a different digest or size is an error; the user's media type, annotations (when any) and
// platform replace the resolved ones.
func MergeDescriptor(resolved, user ocispec.Descriptor) (ocispec.Descriptor, error) {
	if user.Digest != "" && user.Digest != resolved.Digest {
		return ocispec.Descriptor{}, fmt.Errorf("%w: digest %s given, %s resolved", imagetools.ErrDescriptorMismatch, user.Digest, resolved.Digest)
	}
	if user.Size != 0 && user.Size != resolved.Size {
		return ocispec.Descriptor{}, fmt.Errorf("%w: invalid size mismatch for %s, %d != %d", imagetools.ErrDescriptorMismatch, resolved.Digest, user.Size, resolved.Size)
	}
	out := cloneDescriptor(resolved)
	if user.MediaType != "" {
		out.MediaType = user.MediaType
	}
	if len(user.Annotations) != 0 {
		// Replaced, not merged, so that a user can remove annotations.
		out.Annotations = maps.Clone(user.Annotations)
	}
	if user.Platform != nil {
		p := clonePlatform(*user.Platform)
		out.Platform = &p
	}
	return out, nil
}

// Combine builds the index that create pushes, byte for byte as buildx does for the same sources
// in the same order. It fetches nothing: every source is already loaded.
func Index(srcs []Input, opts Options) (Result, error) {
	if len(srcs) == 0 {
		return Result{}, imagetools.ErrNoSources
	}
	descs := make([]ocispec.Descriptor, len(srcs))
	for i, l := range srcs {
		d, err := prepare(l)
		if err != nil {
			return Result{}, err
		}
		descs[i] = d
	}
	if len(srcs) == 1 && len(opts.Annotations) == 0 {
		mt := descs[0].MediaType
		switch {
		case images.IsIndexType(mt) && !(opts.ForceOCI && mt == images.MediaTypeDockerSchema2ManifestList):
			return passIndex(srcs[0], descs[0], opts.Platforms)
		case !images.IsIndexType(mt) && !opts.PreferIndex && opts.ForceOCI:
			return Result{}, fmt.Errorf("%w: an OCI index is asked for, but the single manifest %s is to be kept as it is", imagetools.ErrConflictingOptions, descs[0].Digest)
		case !images.IsIndexType(mt) && !opts.PreferIndex:
			return passManifest(srcs[0], descs[0], opts.Platforms)
		}
	}
	return many(srcs, descs, opts)
}

// many merges the sources' manifests into a new index.
func many(srcs []Input, descs []ocispec.Descriptor, opts Options) (Result, error) {
	lists := make([][]ocispec.Descriptor, len(srcs))
	for i := range srcs {
		children, err := expand(srcs[i], descs[i])
		if err != nil {
			return Result{}, err
		}
		lists[i] = children
	}
	var replaced []ocispec.Descriptor
	if opts.AppendFirst && len(lists) > 1 {
		lists[0], replaced = replacePlatforms(lists[0], flatten(lists[1:]))
	}
	children, origins := merge(lists)

	idx := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: IndexMediaType(children, opts.ForceOCI),
		Manifests: children,
	}
	if err := annotate(&idx, opts.Annotations); err != nil {
		return Result{}, err
	}
	kept, keptOrigins, err := filter(idx.Manifests, origins, opts.Platforms)
	if err != nil {
		return Result{}, err
	}
	idx.Manifests = kept
	res, err := marshal(idx)
	if err != nil {
		return Result{}, err
	}
	res.Origins, res.Replaced = keptOrigins, replaced
	return res, nil
}

// passIndex returns a single index source as is, or re-serialised without the manifests
// the platform filter drops.
func passIndex(l Input, desc ocispec.Descriptor, plats []ocispec.Platform) (Result, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(l.Manifest, &idx); err != nil {
		return Result{}, fmt.Errorf("parse index %s: %w", name(l), err)
	}
	origins := make([]int, len(idx.Manifests))
	kept, _, err := filter(idx.Manifests, origins, plats)
	if err != nil {
		return Result{}, err
	}
	if len(kept) == len(idx.Manifests) {
		return Result{
			Desc:     ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size},
			Bytes:    l.Manifest,
			Children: idx.Manifests,
			Origins:  origins,
		}, nil
	}
	idx.Manifests = kept
	res, err := marshal(idx)
	if err != nil {
		return Result{}, err
	}
	res.Desc.MediaType = desc.MediaType
	res.Origins = make([]int, len(kept))
	return res, nil
}

// passManifest returns a single manifest as is (PreferIndex false), after checking it
// matches the platform filter.
func passManifest(l Input, desc ocispec.Descriptor, plats []ocispec.Platform) (Result, error) {
	if len(plats) > 0 {
		if desc.Platform == nil {
			return Result{}, fmt.Errorf("%w: cannot filter platforms of %s, a manifest without platform information", imagetools.ErrNoPlatformMatch, name(l))
		}
		if !platforms.Any(plats...).Match(*desc.Platform) {
			return Result{}, fmt.Errorf("%w: platform %s of %s does not match any of the requested platforms", imagetools.ErrNoPlatformMatch, platforms.Format(*desc.Platform), name(l))
		}
	}
	return Result{
		Desc:  ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size},
		Bytes: l.Manifest,
	}, nil
}

// marshal serialises an index exactly as buildx does and describes the bytes.
func marshal(idx ocispec.Index) (Result, error) {
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return Result{}, fmt.Errorf("marshal index: %w", err)
	}
	return Result{
		Desc:     ocispec.Descriptor{MediaType: idx.MediaType, Digest: digest.FromBytes(b), Size: int64(len(b))},
		Bytes:    b,
		Children: idx.Manifests,
	}, nil
}

// prepare checks one source's bytes against its descriptor and completes the descriptor:
// media type detected when missing, platform read from the config when incomplete.
func prepare(l Input) (ocispec.Descriptor, error) {
	d := cloneDescriptor(l.Desc)
	if err := verify(name(l), d, l.Manifest); err != nil {
		return ocispec.Descriptor{}, err
	}
	if d.Size == 0 {
		d.Size = int64(len(l.Manifest))
	}
	if d.MediaType == "" {
		mt, err := oci.DetectMediaType(l.Manifest)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("detect media type of %s: %w", name(l), err)
		}
		d.MediaType = mt
	}
	switch {
	case d.MediaType == images.MediaTypeDockerSchema1Manifest:
		return ocispec.Descriptor{}, fmt.Errorf("%s: %w", name(l), imagetools.ErrSchema1)
	case images.IsManifestType(d.MediaType):
		if d.Platform == nil {
			d.Platform = &ocispec.Platform{}
		}
		if d.Platform.OS == "" || d.Platform.Architecture == "" {
			if err := configPlatform(l, d.Platform); err != nil {
				return ocispec.Descriptor{}, err
			}
		}
	}
	return d, nil
}

// verify checks that b has the digest and size its descriptor claims.
func verify(name string, d ocispec.Descriptor, b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: %s: no manifest bytes", imagetools.ErrContentMismatch, name)
	}
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("%w: %s: %w", imagetools.ErrContentMismatch, name, err)
	}
	if got := d.Digest.Algorithm().FromBytes(b); got != d.Digest {
		return fmt.Errorf("%w: %s: digest is %s, descriptor says %s", imagetools.ErrContentMismatch, name, got, d.Digest)
	}
	if d.Size != 0 && d.Size != int64(len(b)) {
		return fmt.Errorf("%w: %s: size is %d, descriptor says %d", imagetools.ErrContentMismatch, name, len(b), d.Size)
	}
	return nil
}

// configPlatform fills the missing parts of p from l's config, normalized (arm64/v8 becomes
// arm64), the way buildx does: the variant only comes along with the architecture.
func configPlatform(l Input, p *ocispec.Platform) error {
	name := name(l)
	if l.Config == nil {
		return fmt.Errorf("%w: %s has no platform in its descriptor", imagetools.ErrConfigRequired, name)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(l.Manifest, &m); err != nil {
		return fmt.Errorf("parse manifest %s: %w", name, err)
	}
	if err := verify(name+" config", m.Config, l.Config); err != nil {
		return err
	}
	var cfg ocispec.Platform
	if err := json.Unmarshal(l.Config, &cfg); err != nil {
		return fmt.Errorf("parse config %s of %s: %w", m.Config.Digest, name, err)
	}
	cfg = platforms.Normalize(cfg)
	if p.Architecture == "" {
		p.Architecture = cfg.Architecture
		if p.Variant == "" {
			p.Variant = cfg.Variant
		}
	}
	if p.OS == "" {
		p.OS = cfg.OS
	}
	return nil
}

// expand lists what a source contributes: an index its children, a manifest itself.
func expand(l Input, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	if !images.IsIndexType(desc.MediaType) {
		return []ocispec.Descriptor{desc}, nil
	}
	var idx ocispec.Index
	if err := json.Unmarshal(l.Manifest, &idx); err != nil {
		return nil, fmt.Errorf("parse index %s: %w", name(l), err)
	}
	return idx.Manifests, nil
}

// merge concatenates the lists, merging descriptors of the same digest into the first:
// its media type is kept (unless empty), a later platform wins and annotations are merged.
func merge(lists [][]ocispec.Descriptor) ([]ocispec.Descriptor, []int) {
	pos := map[digest.Digest]int{}
	out := []ocispec.Descriptor{}
	var origins []int
	for src, list := range lists {
		for _, d := range list {
			i, seen := pos[d.Digest]
			if !seen {
				pos[d.Digest] = len(out)
				out = append(out, cloneDescriptor(d))
				origins = append(origins, src)
				continue
			}
			old := &out[i]
			if old.MediaType == "" {
				old.MediaType = d.MediaType
			}
			if d.Platform != nil {
				p := clonePlatform(*d.Platform)
				old.Platform = &p
			}
			if len(d.Annotations) > 0 {
				if old.Annotations == nil {
					old.Annotations = map[string]string{}
				}
				maps.Copy(old.Annotations, d.Annotations)
			}
		}
	}
	return out, origins
}

// IndexMediaType picks a Docker manifest list when every child is a Docker type (and OCI is
// not forced), else an OCI index.
func IndexMediaType(children []ocispec.Descriptor, forceOCI bool) string {
	if forceOCI {
		return ocispec.MediaTypeImageIndex
	}
	for _, d := range children {
		if !strings.HasPrefix(d.MediaType, oci.DockerMediaTypePrefix) {
			return ocispec.MediaTypeImageIndex
		}
	}
	return images.MediaTypeDockerSchema2ManifestList
}

// annotate applies the annotations to idx in order. A Docker manifest list cannot carry
// annotations, so asking for any there is an error rather than a silent drop.
func annotate(idx *ocispec.Index, anns []Annotation) error {
	if len(anns) == 0 {
		return nil
	}
	if idx.MediaType == images.MediaTypeDockerSchema2ManifestList {
		return fmt.Errorf("%w: every source is a Docker manifest, so the result would be a Docker manifest list; make an OCI image index instead, or build the sources with oci-mediatypes=true", imagetools.ErrDockerListAnnotations)
	}
	for _, a := range anns {
		switch a.Target {
		case AnnotationIndex:
			if idx.Annotations == nil {
				idx.Annotations = map[string]string{}
			}
			idx.Annotations[a.Key] = a.Value
		case AnnotationManifestDescriptor:
			applied := false
			for i := range idx.Manifests {
				d := &idx.Manifests[i]
				if !a.appliesTo(d.Platform) {
					continue
				}
				if d.Annotations == nil {
					d.Annotations = map[string]string{}
				}
				d.Annotations[a.Key] = a.Value
				applied = true
			}
			if !applied && a.Platform != nil {
				return fmt.Errorf("%w %q: no image in the result has platform %s (it has %s)", imagetools.ErrInvalidAnnotation, a.String(), platforms.Format(*a.Platform), platformList(idx.Manifests))
			}
		default:
			return fmt.Errorf("%w: %s: unknown target %d", imagetools.ErrInvalidAnnotation, a.Key, a.Target)
		}
	}
	return nil
}

// Selected lists the manifests of ms that Index keeps for plats (filter's
// rules; all of them when plats is empty, none when nothing matches), so
// that work on a source's children can skip those the result drops.
func Selected(ms []ocispec.Descriptor, plats []ocispec.Platform) []ocispec.Descriptor {
	kept, _, _ := filter(ms, make([]int, len(ms)), plats)
	return kept
}

// filter keeps the manifests matching plats (all when plats is empty), with buildx's rules:
// a manifest without a platform is kept, and an attestation manifest is kept when its subject in
// the same list is.
func filter(ms []ocispec.Descriptor, origins []int, plats []ocispec.Platform) ([]ocispec.Descriptor, []int, error) {
	if len(plats) == 0 {
		return ms, origins, nil
	}
	matcher := platforms.Any(plats...)
	match := func(d ocispec.Descriptor) bool { return d.Platform == nil || matcher.Match(*d.Platform) }
	byDigest := make(map[digest.Digest]ocispec.Descriptor, len(ms))
	for _, m := range ms {
		byDigest[m.Digest] = m
	}
	var kept []ocispec.Descriptor
	var keptOrigins []int
	for i, m := range ms {
		keep := match(m)
		if subject, ok := oci.AttestationSubject(m); ok && !keep {
			s, found := byDigest[subject]
			keep = found && match(s)
		}
		if keep {
			kept = append(kept, m)
			keptOrigins = append(keptOrigins, origins[i])
		}
	}
	if len(kept) == 0 {
		return nil, nil, fmt.Errorf("%w: %s (the sources have: %s)", imagetools.ErrNoPlatformMatch, formatPlatforms(plats), platformList(ms))
	}
	return kept, keptOrigins, nil
}

// replacePlatforms drops from existing every image manifest whose platform one of added has with
// another digest, and every attestation manifest of a dropped one. Platforms compare normalized,
// OS version and features included. kept preserves the order of existing.
func replacePlatforms(existing, added []ocispec.Descriptor) (kept, replaced []ocispec.Descriptor) {
	addedDigests := map[digest.Digest]bool{}
	addedPlatforms := map[string]bool{}
	for _, a := range added {
		addedDigests[a.Digest] = true
		if _, isAtt := oci.AttestationSubject(a); !isAtt && a.Platform != nil {
			addedPlatforms[oci.PlatformKey(*a.Platform)] = true
		}
	}
	gone := map[digest.Digest]bool{}
	for _, e := range existing {
		if _, isAtt := oci.AttestationSubject(e); isAtt || e.Platform == nil || addedDigests[e.Digest] {
			continue
		}
		if addedPlatforms[oci.PlatformKey(*e.Platform)] {
			gone[e.Digest] = true
		}
	}
	for _, e := range existing {
		subject, isAtt := oci.AttestationSubject(e)
		if gone[e.Digest] || (isAtt && gone[subject] && !addedDigests[e.Digest]) {
			replaced = append(replaced, e)
			continue
		}
		kept = append(kept, e)
	}
	return kept, replaced
}

func formatPlatforms(plats []ocispec.Platform) string {
	s := make([]string, len(plats))
	for i, p := range plats {
		s[i] = platforms.Format(p)
	}
	return strings.Join(s, ", ")
}

func flatten(lists [][]ocispec.Descriptor) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func name(l Input) string {
	if l.Name != "" {
		return l.Name
	}
	return l.Desc.Digest.String()
}

// cloneDescriptor copies d deeply enough that changing the copy's annotations or platform
// leaves the caller's descriptor alone.
func cloneDescriptor(d ocispec.Descriptor) ocispec.Descriptor {
	d.Annotations = maps.Clone(d.Annotations)
	if d.Platform != nil {
		p := clonePlatform(*d.Platform)
		d.Platform = &p
	}
	return d
}

func clonePlatform(p ocispec.Platform) ocispec.Platform {
	if p.OSFeatures != nil {
		p.OSFeatures = append([]string(nil), p.OSFeatures...)
	}
	return p
}

// platformList names the platforms of ms, sorted, for a message.
func platformList(ms []ocispec.Descriptor) string {
	var out []string
	for _, d := range ms {
		if d.Platform != nil && !oci.IsAttestation(d) {
			out = append(out, platforms.Format(*d.Platform))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), ", ")
}
