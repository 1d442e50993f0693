// Package progress is a small API over BuildKit's progressui: a Printer that
// draws vertexes on a terminal (tty), as plain text, as JSON lines or not at
// all, and helpers (Wrap, OneOff, ByteCounter) that core code uses to report
// its steps through a Writer.
package progress

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/containerd/console"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	"golang.org/x/sync/errgroup"
)

// Progress modes accepted by NewPrinter.
const (
	ModeAuto    = "auto"
	modeTTY     = "tty"
	ModePlain   = "plain"
	modeRawJSON = "rawjson"
	modeQuiet   = "quiet"
)

// EnvMode is the environment variable that overrides the "auto" mode, as it
// does for docker build and buildx.
const EnvMode = "BUILDKIT_PROGRESS"

// Modes returns the progress modes NewPrinter accepts, for flag help texts.
func Modes() []string {
	return []string{ModeAuto, modeTTY, ModePlain, modeRawJSON, modeQuiet}
}

// PrinterOpt changes how a Printer draws.
type PrinterOpt func(*printerOpts)

type printerOpts struct {
	display []progressui.DisplayOpt
}

// WithPhase sets the word the tty display starts its header with
// ("[+] Pushing 1.2s"); progressui says "Building" without it.
func WithPhase(phase string) PrinterOpt {
	return func(o *printerOpts) {
		o.display = append(o.display, progressui.WithPhase(phase))
	}
}

var _ Writer = (*Printer)(nil)

// Printer draws the progress of vertexes written to it until Wait is called.
// It is safe for concurrent use.
type Printer struct {
	ctx    context.Context
	status chan *client.SolveStatus
	eg     errgroup.Group
	// text is set for the displays people read (all but rawjson): what
	// they are sent is made safe for a terminal first (forDisplay).
	text bool
	// filter, in plain mode, holds back a log block until it knows it is
	// not empty.
	filter *errorLogFilter

	mu     sync.RWMutex // held for writing only while the channel is closed
	closed bool

	waitOnce sync.Once
	err      error
	shown    []client.VertexWarning // written by the display, read after it stopped
	warnings []client.VertexWarning // guarded by mu
}

// NewPrinter starts a display on out in mode "auto", "tty", "plain",
// "rawjson" or "quiet" ("" means "auto"). In auto mode BUILDKIT_PROGRESS, when
// set, chooses the mode; otherwise tty is used when out is a terminal and
// plain when it is not. A terminal is only recognised through an *os.File, or
// a writer with a File() (*os.File, bool) method such as the Docker CLI's
// streams. The display stops when ctx is done or Wait is called; pass a
// context that outlives the operation (context.WithoutCancel) so that a
// cancelled operation's failed vertexes are still drawn, as buildx does.
//
// The displays people read (tty, plain) show what they are sent made safe
// (escaped, secrets redacted) and a failed vertex only marked failed: the
// command prints the error; rawjson shows everything as sent.
//
// Run one Printer at a time: progressui keeps the tty height in a package
// variable that its tty display updates.
func NewPrinter(ctx context.Context, out io.Writer, mode string, opts ...PrinterOpt) (*Printer, error) {
	var o printerOpts
	for _, opt := range opts {
		opt(&o)
	}
	mode, err := resolveMode(mode)
	if err != nil {
		return nil, err
	}
	out = displayWriter(out)
	if mode == ModeAuto && !isConsole(out) {
		mode = ModePlain
	}
	out, filter := withErrorLogFilter(out, mode)
	d, err := progressui.NewDisplay(out, progressui.DisplayMode(mode), o.display...)
	if err != nil {
		return nil, fmt.Errorf("start %s progress display: %w", mode, err)
	}
	p := &Printer{
		ctx:    ctx,
		status: make(chan *client.SolveStatus),
		text:   mode != modeRawJSON,
		filter: filter,
	}
	p.eg.Go(func() error {
		var err error
		p.shown, err = d.UpdateFrom(ctx, p.status)
		return err
	})
	return p, nil
}

// resolveMode applies BUILDKIT_PROGRESS to auto mode and rejects unknown modes.
func resolveMode(mode string) (string, error) {
	if mode == "" {
		mode = ModeAuto
	}
	if !validMode(mode) {
		return "", fmt.Errorf("unknown progress mode %q: valid modes are %s", mode, strings.Join(Modes(), ", "))
	}
	if env := os.Getenv(EnvMode); env != "" && mode == ModeAuto {
		if !validMode(env) {
			return "", fmt.Errorf("unknown progress mode %q in %s: valid modes are %s", env, EnvMode, strings.Join(Modes(), ", "))
		}
		mode = env
	}
	return mode, nil
}

func validMode(mode string) bool {
	for _, m := range Modes() {
		if m == mode {
			return true
		}
	}
	return false
}

// displayWriter unwraps the Docker CLI's output streams to their file so that
// progressui can see a terminal behind them.
func displayWriter(out io.Writer) io.Writer {
	if s, ok := out.(interface{ File() (*os.File, bool) }); ok {
		if f, ok := s.File(); ok {
			return f
		}
	}
	return out
}

// isConsole reports whether progressui would draw its tty display on out.
func isConsole(out io.Writer) bool {
	f, ok := out.(console.File)
	if !ok {
		return false
	}
	_, err := console.ConsoleFromFile(f)
	return err == nil
}

// Write hands a status update to the display. Updates written after Wait, or
// after the printer's context is done, are dropped.
func (p *Printer) Write(s *client.SolveStatus) {
	if s == nil {
		return
	}
	if p.text {
		s = forDisplay(s)
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed || p.ctx.Err() != nil {
		return
	}
	select {
	case p.status <- s:
	case <-p.ctx.Done():
	}
}

// Wait flushes the display and stops it. It returns the display's error,
// which is the cause of the printer's context when that ended before Wait
// (updates may then have been dropped), else nil. Calling it again returns
// the same error.
func (p *Printer) Wait() error {
	p.waitOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.status)
		p.mu.Unlock()
		p.err = p.eg.Wait()
		if p.filter != nil {
			if err := p.filter.flush(); p.err == nil {
				p.err = err
			}
		}
		if p.err == nil && p.ctx.Err() != nil {
			// progressui picks at random between a closed channel and a done
			// context; updates may have been dropped either way.
			p.err = context.Cause(p.ctx)
		}
		p.mu.Lock()
		p.warnings = p.shown
		p.mu.Unlock()
	})
	return p.err
}

// Warnings returns the warnings the display received; it is empty until Wait
// has returned.
func (p *Printer) Warnings() []client.VertexWarning {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.warnings
}
