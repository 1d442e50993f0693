package registry

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
)

// insecureHostPattern is a host name, IPv4 or bracketed IPv6 address, with an
// optional port.
var insecureHostPattern = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// NewHostMatcher returns a predicate over registry hosts for a list of
// entries: "host", "host:port", or a CIDR range such as "10.0.0.0/8" (which
// matches hosts given as IP addresses, with or without a port).
func NewHostMatcher(entries []string) (func(host string) bool, error) {
	var hosts []string
	var nets []*net.IPNet
	for _, e := range entries {
		e = strings.TrimSpace(e)
		e = strings.TrimPrefix(strings.TrimPrefix(e, "http://"), "https://")
		e = strings.TrimSuffix(e, "/")
		if e == "" {
			continue
		}
		if strings.Contains(e, "/") {
			_, n, err := net.ParseCIDR(e)
			if err != nil {
				return nil, fmt.Errorf("insecure registry %q: not a host, host:port or CIDR range (e.g. registry.local:5000 or 10.0.0.0/8)", e)
			}
			nets = append(nets, n)
			continue
		}
		if net.ParseIP(e) == nil && !insecureHostPattern.MatchString(e) {
			return nil, fmt.Errorf("insecure registry %q: not a host, host:port or CIDR range (e.g. registry.local:5000 or 10.0.0.0/8)", e)
		}
		hosts = append(hosts, e)
	}
	return func(host string) bool {
		name := host
		if h, _, err := net.SplitHostPort(host); err == nil {
			name = h
		}
		for _, h := range hosts {
			if h == host || h == name {
				return true
			}
		}
		if ip := net.ParseIP(name); ip != nil {
			for _, n := range nets {
				if n.Contains(ip) {
					return true
				}
			}
		}
		return false
	}, nil
}

// configureHost lists the hosts a registry is reached through, in the order
// they are tried: the [host."URL"] mirrors of its hosts.toml, then its
// server. Without a hosts.toml (or with one that sets nothing) the server
// alone, with the TLS files of its Docker certs.d folder.
func (r *Client) configureHost(host string) ([]docker.RegistryHost, error) {
	dir, file := findHostDir(r.opts.CertsDirs, host)
	var entries []hostEntry
	if file != "" {
		var err error
		if entries, err = readHostsFile(file); err != nil {
			return nil, err
		}
	}
	if entries == nil { // a hosts.toml names its TLS files itself
		entries = []hostEntry{{caps: allCapabilities, certsDir: dir}}
	}
	out := make([]docker.RegistryHost, 0, len(entries))
	for _, e := range entries {
		if e.host == "" { // the server, not named in the file
			e.scheme, e.host, e.path, e.implicit = "https", registryEndpoint(host), "/v2", true
		}
		h, err := r.registryHost(e)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// registryHost builds the client of one host: its TLS settings, then
// --insecure-registry over them (the flag wins over a hosts.toml), plain
// HTTP where allowed, the TLS hint and the retry layer.
func (r *Client) registryHost(e hostEntry) (docker.RegistryHost, error) {
	insecure := r.opts.Insecure(e.host)
	tlsConfig := defaultTLSConfig()
	explicitTLS := len(e.caFiles) > 0 || len(e.clientPairs) > 0 || e.skipVerify != nil
	if err := e.loadTLS(tlsConfig); err != nil {
		return docker.RegistryHost{}, err
	}
	if insecure {
		tlsConfig.InsecureSkipVerify = true
	}
	var rt http.RoundTripper = r.base
	if insecure || explicitTLS || e.certsDir != "" || e.dialTimeout > 0 {
		t := newTransport(tlsConfig)
		if e.dialTimeout > 0 {
			t.DialContext = (&net.Dialer{Timeout: e.dialTimeout, KeepAlive: 30 * time.Second}).DialContext
		}
		rt = t
	}
	// An http:// host with TLS settings is tried over HTTPS first, as
	// containerd does. Loopback servers and hosts marked insecure may speak
	// plain HTTP: HTTPS first, then the server's plain-HTTP answer
	// (fallback.go). Unlike containerd's default for loopback, TLS
	// verification stays on. Logged under the fallback: the log shows the
	// scheme really used.
	rt = logTransport{rt: rt}
	fallback := e.scheme == "https" && (insecure || (e.implicit && docker.IsLocalhost(e.host)))
	if _, port, _ := net.SplitHostPort(e.host); e.scheme == "http" && explicitTLS && port != "80" {
		e.scheme, fallback = "https", true
	}
	if fallback {
		rt = newPlainFallback(rt)
	}
	rt = tlsHintTransport{rt: rt, host: e.host, dir: e.certsDir, file: e.file, hint: r.opts.UntrustedHint, plainHint: r.opts.PlainHTTPHint}
	client := &http.Client{Transport: r.wrap(rt)}
	opts := append(r.authorizerOpts(), docker.WithAuthClient(client))
	if len(e.header) > 0 {
		opts = append(opts, docker.WithAuthHeader(e.header))
	}
	return docker.RegistryHost{
		Client:       client,
		Authorizer:   docker.NewDockerAuthorizer(opts...),
		Host:         e.host,
		Scheme:       e.scheme,
		Path:         e.path,
		Capabilities: e.caps,
		Header:       e.header,
	}, nil
}

// loadTLS adds the entry's CA files, client certificates and skip_verify
// (or its Docker certs folder) to cfg.
func (e hostEntry) loadTLS(cfg *tls.Config) error {
	if e.certsDir != "" {
		if err := loadCertsDir(cfg, e.certsDir); err != nil {
			return err
		}
	}
	if e.skipVerify != nil {
		cfg.InsecureSkipVerify = *e.skipVerify
	}
	for _, f := range e.caFiles {
		if err := addCA(cfg, f); err != nil {
			return fmt.Errorf("%s: %w", e.file, err)
		}
	}
	for _, p := range e.clientPairs {
		key := p[1]
		if key == "" {
			key = p[0] // certificate and key in one file
		}
		pair, err := loadKeyPair(p[0], key)
		if err != nil {
			return fmt.Errorf("%s: load client certificate %s: %w", e.file, p[0], err)
		}
		cfg.Certificates = append(cfg.Certificates, pair)
	}
	return nil
}

// wrap puts the retry layer, when the options ask for one, over a host's
// round tripper.
func (r *Client) wrap(rt http.RoundTripper) http.RoundTripper {
	if r.opts.Retry != nil {
		rt = newRetryTransport(rt, *r.opts.Retry)
	}
	return rt
}

// hostDirNames are the folder names a host's configuration is looked up
// under in a certs folder, in order: containerd's (":port" written
// "_port_", so "[::1]:5000" is "[::1]_5000_") and the Docker daemon's (the
// host as written).
func hostDirNames(host string) []string {
	if i := strings.LastIndex(host, ":"); i > 0 && !strings.HasSuffix(host, "]") {
		return []string{host[:i] + "_" + host[i+1:] + "_", host}
	}
	return []string{host}
}

// findHostDir returns the first folder configuring host in the certs
// folders dirs, and its hosts.toml when it has one. A hosts.toml under
// _default, as containerd reads it, applies to a host no folder names.
func findHostDir(dirs []string, host string) (dir, hostsFile string) {
	for _, d := range dirs {
		for _, n := range hostDirNames(host) {
			p := filepath.Join(d, n)
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				return p, existing(filepath.Join(p, "hosts.toml"))
			}
		}
	}
	for _, d := range dirs {
		if f := existing(filepath.Join(d, "_default", "hosts.toml")); f != "" {
			return "", f
		}
	}
	return "", ""
}

func existing(file string) string {
	if _, err := os.Stat(file); err != nil {
		return ""
	}
	return file
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
			pair, err := loadKeyPair(p, key)
			if err != nil {
				return fmt.Errorf("load client certificate %s: %w", p, err)
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		}
	}
	return nil
}

// loadKeyPair reads a client certificate and its key, as
// tls.LoadX509KeyPair but through readConfigFile.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := readConfigFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := readConfigFile(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(cert, key)
}

func addCA(cfg *tls.Config, path string) error {
	pem, err := readConfigFile(path)
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

// plainHTTPError is a server that answered the TLS handshake in plain
// HTTP (Go's "server gave HTTP response to HTTPS client"), on a host that
// is not let speak it: what to do is in hint (Options.PlainHTTPHint).
type plainHTTPError struct {
	host, hint string
	err        error
}

func (e *plainHTTPError) Error() string {
	s := e.host + " answered in plain HTTP, not HTTPS"
	if e.hint != "" {
		s += ": " + e.hint
	}
	return s
}

func (e *plainHTTPError) Unwrap() error { return e.err }

// tlsHintTransport adds to a certificate error what would fix it. It sits on
// every host's round tripper, so each request to the host gets the hint,
// whichever command or containerd call made it.
type tlsHintTransport struct {
	rt   http.RoundTripper
	host string
	// dir is the certs folder read for the host, file the hosts.toml that
	// configures it ("" for none).
	dir, file string
	hint      func(host, certsDir, hostsFile string) string
	plainHint func(host, certsDir, hostsFile string) string
}

func (t tlsHintTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, t.explain(err)
	}
	return resp, nil
}

// explain adds what to do (Options.UntrustedHint) to a certificate error,
// and tells a plain HTTP answer to the TLS handshake as a plainHTTPError.
func (t tlsHintTransport) explain(err error) error {
	var rec tls.RecordHeaderError
	if errors.As(err, &rec) && string(rec.RecordHeader[:]) == "HTTP/" {
		e := &plainHTTPError{host: t.host, err: err}
		if t.plainHint != nil {
			e.hint = t.plainHint(t.host, t.dir, t.file)
		}
		return e
	}
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostErr x509.HostnameError
	if t.hint != nil && (errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &hostErr)) {
		return fmt.Errorf("%w (%s)", err, t.hint(t.host, t.dir, t.file))
	}
	return err
}
