package testpki_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"testing"

	"github.com/openmimi/mimi/internal/testpki"
)

func TestIssueSANsAndUsage(t *testing.T) {
	ca := testpki.MustNew(t, "test CA")
	cases := []struct {
		name  string
		usage testpki.Usage
		names []string
		eku   []x509.ExtKeyUsage
	}{
		{"both", testpki.ServerAndClient, []string{"node1.example", "127.0.0.1", "spiffe://cluster/node1"},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		{"server", testpki.ServerOnly, []string{"a.example"}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		{"client", testpki.ClientOnly, []string{"b.example"}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ca.IssueFor(tc.usage, tc.names...)
			if err != nil {
				t.Fatal(err)
			}
			for _, eku := range tc.eku {
				if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
					t.Fatalf("verify for %v: %v", eku, err)
				}
			}
			if c.Leaf.Subject.CommonName != tc.names[0] {
				t.Fatalf("CN = %q", c.Leaf.Subject.CommonName)
			}
		})
	}
	c := ca.MustIssue(t, "node1.example", "127.0.0.1", "spiffe://cluster/node1")
	if len(c.Leaf.DNSNames) != 1 || len(c.Leaf.IPAddresses) != 1 || len(c.Leaf.URIs) != 1 {
		t.Fatalf("SANs: dns=%v ip=%v uri=%v", c.Leaf.DNSNames, c.Leaf.IPAddresses, c.Leaf.URIs)
	}
	if _, err := ca.Issue(); err == nil {
		t.Fatal("Issue with no names succeeded")
	}
	if _, err := testpki.KeyPEM(c); err != nil {
		t.Fatal(err)
	}
	if len(testpki.CertPEM(c)) == 0 {
		t.Fatal("empty cert PEM")
	}
}

func TestMutualTLS(t *testing.T) {
	ca := testpki.MustNew(t, "good CA")
	other := testpki.MustNew(t, "other CA")
	srvCert := ca.MustIssue(t, "server.example")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig(srvCert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Write([]byte("hello"))
			}()
		}
	}()
	dial := func(cfg *tls.Config) error {
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 5)
		_, err = io.ReadFull(c, buf)
		return err
	}
	if err := dial(ca.ClientConfig(ca.MustIssue(t, "client.example"), "server.example")); err != nil {
		t.Fatalf("good client: %v", err)
	}
	if err := dial(ca.ClientConfig(other.MustIssue(t, "client.example"), "server.example")); err == nil {
		t.Fatal("client with foreign CA accepted")
	}
	if err := dial(ca.ClientConfig(ca.MustIssue(t, "client.example"), "wrong.example")); err == nil {
		t.Fatal("wrong server name accepted")
	}
}
