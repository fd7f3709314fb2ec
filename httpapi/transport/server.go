package transport

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/openmimi/mimi/mimi"
)

// DefaultMaxBodyBytes is the request body limit Authenticate applies when
// ServerConfig.MaxBodyBytes is zero. MIMI bodies (draft-ralston-mimi-
// protocol-02, Section 5) carry KeyPackages, commits, GroupInfo and ratchet
// trees; 4 MiB leaves room for a ratchet tree of a few thousand members.
const DefaultMaxBodyBytes int64 = 4 << 20

// Domain is one provider domain served by a Server
// (draft-ralston-mimi-protocol-02, Section 4.1: the target provider is
// named by the Host header and authenticated by the server certificate).
type Domain struct {
	// Name is the provider domain, e.g. "a.example" (matched
	// case-insensitively; stored lower-case).
	Name string
	// Certificate is presented when a client asks for Name by SNI. Its leaf
	// must authenticate Name by a DNS-ID (RFC 6125; see VerifyDomain).
	Certificate tls.Certificate
	// BaseURL is the https URL the default directory's endpoint templates
	// are built on (DefaultDirectory); empty means "https://" + Name. Its
	// host must be Name or a subdomain of it.
	BaseURL string
	// Directory, if non-nil, is served instead of DefaultDirectory(BaseURL)
	// (draft-ralston-mimi-protocol-02, Section 5.1). Every endpoint URL must
	// be on Name or a subdomain of it.
	Directory *mimi.Directory
}

// ServerConfig configures NewServer (draft-ralston-mimi-protocol-02,
// Section 4.1).
type ServerConfig struct {
	// Domains are the provider domains served; at least one.
	Domains []Domain
	// ClientCAs are the trust anchors for peer providers' client
	// certificates (RFC 8446, Section 4.4.2.4). Required.
	ClientCAs *x509.CertPool
	// MaxBodyBytes caps request bodies (Authenticate); 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// OnRefuse, if non-nil, is called for every request Authenticate or
	// the directory handler refuses, with the status sent and the reason
	// (for logging and metrics). It must not write to the response.
	OnRefuse func(r *http.Request, status int, reason error)
	// RateLimit is the per-peer request rate limit of Authenticate; the
	// zero value applies DefaultRatePerSecond and DefaultRateBurst.
	RateLimit RateLimit
	// OnPeer, if non-nil, is called with the authenticated peer domain of
	// every request Authenticate lets through, before its body is read
	// (for example to retry deliveries to a peer that has just reached
	// us). It must not block.
	OnPeer func(domain string)
}

// Server holds the served domains, their certificates and directories, and
// the peer trust anchors; it builds the TLS configuration, the
// authentication middleware and the directory handler
// (draft-ralston-mimi-protocol-02, Sections 4.1 and 5.1). It is immutable
// after NewServer and safe for concurrent use.
type Server struct {
	domains  map[string]*servedDomain
	names    []string
	anchors  *x509.CertPool
	maxBody  int64
	onRefuse func(*http.Request, int, error)
	onPeer   func(string)
	limiter  *rateLimiter
}

type servedDomain struct {
	name    string
	cert    *tls.Certificate
	dirJSON []byte
}

// NewServer validates cfg and returns a Server. Each domain's certificate
// leaf must authenticate the domain (VerifyDomain) and its directory must
// pass mimi.ParseDirectory with every endpoint on the domain or a
// subdomain of it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("transport: server: no domains")
	}
	if cfg.ClientCAs == nil {
		return nil, errors.New("transport: server: no client certificate trust anchors")
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, errors.New("transport: server: negative MaxBodyBytes")
	}
	s := &Server{
		domains:  make(map[string]*servedDomain, len(cfg.Domains)),
		anchors:  cfg.ClientCAs,
		maxBody:  cfg.MaxBodyBytes,
		onRefuse: cfg.OnRefuse,
		onPeer:   cfg.OnPeer,
	}
	if s.maxBody == 0 {
		s.maxBody = DefaultMaxBodyBytes
	}
	lim, err := newRateLimiter(cfg.RateLimit)
	if err != nil {
		return nil, err
	}
	s.limiter = lim
	for _, d := range cfg.Domains {
		name, err := canonicalDomain(d.Name)
		if err != nil {
			return nil, fmt.Errorf("transport: server: domain %q: %w", d.Name, err)
		}
		if _, dup := s.domains[name]; dup {
			return nil, fmt.Errorf("transport: server: domain %q listed twice", name)
		}
		cert := d.Certificate
		leaf, err := leafOf(&cert)
		if err != nil {
			return nil, fmt.Errorf("transport: server: domain %q: %w", name, err)
		}
		if err := VerifyDomain(leaf, name); err != nil {
			return nil, fmt.Errorf("transport: server: domain %q: %w", name, err)
		}
		dir := d.Directory
		if dir == nil {
			base := d.BaseURL
			if base == "" {
				base = "https://" + name
			}
			dir = DefaultDirectory(base)
		}
		js, err := json.Marshal(dir)
		if err != nil {
			return nil, fmt.Errorf("transport: server: domain %q: directory: %w", name, err)
		}
		parsed, err := mimi.ParseDirectory(js)
		if err != nil {
			return nil, fmt.Errorf("transport: server: domain %q: %w", name, err)
		}
		if err := checkDirectoryHosts(parsed, name); err != nil {
			return nil, fmt.Errorf("transport: server: domain %q: %w", name, err)
		}
		s.domains[name] = &servedDomain{name: name, cert: &cert, dirJSON: js}
		s.names = append(s.names, name)
	}
	slices.Sort(s.names)
	return s, nil
}

// leafOf returns the parsed leaf of c, parsing it if c.Leaf is nil.
func leafOf(c *tls.Certificate) (*x509.Certificate, error) {
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	if len(c.Certificate) == 0 {
		return nil, errors.New("certificate has no chain")
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	c.Leaf = leaf
	return leaf, nil
}

// Domains returns the served domains, sorted.
func (s *Server) Domains() []string { return slices.Clone(s.names) }

// Serves reports whether domain (any case) is served
// (draft-ralston-mimi-protocol-02, Section 4.1, Host header).
func (s *Server) Serves(domain string) bool {
	_, ok := s.domains[asciiLower(domain)]
	return ok
}

// MaxBodyBytes returns the request body limit Authenticate enforces.
func (s *Server) MaxBodyBytes() int64 { return s.maxBody }

// TLSConfig returns a new TLS server configuration for mutually
// authenticated MIMI transport (draft-ralston-mimi-protocol-02, Section
// 4.1):
//
//   - MinVersion TLS 1.3 (see the package documentation);
//   - NextProtos "h2", "http/1.1" (HTTP/2 preferred);
//   - GetCertificate picks the served domain's certificate by SNI
//     (RFC 6066, Section 3); a handshake without SNI or for a domain not
//     served fails, since no certificate we hold authenticates it;
//   - ClientAuth tls.VerifyClientCertIfGiven against ClientCAs: a client
//     certificate is requested; one that is presented must chain to the
//     anchors with the clientAuth extended key usage or the handshake
//     fails; a missing one is reported by Authenticate as 401.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		NextProtos:     []string{"h2", "http/1.1"},
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      s.anchors,
		GetCertificate: s.getCertificate,
	}
}

func (s *Server) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		return nil, errors.New("transport: TLS client sent no server name")
	}
	d, ok := s.domains[asciiLower(hello.ServerName)]
	if !ok {
		return nil, fmt.Errorf("transport: TLS server name %q is not served", hello.ServerName)
	}
	return d.cert, nil
}

// HTTPServer returns an http.Server for handler with TLSConfig, HTTP/1.1
// and HTTP/2 enabled, and conservative limits (10 s to read request
// headers, 64 KiB of headers, 2 min idle). Start it with
// srv.ServeTLS(listener, "", "") or srv.ListenAndServeTLS("", "").
// Handler is typically a mux whose federation endpoints are wrapped in
// Authenticate (draft-ralston-mimi-protocol-02, Section 4.1).
func (s *Server) HTTPServer(handler http.Handler) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return &http.Server{
		Handler:           handler,
		TLSConfig:         s.TLSConfig(),
		Protocols:         p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// checkDirectoryHosts requires every endpoint template of d to be an https
// URL whose host is domain or a subdomain of it.
func checkDirectoryHosts(d *mimi.Directory, domain string) error {
	for _, e := range Endpoints {
		tmpl, _ := e.Template(d)
		if err := checkEndpointURL(expandPlaceholder(tmpl), domain); err != nil {
			return fmt.Errorf("directory %s %q: %w", e, clip(tmpl), err)
		}
	}
	return nil
}

// expandPlaceholder fills a template's placeholder with a dummy path so
// that it parses as a URL.
func expandPlaceholder(tmpl string) string {
	u := mimi.URI{Kind: mimi.KindRoom, Provider: "x.example", ID: "x"}
	return mimi.Expand(tmpl, u)
}

// checkEndpointURL requires raw to be an https URL on domain or one of its
// subdomains; the error wraps ErrForeignEndpoint.
func checkEndpointURL(raw, domain string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrForeignEndpoint, err)
	}
	if u.Scheme != "https" || u.User != nil {
		return fmt.Errorf("%w: not a plain https URL", ErrForeignEndpoint)
	}
	if h := asciiLower(u.Hostname()); !withinDomain(h, domain) {
		return fmt.Errorf("%w: host %q is not %s or a subdomain of it", ErrForeignEndpoint, clip(h), domain)
	}
	return nil
}
