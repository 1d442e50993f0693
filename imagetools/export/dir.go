package export

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
)

// WriteLayoutDir writes the images as an OCI image layout folder dir, with
// the same entries Write writes into a tar (FormatOCI is the usual format
// here). The folder is built beside dir under a temporary name and
// renamed to dir once every file is written and synced, so dir is either
// complete or absent. dir must not exist or be an empty folder.
//
// Write's tar stream is extracted through a pipe rather than written file
// by file: one code path decides the content, and every entry name has been
// checked by Write (and is checked again here). The Result is Write's.
func WriteLayoutDir(ctx context.Context, dir string, imgs []Image, opts Options) (res Result, retErr error) {
	dir = filepath.Clean(dir)
	if err := checkTargetDir(dir); err != nil {
		return Result{}, err
	}
	parent, base := filepath.Split(dir)
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Result{}, fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-*")
	if err != nil {
		return Result{}, fmt.Errorf("create OCI layout %s: %w", dir, err)
	}
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if res, err = writeExtracted(ctx, tmp, imgs, opts); err != nil {
		return res, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return res, fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	// An empty folder in the way is replaced; rename refuses a non-empty one.
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return res, fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	return res, nil
}

// writeExtracted runs Write into a pipe whose other end is extracted under
// dir.
func writeExtracted(ctx context.Context, dir string, imgs []Image, opts Options) (Result, error) {
	pr, pw := io.Pipe()
	g, gctx := errgroup.WithContext(ctx)
	var (
		res      Result
		writeErr error
	)
	g.Go(func() error {
		res, writeErr = Write(gctx, pw, imgs, opts)
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
			return res, writeErr
		}
		return res, err
	}
	return res, nil
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
			return fmt.Errorf("read export stream: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !filepath.IsLocal(hdr.Name) {
			return fmt.Errorf("export stream: entry %q is not a local path", hdr.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", hdr.Name, err)
			}
		case tar.TypeReg:
			if err := extractFile(tr, target, hdr); err != nil {
				return err
			}
		default:
			return fmt.Errorf("export stream: entry %q has unsupported type %q", hdr.Name, hdr.Typeflag)
		}
	}
}

func extractFile(r io.Reader, target string, hdr *tar.Header) (retErr error) {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
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
