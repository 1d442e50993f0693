package ref

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// SchemeArchive names the image tar place: a file holding an OCI layout
// view (index.json, blobs/) or a Docker image view (manifest.json), plain,
// gzip- or zstd-compressed. Its locations carry the image's NAME in Tag.
const SchemeArchive = "archive"

// ArchivePrefix marks an image tar in a location.
const ArchivePrefix = SchemeArchive + "://"

// SchemeDaemon names the Docker engine place: an image of the engine of
// the current Docker context, read through its image-save API.
const SchemeDaemon = "docker-daemon"

// DaemonPrefix marks an image of the Docker engine in a location.
const DaemonPrefix = SchemeDaemon + "://"

// archiveAliases are skopeo's spellings of an image tar, read as archive://.
var archiveAliases = []string{"docker-archive:", "oci-archive:"}

// hasScheme reports whether s names a place by scheme (oci-layout://,
// archive://, docker-daemon://, or an alias) rather than a registry.
func hasScheme(s string) bool {
	for _, p := range append([]string{LayoutPrefix, ArchivePrefix, DaemonPrefix}, archiveAliases...) {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// namesFile reports whether s, written without a scheme, names a regular
// file here: such an argument is never looked up in a registry.
func namesFile(s string) bool {
	if s == "" || hasScheme(s) {
		return false
	}
	fi, err := os.Stat(s)
	return err == nil && fi.Mode().IsRegular()
}

// fileRefused is the one line for a bare argument that names a file.
func fileRefused(s string) error {
	return fmt.Errorf("%q is a file here, not a registry image: write %s%s to read the image tar (or a full reference such as docker.io/library/NAME to mean the registry)", s, ArchivePrefix, s)
}

// parseArchiveLocation parses "archive://FILE[:NAME][@DIGEST]". FILE is the
// whole text when that names a file; else it ends at the first ':' before
// which the text names a file, else at the first ':' (a NAME may hold '/'
// and ':': registry:5000/app:1).
func parseArchiveLocation(s, prefix string) (Location, error) {
	rest := strings.TrimPrefix(s, prefix)
	loc := Location{Scheme: SchemeArchive}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		if d, err := digest.Parse(rest[i+1:]); err == nil {
			loc.Digest = d
			rest = rest[:i]
		} else if strings.HasPrefix(rest[i+1:], "sha") {
			return Location{}, fmt.Errorf("invalid image tar location %q: bad digest %q: %w", s, rest[i+1:], err)
		}
	}
	if !namesFile(rest) {
		cut := strings.Index(rest, ":")
		for i := cut; i >= 0; {
			if namesFile(rest[:i]) {
				cut = i
				break
			}
			j := strings.Index(rest[i+1:], ":")
			if j < 0 {
				break
			}
			i += j + 1
		}
		if cut >= 0 {
			loc.Tag = rest[cut+1:]
			rest = rest[:cut]
			if loc.Tag == "" {
				return Location{}, fmt.Errorf("invalid image tar location %q: empty NAME after ':' (want %sFILE[:NAME][@DIGEST])", s, ArchivePrefix)
			}
		}
	}
	if rest == "" {
		return Location{}, fmt.Errorf("invalid image tar location %q: no file (want %sFILE[:NAME][@DIGEST])", s, ArchivePrefix)
	}
	loc.Path = filepath.Clean(rest)
	return loc, nil
}

// parseDaemonLocation parses "docker-daemon://NAME[:TAG][@DIGEST]" or
// "docker-daemon://IMAGE-ID": an image of the Docker engine.
func parseDaemonLocation(s string) (Location, error) {
	rest := strings.TrimPrefix(s, DaemonPrefix)
	if rest == "" {
		return Location{}, fmt.Errorf("invalid Docker engine location %q: no image (want %sNAME[:TAG][@DIGEST])", s, DaemonPrefix)
	}
	named, err := reference.ParseNormalizedNamed(rest)
	if err != nil {
		return Location{}, fmt.Errorf("invalid Docker engine location %q: %w (want %sNAME[:TAG][@DIGEST])", s, ExplainInvalid(rest, err), DaemonPrefix)
	}
	loc := Location{Scheme: SchemeDaemon, Name: reference.TrimNamed(named), Path: reference.FamiliarName(named)}
	if t, ok := named.(reference.Tagged); ok {
		loc.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		loc.Digest = d.Digest()
	}
	return loc, nil
}

// EngineRef is the reference the Docker engine knows the image of a
// docker-daemon:// location by: NAME:TAG, NAME@DIGEST, or NAME:latest.
func (l Location) EngineRef() string {
	s := l.Path
	switch {
	case l.Tag != "" && l.Digest != "":
		return s + ":" + l.Tag + "@" + l.Digest.String()
	case l.Digest != "":
		return s + "@" + l.Digest.String()
	case l.Tag != "":
		return s + ":" + l.Tag
	}
	return s + ":latest"
}

// PlaceForm reports whether s is written as the location of a place other
// than a registry: behind a place's prefix (oci-layout://, archive://,
// docker-daemon:// or an alias) or, bare, naming a file (which Parse refuses
// with the line that names archive://). Such text is never a registry
// reference, a digest or a descriptor; Parse reads the rest. An OCI layout
// prefix with no folder after it is refused here already.
func PlaceForm(s string) (bool, error) {
	if s == LayoutPrefix {
		return false, fmt.Errorf("%q names no directory: expected %sPATH[:TAG][@DIGEST]", s, LayoutPrefix)
	}
	return hasScheme(s) || namesFile(s), nil
}
