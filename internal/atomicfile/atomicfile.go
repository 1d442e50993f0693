// Package atomicfile writes output files so that they are either complete
// or untouched: through a temporary file beside the target, renamed on
// success. It imports only the standard library.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write writes a file through write: to a temporary file beside path,
// renamed to path when write and every close succeed, and removed on any
// error, so that path is either complete or untouched. write receives the
// temporary *os.File itself, unwrapped, so that export.Write can write blobs
// at their offsets in parallel.
// moby/sys/atomicwriter is not used: it commits on Close and has no way to
// abandon the file when write fails for a reason other than a write error.
func Write(path string, write func(io.Writer) error) (retErr error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if retErr != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
