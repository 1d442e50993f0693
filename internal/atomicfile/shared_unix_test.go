//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSharedLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: links owned by another user are made with lchown")
	}
	const other = 65534
	root := t.TempDir()
	mkdir := func(name string, mode os.FileMode, uid int) string {
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, uid); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	link := func(dir, name string, uid int) string {
		l := filepath.Join(dir, name)
		if err := os.Symlink(filepath.Join(root, "target"), l); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(l, uid, uid); err != nil {
			t.Fatal(err)
		}
		return l
	}
	sticky := mkdir("sticky", 0o777|os.ModeSticky, 0)
	theirs := mkdir("theirs", 0o777|os.ModeSticky, other)
	plain := mkdir("plain", 0o777, 0)
	if err := os.Mkdir(filepath.Join(root, "target"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path    string
		refused bool
	}{
		{link(sticky, "planted", other), true},
		{filepath.Join(sticky, "planted", "file"), true}, // a folder link on the way
		{link(sticky, "mine", 0), false},
		{link(theirs, "owners", other), false}, // the folder's owner's link
		{link(plain, "planted", other), false}, // not sticky
		{filepath.Join(sticky, "absent"), false},
		{filepath.Join(sticky, "mine", "file"), false},
	}
	for _, c := range cases {
		err := CheckSharedLinks(c.path)
		if c.refused != (err != nil) {
			t.Errorf("%s: %v, want refused %v", c.path, err, c.refused)
		}
		if err != nil && !strings.Contains(err.Error(), "protected_symlinks") {
			t.Errorf("%s: %v does not say why", c.path, err)
		}
	}
}
