package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// TestHostsFileBoundedReads names /dev/zero as a hosts.toml's CA and a
// FIFO as its client key: each is refused at once with a line naming the
// file (before: /dev/zero was read until memory ran out, the FIFO opened
// forever), and a hosts.toml that is itself a FIFO likewise.
func TestHostsFileBoundedReads(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	pushImage(t, reg, "test/app", "1", fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 2371}))
	ref := reg.Host + "/test/app:1"
	fifo := filepath.Join(t.TempDir(), "key.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cert := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(cert, []byte("not read further"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, toml, want string
	}{
		{"ca is /dev/zero", "ca = \"/dev/zero\"\n", "read CA /dev/zero: /dev/zero is not a regular file (a character device): name a file"},
		{"key is a FIFO", "client = [[\"" + cert + "\", \"" + fifo + "\"]]\n", fifo + " is not a regular file (a FIFO): name a file"},
		{"cert is a FIFO", "client = [\"" + fifo + "\"]\n", fifo + " is not a regular file (a FIFO): name a file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := newImgx(t)
			file := writeHostsTOML(t, x, reg.Host, "server = \"http://"+reg.Host+"\"\n\n[host.\"http://"+reg.Host+"\"]\n  "+c.toml)
			res := x.RunMeasured("inspect", ref)
			last := strings.TrimSpace(res.Stderr)
			last = last[strings.LastIndex(last, "\n")+1:]
			if res.ExitCode != 1 || !strings.HasPrefix(last, "ERROR: ") || !strings.Contains(last, file) || !strings.Contains(last, c.want) {
				t.Fatalf("exit %d, want 1 naming %s and saying %q:\n%s", res.ExitCode, file, c.want, res.Stderr)
			}
			checkCeilings(t, res)
		})
	}
	t.Run("hosts.toml is a FIFO", func(t *testing.T) {
		x := newImgx(t)
		file := writeHostsTOML(t, x, reg.Host, "")
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(file, 0o600); err != nil {
			t.Fatal(err)
		}
		x.MustFail([]string{file + " is not a regular file (a FIFO)"}, "inspect", ref)
	})
}
