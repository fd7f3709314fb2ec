package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/openmimi/mimi/mimi"
)

// MediaType is the Content-Type (and Accept) of MIMI request and response
// bodies, the TLS-presentation-language structs of
// draft-ralston-mimi-protocol-02, Section 5. The draft names no media type;
// this one is our choice and is not registered.
const MediaType = "application/mimi"

// Client defaults.
const (
	// DefaultDirectoryTTL is how long a discovered directory
	// (draft-ralston-mimi-protocol-02, Section 5.1) is cached.
	DefaultDirectoryTTL = time.Hour
	// DefaultMaxResponseBytes caps response bodies read by Post and
	// PostURL.
	DefaultMaxResponseBytes int64 = 4 << 20
	// DefaultTimeout bounds one HTTP exchange, body included.
	DefaultTimeout = 30 * time.Second
)

// maxDirectoryBytes caps the directory document we read; mimi.ParseDirectory
// refuses anything larger.
const maxDirectoryBytes = 64 << 10

// Client errors.
var (
	// ErrForeignEndpoint: a URL is not https on the target domain or one
	// of its subdomains.
	ErrForeignEndpoint = errors.New("transport: endpoint URL is not on the target domain")
	// ErrResponseTooLarge: a response body exceeds the client's limit.
	ErrResponseTooLarge = errors.New("transport: response body too large")
	// ErrResolve: the Resolver failed for a target domain.
	ErrResolve = errors.New("transport: cannot resolve target domain")
	// ErrBadTarget: a target domain is not a valid provider domain.
	ErrBadTarget = errors.New("transport: invalid target domain")
)

// StatusError is returned when a directory fetch gets a status other than
// 200 (draft-ralston-mimi-protocol-02, Section 5.1).
type StatusError struct {
	URL        string
	StatusCode int
	// Body is the start of the response body, for diagnostics.
	Body string
}

// Error reports the URL, the status and the start of the body.
func (e *StatusError) Error() string {
	return fmt.Sprintf("transport: GET %s: status %d: %q", e.URL, e.StatusCode, e.Body)
}

// Resolver maps a target provider domain to the network address
// ("host:port") to dial. It changes only where the client connects: the TLS
// server name, the certificate check and the Host header still use the
// domain (draft-ralston-mimi-protocol-02, Section 4.1). Returning "" with a
// nil error means "dial the address in the URL".
type Resolver func(ctx context.Context, domain string) (addr string, err error)

// StaticResolver returns a Resolver that maps the domains of m (matched
// case-insensitively) to their addresses and fails for every other domain,
// so that tests never reach real DNS.
func StaticResolver(m map[string]string) Resolver {
	mm := make(map[string]string, len(m))
	for k, v := range m {
		mm[asciiLower(k)] = v
	}
	return func(_ context.Context, domain string) (string, error) {
		if a, ok := mm[asciiLower(domain)]; ok {
			return a, nil
		}
		return "", fmt.Errorf("no address for %q", domain)
	}
}

// ClientConfig configures NewClient (draft-ralston-mimi-protocol-02,
// Section 4.1).
type ClientConfig struct {
	// Source is the provider domain requests come from (From header).
	Source string
	// Certificate is the client certificate presented; its leaf must
	// authenticate Source by a DNS-ID (RFC 6125; VerifyDomain) and carry
	// the clientAuth extended key usage.
	Certificate tls.Certificate
	// RootCAs are the trust anchors for targets' server certificates; nil
	// means the system roots.
	RootCAs *x509.CertPool
	// Resolver, if non-nil, maps target domains to dial addresses.
	Resolver Resolver
	// DirectoryTTL is how long discovered directories are cached; 0 means
	// DefaultDirectoryTTL.
	DirectoryTTL time.Duration
	// MaxResponseBytes caps response bodies; 0 means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Timeout bounds one HTTP exchange; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Client sends MIMI requests from one source provider
// (draft-ralston-mimi-protocol-02, Section 4.1) and discovers and caches
// targets' directories (Section 5.1). It is safe for concurrent use.
//
// Each target domain gets its own connection pool, whose TLS server name
// is that domain, so a connection authenticated for one target is never
// reused for another.
type Client struct {
	source  string
	cert    tls.Certificate
	roots   *x509.CertPool
	resolve Resolver
	ttl     time.Duration
	maxResp int64
	hc      *http.Client
	dialer  net.Dialer

	mu         sync.Mutex
	transports map[string]*http.Transport
	dirs       map[string]*dirEntry
}

// NewClient validates cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	src, err := canonicalDomain(cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("transport: client: source %q: %w", cfg.Source, err)
	}
	cert := cfg.Certificate
	leaf, err := leafOf(&cert)
	if err != nil {
		return nil, fmt.Errorf("transport: client: %w", err)
	}
	if err := VerifyDomain(leaf, src); err != nil {
		return nil, fmt.Errorf("transport: client: %w", err)
	}
	if cfg.DirectoryTTL < 0 || cfg.MaxResponseBytes < 0 || cfg.Timeout < 0 {
		return nil, errors.New("transport: client: negative limit")
	}
	c := &Client{
		source:     src,
		cert:       cert,
		roots:      cfg.RootCAs,
		resolve:    cfg.Resolver,
		ttl:        cmpOr(cfg.DirectoryTTL, DefaultDirectoryTTL),
		maxResp:    cmpOr(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
		transports: make(map[string]*http.Transport),
		dirs:       make(map[string]*dirEntry),
	}
	c.dialer = net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	c.hc = &http.Client{
		Transport: roundTripper{c},
		Timeout:   cmpOr(cfg.Timeout, DefaultTimeout),
		// MIMI has no redirects; following one would take our client
		// certificate to a host of someone else's choosing.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Source returns the source provider domain (lower-case).
func (c *Client) Source() string { return c.source }

// HTTPClient returns the underlying http.Client. Every request it sends
// (draft-ralston-mimi-protocol-02, Section 4.1):
//
//   - goes to the target domain req.Host if set, else the URL's host (port
//     ignored); the URL must be https on the target or a subdomain of it
//     (ErrForeignEndpoint);
//   - carries Host = target domain (without port) and From = mimi@source
//     (overriding any From the caller set);
//   - runs over TLS 1.3 (HTTP/2 preferred) presenting the source
//     certificate, with the server certificate verified against RootCAs for
//     the target domain, both by crypto/x509 and by VerifyDomain;
//   - is dialed at Resolver(target) if a Resolver is configured;
//   - does not follow redirects (a 3xx is returned as is).
func (c *Client) HTTPClient() *http.Client { return c.hc }

// CloseIdleConnections closes idle connections to every target.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	ts := maps.Clone(c.transports)
	c.mu.Unlock()
	for _, t := range ts {
		t.CloseIdleConnections()
	}
}

type roundTripper struct{ c *Client }

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	r2, t, err := rt.c.prepare(req)
	if err != nil {
		// A RoundTripper must close the body, even on errors.
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	return t.RoundTrip(r2)
}

// prepare finds the target of req, checks its URL and returns a copy with
// Host and From set, and the target's connection pool.
func (c *Client) prepare(req *http.Request) (*http.Request, *http.Transport, error) {
	if req.URL == nil {
		return nil, nil, errors.New("transport: request without URL")
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	target, err := canonicalDomain(host)
	if err != nil {
		return nil, nil, fmt.Errorf("%w %q: %w", ErrBadTarget, clip(host), err)
	}
	if err := checkEndpointURL(req.URL.String(), target); err != nil {
		return nil, nil, fmt.Errorf("transport: %s %s: %w", req.Method, clip(req.URL.String()), err)
	}
	r2 := req.Clone(req.Context())
	r2.Host = target
	r2.Header.Set("From", FromHeader(c.source))
	return r2, c.transportFor(target), nil
}

// transportFor returns the connection pool for target, creating it.
func (c *Client) transportFor(target string) *http.Transport {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.transports[target]; ok {
		return t
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	t := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if c.resolve != nil {
				a, err := c.resolve(ctx, target)
				if err != nil {
					return nil, fmt.Errorf("%w %s: %w", ErrResolve, target, err)
				}
				if a != "" {
					addr = a
				}
			}
			return c.dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{c.cert},
			RootCAs:      c.roots,
			ServerName:   target,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return fmt.Errorf("%w %q: server sent no certificate", ErrDomainMismatch, target)
				}
				return VerifyDomain(cs.PeerCertificates[0], target)
			},
		},
		Protocols:              p,
		TLSHandshakeTimeout:    10 * time.Second,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	c.transports[target] = t
	return t
}

// Response is the result of a MIMI POST (draft-ralston-mimi-protocol-02,
// Section 5): the status, the headers and the whole body (at most the
// client's MaxResponseBytes).
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// PostURL POSTs body with Content-Type MediaType to rawURL on target
// (draft-ralston-mimi-protocol-02, Sections 4.1 and 5) and reads the whole
// response. rawURL must be https on target or a subdomain of it. A response
// body over MaxResponseBytes fails with ErrResponseTooLarge. Any status is
// returned as a Response; only transport failures are errors.
func (c *Client) PostURL(ctx context.Context, target, rawURL string, body []byte) (*Response, error) {
	t, err := canonicalDomain(target)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadTarget, clip(target), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("transport: POST %s: %w", clip(rawURL), err)
	}
	req.Host = t
	req.Header.Set("Content-Type", MediaType)
	req.Header.Set("Accept", MediaType)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("transport: POST %s: %w", clip(rawURL), err)
	}
	defer resp.Body.Close()
	b, err := readLimited(resp.Body, c.maxResp)
	if err != nil {
		return nil, fmt.Errorf("transport: POST %s: %w", clip(rawURL), err)
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Post POSTs body to the endpoint ep of target, for the user (KeyMaterial)
// or room (the others) id, expanding the template of target's directory
// with id (mimi.Expand; draft-ralston-mimi-protocol-02, Sections 5.1 to
// 5.6). Note that target is not always id's provider: /notify goes from
// the hub to a follower with the hub's room ID.
//
// If the directory came from the cache and the request fails to connect
// (IsConnectError) or gets 404, Post invalidates the cached directory,
// fetches it again and retries once. Other failures are not retried, since
// the request may have been processed and MIMI POSTs are not idempotent.
func (c *Client) Post(ctx context.Context, target string, ep Endpoint, id mimi.URI, body []byte) (*Response, error) {
	want := mimi.KindRoom
	if ep == KeyMaterial {
		want = mimi.KindUser
	}
	if _, err := mimi.ParseURIKind(id.String(), want); err != nil {
		return nil, fmt.Errorf("transport: %s: %w", ep, err)
	}
	for attempt := 0; ; attempt++ {
		dir, fresh, err := c.directory(ctx, target)
		if err != nil {
			return nil, err
		}
		tmpl, err := ep.Template(dir)
		if err != nil {
			return nil, err
		}
		resp, err := c.PostURL(ctx, target, mimi.Expand(tmpl, id), body)
		stale := IsConnectError(err) || err == nil && resp.StatusCode == http.StatusNotFound
		if !stale || fresh || attempt > 0 {
			return resp, err
		}
		c.Invalidate(target)
	}
}

// IsConnectError reports whether err shows that no connection could be
// made (a failed dial or DNS lookup), so the request certainly did not
// reach the server.
func IsConnectError(err error) bool {
	if err == nil {
		return false
	}
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
		return true
	}
	_, ok := errors.AsType[*net.DNSError](err)
	return ok
}

// readLimited reads r to the end, failing with ErrResponseTooLarge beyond
// limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: over %d bytes", ErrResponseTooLarge, limit)
	}
	return b, nil
}

// snippet returns the start of b for error messages.
func snippet(b []byte) string {
	s := string(b)
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.ToValidUTF8(s, "?")
}
