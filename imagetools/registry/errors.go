package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	"github.com/docker-imgx/docker-imgx/internal/termtext"
)

// Error is a registry's answer with an error status to one API call. Every
// call of Client that gets an unexpected status returns one (wrapped with
// what the call was for); test for it with errors.As, never on its text.
// It unwraps to the errdefs class of its status or codes, so that
// errdefs.IsNotFound and its kin hold.
type Error struct {
	// Method and Host (host or host:port) and Path of the request that got
	// the answer (the last of its redirects). The query and any user info
	// are left out: they may hold signatures or credentials.
	Method, Host, Path string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Codes are the OCI error codes of its body (UNAUTHORIZED, DENIED,
	// MANIFEST_UNKNOWN, NAME_UNKNOWN, BLOB_UNKNOWN, ...), in order.
	Codes []string
	// Message is the registry's own words: the messages of its OCI error
	// body, else the body itself (an HTML page gives its title), made one
	// short line with control characters and terminal escapes removed.
	Message string
	// Challenge is the scheme of a 401's WWW-Authenticate header ("Bearer",
	// "Basic"); "" when the registry sent none: credentials are wanted, and
	// there is no token service to ask.
	Challenge string
}

// Error returns the status, the codes and the message: "404 Not Found:
// MANIFEST_UNKNOWN: manifest unknown". An answer that refuses credentials
// says what to do instead: "authentication required for HOST: run `docker
// login HOST` (401 Unauthorized: authentication required)", "denied: your
// credentials for HOST cannot push to REPO (403 Forbidden: ...)". Callers
// say which call failed.
func (e *Error) Error() string {
	s := e.status()
	if d := e.detail(); d != "" {
		s += ": " + d
	}
	if hint := e.authHint(); hint != "" {
		return hint + " (" + e.status() + e.messageSuffix() + ")"
	}
	return s
}

// authHint says what to do about an answer that refuses the request's
// credentials (a 401 or the code UNAUTHORIZED; the code DENIED), "" for
// any other answer.
func (e *Error) authHint() string {
	first := ""
	if len(e.Codes) > 0 {
		first = e.Codes[0]
	}
	host, login := e.Host, "docker login "+e.Host
	if host == registryEndpoint("docker.io") {
		host, login = "docker.io", "docker login"
	}
	switch {
	case first == "DENIED":
		action := "pull from"
		if e.Method != http.MethodGet && e.Method != http.MethodHead {
			action = "push to"
		}
		return fmt.Sprintf("denied: your credentials for %s cannot %s %s", host, action, repositoryOf(e.Path))
	case e.StatusCode == http.StatusUnauthorized || first == "UNAUTHORIZED":
		return fmt.Sprintf("authentication required for %s: run `%s`", host, login)
	}
	return ""
}

// messageSuffix is ": " and the registry's message, "" when it sent none.
func (e *Error) messageSuffix() string {
	if e.Message == "" {
		return ""
	}
	return ": " + e.Message
}

// repositoryOf is the repository of a registry API path
// (/v2/REPO/manifests/..., /blobs/..., /tags/list, /referrers/...), else
// the path itself.
func repositoryOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return path
	}
	for _, sep := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		if i := strings.LastIndex(rest, sep); i > 0 {
			return rest[:i]
		}
	}
	return rest
}

// Unwrap returns the errdefs class of the answer, nil when none fits:
// from its status, else from its first code.
func (e *Error) Unwrap() error {
	switch e.StatusCode {
	case http.StatusNotFound:
		return errdefs.ErrNotFound
	case http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case http.StatusTooManyRequests:
		return errdefs.ErrResourceExhausted
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return errdefs.ErrNotImplemented
	case http.StatusConflict:
		return errdefs.ErrConflict
	case http.StatusRequestTimeout, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return errdefs.ErrUnavailable
	}
	code := ""
	if len(e.Codes) > 0 {
		code = e.Codes[0]
	}
	switch {
	case strings.HasSuffix(code, "_UNKNOWN"):
		return errdefs.ErrNotFound
	case code == "UNAUTHORIZED":
		return errdefs.ErrUnauthenticated
	case code == "DENIED":
		return errdefs.ErrPermissionDenied
	case code == "TOOMANYREQUESTS":
		return errdefs.ErrResourceExhausted
	case code == "UNSUPPORTED":
		return errdefs.ErrNotImplemented
	case e.StatusCode >= 500:
		return errdefs.ErrInternal
	case e.StatusCode == http.StatusBadRequest:
		return errdefs.ErrInvalidArgument
	}
	return nil
}

// status is "404 Not Found": the reason phrase is Go's, not the server's.
func (e *Error) status() string {
	s := strconv.Itoa(e.StatusCode)
	if text := http.StatusText(e.StatusCode); text != "" {
		s += " " + text
	}
	return s
}

// detail is "CODE: message", either part "" when absent.
func (e *Error) detail() string {
	codes := strings.Join(e.Codes, ", ")
	switch {
	case codes == "":
		return e.Message
	case e.Message == "":
		return codes
	}
	return codes + ": " + e.Message
}

// newError reads the error body of resp (at most maxErrorBody bytes: a
// larger one is left out) into an Error.
func newError(resp *http.Response) *Error {
	e := &Error{StatusCode: resp.StatusCode}
	if req := resp.Request; req != nil && req.URL != nil {
		e.Method, e.Host, e.Path = req.Method, req.URL.Host, req.URL.Path
	}
	if resp.StatusCode == http.StatusUnauthorized {
		scheme, _, _ := strings.Cut(strings.TrimSpace(resp.Header.Get("WWW-Authenticate")), " ")
		e.Challenge = termtext.Line(scheme, maxBodyMessage)
	}
	if resp.Body == nil {
		return e
	}
	dt, err := readBody(resp, maxErrorBody, "")
	if err != nil {
		return e
	}
	e.Codes, e.Message = parseErrorBody(dt)
	return e
}

// parseErrorBody returns the codes and messages of an OCI error body
// ({"errors":[{"code":..., "message":...}]}), else the body as one line.
func parseErrorBody(dt []byte) (codes []string, message string) {
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(dt, &body) != nil || len(body.Errors) == 0 {
		return nil, oneLine(tokenServiceWords(dt))
	}
	var msgs []string
	for _, e := range body.Errors {
		if c := termtext.Line(e.Code, 64); c != "" {
			codes = append(codes, c)
		}
		if m := termtext.Line(e.Message, maxBodyMessage); m != "" {
			msgs = append(msgs, m)
		}
	}
	return codes, termtext.Line(strings.Join(msgs, "; "), maxBodyMessage)
}

// tokenServiceWords is the message of a token service's error body (OAuth's
// error_description, Docker Hub's details), else the body.
func tokenServiceWords(dt []byte) string {
	var body struct {
		Description string `json:"error_description"`
		Details     string `json:"details"`
	}
	if json.Unmarshal(dt, &body) == nil {
		for _, m := range []string{body.Description, body.Details} {
			if m != "" {
				return m
			}
		}
	}
	return string(dt)
}

// authorizeError is the error of an authorizer that could not answer
// host's challenge for req: a token service that refuses the credentials
// (401, 403) is an *Error of host, which says to log in there; anything
// else is told as transportError tells it.
func authorizeError(host string, req *http.Request, err error) error {
	var status remoteerrors.ErrUnexpectedStatus
	if !errors.As(err, &status) || (status.StatusCode != http.StatusUnauthorized && status.StatusCode != http.StatusForbidden) {
		return transportError(err)
	}
	e := &Error{Method: req.Method, Host: host, Path: req.URL.Path, StatusCode: status.StatusCode}
	e.Codes, e.Message = parseErrorBody(status.Body)
	return e
}

// statusError is the error for an unexpected answer to the call what: an
// *Error, wrapped.
func statusError(what string, resp *http.Response) error {
	return fmt.Errorf("%s: %w", what, newError(resp))
}

// noChallenge reports a 401 that says nothing of how to log in (no
// WWW-Authenticate header): credentials are needed, not a retry; its
// *Error says to log in.
func noChallenge(resp *http.Response) bool {
	return resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == ""
}

// manifestStatusError is statusError for a manifest request: a 404 names the
// missing tag, digest or repository (from the registry's error code) instead
// of echoing the body.
func manifestStatusError(what string, loc ref.Location, resp *http.Response) error {
	if resp.StatusCode != http.StatusNotFound {
		return statusError(what, resp)
	}
	e := newError(resp)
	repoMissing := len(e.Codes) > 0 && e.Codes[0] == "NAME_UNKNOWN"
	return explainedError{text: ref.NotFound(loc, repoMissing, ""), err: e}
}

// explainedError is an *Error told in other words.
type explainedError struct {
	text error
	err  *Error
}

func (e explainedError) Error() string   { return e.text.Error() }
func (e explainedError) Unwrap() []error { return []error{e.text, e.err} }

// maxBodyMessage bounds what an error echoes of a response body.
const maxBodyMessage = 200

// titlePattern finds an HTML page's title.
var titlePattern = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// oneLine turns an error body into one short line: an HTML page (a proxy's
// or a load balancer's) gives its title, anything else is sanitised.
func oneLine(body string) string {
	body = strings.TrimSpace(body)
	if strings.HasPrefix(body, "<") {
		if m := titlePattern.FindStringSubmatch(body); m != nil {
			body = "HTML page: " + m[1]
		} else {
			body = "an HTML page"
		}
	}
	return termtext.Line(body, maxBodyMessage)
}

// unreachableError is a request that never reached the server: the
// connection to host could not be made (refused, no route, no such host,
// timed out). Its text names the host once, with the reason in a word,
// not the URL: "cannot reach 127.0.0.1:1 (connection refused)".
type unreachableError struct {
	host, reason string
	err          error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach %s (%s)", e.host, e.reason)
}

// Unwrap keeps the network error's classes (syscall.ECONNREFUSED, a
// timeout, context.Canceled) for errors.Is.
func (e *unreachableError) Unwrap() error { return e.err }

// transportError is err, the failure of an HTTP request that got no
// answer, without net/http's *url.Error around it, whose text repeats the
// whole URL with its query (a redirect's signature): a connection that could
// not be made is an unreachableError; any other failure is told by method,
// URL without query, and cause.
func transportError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return ue.Err
	}
	if ph := (*plainHTTPError)(nil); errors.As(ue.Err, &ph) {
		return ph
	}
	if reason, ok := dialFailure(ue.Err); ok {
		return &unreachableError{host: u.Host, reason: reason, err: ue.Err}
	}
	return fmt.Errorf("%s %s: %w", strings.ToUpper(ue.Op), redactURL(u), ue.Err)
}

// dialFailure says in a few words why a connection could not be made,
// false when err is no failure to connect.
func dialFailure(err error) (string, bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return "", false
	}
	var dns *net.DNSError
	switch {
	case refused(op.Err):
		return "connection refused", true
	case errors.As(op.Err, &dns):
		if dns.IsNotFound {
			return "no such host", true
		}
		return "DNS: " + dns.Err, true
	case op.Timeout():
		return "timed out", true
	}
	var errno syscall.Errno
	if errors.As(op.Err, &errno) {
		return errno.Error(), true
	}
	return op.Err.Error(), true
}
