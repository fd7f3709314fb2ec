package daemon

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/openmimi/mimi/internal/devpki"
)

// Config.PeerRateLimit reaches the federation server: past the burst, a
// peer's requests get 429 with Retry-After (RFC 6585, Section 4) while
// another peer's still pass.
func TestPeerRateLimitConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, _ := newFaultFabric(t, ctx, false, func(domain string, c *Config) {
		if domain == "a.example" {
			c.PeerRateLimit = RateLimitConfig{PerSecond: 0.01, Burst: 2}
		}
	})
	defer f.closeAll()
	ca, _, err := devpki.LoadOrCreate(f.caDir, "")
	if err != nil {
		t.Fatal(err)
	}
	client := func(peer string) *http.Client {
		dir := f.nodes[peer].dir
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, TLSDir, peer+".pem"), filepath.Join(dir, TLSDir, peer+"-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool(), MinVersion: tls.VersionTLS13},
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, f.nodes["a.example"].addr)
			},
		}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	get := func(hc *http.Client, peer string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://a.example/.well-known/mimi-protocol-directory", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("From", "mimi@"+peer)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	b, c := client("b.example"), client("c.example")
	for i := range 2 {
		if resp := get(b, "b.example"); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i, resp.StatusCode)
		}
	}
	resp := get(b, "b.example")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("past the burst: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := get(c, "c.example"); resp.StatusCode != http.StatusOK {
		t.Fatalf("another peer: %d", resp.StatusCode)
	}
}
