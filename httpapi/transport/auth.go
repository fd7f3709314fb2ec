package transport

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// Sentinel errors for the refusals of Authenticate (draft-ralston-mimi-
// protocol-02, Section 4.1). They are passed to ServerConfig.OnRefuse,
// wrapped with detail.
var (
	// ErrNoClientCertificate: no verified client certificate (401).
	ErrNoClientCertificate = errors.New("transport: no verified client certificate")
	// ErrMisdirected: the Host header is not a domain this server serves,
	// or not the domain the TLS connection was made for (421).
	ErrMisdirected = errors.New("transport: misdirected request")
	// ErrBadFrom: the From header is missing, repeated or not exactly
	// "mimi@<domain>" (400).
	ErrBadFrom = errors.New("transport: bad From header")
	// ErrBodyTooLarge: the request body exceeds the limit (413).
	ErrBodyTooLarge = errors.New("transport: request body too large")
)

// FromLocalPart is the fixed local-part of the From header
// (draft-ralston-mimi-protocol-02, Section 4.1).
const FromLocalPart = "mimi"

// FromHeader returns the From header value naming source as the source
// provider: "mimi@" + source (draft-ralston-mimi-protocol-02, Section 4.1).
func FromHeader(source string) string { return FromLocalPart + "@" + source }

// ParseFrom parses a From header value that must be exactly the addr-spec
// "mimi@<domain>" (draft-ralston-mimi-protocol-02, Section 4.1: the mailbox
// uses the addr-spec form and its local-part is the fixed string "mimi").
// The local-part is compared exactly; the domain is lower-cased (ASCII) and
// must pass mimi.ValidateDomain with a top-level label that is not all
// digits (RFC 3696, Section 2). Display names, angle brackets, comments,
// quoted local-parts, address lists, domain literals and surrounding
// whitespace are all rejected. The returned domain is lower-case. Errors
// wrap ErrBadFrom.
func ParseFrom(v string) (string, error) {
	local, domain, ok := strings.Cut(v, "@")
	if !ok || local != FromLocalPart {
		return "", fmt.Errorf("%w: %q is not mimi@<domain>", ErrBadFrom, clip(v))
	}
	d, err := canonicalDomain(domain)
	if err != nil {
		return "", fmt.Errorf("%w: %q: domain: %w", ErrBadFrom, clip(v), err)
	}
	return d, nil
}

// Peer is the authenticated source provider of a request
// (draft-ralston-mimi-protocol-02, Section 4.1): the domain named by the
// From header and the verified client certificate that authenticates it
// (RFC 6125).
type Peer struct {
	// Domain is the source provider domain, lower-case.
	Domain string
	// Certificate is the verified client certificate leaf.
	Certificate *x509.Certificate
}

type ctxKey struct{}

type ctxValue struct {
	peer   Peer
	target string
}

// NewContext returns a copy of ctx carrying peer and the target domain, as
// Authenticate stores them. It lets in-process callers and handler tests
// supply an already authenticated peer.
func NewContext(ctx context.Context, peer Peer, target string) context.Context {
	return context.WithValue(ctx, ctxKey{}, ctxValue{peer: peer, target: target})
}

// PeerFromContext returns the authenticated source provider stored by
// Authenticate (draft-ralston-mimi-protocol-02, Section 4.1).
func PeerFromContext(ctx context.Context) (Peer, bool) {
	v, ok := ctx.Value(ctxKey{}).(ctxValue)
	return v.peer, ok
}

// TargetFromContext returns the target provider domain (from the Host
// header, lower-case, without port) stored by Authenticate
// (draft-ralston-mimi-protocol-02, Section 4.1).
func TargetFromContext(ctx context.Context) (string, bool) {
	v, ok := ctx.Value(ctxKey{}).(ctxValue)
	return v.target, ok
}

// Authenticate wraps next with the source and target checks of
// draft-ralston-mimi-protocol-02, Section 4.1. It runs before anything reads
// the request body and refuses, with a short text/plain reason:
//
//   - 401 Unauthorized if the connection has no verified client certificate
//     (with "WWW-Authenticate: MutualTLS", since RFC 9110, Section 15.5.2
//     requires a challenge; the scheme is not registered and is
//     informative only);
//   - 421 Misdirected Request if the Host header, port ignored, is not a
//     served domain or differs from the connection's TLS server name
//     (RFC 9110, Section 15.5.20);
//   - 400 Bad Request if there is not exactly one From header or it is not
//     exactly "mimi@<domain>" (ParseFrom);
//   - 403 Forbidden if the client certificate does not authenticate the
//     From domain by a DNS-ID (RFC 6125, Section 6.4; VerifyDomain);
//   - 429 Too Many Requests with Retry-After if the authenticated peer
//     domain exceeded its rate (ServerConfig.RateLimit; RFC 6585,
//     Section 4);
//   - 413 Content Too Large if Content-Length exceeds MaxBodyBytes.
//
// Otherwise it caps the body with http.MaxBytesReader at MaxBodyBytes (so a
// body without Content-Length that runs over fails to read with
// *http.MaxBytesError; ReadBody turns that into 413), calls
// ServerConfig.OnPeer, and calls next with the Peer and target domain in
// the request context.
func (s *Server) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			w.Header().Set("WWW-Authenticate", "MutualTLS")
			s.refuse(w, r, http.StatusUnauthorized, ErrNoClientCertificate, "client certificate required")
			return
		}
		leaf := r.TLS.VerifiedChains[0][0]
		target, err := s.target(r)
		if err != nil {
			s.refuse(w, r, http.StatusMisdirectedRequest, err, "Host is not served on this connection")
			return
		}
		from := r.Header.Values("From")
		if len(from) != 1 {
			s.refuse(w, r, http.StatusBadRequest, fmt.Errorf("%w: %d From headers", ErrBadFrom, len(from)),
				"exactly one From header mimi@<domain> required")
			return
		}
		source, err := ParseFrom(from[0])
		if err != nil {
			s.refuse(w, r, http.StatusBadRequest, err, "From must be mimi@<domain>")
			return
		}
		if err := VerifyDomain(leaf, source); err != nil {
			s.refuse(w, r, http.StatusForbidden, err, "client certificate does not authenticate the From domain")
			return
		}
		if !s.limit(w, r, source) {
			return
		}
		if r.ContentLength > s.maxBody {
			s.refuse(w, r, http.StatusRequestEntityTooLarge,
				fmt.Errorf("%w: Content-Length %d > %d", ErrBodyTooLarge, r.ContentLength, s.maxBody),
				"request body too large")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		if s.onPeer != nil {
			s.onPeer(source)
		}
		ctx := NewContext(r.Context(), Peer{Domain: source, Certificate: leaf}, target)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// target returns the served domain named by r's Host header (port ignored,
// draft-ralston-mimi-protocol-02, Section 4.1), which must also be the TLS
// server name when r arrived over TLS. Errors wrap ErrMisdirected.
func (s *Server) target(r *http.Request) (string, error) {
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		h, port, err := net.SplitHostPort(host)
		if err != nil || !allDigits(port) {
			return "", fmt.Errorf("%w: malformed Host %q", ErrMisdirected, clip(host))
		}
		host = h
	}
	d := asciiLower(host)
	if _, ok := s.domains[d]; !ok {
		return "", fmt.Errorf("%w: Host %q is not served", ErrMisdirected, clip(r.Host))
	}
	if r.TLS != nil && asciiLower(r.TLS.ServerName) != d {
		return "", fmt.Errorf("%w: Host %q differs from TLS server name %q", ErrMisdirected, clip(r.Host), clip(r.TLS.ServerName))
	}
	return d, nil
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, reason error, msg string) {
	if s.onRefuse != nil {
		s.onRefuse(r, status, reason)
	}
	http.Error(w, "mimi: "+msg, status)
}

// ReadBody reads the whole body of a request that passed Authenticate. If
// the body exceeds the limit it writes 413 Content Too Large and returns an
// error wrapping ErrBodyTooLarge; on any other read error it writes 400 and
// returns the error. On error the caller must not write a response.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := readAll(r.Body, r.ContentLength)
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "mimi: request body too large", http.StatusRequestEntityTooLarge)
			return nil, fmt.Errorf("%w: over %d bytes", ErrBodyTooLarge, mbe.Limit)
		}
		http.Error(w, "mimi: cannot read request body", http.StatusBadRequest)
		return nil, fmt.Errorf("transport: read request body: %w", err)
	}
	return b, nil
}

// maxPresize bounds the buffer ReadBody allocates on the strength of a
// declared Content-Length, which is the peer's claim: a larger body grows
// the buffer as it arrives, within the MaxBytesReader limit.
const maxPresize = 256 << 10

// readAll reads r to EOF into a buffer sized from the declared length
// (-1 if unknown), so that a body of the declared length is read without
// regrowing the buffer and in as few Reads as the stream allows.
func readAll(r io.Reader, declared int64) ([]byte, error) {
	n := 512
	if declared >= 0 {
		// One spare byte lets the final Read see EOF without growing.
		n = int(min(declared, maxPresize)) + 1
	}
	b := make([]byte, 0, n)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// clip bounds hostile strings quoted in errors.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
