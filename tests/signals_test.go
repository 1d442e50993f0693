package tests

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// startImgx starts the binary in the background with stderr captured.
func startImgx(t *testing.T, x *imgx, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(imgxBinary, args...)
	cmd.Env = x.Env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, &stderr
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no %s within a minute:\n%s", what, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantInterrupted waits for the process and wants exit code 130 and the
// one-line "interrupted" error.
func wantInterrupted(t *testing.T, cmd *exec.Cmd, stderr *bytes.Buffer) {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v, want code 130\n%s", err, stderr.String())
	}
	if !strings.HasSuffix(stderr.String(), "ERROR: interrupted\n") {
		t.Errorf("stderr does not end with ERROR: interrupted:\n%s", stderr.String())
	}
}

// slowSource is a registry holding a 32 MiB image, served through a proxy
// that sends blobs slowly.
func slowSource(t *testing.T) (*registrytest.Registry, string) {
	t.Helper()
	reg := registrytest.Start(t, registrytest.Options{})
	big := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, LayerSize: 16 << 20, Seed: 31, Compression: fixture.Uncompressed})
	pushImage(t, reg, "test/big", "1", big)
	return reg, blobProxy(t, reg.Host, func(_ string, body io.ReadCloser) io.ReadCloser { return slowBody{body} })
}

// TestSignalsExport sends SIGINT and SIGTERM mid-transfer: no file is left,
// neither the output nor its temporary file, for a tar or an OCI layout.
func TestSignalsExport(t *testing.T) {
	t.Parallel()
	_, proxy := slowSource(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		for _, target := range []string{"out.tar", "oci-layout://layout"} {
			t.Run(sig.String()+"/"+target, func(t *testing.T) {
				dir := t.TempDir()
				out := filepath.Join(dir, strings.TrimPrefix(target, "oci-layout://"))
				if strings.HasPrefix(target, "oci-layout://") {
					out = "oci-layout://" + out
				}
				cmd, stderr := startImgx(t, newImgx(t), "export", "--progress", "plain", "-o", out, proxy+"/test/big:1")
				waitFor(t, cmd, stderr, "data written", func() bool { return dirHoldsData(dir) })
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				wantInterrupted(t, cmd, stderr)
				noFilesLeft(t, dir)
			})
		}
	}
}

// dirHoldsData reports whether a file under dir has received bytes.
func dirHoldsData(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil && fi.Size() > 0 && !strings.HasSuffix(d.Name(), "oci-layout") {
				found = true
			}
		}
		return nil
	})
	return found
}

// TestSignalsCreate interrupts a cross-registry copy mid-blob: the existing
// tag keeps its image, the new tag is not created.
func TestSignalsCreate(t *testing.T) {
	t.Parallel()
	src, proxy := slowSource(t)
	dst := registrytest.Start(t, registrytest.Options{})
	old := faultOldImage()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			repo := "signals/" + strings.ToLower(sig.String())
			pushImage(t, dst, repo, "latest", old)
			before := src.Count("GET", "/blobs/")
			cmd, stderr := startImgx(t, newImgx(t), "create", "--progress", "plain",
				"-t", dst.Host+"/"+repo+":latest", "-t", dst.Host+"/"+repo+":new", proxy+"/test/big:1")
			waitFor(t, cmd, stderr, "blob download", func() bool { return src.Count("GET", "/blobs/") > before })
			time.Sleep(200 * time.Millisecond)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			wantInterrupted(t, cmd, stderr)
			if got := fetchTag(t, dst, repo, "latest"); got != string(old.Manifest.Data) {
				t.Errorf("%s:latest moved:\n%s", repo, got)
			}
			if got := fetchTag(t, dst, repo, "new"); got != "" {
				t.Errorf("%s:new was created", repo)
			}
		})
	}
}

// TestTLSCreateExport: create and export against a registry whose CA is not
// configured fail with an error that says how to configure it.
func TestTLSCreateExport(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	plain := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 9})
	pushImage(t, reg, "test/tls", "1", img)
	pushImage(t, plain, "test/plain", "1", img)
	x := newImgx(t)
	dir := t.TempDir()
	ref := reg.Host + "/test/tls:1"
	want := []string{reg.Host, "certificate", "ca.crt", "--insecure-registry"}
	x.MustFail(want, "export", "-o", filepath.Join(dir, "out.tar"), ref)
	x.MustFail(want, "export", "-o", "oci-layout://"+filepath.Join(dir, "layout"), ref)
	noFilesLeft(t, dir)
	x.MustFail(want, "create", "--progress", "quiet", "-t", plain.Host+"/test/copy:1", ref)
	x.MustFail(want, "create", "--progress", "quiet", "-t", reg.Host+"/test/copy:1", plain.Host+"/test/plain:1")
	if got := fetchTag(t, plain, "test/copy", "1"); got != "" {
		t.Error("create pushed a tag although its source failed")
	}
}
