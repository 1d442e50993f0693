package registrytest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// AuthClient returns an HTTP client that trusts the registry's CA and answers its
// 401 challenges with the registry's credentials: basic auth, or a token fetched
// from the bearer realm. It keeps no token between requests, so every request to an
// auth registry costs a challenge round trip; it is for assertions, not speed.
func (r *Registry) AuthClient() *http.Client {
	c := r.Client()
	c.Transport = &challengeTransport{next: c.Transport, username: r.Username, password: r.Password}
	return c
}

// challengeTransport retries a request answered 401 with the credentials the
// WWW-Authenticate challenge asks for.
type challengeTransport struct {
	next               http.RoundTripper
	username, password string
}

func (t *challengeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || req.Header.Get("Authorization") != "" {
		return resp, err
	}
	scheme, params := ParseChallenge(resp.Header.Get("WWW-Authenticate"))
	var authorization string
	switch strings.ToLower(scheme) {
	case "basic":
		authorization = "Basic " + base64.StdEncoding.EncodeToString([]byte(t.username+":"+t.password))
	case "bearer":
		tok, err := t.fetchToken(req, params)
		if err != nil {
			_ = resp.Body.Close()
			return nil, err
		}
		authorization = "Bearer " + tok
	default:
		return resp, nil
	}
	retry, err := rewind(req)
	if err != nil {
		_ = resp.Body.Close()
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	retry.Header.Set("Authorization", authorization)
	return t.next.RoundTrip(retry)
}

// rewind clones req with a fresh body for a second attempt.
func rewind(req *http.Request) (*http.Request, error) {
	retry := req.Clone(req.Context())
	if req.Body == nil || req.Body == http.NoBody {
		return retry, nil
	}
	if req.GetBody == nil {
		return nil, fmt.Errorf("retry %s %s with credentials: request body cannot be replayed", req.Method, req.URL.Path)
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("retry %s %s with credentials: %w", req.Method, req.URL.Path, err)
	}
	retry.Body = body
	return retry, nil
}

func (t *challengeTransport) fetchToken(req *http.Request, params map[string]string) (string, error) {
	u, err := url.Parse(params["realm"])
	if err != nil {
		return "", fmt.Errorf("token realm %q: %w", params["realm"], err)
	}
	q := u.Query()
	q.Set("service", params["service"])
	if scope := params["scope"]; scope != "" {
		q.Set("scope", scope)
	}
	u.RawQuery = q.Encode()
	tokReq, err := http.NewRequestWithContext(req.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	tokReq.SetBasicAuth(t.username, t.password)
	resp, err := t.next.RoundTrip(tokReq)
	if err != nil {
		return "", fmt.Errorf("fetch token from %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch token from %s: status %d", u.Host, resp.StatusCode)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("fetch token from %s: %w", u.Host, err)
	}
	if body.Token != "" {
		return body.Token, nil
	}
	return body.AccessToken, nil
}

// ParseChallenge splits a WWW-Authenticate value into its scheme and parameters,
// e.g. `Bearer realm="https://h/token",service="s",scope="repository:a:pull"`.
// Quoted values may hold commas; the registry sends a single challenge.
func ParseChallenge(header string) (string, map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(header), " ")
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		var value string
		if strings.HasPrefix(after, `"`) {
			end := strings.Index(after[1:], `"`)
			if end < 0 {
				value, rest = after[1:], ""
			} else {
				value, rest = after[1:1+end], after[2+end:]
			}
		} else {
			value, rest, _ = strings.Cut(after, ",")
		}
		params[key] = value
		rest = strings.TrimLeft(rest, ", ")
	}
	return scheme, params
}
