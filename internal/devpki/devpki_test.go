package devpki_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/openmimi/mimi/internal/devpki"
)

func TestLoadOrCreatePersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca, created, err := devpki.LoadOrCreate(dir, "")
	if err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, devpki.KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	pemBytes, err := os.ReadFile(ca.CertPath())
	if err != nil || !bytes.Equal(pemBytes, ca.CertPEM) {
		t.Fatalf("ca.pem: %v", err)
	}
	ca2, created, err := devpki.LoadOrCreate(dir, "")
	if err != nil || created {
		t.Fatalf("reload: created=%v err=%v", created, err)
	}
	if !ca2.Cert.Equal(ca.Cert) {
		t.Fatal("reloaded CA differs")
	}
	// ca.pem is re-derived when removed.
	if err := os.Remove(ca.CertPath()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := devpki.LoadOrCreate(dir, ""); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(ca.CertPath()); err != nil || !bytes.Equal(b, ca.CertPEM) {
		t.Fatalf("ca.pem not restored: %v", err)
	}
}

func TestLoadOrCreateConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	const n = 4
	cas := make([]*devpki.CA, n)
	var wg sync.WaitGroup
	var creators sync.Map
	for i := range n {
		wg.Go(func() {
			ca, created, err := devpki.LoadOrCreate(dir, "")
			if err != nil {
				t.Error(err)
				return
			}
			if created {
				creators.Store(i, true)
			}
			cas[i] = ca
		})
	}
	wg.Wait()
	count := 0
	creators.Range(func(any, any) bool { count++; return true })
	if count != 1 {
		t.Fatalf("%d creators, want 1", count)
	}
	for i := 1; i < n; i++ {
		if cas[i] == nil || !cas[i].Cert.Equal(cas[0].Cert) {
			t.Fatalf("CA %d differs", i)
		}
	}
}

func TestLoadOrCreateBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"garbage", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, devpki.KeyFile), tc.body, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, err := devpki.LoadOrCreate(dir, ""); !errors.Is(err, devpki.ErrBadCA) {
				t.Fatalf("err = %v, want ErrBadCA", err)
			}
		})
	}
	// Key and certificate of two different CAs.
	a, _, err := devpki.LoadOrCreate(filepath.Join(t.TempDir(), "a"), "")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := devpki.LoadOrCreate(filepath.Join(t.TempDir(), "b"), "")
	if err != nil {
		t.Fatal(err)
	}
	ka, _ := os.ReadFile(filepath.Join(a.Dir, devpki.KeyFile))
	mixed := append(ka[:bytes.Index(ka, []byte("-----BEGIN CERTIFICATE"))], b.CertPEM...)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, devpki.KeyFile), mixed, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := devpki.LoadOrCreate(dir, ""); !errors.Is(err, devpki.ErrBadCA) {
		t.Fatalf("mismatched pair: err = %v", err)
	}
}

func TestEnsureLeaf(t *testing.T) {
	tmp := t.TempDir()
	ca, _, err := devpki.LoadOrCreate(filepath.Join(tmp, "ca"), "")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(tmp, "tls", "a.pem"), filepath.Join(tmp, "tls", "a-key.pem")
	issued, err := ca.EnsureLeaf(certFile, keyFile, "a.example", "127.0.0.1")
	if err != nil || !issued {
		t.Fatalf("first: issued=%v err=%v", issued, err)
	}
	first, _ := os.ReadFile(certFile)
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode: %v %v", fi, err)
	}
	// Kept as is.
	if issued, err := ca.EnsureLeaf(certFile, keyFile, "a.example", "127.0.0.1"); err != nil || issued {
		t.Fatalf("second: issued=%v err=%v", issued, err)
	}
	if again, _ := os.ReadFile(certFile); !bytes.Equal(again, first) {
		t.Fatal("certificate rewritten")
	}
	// A new name re-issues.
	if issued, err := ca.EnsureLeaf(certFile, keyFile, "a.example", "b.example"); err != nil || !issued {
		t.Fatalf("new name: issued=%v err=%v", issued, err)
	}
	// Another CA's certificate is replaced.
	other, _, err := devpki.LoadOrCreate(filepath.Join(tmp, "other"), "")
	if err != nil {
		t.Fatal(err)
	}
	if issued, err := other.EnsureLeaf(certFile, keyFile, "a.example", "b.example"); err != nil || !issued {
		t.Fatalf("other CA: issued=%v err=%v", issued, err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: other.Pool(), DNSName: "b.example", KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Fatalf("verify %v: %v", u, err)
		}
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool()}); err == nil {
		t.Fatal("leaf verifies under the old CA")
	}
}

func TestIssueNames(t *testing.T) {
	ca, _, err := devpki.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.Issue(); err == nil {
		t.Fatal("Issue with no names succeeded")
	}
	certPEM, keyPEM, err := ca.Issue("node1.example", "::1", "spiffe://x/node1")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	l := pair.Leaf
	if len(l.DNSNames) != 1 || len(l.IPAddresses) != 1 || len(l.URIs) != 1 || l.Subject.CommonName != "node1.example" {
		t.Fatalf("SANs: %v %v %v %q", l.DNSNames, l.IPAddresses, l.URIs, l.Subject.CommonName)
	}
	if l.NotAfter.After(ca.Cert.NotAfter) {
		t.Fatal("leaf outlives the CA")
	}
}
