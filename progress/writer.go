package progress

import (
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/identity"
	digest "github.com/opencontainers/go-digest"
)

// Writer receives status updates; it is what core code is handed. A
// *Printer is a Writer, and so is Discard.
type Writer interface {
	Write(*client.SolveStatus)
}

// WriterFunc adapts a function to a Writer.
type WriterFunc func(*client.SolveStatus)

// Write calls f(s).
func (f WriterFunc) Write(s *client.SolveStatus) { f(s) }

// Discard returns a Writer that drops every update, for library callers that
// want no progress and for tests.
func Discard() Writer {
	return WriterFunc(func(*client.SolveStatus) {})
}

// newVertexDigest returns an identity for a vertex that stays the same for
// every update of that vertex and differs from every other vertex, including
// ones with the same name.
func newVertexDigest(name string) digest.Digest {
	return digest.FromString(name + "\x00" + identity.NewID())
}

// vertex is a started vertex whose completion is still to be reported.
type vertex struct {
	w       Writer
	v       client.Vertex
	started time.Time
}

// startVertex writes a vertex named name, started now, whose inputs are
// inputs (the parent vertex for nested steps).
func startVertex(w Writer, name string, inputs ...digest.Digest) *vertex {
	now := time.Now()
	vx := &vertex{w: w, started: now}
	vx.v = client.Vertex{
		Digest:  newVertexDigest(name),
		Inputs:  inputs,
		Name:    name,
		Started: &vx.started,
	}
	v := vx.v
	w.Write(&client.SolveStatus{Vertexes: []*client.Vertex{&v}})
	return vx
}

// complete writes the vertex again, completed now, failed when err is not nil,
// and returns err.
func (vx *vertex) complete(err error) error {
	now := time.Now()
	v := vx.v
	v.Completed = &now
	if err != nil {
		v.Error = err.Error()
	}
	vx.w.Write(&client.SolveStatus{Vertexes: []*client.Vertex{&v}})
	return err
}

// OneOff starts a vertex named name now and returns the function that
// completes it: called with the step's error (nil on success), it marks the
// vertex done or failed and returns that error, like BuildKit's
// oneOffProgress:
//
//	done := progress.OneOff(w, "resolving "+ref)
//	desc, err := resolve(ctx, ref)
//	if err := done(err); err != nil { ... }
func OneOff(w Writer, name string) func(err error) error {
	return startVertex(w, name).complete
}
