package registrytest_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/docker-imgx/docker-imgx/internal/fixture"
	"github.com/docker-imgx/docker-imgx/internal/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestReferrersAuth checks the registry with the referrers API (olareg)
// with basic and token auth: without credentials and with wrong ones
// (a wrong password; a token that grants nothing) every route answers as a
// distribution registry with the same auth does (status, challenge and
// body: the same realm, service and scope), the referrers API with the
// scope of a pull; with the right credentials a referrer pushed through
// Host is read back, and listed by the referrers API; the request log
// tells which requests carried credentials.
func TestReferrersAuth(t *testing.T) {
	for _, opts := range []registrytest.Options{
		{Referrers: true, Auth: registrytest.AuthBasic},
		{Referrers: true, Auth: registrytest.AuthToken, TLS: true},
	} {
		t.Run(opts.Auth.String(), func(t *testing.T) {
			t.Parallel()
			reg := registrytest.Start(t, opts)
			dist := registrytest.Start(t, registrytest.Options{Auth: opts.Auth, TLS: opts.TLS, Username: reg.Username, Password: reg.Password})
			img := fixture.NewImage(fixture.ImageOptions{Seed: 33})
			for _, r := range []*registrytest.Registry{reg, dist} {
				if err := fixture.PushImage(t.Context(), r.AdminHost, "test/app", "v1", img); err != nil {
					t.Fatal(err)
				}
			}
			for _, cred := range []string{"none", "wrong"} {
				want := authAnswers(t, dist, wrongAuthorization(t, dist, cred))
				got := authAnswers(t, reg, wrongAuthorization(t, reg, cred))
				for i := range want {
					if got[i] != want[i] {
						t.Errorf("credentials %s: olareg answers\n%+v\nwant distribution's\n%+v", cred, got[i], want[i])
					}
				}
			}
			assertReferrersChallenge(t, reg, img.Manifest.Desc.Digest.String())
			assertAuthorizedReferrer(t, reg, img)
		})
	}
}

// authAnswer is how a registry answered a request, its host written HOST.
type authAnswer struct {
	request, status, challenge, body string
}

// authAnswers sends requests of every route distribution and olareg share
// to reg, with authorization as the Authorization header ("" for none).
func authAnswers(t *testing.T, reg *registrytest.Registry, authorization string) []authAnswer {
	t.Helper()
	const d = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	var answers []authAnswer
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/v2/"},
		{http.MethodGet, "/v2/_catalog"},
		{http.MethodGet, "/v2/test/app/manifests/v1"},
		{http.MethodHead, "/v2/test/app/manifests/v1"},
		{http.MethodPut, "/v2/test/app/manifests/v2"},
		{http.MethodDelete, "/v2/test/app/manifests/" + d},
		{http.MethodGet, "/v2/test/app/blobs/" + d},
		{http.MethodPost, "/v2/test/app/blobs/uploads/?mount=" + d + "&from=other/repo"},
		{http.MethodPatch, "/v2/test/app/blobs/uploads/some-upload"},
		{http.MethodGet, "/v2/test/app/tags/list"},
	} {
		status, challenge, body := send(t, reg, r.method, r.path, authorization)
		answers = append(answers, authAnswer{request: r.method + " " + r.path, status: status, challenge: challenge, body: body})
	}
	return answers
}

// send sends one request to Host and returns its status, challenge and
// body, with Host written HOST in them.
func send(t *testing.T, reg *registrytest.Registry, method, path, authorization string) (status, challenge, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, reg.URL()+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := reg.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dt, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	host := func(s string) string { return strings.ReplaceAll(s, reg.Host, "HOST") }
	return resp.Status, host(sortedChallenge(resp.Header.Get("WWW-Authenticate"))), host(string(dt))
}

// sortedChallenge writes a challenge with its parameters, the scopes of
// its scope and their actions sorted: distribution's token challenge lists
// them in map order.
func sortedChallenge(header string) string {
	if header == "" {
		return ""
	}
	scheme, params := registrytest.ParseChallenge(header)
	if scope, ok := params["scope"]; ok {
		scopes := strings.Fields(scope)
		for i, s := range scopes {
			colon := strings.LastIndex(s, ":")
			actions := strings.Split(s[colon+1:], ",")
			slices.Sort(actions)
			scopes[i] = s[:colon+1] + strings.Join(actions, ",")
		}
		slices.Sort(scopes)
		params["scope"] = strings.Join(scopes, " ")
	}
	var out []string
	for k, v := range params {
		out = append(out, k+"="+strconv.Quote(v))
	}
	slices.Sort(out)
	return scheme + " " + strings.Join(out, ",")
}

// wrongAuthorization is an Authorization header that must not let a
// client in: none, or ("wrong") basic credentials with a wrong password,
// or a token the registry's token server issued to an anonymous client.
func wrongAuthorization(t *testing.T, reg *registrytest.Registry, cred string) string {
	t.Helper()
	if cred == "none" {
		return ""
	}
	_, challenge, _ := send(t, reg, http.MethodGet, "/v2/", "")
	scheme, params := registrytest.ParseChallenge(strings.ReplaceAll(challenge, "HOST", reg.Host))
	if scheme == "Basic" {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(reg.Username+":not-"+reg.Password))
	}
	tok := getToken(t, reg.Client(), params["realm"]+"?"+url.Values{"service": {params["service"]}}.Encode(), "", "")
	if tok.status != http.StatusOK || tok.token == "" {
		t.Fatalf("anonymous token from %s: status %d", params["realm"], tok.status)
	}
	return "Bearer " + tok.token
}

// assertReferrersChallenge checks the referrers API, which distribution
// lacks, asks an anonymous client for the credentials of a pull, and the
// token server refuses a wrong password.
func assertReferrersChallenge(t *testing.T, reg *registrytest.Registry, subject string) {
	t.Helper()
	status, challenge, _ := send(t, reg, http.MethodGet, "/v2/test/app/referrers/"+subject, "")
	scheme, params := registrytest.ParseChallenge(strings.ReplaceAll(challenge, "HOST", reg.Host))
	switch {
	case status != "401 Unauthorized":
		t.Errorf("referrers without credentials: %s, want 401", status)
	case scheme == "Basic" && params["realm"] != "imgx-test-registry":
		t.Errorf("referrers: challenge %q, want the basic realm", challenge)
	case scheme == "Bearer" && (params["realm"] != reg.URL()+"/token" || params["scope"] != "repository:test/app:pull"):
		t.Errorf("referrers: challenge %q, want realm %s/token and scope repository:test/app:pull", challenge, reg.URL())
	case scheme == "Bearer":
		tokenURL := params["realm"] + "?" + url.Values{"service": {params["service"]}, "scope": {params["scope"]}}.Encode()
		if tok := getToken(t, reg.Client(), tokenURL, reg.Username, "not-"+reg.Password); tok.status != http.StatusUnauthorized {
			t.Errorf("token with a wrong password: status %d, want 401", tok.status)
		}
	case scheme != "Basic":
		t.Errorf("referrers: challenge %q, want Basic or Bearer", challenge)
	}
}

// assertAuthorizedReferrer pushes a referrer of img through Host with the
// registry's credentials, reads it back and finds it in the referrers
// API's answer; the log shows credentials on the retried requests only.
func assertAuthorizedReferrer(t *testing.T, reg *registrytest.Registry, img fixture.Image) {
	t.Helper()
	ctx := t.Context()
	subject := ocispec.Descriptor{MediaType: img.Manifest.Desc.MediaType, Digest: img.Manifest.Desc.Digest, Size: img.Manifest.Desc.Size}
	empty, layer, referrer := newReferrer(t, subject)
	reg.ResetRequests()
	if err := fixture.PushTo(ctx, reg.AuthClient(), reg.URL(), "test/app", "", empty, layer, referrer); err != nil {
		t.Fatal(err)
	}
	if got, _, err := fixture.FetchFrom(ctx, reg.AuthClient(), reg.URL(), "test/app", referrer.Desc.Digest.String()); err != nil || string(got) != string(referrer.Data) {
		t.Fatalf("referrer read back with credentials: %q (%v)", got, err)
	}
	idx := referrers(t, reg, "test/app", subject.Digest.String())
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != referrer.Desc.Digest {
		t.Errorf("referrers of %s with credentials: %+v, want %s", subject.Digest, idx.Manifests, referrer.Desc.Digest)
	}
	for _, r := range reg.Requests() {
		if r.Path == "/token" {
			continue
		}
		if want := r.Status != http.StatusUnauthorized; r.Authorization != want {
			t.Errorf("%s %s answered %d logged Authorization %v, want %v", r.Method, r.Path, r.Status, r.Authorization, want)
		}
	}
}
