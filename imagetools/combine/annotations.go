package combine

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/containerd/platforms"
	"github.com/docker-imgx/docker-imgx/imagetools"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationTarget says where in the created index an annotation goes.
type AnnotationTarget int

const (
	// AnnotationIndex annotates the index itself ("index:" or no prefix).
	AnnotationIndex AnnotationTarget = iota + 1
	// AnnotationManifestDescriptor annotates the index's descriptors of its manifests
	// ("manifest-descriptor:"), optionally only those of one platform.
	AnnotationManifestDescriptor
)

// Annotation type prefixes as buildx spells them.
const (
	annotationTypeIndex              = "index"
	annotationTypeIndexDescriptor    = "index-descriptor"
	annotationTypeManifest           = "manifest"
	annotationTypeManifestDescriptor = "manifest-descriptor"
)

// annotationValidForms is appended to parse errors so the user sees what is accepted.
const annotationValidForms = `valid forms: KEY=VALUE, index:KEY=VALUE, manifest-descriptor:KEY=VALUE, manifest-descriptor[OS/ARCH[/VARIANT]]:KEY=VALUE`

// Annotation is one parsed --annotation value of create.
type Annotation struct {
	Target AnnotationTarget
	// Platform, for AnnotationManifestDescriptor only, limits the annotation to descriptors of
	// that platform. It is normalized (platforms.Normalize), so linux/arm64 and linux/arm64/v8
	// are the same platform.
	Platform *ocispec.Platform
	Key      string
	Value    string
}

// String formats the annotation so that parseAnnotation gives it back.
func (a Annotation) String() string {
	typ := annotationTypeIndex
	if a.Target == AnnotationManifestDescriptor {
		typ = annotationTypeManifestDescriptor
		if a.Platform != nil {
			typ += "[" + platforms.Format(*a.Platform) + "]"
		}
	}
	return typ + ":" + a.Key + "=" + a.Value
}

// appliesTo reports whether a manifest-descriptor annotation goes on a descriptor of platform p.
// Both sides are compared normalized on OS, architecture and variant: a platform-specific
// annotation never goes on a descriptor without a platform.
func (a Annotation) appliesTo(p *ocispec.Platform) bool {
	if a.Platform == nil {
		return true
	}
	if p == nil {
		return false
	}
	return platforms.Format(platforms.Normalize(*a.Platform)) == platforms.Format(platforms.Normalize(*p))
}

// annotationTypeRe matches a type with an optional platform in square brackets, as buildx does.
var annotationTypeRe = regexp.MustCompile(`^([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?$`)

// ParseAnnotations parses every --annotation value in order; empty values are skipped, as buildx
// skips them.
func ParseAnnotations(in []string) ([]Annotation, error) {
	var out []Annotation
	for _, s := range in {
		if s == "" {
			continue
		}
		anns, err := parseAnnotation(s)
		if err != nil {
			return nil, err
		}
		out = append(out, anns...)
	}
	return out, nil
}

// parseAnnotation parses one --annotation value: [TYPE[,TYPE...]:]KEY=VALUE where TYPE is index
// or manifest-descriptor, the latter optionally followed by [OS/ARCH[/VARIANT]]. Without a type
// the annotation goes on the index. Several comma-separated types give one Annotation each.
func parseAnnotation(s string) ([]Annotation, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return nil, fmt.Errorf("%w %q: expected KEY=VALUE; %s", imagetools.ErrInvalidAnnotation, s, annotationValidForms)
	}
	types, key, typed := strings.Cut(k, ":")
	if !typed {
		key, types = types, annotationTypeIndex
	}
	if key == "" || strings.ContainsFunc(key, unicode.IsSpace) {
		return nil, fmt.Errorf("%w %q: the key must be non-empty and contain no white space; %s", imagetools.ErrInvalidAnnotation, s, annotationValidForms)
	}
	var out []Annotation
	for _, typeAndPlatform := range strings.Split(types, ",") {
		a, err := annotationParseType(s, typeAndPlatform)
		if err != nil {
			return nil, err
		}
		a.Key, a.Value = key, v
		out = append(out, a)
	}
	return out, nil
}

// annotationParseType parses one TYPE[PLATFORM] of the value s.
func annotationParseType(s, typeAndPlatform string) (Annotation, error) {
	groups := annotationTypeRe.FindStringSubmatch(typeAndPlatform)
	if groups == nil {
		return Annotation{}, fmt.Errorf("%w %q: bad type %q; %s", imagetools.ErrInvalidAnnotation, s, typeAndPlatform, annotationValidForms)
	}
	typ, plat := groups[1], groups[2]
	switch typ {
	case annotationTypeIndex:
		if plat != "" {
			return Annotation{}, fmt.Errorf("%w %q: a platform applies only to manifest-descriptor annotations; %s", imagetools.ErrInvalidAnnotation, s, annotationValidForms)
		}
		return Annotation{Target: AnnotationIndex}, nil
	case annotationTypeManifestDescriptor:
		a := Annotation{Target: AnnotationManifestDescriptor}
		if plat != "" {
			p, err := annotationParsePlatform(plat)
			if err != nil {
				return Annotation{}, fmt.Errorf("%w %q: %w; %s", imagetools.ErrInvalidAnnotation, s, err, annotationValidForms)
			}
			a.Platform = &p
		}
		return a, nil
	case annotationTypeManifest:
		return Annotation{}, fmt.Errorf("%w %q: manifest annotations are not supported by create because it does not modify manifests; use \"index:\" or \"manifest-descriptor:\" instead", imagetools.ErrInvalidAnnotation, s)
	case annotationTypeIndexDescriptor:
		return Annotation{}, fmt.Errorf("%w %q: index-descriptor annotations are invalid while creating an image; use \"index:\" or \"manifest-descriptor:\" instead", imagetools.ErrInvalidAnnotation, s)
	default:
		return Annotation{}, fmt.Errorf("%w %q: unknown type %q; %s", imagetools.ErrInvalidAnnotation, s, typ, annotationValidForms)
	}
}

// annotationParsePlatform parses OS/ARCH[/VARIANT]. A lone OS or architecture is refused because
// containerd would complete it from the host, and the result must not depend on the machine.
func annotationParsePlatform(s string) (ocispec.Platform, error) {
	if !strings.Contains(s, "/") {
		return ocispec.Platform{}, fmt.Errorf("platform %q must be OS/ARCH[/VARIANT]", s)
	}
	p, err := platforms.Parse(s)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("platform %q: %w", s, err)
	}
	return platforms.Normalize(p), nil
}
