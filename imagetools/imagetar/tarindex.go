package imagetar

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
)

// Bounds of what indexing a tar holds in memory. An image tar holds a few
// entries per layer (docker save: a folder, VERSION, json, layer.tar) with
// names of under 100 bytes: 262144 entries are thousands of images, and
// their names a few MiB. A hostile tar of millions of long names (a 634 KB
// .tgz once took 809 MB) is refused at the first entry past either.
const (
	maxEntries   = 1 << 18
	maxNameBytes = 32 << 20
)

// maxSparse bounds the bytes of a tar's sparse files once expanded (the
// spool's own floor): their holes cost nothing in the tar.
const maxSparse = minDecompressed

// entry is where a file's bytes lie in the (decompressed) tar, or, for a
// sparse file, in the spool of expanded sparse files.
type entry struct {
	off, size int64
	expanded  bool
}

// tarIndex is every regular file of a tar by its clean name, read once from
// the headers; the bytes stay in the file and are read by offset.
type tarIndex struct {
	f       *os.File
	size    int64
	entries map[string]entry
	// sparse holds the sparse files expanded (nil: none), a nameless
	// temporary file of sparseSize bytes.
	sparse     *os.File
	sparseSize int64
}

// at is the file holding e's bytes.
func (t *tarIndex) at(e entry) io.ReaderAt {
	if e.expanded {
		return t.sparse
	}
	return t.f
}

// section reads one entry's bytes.
func (t *tarIndex) section(e entry) *io.SectionReader {
	return io.NewSectionReader(t.at(e), e.off, e.size)
}

// close closes the tar and the spool of sparse files.
func (t *tarIndex) close() error {
	if t.sparse != nil {
		_ = t.sparse.Close() // read only: nothing to lose
	}
	return t.f.Close()
}

// isSparse reports a GNU sparse file, old style or in PAX records, which
// archive/tar expands (holes read as zeros) as docker load reads it.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// expand copies the sparse file r reads (its holes as zeros) to the end of
// the spool of sparse files, refusing one that would pass maxSparse.
func (t *tarIndex) expand(ctx context.Context, r io.Reader, hdr *tar.Header, dir string) (entry, error) {
	if hdr.Size < 0 || hdr.Size > maxSparse-t.sparseSize {
		return entry{}, fmt.Errorf("entry %q is a sparse file of %d bytes: expanded, the tar's sparse files would pass %d bytes", hdr.Name, hdr.Size, int64(maxSparse))
	}
	if t.sparse == nil {
		f, err := os.CreateTemp(dir, "imgx-sparse-*")
		if err != nil {
			return entry{}, fmt.Errorf("spool sparse files: %w", err)
		}
		_ = os.Remove(f.Name())
		t.sparse = f
	}
	n, err := io.Copy(io.NewOffsetWriter(t.sparse, t.sparseSize), ctxReader{ctx: ctx, r: r})
	if err != nil {
		return entry{}, fmt.Errorf("expand sparse entry %q: %w", hdr.Name, err)
	}
	e := entry{off: t.sparseSize, size: n, expanded: true}
	t.sparseSize += n
	return e, nil
}

// indexTar reads the headers of the tar in f (positioned at its start) and
// refuses what an image tar never holds and a hostile one might: names
// with ".." or absolute names, duplicates, devices, links that lead
// outside the tar or to nothing, sizes past the end of the file. Links to
// a file inside the tar (docker save writes them for a repeated layer) are
// read as that file: nothing is ever extracted.
// A PAX global header (Python's tarfile writes one) is skipped and a sparse
// file expanded into a spool in tempDir, as archive/tar reads them for
// docker load. On an error the caller closes f; the index closes nothing.
func indexTar(ctx context.Context, f *os.File, size int64, tempDir string) (*tarIndex, error) {
	return indexTarWithin(ctx, f, size, tempDir, indexLimits{entries: maxEntries, nameBytes: maxNameBytes})
}

// indexLimits bound what an index holds: maxEntries and maxNameBytes but
// in tests.
type indexLimits struct {
	entries, nameBytes int
}

func indexTarWithin(ctx context.Context, f *os.File, size int64, tempDir string, limits indexLimits) (*tarIndex, error) {
	t := &tarIndex{f: f, size: size, entries: map[string]entry{}}
	r := &tarReader{tr: tar.NewReader(f), links: map[string]string{}, tempDir: tempDir, limits: limits}
	err := t.read(ctx, r)
	if err == nil {
		err = t.resolveLinks(r.links)
	}
	if err != nil {
		if t.sparse != nil {
			_ = t.sparse.Close() // read only: nothing to lose
		}
		return nil, err
	}
	return t, nil
}

// tarReader is the state of one pass over a tar's headers.
type tarReader struct {
	tr      *tar.Reader
	links   map[string]string
	names   int
	tempDir string
	limits  indexLimits
}

// read indexes every header of the tar.
func (t *tarIndex) read(ctx context.Context, r *tarReader) error {
	for n := 0; ; n++ {
		hdr, err := r.tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return tarError(err, n)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // defaults for the entries after it: none that an image tar needs
		}
		if n >= r.limits.entries {
			return fmt.Errorf("holds more than %d entries: not an image tar", r.limits.entries)
		}
		if err := t.add(ctx, r, hdr); err != nil {
			return err
		}
	}
}

// add indexes one entry.
func (t *tarIndex) add(ctx context.Context, r *tarReader, hdr *tar.Header) error {
	if r.names += len(hdr.Name) + len(hdr.Linkname); r.names > r.limits.nameBytes {
		return fmt.Errorf("its entries' names add up to more than %d bytes: not an image tar", r.limits.nameBytes)
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	_, dupFile := t.entries[name]
	if _, dupLink := r.links[name]; dupFile || dupLink {
		return fmt.Errorf("entry %q appears twice", hdr.Name)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return nil
	case tar.TypeReg, tar.TypeGNUSparse:
		if isSparse(hdr) {
			t.entries[name], err = t.expand(ctx, r.tr, hdr, r.tempDir)
			return err
		}
		off, err := t.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		if hdr.Size < 0 || hdr.Size > t.size-off {
			return fmt.Errorf("entry %q claims %d bytes, more than the %d left in the tar: truncated or corrupt", hdr.Name, hdr.Size, t.size-off)
		}
		t.entries[name] = entry{off: off, size: hdr.Size}
		return nil
	case tar.TypeSymlink, tar.TypeLink:
		target, err := linkTarget(hdr)
		if err != nil {
			return err
		}
		r.links[name] = target
		return nil
	}
	return fmt.Errorf("entry %q is %s (tar type %q): an image tar holds files, folders and links only", hdr.Name, tarTypeName(hdr.Typeflag), hdr.Typeflag)
}

// resolveLinks reads each link as the file it leads to, never another
// link: sorted, so that the line for a tar of many bad links is always the
// same.
func (t *tarIndex) resolveLinks(links map[string]string) error {
	aliases := map[string]entry{}
	for _, name := range slices.Sorted(maps.Keys(links)) {
		e, ok := t.entries[links[name]]
		if !ok {
			return fmt.Errorf("entry %q links to %q, which is not a file in the tar", name, links[name])
		}
		aliases[name] = e
	}
	maps.Copy(t.entries, aliases)
	return nil
}

// tarTypeName names the entry types an image tar never holds.
func tarTypeName(t byte) string {
	switch t {
	case tar.TypeChar:
		return "a character device"
	case tar.TypeBlock:
		return "a block device"
	case tar.TypeFifo:
		return "a FIFO"
	case tar.TypeCont:
		return "a contiguous file"
	}
	return "of an unknown type"
}

// tarError says plainly why the headers could not be read.
func tarError(err error, n int) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the tar is truncated (%w)", err)
	case n == 0:
		return fmt.Errorf("not a tar: %w", err)
	}
	return fmt.Errorf("read tar: %w", err)
}

// cleanName returns an entry name relative to the tar's root, refusing
// absolute names and any with a ".." element.
func cleanName(name string) (string, error) {
	if path.IsAbs(name) || strings.HasPrefix(name, `\`) {
		return "", fmt.Errorf("entry %q has an absolute name: refused", name)
	}
	if strings.Contains(name, `\`) {
		return "", fmt.Errorf("entry %q holds a backslash: refused", name)
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("entry %q names a parent folder (..): refused", name)
		}
	}
	c := path.Clean(name)
	if c == "." || c == "" {
		return "", fmt.Errorf("entry %q has no name: refused", name)
	}
	return c, nil
}

// linkTarget resolves a link's target to a clean name in the tar: a
// symlink's relative to its own folder, a hard link's from the root.
func linkTarget(hdr *tar.Header) (string, error) {
	target := hdr.Linkname
	if path.IsAbs(target) {
		return "", fmt.Errorf("entry %q links to the absolute path %q: refused", hdr.Name, target)
	}
	if hdr.Typeflag == tar.TypeSymlink {
		target = path.Join(path.Dir(path.Clean(hdr.Name)), target)
	}
	c := path.Clean(target)
	if c == ".." || strings.HasPrefix(c, "../") || c == "." {
		return "", fmt.Errorf("entry %q links outside the tar (%q): refused", hdr.Name, hdr.Linkname)
	}
	return c, nil
}
