package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// keyPair is a certificate with its private key.
type keyPair struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

// newCA generates a self-signed certificate authority valid for a day.
func newCA() (*keyPair, error) {
	tmpl, err := certTemplate("imgx test registry CA")
	if err != nil {
		return nil, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	return newKeyPair(tmpl, nil)
}

// newSigningCert generates a self-signed certificate whose key signs tokens.
func newSigningCert() (*keyPair, error) {
	tmpl, err := certTemplate("imgx test token signer")
	if err != nil {
		return nil, err
	}
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	return newKeyPair(tmpl, nil)
}

// serverTLSConfig issues a server certificate for 127.0.0.1, ::1,
// localhost and the IP addresses in more (the address Host listens on when
// Options.Addr names another).
func (ca *keyPair) serverTLSConfig(more ...net.IP) (*tls.Config, error) {
	tmpl, err := certTemplate("127.0.0.1")
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tmpl.IPAddresses = append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, more...)
	tmpl.DNSNames = []string{"localhost"}
	leaf, err := newKeyPair(tmpl, ca)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{leaf.cert.Raw, ca.cert.Raw},
			PrivateKey:  leaf.key,
			Leaf:        leaf.cert,
		}},
	}, nil
}

func certTemplate(commonName string) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, fmt.Errorf("generate certificate serial: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"imgx tests"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}, nil
}

// newKeyPair generates a P-256 key and a certificate from tmpl, signed by parent
// (self-signed when parent is nil).
func newKeyPair(tmpl *x509.Certificate, parent *keyPair) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key for %q: %w", tmpl.Subject.CommonName, err)
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signerKey)
	if err != nil {
		return nil, fmt.Errorf("create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return &keyPair{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     key,
	}, nil
}

// CertPool returns a pool holding the registry's CA (TLS only; nil otherwise).
func (r *Registry) CertPool() *x509.CertPool {
	if len(r.CACertPEM) == 0 {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(r.CACertPEM)
	return pool
}

// Client returns an HTTP client that trusts the registry's CA. It sends no credentials.
func (r *Registry) Client() *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if pool := r.CertPool(); pool != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: transport, Timeout: time.Minute}
}

// WriteCertsDir writes dir/<Host>/ca.crt, the Docker certs.d layout that trusts this
// registry's CA. It fails for a registry without TLS.
func (r *Registry) WriteCertsDir(dir string) error {
	if len(r.CACertPEM) == 0 {
		return errors.New("write certs.d for " + r.Host + ": registry has no TLS")
	}
	hostDir := filepath.Join(dir, r.Host)
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		return fmt.Errorf("write certs.d for %s: %w", r.Host, err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "ca.crt"), r.CACertPEM, 0o644); err != nil {
		return fmt.Errorf("write certs.d for %s: %w", r.Host, err)
	}
	return nil
}
