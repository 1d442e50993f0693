package imagetools

import "errors"

// Sentinel errors of the imagetools engine. They are wrapped with the input or reference that
// caused them, so test for them with errors.Is.
var (
	// ErrInvalidSource reports a create source that is neither a digest, a reference nor
	// descriptor JSON.
	ErrInvalidSource = errors.New("invalid source")

	// ErrNoRepository reports a bare digest or descriptor with no repository named anywhere.
	ErrNoRepository = errors.New("no repository specified")

	// ErrMultipleRepositories reports a bare digest or descriptor while several repositories
	// are named, so the one it belongs to is ambiguous.
	ErrMultipleRepositories = errors.New("multiple repositories specified")

	// ErrInvalidAnnotation reports an --annotation value that cannot be parsed or used.
	ErrInvalidAnnotation = errors.New("invalid annotation")

	// ErrDescriptorMismatch reports a user descriptor that contradicts the resolved one.
	ErrDescriptorMismatch = errors.New("descriptor mismatch")

	// ErrSchema1 reports a Docker schema 1 manifest, which no manifest list may reference.
	ErrSchema1 = errors.New("schema1 manifests are not allowed in manifest lists")

	// ErrConfigRequired reports an image manifest whose platform is unknown and whose config
	// was not provided.
	ErrConfigRequired = errors.New("image config required to read the platform")

	// ErrContentMismatch reports bytes that do not match the digest or size of their descriptor.
	ErrContentMismatch = errors.New("content does not match its descriptor")

	// ErrDockerListAnnotations reports annotations requested on a result that would be a Docker
	// manifest list, a format that cannot carry them.
	ErrDockerListAnnotations = errors.New("annotations are not supported for Docker manifest lists")

	// ErrNoPlatformMatch reports a platform filter that leaves nothing to combine.
	ErrNoPlatformMatch = errors.New("no manifest matches the requested platforms")

	// ErrNoSources reports a combine call without sources.
	ErrNoSources = errors.New("no sources specified")

	// ErrConflictingOptions reports options that ask for opposite results.
	ErrConflictingOptions = errors.New("conflicting options")
)
