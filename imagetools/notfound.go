package imagetools

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/containerd/errdefs"
)

// notFoundError names what is missing and where, and is errdefs.ErrNotFound
// to errors.Is (the registry's JSON body is not repeated to the user).
type notFoundError struct{ msg string }

func (e notFoundError) Error() string { return e.msg }
func (e notFoundError) Unwrap() error { return errdefs.ErrNotFound }

// errNotFoundAt reports that loc's tag or digest (or, with repoMissing, its
// whole repository) is not in its repository or layout; hint, when set, says
// what is there instead.
func errNotFoundAt(loc Location, repoMissing bool, hint string) error {
	loc = loc.TagOrLatest()
	var msg string
	switch {
	case repoMissing:
		msg = fmt.Sprintf("%s: repository %s not found", loc, loc.Repository())
	case loc.IsLayout() && loc.Digest == "":
		msg = fmt.Sprintf("%s: tag %q not found in OCI layout %s", loc, loc.Tag, loc.Repository())
	case loc.IsLayout():
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

// manifestStatusError is statusError for a manifest request: a 404 names the
// missing tag, digest or repository (from the registry's error code) instead
// of echoing the body.
func manifestStatusError(what string, loc Location, resp *http.Response) error {
	if resp.StatusCode != http.StatusNotFound {
		return statusError(what, resp)
	}
	var body struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	dt, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	repoMissing := json.Unmarshal(dt, &body) == nil && len(body.Errors) > 0 && body.Errors[0].Code == "NAME_UNKNOWN"
	return errNotFoundAt(loc, repoMissing, "")
}
