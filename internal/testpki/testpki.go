// Package testpki is a throw-away X.509 certificate authority for tests.
//
// A CA made with New issues leaf certificates for given names (DNS names,
// IP addresses and URIs), usable as TLS server certificates, TLS client
// certificates, or both, and builds matching crypto/tls configurations for
// mutual TLS (RFC 8446, Section 4.4.2; RFC 5280 for the certificate
// profile). Keys are ECDSA P-256, so issuing is cheap enough to do per test.
//
// It is meant for tests only: the CA key lives in memory and nothing is
// persisted. It is used by the raftnode tests (cluster mTLS) and by the
// federation tests (provider-to-provider mTLS).
package testpki

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
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Usage selects the extended key usages of an issued leaf (RFC 5280,
// Section 4.2.1.12).
type Usage int

const (
	// ServerAndClient issues a certificate valid for both TLS server and
	// client authentication (what a cluster node or federating provider
	// presents in both directions).
	ServerAndClient Usage = iota
	// ServerOnly issues a certificate valid only for TLS server
	// authentication.
	ServerOnly
	// ClientOnly issues a certificate valid only for TLS client
	// authentication.
	ClientOnly
)

// CA is an in-memory certificate authority (RFC 5280, Section 4.2.1.9:
// a self-signed cA certificate). It is safe for concurrent use.
type CA struct {
	// Cert is the self-signed CA certificate.
	Cert *x509.Certificate
	// CertPEM is Cert in PEM form.
	CertPEM []byte

	key    *ecdsa.PrivateKey
	mu     sync.Mutex
	serial int64
}

// New creates a CA whose subject common name is commonName, valid from one
// hour ago for 24 hours (RFC 5280, Section 4.1.2.5).
func New(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testpki: generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"testpki"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("testpki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testpki: parse CA certificate: %w", err)
	}
	return &CA{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     key,
		serial:  1,
	}, nil
}

// MustNew is New for tests: it calls t.Fatal on error.
func MustNew(t testing.TB, commonName string) *CA {
	t.Helper()
	ca, err := New(commonName)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// Pool returns a fresh certificate pool holding only this CA, for use as
// tls.Config.RootCAs or ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue issues a leaf certificate valid for both server and client TLS
// authentication. Each name becomes a subject alternative name (RFC 5280,
// Section 4.2.1.6): an IP address if it parses as one, a URI if it contains
// "://", otherwise a DNS name. The first name is also the subject common
// name. At least one name is required.
func (ca *CA) Issue(names ...string) (tls.Certificate, error) {
	return ca.IssueFor(ServerAndClient, names...)
}

// IssueFor is Issue with an explicit extended key usage.
func (ca *CA) IssueFor(usage Usage, names ...string) (tls.Certificate, error) {
	if len(names) == 0 {
		return tls.Certificate{}, errors.New("testpki: at least one name is required")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testpki: generate leaf key: %w", err)
	}
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()

	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"testpki"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	switch usage {
	case ServerOnly:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case ClientOnly:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if strings.Contains(n, "://") {
			u, err := url.Parse(n)
			if err != nil {
				return tls.Certificate{}, fmt.Errorf("testpki: parse URI name %q: %w", n, err)
			}
			tmpl.URIs = append(tmpl.URIs, u)
			continue
		}
		tmpl.DNSNames = append(tmpl.DNSNames, n)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testpki: create leaf certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testpki: parse leaf certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// MustIssue is Issue for tests: it calls t.Fatal on error.
func (ca *CA) MustIssue(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	c, err := ca.Issue(names...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ServerConfig returns a TLS 1.3 server configuration presenting cert and
// requiring a client certificate issued by this CA (RFC 8446, Section
// 4.3.2, CertificateRequest).
func (ca *CA) ServerConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	}
}

// ClientConfig returns a TLS 1.3 client configuration presenting cert,
// trusting only this CA and verifying the server's certificate for
// serverName (a DNS name or IP address in its SANs).
func (ca *CA) ClientConfig(cert tls.Certificate, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.Pool(),
		ServerName:   serverName,
	}
}

// KeyPEM returns the PKCS #8 PEM encoding of a certificate's private key
// (RFC 5208), for tests that need key files.
func KeyPEM(cert tls.Certificate) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("testpki: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// CertPEM returns the PEM encoding of a certificate's chain, leaf first.
func CertPEM(cert tls.Certificate) []byte {
	var out []byte
	for _, der := range cert.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}
