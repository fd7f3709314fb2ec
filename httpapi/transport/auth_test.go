package transport_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/internal/testpki"
	"github.com/openmimi/mimi/mimi"
)

const testMaxBody = 1024

// fixture is a provider serving b.example and c.example behind
// Authenticate, trusting the testpki CA and a raw CA for client
// certificates.
type fixture struct {
	ca    *testpki.CA
	raw   *rawCA
	srv   *transport.Server
	probe *probe
	addr  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{ca: testpki.MustNew(t, "mimi test CA"), raw: newRawCA(t), probe: &probe{}}
	anchors := f.ca.Pool()
	anchors.AddCert(f.raw.cert)
	srv, err := transport.NewServer(transport.ServerConfig{
		Domains: []transport.Domain{
			{Name: "b.example", Certificate: f.ca.MustIssue(t, "b.example")},
			{Name: "c.example", Certificate: f.ca.MustIssue(t, "c.example"), BaseURL: "https://mimi.c.example/api/"},
		},
		ClientCAs:    anchors,
		MaxBodyBytes: testMaxBody,
		OnRefuse:     f.probe.onRefuse,
		OnPeer:       f.probe.onPeer,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	mux := http.NewServeMux()
	mux.Handle(mimi.WellKnownDirectory, srv.DirectoryHandler())
	mux.Handle("/", f.probe.outer(srv.Authenticate(f.probe.next())))
	f.addr = serve(t, srv, mux)
	return f
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	ca := f.ca
	otherCA := testpki.MustNew(t, "untrusted CA")
	certs := map[string]tls.Certificate{
		"a":            ca.MustIssue(t, "a.example"),
		"b":            ca.MustIssue(t, "b.example"),
		"upper":        ca.MustIssue(t, "A.EXAMPLE"),
		"multi":        ca.MustIssue(t, "x.example", "a.example"),
		"wild":         ca.MustIssue(t, "*.w.example"),
		"tldwild":      ca.MustIssue(t, "*.example"),
		"partialwild":  ca.MustIssue(t, "x*.w.example"),
		"midwild":      ca.MustIssue(t, "a.*.example"),
		"cnonly":       f.raw.issue(t, "a.example"),
		"cnmismatch":   f.raw.issue(t, "a.example", "other.example"),
		"untrusted":    otherCA.MustIssue(t, "a.example"),
		"serverOnlyA":  mustIssueFor(t, ca, testpki.ServerOnly, "a.example"),
		"clientOnlyA":  mustIssueFor(t, ca, testpki.ClientOnly, "a.example"),
		"ipOnly":       ca.MustIssue(t, "127.0.0.1"),
		"uriOnly":      ca.MustIssue(t, "https://a.example/"),
		"trailingdot":  ca.MustIssue(t, "a.example."),
		"wildAndExact": ca.MustIssue(t, "*.a.example", "a.example"),
	}
	big := strings.Repeat("x", testMaxBody+1)

	type tc struct {
		name       string
		cert       string   // key in certs; "" for none
		force      bool     // send the certificate even if the server's CA list excludes it
		http1      bool     // HTTP/1.1 instead of HTTP/2
		host       string   // Host header; default "b.example"
		from       []string // From headers; nil means "mimi@a.example"
		body       string   // default "hello"
		wantStatus int      // 0: the handshake (hence the request) must fail
		wantErr    error    // sentinel passed to OnRefuse
		wantPeer   string   // on success
	}
	cases := []tc{
		{name: "ok h2", cert: "a", wantStatus: 201, wantPeer: "a.example"},
		{name: "ok http1", cert: "a", http1: true, wantStatus: 201, wantPeer: "a.example"},
		{name: "host with port", cert: "a", host: "b.example:8443", wantStatus: 201, wantPeer: "a.example"},
		{name: "host with port http1", cert: "a", http1: true, host: "b.example:8443", wantStatus: 201, wantPeer: "a.example"},
		{name: "host upper case", cert: "a", host: "B.Example", wantStatus: 201, wantPeer: "a.example"},
		{name: "from domain upper case", cert: "a", from: []string{"mimi@A.Example"}, wantStatus: 201, wantPeer: "a.example"},
		{name: "SAN upper case", cert: "upper", wantStatus: 201, wantPeer: "a.example"},
		{name: "second SAN", cert: "multi", wantStatus: 201, wantPeer: "a.example"},
		{name: "client-only EKU", cert: "clientOnlyA", wantStatus: 201, wantPeer: "a.example"},
		{name: "empty body", cert: "a", body: "-", wantStatus: 201, wantPeer: "a.example"},
		{name: "body at limit", cert: "a", body: big[:testMaxBody], wantStatus: 201, wantPeer: "a.example"},

		{name: "wildcard one label", cert: "wild", from: []string{"mimi@x.w.example"}, wantStatus: 201, wantPeer: "x.w.example"},
		{name: "wildcard not the base", cert: "wild", from: []string{"mimi@w.example"}, wantStatus: 403, wantErr: transport.ErrDomainMismatch},
		{name: "wildcard not two labels", cert: "wild", from: []string{"mimi@y.x.w.example"}, wantStatus: 403, wantErr: transport.ErrDomainMismatch},
		{name: "wildcard over TLD", cert: "tldwild", from: []string{"mimi@w.example"}, wantStatus: 403, wantErr: transport.ErrDomainMismatch},
		{name: "partial-label wildcard", cert: "partialwild", from: []string{"mimi@xy.w.example"}, wantStatus: 403, wantErr: transport.ErrDomainMismatch},
		{name: "embedded wildcard", cert: "midwild", from: []string{"mimi@a.b.example"}, wantStatus: 403, wantErr: transport.ErrDomainMismatch},
		{name: "wildcard plus exact", cert: "wildAndExact", wantStatus: 201, wantPeer: "a.example"},

		{name: "no client certificate", cert: "", wantStatus: 401, wantErr: transport.ErrNoClientCertificate},
		{name: "no client certificate http1", cert: "", http1: true, wantStatus: 401, wantErr: transport.ErrNoClientCertificate},
		// Go's TLS client only sends a certificate issued by one of the CAs
		// the server lists in its CertificateRequest: this one is withheld.
		{name: "untrusted CA withheld", cert: "untrusted", wantStatus: 401, wantErr: transport.ErrNoClientCertificate},
		// Sent anyway, it fails verification and the handshake fails.
		{name: "untrusted CA sent", cert: "untrusted", force: true, wantStatus: 0},
		{name: "server-only EKU", cert: "serverOnlyA", wantStatus: 0},

		{name: "certificate of another domain", cert: "b", wantStatus: 403, wantErr: transport.ErrDomainMismatch},
		{name: "CN only, no SAN", cert: "cnonly", wantStatus: 403, wantErr: transport.ErrDomainMismatch},
		{name: "CN matches, SAN does not", cert: "cnmismatch", wantStatus: 403, wantErr: transport.ErrDomainMismatch},
		{name: "IP SAN only", cert: "ipOnly", wantStatus: 403, wantErr: transport.ErrDomainMismatch},
		{name: "URI SAN only", cert: "uriOnly", wantStatus: 403, wantErr: transport.ErrDomainMismatch},
		{name: "trailing-dot SAN", cert: "trailingdot", wantStatus: 403, wantErr: transport.ErrDomainMismatch},

		{name: "Host not served", cert: "a", host: "z.example", wantStatus: 421, wantErr: transport.ErrMisdirected},
		{name: "Host not served http1", cert: "a", http1: true, host: "z.example", wantStatus: 421, wantErr: transport.ErrMisdirected},
		{name: "Host served but not the SNI", cert: "a", host: "c.example", wantStatus: 421, wantErr: transport.ErrMisdirected},
		{name: "Host is an IP", cert: "a", host: "127.0.0.1:443", wantStatus: 421, wantErr: transport.ErrMisdirected},
		{name: "Host is an IPv6 literal", cert: "a", host: "[::1]:443", wantStatus: 421, wantErr: transport.ErrMisdirected},
		{name: "Host with trailing dot", cert: "a", host: "b.example.", wantStatus: 421, wantErr: transport.ErrMisdirected},
		{name: "Host parent domain", cert: "a", host: "example", wantStatus: 421, wantErr: transport.ErrMisdirected},
	}
	for _, from := range []string{
		"a.example",
		"alice@a.example",
		"mimi@",
		"@a.example",
		"mimi",
		"mimi@a.example, mimi@b.example",
		"mimi@a.example,mimi@b.example",
		"Mimi <mimi@a.example>",
		"<mimi@a.example>",
		`"A" <mimi@a.example>`,
		`"mimi"@a.example`,
		"mimi@a.example (provider A)",
		"MIMI@a.example",
		"mimi@@a.example",
		"mimi@a.example@b.example",
		"mimi@[127.0.0.1]",
		"mimi@127.0.0.1",
		"mimi@a.example.",
		"mimi@a.example:443",
		"mimi@a_example.com",
		"mimi@localhost",
		"mimi @a.example",
		"mimi+x@a.example",
	} {
		cases = append(cases, tc{name: "From " + from, cert: "a", from: []string{from}, wantStatus: 400, wantErr: transport.ErrBadFrom})
	}
	cases = append(cases,
		tc{name: "From missing", cert: "a", from: []string{}, wantStatus: 400, wantErr: transport.ErrBadFrom},
		tc{name: "From twice", cert: "a", from: []string{"mimi@a.example", "mimi@a.example"}, wantStatus: 400, wantErr: transport.ErrBadFrom},
		tc{name: "From twice http1", cert: "a", http1: true, from: []string{"mimi@a.example", "mimi@a.example"}, wantStatus: 400, wantErr: transport.ErrBadFrom},
		tc{name: "body over limit", cert: "a", body: big, wantStatus: 413, wantErr: transport.ErrBodyTooLarge},
		tc{name: "body over limit http1", cert: "a", http1: true, body: big, wantStatus: 413, wantErr: transport.ErrBodyTooLarge},
		// Authentication comes first: an oversized body from an
		// unauthenticated peer is refused for who it is.
		tc{name: "body over limit, wrong cert", cert: "b", body: big, wantStatus: 403, wantErr: transport.ErrDomainMismatch},
	)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.probe.reset()
			o := rawOpts{roots: ca.Pool(), serverName: "b.example", addr: f.addr, http1: c.http1}
			if c.cert != "" {
				cert, ok := certs[c.cert]
				if !ok {
					t.Fatalf("no cert %q", c.cert)
				}
				if c.force {
					o.forceCert = &cert
				} else {
					o.certs = []tls.Certificate{cert}
				}
			}
			hc := rawClient(t, o)
			body := c.body
			switch body {
			case "":
				body = "hello"
			case "-":
				body = ""
			}
			req, err := http.NewRequest(http.MethodPost, "https://b.example/v1/notify/b.example/r/room", bytes.NewReader([]byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = c.host
			if c.host == "" {
				req.Host = "b.example"
			}
			from := c.from
			if from == nil {
				from = []string{"mimi@a.example"}
			}
			req.Header["From"] = from
			resp, err := hc.Do(req)
			if c.wantStatus == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request succeeded with status %d, want handshake failure", resp.StatusCode)
				}
				t.Logf("handshake failed as expected: %v", err)
			} else {
				if err != nil {
					t.Fatalf("request: %v", err)
				}
				text, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.wantStatus {
					t.Fatalf("status %d (%q), want %d", resp.StatusCode, text, c.wantStatus)
				}
				if c.wantStatus == 201 {
					s := f.probe.lastSeen()
					if s.peer.Domain != c.wantPeer || s.target != "b.example" || string(s.body) != body {
						t.Fatalf("handler saw peer %q target %q body %d bytes", s.peer.Domain, s.target, len(s.body))
					}
					if s.peer.Certificate == nil || !s.peer.Certificate.Equal(certs[c.cert].Leaf) {
						t.Fatalf("handler saw the wrong peer certificate")
					}
					wantProto := 2
					if c.http1 {
						wantProto = 1
					}
					if s.protoMajor != wantProto {
						t.Fatalf("HTTP/%d, want HTTP/%d", s.protoMajor, wantProto)
					}
					if string(text) != c.wantPeer+"->b.example" {
						t.Fatalf("response %q", text)
					}
					if f.probe.calls.Load() != 1 || f.probe.bodyRead.Load() != int64(len(body)) {
						t.Fatalf("calls %d, body read %d", f.probe.calls.Load(), f.probe.bodyRead.Load())
					}
					if peers := f.probe.lastPeers(); len(peers) != 1 || peers[0] != c.wantPeer {
						t.Fatalf("OnPeer saw %v, want [%s]", peers, c.wantPeer)
					}
					return
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Fatalf("refusal Content-Type %q", ct)
				}
				if !strings.HasPrefix(string(text), "mimi: ") || len(text) > 100 {
					t.Fatalf("refusal body %q", text)
				}
				if c.wantStatus == 401 && resp.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("401 without WWW-Authenticate")
				}
				refs := f.probe.lastRefusals()
				if len(refs) != 1 || refs[0].status != c.wantStatus || !errors.Is(refs[0].err, c.wantErr) {
					t.Fatalf("OnRefuse saw %+v, want one %d wrapping %v", refs, c.wantStatus, c.wantErr)
				}
				t.Logf("%d %s (%v)", resp.StatusCode, strings.TrimSpace(string(text)), refs[0].err)
			}
			if n := f.probe.calls.Load(); n != 0 {
				t.Fatalf("next handler called %d times on refusal", n)
			}
			if peers := f.probe.lastPeers(); len(peers) != 0 {
				t.Fatalf("OnPeer called for a refused request: %v", peers)
			}
			if n := f.probe.bodyRead.Load(); n != 0 {
				t.Fatalf("%d body bytes read on refusal", n)
			}
		})
	}
}

func mustIssueFor(t *testing.T, ca *testpki.CA, u testpki.Usage, names ...string) tls.Certificate {
	t.Helper()
	c, err := ca.IssueFor(u, names...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A body without Content-Length reaches the handler, which hits the
// MaxBytesReader limit and answers 413 through ReadBody.
func TestAuthenticateStreamedBodyOverLimit(t *testing.T) {
	f := newFixture(t)
	for _, http1 := range []bool{false, true} {
		f.probe.reset()
		hc := rawClient(t, rawOpts{roots: f.ca.Pool(), certs: []tls.Certificate{f.ca.MustIssue(t, "a.example")},
			serverName: "b.example", addr: f.addr, http1: http1})
		// An io.Reader of unknown length: no Content-Length is sent.
		body := io.MultiReader(strings.NewReader(strings.Repeat("y", 3*testMaxBody)))
		req, err := http.NewRequest(http.MethodPost, "https://b.example/v1/notify/x", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("From", "mimi@a.example")
		resp, err := hc.Do(req)
		if err != nil {
			// HTTP/1.1 may see the connection closed while still writing.
			t.Logf("http1=%v: %v", http1, err)
		} else {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("http1=%v: status %d, want 413", http1, resp.StatusCode)
			}
		}
		if f.probe.calls.Load() != 1 {
			t.Fatalf("handler calls %d", f.probe.calls.Load())
		}
		if n := f.probe.bodyRead.Load(); n > testMaxBody+1 {
			t.Fatalf("read %d bytes past a %d-byte limit", n, testMaxBody)
		}
	}
}

// The TLS server name must be a served domain: no certificate is presented
// otherwise and the handshake fails.
func TestTLSServerName(t *testing.T) {
	f := newFixture(t)
	cert := f.ca.MustIssue(t, "a.example")
	for _, tc := range []struct {
		sni  string
		ok   bool
		host string
	}{
		{"b.example", true, "b.example"},
		{"B.EXAMPLE", true, "b.example"},
		{"c.example", true, "c.example"},
		{"z.example", false, ""},
		{"", false, ""},
	} {
		conn, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		tc2 := tls.Client(conn, &tls.Config{
			MinVersion:   tls.VersionTLS13,
			ServerName:   tc.sni,
			Certificates: []tls.Certificate{cert},
			// Verified below by hand, because ServerName may be empty.
			InsecureSkipVerify: true,
		})
		_ = tc2.SetDeadline(time.Now().Add(5 * time.Second))
		err = tc2.Handshake()
		if tc.ok {
			if err != nil {
				t.Fatalf("SNI %q: %v", tc.sni, err)
			}
			st := tc2.ConnectionState()
			if got := st.PeerCertificates[0].DNSNames[0]; got != tc.host {
				t.Fatalf("SNI %q: server presented %q", tc.sni, got)
			}
			if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "" {
				t.Fatalf("SNI %q: version %x ALPN %q", tc.sni, st.Version, st.NegotiatedProtocol)
			}
		} else if err == nil {
			t.Fatalf("SNI %q: handshake succeeded", tc.sni)
		}
		tc2.Close()
	}
}

// TLS 1.2 is refused; ALPN offers h2 then http/1.1.
func TestTLSVersionAndALPN(t *testing.T) {
	f := newFixture(t)
	cert := f.ca.MustIssue(t, "a.example")
	dial := func(cfg *tls.Config) (*tls.Conn, error) {
		cfg.ServerName = "b.example"
		cfg.RootCAs = f.ca.Pool()
		cfg.Certificates = []tls.Certificate{cert}
		return tls.Dial("tcp", f.addr, cfg)
	}
	if c, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12}); err == nil {
		c.Close()
		t.Fatal("TLS 1.2 handshake succeeded")
	}
	for _, protos := range [][]string{{"h2", "http/1.1"}, {"http/1.1"}} {
		c, err := dial(&tls.Config{NextProtos: protos})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ConnectionState().NegotiatedProtocol; got != protos[0] {
			t.Fatalf("offered %v, negotiated %q", protos, got)
		}
		c.Close()
	}
	cfg := f.srv.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Fatalf("TLSConfig: min %x auth %v", cfg.MinVersion, cfg.ClientAuth)
	}
}

// Authenticate on a plain-HTTP request (no TLS at all) refuses with 401.
func TestAuthenticateWithoutTLS(t *testing.T) {
	f := newFixture(t)
	f.probe.reset()
	h := f.probe.outer(f.srv.Authenticate(f.probe.next()))
	rec := httptest.NewRecorder()
	req, _ := http.NewRequest(http.MethodPost, "http://b.example/x", strings.NewReader("body"))
	req.Header.Set("From", "mimi@a.example")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || f.probe.calls.Load() != 0 || f.probe.bodyRead.Load() != 0 {
		t.Fatalf("status %d calls %d read %d", rec.Code, f.probe.calls.Load(), f.probe.bodyRead.Load())
	}
}
