package progress

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/buildkit/client"
)

// Lines are the status lines under one vertex, as BuildKit's exporters
// write them: lines that span part of the work (Start; Done completes
// them), one-off lines, and byte counts paced as ByteCounter's are. Export,
// load and copy report their steps through it; it is safe for concurrent use.
type Lines struct {
	sub SubLogger

	mu    sync.Mutex
	open  []*client.VertexStatus // spanning lines, in the order they started
	bytes map[string]*byteLine
}

// byteLine is one byte-count line and its pace.
type byteLine struct {
	st   client.VertexStatus
	pace throttle
}

// NewLines reports under sub.
func NewLines(sub SubLogger) *Lines {
	return &Lines{sub: sub, bytes: map[string]*byteLine{}}
}

// Start starts the spanning line id, unless it has started already.
func (l *Lines) Start(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if slices.ContainsFunc(l.open, func(st *client.VertexStatus) bool { return st.ID == id }) {
		return
	}
	now := time.Now()
	st := &client.VertexStatus{ID: id, Started: &now, Timestamp: now}
	l.open = append(l.open, st)
	l.sub.SetStatus(st)
}

// OneOff sends a line that starts and completes now.
func (l *Lines) OneOff(id string) {
	now := time.Now()
	l.sub.SetStatus(&client.VertexStatus{ID: id, Started: &now, Completed: &now, Timestamp: now})
}

// Bytes reports current of total bytes on line id: the first report starts
// the line, current >= total completes it, and the counts between are sent
// at most every 100ms.
func (l *Lines) Bytes(id string, current, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	b, ok := l.bytes[id]
	if !ok {
		b = &byteLine{st: client.VertexStatus{ID: id, Total: total, Started: &now, Timestamp: now}, pace: throttle{last: now}}
		l.bytes[id] = b
		l.sub.SetStatus(&b.st)
	}
	b.st.Current = current
	switch {
	case current >= total:
		b.st.Timestamp, b.st.Completed = now, &now
		l.sub.SetStatus(&b.st)
	case b.pace.due(now):
		b.st.Timestamp = now
		l.sub.SetStatus(&b.st)
	}
}

// Warn logs "WARNING: msg" as a line of the vertex.
func (l *Lines) Warn(msg string) {
	l.sub.Log(2, []byte("WARNING: "+msg+"\n"))
}

// Done completes the lines still open: byte counts cut short by an error,
// in id order (not map order), then the spanning lines, the last started
// first. Call it once, when the work has ended.
func (l *Lines) Done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	ids := make([]string, 0, len(l.bytes))
	for id := range l.bytes {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, strings.Compare)
	for _, id := range ids {
		if st := &l.bytes[id].st; st.Completed == nil {
			st.Timestamp, st.Completed = now, &now
			l.sub.SetStatus(st)
		}
	}
	for i := len(l.open) - 1; i >= 0; i-- {
		st := l.open[i]
		st.Timestamp, st.Completed = now, &now
		l.sub.SetStatus(st)
	}
	l.open = nil
}

// Warn shows a warning as a step of its own, for work whose vertexes have
// ended by then (a load into the Docker engine).
func Warn(w Writer, msg string) {
	_ = OneOff(w, "WARNING: "+msg)(nil)
}
