package registrytest

import (
	"errors"
	"fmt"
	"net/http"
	"path"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/distribution/v3/registry/auth"
)

// olaregMain builds the logged host's handler of a registry with the
// referrers API: store (olareg) behind distribution's access controller for
// opts.Auth, configured as the distribution registries here are (the same
// htpasswd file, or the same token server, realm, issuer and root
// bundle), and in token mode the token server at /token.
func (r *Registry) olaregMain(opts Options, store http.Handler) (http.Handler, error) {
	cfg, tokens, err := r.authConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.Type() == "" {
		return store, nil
	}
	ac, err := auth.GetAccessController(cfg.Type(), cfg.Parameters())
	if err != nil {
		return nil, fmt.Errorf("configure the access controller of olareg: %w", err)
	}
	return withTokenServer(tokens, withAccessControl(ac, store)), nil
}

// withAccessControl answers each request as distribution's App.authorized
// does before its handlers run, then passes the allowed ones to next: it
// derives the access a request needs from its path and method
// (requestAccess) and asks ac. A challenge (no, wrong or insufficient
// credentials) is answered 401 with ac's WWW-Authenticate header and
// distribution's UNAUTHORIZED error body; any other error of ac, 400. A
// path olareg serves no repository, base or catalog on is answered 404, as
// olareg does, without reaching next.
func withAccessControl(ac auth.AccessController, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		access, ok := requestAccess(req)
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if _, err := ac.Authorized(req, access...); err != nil {
			var challenge auth.Challenge
			if !errors.As(err, &challenge) {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			challenge.SetHeaders(req, w)
			_ = errcode.ServeJSON(w, errcode.ErrorCodeUnauthorized.WithDetail(access))
			return
		}
		next.ServeHTTP(w, req)
	})
}

// requestAccess is the access a request to olareg needs, as distribution
// derives it (appendAccessRecords, appendCatalogAccessRecord): on a
// repository route, pull for GET and HEAD, pull and push for POST, PUT and
// PATCH, delete for DELETE, and pull on the repository a blob mount names
// in "from"; the catalog, registry:catalog:*; the base /v2/, none (any
// valid credentials). ok is false for any other path.
func requestAccess(req *http.Request) (access []auth.Access, ok bool) {
	switch path.Clean("/" + req.URL.Path) {
	case "/v2":
		return nil, true
	case "/v2/_catalog":
		return []auth.Access{{Resource: auth.Resource{Type: "registry", Name: "catalog"}, Action: "*"}}, true
	}
	_, name, ok := olaregRoute(req.URL.Path)
	if !ok {
		return nil, false
	}
	access = repositoryAccess(req.Method, name)
	if from := req.URL.Query().Get("from"); from != "" {
		access = append(access, repositoryAccess(http.MethodGet, from)...)
	}
	return access, true
}

// repositoryAccess is distribution's appendAccessRecords: the actions on
// repository name that a request of method needs.
func repositoryAccess(method, name string) []auth.Access {
	var actions []string
	switch method {
	case http.MethodGet, http.MethodHead:
		actions = []string{"pull"}
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		actions = []string{"pull", "push"}
	case http.MethodDelete:
		actions = []string{"delete"}
	}
	access := make([]auth.Access, 0, len(actions))
	for _, action := range actions {
		access = append(access, auth.Access{Resource: auth.Resource{Type: "repository", Name: name}, Action: action})
	}
	return access
}

// withTokenServer serves tokens (the token server, nil without token auth)
// at tokenPath and everything else with next.
func withTokenServer(tokens, next http.Handler) http.Handler {
	if tokens == nil {
		return next
	}
	mux := http.NewServeMux()
	mux.Handle(tokenPath, tokens)
	mux.Handle("/", next)
	return mux
}

// authConfig returns distribution's auth configuration for opts.Auth (empty
// for AuthNone) and, for AuthToken, the token server to serve at tokenPath,
// whose realm is that path on Host.
func (r *Registry) authConfig(opts Options) (configuration.Auth, http.Handler, error) {
	switch opts.Auth {
	case AuthNone:
		return configuration.Auth{}, nil, nil
	case AuthBasic:
		cfg, err := r.basicAuth(opts.Username, opts.Password)
		return cfg, nil, err
	case AuthToken:
		ts, err := newTokenServer(r.dir, r.URL()+tokenPath, opts.Username, opts.Password)
		if err != nil {
			return nil, nil, err
		}
		r.tokens = ts
		return ts.registryAuth(), ts, nil
	default:
		return nil, nil, fmt.Errorf("registry auth mode %v: unknown", opts.Auth)
	}
}
