//go:build unix

package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// CheckSharedLinks refuses a path that goes through a symbolic link in a
// folder shared by all users (world-writable and sticky, such as /tmp)
// when the link is owned by neither the user nor the folder's owner: what
// the kernel's protected_symlinks refuses to follow on open. Another user
// may plant such a link where an output will be written; the file it
// points to would be replaced. Links the user owns are followed.
func CheckSharedLinks(path string) error {
	p, err := filepath.Abs(path)
	if err != nil {
		return nil // the open that follows reports it
	}
	for hops := 0; hops <= 40; hops++ {
		link, rest, fi := firstLink(p)
		if fi == nil {
			return nil
		}
		if err := checkLink(path, link, fi); err != nil {
			return err
		}
		target, err := os.Readlink(link)
		if err != nil {
			return nil
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(link), target)
		}
		p = filepath.Join(target, rest)
	}
	return nil // too many links: the open that follows reports it
}

// firstLink returns the first symbolic link on the absolute path p (the
// link's path and the rest of p after it); fi is nil when p has none up to
// the first part that does not exist.
func firstLink(p string) (string, string, fs.FileInfo) {
	parts := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
	cur := "/"
	for i, part := range parts {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", "", nil
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return cur, filepath.Join(parts[i+1:]...), fi
		}
	}
	return "", "", nil
}

// checkLink applies the kernel's rule to one link: followed when outside a
// sticky world-writable folder, or owned by the user or the folder's owner.
func checkLink(path, link string, fi fs.FileInfo) error {
	dir := filepath.Dir(link)
	di, err := os.Stat(dir)
	if err != nil {
		return nil
	}
	if di.Mode()&fs.ModeSticky == 0 || di.Mode().Perm()&0o002 == 0 {
		return nil
	}
	linkOwner, ok1 := owner(fi)
	dirOwner, ok2 := owner(di)
	if !ok1 || !ok2 || linkOwner == uint32(os.Geteuid()) || linkOwner == dirOwner {
		return nil
	}
	what := fmt.Sprintf("%s is a symbolic link", path)
	if link != filepath.Clean(path) {
		what = fmt.Sprintf("%s goes through the symbolic link %s", path, link)
	}
	return fmt.Errorf("%s owned by uid %d in %s, a folder all users may write to (sticky): not followed, as the kernel's protected_symlinks does; name the file it points to, or remove the link", what, linkOwner, dir)
}

func owner(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}
