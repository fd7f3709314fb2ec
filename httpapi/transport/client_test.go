package transport_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/internal/testpki"
	"github.com/openmimi/mimi/mimi"
)

// testNet maps provider domains to loopback addresses. failNext makes the
// next resolution of a domain return a closed port.
type testNet struct {
	mu       sync.Mutex
	addrs    map[string]string
	failNext map[string]bool
	lookups  atomic.Int64
}

func newTestNet() *testNet {
	return &testNet{addrs: map[string]string{}, failNext: map[string]bool{}}
}

func (n *testNet) resolve(_ context.Context, domain string) (string, error) {
	n.lookups.Add(1)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.failNext[domain] {
		delete(n.failNext, domain)
		return closedAddr, nil
	}
	a, ok := n.addrs[domain]
	if !ok {
		return "", fmt.Errorf("unknown domain %q", domain)
	}
	return a, nil
}

// closedAddr is a loopback address nothing listens on (set in TestMain).
var closedAddr string

func TestMain(m *testing.M) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	closedAddr = ln.Addr().String()
	ln.Close()
	m.Run()
}

// provider is one MIMI provider: a Server behind Authenticate on loopback
// and a Client for its domain.
type provider struct {
	name   string
	srv    *transport.Server
	client *transport.Client
	addr   string

	dirHits atomic.Int64 // directory requests served
	epHits  atomic.Int64 // endpoint requests that reached the handler

	// dir, if set, is served as the directory instead of the default.
	dir atomic.Pointer[mimi.Directory]
	// respond, if set, answers endpoint requests.
	respond atomic.Pointer[http.HandlerFunc]

	mu   sync.Mutex
	last endpointRequest
}

type endpointRequest struct {
	peer, target, from, host, contentType, endpoint, id string
	protoMajor                                          int
	body                                                []byte
}

func newProvider(t *testing.T, ca *testpki.CA, tn *testNet, name string, opts ...func(*transport.ClientConfig)) *provider {
	t.Helper()
	p := &provider{name: name}
	srv, err := transport.NewServer(transport.ServerConfig{
		Domains:   []transport.Domain{{Name: name, Certificate: ca.MustIssue(t, name)}},
		ClientCAs: ca.Pool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	p.srv = srv
	mux := http.NewServeMux()
	dirHandler := srv.DirectoryHandler()
	mux.Handle(mimi.WellKnownDirectory, srv.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.dirHits.Add(1)
		if d := p.dir.Load(); d != nil {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(d)
			return
		}
		dirHandler.ServeHTTP(w, r)
	})))
	mux.Handle("POST /v1/{endpoint}/{id...}", srv.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.epHits.Add(1)
		body, err := transport.ReadBody(w, r)
		if err != nil {
			return
		}
		peer, _ := transport.PeerFromContext(r.Context())
		target, _ := transport.TargetFromContext(r.Context())
		p.mu.Lock()
		p.last = endpointRequest{
			peer: peer.Domain, target: target, from: r.Header.Get("From"), host: r.Host,
			contentType: r.Header.Get("Content-Type"), endpoint: r.PathValue("endpoint"),
			id: r.PathValue("id"), protoMajor: r.ProtoMajor, body: body,
		}
		p.mu.Unlock()
		if f := p.respond.Load(); f != nil {
			(*f)(w, r)
			return
		}
		w.Header().Set("Content-Type", transport.MediaType)
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, "%s got %d bytes from %s", name, len(body), peer.Domain)
	})))
	p.addr = serve(t, srv, mux)
	tn.mu.Lock()
	tn.addrs[name] = p.addr
	tn.mu.Unlock()

	cfg := transport.ClientConfig{
		Source:      name,
		Certificate: ca.MustIssue(t, name),
		RootCAs:     ca.Pool(),
		Resolver:    tn.resolve,
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := transport.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	p.client = c
	return p
}

func (p *provider) lastRequest() endpointRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func (p *provider) setRespond(f http.HandlerFunc) { p.respond.Store(&f) }

func mustURI(t *testing.T, s string) mimi.URI {
	t.Helper()
	u, err := mimi.ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Two providers call each other's endpoints.
func TestClientPostBothWays(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	tn := newTestNet()
	a := newProvider(t, ca, tn, "a.example")
	b := newProvider(t, ca, tn, "b.example")
	ctx := context.Background()

	for _, tc := range []struct {
		from, to *provider
		ep       transport.Endpoint
		id       string
	}{
		{a, b, transport.KeyMaterial, "mimi://b.example/u/bob"},
		{a, b, transport.Update, "mimi://b.example/r/clubhouse"},
		{a, b, transport.SubmitMessage, "mimi://b.example/r/clubhouse"},
		{a, b, transport.GroupInfo, "mimi://b.example/r/clubhouse"},
		// The hub b notifies follower a about b's room.
		{b, a, transport.Notify, "mimi://b.example/r/clubhouse"},
		{b, a, transport.KeyMaterial, "mimi://a.example/u/alice"},
	} {
		body := []byte("body for " + string(tc.ep))
		resp, err := tc.from.client.Post(ctx, tc.to.name, tc.ep, mustURI(t, tc.id), body)
		if err != nil {
			t.Fatalf("%s -> %s %s: %v", tc.from.name, tc.to.name, tc.ep, err)
		}
		want := fmt.Sprintf("%s got %d bytes from %s", tc.to.name, len(body), tc.from.name)
		if resp.StatusCode != http.StatusCreated || string(resp.Body) != want || resp.Header.Get("Content-Type") != transport.MediaType {
			t.Fatalf("%s: %d %q %v", tc.ep, resp.StatusCode, resp.Body, resp.Header)
		}
		got := tc.to.lastRequest()
		wantReq := endpointRequest{
			peer: tc.from.name, target: tc.to.name, from: "mimi@" + tc.from.name, host: tc.to.name,
			contentType: transport.MediaType, endpoint: string(tc.ep), id: strings.TrimPrefix(tc.id, "mimi://"),
			protoMajor: 2, body: body,
		}
		if fmt.Sprint(got) != fmt.Sprint(wantReq) {
			t.Fatalf("server saw\n %+v\nwant\n %+v", got, wantReq)
		}
	}
	if a.dirHits.Load() != 1 || b.dirHits.Load() != 1 {
		t.Fatalf("directory fetched %d and %d times, want once each", a.dirHits.Load(), b.dirHits.Load())
	}

	// The plain HTTP client adds the MIMI headers too, and overrides a
	// forged From.
	req, _ := http.NewRequest(http.MethodPost, "https://b.example/v1/notify/b.example/r/x", strings.NewReader("x"))
	req.Header.Set("From", "mimi@b.example")
	resp, err := a.client.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || b.lastRequest().peer != "a.example" {
		t.Fatalf("status %d, peer %q", resp.StatusCode, b.lastRequest().peer)
	}
}

func TestClientRejectsBadURIKind(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	tn := newTestNet()
	a := newProvider(t, ca, tn, "a.example")
	newProvider(t, ca, tn, "b.example")
	for _, tc := range []struct {
		ep transport.Endpoint
		id mimi.URI
	}{
		{transport.KeyMaterial, mustURI(t, "mimi://b.example/r/room")},
		{transport.Notify, mustURI(t, "mimi://b.example/u/bob")},
		{transport.Update, mimi.URI{}},
		{transport.Endpoint("bogus"), mustURI(t, "mimi://b.example/r/room")},
	} {
		if _, err := a.client.Post(context.Background(), "b.example", tc.ep, tc.id, nil); err == nil {
			t.Fatalf("%s %v: no error", tc.ep, tc.id)
		}
	}
}

func TestDirectoryDiscoveryCache(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	tn := newTestNet()
	a := newProvider(t, ca, tn, "a.example", func(c *transport.ClientConfig) { c.DirectoryTTL = 300 * time.Millisecond })
	b := newProvider(t, ca, tn, "b.example")
	ctx := context.Background()

	d1, err := a.client.Directory(ctx, "b.example")
	if err != nil {
		t.Fatal(err)
	}
	if *d1 != *transport.DefaultDirectory("https://b.example") {
		t.Fatalf("directory %+v", d1)
	}
	d1.Notify = "mutated by the caller"
	for range 5 {
		d, err := a.client.Directory(ctx, "B.Example")
		if err != nil {
			t.Fatal(err)
		}
		if d.Notify != "https://b.example/v1/notify/{roomId}" {
			t.Fatalf("cache handed out a shared directory: %q", d.Notify)
		}
	}
	if n := b.dirHits.Load(); n != 1 {
		t.Fatalf("%d directory fetches, want 1 (cached)", n)
	}

	a.client.Invalidate("b.example")
	if _, err := a.client.Directory(ctx, "b.example"); err != nil {
		t.Fatal(err)
	}
	if n := b.dirHits.Load(); n != 2 {
		t.Fatalf("%d directory fetches after Invalidate, want 2", n)
	}

	time.Sleep(400 * time.Millisecond) // past the TTL
	if _, err := a.client.Directory(ctx, "b.example"); err != nil {
		t.Fatal(err)
	}
	if n := b.dirHits.Load(); n != 3 {
		t.Fatalf("%d directory fetches after TTL expiry, want 3", n)
	}

	// Concurrent callers share one fetch.
	a.client.Invalidate("b.example")
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := a.client.Directory(ctx, "b.example"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := b.dirHits.Load(); n != 4 {
		t.Fatalf("%d directory fetches after concurrent calls, want 4", n)
	}

	// Invalid target domains are refused before any network activity.
	for _, bad := range []string{"", "localhost", "127.0.0.1", "b.example:443", "b_example.com"} {
		if _, err := a.client.Directory(ctx, bad); !errors.Is(err, transport.ErrBadTarget) {
			t.Fatalf("Directory(%q): %v", bad, err)
		}
	}
}

// Directory documents that are not acceptable are reported and not cached.
func TestDirectoryDiscoveryErrors(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	tn := newTestNet()
	a := newProvider(t, ca, tn, "a.example")
	b := newProvider(t, ca, tn, "b.example")
	ctx := context.Background()
	good := transport.DefaultDirectory("https://b.example")

	for _, tc := range []struct {
		name    string
		respond http.HandlerFunc
		wantErr error
	}{
		{"foreign host", func(w http.ResponseWriter, r *http.Request) {
			d := *good
			d.Notify = "https://evil.example/v1/notify/{roomId}"
			_ = json.NewEncoder(w).Encode(d)
		}, transport.ErrForeignEndpoint},
		{"suffix but not subdomain", func(w http.ResponseWriter, r *http.Request) {
			d := *good
			d.Update = "https://xb.example/v1/update/{roomId}"
			_ = json.NewEncoder(w).Encode(d)
		}, transport.ErrForeignEndpoint},
		{"IP host", func(w http.ResponseWriter, r *http.Request) {
			d := *good
			d.GroupInfo = "https://127.0.0.1/v1/groupInfo/{roomId}"
			_ = json.NewEncoder(w).Encode(d)
		}, transport.ErrForeignEndpoint},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "<html>") }, nil},
		{"missing placeholder", func(w http.ResponseWriter, r *http.Request) {
			d := *good
			d.KeyMaterial = "https://b.example/v1/keyMaterial/"
			_ = json.NewEncoder(w).Encode(d)
		}, nil},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"x":"`+strings.Repeat("a", 70<<10)+`"}`)
		}, transport.ErrResponseTooLarge},
		{"status 404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, nil},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://evil.example/dir", http.StatusFound)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.respond
			bdir := http.NewServeMux()
			bdir.HandleFunc(mimi.WellKnownDirectory, f)
			addr := serve(t, b.srv, bdir)
			tn.mu.Lock()
			tn.addrs["b.example"] = addr
			tn.mu.Unlock()
			a.client.CloseIdleConnections()
			_, err := a.client.Directory(ctx, "b.example")
			if err == nil {
				t.Fatal("no error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if strings.HasPrefix(tc.name, "status") || tc.name == "redirect" {
				var se *transport.StatusError
				if !errors.As(err, &se) {
					t.Fatalf("error %T %v, want *StatusError", err, err)
				}
			}
			t.Logf("%v", err)
		})
	}
	// Failures were not cached: with the real server back, it works.
	tn.mu.Lock()
	tn.addrs["b.example"] = b.addr
	tn.mu.Unlock()
	a.client.CloseIdleConnections()
	if _, err := a.client.Directory(ctx, "b.example"); err != nil {
		t.Fatal(err)
	}
}

// A 404 with a cached directory invalidates it and retries once with a
// fresh one.
func TestPostRetriesOn404WithFreshDirectory(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	tn := newTestNet()
	a := newProvider(t, ca, tn, "a.example")
	b := newProvider(t, ca, tn, "b.example")
	ctx := context.Background()
	room := mustURI(t, "mimi://b.example/r/clubhouse")

	// b's directory first points at paths that no longer exist.
	b.dir.Store(transport.DefaultDirectory("https://b.example/old"))
	if _, err := a.client.Directory(ctx, "b.example"); err != nil {
		t.Fatal(err)
	}
	// b moves its endpoints; a's cached directory is stale.
	b.dir.Store(nil)
	resp, err := a.client.Post(ctx, "b.example", transport.SubmitMessage, room, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if d, e := b.dirHits.Load(), b.epHits.Load(); d != 2 || e != 1 {
		t.Fatalf("directory hits %d (want 2), endpoint hits %d (want 1)", d, e)
	}

	// With a directory fetched by this very call, a 404 is returned as is:
	// a second fetch would not be fresher.
	a.client.Invalidate("b.example")
	b.dir.Store(transport.DefaultDirectory("https://b.example/old"))
	resp, err = a.client.Post(ctx, "b.example", transport.SubmitMessage, room, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotFound || b.dirHits.Load() != 3 {
		t.Fatalf("status %d, directory hits %d", resp.StatusCode, b.dirHits.Load())
	}

	// Only one retry: if the fresh directory is also wrong, the 404 is
	// returned.
	resp, err = a.client.Post(ctx, "b.example", transport.SubmitMessage, room, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotFound || b.dirHits.Load() != 4 {
		t.Fatalf("status %d, directory hits %d", resp.StatusCode, b.dirHits.Load())
	}
}

// A connection failure with a cached directory also refreshes and retries.
func TestPostRetriesOnConnectError(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	tn := newTestNet()
	a := newProvider(t, ca, tn, "a.example")
	b := newProvider(t, ca, tn, "b.example")
	ctx := context.Background()
	room := mustURI(t, "mimi://b.example/r/clubhouse")
	if _, err := a.client.Directory(ctx, "b.example"); err != nil {
		t.Fatal(err)
	}
	a.client.CloseIdleConnections() // force a new dial
	tn.mu.Lock()
	tn.failNext["b.example"] = true
	tn.mu.Unlock()
	resp, err := a.client.Post(ctx, "b.example", transport.Update, room, []byte("u"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated || b.dirHits.Load() != 2 || b.epHits.Load() != 1 {
		t.Fatalf("status %d, directory hits %d, endpoint hits %d", resp.StatusCode, b.dirHits.Load(), b.epHits.Load())
	}

	// Without a cached directory, the connect error comes back as such.
	a.client.Invalidate("b.example")
	a.client.CloseIdleConnections()
	tn.mu.Lock()
	tn.failNext["b.example"] = true
	tn.mu.Unlock()
	_, err = a.client.Post(ctx, "b.example", transport.Update, room, []byte("u"))
	if !transport.IsConnectError(err) {
		t.Fatalf("error %v, want a connect error", err)
	}
}

// Statuses other than 404 are returned without a retry: the request may
// have been processed.
func TestPostDoesNotRetryOtherFailures(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	tn := newTestNet()
	a := newProvider(t, ca, tn, "a.example", func(c *transport.ClientConfig) { c.MaxResponseBytes = 100 })
	b := newProvider(t, ca, tn, "b.example")
	ctx := context.Background()
	room := mustURI(t, "mimi://b.example/r/clubhouse")
	if _, err := a.client.Directory(ctx, "b.example"); err != nil {
		t.Fatal(err)
	}
	b.setRespond(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	resp, err := a.client.Post(ctx, "b.example", transport.Notify, room, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "5" || b.epHits.Load() != 1 || b.dirHits.Load() != 1 {
		t.Fatalf("status %d, hits %d/%d", resp.StatusCode, b.epHits.Load(), b.dirHits.Load())
	}

	// A response over the limit is an error, and is not retried either.
	b.setRespond(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("z", 101))
	})
	if _, err := a.client.Post(ctx, "b.example", transport.Notify, room, nil); !errors.Is(err, transport.ErrResponseTooLarge) {
		t.Fatalf("error %v, want ErrResponseTooLarge", err)
	}
	b.setRespond(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("z", 100))
	})
	if resp, err := a.client.Post(ctx, "b.example", transport.Notify, room, nil); err != nil || len(resp.Body) != 100 {
		t.Fatalf("at the limit: %v", err)
	}

	// Redirects are not followed.
	b.setRespond(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://evil.example/x", http.StatusTemporaryRedirect)
	})
	resp, err = a.client.Post(ctx, "b.example", transport.Notify, room, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTemporaryRedirect || b.epHits.Load() != 4 {
		t.Fatalf("status %d, endpoint hits %d", resp.StatusCode, b.epHits.Load())
	}
}

// URLs must be https on the target domain or a subdomain; nothing is
// dialed otherwise.
func TestClientForeignURLs(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	tn := newTestNet()
	a := newProvider(t, ca, tn, "a.example")
	newProvider(t, ca, tn, "b.example")
	ctx := context.Background()
	before := tn.lookups.Load()
	for _, u := range []string{
		"https://evil.example/v1/notify/x",
		"https://xb.example/v1/notify/x",
		"http://b.example/v1/notify/x",
		"https://user@b.example/v1/notify/x",
		"https://127.0.0.1/v1/notify/x",
	} {
		if _, err := a.client.PostURL(ctx, "b.example", u, nil); !errors.Is(err, transport.ErrForeignEndpoint) {
			t.Fatalf("%s: %v", u, err)
		}
	}
	for _, target := range []string{"", "b.example:443", "127.0.0.1", "localhost"} {
		if _, err := a.client.PostURL(ctx, target, "https://b.example/x", nil); !errors.Is(err, transport.ErrBadTarget) {
			t.Fatalf("target %q: %v", target, err)
		}
	}
	if tn.lookups.Load() != before {
		t.Fatal("a refused URL was resolved")
	}
	// A subdomain of the target is fine (it is dialed at the target's
	// address, with the certificate checked for the target).
	resp, err := a.client.PostURL(ctx, "b.example", "https://mimi.b.example:8443/v1/notify/b.example/r/x", []byte("n"))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("subdomain URL: %v", err)
	}
}

// The client verifies the server certificate for the target domain
// against its anchors, with the RFC 6125 rules of MatchDNSID.
func TestClientVerifiesServer(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	other := testpki.MustNew(t, "untrusted CA")
	tn := newTestNet()
	a := newProvider(t, ca, tn, "a.example")
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		ok   bool
	}{
		{"right name", ca.MustIssue(t, "b.example"), true},
		{"wildcard", ca.MustIssue(t, "*.example"), false}, // crypto/x509 accepts it, MatchDNSID does not
		{"other name", ca.MustIssue(t, "c.example"), false},
		{"untrusted CA", other.MustIssue(t, "b.example"), false},
		{"client-only EKU", mustIssueFor(t, ca, testpki.ClientOnly, "b.example"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := &http.Server{
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(201) }),
				TLSConfig: &tls.Config{
					MinVersion:   tls.VersionTLS13,
					Certificates: []tls.Certificate{tc.cert},
				},
			}
			addr := serveHTTP(t, hs)
			tn.mu.Lock()
			tn.addrs["b.example"] = addr
			tn.mu.Unlock()
			a.client.CloseIdleConnections()
			resp, err := a.client.PostURL(context.Background(), "b.example", "https://b.example/x", nil)
			if tc.ok {
				if err != nil || resp.StatusCode != 201 {
					t.Fatalf("%v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted the server certificate")
			}
			t.Logf("%v", err)
		})
	}
}

func TestNewClientValidation(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	for _, tc := range []struct {
		name string
		cfg  transport.ClientConfig
	}{
		{"bad source", transport.ClientConfig{Source: "a", Certificate: ca.MustIssue(t, "a.example")}},
		{"no certificate", transport.ClientConfig{Source: "a.example"}},
		{"certificate for another domain", transport.ClientConfig{Source: "a.example", Certificate: ca.MustIssue(t, "b.example")}},
		{"negative TTL", transport.ClientConfig{Source: "a.example", Certificate: ca.MustIssue(t, "a.example"), DirectoryTTL: -1}},
	} {
		if _, err := transport.NewClient(tc.cfg); err == nil {
			t.Fatalf("%s: accepted", tc.name)
		}
	}
	c, err := transport.NewClient(transport.ClientConfig{Source: "A.Example", Certificate: ca.MustIssue(t, "a.example")})
	if err != nil || c.Source() != "a.example" {
		t.Fatalf("%v %q", err, c.Source())
	}
}

func TestStaticResolver(t *testing.T) {
	r := transport.StaticResolver(map[string]string{"A.example": "127.0.0.1:1"})
	if a, err := r(context.Background(), "a.EXAMPLE"); err != nil || a != "127.0.0.1:1" {
		t.Fatalf("%q %v", a, err)
	}
	if _, err := r(context.Background(), "b.example"); err == nil {
		t.Fatal("unknown domain resolved")
	}
}

// A resolver failure is reported with ErrResolve.
func TestClientResolveError(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	c, err := transport.NewClient(transport.ClientConfig{
		Source: "a.example", Certificate: ca.MustIssue(t, "a.example"), RootCAs: ca.Pool(),
		Resolver: transport.StaticResolver(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Directory(context.Background(), "b.example"); !errors.Is(err, transport.ErrResolve) {
		t.Fatalf("%v", err)
	}
}
