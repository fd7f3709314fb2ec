package transport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmimi/mimi/httpapi/transport"
)

// rawCA is a minimal CA for certificates testpki cannot make (a subject
// common name that is not among the subjectAltNames, or no SANs at all).
type rawCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newRawCA(t *testing.T) *rawCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "raw test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &rawCA{cert: cert, key: key}
}

// issue makes a client+server leaf with the given subject CN and DNS SANs.
func (ca *rawCA) issue(t *testing.T, cn string, dnsNames ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// serve runs h on a loopback TLS listener with srv's configuration and
// returns its address.
func serve(t *testing.T, srv *transport.Server, h http.Handler) string {
	t.Helper()
	return serveHTTP(t, srv.HTTPServer(h))
}

// serveHTTP runs hs (which has a TLSConfig) on a loopback listener.
func serveHTTP(t *testing.T, hs *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs.ErrorLog = discardLogger()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-done
	})
	return ln.Addr().String()
}

// rawOpts configures rawClient, an HTTP client that does not add MIMI
// headers, to send requests the Client would never send.
type rawOpts struct {
	roots      *x509.CertPool
	certs      []tls.Certificate
	forceCert  *tls.Certificate // sent whatever the server asks for
	serverName string
	addr       string
	http1      bool
}

func rawClient(t *testing.T, o rawOpts) *http.Client {
	t.Helper()
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      o.roots,
		Certificates: o.certs,
		ServerName:   o.serverName,
	}
	if o.forceCert != nil {
		c := o.forceCert
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c, nil }
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(!o.http1)
	tr := &http.Transport{
		TLSClientConfig: cfg,
		Protocols:       p,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, o.addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// probe wraps the middleware under test: it counts bytes read from the
// request body by anything below it, and calls of the next handler.
type probe struct {
	bodyRead atomic.Int64
	calls    atomic.Int64

	mu       sync.Mutex
	refusals []refusal
	peers    []string // OnPeer calls
	last     seen
}

type refusal struct {
	status int
	err    error
}

// seen is what the next handler observed.
type seen struct {
	peer       transport.Peer
	target     string
	body       []byte
	protoMajor int
	path       string
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (p *probe) reset() {
	p.bodyRead.Store(0)
	p.calls.Store(0)
	p.mu.Lock()
	p.refusals, p.peers = nil, nil
	p.last = seen{}
	p.mu.Unlock()
}

func (p *probe) onPeer(domain string) {
	p.mu.Lock()
	p.peers = append(p.peers, domain)
	p.mu.Unlock()
}

// lastPeers returns the OnPeer calls since the last reset.
func (p *probe) lastPeers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.peers...)
}

func (p *probe) onRefuse(_ *http.Request, status int, err error) {
	p.mu.Lock()
	p.refusals = append(p.refusals, refusal{status, err})
	p.mu.Unlock()
}

// outer replaces the request body with a counting one before h runs.
func (p *probe) outer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = countingBody{r.Body, &p.bodyRead}
		h.ServeHTTP(w, r)
	})
}

// next is the protected handler: it records what it saw, reads the body
// with transport.ReadBody and answers 201.
func (p *probe) next() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.calls.Add(1)
		peer, _ := transport.PeerFromContext(r.Context())
		target, _ := transport.TargetFromContext(r.Context())
		body, err := transport.ReadBody(w, r)
		p.mu.Lock()
		p.last = seen{peer: peer, target: target, body: body, protoMajor: r.ProtoMajor, path: r.URL.Path}
		p.mu.Unlock()
		if err != nil {
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, peer.Domain+"->"+target)
	})
}

func (p *probe) lastSeen() seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func (p *probe) lastRefusals() []refusal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]refusal(nil), p.refusals...)
}

func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
