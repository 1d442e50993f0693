package create

import (
	"context"

	"github.com/docker-imgx/docker-imgx/imagetools/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// transferSlots bound the blob copies running at once over all targets: a
// large blob (over oci.SmallTransferSize) takes one of limit slots, a small
// one one of oci.MetadataLimit(limit)
// (with limit 1, both share the one slot).
type transferSlots struct {
	large, small chan struct{}
}

func newTransferSlots(limit int) *transferSlots {
	if limit == 1 {
		// One at a time, whatever the size.
		one := make(chan struct{}, 1)
		return &transferSlots{large: one, small: one}
	}
	return &transferSlots{large: make(chan struct{}, limit), small: make(chan struct{}, oci.MetadataLimit(limit))}
}

// acquire takes a slot for desc; the returned func gives it back.
func (s *transferSlots) acquire(ctx context.Context, desc ocispec.Descriptor) (func(), error) {
	slots := s.large
	if desc.Size <= oci.SmallTransferSize {
		slots = s.small
	}
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}
