package transport_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/internal/testpki"
	"github.com/openmimi/mimi/mimi"
)

func TestMatchDNSID(t *testing.T) {
	for _, tc := range []struct {
		presented, reference string
		want                 bool
	}{
		{"a.example", "a.example", true},
		{"A.EXAMPLE", "a.example", true},
		{"a.example", "A.Example", true},
		{"a.example", "b.example", false},
		{"a.example", "x.a.example", false},
		{"x.a.example", "a.example", false},
		{"a.example.", "a.example", false},
		{"a.example", "a.example.", false},
		{"", "a.example", false},
		{"a.example", "", false},
		// Wildcards: entire left-most label only, exactly one label.
		{"*.a.example", "x.a.example", true},
		{"*.A.Example", "X.a.example", true},
		{"*.a.example", "xn--bcher-kva.a.example", true},
		{"*.a.example", "a.example", false},
		{"*.a.example", "y.x.a.example", false},
		{"*.a.example", ".a.example", false},
		{"*.example", "a.example", false}, // remainder must be a domain of two labels
		{"*.com", "example.com", false},
		{"*", "a", false},
		{"*", "a.example", false},
		{"*.*.example", "a.b.example", false},
		{"x*.a.example", "xy.a.example", false},
		{"*x.a.example", "yx.a.example", false},
		{"x*y.a.example", "xzy.a.example", false},
		{"a.*.example", "a.b.example", false},
		{"a.example.*", "a.example.com", false},
		{"**.a.example", "x.a.example", false},
		{"*.a.example", "*.a.example", false}, // the reference is not a domain
		// ASCII only: U+212A KELVIN SIGN lower-cases to "k" under Unicode.
		{"\u212a.example", "k.example", false},
		{"*.\u212a.example", "x.k.example", false},
		{"k.example", "\u212a.example", false},
		// IP-like references are not domains.
		{"127.0.0.1", "127.0.0.1", false},
		{"*.0.0.1", "127.0.0.1", false},
		{"a_b.example", "a_b.example", false},
	} {
		if got := transport.MatchDNSID(tc.presented, tc.reference); got != tc.want {
			t.Errorf("MatchDNSID(%q, %q) = %v, want %v", tc.presented, tc.reference, got, tc.want)
		}
	}
}

func TestVerifyDomainIgnoresCommonName(t *testing.T) {
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		ok   bool
	}{
		{"nil", nil, false},
		{"CN only", &x509.Certificate{Subject: pkix.Name{CommonName: "a.example"}}, false},
		{"CN and other SAN", &x509.Certificate{Subject: pkix.Name{CommonName: "a.example"}, DNSNames: []string{"b.example"}}, false},
		{"email SAN", &x509.Certificate{EmailAddresses: []string{"mimi@a.example"}}, false},
		{"DNS SAN", &x509.Certificate{Subject: pkix.Name{CommonName: "b.example"}, DNSNames: []string{"b.example", "a.example"}}, true},
	} {
		err := transport.VerifyDomain(tc.cert, "a.example")
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
		if err != nil && !errors.Is(err, transport.ErrDomainMismatch) {
			t.Errorf("%s: error does not wrap ErrDomainMismatch: %v", tc.name, err)
		}
	}
}

func TestParseFrom(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"mimi@a.example", "a.example"},
		{"mimi@A.EXAMPLE", "a.example"},
		{"mimi@sub.a-b.example", "sub.a-b.example"},
		{"mimi@xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"mimi@a.example", "a.example"},
		{"", ""},
		{"mimi", ""},
		{"mimi@", ""},
		{"@a.example", ""},
		{"Mimi@a.example", ""},
		{" mimi@a.example", ""},
		{"mimi@a.example ", ""},
		{"mimi@a.example\t", ""},
		{"<mimi@a.example>", ""},
		{"Provider A <mimi@a.example>", ""},
		{"mimi@a.example, mimi@b.example", ""},
		{"mimi@a.example;", ""},
		{`"mimi"@a.example`, ""},
		{"mimi@(c)a.example", ""},
		{"mimi@[192.0.2.1]", ""},
		{"mimi@192.0.2.1", ""},
		{"mimi@a.123", ""},
		{"mimi@example", ""},
		{"mimi@a..example", ""},
		{"mimi@-a.example", ""},
		{"mimi@a.example\r\nX: y", ""},
		{"mimi@b\u00fccher.example", ""},
		{"mimi@" + strings.Repeat("a", 64) + ".example", ""},
	} {
		got, err := transport.ParseFrom(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ParseFrom(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if err != nil && !errors.Is(err, transport.ErrBadFrom) {
			t.Errorf("ParseFrom(%q): error does not wrap ErrBadFrom", tc.in)
		}
	}
	if transport.FromHeader("a.example") != "mimi@a.example" {
		t.Fatal("FromHeader")
	}
}

func TestNewServerValidation(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	a := ca.MustIssue(t, "a.example")
	good := func() transport.ServerConfig {
		return transport.ServerConfig{Domains: []transport.Domain{{Name: "a.example", Certificate: a}}, ClientCAs: ca.Pool()}
	}
	bad := map[string]func(*transport.ServerConfig){
		"no domains":     func(c *transport.ServerConfig) { c.Domains = nil },
		"no anchors":     func(c *transport.ServerConfig) { c.ClientCAs = nil },
		"negative limit": func(c *transport.ServerConfig) { c.MaxBodyBytes = -1 },
		"bad domain":     func(c *transport.ServerConfig) { c.Domains[0].Name = "a" },
		"no certificate": func(c *transport.ServerConfig) { c.Domains[0].Certificate = tls.Certificate{} },
		"garbage cert": func(c *transport.ServerConfig) {
			c.Domains[0].Certificate = tls.Certificate{Certificate: [][]byte{{1, 2}}}
		},
		"cert for another": func(c *transport.ServerConfig) { c.Domains[0].Name = "b.example" },
		"duplicate": func(c *transport.ServerConfig) {
			c.Domains = append(c.Domains, transport.Domain{Name: "A.example", Certificate: a})
		},
		"foreign base URL":  func(c *transport.ServerConfig) { c.Domains[0].BaseURL = "https://b.example" },
		"http base URL":     func(c *transport.ServerConfig) { c.Domains[0].BaseURL = "http://a.example" },
		"invalid directory": func(c *transport.ServerConfig) { c.Domains[0].Directory = &mimi.Directory{} },
		"foreign directory endpoint": func(c *transport.ServerConfig) {
			d := transport.DefaultDirectory("https://a.example")
			d.GroupInfo = "https://evil.example/{roomId}"
			c.Domains[0].Directory = d
		},
	}
	for name, mut := range bad {
		cfg := good()
		mut(&cfg)
		if _, err := transport.NewServer(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	cfg := good()
	cfg.Domains[0].Name = "A.Example"
	cfg.Domains[0].Certificate.Leaf = nil // parsed by NewServer
	cfg.Domains = append(cfg.Domains, transport.Domain{Name: "c.example", Certificate: ca.MustIssue(t, "c.example"),
		BaseURL: "https://mimi.c.example:8443/"})
	s, err := transport.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Domains(); len(got) != 2 || got[0] != "a.example" || got[1] != "c.example" {
		t.Fatalf("Domains %v", got)
	}
	if !s.Serves("A.EXAMPLE") || s.Serves("b.example") || s.MaxBodyBytes() != transport.DefaultMaxBodyBytes {
		t.Fatal("Serves/MaxBodyBytes")
	}
}

func TestDefaultDirectoryAndEndpoints(t *testing.T) {
	d := transport.DefaultDirectory("https://mimi.example.com/")
	want := mimi.Directory{
		KeyMaterial:   "https://mimi.example.com/v1/keyMaterial/{targetUser}",
		Update:        "https://mimi.example.com/v1/update/{roomId}",
		Notify:        "https://mimi.example.com/v1/notify/{roomId}",
		SubmitMessage: "https://mimi.example.com/v1/submitMessage/{roomId}",
		GroupInfo:     "https://mimi.example.com/v1/groupInfo/{roomId}",
	}
	if *d != want {
		t.Fatalf("%+v", d)
	}
	for _, e := range transport.Endpoints {
		tmpl, err := e.Template(d)
		if err != nil || !strings.Contains(tmpl, e.Path()) {
			t.Fatalf("%s: %q %v", e, tmpl, err)
		}
	}
	if _, err := transport.Endpoint("x").Template(d); !errors.Is(err, transport.ErrUnknownEndpoint) {
		t.Fatal(err)
	}
	u, _ := mimi.ParseURI("mimi://a.example/r/clubhouse")
	if got := mimi.Expand(d.Notify, u); got != "https://mimi.example.com/v1/notify/a.example/r/clubhouse" {
		t.Fatal(got)
	}
}

func TestDirectoryHandler(t *testing.T) {
	f := newFixture(t)
	hc := rawClient(t, rawOpts{roots: f.ca.Pool(), certs: []tls.Certificate{f.ca.MustIssue(t, "a.example")},
		serverName: "b.example", addr: f.addr})
	hcC := rawClient(t, rawOpts{roots: f.ca.Pool(), serverName: "c.example", addr: f.addr}) // no client cert
	get := func(hc *http.Client, method, host, path string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, "https://"+host+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, body := get(hc, http.MethodGet, "b.example", mimi.WellKnownDirectory)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	d, err := mimi.ParseDirectory(body)
	if err != nil {
		t.Fatal(err)
	}
	if *d != *transport.DefaultDirectory("https://b.example") {
		t.Fatalf("%+v", d)
	}
	// Per-domain base URL, chosen by Host; the directory is mounted without
	// Authenticate in this fixture, so no client certificate is needed.
	resp, body = get(hcC, http.MethodGet, "c.example:443", mimi.WellKnownDirectory)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if d, err = mimi.ParseDirectory(body); err != nil || d.Notify != "https://mimi.c.example/api/v1/notify/{roomId}" {
		t.Fatalf("%+v %v", d, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil || len(raw) != 5 {
		t.Fatalf("JSON members %v %v", raw, err)
	}

	resp, body = get(hc, http.MethodHead, "b.example", mimi.WellKnownDirectory)
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		resp, _ = get(hc, m, "b.example", mimi.WellKnownDirectory)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Fatalf("%s: %d Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	// Host not served, or not the connection's TLS server name.
	for _, host := range []string{"z.example", "c.example"} {
		req, _ := http.NewRequest(http.MethodGet, "https://b.example"+mimi.WellKnownDirectory, nil)
		req.Host = host
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("Host %s: %d", host, resp.StatusCode)
		}
	}
	// The handler only serves the well-known path.
	rec := httptest.NewRecorder()
	f.srv.DirectoryHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://b.example/.well-known/other", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("other path: %d", rec.Code)
	}
}

// NewContext round-trips through the accessors, which report absence.
func TestContextAccessors(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "https://b.example/", nil)
	if _, ok := transport.PeerFromContext(req.Context()); ok {
		t.Fatal("peer in a bare context")
	}
	if _, ok := transport.TargetFromContext(req.Context()); ok {
		t.Fatal("target in a bare context")
	}
	ctx := transport.NewContext(req.Context(), transport.Peer{Domain: "a.example"}, "b.example")
	p, ok := transport.PeerFromContext(ctx)
	tg, ok2 := transport.TargetFromContext(ctx)
	if !ok || !ok2 || p.Domain != "a.example" || tg != "b.example" {
		t.Fatal("round trip")
	}
}

func FuzzParseFrom(f *testing.F) {
	for _, s := range []string{"mimi@a.example", "a.example", "Mimi <mimi@a.example>", "mimi@", "mimi@a.example, mimi@b.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := transport.ParseFrom(s)
		if err != nil {
			return
		}
		if mimi.ValidateDomain(d) != nil || !strings.EqualFold("mimi@"+d, s) || !strings.HasPrefix(s, "mimi@") {
			t.Fatalf("ParseFrom(%q) accepted %q", s, d)
		}
	})
}

func FuzzMatchDNSID(f *testing.F) {
	for _, s := range [][2]string{{"a.example", "a.example"}, {"*.a.example", "x.a.example"}, {"x*.a.example", "xy.a.example"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, presented, reference string) {
		if !transport.MatchDNSID(presented, reference) {
			return
		}
		p, r := strings.ToLower(presented), strings.ToLower(reference)
		if mimi.ValidateDomain(r) != nil {
			t.Fatalf("matched invalid reference %q", reference)
		}
		if p == r {
			return
		}
		rest, ok := strings.CutPrefix(p, "*.")
		first, ok2 := strings.CutSuffix(r, "."+rest)
		if !ok || !ok2 || first == "" || strings.Contains(first, ".") || strings.Contains(rest, "*") {
			t.Fatalf("MatchDNSID(%q, %q) = true", presented, reference)
		}
	})
}
