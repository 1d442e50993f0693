package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	"github.com/opencontainers/go-digest"
)

// outputEnv is a registry holding one image (test/app:1) and the tar that
// export -o writes of it to a new regular file, the reference every other
// kind of target must receive byte for byte.
type outputEnv struct {
	reg *registrytest.Registry
	x   *imgx
	app string
	tar []byte
}

func newOutputEnv(t *testing.T) outputEnv {
	t.Helper()
	e := outputEnv{reg: registrytest.Start(t, registrytest.Options{}), x: newImgx(t)}
	pushImage(t, e.reg, "test/app", "1", fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 71}))
	e.app = e.reg.Host + "/test/app:1"
	out := filepath.Join(t.TempDir(), "ref.tar")
	e.x.MustRun("export", "--progress", "quiet", "-o", out, e.app)
	var err error
	if e.tar, err = os.ReadFile(out); err != nil {
		t.Fatal(err)
	}
	return e
}

// runUmask runs the binary under a shell that sets the umask first.
func runUmask(t *testing.T, x *imgx, umask string, args ...string) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", `umask "$0"; exec "$@"`, umask, imgxBinary}, args...)...)
	cmd.Env = x.Env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("umask %s docker-imgx %s: %v\n%s", umask, strings.Join(args, " "), err, out)
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

func TestOutputSymlinkFollowed(t *testing.T) {
	t.Parallel()
	e := newOutputEnv(t)
	links, targets := t.TempDir(), t.TempDir()
	target := filepath.Join(targets, "real.tar")
	if err := os.WriteFile(target, []byte("old"), 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(links, "out.tar")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(links, "new.tar")
	if err := os.Symlink(filepath.Join("..", filepath.Base(targets), "new.tar"), dangling); err != nil {
		t.Fatal(err)
	}
	e.x.MustRun("export", "--progress", "quiet", "-o", link, e.app)
	e.x.MustRun("export", "--progress", "quiet", "-o", dangling, e.app)
	for _, l := range []string{link, dangling} {
		if mode(t, l)&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symbolic link", l)
		}
	}
	for _, f := range []string{target, filepath.Join(targets, "new.tar")} {
		if dt, err := os.ReadFile(f); err != nil || !bytes.Equal(dt, e.tar) {
			t.Errorf("%s does not hold the export (%d bytes, %v)", f, len(dt), err)
		}
	}
	if m := mode(t, target).Perm(); m != 0o640 {
		t.Errorf("the file replaced through the link has mode %v, want its own 0640", m)
	}
	if ents, _ := os.ReadDir(links); len(ents) != 2 {
		t.Errorf("beside the links: %v, want the two links alone", ents)
	}
	if ents, _ := os.ReadDir(targets); len(ents) != 2 {
		t.Errorf("beside the targets: %v, want the two files alone", ents)
	}
}

func TestOutputFIFO(t *testing.T) {
	t.Parallel()
	e := newOutputEnv(t)
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The test holds a write end of its own, so that the reader opens at
	// once and sees the end only when both writers are gone, however the
	// binary treats the FIFO.
	rw, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan []byte, 1)
	go func() {
		dt, _ := io.ReadAll(r)
		got <- dt
	}()
	e.x.MustRun("export", "--progress", "quiet", "-o", fifo, e.app)
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	if dt := <-got; !bytes.Equal(dt, e.tar) {
		t.Errorf("the FIFO's reader got %d bytes, want the %d of the export", len(dt), len(e.tar))
	}
	if mode(t, fifo)&os.ModeNamedPipe == 0 {
		t.Errorf("%s is no longer a FIFO: %v", fifo, mode(t, fifo))
	}
	if ents, _ := os.ReadDir(filepath.Dir(fifo)); len(ents) != 1 {
		t.Errorf("beside the FIFO: %v", ents)
	}
}

// charDevice returns a character device to write to: a null device made
// in a test folder when the test may make one (as root), else /dev/null,
// which a process that is not root cannot replace.
func charDevice(t *testing.T) string {
	t.Helper()
	if os.Geteuid() == 0 {
		dev := filepath.Join(t.TempDir(), "null")
		if err := syscall.Mknod(dev, syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
			return dev
		}
		// Without CAP_MKNOD, a root process is not allowed to touch /dev/null.
		t.Fatalf("cannot make a character device as root, and /dev/null must not be put at risk")
	}
	return "/dev/null"
}

func TestOutputCharDevice(t *testing.T) {
	t.Parallel()
	e := newOutputEnv(t)
	dev := charDevice(t)
	e.x.MustRun("export", "--progress", "quiet", "-o", dev, e.app)
	e.x.MustRun("create", "--progress", "quiet", "--metadata-file", dev, "-t", e.reg.Host+"/test/dev:1", e.app)
	if m := mode(t, dev); m&os.ModeCharDevice == 0 {
		t.Errorf("%s is no longer a character device: %v", dev, m)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dev)); dev != "/dev/null" && len(ents) != 1 {
		t.Errorf("beside the device: %v", ents)
	}
}

func TestOutputFolderRefusedBeforeRequests(t *testing.T) {
	t.Parallel()
	e := newOutputEnv(t)
	dir := t.TempDir()
	e.reg.ResetRequests()
	e.x.MustFail([]string{"-o " + dir + " is a folder", "name a file"}, "export", "-o", dir, e.app)
	e.x.MustFail([]string{"--metadata-file " + dir + " is a folder"}, "create", "--metadata-file", dir, "-t", e.reg.Host+"/test/moved:1", e.app)
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.x.MustFail([]string{"OCI layout " + file + ": exists and is not a folder"}, "export", "-o", "oci-layout://"+file, e.app)
	assertRequests(t, e.reg, 0)
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("in the folder: %v, want the file alone", ents)
	}
}

func TestOutputUmask(t *testing.T) {
	t.Parallel()
	e := newOutputEnv(t)
	for umask, want := range map[string]os.FileMode{"077": 0o600, "022": 0o644} {
		dir := t.TempDir()
		tar, meta, layout := filepath.Join(dir, "out.tar"), filepath.Join(dir, "meta.json"), filepath.Join(dir, "layout")
		runUmask(t, e.x, umask, "export", "--progress", "quiet", "-o", tar, e.app)
		runUmask(t, e.x, umask, "create", "--progress", "quiet", "--metadata-file", meta, "-t", e.reg.Host+"/test/umask:"+umask, e.app)
		runUmask(t, e.x, umask, "export", "--progress", "quiet", "-o", "oci-layout://"+layout, e.app)
		for _, f := range []string{tar, meta, filepath.Join(layout, "index.json")} {
			if got := mode(t, f).Perm(); got != want {
				t.Errorf("umask %s: %s has mode %v, want %v", umask, filepath.Base(f), got, want)
			}
		}
		// A folder gets x where the file gets r.
		if got, wantDir := mode(t, layout).Perm(), want|(want&0o444)>>2; got != wantDir {
			t.Errorf("umask %s: the layout folder has mode %v, want %v", umask, got, wantDir)
		}
	}
}

// metadataOf parses a metadata file's descriptor digest.
func metadataOf(t *testing.T, dt []byte) digest.Digest {
	t.Helper()
	var m struct {
		Desc struct {
			Digest digest.Digest `json:"digest"`
		} `json:"containerimage.descriptor"`
	}
	if err := json.Unmarshal(dt, &m); err != nil {
		t.Fatalf("metadata %q: %v", dt, err)
	}
	return m.Desc.Digest
}

func TestMetadataFileStdout(t *testing.T) {
	t.Parallel()
	e := newOutputEnv(t)
	res := e.x.MustRun("create", "--progress", "quiet", "--metadata-file", "/dev/stdout", "-t", e.reg.Host+"/test/meta:1", e.app)
	line, rest, _ := strings.Cut(res.Stdout, "\n")
	if d := metadataOf(t, []byte(rest)); line != d.String() || d == "" {
		t.Errorf("stdout %q: want the digest line, then the metadata naming it", res.Stdout)
	}
	// The same to a file behind stdout: both land in it, in order.
	f, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	x := *e.x
	x.StdoutFile = f
	x.MustRun("create", "--progress", "quiet", "--metadata-file", "/dev/stdout", "-t", e.reg.Host+"/test/meta:2", e.app)
	want := strings.ReplaceAll(res.Stdout, "test/meta:1", "test/meta:2")
	if dt, err := os.ReadFile(f.Name()); err != nil || string(dt) != want {
		t.Errorf("stdout redirected to a file holds %q (%v), want %q", dt, err, want)
	}
}

func TestMetadataFileWriteFailsAfterPush(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Fatalf("/dev/full: %v", err)
	}
	e := newOutputEnv(t)
	target := e.reg.Host + "/test/full:1"
	last := e.x.MustFail([]string{"the push succeeded", target, "writing --metadata-file /dev/full failed", "no space left"},
		"create", "--progress", "quiet", "--metadata-file", "/dev/full", "-t", target, e.app)
	dt, _, err := fixture.Fetch(context.Background(), e.reg.AdminHost, "test/full", "1")
	if err != nil {
		t.Fatalf("the tag did not move: %v", err)
	}
	if d := digest.FromBytes(dt); !strings.Contains(last, d.String()) {
		t.Errorf("error %q does not name the digest pushed, %s", last, d)
	}
}

func TestMetadataFileDryRun(t *testing.T) {
	t.Parallel()
	e := newOutputEnv(t)
	meta := filepath.Join(t.TempDir(), "meta.json")
	res := e.x.MustRun("create", "--progress", "quiet", "--dry-run", "--metadata-file", meta, "-t", e.reg.Host+"/test/dry:1", e.app)
	dt, err := os.ReadFile(meta)
	if err != nil {
		t.Fatalf("--dry-run --metadata-file wrote no file: %v", err)
	}
	if got, want := metadataOf(t, dt), digest.FromString(strings.TrimSuffix(res.Stdout, "\n")); got != want {
		t.Errorf("metadata digest %s, want the dry run's index %s", got, want)
	}
	if tags, err := fixture.Tags(context.Background(), e.reg.AdminHost, "test/dry"); err == nil && len(tags) > 0 {
		t.Errorf("a dry run tagged %v", tags)
	}
}

func TestMetadataFileStdoutPlugin(t *testing.T) {
	t.Parallel()
	e := newOutputEnv(t)
	res := e.x.RunPlugin("create", "--progress", "quiet", "--metadata-file", "/dev/stdout", "-t", e.reg.Host+"/test/plugin:1", e.app)
	line, rest, _ := strings.Cut(res.Stdout, "\n")
	if d := metadataOf(t, []byte(rest)); res.ExitCode != 0 || line != d.String() || d == "" {
		t.Errorf("docker imgx create --metadata-file /dev/stdout: exit %d, stdout %q, stderr %q", res.ExitCode, res.Stdout, res.Stderr)
	}
}
