// Package imagetools is the core of docker-imgx, one package per concern
// (docs/design.md draws them):
//
//   - ref: locations as users write them (leaf)
//   - oci: the OCI rules, written once (leaf)
//   - place: the place interface that every location kind implements, and
//     the router that picks the implementation for a location
//   - registry, ocilayout, archive, daemon: the places (registries, OCI
//     layout folders, image tars, the Docker engine)
//   - combine: descriptors and manifests in, index bytes out (pure)
//   - create, inspect, export: the commands' work, written against place
//
// This package holds only the sentinel errors they share, so that every one
// of them may import it.
package imagetools

import "errors"

// Sentinel errors of the core (imagetools). They are wrapped with the input or reference that
// caused them, so test for them with errors.Is.
var (
	// ErrIncompleteSource reports a source index whose place lacks the
	// manifests of some of its platforms (a single-platform export).
	ErrIncompleteSource = errors.New("incomplete source")

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

	// ErrTagChanged reports a tag that another push moved between the read
	// a result was computed from and the moment the tags were to move.
	ErrTagChanged = errors.New("tag changed since it was read")

	// ErrConflictingOptions reports options that ask for opposite results.
	ErrConflictingOptions = errors.New("conflicting options")

	// ErrDigestMismatch reports content whose digest is not its descriptor's.
	ErrDigestMismatch = errors.New("digest mismatch")

	// ErrSizeMismatch reports content longer or shorter than its descriptor says.
	ErrSizeMismatch = errors.New("size mismatch")

	// ErrTooLarge reports content or an answer over the size limit of what
	// is read whole: refused, never cut.
	ErrTooLarge = errors.New("too large")

	// ErrRetriesExhausted reports a request that failed on every attempt.
	ErrRetriesExhausted = errors.New("retries exhausted")

	// ErrStalled reports a registry that sent nothing for the stall timeout.
	ErrStalled = errors.New("registry stalled")

	// ErrEnginePlatform reports a platform the Docker engine cannot run.
	ErrEnginePlatform = errors.New("platform not supported by the Docker engine")

	// ErrNotLoaded reports an image or name the Docker engine's answer does
	// not report as loaded.
	ErrNotLoaded = errors.New("not reported loaded by the Docker engine")

	// ErrReferrers reports a failure to list the referrers of a copied
	// manifest (the command layer says how to skip them).
	ErrReferrers = errors.New("cannot list referrers")

	// ErrSingleImagePlatform reports a platform asked of a single image (not
	// an index) of another platform: a platform picks from an index only.
	ErrSingleImagePlatform = errors.New("a platform picks from an index only")

	// ErrNoTarget reports a create with nowhere to push (the command layer
	// names the flag).
	ErrNoTarget = errors.New("no target given")

	// ErrReadOnly reports a write to a place that is only read from (an
	// image tar, the Docker engine); the router refuses it.
	ErrReadOnly = errors.New("that place is only read from")
)
