//go:build linux

package tests

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
)

// runOnTerminal runs the binary with stderr on a new pseudo-terminal (the
// tty progress display) and returns what the terminal received.
func runOnTerminal(t *testing.T, x *imgx, args ...string) (string, int) {
	t.Helper()
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	defer master.Close()
	slave, err := os.OpenFile(slavePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Resize(console.WinSize{Width: 120, Height: 40}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, imgxBinary, args...)
	cmd.Env, cmd.Stderr = x.Env, slave
	var out bytes.Buffer
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(&out, master)
		read <- err
	}()
	runErr := cmd.Run()
	if err := slave.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil && !errors.Is(err, syscall.EIO) {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if runErr != nil && !errors.As(runErr, &ee) {
		t.Fatal(runErr)
	}
	return strings.ReplaceAll(out.String(), "\r\n", "\n"), cmd.ProcessState.ExitCode()
}

// TestUnreachableSaidOnceOnTerminal: in the tty display too, the error is
// said once, on the last line, with no empty log block before it.
func TestUnreachableSaidOnceOnTerminal(t *testing.T) {
	t.Parallel()
	x := newImgx(t)
	out, code := runOnTerminal(t, x, "export", "--progress", "tty", "-o", filepath.Join(t.TempDir(), "x.tar"), "127.0.0.1:1/foo:bar")
	const line = "ERROR: fetch 127.0.0.1:1/foo:bar: cannot reach 127.0.0.1:1 (connection refused)\n"
	if code != 1 || !strings.HasSuffix(out, line) || strings.Count(out, "cannot reach") != 1 || strings.Contains(out, "------") ||
		!strings.Contains(out, "ERROR resolving 127.0.0.1:1/foo:bar") {
		t.Errorf("exit %d, terminal:\n%q", code, out)
	}
}
