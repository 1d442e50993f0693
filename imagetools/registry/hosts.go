package registry

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
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

// tlsHintTransport adds to a certificate error what would fix it. It sits on
// every host's round tripper, so each request to the host gets the hint,
// whichever command or containerd call made it.
type tlsHintTransport struct {
	rt   http.RoundTripper
	host string
	hint func(host string) string
}

func (t tlsHintTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, explainTLS(t.host, err, t.hint)
	}
	return resp, nil
}

// explainTLS adds what to do (Options.UntrustedHint) to a certificate
// error from host.
func explainTLS(host string, err error, hint func(host string) string) error {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var hostErr x509.HostnameError
	if hint != nil && (errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &hostErr)) {
		return fmt.Errorf("%w (%s)", err, hint(host))
	}
	return err
}
