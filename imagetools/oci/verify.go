package oci

import (
	"errors"
	"fmt"
	"io"

	"github.com/docker-imgx/docker-imgx/imagetools"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// verifyingReader hashes and counts what passes through it and checks both
// against the descriptor: on EOF, as soon as more than Size bytes arrive,
// and the digest as soon as Size bytes have.
type verifyingReader struct {
	r        io.Reader
	desc     ocispec.Descriptor
	digester digest.Digester
	n        int64
	err      error // sticky: once set, every Read returns it
}

// NewVerifyingReader returns a reader that yields r's bytes and checks them
// against desc: reading more than desc.Size bytes fails with imagetools.ErrSizeMismatch
// at once, the Read that completes desc.Size bytes of a wrong hash fails with
// imagetools.ErrDigestMismatch and yields none of them, and at EOF a short read
// fails with imagetools.ErrSizeMismatch. Refusing the last bytes keeps a
// wrong blob from reaching its destination whole: an upload fails with this
// error, not with the registry's answer to bytes it should never have had. A digest whose algorithm is unavailable or
// malformed fails the first Read. The error names the digest.
func NewVerifyingReader(r io.Reader, desc ocispec.Descriptor) io.Reader {
	v := &verifyingReader{r: r, desc: desc}
	if err := desc.Digest.Validate(); err != nil {
		v.err = fmt.Errorf("verify %q: %w", desc.Digest, err)
		return v
	}
	if desc.Size < 0 {
		v.err = fmt.Errorf("verify %s: negative size %d: %w", desc.Digest, desc.Size, imagetools.ErrSizeMismatch)
		return v
	}
	v.digester = desc.Digest.Algorithm().Digester()
	return v
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	// Read at most one byte past the expected end so an overlong blob is
	// noticed without consuming much of it.
	if remaining := v.desc.Size - v.n + 1; int64(len(p)) > remaining {
		p = p[:remaining]
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	if v.n > v.desc.Size {
		v.err = v.overlong()
		return 0, v.err
	}
	v.digester.Hash().Write(p[:n])
	if n > 0 && v.n == v.desc.Size && v.digester.Digest() != v.desc.Digest {
		v.err = v.wrongAtSize()
		return 0, v.err
	}
	if errors.Is(err, io.EOF) {
		v.err = v.check()
		return n, v.err
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

// wrongAtSize says why Size bytes that hash wrong are wrong: the blob goes
// on (one byte more is read to tell), or its bytes differ.
func (v *verifyingReader) wrongAtSize() error {
	var one [1]byte
	n, err := io.ReadFull(v.r, one[:])
	switch {
	case n > 0:
		return v.overlong()
	case err != nil && !errors.Is(err, io.EOF):
		return err
	}
	return fmt.Errorf("blob %s: content hashes to %s: %w", v.desc.Digest, v.digester.Digest(), imagetools.ErrDigestMismatch)
}

func (v *verifyingReader) overlong() error {
	return fmt.Errorf("blob %s: more than the expected %d bytes: %w", v.desc.Digest, v.desc.Size, imagetools.ErrSizeMismatch)
}

func (v *verifyingReader) check() error {
	if v.n != v.desc.Size {
		return fmt.Errorf("blob %s: got %d bytes, expected %d: %w", v.desc.Digest, v.n, v.desc.Size, imagetools.ErrSizeMismatch)
	}
	if got := v.digester.Digest(); got != v.desc.Digest {
		return fmt.Errorf("blob %s: content hashes to %s: %w", v.desc.Digest, got, imagetools.ErrDigestMismatch)
	}
	return io.EOF
}
