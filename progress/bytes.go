package progress

import (
	"sync"
	"time"

	"github.com/moby/buildkit/client"
)

// byteUpdateInterval is how often a byte count is reported at most; the
// plain display throttles further (every 5% or 5s), the tty one redraws at
// this pace.
const byteUpdateInterval = 100 * time.Millisecond

// throttle decides when a byte count is reported: at most once per
// byteUpdateInterval. ByteCounter and Lines share it, so that every byte
// line of the project moves at one pace.
type throttle struct {
	last time.Time
}

// due reports whether a count may be sent at now, and if so notes it.
func (t *throttle) due(now time.Time) bool {
	if now.Sub(t.last) < byteUpdateInterval {
		return false
	}
	t.last = now
	return true
}

// ByteCounter reports the bytes of one transfer as a status line (its id,
// e.g. a blob digest, with "current / total") under the vertex of a
// SubLogger. It is an io.Writer: put it behind an io.TeeReader or
// io.MultiWriter on the copied stream, and call Done when the copy ends.
type ByteCounter struct {
	sub SubLogger

	mu      sync.Mutex
	st      client.VertexStatus
	started time.Time
	pace    throttle
}

// NewByteCounter starts the status line id under sub; total is the expected
// size in bytes, 0 when unknown.
func NewByteCounter(sub SubLogger, id string, total int64) *ByteCounter {
	now := time.Now()
	c := &ByteCounter{sub: sub, started: now, pace: throttle{last: now}}
	c.st = client.VertexStatus{ID: id, Total: total, Started: &c.started, Timestamp: now}
	sub.SetStatus(&c.st)
	return c
}

// Write counts len(p) bytes and reports them when the last report is at least
// 100ms old. It never fails.
func (c *ByteCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.Current += int64(len(p))
	if now := time.Now(); c.pace.due(now) {
		c.st.Timestamp = now
		c.sub.SetStatus(&c.st)
	}
	return len(p), nil
}

// Done reports the final count and marks the status line completed. Call it
// once, whether or not the transfer succeeded: the vertex shows the error.
func (c *ByteCounter) Done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.st.Timestamp = now
	c.st.Completed = &now
	c.sub.SetStatus(&c.st)
}
