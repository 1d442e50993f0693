package ref

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// notFoundError names what is missing and where, and is errdefs.ErrNotFound
// to errors.Is (a registry's JSON body is not repeated to the user).
type notFoundError struct{ msg string }

func (e notFoundError) Error() string { return e.msg }
func (e notFoundError) Unwrap() error { return errdefs.ErrNotFound }

// NotFound reports that loc's tag or digest (or, with repoMissing, its whole
// repository) is not in its repository or layout; hint, when set, says what
// is there instead. It is errdefs.ErrNotFound to errors.Is.
func NotFound(loc Location, repoMissing bool, hint string) error {
	loc = loc.TagOrLatest()
	var msg string
	switch {
	case repoMissing:
		msg = fmt.Sprintf("%s: repository %s not found", loc, loc.Repository())
	case loc.Scheme == SchemeLayout && loc.Digest == "":
		msg = fmt.Sprintf("%s: tag %q not found in OCI layout %s", loc, loc.Tag, loc.Repository())
	case loc.Scheme == SchemeLayout:
		msg = fmt.Sprintf("%s: manifest not found in OCI layout %s", loc, loc.Repository())
	case loc.Digest == "":
		msg = fmt.Sprintf("%s: tag %q not found in repository %s", loc, loc.Tag, loc.Repository())
	default:
		msg = fmt.Sprintf("%s: manifest not found in repository %s", loc, loc.Repository())
	}
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return notFoundError{msg: msg}
}
