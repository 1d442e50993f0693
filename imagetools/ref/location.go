// Package ref parses and prints locations: where an image lives, as a user
// writes it (a registry reference, or a scheme such as oci-layout:// and a
// path), with an optional tag and digest, and tells a place's location
// from other text; no other package takes a place prefix apart.
package ref

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// SchemeLayout names the OCI image layout place (a folder).
const SchemeLayout = "oci-layout"

// LayoutPrefix marks an OCI image layout folder in a location.
const LayoutPrefix = SchemeLayout + "://"

// validTag reports whether s is a tag as the distribution spec writes it,
// [\w][\w.-]{0,127}. Checked by hand: compiled at start-up, the pattern's
// bounded repetition cost every run, even "version", some 1,700 allocations.
func validTag(s string) bool {
	if len(s) == 0 || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Location is where an image lives: a registry reference or a path under a
// scheme (an OCI image layout folder), each with an optional tag and digest.
// Only the place implementations and the router look at Scheme; everything
// else treats a location as opaque.
type Location struct {
	// Scheme is "" for a registry, else the kind of place Path is
	// (SchemeLayout, SchemeArchive, SchemeDaemon).
	Scheme string
	// Name is the normalized repository name of a registry location.
	Name reference.Named
	// Path is the folder (or file) of a location with a scheme; the
	// familiar image name for SchemeDaemon (whose Name is set too).
	Path string
	// Tag is the tag; for SchemeArchive, the NAME of the image in the tar.
	Tag    string
	Digest digest.Digest
}

// Parse parses "NAME[:TAG][@DIGEST]" (normalized: alpine is
// docker.io/library/alpine), "oci-layout://PATH[:TAG][@DIGEST]",
// "archive://FILE[:NAME][@DIGEST]" (or skopeo's docker-archive:FILE and
// oci-archive:FILE) or "docker-daemon://NAME[:TAG][@DIGEST]". A bare
// argument that names a file is refused with a line naming archive://.
func Parse(s string) (Location, error) {
	switch {
	case strings.HasPrefix(s, LayoutPrefix):
		return parseLayoutLocation(s)
	case strings.HasPrefix(s, ArchivePrefix):
		return parseArchiveLocation(s, ArchivePrefix)
	case strings.HasPrefix(s, DaemonPrefix):
		return parseDaemonLocation(s)
	}
	for _, a := range archiveAliases {
		if strings.HasPrefix(s, a) {
			return parseArchiveLocation(s, a)
		}
	}
	if namesFile(s) {
		return Location{}, fileRefused(s)
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Location{}, fmt.Errorf("invalid reference %q: %w (want NAME[:TAG][@DIGEST] or %sPATH[:TAG][@DIGEST])", s, ExplainInvalid(s, err), LayoutPrefix)
	}
	loc := Location{Name: reference.TrimNamed(named)}
	if t, ok := named.(reference.Tagged); ok {
		loc.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		loc.Digest = d.Digest()
	}
	return loc, nil
}

// ExplainInvalid says which part of a reference is wrong when the parser
// only says "invalid reference format"; err stays wrapped.
func ExplainInvalid(s string, err error) error {
	if err.Error() != reference.ErrReferenceInvalidFormat.Error() {
		return err
	}
	name, dgst, hasDigest := strings.Cut(s, "@")
	tag, hasTag := "", false
	if i := strings.LastIndex(name, ":"); i >= 0 && !strings.Contains(name[i+1:], "/") {
		name, tag, hasTag = name[:i], name[i+1:], true
	}
	switch {
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("empty: %w", err)
	case name == "":
		return fmt.Errorf("no repository name before %q: %w", s, err)
	case hasDigest && digest.Digest(dgst).Validate() != nil:
		return fmt.Errorf("digest %q is not sha256: and 64 hex digits: %w", dgst, err)
	case hasTag && !validTag(tag):
		return fmt.Errorf("tag %q may hold up to 128 letters, digits, '_', '.' and '-', not first '.' or '-': %w", tag, err)
	}
	return err
}

func parseLayoutLocation(s string) (Location, error) {
	rest := strings.TrimPrefix(s, LayoutPrefix)
	loc := Location{Scheme: SchemeLayout}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		d, err := digest.Parse(rest[i+1:])
		if err != nil {
			return Location{}, fmt.Errorf("invalid OCI layout location %q: bad digest %q: %w", s, rest[i+1:], err)
		}
		loc.Digest = d
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.ContainsAny(rest[i+1:], `/\`) {
		loc.Tag = rest[i+1:]
		rest = rest[:i]
		if !validTag(loc.Tag) {
			return Location{}, fmt.Errorf("invalid OCI layout location %q: bad tag %q", s, loc.Tag)
		}
	}
	if rest == "" {
		return Location{}, fmt.Errorf("invalid OCI layout location %q: no path (want %sPATH[:TAG][@DIGEST])", s, LayoutPrefix)
	}
	loc.Path = filepath.Clean(rest)
	return loc, nil
}

// Repository names the repository (or layout folder) without tag or digest.
func (l Location) Repository() string {
	if l.Scheme != "" {
		// A folder whose name holds ":" gets a trailing slash, or it would
		// read back as PATH:TAG.
		if strings.Contains(filepath.Base(l.Path), ":") {
			return l.Scheme + "://" + l.Path + "/"
		}
		return l.Scheme + "://" + l.Path
	}
	return l.Name.String()
}

// Host is the registry host of the location; empty for other places.
func (l Location) Host() string {
	if l.Name == nil {
		return ""
	}
	return reference.Domain(l.Name)
}

// PullRepository is the repository a Docker engine pulls l's image from
// (docker pull's NAME, fully qualified); "" where l is not in a registry.
func (l Location) PullRepository() string {
	if l.Scheme != "" || l.Name == nil {
		return ""
	}
	return l.Name.String()
}

// distributionSourcePrefix starts the annotation containerd keeps on an
// image pulled from a registry, so that it can fetch missing content later
// (docker save writes it into index.json).
const distributionSourcePrefix = "containerd.io/distribution.source."

// DistributionSource returns the annotation containerd, and so Docker's
// containerd image store, keeps on an image pulled from l:
// "containerd.io/distribution.source.HOST" (the host name without its port,
// as containerd writes it) and the repository's path on that host; "" for
// places that are not registries.
func (l Location) DistributionSource() (key, value string) {
	if l.Name == nil {
		return "", ""
	}
	host := (&url.URL{Host: reference.Domain(l.Name)}).Hostname()
	return distributionSourcePrefix + host, reference.Path(l.Name)
}

// ImageName is the fully qualified name an image read from l goes by in a
// tar: REPOSITORY:TAG, REPOSITORY@DIGEST, or REPOSITORY:latest with neither;
// "" where the place has no repository names (an OCI layout).
func (l Location) ImageName() string {
	switch {
	case l.Name == nil:
		return ""
	case l.Tag != "":
		return l.Name.String() + ":" + l.Tag
	case l.Digest != "":
		return l.Name.String() + "@" + l.Digest.String()
	default:
		return l.Name.String() + ":latest"
	}
}

// String is the location as a user writes it.
func (l Location) String() string {
	s := l.Repository()
	if l.Tag != "" {
		s += ":" + l.Tag
	}
	if l.Digest != "" {
		s += "@" + l.Digest.String()
	}
	return s
}

// WithDigest returns the location pinned to a digest, tag dropped.
func (l Location) WithDigest(d digest.Digest) Location {
	l.Tag, l.Digest = "", d
	return l
}

// WithTag returns the location with a tag and no digest.
func (l Location) WithTag(tag string) Location {
	l.Tag, l.Digest = tag, ""
	return l
}

// TagOrLatest returns the location tagged "latest" when it has neither tag
// nor digest, as docker push does.
func (l Location) TagOrLatest() Location {
	if l.Tag == "" && l.Digest == "" {
		l.Tag = "latest"
	}
	return l
}

// NamesImages reports whether the place at l can hold many images apart
// by full names: an image tar (NAME:TAG in the tar), an OCI layout
// (io.containerd.image.name in index.json, beside its tags).
func (l Location) NamesImages() bool {
	return l.Scheme == SchemeArchive || l.Scheme == SchemeLayout
}
