package registrytest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
)

// TestRoundTrip pushes through each variant's main host with credentials and reads
// back through the admin host, and the reverse.
func TestRoundTrip(t *testing.T) {
	eachVariant(t, func(t *testing.T, opts registrytest.Options, reg *registrytest.Registry) {
		ctx := t.Context()
		img := fixture.NewImage(fixture.ImageOptions{Seed: 7, Layers: 2})

		if err := fixture.PushTo(ctx, reg.AuthClient(), reg.URL(), "test/pushed", "v1", img.Blobs()...); err != nil {
			t.Fatalf("push through main host: %v", err)
		}
		got, mediaType, err := fixture.Fetch(ctx, reg.AdminHost, "test/pushed", "v1")
		if err != nil {
			t.Fatalf("fetch through admin host: %v", err)
		}
		if !bytes.Equal(got, img.Manifest.Data) || mediaType != img.Manifest.Desc.MediaType {
			t.Fatalf("admin host returned %s %q, want the pushed manifest %s", mediaType, got, img.Manifest.Desc.Digest)
		}

		other := fixture.NewImage(fixture.ImageOptions{Seed: 8})
		if err := fixture.PushImage(ctx, reg.AdminHost, "test/seeded", "v2", other); err != nil {
			t.Fatalf("push through admin host: %v", err)
		}
		got, _, err = fixture.FetchFrom(ctx, reg.AuthClient(), reg.URL(), "test/seeded", other.Manifest.Desc.Digest.String())
		if err != nil {
			t.Fatalf("fetch through main host: %v", err)
		}
		if !bytes.Equal(got, other.Manifest.Data) {
			t.Fatalf("main host returned %q, want the manifest pushed to the admin host", got)
		}
	})
}

func TestTLSRequiresTheCA(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	if !strings.HasPrefix(reg.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL() = %q, want https://127.0.0.1:PORT", reg.URL())
	}
	_, err := http.Get(reg.URL() + "/v2/")
	var unknownCA x509.UnknownAuthorityError
	if !errors.As(err, &unknownCA) {
		t.Fatalf("GET without the CA: err = %v, want an unknown authority error", err)
	}
	resp := get(t, reg.Client(), reg.URL()+"/v2/", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ with the CA: status %d, want 200", resp.StatusCode)
	}
	for _, name := range []string{"localhost", "127.0.0.1"} {
		conn, err := tls.Dial("tcp", reg.Host, &tls.Config{RootCAs: reg.CertPool(), ServerName: name, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("TLS dial as %s: %v", name, err)
		}
		_ = conn.Close()
	}

	dir := t.TempDir()
	if err := reg.WriteCertsDir(dir); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(filepath.Join(dir, reg.Host, "ca.crt"))
	if err != nil || !bytes.Equal(pem, reg.CACertPEM) {
		t.Fatalf("certs.d ca.crt = %q, %v; want the CA PEM", pem, err)
	}
	plain := registrytest.Start(t, registrytest.Options{})
	if err := plain.WriteCertsDir(t.TempDir()); err == nil {
		t.Fatal("WriteCertsDir on a plain-HTTP registry succeeded, want an error")
	}
}

func TestBasicAuth(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	if reg.Username != "imgx" || !strings.HasPrefix(reg.Password, "s3cr3t-") {
		t.Fatalf("default credentials %q/%q, want imgx/s3cr3t-...", reg.Username, reg.Password)
	}
	img := fixture.NewImage(fixture.ImageOptions{})
	if err := fixture.PushImage(ctx, reg.AdminHost, "test/app", "latest", img); err != nil {
		t.Fatal(err)
	}
	manifestURL := reg.URL() + "/v2/test/app/manifests/latest"
	cases := []struct {
		name, user, pass string
		want             int
	}{
		{"anonymous", "", "", http.StatusUnauthorized},
		{"wrong password", reg.Username, reg.Password + "x", http.StatusUnauthorized},
		{"wrong user", "someone", reg.Password, http.StatusUnauthorized},
		{"right credentials", reg.Username, reg.Password, http.StatusOK},
	}
	for _, tc := range cases {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, manifestURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", img.Manifest.Desc.MediaType)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp := do(t, reg.Client(), req)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: WWW-Authenticate %q, want a Basic challenge", tc.name, resp.Header.Get("WWW-Authenticate"))
		}
	}

	auth, err := base64.StdEncoding.DecodeString(reg.DockerConfigAuth())
	if err != nil || string(auth) != reg.Username+":"+reg.Password {
		t.Fatalf("DockerConfigAuth decodes to %q, %v", auth, err)
	}
	dir := t.TempDir()
	if err := reg.WriteDockerConfig(dir); err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil || cfg.Auths[reg.Host].Auth != reg.DockerConfigAuth() {
		t.Fatalf("config.json = %s (%v), want auths[%s].auth", data, err, reg.Host)
	}
}

// TestTokenFlow walks the bearer flow by hand: 401 challenge, token, 200.
func TestTokenFlow(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthToken, TLS: true, Username: "alice", Password: "pw"})
	img := fixture.NewImage(fixture.ImageOptions{})
	if err := fixture.PushImage(ctx, reg.AdminHost, "test/app", "latest", img); err != nil {
		t.Fatal(err)
	}
	hc := reg.Client()
	manifestURL := reg.URL() + "/v2/test/app/manifests/latest"

	resp := get(t, hc, manifestURL, "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET without token: status %d, want 401", resp.StatusCode)
	}
	scheme, params := registrytest.ParseChallenge(resp.Header.Get("WWW-Authenticate"))
	if scheme != "Bearer" || params["realm"] != reg.URL()+"/token" || params["service"] == "" || params["scope"] != "repository:test/app:pull" {
		t.Fatalf("challenge %q, want Bearer realm=%s/token with service and scope", resp.Header.Get("WWW-Authenticate"), reg.URL())
	}
	tokenURL := params["realm"] + "?" + url.Values{"service": {params["service"]}, "scope": {params["scope"]}}.Encode()

	if resp := getToken(t, hc, tokenURL, "alice", "wrong"); resp.status != http.StatusUnauthorized {
		t.Fatalf("token with wrong password: status %d, want 401", resp.status)
	}
	anon := getToken(t, hc, tokenURL, "", "")
	if anon.status != http.StatusOK {
		t.Fatalf("anonymous token: status %d, want 200", anon.status)
	}
	if resp := get(t, hc, manifestURL, anon.token); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET with anonymous token: status %d, want 401", resp.StatusCode)
	}
	granted := getToken(t, hc, tokenURL, "alice", "pw")
	if granted.status != http.StatusOK || granted.token == "" {
		t.Fatalf("token with credentials: status %d, token %q", granted.status, granted.token)
	}
	resp = get(t, hc, manifestURL, granted.token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET with token: status %d, want 200", resp.StatusCode)
	}
	if resp := get(t, hc, reg.URL()+"/v2/other/repo/manifests/latest", granted.token); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET another repository with a pull token for test/app: status %d, want 401", resp.StatusCode)
	}
	if got := reg.Count(http.MethodGet, "/token"); got != 3 {
		t.Fatalf("Count(GET, /token) = %d, want 3", got)
	}

	// containerd tries the OAuth2 password grant first.
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw"}, "service": {params["service"]}, "scope": {params["scope"]}}
	post, err := hc.PostForm(params["realm"], form)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(post.Body).Decode(&body)
	_ = post.Body.Close()
	if err != nil || post.StatusCode != http.StatusOK {
		t.Fatalf("POST token: status %d, %v", post.StatusCode, err)
	}
	if resp := get(t, hc, manifestURL, body.AccessToken); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET with POSTed token: status %d, want 200", resp.StatusCode)
	}
}

func TestRequestLog(t *testing.T) {
	ctx := t.Context()
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	img := fixture.NewImage(fixture.ImageOptions{})
	if err := fixture.PushImage(ctx, reg.AdminHost, "test/app", "latest", img); err != nil {
		t.Fatal(err)
	}
	if n := len(reg.Requests()); n != 0 {
		t.Fatalf("admin host requests were logged: %d entries", n)
	}
	if _, _, err := fixture.FetchFrom(ctx, reg.AuthClient(), reg.URL(), "test/app", "latest"); err != nil {
		t.Fatal(err)
	}
	want := []registrytest.Request{
		{Method: http.MethodGet, Path: "/v2/test/app/manifests/latest", Status: http.StatusUnauthorized, UserAgent: "Go-http-client/1.1"},
		{Method: http.MethodGet, Path: "/v2/test/app/manifests/latest", Status: http.StatusOK, Authorization: true, UserAgent: "Go-http-client/1.1"},
	}
	got := reg.Requests()
	for i, r := range got {
		// The times are checked for order, then left out of the comparison.
		if r.Start.IsZero() || r.End.Before(r.Start) || (i > 0 && r.Start.Before(got[i-1].End)) {
			t.Errorf("request %d: start %v, end %v: want start <= end, after the request before it ended", i, r.Start, r.End)
		}
		got[i].Start, got[i].End = time.Time{}, time.Time{}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Requests() = %+v, want %+v", got, want)
	}
	if n := reg.Count(http.MethodGet, "/manifests/"); n != 2 {
		t.Fatalf("Count(GET, /manifests/) = %d, want 2", n)
	}
	if n := reg.Count(http.MethodHead, "/manifests/"); n != 0 {
		t.Fatalf("Count(HEAD, /manifests/) = %d, want 0", n)
	}
	if n := reg.Count("", "/v2/"); n != 2 {
		t.Fatalf("Count(any, /v2/) = %d, want 2", n)
	}
	resp := get(t, reg.Client(), reg.URL()+"/v2/test/app/tags/list?n=1", "")
	if last := reg.Requests()[2]; last.RawQuery != "n=1" || last.Status != resp.StatusCode || last.Authorization {
		t.Fatalf("last request %+v, want query n=1, status %d, no Authorization", last, resp.StatusCode)
	}
	reg.ResetRequests()
	if n := len(reg.Requests()); n != 0 {
		t.Fatalf("after ResetRequests: %d entries", n)
	}
}

func TestCloseTwice(t *testing.T) {
	reg, err := registrytest.StartServer(context.Background(), registrytest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if err := reg.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := http.Get("http://" + reg.Host + "/v2/"); err == nil {
		t.Fatal("registry still answers after Close")
	}
}

type tokenResult struct {
	status int
	token  string
}

func getToken(t *testing.T, hc *http.Client, tokenURL, user, pass string) tokenResult {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, tokenURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("decode token: %v", err)
		}
	}
	return tokenResult{status: resp.StatusCode, token: body.Token}
}

func get(t *testing.T, hc *http.Client, u, bearer string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return do(t, hc, req)
}

// do sends req and returns the response with its body drained and closed.
func do(t *testing.T, hc *http.Client, req *http.Request) *http.Response {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

// eachVariant runs fn, in parallel subtests, against a fresh registry of
// every variant: plain HTTP or TLS, with no auth, basic or token auth.
func eachVariant(t *testing.T, fn func(t *testing.T, opts registrytest.Options, reg *registrytest.Registry)) {
	for _, useTLS := range []bool{false, true} {
		for _, mode := range []registrytest.AuthMode{registrytest.AuthNone, registrytest.AuthBasic, registrytest.AuthToken} {
			opts := registrytest.Options{TLS: useTLS, Auth: mode}
			t.Run(fmt.Sprintf("tls=%v/auth=%v", useTLS, mode), func(t *testing.T) {
				t.Parallel()
				fn(t, opts, registrytest.Start(t, opts))
			})
		}
	}
}
