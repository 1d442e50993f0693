package registry

import (
	"fmt"
	"io"
	"net/http"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/opencontainers/go-digest"
)

// maxErrorBody bounds the error body read for its codes and message: a
// proxy's HTML page fits, and drain reads as much to keep the connection.
const maxErrorBody = 64 << 10

// readBody reads the whole body of resp, the one way the client reads an
// answer into memory: a body over limit bytes is refused, never cut, and
// when want is set the bytes must hash to it.
func readBody(resp *http.Response, limit int64, want digest.Digest) ([]byte, error) {
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("answer of %d bytes is over the %d byte limit: %w", resp.ContentLength, limit, imagetools.ErrTooLarge)
	}
	dt, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(dt)) > limit {
		return nil, fmt.Errorf("answer over the %d byte limit: %w", limit, imagetools.ErrTooLarge)
	}
	if want == "" {
		return dt, nil
	}
	if err := want.Validate(); err != nil {
		return nil, err
	}
	if got := want.Algorithm().FromBytes(dt); got != want {
		return nil, fmt.Errorf("content hashes to %s, want %s: %w", got, want, imagetools.ErrDigestMismatch)
	}
	return dt, nil
}

// contentDigest is the digest a registry announces for its answer in
// Docker-Content-Digest; "" when it sends none or one that does not parse.
func contentDigest(resp *http.Response) digest.Digest {
	d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return ""
	}
	return d
}
