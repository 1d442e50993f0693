package imagetools

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// LayoutPrefix marks an OCI image layout folder in a location.
const LayoutPrefix = "oci-layout://"

var tagPattern = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)

// Location is where an image lives: a registry reference or an OCI image
// layout folder, each with an optional tag and digest.
type Location struct {
	// Name is the normalized repository name; nil for an OCI layout.
	Name reference.Named
	// Layout is the OCI layout folder; empty for a registry.
	Layout string
	Tag    string
	Digest digest.Digest
}

// ParseLocation parses "NAME[:TAG][@DIGEST]" (normalized: alpine is
// docker.io/library/alpine) or "oci-layout://PATH[:TAG][@DIGEST]".
func ParseLocation(s string) (Location, error) {
	if strings.HasPrefix(s, LayoutPrefix) {
		return parseLayoutLocation(s)
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Location{}, fmt.Errorf("invalid reference %q: %w (want NAME[:TAG][@DIGEST] or %sPATH[:TAG][@DIGEST])", s, referenceReason(s, err), LayoutPrefix)
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

// referenceReason says which part of a reference is wrong when the parser
// only says "invalid reference format"; err stays wrapped.
func referenceReason(s string, err error) error {
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
	case hasTag && !tagPattern.MatchString(tag):
		return fmt.Errorf("tag %q may hold up to 128 letters, digits, '_', '.' and '-', not first '.' or '-': %w", tag, err)
	}
	return err
}

func parseLayoutLocation(s string) (Location, error) {
	rest := strings.TrimPrefix(s, LayoutPrefix)
	var loc Location
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
		if !tagPattern.MatchString(loc.Tag) {
			return Location{}, fmt.Errorf("invalid OCI layout location %q: bad tag %q", s, loc.Tag)
		}
	}
	if rest == "" {
		return Location{}, fmt.Errorf("invalid OCI layout location %q: no path (want %sPATH[:TAG][@DIGEST])", s, LayoutPrefix)
	}
	loc.Layout = filepath.Clean(rest)
	return loc, nil
}

// IsLayout reports whether the location is an OCI layout folder.
func (l Location) IsLayout() bool { return l.Name == nil }

// Repository names the repository (or layout folder) without tag or digest.
func (l Location) Repository() string {
	if l.IsLayout() {
		// A folder whose name holds ":" gets a trailing slash, or it would
		// read back as PATH:TAG.
		if strings.Contains(filepath.Base(l.Layout), ":") {
			return LayoutPrefix + l.Layout + "/"
		}
		return LayoutPrefix + l.Layout
	}
	return l.Name.String()
}

// Host is the registry host of the location; empty for a layout.
func (l Location) Host() string {
	if l.IsLayout() {
		return ""
	}
	return reference.Domain(l.Name)
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

// registryRef is the string containerd's resolver takes.
func (l Location) registryRef() string {
	return l.String()
}
