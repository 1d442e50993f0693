// Package consumers starts private, throw-away instances of the programs that
// read image tars (dockerd, containerd with ctr, podman, skopeo) so that
// integration tests can load a produced tar into the real thing.
//
// Every instance lives in its own short temporary directory: no system daemon,
// default socket or host configuration is used, so tests in several packages
// may run at the same time. Each instance is stopped and removed in
// t.Cleanup.
//
// When a program is missing (or the test does not run as root), a test is
// skipped with a message naming the Debian package to install, unless the
// environment variable IMGX_REQUIRE_CONSUMERS is set (CI sets it): then the
// test fails, because a consumer that was not exercised proves nothing.
package consumers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireEnv is the environment variable that turns a missing consumer into a
// test failure instead of a skip.
const requireEnv = "IMGX_REQUIRE_CONSUMERS"

const (
	// readyTimeout bounds how long a daemon may take to answer; CI machines
	// are small and shared.
	readyTimeout = 90 * time.Second
	// stopTimeout is how long a daemon gets after SIGTERM before SIGKILL.
	stopTimeout = 20 * time.Second
	// commandTimeout bounds one client command (a load of a big tar included).
	commandTimeout = 10 * time.Minute
	// maxSocketDir keeps unix socket paths below the kernel's 108-byte limit
	// with room for the file names used here.
	maxSocketDir = 80
)

// unavailable ends the test because a consumer cannot be used: a failure when
// requireEnv is set, a skip otherwise.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireEnv) != "" {
		t.Fatalf("%s (%s is set, so a missing consumer is a failure)", msg, requireEnv)
	}
	t.Skipf("%s; skipping (set %s=1 to make this a failure)", msg, requireEnv)
}

// lookBinary returns the path of a program, ending the test through
// unavailable when it is not installed.
func lookBinary(t testing.TB, name, aptPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		unavailable(t, "%s not found in PATH: install the Debian package %q (apt-get install %s)", name, aptPackage, aptPackage)
	}
	return path
}

// requireRoot ends the test through unavailable when not running as root:
// the daemons and podman's vfs store are set up for root only.
func requireRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "%s needs root (running as uid %d)", what, os.Geteuid())
	}
}

// shortTempDir makes a private directory whose path is short enough for unix
// sockets (t.TempDir() embeds the test name and can be too long). It is
// removed in t.Cleanup; register it before any daemon using it so that the
// daemon is stopped first (cleanups run last-in, first-out).
func shortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	base := os.TempDir()
	if len(base) > maxSocketDir-30 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "imgx-"+prefix+"-")
	if err != nil {
		t.Fatalf("create temp dir for %s: %v", prefix, err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// writeFile writes a configuration file, failing the test on error.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("create directory for %s: %v", path, err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// daemon is a background process started by a test.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	log    string
	cancel context.CancelFunc
}

// startDaemon starts a long-running program with its output in logPath. The
// process is stopped with SIGTERM (SIGKILL after stopTimeout) in t.Cleanup,
// and is killed by the kernel if the test binary dies first.
func startDaemon(t testing.TB, name, logPath string, env []string, bin string, args ...string) *daemon {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create %s log: %v", name, err)
	}
	// Not the test's context: it is cancelled before cleanups run, and the
	// daemon must outlive the test body until its own cleanup.
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	if err := cmd.Start(); err != nil {
		cancel()
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	d := &daemon{name: name, cmd: cmd, log: logPath, cancel: cancel}
	t.Cleanup(func() {
		d.cancel()
		err := cmd.Wait()
		logFile.Close()
		// A daemon may exit 0 on SIGTERM (Wait then reports the
		// cancellation) or die of the signal; both are the expected end.
		if err != nil && !errors.Is(err, context.Canceled) && !terminatedBySignal(err) {
			t.Logf("%s stopped: %v\n%s", name, err, d.logTail())
		}
	})
	return d
}

// terminatedBySignal reports whether a process ended because of the signal
// sent to stop it, the expected end of a daemon.
func terminatedBySignal(err error) bool {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return false
	}
	status, ok := exitErr.Sys().(syscall.WaitStatus)
	return ok && status.Signaled()
}

// exited reports whether the daemon process has ended (it is a zombie until
// waited for in cleanup).
func (d *daemon) exited() bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X")
}

// logTail returns the end of the daemon's log for error messages.
func (d *daemon) logTail() string {
	data, err := os.ReadFile(d.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const max = 4000
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return string(data)
}

// waitReady polls ready until it succeeds, the daemon exits, or readyTimeout
// passes, failing the test in the last two cases.
func (d *daemon) waitReady(t testing.TB, ready func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), readyTimeout)
	defer cancel()
	start := time.Now()
	var lastErr error
	for {
		attempt, attemptCancel := context.WithTimeout(ctx, 5*time.Second)
		lastErr = ready(attempt)
		attemptCancel()
		if lastErr == nil {
			t.Logf("%s ready in %s", d.name, time.Since(start).Round(time.Millisecond))
			return
		}
		if d.exited() {
			t.Fatalf("%s exited before it was ready: %v\n%s", d.name, lastErr, d.logTail())
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready after %s: %v\n%s", d.name, readyTimeout, lastErr, d.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// run executes a client command and returns its standard output; the error
// names the command and carries its standard error.
func run(t testing.TB, env []string, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = nil
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// dialUnix checks that something accepts connections on a unix socket.
func dialUnix(ctx context.Context, path string) error {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	return conn.Close()
}
