package progress

import (
	"context"
	"io"
	"strings"
	"sync"

	"github.com/containerd/console"
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

// errorLogFilter drops the empty log blocks progressui's text displays
// print for a failed vertex that logged nothing ("------", " > NAME:",
// "------"): the error follows on the command's last line. progressui
// writes each line of such a block with one Write; anything else passes
// through at once.
type errorLogFilter struct {
	mu   sync.Mutex
	w    io.Writer
	held [][]byte
}

// withErrorLogFilter puts an errorLogFilter on out for the plain and tty
// displays; a terminal stays a console.File, so that progressui still
// draws on it.
func withErrorLogFilter(out io.Writer, mode string) (io.Writer, *errorLogFilter) {
	switch f, isFile := out.(console.File); {
	case mode == ModePlain:
		filter := &errorLogFilter{w: out}
		return filter, filter
	case isFile && (mode == modeTTY || mode == ModeAuto):
		filter := &errorLogFilter{w: f}
		return filteredConsole{File: f, filter: filter}, filter
	}
	return out, nil
}

// filteredConsole is a terminal whose writes pass an errorLogFilter.
type filteredConsole struct {
	console.File
	filter *errorLogFilter
}

func (c filteredConsole) Write(p []byte) (int, error) { return c.filter.Write(p) }

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
