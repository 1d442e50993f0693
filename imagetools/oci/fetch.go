package oci

import (
	"context"
	"fmt"
	"io"

	"github.com/containerd/containerd/v2/core/remotes"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ReadBlob reads a manifest, index, config or other small blob whole
// through f, refusing one over its readLimit before any request, and checks
// its size and digest: the one way the core reads content into memory.
func ReadBlob(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	if err := CheckReadable(desc); err != nil {
		return nil, err
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	dt, err := io.ReadAll(NewVerifyingReader(rc, desc))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	return dt, nil
}

// CheckReadable refuses, before any request, a descriptor ReadBlob would
// refuse: a malformed digest, a negative size, or a size over readLimit.
func CheckReadable(desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("invalid digest %q: %w", desc.Digest, err)
	}
	if desc.Size < 0 {
		return fmt.Errorf("%s: negative size %d", desc.Digest, desc.Size)
	}
	if limit := readLimit(desc); desc.Size > limit {
		return fmt.Errorf("%s is %d bytes, over the %d byte limit of what is read whole", desc.Digest, desc.Size, limit)
	}
	return nil
}
