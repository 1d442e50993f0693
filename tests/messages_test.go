package tests

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// errorLine is the last line of stderr.
func errorLine(res result) string {
	lines := strings.Split(strings.TrimRight(res.Stderr, "\n"), "\n")
	return lines[len(lines)-1]
}

// wantErrorLine fails unless the run exited 1 with want as stderr's last line.
func wantErrorLine(t *testing.T, what string, res result, want string) {
	t.Helper()
	if res.ExitCode != 1 || errorLine(res) != want {
		t.Errorf("%s: exit %d, last line\n%q\nwant\n%q\nstderr:\n%s", what, res.ExitCode, errorLine(res), want, res.Stderr)
	}
}

// TestUnreachableSaidOnce: a registry nobody answers at. The error is said
// once, on the last line, naming the reference once and the host plainly;
// the plain progress display only marks the step failed, with no empty
// log block; the same through docker.
func TestUnreachableSaidOnce(t *testing.T) {
	t.Parallel()
	x := newImgx(t)
	dir := t.TempDir()
	const src = "127.0.0.1:1/foo:bar"
	const line = "ERROR: fetch 127.0.0.1:1/foo:bar: cannot reach 127.0.0.1:1 (connection refused)"
	export := []string{"export", "--progress", "plain", "-o", filepath.Join(dir, "x.tar"), src}
	want := "#1 resolving 127.0.0.1:1/foo:bar\n#1 ERROR: failed\n" + line + "\n"
	if res := x.Run(export...); res.ExitCode != 1 || res.Stderr != want {
		t.Errorf("export: exit %d, stderr\n%s\nwant\n%s", res.ExitCode, res.Stderr, want)
	}
	wantErrorLine(t, "inspect", x.Run("inspect", src), line)
	wantErrorLine(t, "create", x.Run("create", "--progress", "plain", "-t", "oci-layout://"+filepath.Join(dir, "l"), src), line)
	if res := x.RunPlugin(export...); res.ExitCode != 1 || res.Stderr != want {
		t.Errorf("docker imgx export: exit %d, stderr\n%s\nwant\n%s", res.ExitCode, res.Stderr, want)
	}
	noFilesLeft(t, dir)
}

// outsideAddress is an IPv4 address of this machine that is not loopback.
func outsideAddress(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && !ipn.IP.IsLinkLocalUnicast() {
			return ipn.IP.String()
		}
	}
	t.Fatal("this machine has no IPv4 address but loopback: the test needs one to reach a registry at")
	return ""
}

// TestPlainHTTPRegistryNamesTheFixes: a plain-HTTP registry at an address
// that is not loopback is refused with one line that names both fixes with
// the exact host, and each fix, applied as written, works.
func TestPlainHTTPRegistryNamesTheFixes(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{Addr: outsideAddress(t) + ":0"})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 91})
	pushImage(t, reg, "test/a", "1", img)
	x := newImgx(t)
	h := reg.Host
	src := h + "/test/a:1"
	hostsFile := filepath.Join(x.CertsDir(), h, "hosts.toml")
	want := fmt.Sprintf(`ERROR: fetch %s: %s answered in plain HTTP, not HTTPS: to reach it over plain HTTP, mark it with --insecure-registry %s, or write server = "http://%s" in %s`,
		src, h, h, h, hostsFile)
	wantErrorLine(t, "inspect", x.Run("inspect", src), want)

	digestLine := "Digest:    " + img.Manifest.Desc.Digest.String()
	if out := x.MustRun("inspect", "--insecure-registry", h, src).Stdout; !strings.Contains(out, digestLine) {
		t.Errorf("with --insecure-registry: %s", out)
	}
	if err := os.MkdirAll(filepath.Dir(hostsFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hostsFile, []byte(fmt.Sprintf("server = \"http://%s\"\n", h)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := x.MustRun("inspect", src).Stdout; !strings.Contains(out, digestLine) {
		t.Errorf("with %s: %s", hostsFile, out)
	}
}

// TestAuthenticationMessages: a registry that wants credentials says to
// log in, naming the host (basic and token auth); one that refuses a push
// says the credentials cannot push to the repository, its own words kept
// short and without their escapes.
func TestAuthenticationMessages(t *testing.T) {
	t.Parallel()
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 92})
	for _, mode := range []registrytest.AuthMode{registrytest.AuthBasic, registrytest.AuthToken} {
		reg := registrytest.Start(t, registrytest.Options{Auth: mode})
		pushImage(t, reg, "test/a", "1", img)
		x := newImgx(t)
		h := reg.Host
		want := fmt.Sprintf("ERROR: fetch %s/test/a:1: authentication required for %s: run `docker login %s` (401 Unauthorized: authentication required)", h, h, h)
		wantErrorLine(t, mode.String()+" inspect", x.Run("inspect", h+"/test/a:1"), want)
		wantErrorLine(t, mode.String()+" export", x.Run("export", "--progress", "plain", "-o", filepath.Join(t.TempDir(), "x.tar"), h+"/test/a:1"), want)
	}

	reg := registrytest.Start(t, registrytest.Options{})
	pushImage(t, reg, "test/a", "1", img)
	u, err := url.Parse("http://" + reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	pass := httputil.NewSingleHostReverseProxy(u)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied\u001b[2J\u001b]0;owned\u0007\u202e"}]}`)
			return
		}
		pass.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	h := strings.TrimPrefix(front.URL, "http://")
	res := newImgx(t).Run("create", "--progress", "plain", "-t", h+"/test/b:1", h+"/test/a:1")
	want := fmt.Sprintf("ERROR: push %s to %s/test/b: denied: your credentials for %s cannot push to test/b (403 Forbidden: requested access to the resource is denied)",
		img.Manifest.Desc.Digest, h, h)
	wantErrorLine(t, "create", res, want)
	assertNothingRaw(t, "create", res.Stderr)
}

// assertNothingRaw fails when s holds what a terminal acts on: ESC and the
// other C0 controls but newline, DEL, C1, bidi overrides and other format
// characters.
func assertNothingRaw(t *testing.T, what, s string) {
	t.Helper()
	for _, r := range s {
		if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r >= 0x200b && r <= 0x200f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)) {
			t.Errorf("%s: the output holds %U:\n%q", what, r, s)
			return
		}
	}
}
