// Package registrytest runs a real registry (distribution v3, or olareg for
// the OCI 1.1 referrers API) in-process for tests.
//
// Each Registry listens on 127.0.0.1 with its own storage (a directory; olareg's
// in memory). The main host
// (Host) can require TLS and basic or token authentication and logs every request;
// a second host (AdminHost) serves the same storage over plain HTTP without auth or
// logging, so fixtures can be pushed and results read back without disturbing what
// a test asserts on.
package registrytest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/olareg/olareg"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"

	// Registered by import: the storage driver and the access controllers the config names.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// logEnv is the environment variable that, set to "1", keeps the registry's logs.
const logEnv = "IMGX_TEST_REGISTRY_LOG"

// AuthMode selects how the main host authenticates clients.
type AuthMode int

const (
	// AuthNone serves without authentication.
	AuthNone AuthMode = iota
	// AuthBasic requires HTTP basic credentials checked against an htpasswd file.
	AuthBasic
	// AuthToken requires bearer tokens issued by a token server at <Host>/token.
	AuthToken
)

// String returns the mode's name, for test names.
func (m AuthMode) String() string {
	switch m {
	case AuthNone:
		return "none"
	case AuthBasic:
		return "basic"
	case AuthToken:
		return "token"
	default:
		return fmt.Sprintf("AuthMode(%d)", int(m))
	}
}

// Options configures a Registry.
type Options struct {
	// TLS serves Host over HTTPS with a certificate for 127.0.0.1, ::1 and localhost
	// (and the IP address of Addr) signed by a CA generated for this registry (see
	// Registry.CACertPEM).
	TLS bool
	// Auth selects the authentication of Host.
	Auth AuthMode
	// Username and Password are the accepted credentials when Auth != AuthNone.
	// They default to "imgx" and "s3cr3t-<random>".
	Username, Password string
	// Addr is the listen address of Host, default "127.0.0.1:0" (a free port).
	// AdminHost always listens on a free port of 127.0.0.1.
	Addr string
	// Referrers serves the OCI 1.1 referrers API (GET /v2/<repo>/referrers/<digest>,
	// and OCI-Subject on a manifest put with a subject): the registry is then
	// olareg, not distribution, which has no such API. TLS, auth (distribution's
	// access controllers in front of olareg), the request log and AdminHost are
	// the same; manifest puts and deletes are served one at a time (see
	// oneManifestWriteAtATime).
	Referrers bool
}

// Request is one request received by Host, as logged.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	// Status is the response status code.
	Status int
	// Authorization tells whether the request carried an Authorization header.
	Authorization bool
	// UserAgent is the request's User-Agent header.
	UserAgent string
	// Start is when the handler got the request (its headers); End is when
	// it returned, its answer written.
	Start, End time.Time
}

// Registry is a running in-process registry.
type Registry struct {
	// Host is "127.0.0.1:PORT", what users type in references.
	Host string
	// CACertPEM is the PEM certificate of the CA that signed Host's certificate (TLS only).
	CACertPEM []byte
	// Username and Password are the accepted credentials (empty with AuthNone).
	Username, Password string
	// AdminHost serves the same storage over plain HTTP, without auth and without
	// request logging.
	AdminHost string

	tls       bool
	dir       string
	tokens    *tokenServer
	log       *requestLog
	servers   []*http.Server
	apps      []*handlers.App
	olareg    *olareg.Server
	serving   *errgroup.Group
	closeOnce sync.Once
	closeErr  error
}

// Start starts a registry for the test and closes it in t.Cleanup.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	r, err := StartServer(context.Background(), opts)
	if err != nil {
		t.Fatalf("start registry: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close registry %s: %v", r.Host, err)
		}
	})
	return r
}

// StartServer starts a registry for a program that is not a test; call Close to stop it.
// ctx bounds the start only: cancelling it later does not stop the registry.
//
// Unless logEnv is "1", the process-wide logrus standard logger is silenced, because
// distribution logs every request through it and offers no per-app logger.
func StartServer(ctx context.Context, opts Options) (*Registry, error) {
	if os.Getenv(logEnv) != "1" {
		logrus.SetOutput(io.Discard)
	}
	opts, err := withDefaults(opts)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "imgx-registry-")
	if err != nil {
		return nil, fmt.Errorf("create registry directory: %w", err)
	}
	r := &Registry{
		Username: opts.Username,
		Password: opts.Password,
		tls:      opts.TLS,
		dir:      dir,
		log:      &requestLog{},
		serving:  &errgroup.Group{},
	}
	if err := r.start(ctx, opts); err != nil {
		return nil, errors.Join(err, r.Close())
	}
	return r, nil
}

func withDefaults(opts Options) (Options, error) {
	if opts.Auth == AuthNone {
		opts.Username, opts.Password = "", ""
		return opts, nil
	}
	if opts.Username == "" {
		opts.Username = "imgx"
	}
	if opts.Password == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return opts, fmt.Errorf("generate registry password: %w", err)
		}
		opts.Password = "s3cr3t-" + hex.EncodeToString(b[:])
	}
	return opts, nil
}

// start listens on both hosts, builds the two apps over one storage root and serves them.
func (r *Registry) start(ctx context.Context, opts Options) error {
	var lc net.ListenConfig
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	mainLn, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for registry: %w", err)
	}
	adminLn, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return errors.Join(fmt.Errorf("listen for registry admin: %w", err), mainLn.Close())
	}
	r.Host, r.AdminHost = mainLn.Addr().String(), adminLn.Addr().String()

	mainHandler, admin, tlsConfig, err := r.handlers(opts)
	if err != nil {
		return errors.Join(err, mainLn.Close(), adminLn.Close())
	}

	mainSrv := &http.Server{Handler: r.log.wrap(mainHandler), TLSConfig: tlsConfig, ReadHeaderTimeout: time.Minute, ErrorLog: serverLog()}
	adminSrv := &http.Server{Handler: admin, ReadHeaderTimeout: time.Minute, ErrorLog: serverLog()}
	r.servers = append(r.servers, mainSrv, adminSrv)
	r.serve(mainSrv, mainLn, tlsConfig != nil)
	r.serve(adminSrv, adminLn, false)
	return nil
}

// handlers builds the handlers of the two hosts and, with TLS, the main
// host's TLS config: distribution's apps, or one olareg server for both.
func (r *Registry) handlers(opts Options) (main, admin http.Handler, tlsConfig *tls.Config, err error) {
	if opts.Referrers {
		if tlsConfig, err = r.serverTLS(opts); err != nil {
			return nil, nil, nil, err
		}
		r.olareg = newOlareg()
		// One wrapper for both hosts: manifest writes through either wait for each other.
		store := oneManifestWriteAtATime(r.olareg)
		if main, err = r.olaregMain(opts, store); err != nil {
			return nil, nil, nil, err
		}
		return main, store, tlsConfig, nil
	}
	if main, tlsConfig, err = r.mainHandler(opts); err != nil {
		return nil, nil, nil, err
	}
	app, err := r.newApp(configuration.Auth{})
	if err != nil {
		return nil, nil, nil, err
	}
	return main, app, tlsConfig, nil
}

// serverLog is the servers' error log: TLS handshake failures that tests provoke on
// purpose are noise unless logEnv asks for logs.
func serverLog() *log.Logger {
	if os.Getenv(logEnv) == "1" {
		return nil // net/http's default, the standard logger
	}
	return log.New(io.Discard, "", 0)
}

// newApp builds a registry app over the shared storage and keeps it for Close.
// distribution reports configuration errors by panicking; they become errors here.
func (r *Registry) newApp(auth configuration.Auth) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("configure registry app: %v", p)
		}
	}()
	app = handlers.NewApp(context.Background(), r.config(auth, r.secret()))
	r.apps = append(r.apps, app)
	return app, nil
}

// secret is the HTTP secret shared by both apps, so an upload started on one host
// can be finished on the other. It is fixed per registry, derived from the directory.
func (r *Registry) secret() string {
	return "imgx-registry-secret:" + r.dir
}

func (r *Registry) serve(srv *http.Server, ln net.Listener, useTLS bool) {
	r.serving.Go(func() error {
		var err error
		if useTLS {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
}

// config returns the distribution configuration for one app over the shared storage.
// No blob descriptor cache is configured, so each app sees the other's writes at once.
func (r *Registry) config(auth configuration.Auth, secret string) *configuration.Configuration {
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"filesystem": configuration.Parameters{"rootdirectory": r.dir + "/storage"},
			"delete":     configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{
				"enabled": false,
			}},
		},
		Auth: auth,
	}
	cfg.HTTP.Secret = secret
	return cfg
}

// mainHandler builds the logged host's handler: the registry app with the configured
// auth and, in token mode, the token server at /token; with TLS, also its TLS config.
func (r *Registry) mainHandler(opts Options) (http.Handler, *tls.Config, error) {
	tlsConfig, err := r.serverTLS(opts)
	if err != nil {
		return nil, nil, err
	}
	auth, tokens, err := r.authConfig(opts)
	if err != nil {
		return nil, nil, err
	}
	app, err := r.newApp(auth)
	if err != nil {
		return nil, nil, err
	}
	return withTokenServer(tokens, app), tlsConfig, nil
}

// serverTLS returns the main host's TLS config, with a CA made for this
// registry (CACertPEM); nil without TLS.
func (r *Registry) serverTLS(opts Options) (*tls.Config, error) {
	if !opts.TLS {
		return nil, nil
	}
	ca, err := newCA()
	if err != nil {
		return nil, err
	}
	// A host that is not loopback (a test that needs the machine's own
	// address) is named in the certificate too.
	var more []net.IP
	if host, _, err := net.SplitHostPort(r.Host); err == nil && net.ParseIP(host) != nil && !net.ParseIP(host).IsLoopback() {
		more = append(more, net.ParseIP(host))
	}
	tlsConfig, err := ca.serverTLSConfig(more...)
	if err != nil {
		return nil, err
	}
	r.CACertPEM = ca.certPEM
	return tlsConfig, nil
}

// Close stops both hosts and removes the registry's storage. It is safe to call twice.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		var errs []error
		// Shutdown lets handlers still running (an upload its client gave up
		// on) finish before the storage goes; Close ends what outlasts it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, srv := range r.servers {
			if err := srv.Shutdown(ctx); err != nil {
				errs = append(errs, srv.Close())
			}
		}
		errs = append(errs, r.serving.Wait())
		for _, app := range r.apps {
			errs = append(errs, app.Shutdown())
		}
		if r.olareg != nil {
			errs = append(errs, r.olareg.Close())
		}
		errs = append(errs, os.RemoveAll(r.dir))
		if err := errors.Join(errs...); err != nil {
			r.closeErr = fmt.Errorf("close registry %s: %w", r.Host, err)
		}
	})
	return r.closeErr
}

// Requests returns the requests Host received so far, in arrival order.
func (r *Registry) Requests() []Request { return r.log.snapshot() }

// ResetRequests forgets the requests logged so far.
func (r *Registry) ResetRequests() { r.log.reset() }

// Count returns how many logged requests used method (any method when "") on a path
// containing pathSubstring.
func (r *Registry) Count(method, pathSubstring string) int {
	return r.log.count(method, pathSubstring)
}

// URL returns the base URL of Host, with its scheme.
func (r *Registry) URL() string {
	if r.tls {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// DockerConfigAuth returns base64("user:pass"), the "auth" of a config.json "auths" entry.
func (r *Registry) DockerConfigAuth() string {
	return base64.StdEncoding.EncodeToString([]byte(r.Username + ":" + r.Password))
}
