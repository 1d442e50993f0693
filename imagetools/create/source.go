package create

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// SourceKind says how a create source was written.
type SourceKind int

const (
	// SourceRef is a registry reference (name[:tag][@digest]) or an oci-layout:// path.
	SourceRef SourceKind = iota + 1
	// SourceDigest is a bare digest; its repository is inferred from the other arguments.
	SourceDigest
	// SourceDescriptor is an OCI descriptor written as JSON; its repository is inferred too.
	SourceDescriptor
)

// String returns the kind's name as used in messages.
func (k SourceKind) String() string {
	switch k {
	case SourceRef:
		return "reference"
	case SourceDigest:
		return "digest"
	case SourceDescriptor:
		return "descriptor"
	default:
		return fmt.Sprintf("SourceKind(%d)", int(k))
	}
}

// Source is one parsed argument of create, before anything is resolved.
type Source struct {
	Kind SourceKind
	// Ref is the reference text for SourceRef, exactly as given (after trimming spaces).
	Ref string
	// Desc holds the digest for SourceDigest and the user's descriptor for SourceDescriptor.
	Desc ocispec.Descriptor
}

// NeedsRepository reports whether the source names no repository of its own, so one must be
// inferred with InferRepository.
func (s Source) NeedsRepository() bool {
	return s.Kind == SourceDigest || s.Kind == SourceDescriptor
}

// ParseSource parses one create source the way buildx does: a digest first, then a reference
// (registry or oci-layout://), then, only if the text starts with "{", descriptor JSON.
// Surrounding white space is ignored, so the contents of a -f file can be passed as they are.
func ParseSource(s string) (Source, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return Source{}, fmt.Errorf("%w: empty source: valid sources are digests, references and descriptors", imagetools.ErrInvalidSource)
	}
	if dgst, err := digest.Parse(in); err == nil {
		return Source{Kind: SourceDigest, Desc: ocispec.Descriptor{Digest: dgst}}, nil
	} else if strings.HasPrefix(in, string(digest.SHA256)+":") {
		return Source{}, fmt.Errorf("%w: %q is not a valid digest: %w", imagetools.ErrInvalidSource, in, err)
	}
	// A place's location (and a bare file, which ref.Parse refuses with the
	// line that names archive://) is read by ref.Parse later.
	if isPlace, err := ref.PlaceForm(in); err != nil {
		return Source{}, fmt.Errorf("%w: %w", imagetools.ErrInvalidSource, err)
	} else if isPlace {
		return Source{Kind: SourceRef, Ref: in}, nil
	}
	_, refErr := reference.ParseNormalizedNamed(in)
	if refErr == nil {
		return Source{Kind: SourceRef, Ref: in}, nil
	}
	if !strings.HasPrefix(in, "{") {
		return Source{}, fmt.Errorf("%w: %q: %w (want NAME[:TAG][@DIGEST], %sPATH[:TAG][@DIGEST], a digest or descriptor JSON)", imagetools.ErrInvalidSource, in, ref.ExplainInvalid(in, refErr), ref.LayoutPrefix)
	}
	desc, err := sourceParseDescriptor(in)
	if err != nil {
		return Source{}, err
	}
	return Source{Kind: SourceDescriptor, Desc: desc}, nil
}

// descriptorForm is the shape of a descriptor source, for messages.
const descriptorForm = `{"mediaType":"...","digest":"sha256:...","size":N}`

// sourceParseDescriptor decodes descriptor JSON and checks the fields create cannot do without.
func sourceParseDescriptor(in string) (ocispec.Descriptor, error) {
	var desc ocispec.Descriptor
	if err := json.Unmarshal([]byte(in), &desc); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%w: descriptor %s is not valid JSON: %w (want %s)", imagetools.ErrInvalidSource, in, err, descriptorForm)
	}
	var missing []string
	if desc.MediaType == "" {
		missing = append(missing, "mediaType")
	}
	if desc.Digest == "" {
		missing = append(missing, "digest")
	}
	if desc.Size <= 0 {
		missing = append(missing, "size")
	}
	if len(missing) > 0 {
		return ocispec.Descriptor{}, fmt.Errorf("%w: descriptor %s: missing %s (want %s)", imagetools.ErrInvalidSource, in, strings.Join(missing, ", "), descriptorForm)
	}
	if err := desc.Digest.Validate(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%w: descriptor %s: digest: %w", imagetools.ErrInvalidSource, in, err)
	}
	return desc, nil
}

// InferRepository returns the repository a source without one (a bare digest or descriptor)
// belongs to: the single repository among repos, which holds the normalized repository names of
// every tag and reference source (an oci-layout's identity is its path). source is the argument as
// the user wrote it, for the message.
func InferRepository(source string, repos []string) (string, error) {
	uniq := slices.Compact(slices.Sorted(slices.Values(repos)))
	uniq = slices.DeleteFunc(uniq, func(r string) bool { return r == "" })
	switch len(uniq) {
	case 0:
		return "", fmt.Errorf("%w, cannot infer repository for %q", imagetools.ErrNoRepository, source)
	case 1:
		return uniq[0], nil
	default:
		return "", fmt.Errorf("%w, cannot infer repository for %q among %s: write it as REPOSITORY@DIGEST", imagetools.ErrMultipleRepositories, source, strings.Join(uniq, ", "))
	}
}
