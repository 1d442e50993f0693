// Package registry is the registry place: how registries are reached (hosts,
// TLS, credentials from the Docker CLI configuration, containerd hosts.toml,
// retries with backoff, resumed downloads) and a typed client with one method
// per registry call (manifest get and put, blob check, mount and upload,
// tags and referrers lists), each in the fewest round trips the protocol
// allows. Client implements place.Place.
//
// It imports ref, oci, place and progress of the engine, and containerd's
// remotes for hosts, authorization and blob fetches.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	dockerconfig "github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
)

// Credentials returns the user name and secret for a registry host. An empty
// user name with a secret means the secret is an identity (refresh) token.
type Credentials func(host string) (user, secret string, err error)

// Options configure how registries are reached.
type Options struct {
	// Credentials for a host; nil means anonymous.
	Credentials Credentials
	// Insecure reports whether a host (host or host:port) may be reached over
	// plain HTTP and with TLS verification off. Build it with NewHostMatcher.
	Insecure func(host string) bool
	// CertsDirs are folders holding per-host TLS material, in the Docker
	// daemon's certs.d layout (<dir>/<host>/ca.crt, client.cert, client.key)
	// or containerd's (<dir>/<host>/hosts.toml). The first that has the host wins.
	CertsDirs []string
	// UserAgent is sent with every request.
	UserAgent string
	// Retry, when set, puts the retry layer (NewRetryTransport) on every
	// host's transport; nil sends each request once.
	Retry *RetryOptions
	// Resume configures how blob downloads cut mid-way are resumed.
	Resume ResumeOptions
	// UntrustedHint says, for a host whose certificate is not trusted, what
	// would make it trusted; it is added to the error. nil adds nothing.
	UntrustedHint func(host string) string
}

// Client reaches registries. It caches one set of hosts per registry, so
// tokens and connections are reused for the life of the process.
type Client struct {
	opts     Options
	base     *http.Transport
	resolver remotes.Resolver
	uploads  *uploader

	mu    sync.Mutex
	hosts map[string][]docker.RegistryHost
}

// New returns a client for the given options.
func New(opts Options) *Client {
	if opts.Insecure == nil {
		opts.Insecure = func(string) bool { return false }
	}
	r := &Client{
		opts:  opts,
		base:  newTransport(defaultTLSConfig()),
		hosts: map[string][]docker.RegistryHost{},
	}
	headers := http.Header{}
	if opts.UserAgent != "" {
		headers.Set("User-Agent", opts.UserAgent)
	}
	r.uploads = newUploader(r)
	r.resolver = docker.NewResolver(docker.ResolverOptions{Hosts: r.registryHosts, Headers: headers})
	return r
}

// defaultTLSConfig is the TLS configuration every host starts from. Each
// transport gets its own copy: a transport in use writes to its config
// (HTTP/2 setup), so cloning a live one would race.
func defaultTLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

// newTransport is a registry transport: keep-alive, enough idle connections
// per host for parallel blob transfers, and no total timeout (a large blob
// may take long; stalls are caught per read by the retry layer). One is
// shared by every host without TLS settings of its own.
func newTransport(tlsConfig *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 5 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		TLSClientConfig:       tlsConfig,
	}
}

// Fetcher returns a fetcher for the repository of loc: containerd's (one
// GET per blob), resuming a cut download with a Range request.
func (r *Client) Fetcher(ctx context.Context, loc ref.Location) (remotes.Fetcher, error) {
	f, err := r.resolver.Fetcher(ctx, loc.String())
	if err != nil {
		return nil, fmt.Errorf("fetch from %s: %w", loc, err)
	}
	return NewResumingFetcher(f, r.opts.Resume), nil
}

// emptyDigest stands in for "no object" in a reference that must carry a
// digest (containerd's scope helpers parse one).
const emptyDigest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// registryHosts is the containerd RegistryHosts function, cached per host.
func (r *Client) registryHosts(host string) ([]docker.RegistryHost, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.hosts[host]; ok {
		return h, nil
	}
	h, err := r.configureHost(host)
	if err != nil {
		return nil, fmt.Errorf("configure registry %s: %w", host, err)
	}
	for i := range h {
		if h[i].Authorizer != nil {
			h[i].Authorizer = &serialAuthorizer{a: h[i].Authorizer}
		}
	}
	r.hosts[host] = h
	return h, nil
}

// serialAuthorizer lets one request at a time into containerd's authorizer.
// Its bearer handler (containerd v2.4, doBearerAuth) reads the expiry of a
// token still being fetched under its lock while the fetching goroutine
// writes it without: a data race the -race build of the binary reports on
// the first parallel requests to a token-auth registry. A cached token is
// handed out in microseconds; a token being fetched held up the requests of
// its scope anyway.
type serialAuthorizer struct {
	mu sync.Mutex
	a  docker.Authorizer
}

func (s *serialAuthorizer) Authorize(ctx context.Context, req *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.a.Authorize(ctx, req)
}

func (s *serialAuthorizer) AddResponses(ctx context.Context, responses []*http.Response) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.a.AddResponses(ctx, responses)
}

func (r *Client) configureHost(host string) ([]docker.RegistryHost, error) {
	dir := findHostDir(r.opts.CertsDirs, host)
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "hosts.toml")); err == nil {
			return r.containerdHosts(host, dir)
		}
	}
	insecure := r.opts.Insecure(host)
	tlsConfig := defaultTLSConfig()
	custom := insecure
	if dir != "" {
		if err := loadCertsDir(tlsConfig, dir); err != nil {
			return nil, err
		}
		custom = true
	}
	if insecure {
		tlsConfig.InsecureSkipVerify = true
	}
	var rt http.RoundTripper = r.base
	if custom {
		rt = newTransport(tlsConfig)
	}
	// Loopback registries and hosts marked insecure may speak plain HTTP:
	// try HTTPS first, fall back on the server's plain-HTTP answer. Unlike
	// containerd's default for localhost, TLS verification stays on for
	// loopback unless the host is marked insecure.
	// Logged under the fallback: the log shows the scheme really used.
	rt = logTransport{rt: rt}
	if insecure || docker.IsLocalhost(host) {
		rt = docker.NewHTTPFallback(rt)
	}
	rt = tlsHintTransport{rt: rt, host: host, hint: r.opts.UntrustedHint}
	rt = r.wrap(rt)
	client := &http.Client{Transport: rt}
	return []docker.RegistryHost{{
		Client:       client,
		Authorizer:   r.authorizer(client),
		Host:         registryEndpoint(host),
		Scheme:       "https",
		Path:         "/v2",
		Capabilities: docker.HostCapabilityPull | docker.HostCapabilityResolve | docker.HostCapabilityPush,
	}}, nil
}

// wrap puts the retry layer, when the options ask for one, over a host's
// round tripper.
func (r *Client) wrap(rt http.RoundTripper) http.RoundTripper {
	if r.opts.Retry != nil {
		rt = NewRetryTransport(rt, *r.opts.Retry)
	}
	return rt
}

// containerdHosts reads a containerd hosts.toml with containerd's own parser.
func (r *Client) containerdHosts(host, dir string) ([]docker.RegistryHost, error) {
	hosts := dockerconfig.ConfigureHosts(context.Background(), dockerconfig.HostOptions{
		HostDir: func(string) (string, error) { return dir, nil },
		UpdateClient: func(c *http.Client) error {
			c.Transport = logTransport{rt: c.Transport}
			c.Transport = tlsHintTransport{rt: c.Transport, host: host, hint: r.opts.UntrustedHint}
			c.Transport = r.wrap(c.Transport)
			return nil
		},
		AuthorizerOpts: r.authorizerOpts(),
	})
	return hosts(host)
}

func (r *Client) authorizer(client *http.Client) docker.Authorizer {
	return docker.NewDockerAuthorizer(append(r.authorizerOpts(), docker.WithAuthClient(client))...)
}

func (r *Client) authorizerOpts() []docker.AuthorizerOpt {
	if r.opts.Credentials == nil {
		return nil
	}
	return []docker.AuthorizerOpt{docker.WithAuthCreds(r.opts.Credentials)}
}

// registryEndpoint maps a registry name to the host serving its API.
func registryEndpoint(host string) string {
	if host == "docker.io" {
		return "registry-1.docker.io"
	}
	return host
}

// findHostDir returns the first certs folder for host: "host:port" as the
// Docker daemon names it, or "host_port_" as containerd does.
func findHostDir(dirs []string, host string) string {
	names := []string{host}
	if h, port, err := net.SplitHostPort(host); err == nil {
		names = append(names, h+"_"+port+"_")
	}
	for _, d := range dirs {
		for _, n := range names {
			p := filepath.Join(d, n)
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				return p
			}
		}
	}
	return ""
}

// loadCertsDir adds a Docker certs.d folder to a TLS config: every *.crt is a
// CA, every *.cert with its *.key a client certificate. Written here rather
// than with containerd's loader because that one turns verification off for
// every loopback host.
func loadCertsDir(cfg *tls.Config, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read certs folder %s: %w", dir, err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".crt"):
			if err := addCA(cfg, p); err != nil {
				return err
			}
		case strings.HasSuffix(e.Name(), ".cert"):
			key := strings.TrimSuffix(p, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(p, key)
			if err != nil {
				return fmt.Errorf("load client certificate %s: %w", p, err)
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		}
	}
	return nil
}

func addCA(cfg *tls.Config, path string) error {
	pem, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read CA %s: %w", path, err)
	}
	if cfg.RootCAs == nil {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		cfg.RootCAs = pool
	}
	if !cfg.RootCAs.AppendCertsFromPEM(pem) {
		return fmt.Errorf("read CA %s: no PEM certificate found", path)
	}
	return nil
}
