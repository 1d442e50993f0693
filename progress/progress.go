package progress

import (
	"bytes"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// SubLogger reports what happens inside a vertex started by Wrap.
type SubLogger interface {
	// Wrap runs fn as a nested vertex named name, whose input is the
	// enclosing vertex.
	Wrap(name string, fn func() error) error
	// Log adds output to the vertex; stream is 1 for stdout, 2 for stderr.
	// A line is printed once its newline has been written.
	Log(stream int, dt []byte)
	// SetStatus reports the progress of one item of the vertex, such as the
	// bytes of a blob copied so far. Vertex is set to the enclosing vertex
	// and a zero Timestamp to now. progressui prints an item only once it
	// has a Started time.
	SetStatus(*client.VertexStatus)
}

// Wrap runs fn as one vertex named name: it marks the vertex started, hands
// fn a SubLogger for it, then marks it completed, with fn's error if fn
// failed, and returns that error.
func Wrap(name string, w Writer, fn func(SubLogger) error) error {
	vx := startVertex(w, name)
	return vx.complete(fn(&subLogger{w: w, vertex: vx.v.Digest}))
}

type subLogger struct {
	w      Writer
	vertex digest.Digest
}

func (s *subLogger) Wrap(name string, fn func() error) error {
	return startVertex(s.w, name, s.vertex).complete(fn())
}

// Log sends a copy of dt, as io.Writer callers reuse their buffers.
func (s *subLogger) Log(stream int, dt []byte) {
	s.w.Write(&client.SolveStatus{Logs: []*client.VertexLog{{
		Vertex:    s.vertex,
		Stream:    stream,
		Data:      bytes.Clone(dt),
		Timestamp: time.Now(),
	}}})
}

// SetStatus sends a copy of st: the display reads it after the call returns
// and callers reuse their status.
func (s *subLogger) SetStatus(st *client.VertexStatus) {
	c := *st
	c.Vertex = s.vertex
	if c.Timestamp.IsZero() {
		c.Timestamp = time.Now()
	}
	s.w.Write(&client.SolveStatus{Statuses: []*client.VertexStatus{&c}})
}
