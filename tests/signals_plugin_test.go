package tests

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pluginRun is `docker imgx ...` running through the real docker client,
// either under a pseudo-terminal (tty set) or with pipes, in a process
// group of its own.
type pluginRun struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	tty  *os.File
	read chan struct{} // closed when the terminal's output is all read
}

// startPlugin starts docker imgx ARGS; under a terminal, docker, the plugin
// and the terminal share a session whose foreground group is theirs.
func startPlugin(t *testing.T, x *imgx, terminal bool, args ...string) *pluginRun {
	t.Helper()
	cmd := exec.Command(x.installPlugin(), append([]string{"imgx"}, args...)...)
	cmd.Env = x.Env
	r := &pluginRun{cmd: cmd, out: &lockedBuffer{}, read: make(chan struct{})}
	if terminal {
		tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
		if err != nil {
			t.Fatal(err)
		}
		r.tty = tty
		t.Cleanup(func() { _ = tty.Close() })
		go func() {
			defer close(r.read)
			_, _ = io.Copy(r.out, tty) // ends with EIO once the session is gone
		}()
	} else {
		cmd.Stdout, cmd.Stderr = r.out, r.out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		close(r.read)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return r
}

// interrupt types Ctrl-C on the terminal (the kernel sends SIGINT to its
// foreground group: docker and the plugin), or, without one, sends SIGINT
// to the docker client alone, which then closes the plugin's socket.
func (r *pluginRun) interrupt(t *testing.T) {
	t.Helper()
	var err error
	if r.tty != nil {
		_, err = r.tty.Write([]byte{0x03})
	} else {
		err = r.cmd.Process.Signal(syscall.SIGINT)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// wantInterrupted waits for docker to exit and wants code 130, the
// "interrupted" error, and the exit within a generous ceiling of the
// interruption (the transfer alone takes ten seconds more).
func (r *pluginRun) wantInterrupted(t *testing.T) {
	t.Helper()
	start := time.Now()
	err := r.cmd.Wait()
	took := time.Since(start)
	select {
	case <-r.read:
	case <-time.After(10 * time.Second):
		t.Error("the terminal's output was not all read 10 s after the exit")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v, want code 130\n%s", err, r.out.String())
	}
	if !strings.Contains(r.out.String(), "ERROR: interrupted") {
		t.Errorf("no ERROR: interrupted in the output:\n%s", r.out.String())
	}
	t.Logf("exited %v after the interruption", took)
	if took > 5*time.Second {
		t.Errorf("docker imgx exited %v after the interruption, want well under 5 s", took)
	}
}

// TestSignalsPlugin interrupts docker imgx export and create mid-transfer,
// through the real docker client: Ctrl-C typed on a terminal, and SIGINT
// sent to the docker client alone without one. Both stop at once with exit
// code 130; export leaves no file, create moves no tag.
func TestSignalsPlugin(t *testing.T) {
	t.Parallel()
	requireTool(t, "docker", "docker.io (the docker client)")
	src := registrytest.Start(t, registrytest.Options{})
	big := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, LayerSize: 16 << 20, Seed: 31, Compression: fixture.Uncompressed})
	pushImage(t, src, "test/big", "1", big)
	dst := registrytest.Start(t, registrytest.Options{})
	old := faultOldImage()
	for _, terminal := range []bool{true, false} {
		name := map[bool]string{true: "terminal", false: "no-terminal"}[terminal]
		t.Run(name+"/export", func(t *testing.T) {
			t.Parallel()
			proxy, sent := countedSlowProxy(t, src)
			dir := t.TempDir()
			r := startPlugin(t, newImgx(t), terminal, "export", "--progress", "plain", "-o", filepath.Join(dir, "out.tar"), proxy+"/test/big:1")
			waitForBytes(t, r, sent)
			r.interrupt(t)
			r.wantInterrupted(t)
			noFilesLeft(t, dir)
		})
		t.Run(name+"/create", func(t *testing.T) {
			t.Parallel()
			proxy, sent := countedSlowProxy(t, src)
			repo := "plugin-signals/" + name
			pushImage(t, dst, repo, "latest", old)
			r := startPlugin(t, newImgx(t), terminal, "create", "--progress", "plain",
				"-t", dst.Host+"/"+repo+":latest", "-t", dst.Host+"/"+repo+":new", proxy+"/test/big:1")
			waitForBytes(t, r, sent)
			r.interrupt(t)
			r.wantInterrupted(t)
			if got := fetchTag(t, dst, repo, "latest"); got != string(old.Manifest.Data) {
				t.Errorf("%s:latest moved:\n%s", repo, got)
			}
			if got := fetchTag(t, dst, repo, "new"); got != "" {
				t.Errorf("%s:new was created", repo)
			}
		})
	}
}

// countedSlowProxy serves src's blobs slowly (about ten seconds for the big
// image) and counts the blob bytes it passed on.
func countedSlowProxy(t *testing.T, src *registrytest.Registry) (string, *atomic.Int64) {
	t.Helper()
	var sent atomic.Int64
	proxy := blobProxy(t, src.Host, func(_ string, body io.ReadCloser) io.ReadCloser {
		return slowBody{&countingBody{body, &sent}}
	})
	return proxy, &sent
}

// waitForBytes waits until a megabyte of blobs went through the proxy:
// mid-transfer.
func waitForBytes(t *testing.T, r *pluginRun, sent *atomic.Int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for sent.Load() < 1<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("no megabyte of blobs within a minute:\n%s", r.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
