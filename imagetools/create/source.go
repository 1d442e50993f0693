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

// sourceKind says how a create source was written.
type sourceKind int

const (
	// sourceRef is a registry reference (name[:tag][@digest]) or an oci-layout:// path.
	sourceRef sourceKind = iota + 1
	// sourceDigest is a bare digest; its repository is inferred from the other arguments.
	sourceDigest
	// sourceDescriptor is an OCI descriptor written as JSON; its repository is inferred too.
	sourceDescriptor
)

// String returns the kind's name as used in messages.
func (k sourceKind) String() string {
	switch k {
	case sourceRef:
		return "reference"
	case sourceDigest:
		return "digest"
	case sourceDescriptor:
		return "descriptor"
	default:
		return fmt.Sprintf("sourceKind(%d)", int(k))
	}
}

// sourceArg is one parsed argument of create, before anything is resolved.
type sourceArg struct {
	Kind sourceKind
	// Ref is the reference text for sourceRef, exactly as given (after trimming spaces).
	Ref string
	// Desc holds the digest for sourceDigest and the user's descriptor for sourceDescriptor.
	Desc ocispec.Descriptor
}

// needsRepository reports whether the source names no repository of its own, so one must be
// inferred with inferRepository.
func (s sourceArg) needsRepository() bool {
	return s.Kind == sourceDigest || s.Kind == sourceDescriptor
}

// parseSource parses one create source the way buildx does: a digest first, then a reference
// (registry or oci-layout://), then, only if the text starts with "{", descriptor JSON.
// Surrounding white space is ignored, so the contents of a -f file can be passed as they are.
func parseSource(s string) (sourceArg, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return sourceArg{}, fmt.Errorf("%w: empty source: valid sources are digests, references and descriptors", imagetools.ErrInvalidSource)
	}
	if dgst, err := digest.Parse(in); err == nil {
		return sourceArg{Kind: sourceDigest, Desc: ocispec.Descriptor{Digest: dgst}}, nil
	} else if strings.HasPrefix(in, string(digest.SHA256)+":") {
		return sourceArg{}, fmt.Errorf("%w: %q is not a valid digest: %w", imagetools.ErrInvalidSource, in, err)
	}
	// A place's location (and a bare file, which ref.Parse refuses with the
	// line that names archive://) is read by ref.Parse later.
	if isPlace, err := ref.PlaceForm(in); err != nil {
		return sourceArg{}, fmt.Errorf("%w: %w", imagetools.ErrInvalidSource, err)
	} else if isPlace {
		return sourceArg{Kind: sourceRef, Ref: in}, nil
	}
	_, refErr := reference.ParseNormalizedNamed(in)
	if refErr == nil {
		return sourceArg{Kind: sourceRef, Ref: in}, nil
	}
	if !strings.HasPrefix(in, "{") {
		return sourceArg{}, fmt.Errorf("%w: %q: %w (want NAME[:TAG][@DIGEST], %sPATH[:TAG][@DIGEST], a digest or descriptor JSON)", imagetools.ErrInvalidSource, in, ref.ExplainInvalid(in, refErr), ref.LayoutPrefix)
	}
	desc, err := sourceParseDescriptor(in)
	if err != nil {
		return sourceArg{}, err
	}
	return sourceArg{Kind: sourceDescriptor, Desc: desc}, nil
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

// inferRepository returns the repository a source without one (a bare digest or descriptor)
// belongs to: the single repository among repos, which holds the normalized repository names of
// every tag and reference source (an oci-layout's identity is its path). source is the argument as
// the user wrote it, for the message.
func inferRepository(source string, repos []string) (string, error) {
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
