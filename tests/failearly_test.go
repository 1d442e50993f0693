package tests

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

func TestExportNamesRefusedBeforeTransfer(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	pushImage(t, reg, "test/app", "1", fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 91}))
	x := newImgx(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.tar")
	app := reg.Host + "/test/app:1"
	_, port, _ := strings.Cut(reg.Host, ":")
	v6 := "[::1]:" + port + "/test/app:1"
	reg.ResetRequests()
	for _, c := range []struct {
		name  string
		args  []string
		wants []string
	}{
		{"ipv6", []string{"export", "-o", out, v6}, []string{v6, "IPv6 address", "--name NAME[:TAG]"}},
		{"ipv6-load", []string{"export", "--load", v6}, []string{v6, "IPv6 address", "--name NAME[:TAG]"}},
		{"ipv6-name", []string{"export", "-o", out, "--name", "[::1]:5000/app:1", app}, []string{`invalid --name "[::1]:5000/app:1"`, "IPv6 address"}},
		{"same-name", []string{"export", "-o", out, "--name", "app:1", "--name", "docker.io/library/app:1", app, app}, []string{`--name "app:1" and --name "docker.io/library/app:1" both name docker.io/library/app:1`, "its own name"}},
		{"same-name-load", []string{"export", "--load", "--name", "app:1", "--name", "app:1", app, app}, []string{"both name docker.io/library/app:1"}},
	} {
		t.Logf("%s: %s", c.name, x.MustFail(c.wants, c.args...))
	}
	assertRequests(t, reg, 0)
	noFilesLeft(t, dir)
}

// schema1Manifest is a Docker schema 1 manifest as old registries served it.
const schema1Manifest = `{"schemaVersion":1,"name":"test/old","tag":"1","architecture":"amd64","fsLayers":[],"history":[]}`

func TestCreateRefusesSchema1FromLayout(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.Options{})
	layout := filepath.Join(t.TempDir(), "layout")
	if err := os.Mkdir(layout, 0o755); err != nil {
		t.Fatal(err)
	}
	// index.json may name it by either schema 1 type, by none, or wrongly.
	types := map[string]string{
		"signed":   "application/vnd.docker.distribution.manifest.v1+prettyjws",
		"unsigned": "application/vnd.docker.distribution.manifest.v1+json",
		"untyped":  "",
		"oci":      "application/vnd.oci.image.manifest.v1+json",
	}
	tags := map[string]fixture.Blob{}
	for tag, mt := range types {
		tags[tag] = fixture.NewBlob(mt, []byte(schema1Manifest))
	}
	if err := fixture.WriteLayout(layout, tags, tags["signed"]); err != nil {
		t.Fatal(err)
	}
	x := newImgx(t)
	target := reg.Host + "/test/new:1"
	for tag := range types {
		src := "oci-layout://" + layout + ":" + tag
		for _, args := range [][]string{
			{"create", "--progress", "quiet", "-t", target, src},
			{"create", "--progress", "quiet", "--prefer-index=false", "-t", target, src},
			{"create", "--dry-run", src},
		} {
			t.Log(x.MustFail([]string{src, "schema"}, args...))
		}
	}
	if got := fetchTag(t, reg, "test/new", "1"); got != "" {
		t.Errorf("a schema 1 source was tagged: %s", got)
	}
}

func TestRegistryErrorsOneLine(t *testing.T) {
	t.Parallel()
	page := "<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
		case strings.HasPrefix(r.URL.Path, "/v2/test/auth/"):
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, page)
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	x := newImgx(t)
	out := filepath.Join(t.TempDir(), "out.tar")
	for _, cmd := range [][]string{{"inspect"}, {"create", "--dry-run"}, {"export", "-o", out}} {
		res := x.Run(append(cmd, host+"/test/html:1")...)
		if res.ExitCode != 1 || strings.Count(res.Stderr, "<") > 0 || !strings.Contains(res.Stderr, "HTML page: 502 Bad Gateway") {
			t.Errorf("%s of an HTML error page: exit %d, stderr:\n%s", cmd[0], res.ExitCode, res.Stderr)
		}
		x.MustFail([]string{"fetch " + host + "/test/auth:1: authentication required for " + host + ": run `docker login " + host + "` (401 Unauthorized)"}, append(cmd, host+"/test/auth:1")...)
	}
}
