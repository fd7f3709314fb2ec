// Package devpki is the development certificate authority of mimid's
// dev mode: a local CA persisted as PEM files in a directory, and leaf
// certificates it issues for provider domains, persisted next to the data
// they protect, so that `mimid serve -dev` needs no certificates at all and
// several local providers sharing one CA directory trust each other
// (draft-ralston-mimi-protocol-02, Section 4.1: providers authenticate each
// other with mutually authenticated TLS).
//
// The CA key never leaves its directory; the files are created once and
// reused on every start. It is for development only: the CA key sits
// unencrypted on disk and anyone who can read it can impersonate every
// provider that trusts it.
//
// Files of a CA directory:
//
//	ca.pem       the CA certificate (give it to peers as a trust anchor)
//	ca-key.pem   the CA private key followed by the CA certificate (0600)
//
// Creating a CA directory is safe against concurrent starts: ca-key.pem
// is created exclusively (hard link of a complete temporary file), so of
// two processes creating the same CA at once, one wins and the other
// loads the winner's CA.
//
// Keys are ECDSA P-256; certificates follow the RFC 5280 profile: the CA
// is a self-signed cA certificate with keyCertSign (Section 4.2.1.9,
// 4.2.1.3), leaves carry digitalSignature and both the serverAuth and
// clientAuth extended key usages (Section 4.2.1.12) with their names as
// subject alternative names (Section 4.2.1.6).
package devpki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside a CA directory.
const (
	// CertFile holds the CA certificate in PEM (RFC 7468).
	CertFile = "ca.pem"
	// KeyFile holds the CA private key (PKCS #8, RFC 5208) followed by
	// the CA certificate, in PEM.
	KeyFile = "ca-key.pem"
)

// Validity periods (RFC 5280, Section 4.1.2.5).
const (
	// CAValidity is the lifetime of a new dev CA.
	CAValidity = 10 * 365 * 24 * time.Hour
	// LeafValidity is the lifetime of a new leaf certificate.
	LeafValidity = 397 * 24 * time.Hour
	// RenewBefore: EnsureLeaf re-issues a leaf that expires sooner.
	RenewBefore = 30 * 24 * time.Hour
)

// ErrBadCA is returned (wrapped) when a CA directory holds files that do
// not form a usable CA (unparsable PEM, key and certificate that do not
// match, a certificate that is not a CA).
var ErrBadCA = errors.New("devpki: unusable CA files")

// CA is a dev certificate authority loaded from (or created in) a
// directory (RFC 5280, Section 4.2.1.9: a self-signed cA certificate).
type CA struct {
	// Dir is the CA directory.
	Dir string
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// CertPEM is Cert in PEM form.
	CertPEM []byte

	key *ecdsa.PrivateKey
}

// LoadOrCreate loads the CA stored in dir, or creates one there (and dir
// itself, mode 0700) if dir holds no CA key. created reports whether
// this call created it. commonName names a new CA's subject.
func LoadOrCreate(dir, commonName string) (ca *CA, created bool, err error) {
	if dir == "" {
		return nil, false, errors.New("devpki: empty CA directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("devpki: create CA directory: %w", err)
	}
	keyPath := filepath.Join(dir, KeyFile)
	if _, err := os.Stat(keyPath); errors.Is(err, fs.ErrNotExist) {
		created, err = create(keyPath, commonName)
		if err != nil {
			return nil, false, err
		}
	} else if err != nil {
		return nil, false, fmt.Errorf("devpki: %w", err)
	}
	ca, err = load(dir)
	if err != nil {
		return nil, false, err
	}
	// ca.pem is derived from ca-key.pem; rewrite it if missing or stale
	// (concurrent writers write identical bytes).
	certPath := filepath.Join(dir, CertFile)
	if old, err := os.ReadFile(certPath); err != nil || !bytes.Equal(old, ca.CertPEM) {
		if err := writeFileAtomic(certPath, ca.CertPEM, 0o644); err != nil {
			return nil, false, err
		}
	}
	return ca, created, nil
}

// create generates a CA and links its key file into place exclusively.
// It returns false (and no error) if another process created the file
// first.
func create(keyPath, commonName string) (bool, error) {
	if commonName == "" {
		commonName = "mimid dev CA"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, fmt.Errorf("devpki: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return false, err
	}
	skid := keyID(&key.PublicKey)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"mimid development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return false, fmt.Errorf("devpki: create CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return false, fmt.Errorf("devpki: encode CA key: %w", err)
	}
	var buf bytes.Buffer
	_ = pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	tmp, err := writeTemp(filepath.Dir(keyPath), buf.Bytes(), 0o600)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, keyPath); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil // another process won the race
		}
		return false, fmt.Errorf("devpki: install CA key: %w", err)
	}
	return true, syncDir(filepath.Dir(keyPath))
}

// load reads dir/ca-key.pem.
func load(dir string) (*CA, error) {
	b, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("devpki: read CA key: %w", err)
	}
	var key *ecdsa.PrivateKey
	var cert *x509.Certificate
	var certDER []byte
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrBadCA, KeyFile, err)
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("%w: %s: not an ECDSA key", ErrBadCA, KeyFile)
			}
			key = ek
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrBadCA, KeyFile, err)
			}
			cert, certDER = c, blk.Bytes
		}
	}
	if key == nil || cert == nil {
		return nil, fmt.Errorf("%w: %s needs a PRIVATE KEY and a CERTIFICATE block", ErrBadCA, KeyFile)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: the certificate is not a CA certificate", ErrBadCA)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: key and certificate do not match", ErrBadCA)
	}
	return &CA{
		Dir:     dir,
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}),
		key:     key,
	}, nil
}

// CertPath returns the path of the CA certificate file (the trust anchor
// peers configure).
func (ca *CA) CertPath() string { return filepath.Join(ca.Dir, CertFile) }

// Pool returns a fresh certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue issues a new leaf certificate for names, valid for both TLS
// server and client authentication (RFC 5280, Section 4.2.1.12), and
// returns its certificate and key in PEM (the key as PKCS #8). Each name
// becomes a subject alternative name (Section 4.2.1.6): an IP address if
// it parses as one, a URI if it contains "://", otherwise a DNS name. The
// first name is also the subject common name.
func (ca *CA) Issue(names ...string) (certPEM, keyPEM []byte, err error) {
	if len(names) == 0 {
		return nil, nil, errors.New("devpki: Issue needs at least one name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devpki: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	notAfter := now.Add(LeafValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: names[0]},
		NotBefore:      now.Add(-time.Hour),
		NotAfter:       notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		SubjectKeyId:   keyID(&key.PublicKey),
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	for _, n := range names {
		switch {
		case net.ParseIP(n) != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(n))
		case strings.Contains(n, "://"):
			u, err := url.Parse(n)
			if err != nil {
				return nil, nil, fmt.Errorf("devpki: name %q: %w", n, err)
			}
			tmpl.URIs = append(tmpl.URIs, u)
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("devpki: issue certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("devpki: encode key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// EnsureLeaf makes certFile and keyFile hold a certificate and key issued
// by this CA for names (see Issue) that is valid for at least RenewBefore
// more: existing files are kept if they are such a pair, and replaced by
// a newly issued one otherwise (missing, unparsable, issued by another CA,
// not covering every name, or close to expiry). issued reports whether a
// new certificate was written. The key file gets mode 0600.
func (ca *CA) EnsureLeaf(certFile, keyFile string, names ...string) (issued bool, err error) {
	if len(names) == 0 {
		return false, errors.New("devpki: EnsureLeaf needs at least one name")
	}
	if ca.leafOK(certFile, keyFile, names) {
		return false, nil
	}
	certPEM, keyPEM, err := ca.Issue(names...)
	if err != nil {
		return false, err
	}
	for _, d := range []string{filepath.Dir(certFile), filepath.Dir(keyFile)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return false, fmt.Errorf("devpki: %w", err)
		}
	}
	// The key first: a crash in between leaves a pair that fails leafOK
	// and is re-issued.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return false, err
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// leafOK reports whether the files hold a usable leaf for names.
func (ca *CA) leafOK(certFile, keyFile string, names []string) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || pair.Leaf == nil {
		return false
	}
	leaf := pair.Leaf
	if time.Until(leaf.NotAfter) < RenewBefore || time.Now().Before(leaf.NotBefore) {
		return false
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return false
		}
	}
	for _, n := range names {
		if strings.Contains(n, "://") {
			found := false
			for _, u := range leaf.URIs {
				found = found || u.String() == n
			}
			if !found {
				return false
			}
			continue
		}
		if err := leaf.VerifyHostname(n); err != nil {
			return false
		}
	}
	return true
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("devpki: serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// keyID is a subject key identifier (RFC 5280, Section 4.2.1.2; RFC 7093,
// Section 2 method 1: the leftmost 160 bits of the SHA-256 of the key).
func keyID(pub *ecdsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	h := sha256.Sum256(der)
	return h[:20]
}

// writeTemp writes b to a new temporary file in dir and returns its path.
func writeTemp(dir string, b []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, ".devpki-*")
	if err != nil {
		return "", fmt.Errorf("devpki: %w", err)
	}
	name := f.Name()
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("devpki: write %s: %w", name, err)
	}
	return name, nil
}

// writeFileAtomic replaces path with b (temporary file, fsync, rename).
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := writeTemp(filepath.Dir(path), b, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("devpki: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("devpki: %w", err)
	}
	defer d.Close()
	_ = d.Sync() // not supported everywhere; best effort
	return nil
}
