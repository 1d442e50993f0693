package placetest

import (
	"context"

	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Held is a Memory that holds the read of First back until Last is asked
// for: a test that wants reads made at once, not one after the other,
// hangs (until its context ends) where they are made in order.
type Held struct {
	*Memory
	First, Last ref.Location
	lastAsked   chan struct{}
}

// NewHeld returns m holding first back until last is asked for.
func NewHeld(m *Memory, first, last ref.Location) *Held {
	return &Held{Memory: m, First: first, Last: last, lastAsked: make(chan struct{})}
}

// Manifest implements place.Reader.
func (h *Held) Manifest(ctx context.Context, loc ref.Location) (ocispec.Descriptor, []byte, error) {
	switch loc {
	case h.Last:
		close(h.lastAsked)
	case h.First:
		select {
		case <-h.lastAsked:
		case <-ctx.Done():
			return ocispec.Descriptor{}, nil, ctx.Err()
		}
	}
	return h.Memory.Manifest(ctx, loc)
}

// Again holds First back once more, until Last is asked for again (for a
// test that reads them a second time).
func (h *Held) Again() { h.lastAsked = make(chan struct{}) }
