package progress

import (
	"context"
	"io"
	"strings"
	"sync"

	"github.com/docker-imgx/docker-imgx/internal/termtext"
	"github.com/moby/buildkit/client"
)

// failedMark is what a text display shows of a failed vertex's error: the
// command prints the error itself once, as its last line.
const failedMark = "failed"

// forDisplay returns a copy of s fit for a display people read: names,
// status lines, logs and warnings hold text from outside (image names from a
// tar, a registry's words, URLs), so they are escaped and their secrets
// redacted (termtext), and a failed vertex is only marked failed. s itself
// is left alone: callers reuse what they send.
func forDisplay(s *client.SolveStatus) *client.SolveStatus {
	out := &client.SolveStatus{}
	for _, v := range s.Vertexes {
		c := *v
		c.Name = oneLine(v.Name)
		if c.Error != "" && !strings.HasSuffix(c.Error, context.Canceled.Error()) {
			c.Error = failedMark
		}
		out.Vertexes = append(out.Vertexes, &c)
	}
	for _, st := range s.Statuses {
		c := *st
		c.ID, c.Name = oneLine(st.ID), oneLine(st.Name)
		out.Statuses = append(out.Statuses, &c)
	}
	for _, l := range s.Logs {
		c := *l
		c.Data = []byte(termtext.Message(string(l.Data)))
		out.Logs = append(out.Logs, &c)
	}
	for _, w := range s.Warnings {
		c := *w
		c.Short = []byte(oneLine(string(w.Short)))
		c.Detail = nil
		for _, d := range w.Detail {
			c.Detail = append(c.Detail, []byte(termtext.Message(string(d))))
		}
		out.Warnings = append(out.Warnings, &c)
	}
	return out
}

// oneLine is text from outside as one safe line.
func oneLine(s string) string {
	return termtext.Escape(termtext.Redact(s))
}

// errorLogFilter drops the empty log blocks progressui's plain display
// prints for a failed vertex that logged nothing ("------", " > NAME:",
// "------"): the error follows on the command's last line. progressui
// writes each line of such a block with one Write; anything else passes
// through at once.
type errorLogFilter struct {
	mu   sync.Mutex
	w    io.Writer
	held [][]byte
}

func dropEmptyErrorLogs(w io.Writer) *errorLogFilter { return &errorLogFilter{w: w} }

const errorLogRule = "------\n"

func (f *errorLogFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := string(p)
	if len(f.held) == 2 && s == errorLogRule {
		f.held = nil // an empty block
		return len(p), nil
	}
	if len(f.held) == 1 && strings.HasPrefix(s, " > ") && strings.HasSuffix(s, ":\n") {
		f.held = append(f.held, append([]byte(nil), p...))
		return len(p), nil
	}
	if err := f.flushLocked(); err != nil {
		return 0, err
	}
	if s == errorLogRule {
		f.held = append(f.held, append([]byte(nil), p...))
		return len(p), nil
	}
	return f.w.Write(p)
}

// flush writes what is held back, at the end of the display.
func (f *errorLogFilter) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flushLocked()
}

func (f *errorLogFilter) flushLocked() error {
	for _, h := range f.held {
		if _, err := f.w.Write(h); err != nil {
			return err
		}
	}
	f.held = nil
	return nil
}
