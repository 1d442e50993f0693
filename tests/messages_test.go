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
		// Credentials the registry refuses: the same advice.
		wrong := newImgx(t)
		config := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, h, basicAuth(reg.Username, "not-"+reg.Password))
		if err := os.WriteFile(filepath.Join(wrong.DockerConfig, "config.json"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		res := wrong.Run("inspect", h+"/test/a:1")
		if mode == registrytest.AuthToken {
			// The token service refuses them itself, in its own words.
			want = "ERROR: fetch " + h + "/test/a:1: authentication required for " + h + ": run `docker login " + h + "` (401 Unauthorized: invalid username or password)"
		}
		wantErrorLine(t, mode.String()+" inspect with wrong credentials", res, want)
		if strings.Contains(res.Stderr, reg.Password) {
			t.Errorf("the error shows the password:\n%s", res.Stderr)
		}
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

// escapes is what hostile text carries: a screen clear, a cursor move, a
// window title (OSC), colour, a C1 CSI, a bidi override and a zero-width
// space.
const escapes = "\x1b[2J\x1b[H\x1b]0;owned\x07\x1b[31m\u009b1m\u202e\u200b"

// escapesShown is escapes as a text view shows it (termtext.Escape).
const escapesShown = `\x1b[2J\x1b[H\x1b]0;owned\a\x1b[31m\u009b1m\u202e\u200b`

// escapeRegistry serves repository test/esc: manifests and blobs by
// digest, manifests by tag, and errors whose bodies carry escapes.
func escapeRegistry(t *testing.T, tags map[string]fixture.Blob, blobs ...fixture.Blob) string {
	t.Helper()
	byRef := map[string]fixture.Blob{}
	for tag, b := range tags {
		byRef[tag], byRef[b.Desc.Digest.String()] = b, b
	}
	for _, b := range blobs {
		byRef[b.Desc.Digest.String()] = b
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		rest, _ := strings.CutPrefix(r.URL.Path, "/v2/test/esc/")
		_, name, _ := strings.Cut(rest, "/")
		switch name {
		case "denied":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"errors":[{"code":"DENIED","message":%s}]}`, mustJSONString(t, "no"+escapes+"pe"))
			return
		case "html":
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "<html><title>bad %s request</title></html>", escapes)
			return
		}
		b, ok := byRef[name]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":%s}]}`, mustJSONString(t, "unknown"+escapes))
			return
		}
		w.Header().Set("Content-Type", b.Desc.MediaType)
		w.Header().Set("Docker-Content-Digest", b.Desc.Digest.String())
		w.Header().Set("Content-Length", fmt.Sprint(len(b.Data)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(b.Data)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestNothingRawOnTheTerminal sends escapes through every way outside text
// reaches the terminal: inspect's text view (artifact type, subject,
// annotations), error lines quoting a registry (its JSON words, an HTML
// page's title, the platforms of an index), names read from a tar, plain
// progress and --debug logs. No escape reaches stdout or stderr raw; JSON
// and --raw stay byte for byte.
func TestNothingRawOnTheTerminal(t *testing.T) {
	t.Parallel()
	jq := func(s string) string { return mustJSONString(t, s) }
	empty := fixture.NewBlob("application/vnd.oci.empty.v1+json", []byte("{}"))
	art := fixture.NewBlob("application/vnd.oci.image.manifest.v1+json", []byte(fmt.Sprintf(
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":%s,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%s,"size":2},"annotations":{%s:%s}}`,
		jq("application/x."+escapes), empty.Desc.Digest, jq("sha256:"+escapes), jq("note"+escapes), jq("v"+escapes))))
	idx := fixture.NewBlob("application/vnd.oci.image.index.v1+json", []byte(fmt.Sprintf(
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d,"platform":{"os":%s,"architecture":"amd64"}}]}`,
		art.Desc.Digest, art.Desc.Size, jq("linux"+escapes))))
	h := escapeRegistry(t, map[string]fixture.Blob{"art": art, "idx": idx}, empty)
	x := newImgx(t)
	dir := t.TempDir()
	ref := func(tag string) string { return h + "/test/esc:" + tag }

	text := x.MustRun("--debug", "inspect", ref("art"))
	assertNothingRaw(t, "inspect", text.Stdout+text.Stderr)
	for _, want := range []string{"ArtifactType: application/x." + escapesShown + "\n", "Subject:      sha256:" + escapesShown + "\n", "note" + escapesShown + ": v" + escapesShown + "\n"} {
		if !strings.Contains(text.Stdout, want) {
			t.Errorf("inspect does not show %q:\n%s", want, text.Stdout)
		}
	}
	if raw := x.MustRun("inspect", "--raw", ref("art")).Stdout; raw != string(art.Data) {
		t.Errorf("--raw is not the manifest byte for byte:\n%q", raw)
	}
	if js := x.MustRun("inspect", "--format", "{{json .Manifest.ArtifactType}}", ref("art")).Stdout; js != mustJSONString(t, "application/x."+escapes)+"\n" {
		t.Errorf("json artifact type %q", js)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", ref("denied")}, "ERROR: fetch " + ref("denied") + ": denied: your credentials for " + h + " cannot pull from test/esc (403 Forbidden: nope)"},
		{[]string{"inspect", ref("html")}, "ERROR: fetch " + ref("html") + ": 400 Bad Request: HTML page: bad request"},
		{[]string{"export", "--progress", "plain", "--platform", "linux/arm64", "-o", filepath.Join(dir, "x.tar"), ref("idx")},
			"ERROR: export " + ref("idx") + ": index " + idx.Desc.Digest.String() + ": no image for platform linux/arm64; available: linux" + escapesShown + "/amd64"},
	} {
		res := x.Run(append([]string{"--debug"}, c.args...)...)
		wantErrorLine(t, strings.Join(c.args, " "), res, c.want)
		assertNothingRaw(t, strings.Join(c.args, " "), res.Stdout+res.Stderr)
	}

	// A tar whose image is named with escapes: the error that lists the
	// names, and the progress of an export that names it.
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 93})
	entries := imageEntries(t, img)
	named := img.Manifest.Desc
	named.Annotations = map[string]string{"io.containerd.image.name": "example.com/evil" + escapes + ":1"}
	entries[0].body = mustMarshal(t, map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []any{named}})
	tarPath := filepath.Join(t.TempDir(), "named.tar")
	if err := os.WriteFile(tarPath, writeHostileTar(t, entries), 0o644); err != nil {
		t.Fatal(err)
	}
	res := x.Run("--debug", "export", "--progress", "plain", "-o", filepath.Join(dir, "y.tar"), "archive://"+tarPath+":nope")
	wantErrorLine(t, "export from a tar", res, "ERROR: archive://"+tarPath+":nope: no image named \"nope\" in archive://"+tarPath+" (it holds example.com/evil"+escapesShown+":1)")
	assertNothingRaw(t, "export from a tar", res.Stdout+res.Stderr)
	noFilesLeft(t, dir)
}

func mustJSONString(t *testing.T, s string) string {
	t.Helper()
	return string(mustMarshal(t, s))
}

// signedQuery is what object storage puts in a signed redirect: none of its
// values may reach any output.
const signedQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=CREDSECRET1&X-Amz-Signature=SIGSECRET2&sig=SIGSECRET3&token=TOKSECRET4&Signature=SIGSECRET5"

var signedSecrets = []string{"CREDSECRET1", "SIGSECRET2", "SIGSECRET3", "TOKSECRET4", "SIGSECRET5"}

// redirectingRegistry stands in front of reg and sends every blob GET to
// storage with a signed query, as registries on object storage do.
func redirectingRegistry(t *testing.T, reg *registrytest.Registry, storage string) string {
	t.Helper()
	u, err := url.Parse("http://" + reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	pass := httputil.NewSingleHostReverseProxy(u)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			http.Redirect(w, r, "http://"+storage+"/bucket/"+r.URL.Path[strings.LastIndex(r.URL.Path, ":")+1:]+"?"+signedQuery, http.StatusTemporaryRedirect)
			return
		}
		pass.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return strings.TrimPrefix(front.URL, "http://")
}

// TestRedirectSignaturesNeverShown: blob reads redirected to storage with a
// signed URL, and the storage failing: refusing the signature (echoing it
// in its error, as object stores do) or not answering. The error is one
// line naming the storage host; no signature value reaches stdout or
// stderr, --debug included, plain and tty-less progress alike.
func TestRedirectSignaturesNeverShown(t *testing.T) {
	t.Parallel()
	img := fixture.NewImage(fixture.ImageOptions{Platform: "linux/amd64", Layers: 1, Seed: 94})
	reg := registrytest.Start(t, registrytest.Options{})
	pushImage(t, reg, "test/a", "1", img)
	target := registrytest.Start(t, registrytest.Options{})

	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, "AccessDenied: %s", r.URL.RawQuery)
	}))
	t.Cleanup(refusing.Close)
	// Storage that is gone: port 1, where nothing listens (a closed test
	// server's port may be taken again by the next server a parallel test
	// starts, which then answers).
	goneHost := "127.0.0.1:1"
	refusingHost := strings.TrimPrefix(refusing.URL, "http://")
	config := img.Config.Desc.Digest.String()

	for _, c := range []struct {
		name, storage, cause string
	}{
		{"refusing", refusingHost, "403 Forbidden: AccessDenied: " +
			"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&sig=REDACTED&token=REDACTED&Signature=REDACTED"},
		{"unreachable", goneHost, "cannot reach " + goneHost + " (connection refused)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := redirectingRegistry(t, reg, c.storage)
			x := newImgx(t)
			dir := t.TempDir()
			src := h + "/test/a:1"
			// export reads blobs in parallel: either may fail first.
			res := x.Run("--debug", "export", "--progress", "plain", "-o", filepath.Join(dir, "x.tar"), src)
			assertNoSecrets(t, "export", res)
			if line := errorLine(res); res.ExitCode != 1 || !strings.HasPrefix(line, "ERROR: export blob sha256:") || !strings.HasSuffix(line, ": "+c.cause) {
				t.Errorf("export: exit %d, last line\n%s\nwant ERROR: export blob DIGEST: %s", res.ExitCode, line, c.cause)
			}
			res = x.Run("--debug", "create", "--progress", "plain", "-t", target.Host+"/test/b:1", src)
			assertNoSecrets(t, "create", res)
			wantErrorLine(t, "create", res, "ERROR: config of "+src+": read "+config+": "+c.cause)
			res = x.Run("--debug", "inspect", src)
			assertNoSecrets(t, "inspect", res)
			wantErrorLine(t, "inspect", res, "ERROR: "+src+": config "+config+": read "+config+": "+c.cause)
			if got := fetchTag(t, target, "test/b", "1"); got != "" {
				t.Error("create tagged test/b:1 from blobs it could not read")
			}
			noFilesLeft(t, dir)
		})
	}
}

// assertNoSecrets fails when a run's output shows a value of signedQuery.
func assertNoSecrets(t *testing.T, what string, res result) {
	t.Helper()
	for _, s := range signedSecrets {
		if strings.Contains(res.Stdout+res.Stderr, s) {
			t.Errorf("%s shows %s:\n%s%s", what, s, res.Stdout, res.Stderr)
		}
	}
}
