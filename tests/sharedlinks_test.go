package tests

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// nobody is the uid of another user who plants links in a shared folder.
const nobody = 65534

// sharedFolder makes a folder all users may write to, sticky, as /tmp is;
// it and the test folder it sits in belong to the user running the tests.
func sharedFolder(t *testing.T) (shared, outside string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a link owned by another user is made with lchown")
	}
	outside = t.TempDir()
	shared = filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return shared, outside
}

// plantLink makes the symbolic link name -> target in dir, owned by uid.
func plantLink(t *testing.T, target, link string, uid int) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// TestOutputSharedFolderLinks: in a sticky world-writable folder, a link
// another user planted is not followed by export -o, --metadata-file or an
// OCI layout target, for the link itself or a folder link on the way (the
// file it points to stays as it was, nothing is written beside it); a link
// the user owns is followed as anywhere else.
func TestOutputSharedFolderLinks(t *testing.T) {
	t.Parallel()
	e := newOutputEnv(t)
	shared, outside := sharedFolder(t)
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyDir := filepath.Join(outside, "empty")
	if err := os.Mkdir(emptyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	plantLink(t, victim, filepath.Join(shared, "out.tar"), nobody)
	plantLink(t, outside, filepath.Join(shared, "dir"), nobody)
	plantLink(t, emptyDir, filepath.Join(shared, "layout"), nobody)
	want := []string{"symbolic link", "owned by uid 65534", shared, "sticky", "not followed", "protected_symlinks"}
	e.x.MustFail(append(want, "-o "+filepath.Join(shared, "out.tar")+" is a symbolic link"),
		"export", "--progress", "quiet", "-o", filepath.Join(shared, "out.tar"), e.app)
	e.x.MustFail(append(want, "goes through the symbolic link "+filepath.Join(shared, "dir")),
		"export", "--progress", "quiet", "-o", filepath.Join(shared, "dir", "victim"), e.app)
	e.x.MustFail(append(want, "OCI layout "+filepath.Join(shared, "layout")),
		"export", "--progress", "quiet", "-o", "oci-layout://"+filepath.Join(shared, "layout"), e.app)
	e.x.MustFail(append(want, filepath.Join(shared, "out.tar")),
		"create", "--dry-run", "--metadata-file", filepath.Join(shared, "out.tar"), e.app)
	e.x.MustFail(append(want, "OCI layout "+filepath.Join(shared, "layout")),
		"create", "--progress", "quiet", "-t", "oci-layout://"+filepath.Join(shared, "layout")+":1", e.app)
	if dt, err := os.ReadFile(victim); err != nil || string(dt) != "precious" {
		t.Errorf("the file behind the link changed: %q, %v", dt, err)
	}
	if ents, _ := os.ReadDir(emptyDir); len(ents) != 0 {
		t.Errorf("the folder behind the link holds %v", ents)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 2 {
		t.Errorf("beside the file behind the link: %v, want it and the empty folder alone", ents)
	}
	if ents, _ := os.ReadDir(shared); len(ents) != 3 {
		t.Errorf("in the shared folder: %v, want the three links alone", ents)
	}

	t.Run("a link of the user's own is followed", func(t *testing.T) {
		mine := filepath.Join(shared, "mine.tar")
		plantLink(t, victim, mine, os.Geteuid())
		e.x.MustRun("export", "--progress", "quiet", "-o", mine, e.app)
		if dt, err := os.ReadFile(victim); err != nil || !bytes.Equal(dt, e.tar) {
			t.Errorf("the file behind the user's link does not hold the export (%d bytes, %v)", len(dt), err)
		}
		if mode(t, mine)&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symbolic link", mine)
		}
	})
}
