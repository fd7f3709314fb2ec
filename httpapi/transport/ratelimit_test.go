package transport_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/internal/testpki"
)

// fakeClock is a settable clock for RateLimit.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// limitFixture is a server for a.example with a rate limit, and in-process
// requests carrying a verified client certificate for b.example or
// c.example.
type limitFixture struct {
	srv       *transport.Server
	h         http.Handler
	leaves    map[string]*x509.Certificate
	bodyReads map[string]int
	refusals  []error
	mu        sync.Mutex
}

func newLimitFixture(t *testing.T, rl transport.RateLimit) *limitFixture {
	t.Helper()
	ca := testpki.MustNew(t, "rate limit CA")
	fx := &limitFixture{leaves: map[string]*x509.Certificate{}, bodyReads: map[string]int{}}
	srv, err := transport.NewServer(transport.ServerConfig{
		Domains:   []transport.Domain{{Name: "a.example", Certificate: ca.MustIssue(t, "a.example")}},
		ClientCAs: ca.Pool(),
		RateLimit: rl,
		OnRefuse: func(_ *http.Request, _ int, err error) {
			fx.mu.Lock()
			fx.refusals = append(fx.refusals, err)
			fx.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	fx.srv = srv
	for _, d := range []string{"b.example", "c.example"} {
		c := ca.MustIssue(t, d)
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		fx.leaves[d] = leaf
	}
	fx.h = srv.Authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, _ := transport.PeerFromContext(r.Context())
		if _, err := transport.ReadBody(w, r); err != nil {
			return
		}
		fx.mu.Lock()
		fx.bodyReads[peer.Domain]++
		fx.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	return fx
}

// do sends one request from peer and returns the response.
func (fx *limitFixture) do(peer string) *http.Response {
	r := httptest.NewRequest(http.MethodPost, "https://a.example/v1/update/a.example/r/x", strings.NewReader("body"))
	r.Header.Set("From", transport.FromHeader(peer))
	r.TLS = &tls.ConnectionState{ServerName: "a.example", VerifiedChains: [][]*x509.Certificate{{fx.leaves[peer]}}}
	w := httptest.NewRecorder()
	fx.h.ServeHTTP(w, r)
	return w.Result()
}

func (fx *limitFixture) reads(peer string) int {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return fx.bodyReads[peer]
}

// TestRateLimitPerPeer: a peer past its burst gets 429 with Retry-After and
// its body is not read; another peer is unaffected; the bucket refills.
func TestRateLimitPerPeer(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	fx := newLimitFixture(t, transport.RateLimit{PerSecond: 2, Burst: 3, Now: clk.Now})
	for i := range 3 {
		if res := fx.do("b.example"); res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i, res.StatusCode)
		}
	}
	res := fx.do("b.example")
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("over the burst: %d", res.StatusCode)
	}
	if ra := res.Header.Get("Retry-After"); ra != "1" {
		t.Fatalf("Retry-After %q", ra)
	}
	if b, _ := io.ReadAll(res.Body); !strings.Contains(string(b), "too many requests") {
		t.Fatalf("body %q", b)
	}
	if n := fx.reads("b.example"); n != 3 {
		t.Fatalf("%d bodies read, want 3", n)
	}
	if len(fx.refusals) != 1 || !errors.Is(fx.refusals[0], transport.ErrRateLimited) {
		t.Fatalf("refusals %v", fx.refusals)
	}
	// c.example has its own bucket.
	for i := range 3 {
		if res := fx.do("c.example"); res.StatusCode != http.StatusOK {
			t.Fatalf("c.example request %d: %d", i, res.StatusCode)
		}
	}
	// Half a second refills one token (2/s): one more request, then 429.
	clk.Advance(500 * time.Millisecond)
	if res := fx.do("b.example"); res.StatusCode != http.StatusOK {
		t.Fatalf("after refill: %d", res.StatusCode)
	}
	if res := fx.do("b.example"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after the refilled token: %d", res.StatusCode)
	}
	// A long pause refills to the burst, not beyond.
	clk.Advance(time.Hour)
	for i := range 3 {
		if res := fx.do("b.example"); res.StatusCode != http.StatusOK {
			t.Fatalf("after an hour, request %d: %d", i, res.StatusCode)
		}
	}
	if res := fx.do("b.example"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("burst exceeded after refill: %d", res.StatusCode)
	}
}

// TestRateLimitRetryAfter: Retry-After is the whole seconds until a token,
// rounded up.
func TestRateLimitRetryAfter(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	fx := newLimitFixture(t, transport.RateLimit{PerSecond: 0.1, Burst: 1, Now: clk.Now})
	if res := fx.do("b.example"); res.StatusCode != http.StatusOK {
		t.Fatal(res.StatusCode)
	}
	clk.Advance(2500 * time.Millisecond)
	res := fx.do("b.example")
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "8" {
		t.Fatalf("%d Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	clk.Advance(7500 * time.Millisecond)
	if res := fx.do("b.example"); res.StatusCode != http.StatusOK {
		t.Fatalf("after 10 s: %d", res.StatusCode)
	}
}

// TestRateLimitConfig: defaults, disabling, and invalid values.
func TestRateLimitConfig(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	fx := newLimitFixture(t, transport.RateLimit{Now: clk.Now})
	for i := range transport.DefaultRateBurst {
		if res := fx.do("b.example"); res.StatusCode != http.StatusOK {
			t.Fatalf("default burst, request %d: %d", i, res.StatusCode)
		}
	}
	if res := fx.do("b.example"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("past the default burst: %d", res.StatusCode)
	}
	clk.Advance(time.Second)
	for i := range int(transport.DefaultRatePerSecond) {
		if res := fx.do("b.example"); res.StatusCode != http.StatusOK {
			t.Fatalf("default refill, request %d: %d", i, res.StatusCode)
		}
	}
	if res := fx.do("b.example"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("past the default refill: %d", res.StatusCode)
	}
	fx = newLimitFixture(t, transport.RateLimit{Disabled: true, PerSecond: 1, Burst: 1})
	for i := range 1000 {
		if res := fx.do("b.example"); res.StatusCode != http.StatusOK {
			t.Fatalf("disabled, request %d: %d", i, res.StatusCode)
		}
	}
	ca := testpki.MustNew(t, "cfg CA")
	cert := ca.MustIssue(t, "a.example")
	for _, rl := range []transport.RateLimit{{PerSecond: -1}, {Burst: -1}} {
		_, err := transport.NewServer(transport.ServerConfig{
			Domains:   []transport.Domain{{Name: "a.example", Certificate: cert}},
			ClientCAs: ca.Pool(),
			RateLimit: rl,
		})
		if err == nil {
			t.Fatalf("%+v accepted", rl)
		}
	}
}

// TestRateLimitBeforeBody: a request refused for its rate is refused before
// any of its body is read, even a body over the size limit.
func TestRateLimitBeforeBody(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	fx := newLimitFixture(t, transport.RateLimit{PerSecond: 1, Burst: 1, Now: clk.Now})
	fx.do("b.example")
	read := 0
	r := httptest.NewRequest(http.MethodPost, "https://a.example/x", countingReader{&read, strings.NewReader("abc")})
	r.Header.Set("From", transport.FromHeader("b.example"))
	r.TLS = &tls.ConnectionState{ServerName: "a.example", VerifiedChains: [][]*x509.Certificate{{fx.leaves["b.example"]}}}
	w := httptest.NewRecorder()
	fx.h.ServeHTTP(w, r)
	if w.Code != http.StatusTooManyRequests || read != 0 {
		t.Fatalf("%d, %d bytes read", w.Code, read)
	}
}

type countingReader struct {
	n *int
	r io.Reader
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += n
	return n, err
}
