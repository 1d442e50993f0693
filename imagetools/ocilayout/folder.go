package ocilayout

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/docker-imgx/docker-imgx/internal/atomicfile"
	"golang.org/x/sync/errgroup"
)

// WriteFolder writes a new OCI image layout folder dir from the layout tar
// that write produces (export.Write in the oci or docker format): the
// folder is built beside dir under a temporary name, each entry extracted as
// it streams, and renamed to dir once every file is written and synced, so
// dir is either complete or absent. dir must not exist or be an empty
// folder. This is how a whole layout is written at once; the Layouts place
// adds to a layout blob by blob.
//
// Extracting the tar, rather than writing file by file, keeps one code path
// deciding the content: the folder holds exactly the tar's entries, each
// name checked again here.
func WriteFolder(ctx context.Context, dir string, write func(w io.Writer) error) (retErr error) {
	dir, err := followFolderLink(filepath.Clean(dir))
	if err != nil {
		return err
	}
	if err := checkTargetDir(dir); err != nil {
		return err
	}
	parent, base := filepath.Split(dir)
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o777); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := mkdirTemp(parent, base)
	if err != nil {
		return fmt.Errorf("create OCI layout %s: %w", dir, err)
	}
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := writeExtracted(ctx, tmp, write); err != nil {
		return err
	}
	// An empty folder in the way is replaced; rename refuses a non-empty one.
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	return nil
}

// writeExtracted runs write into a pipe whose other end is extracted under
// dir.
func writeExtracted(ctx context.Context, dir string, write func(w io.Writer) error) error {
	pr, pw := io.Pipe()
	g, gctx := errgroup.WithContext(ctx)
	var writeErr error
	g.Go(func() error {
		writeErr = write(pw)
		pw.CloseWithError(writeErr)
		return writeErr
	})
	g.Go(func() error {
		err := extract(gctx, pr, dir)
		pr.CloseWithError(err)
		return err
	})
	if err := g.Wait(); err != nil {
		// The extractor only echoes a write error; report the cause.
		if writeErr != nil {
			return writeErr
		}
		return err
	}
	return nil
}

// CheckNewFolder fails unless dir (its links followed) is absent or an
// empty folder: what WriteFolder checks again, for a command to call before
// anything is fetched.
func CheckNewFolder(dir string) error {
	dir, err := followFolderLink(filepath.Clean(dir))
	if err != nil {
		return err
	}
	return checkTargetDir(dir)
}

// followFolderLink returns the folder a symbolic link points to, so that
// the new layout replaces that (empty) folder and the link stays.
func followFolderLink(dir string) (string, error) {
	if err := atomicfile.CheckSharedLinks(dir); err != nil {
		return "", fmt.Errorf("OCI layout %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return dir, nil
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("OCI layout %s: a symbolic link to nothing: %w", dir, err)
	}
	return real, nil
}

// mkdirTemp creates a new folder beside base in parent with mode 0777 less
// the umask, as mkdir gives (os.MkdirTemp makes it 0700).
func mkdirTemp(parent, base string) (string, error) {
	for range 100 {
		tmp := filepath.Join(parent, "."+base+".tmp-"+strconv.FormatUint(rand.Uint64(), 36))
		err := os.Mkdir(tmp, 0o777)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return tmp, err
	}
	return "", errors.New("no free temporary name")
}

// checkTargetDir fails unless dir is absent or an empty folder, before
// anything is fetched.
func checkTargetDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("OCI layout %s: exists and is not a folder", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("OCI layout %s: folder exists and is not empty: remove it or choose another", dir)
	}
	return nil
}

// extract writes the folders and regular files of a tar under dir.
// Any other entry, or a name that is not local, is an error.
func extract(ctx context.Context, r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read layout stream: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !filepath.IsLocal(hdr.Name) {
			return fmt.Errorf("layout stream: entry %q is not a local path", hdr.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o777); err != nil {
				return fmt.Errorf("create %s: %w", hdr.Name, err)
			}
		case tar.TypeReg:
			if err := extractFile(tr, target, hdr); err != nil {
				return err
			}
		default:
			return fmt.Errorf("layout stream: entry %q has unsupported type %q", hdr.Name, hdr.Typeflag)
		}
	}
}

func extractFile(r io.Reader, target string, hdr *tar.Header) (retErr error) {
	if err := os.MkdirAll(filepath.Dir(target), 0o777); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(hdr.Name), err)
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(hdr.Mode).Perm())
	if err != nil {
		return fmt.Errorf("create %s: %w", hdr.Name, err)
	}
	defer func() {
		if retErr != nil {
			_ = f.Close()
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", hdr.Name, err)
	}
	return nil
}
