package imagetar

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
)

// maxEntries bounds the entries of a tar indexed: an image tar holds a few
// per layer; millions would only fill memory.
const maxEntries = 1 << 20

// entry is where a file's bytes lie in the (decompressed) tar.
type entry struct {
	off, size int64
}

// tarIndex is every regular file of a tar by its clean name, read once from
// the headers; the bytes stay in the file and are read by offset.
type tarIndex struct {
	f       *os.File
	size    int64
	entries map[string]entry
}

// section reads one entry's bytes.
func (t *tarIndex) section(e entry) *io.SectionReader {
	return io.NewSectionReader(t.f, e.off, e.size)
}

// indexTar reads the headers of the tar in f (positioned at its start) and
// refuses what an image tar never holds and a hostile one might: names
// with ".." or absolute names, duplicates, devices, links that lead
// outside the tar or to nothing, sizes past the end of the file. Links to
// a file inside the tar (docker save writes them for a repeated layer) are
// read as that file: nothing is ever extracted.
func indexTar(f *os.File, size int64) (*tarIndex, error) {
	t := &tarIndex{f: f, size: size, entries: map[string]entry{}}
	links := map[string]string{}
	tr := tar.NewReader(f)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, tarError(err, n)
		}
		if n >= maxEntries {
			return nil, fmt.Errorf("holds more than %d entries: not an image tar", maxEntries)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return nil, err
		}
		if _, dup := t.entries[name]; dup {
			return nil, fmt.Errorf("entry %q appears twice", hdr.Name)
		}
		if _, dup := links[name]; dup {
			return nil, fmt.Errorf("entry %q appears twice", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			if hdr.Size < 0 || hdr.Size > size-off {
				return nil, fmt.Errorf("entry %q claims %d bytes, more than the %d left in the tar: truncated or corrupt", hdr.Name, hdr.Size, size-off)
			}
			t.entries[name] = entry{off: off, size: hdr.Size}
		case tar.TypeSymlink, tar.TypeLink:
			target, err := linkTarget(hdr)
			if err != nil {
				return nil, err
			}
			links[name] = target
		default:
			return nil, fmt.Errorf("entry %q is of tar type %q, which an image tar never holds", hdr.Name, hdr.Typeflag)
		}
	}
	// A link leads to a regular file, never to another link: sorted, so
	// that the line for a tar of many bad links is always the same.
	aliases := map[string]entry{}
	for _, name := range slices.Sorted(maps.Keys(links)) {
		e, ok := t.entries[links[name]]
		if !ok {
			return nil, fmt.Errorf("entry %q links to %q, which is not a file in the tar", name, links[name])
		}
		aliases[name] = e
	}
	maps.Copy(t.entries, aliases)
	return t, nil
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
