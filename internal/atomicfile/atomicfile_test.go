package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out.tar")
	if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(target, func(w io.Writer) error {
		if _, err := io.WriteString(w, "partial"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
	if got, _ := os.ReadFile(target); string(got) != "old" {
		t.Errorf("target changed on error: %q", got)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("temporary file left: %v", left)
	}

	if err := Write(target, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "new" {
		t.Errorf("target = %q, want new", got)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("files after success: %v", left)
	}
	if err := Write(filepath.Join(dir, "missing", "x.tar"), func(io.Writer) error { return nil }); err == nil {
		t.Error("want an error for a missing directory")
	}
}

func TestDescriptorOf(t *testing.T) {
	for path, want := range map[string]int{
		"/dev/stdout": 1, "/dev/stderr": 2, "/dev/fd/7": 7, "/proc/self/fd/3": 3, "/dev/fd/../stdout": 1,
		"/dev/null": -1, "/dev/fd/x": -1, "out.tar": -1, "/proc/1/fd/1": -1,
	} {
		fd, ok := descriptorOf(path)
		if !ok {
			fd = -1
		}
		if fd != want {
			t.Errorf("descriptorOf(%q) = %d, want %d", path, fd, want)
		}
	}
}

func TestOpenRefusesFolder(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil {
		t.Fatal("Open of a folder succeeded")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left in the folder: %v", ents)
	}
}

func TestAbortRemovesTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	f.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left after Abort: %v", ents)
	}
}
