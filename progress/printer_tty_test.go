//go:build linux

package progress

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/console"
	"github.com/docker/cli/cli/streams"
	"golang.org/x/sync/errgroup"
)

// withTerminal runs fn with the slave side of a new pseudo-terminal and
// returns everything fn's display drew on it.
func withTerminal(t *testing.T, fn func(tty *os.File)) string {
	t.Helper()
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer master.Close()
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open %s: %v", slavePath, err)
	}
	if err := master.Resize(console.WinSize{Width: 120, Height: 40}); err != nil {
		t.Fatalf("resize: %v", err)
	}

	// Drain the master so the display never blocks on a full terminal.
	var out bytes.Buffer
	var eg errgroup.Group
	eg.Go(func() error {
		_, err := io.Copy(&out, master)
		if errors.Is(err, syscall.EIO) { // the slave side was closed
			return nil
		}
		return err
	})
	fn(slave)
	if err := slave.Close(); err != nil {
		t.Fatal(err)
	}
	if err := eg.Wait(); err != nil {
		t.Fatalf("read terminal: %v", err)
	}
	return out.String()
}

func TestAutoModeOnTerminal(t *testing.T) {
	t.Setenv(EnvMode, "")
	for name, wrap := range map[string]func(*os.File) io.Writer{
		"file":       func(f *os.File) io.Writer { return f },
		"cli stream": func(f *os.File) io.Writer { return streams.NewOut(f) },
	} {
		t.Run(name, func(t *testing.T) {
			out := withTerminal(t, func(tty *os.File) {
				p, err := NewPrinter(context.Background(), wrap(tty), ModeAuto, WithPhase("Pushing"))
				if err != nil {
					t.Fatalf("NewPrinter: %v", err)
				}
				_ = OneOff(p, "[internal] pushing 127.0.0.1:5000/app")(nil)
				if err := p.Wait(); err != nil {
					t.Fatalf("Wait: %v", err)
				}
			})
			// The tty display draws a header with the phase and the vertex
			// marked done, never the plain "#1 " lines.
			for _, s := range []string{"[+] Pushing", "FINISHED", "[internal] pushing 127.0.0.1:5000/app"} {
				if !strings.Contains(out, s) {
					t.Errorf("terminal output lacks %q:\n%q", s, out)
				}
			}
			if strings.Contains(out, "#1 [internal]") {
				t.Errorf("auto mode drew plain output on a terminal:\n%q", out)
			}
		})
	}
}

// TestTerminalFailedStep: on a terminal, a failed step is marked failed,
// with no empty log block after the display; a step that logged keeps its
// block.
func TestTerminalFailedStep(t *testing.T) {
	out := withTerminal(t, func(tty *os.File) {
		p, err := NewPrinter(context.Background(), tty, modeTTY)
		if err != nil {
			t.Fatalf("NewPrinter: %v", err)
		}
		_ = OneOff(p, "resolving 127.0.0.1:1/foo:bar")(errors.New("cannot reach 127.0.0.1:1"))
		_ = Wrap("pushing 127.0.0.1:5000/app", p, func(s SubLogger) error {
			s.Log(2, []byte("WARNING: slow\n"))
			return errors.New("refused")
		})
		if err := p.Wait(); err != nil {
			t.Fatalf("Wait: %v", err)
		}
	})
	for _, s := range []string{"ERROR resolving 127.0.0.1:1/foo:bar", " > pushing 127.0.0.1:5000/app:", "WARNING: slow"} {
		if !strings.Contains(out, s) {
			t.Errorf("terminal output lacks %q:\n%q", s, out)
		}
	}
	for _, s := range []string{" > resolving", "cannot reach"} {
		if strings.Contains(out, s) {
			t.Errorf("terminal output holds %q:\n%q", s, out)
		}
	}
}
