// Package registry is the registry place: how registries are reached (hosts,
// TLS, credentials from the Docker CLI configuration, containerd hosts.toml,
// retries with backoff, resumed downloads) and a typed client with one method
// per registry call (manifest get and put, blob check, mount and upload,
// tags and referrers lists), each in the fewest round trips the protocol
// allows. Client implements place.Backend and place.Writer.
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/docker-imgx/docker-imgx/imagetools/ref"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
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
	// It applies to every host a registry is reached through, mirrors
	// included, and wins over a hosts.toml's TLS settings.
	Insecure func(host string) bool
	// CertsDirs are folders holding per-host configuration, in the Docker
	// daemon's certs.d layout (<dir>/<host:port>/ca.crt, client.cert,
	// client.key) or containerd's (<dir>/<host_port_>/hosts.toml, with
	// mirrors; <dir>/_default/hosts.toml for a host no folder names). The
	// first folder that has the host wins.
	CertsDirs []string
	// UserAgent is sent with every request.
	UserAgent string
	// Retry, when set, puts the retry layer (newRetryTransport) on every
	// host's transport; nil sends each request once.
	Retry *RetryOptions
	// Resume configures how blob downloads cut mid-way are resumed.
	Resume ResumeOptions
	// UntrustedHint says, for a host whose certificate is not trusted, what
	// would make it trusted; it is added to the error. certsDir is the
	// Docker certs folder read for the host and hostsFile the hosts.toml
	// that configures it, each "" when there is none. nil adds nothing.
	UntrustedHint func(host, certsDir, hostsFile string) string
	// PlainHTTPHint says, for a host that answers HTTPS in plain HTTP and
	// may not speak it, how to let it (same arguments); nil adds nothing.
	PlainHTTPHint func(host, certsDir, hostsFile string) string
}

// Client reaches registries. It caches one set of hosts per registry, so
// tokens and connections are reused for the life of the process.
type Client struct {
	opts     Options
	base     *http.Transport
	resolver remotes.Resolver
	uploads  *uploader
	sessions sessions

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
	return typedFetcher{newResumingFetcher(f, r.opts.Resume)}, nil
}

// typedFetcher turns the error status containerd's fetcher reports
// (remotes/errors.ErrUnexpectedStatus, whose text repeats the URL with its
// query) into an *Error, from Fetch or, as the blob is opened on its first
// read, from Read.
type typedFetcher struct{ f remotes.Fetcher }

func (t typedFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, err := t.f.Fetch(ctx, desc)
	if err != nil {
		return nil, typedStatus(err)
	}
	return typedReader{rc}, nil
}

type typedReader struct{ io.ReadCloser }

func (t typedReader) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = typedStatus(err)
	}
	return n, err
}

// typedStatus returns the *Error for containerd's ErrUnexpectedStatus in
// err, else err told as transportError tells it.
func typedStatus(err error) error {
	var status remoteerrors.ErrUnexpectedStatus
	if !errors.As(err, &status) {
		// containerd's "failed to do request: Get URL: cause": the cause,
		// and the host (transportError).
		return transportError(err)
	}
	e := &Error{Method: status.RequestMethod, StatusCode: status.StatusCode}
	if u, perr := url.Parse(status.RequestURL); perr == nil {
		e.Host, e.Path = u.Host, u.Path
	}
	e.Codes, e.Message = parseErrorBody(status.Body)
	return e
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
