package tests

import (
	"net/http"
	"net/http/httptest"
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
		{"ca is /dev/zero", "ca = \"/dev/zero\"\n", "read CA /dev/zero: /dev/zero is a character device, not a regular file: name a file"},
		{"key is a FIFO", "client = [[\"" + cert + "\", \"" + fifo + "\"]]\n", fifo + " is a named pipe (FIFO), not a regular file: name a file"},
		{"cert is a FIFO", "client = [\"" + fifo + "\"]\n", fifo + " is a named pipe (FIFO), not a regular file: name a file"},
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
		x.MustFail([]string{file + " is a named pipe (FIFO), not a regular file"}, "inspect", ref)
	})
}

// fakeEngine answers the Docker engine API's ping and image save: the save
// with body (status 200) or, when status is set, that error status.
func fakeEngine(t *testing.T, status int, body []byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			w.Header().Set("Api-Version", "1.47")
			w.Header().Set("Ostype", "linux")
			_, _ = w.Write([]byte("OK"))
		case strings.HasSuffix(r.URL.Path, "/images/get") && status != 0:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(body)
		case strings.HasSuffix(r.URL.Path, "/images/get"):
			w.Header().Set("Content-Type", "application/x-tar")
			_, _ = w.Write(body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return "tcp://" + strings.TrimPrefix(srv.URL, "http://")
}

// TestEngineSaveBounded reads docker-daemon:// from an engine whose save
// passes the spool's limit, and from one whose error carries terminal
// escapes: the first is refused at the limit, naming how to raise it; the
// second's words reach the ERROR line as one line without escapes.
func TestEngineSaveBounded(t *testing.T) {
	t.Parallel()
	x := newImgx(t)
	big := x.With("DOCKER_HOST="+fakeEngine(t, 0, make([]byte, 3<<20)), "DOCKER_IMGX_MAX_DECOMPRESSED=1MiB")
	big.MustFail([]string{"docker-daemon://app:1", "the engine's save is over 1048576 bytes, the limit of a save spooled to disk: set DOCKER_IMGX_MAX_DECOMPRESSED to a larger size to allow it"},
		"inspect", "docker-daemon://app:1")
	hostile := x.With("DOCKER_HOST=" + fakeEngine(t, http.StatusInternalServerError, []byte(`{"message":"boom\u001b[2J\u001b]0;owned\u0007\nsecond line"}`)))
	line := hostile.MustFail([]string{"save from the Docker engine", "boom second line"}, "inspect", "docker-daemon://app:1")
	if strings.ContainsAny(line, "\x1b\x07") {
		t.Errorf("escapes reached the ERROR line: %q", line)
	}
}
