package tests

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fakeregistry"
	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// writeHostsTOML writes a containerd hosts.toml for registry host into the
// runner's certs folder, under containerd's folder name ("127.0.0.1_5000_",
// "[::1]_5000_"), and returns its path.
func writeHostsTOML(t *testing.T, x *imgx, host, content string) string {
	t.Helper()
	i := strings.LastIndex(host, ":")
	dir := filepath.Join(x.CertsDir(), host[:i]+"_"+host[i+1:]+"_")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "hosts.toml")
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// mirrorRequests are the requests a mirror got for repo, as "METHOD
// path?query status" lines.
func mirrorRequests(mirror *registrytest.Registry, repo string) []string {
	var out []string
	for _, r := range mirror.Requests() {
		if strings.Contains(r.Path, "/"+repo+"/") {
			out = append(out, r.Method+" "+r.Path+"?"+r.RawQuery+" "+strconv.Itoa(r.Status))
		}
	}
	return out
}

// exportBytes exports ref to a tar with the runner and returns the tar.
func exportBytes(t *testing.T, x *imgx, ref string) []byte {
	t.Helper()
	out, _ := export(t, x, ref)
	dt, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

// TestHostsMirrorFallback puts an empty mirror and a mirror that refuses
// connections in front of a real registry: inspect and export, by tag and
// by digest, fall back to the next host and then to the server, and give
// the same bytes as without mirrors; the mirror is asked with ns=.
func TestHostsMirrorFallback(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	mirror := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 41})
	pushImage(t, reg, "test/mirrored", "1", img)
	tag := reg.Host + "/test/mirrored:1"
	byDigest := reg.Host + "/test/mirrored@" + img.Manifest.Desc.Digest.String()
	want := map[string][]byte{tag: exportBytes(t, newImgx(t), tag), byDigest: exportBytes(t, newImgx(t), byDigest)}

	x := newImgx(t)
	writeHostsTOML(t, x, reg.Host, `# two mirrors, tried in order, then the server
[host."http://`+fakeregistry.ClosedAddr(t)+`"]
  capabilities = ["pull", "resolve"]

[host."http://`+mirror.Host+`"]
  capabilities = ["pull", "resolve"]
`)
	ns := "ns=" + url.QueryEscape(reg.Host)
	for _, ref := range []string{tag, byDigest} {
		mirror.ResetRequests()
		if res := x.MustRun("inspect", "--raw", ref); res.Stdout != string(img.Manifest.Data) {
			t.Fatalf("inspect %s through the mirrors: wrong bytes", ref)
		}
		object := strings.TrimPrefix(strings.TrimPrefix(ref, reg.Host+"/test/mirrored"), ":")
		object = strings.TrimPrefix(object, "@")
		wantReq := "GET /v2/test/mirrored/manifests/" + object + "?" + ns + " 404"
		if got := mirrorRequests(mirror, "test/mirrored"); len(got) != 1 || got[0] != wantReq {
			t.Fatalf("inspect %s: mirror requests %q, want [%q]", ref, got, wantReq)
		}
		mirror.ResetRequests()
		if got := exportBytes(t, x, ref); !bytes.Equal(got, want[ref]) {
			t.Fatalf("export %s through the mirrors: the tar differs from the one exported without them", ref)
		}
		blobs := 0
		for _, r := range mirrorRequests(mirror, "test/mirrored") {
			if !strings.Contains(r, "?"+ns+" ") {
				t.Fatalf("export %s: mirror request %q without %s", ref, r, ns)
			}
			if strings.Contains(r, "/blobs/") {
				blobs++
			}
		}
		if blobs == 0 {
			t.Fatalf("export %s: the mirror was never asked for a blob: %q", ref, mirrorRequests(mirror, "test/mirrored"))
		}
	}
}

// TestHostsPullOnlyMirror: a mirror with only the pull capability never
// gets a tag; it serves blobs and manifests by digest, which the server
// then is not asked for.
func TestHostsPullOnlyMirror(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	mirror := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 2, Seed: 43})
	pushImage(t, reg, "test/pullonly", "1", img)
	pushImage(t, mirror, "test/pullonly", "1", img)
	tag := reg.Host + "/test/pullonly:1"
	want := exportBytes(t, newImgx(t), tag)

	x := newImgx(t)
	writeHostsTOML(t, x, reg.Host, "server = \"http://"+reg.Host+"\"\n\n[host.\"http://"+mirror.Host+"\"]\n  capabilities = [\"pull\"]\n")
	mirror.ResetRequests()
	reg.ResetRequests()
	if res := x.MustRun("inspect", "--raw", tag); res.Stdout != string(img.Manifest.Data) {
		t.Fatal("inspect through a pull-only mirror: wrong bytes")
	}
	if got := exportBytes(t, x, tag); !bytes.Equal(got, want) {
		t.Fatal("export through a pull-only mirror: the tar differs from the one exported without it")
	}
	for _, r := range mirror.Requests() {
		if strings.HasSuffix(r.Path, "/manifests/1") {
			t.Fatalf("the pull-only mirror got a tag request: %s %s", r.Method, r.Path)
		}
		if r.RawQuery != "ns="+url.QueryEscape(reg.Host) {
			t.Fatalf("mirror request %s %s?%s without ns=%s", r.Method, r.Path, r.RawQuery, reg.Host)
		}
	}
	if n := mirror.Count("GET", "/blobs/"); n == 0 {
		t.Fatal("the pull-only mirror served no blob")
	}
	if n := reg.Count("GET", "/blobs/"); n != 0 {
		t.Fatalf("the server was asked for %d blobs the mirror has", n)
	}
	if n := reg.Count("GET", "/manifests/1"); n != 2 {
		t.Fatalf("the server resolved the tag %d times, want 2 (inspect, export)", n)
	}
}

// TestHostsTLS: an empty or comment-only hosts.toml for a loopback registry
// changes nothing (its unknown CA still fails, with the hint naming the
// folder read); --insecure-registry wins over a hosts.toml, whose path the
// hint then names; a malformed hosts.toml is one line naming file:line.
func TestHostsTLS(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 45})
	pushImage(t, reg, "test/hoststls", "1", img)
	ref := reg.Host + "/test/hoststls:1"
	x := newImgx(t)
	for _, content := range []string{"", "# mirrors come later\n\n"} {
		file := writeHostsTOML(t, x, reg.Host, content)
		x.MustFail([]string{"certificate", filepath.Join(filepath.Dir(file), "ca.crt"), "--insecure-registry " + reg.Host}, "inspect", ref)
		if err := os.WriteFile(filepath.Join(filepath.Dir(file), "ca.crt"), reg.CACertPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if res := x.MustRun("inspect", "--raw", ref); res.Stdout != string(img.Manifest.Data) {
			t.Fatalf("hosts.toml %q with the folder's ca.crt: wrong bytes", content)
		}
		if err := os.Remove(filepath.Join(filepath.Dir(file), "ca.crt")); err != nil {
			t.Fatal(err)
		}
	}

	file := writeHostsTOML(t, x, reg.Host, "server = \"https://"+reg.Host+"\"\nskip_verify = false\n")
	x.MustFail([]string{"certificate", "ca = ", file, "--insecure-registry " + reg.Host}, "inspect", ref)
	if res := x.MustRun("inspect", "--insecure-registry", reg.Host, "--raw", ref); res.Stdout != string(img.Manifest.Data) {
		t.Fatal("--insecure-registry over a hosts.toml: wrong bytes")
	}

	file = writeHostsTOML(t, x, reg.Host, "server = \"https://"+reg.Host+"\"\n[host.\"https://mirror.example\"\n")
	for _, args := range [][]string{{"inspect", ref}, {"inspect", "--insecure-registry", reg.Host, ref}} {
		x.MustFail([]string{file + ":2:"}, args...)
	}
	out := filepath.Join(t.TempDir(), "out.tar")
	x.MustFail([]string{file + ":2:"}, "export", "-o", out, ref)
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("export with a malformed hosts.toml left %s (%v)", out, err)
	}
}

// TestHostsIPv6Folder: the hosts.toml of an IPv6 registry is read from
// containerd's folder name, "[::1]_PORT_".
func TestHostsIPv6Folder(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{Addr: "[::1]:0"})
	mirror := registrytest.Start(t, registrytest.Options{})
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Seed: 47})
	pushImage(t, reg, "test/six", "1", img)
	x := newImgx(t)
	writeHostsTOML(t, x, reg.Host, "[host.\"http://"+mirror.Host+"\"]\n  capabilities = [\"pull\", \"resolve\"]\n")
	if res := x.MustRun("inspect", "--raw", reg.Host+"/test/six:1"); res.Stdout != string(img.Manifest.Data) {
		t.Fatal("inspect of an IPv6 registry with a mirror: wrong bytes")
	}
	want := "GET /v2/test/six/manifests/1?ns=" + url.QueryEscape(reg.Host) + " 404"
	if got := mirrorRequests(mirror, "test/six"); len(got) != 1 || got[0] != want {
		t.Fatalf("mirror requests %q, want [%q]", got, want)
	}
}
