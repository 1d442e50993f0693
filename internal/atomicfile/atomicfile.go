// Package atomicfile writes output files so that they are either complete
// or untouched: through a temporary file beside the target, renamed on
// success. A target that is a device or a pipe is written through instead,
// and a symbolic link is followed, never replaced (unless another user
// planted it in a shared folder: CheckSharedLinks).
package atomicfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// File is an output opened before the work that fills it: the target was
// looked at, and the temporary file beside it (or the device or pipe
// itself) is open, so that a target that cannot be written fails before
// anything is fetched or pushed. Commit writes it; Abort, deferred, removes
// what an uncommitted File left.
type File struct {
	path    string // as the user named it
	f       *os.File
	tmp     string // the temporary file; "" when written through
	final   string // where tmp is renamed to: path with its links followed
	through bool
	done    bool
}

// Open looks at path and opens what will be written:
//   - a character device or a FIFO (/dev/null, a named pipe) is opened as
//     it is and written through, streamed; so is a path naming one of the
//     process's descriptors (/dev/stdout, /dev/fd/N), whatever is behind it;
//   - a symbolic link is followed: the temporary file goes beside the
//     file it points to, so that the rename is atomic there and the link
//     stays; except a link in a shared folder that the user does not own
//     (CheckSharedLinks);
//   - a new file gets the mode 0666 less the umask, as docker save and
//     crane give; an existing regular file keeps its mode;
//   - a folder, a block device or a socket is refused.
//
// Open waits for a FIFO's reader without end: see OpenContext.
func Open(path string) (*File, error) { return OpenContext(context.Background(), path) }

// OpenContext is Open; waiting for the reader of a FIFO ends with ctx.
func OpenContext(ctx context.Context, path string) (*File, error) {
	if err := CheckSharedLinks(path); err != nil {
		return nil, err
	}
	if f, ok, err := openDescriptor(path); ok {
		if err != nil {
			return nil, err
		}
		return &File{path: path, f: f, through: true}, nil
	}
	final, fi, err := resolve(path)
	if err != nil {
		return nil, err
	}
	if fi != nil && !fi.Mode().IsRegular() {
		var f *os.File
		if fi.Mode()&fs.ModeNamedPipe != 0 {
			f, err = openFIFO(ctx, path)
		} else {
			f, err = os.OpenFile(path, os.O_WRONLY, 0)
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		return &File{path: path, f: f, through: true}, nil
	}
	perm := fs.FileMode(0o666)
	if fi != nil {
		perm = fi.Mode().Perm()
	}
	f, tmp, err := createTemp(final, perm)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	if fi != nil {
		// The umask cut the mode at creation; the file replaced had it whole.
		if err := f.Chmod(perm); err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
	}
	return &File{path: path, f: f, tmp: tmp, final: final}, nil
}

// resolve follows path's links and says what is there: the path the
// rename goes to and, when something exists, what it is. A folder, block
// device, socket or a missing parent folder is an error.
func resolve(path string) (string, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		final, err := followLinks(path)
		if err != nil {
			return "", nil, err
		}
		return final, nil, checkParent(path, final)
	case err != nil:
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	m := fi.Mode()
	switch {
	case m.IsDir():
		return "", nil, fmt.Errorf("%s is a folder: name a file (in it or elsewhere)", path)
	case m&fs.ModeNamedPipe != 0, m&fs.ModeDevice != 0 && m&fs.ModeCharDevice != 0:
		return path, fi, nil
	case !m.IsRegular():
		return "", nil, fmt.Errorf("%s is %s, not a file, a pipe or a character device: name a file", path, Kind(m))
	}
	final, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	return final, fi, nil
}

// Kind names the kind of file m describes, with its article, for a line
// that refuses it: "a folder", "a named pipe (FIFO)", "a character
// device", "a block device", "a socket", "a regular file", else "a special
// file". Every refusal of a file by its kind says it the same way.
func Kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsRegular():
		return "a regular file"
	}
	return "a special file"
}

// followLinks returns where a path that does not exist yet will be
// created: a dangling symbolic link is followed to the file it names.
func followLinks(path string) (string, error) {
	for range 40 {
		target, err := os.Readlink(path)
		if err != nil {
			// Not a link (or nothing there): the path itself.
			return path, nil
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		path = target
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", path)
}

// checkParent refuses a file whose folder does not exist: the file is
// written beside its target and renamed.
func checkParent(path, final string) error {
	dir := filepath.Dir(final)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: folder %s does not exist: create it first", path, dir)
	case err != nil:
		return fmt.Errorf("%s: %w", path, err)
	case !fi.IsDir():
		return fmt.Errorf("%s: %s is not a folder", path, dir)
	}
	return nil
}

// createTemp creates a new file beside final with mode perm (less the
// umask): os.CreateTemp would make it 0600. It is opened for reading too:
// an export reads back what it wrote (the configs it checks).
func createTemp(final string, perm fs.FileMode) (*os.File, string, error) {
	dir, base := filepath.Split(final)
	for range 100 {
		tmp := filepath.Join(dir, "."+base+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, tmp, err
	}
	return nil, "", errors.New("no free temporary name")
}

// Name is the path as it was given to Open.
func (f *File) Name() string { return f.path }

// Streams reports whether the target is written through (a device or a
// pipe): the bytes go out in order, and a failure cannot take them back.
func (f *File) Streams() bool { return f != nil && f.through }

// Commit runs write on the open file. A file is renamed over its target
// when write and every close succeed and removed otherwise, so the target
// is complete or untouched; a device or pipe is written through and closed.
// write receives the *os.File itself, unwrapped, so that export.Write can
// write blobs at their offsets in parallel in a regular file.
func (f *File) Commit(write func(io.Writer) error) error {
	if f.done {
		return fmt.Errorf("write %s: already written", f.path)
	}
	f.done = true
	if err := write(f.f); err != nil {
		f.discard()
		return err
	}
	if f.through {
		if err := f.f.Close(); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		return nil
	}
	if err := f.f.Sync(); err != nil {
		f.discard()
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	if err := f.f.Close(); err != nil {
		_ = os.Remove(f.tmp)
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	if err := os.Rename(f.tmp, f.final); err != nil {
		_ = os.Remove(f.tmp)
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

// Abort closes a File that was not committed and removes its temporary
// file; after Commit it does nothing. It is meant to be deferred.
func (f *File) Abort() {
	if f == nil || f.done {
		return
	}
	f.done = true
	f.discard()
}

func (f *File) discard() {
	_ = f.f.Close()
	if f.tmp != "" {
		_ = os.Remove(f.tmp)
	}
}

// Write opens path and commits write to it at once (see Open and Commit).
func Write(path string, write func(io.Writer) error) error {
	f, err := Open(path)
	if err != nil {
		return err
	}
	return f.Commit(write)
}
