package registrytest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/crypto/bcrypt"
)

const (
	tokenPath    = "/token"
	tokenService = "imgx-test-registry"
	tokenIssuer  = "imgx-test-token-issuer"
	tokenTTL     = 5 * time.Minute
	basicRealm   = "imgx-test-registry"
)

// basicAuth writes an htpasswd file with a bcrypt hash and returns the auth config using it.
func (r *Registry) basicAuth(username, password string) (configuration.Auth, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("hash registry password: %w", err)
	}
	path := filepath.Join(r.dir, "htpasswd")
	if err := os.WriteFile(path, []byte(username+":"+string(hash)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write htpasswd: %w", err)
	}
	return configuration.Auth{"htpasswd": configuration.Parameters{"realm": basicRealm, "path": path}}, nil
}

// tokenServer issues registry bearer tokens (the Docker token authentication flow).
// Authenticated clients get the scopes they ask for; anonymous clients get a token
// granting nothing, so the registry answers 401 insufficient_scope, as public
// registries do for private repositories.
type tokenServer struct {
	realm              string
	bundlePath         string
	username, password string
	signer             jose.Signer

	mu     sync.Mutex
	issued []string
}

// IssuedTokens returns every bearer token the token server issued, in order
// (none for other auth modes), so tests can check that no output shows one.
func (r *Registry) IssuedTokens() []string {
	if r.tokens == nil {
		return nil
	}
	r.tokens.mu.Lock()
	defer r.tokens.mu.Unlock()
	return append([]string(nil), r.tokens.issued...)
}

// newTokenServer generates the signing certificate and writes it to dir as the
// registry's root certificate bundle.
func newTokenServer(dir, realm, username, password string) (*tokenServer, error) {
	kp, err := newSigningCert()
	if err != nil {
		return nil, err
	}
	bundlePath := filepath.Join(dir, "token-bundle.crt")
	if err := os.WriteFile(bundlePath, kp.certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write token root bundle: %w", err)
	}
	// The registry trusts root bundle keys by their JWK thumbprint, given as "kid".
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), token.GetJWKThumbprint(&kp.key.PublicKey))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: kp.key}, opts)
	if err != nil {
		return nil, fmt.Errorf("create token signer: %w", err)
	}
	return &tokenServer{realm: realm, bundlePath: bundlePath, username: username, password: password, signer: signer}, nil
}

// registryAuth is the registry's auth.token configuration for this server.
func (ts *tokenServer) registryAuth() configuration.Auth {
	return configuration.Auth{"token": configuration.Parameters{
		"realm":          ts.realm,
		"service":        tokenService,
		"issuer":         tokenIssuer,
		"rootcertbundle": ts.bundlePath,
	}}
}

// ServeHTTP answers GET /token (credentials in basic auth) and POST /token
// (OAuth2 password grant, which containerd tries first).
func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var (
		user, pass string
		given      bool
		scopes     []string
	)
	switch req.Method {
	case http.MethodGet:
		user, pass, given = req.BasicAuth()
		scopes = req.URL.Query()["scope"]
	case http.MethodPost:
		if err := req.ParseForm(); err != nil {
			writeTokenError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		if gt := req.PostForm.Get("grant_type"); gt != "password" {
			writeTokenError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type "+gt+" is not supported")
			return
		}
		user, pass, given = req.PostForm.Get("username"), req.PostForm.Get("password"), true
		scopes = req.PostForm["scope"]
	default:
		w.Header().Set("Allow", "GET, POST")
		writeTokenError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	}
	if given && !ts.valid(user, pass) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", basicRealm))
		writeTokenError(w, http.StatusUnauthorized, "invalid_grant", "invalid username or password")
		return
	}
	var access []*token.ResourceActions
	if given {
		access = parseScopes(scopes)
	}
	ts.writeToken(w, user, access)
}

func (ts *tokenServer) valid(user, pass string) bool {
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(ts.username)) == 1
	passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(ts.password)) == 1
	return userOK && passOK
}

func (ts *tokenServer) writeToken(w http.ResponseWriter, subject string, access []*token.ResourceActions) {
	var jti [12]byte
	if _, err := rand.Read(jti[:]); err != nil {
		writeTokenError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	now := time.Now()
	if access == nil {
		access = []*token.ResourceActions{}
	}
	claims := token.ClaimSet{
		Issuer:     tokenIssuer,
		Subject:    subject,
		Audience:   token.AudienceList{tokenService},
		Expiration: now.Add(tokenTTL).Unix(),
		NotBefore:  now.Add(-time.Minute).Unix(),
		IssuedAt:   now.Unix(),
		JWTID:      hex.EncodeToString(jti[:]),
		Access:     access,
	}
	raw, err := jwt.Signed(ts.signer).Claims(claims).Serialize()
	if err != nil {
		writeTokenError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	ts.mu.Lock()
	ts.issued = append(ts.issued, raw)
	ts.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"token":        raw,
		"access_token": raw,
		"expires_in":   int(tokenTTL / time.Second),
		"issued_at":    now.UTC().Format(time.RFC3339),
	})
}

// parseScopes turns "type:name:action,action" scopes (several per parameter,
// space-separated) into grants. Names may hold ':' (a "repository(plugin)" type does not).
func parseScopes(scopes []string) []*token.ResourceActions {
	var access []*token.ResourceActions
	for _, param := range scopes {
		for _, scope := range strings.Fields(param) {
			typ, rest, ok := strings.Cut(scope, ":")
			if !ok {
				continue
			}
			i := strings.LastIndex(rest, ":")
			if i < 0 {
				continue
			}
			access = append(access, &token.ResourceActions{
				Type:    typ,
				Name:    rest[:i],
				Actions: strings.Split(rest[i+1:], ","),
			})
		}
	}
	return access
}

func writeTokenError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteDockerConfig writes dir/config.json with an "auths" entry for Host, so a
// client run with DOCKER_CONFIG=dir logs in. It writes an empty "auths" without auth.
func (r *Registry) WriteDockerConfig(dir string) error {
	auths := map[string]map[string]string{}
	if r.Username != "" {
		auths[r.Host] = map[string]string{"auth": r.DockerConfigAuth()}
	}
	body, err := json.MarshalIndent(map[string]any{"auths": auths}, "", "\t")
	if err != nil {
		return fmt.Errorf("docker config for %s: %w", r.Host, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("docker config for %s: %w", r.Host, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), body, 0o600); err != nil {
		return fmt.Errorf("docker config for %s: %w", r.Host, err)
	}
	return nil
}
