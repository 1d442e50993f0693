package tests

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// sparseLayerTar writes a docker save tar whose one layer claims to be
// gzip (its first bytes) and is size bytes long, nearly all a hole in the
// file: hashing it reads size bytes, the disk holds a few kilobytes.
func sparseLayerTar(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest.FromString("layer").String()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mf, err := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{"big:1"}, "Layers": []string{"layer.tar.gz"}}})
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		data []byte
	}{{"manifest.json", mf}, {"config.json", cfg}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "layer.tar.gz", Mode: 0o644, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatGNU}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte{0x1f, 0x8b, 0x08, 0x00}); err != nil {
		t.Fatal(err)
	}
	// The rest of the layer, its padding and the two zero blocks that end
	// a tar are all zeros: a hole.
	off, err := f.Seek(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	end := off - 4 + (size+511)/512*512 + 1024
	if err := f.Truncate(end); err != nil {
		t.Fatal(err)
	}
}

// bytesRead is how many bytes process pid has read (rchar of /proc/PID/io).
func bytesRead(pid int) int64 {
	dt, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(dt), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// TestSignalsHashingArchive interrupts the hashing of a 64 GiB layer of an
// image tar (a gzip layer whose name carries no digest is hashed when the
// tar is opened; a minute or more of reading): SIGINT ends it at once.
func TestSignalsHashingArchive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "big.tar")
	sparseLayerTar(t, tarPath, 64<<30)
	cmd, stderr := startImgx(t, newImgx(t), "inspect", "--raw", "archive://"+tarPath)
	waitFor(t, cmd, stderr, "hashing", func() bool { return bytesRead(cmd.Process.Pid) > 64<<20 })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Killed if still hashing: the test then fails at once, not minutes later.
	stop := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	defer stop.Stop()
	wantInterrupted(t, cmd, stderr)
	took := time.Since(start)
	t.Logf("exited %v after SIGINT", took)
	if took > 5*time.Second {
		t.Errorf("exited %v after SIGINT, want well under 5 s", took)
	}
}

// TestArchiveFIFORefused: a FIFO named as an image tar is refused at once
// with a line that says why (opening it would wait for a writer, whatever
// the signals), and nothing opens it.
func TestArchiveFIFORefused(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "pipe.tar")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	x := newImgx(t)
	for _, args := range [][]string{
		{"inspect", "archive://" + fifo},
		{"export", "--progress", "quiet", "-o", filepath.Join(t.TempDir(), "out.tar"), "archive://" + fifo},
		{"create", "--dry-run", "archive://" + fifo},
	} {
		cmd, stderr := startImgx(t, x, args...)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("%v: still running after 30 s (waiting on the FIFO)", args)
		}
		want := "ERROR: archive://" + fifo + ": " + fifo + " is a named pipe (FIFO), not a file: an image tar is read where it lies, in any order; save it to a file first\n"
		if code := cmd.ProcessState.ExitCode(); code != 1 || !bytes.HasSuffix(stderr.Bytes(), []byte(want)) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 1 and the last line\n%s", args, code, stderr, want)
		}
	}
}

// TestSignalsOutputFIFOWithoutReader: export -o and --metadata-file naming
// a FIFO that no one reads wait for a reader, and SIGINT ends the wait:
// exit 130 at once, the FIFO left as it was.
func TestSignalsOutputFIFOWithoutReader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	x := newImgx(t)
	for _, args := range [][]string{
		{"export", "--progress", "quiet", "-o", fifo, "127.0.0.1:9/never/read:1"},
		{"create", "--dry-run", "--metadata-file", fifo, "127.0.0.1:9/never/read:1"},
	} {
		cmd, stderr := startImgx(t, x, args...)
		// The output is opened before any request: by now the binary
		// waits for a reader.
		time.Sleep(time.Second)
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		stop := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
		wantInterrupted(t, cmd, stderr)
		stop.Stop()
		if mode(t, fifo)&os.ModeNamedPipe == 0 {
			t.Errorf("%s is no longer a FIFO", fifo)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("beside the FIFO: %v", ents)
		}
	}
}

// TestSignalsCopyLayoutBlob interrupts create copying a 64 GiB layer (a
// hole on disk) from one OCI layout into a new one: the copy stops at
// once, exit 130, and the new layout is removed.
func TestSignalsCopyLayoutBlob(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	cfg := fixture.NewBlob(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["`+digest.FromString("layer").String()+`"]}}`))
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("64 GiB of zeros, never hashed whole"), Size: 64 << 30}
	mf, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg.Desc, Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		t.Fatal(err)
	}
	if err := fixture.WriteLayout(src, map[string]fixture.Blob{"1": fixture.NewBlob(ocispec.MediaTypeImageManifest, mf)}, cfg); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(src, "blobs", "sha256", layer.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(layer.Size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cmd, stderr := startImgx(t, newImgx(t), "create", "--progress", "plain", "-t", "oci-layout://"+dst+":1", "oci-layout://"+src+":1")
	waitFor(t, cmd, stderr, "copying", func() bool { return bytesRead(cmd.Process.Pid) > 64<<20 })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := time.AfterFunc(15*time.Second, func() { _ = cmd.Process.Kill() })
	defer stop.Stop()
	wantInterrupted(t, cmd, stderr)
	took := time.Since(start)
	t.Logf("exited %v after SIGINT", took)
	if took > 5*time.Second {
		t.Errorf("exited %v after SIGINT, want well under 5 s", took)
	}
	if _, err := os.Lstat(dst); !os.IsNotExist(err) {
		t.Errorf("the new layout %s is left: %v", dst, err)
	}
}
