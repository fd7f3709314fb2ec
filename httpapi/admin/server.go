package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/openmimi/mimi/gen/mimi/admin/v1/adminv1connect"
)

// Errors of NewServer.
var (
	// ErrNoCredential: neither a bearer token nor an admin CA is
	// configured. The admin API is never served without authentication.
	ErrNoCredential = errors.New("admin: no admin credential configured (need a bearer token and/or an admin client CA)")
	// ErrWeakToken: the bearer token is shorter than MinTokenLength.
	ErrWeakToken = errors.New("admin: bearer token too short")
	// ErrNoTLS: no server certificate is configured for the listener.
	ErrNoTLS = errors.New("admin: no TLS server certificate configured")
	// ErrNoService: ServerConfig.Service is nil.
	ErrNoService = errors.New("admin: no service")
)

// MinTokenLength is the minimum length of a configured bearer token.
const MinTokenLength = 16

// MaxRequestBytes bounds a request message.
const MaxRequestBytes = 1 << 20

// ServerConfig configures the admin API listener.
type ServerConfig struct {
	// Service answers the calls.
	Service *Service
	// Token, if set, is a bearer token that authenticates a caller
	// ("Authorization: Bearer <token>", RFC 6750, Section 2.1).
	Token string
	// ClientCAs, if set, is the admin CA: a client certificate that chains
	// to it (with the client-auth extended key usage) authenticates a
	// caller. The listener then asks every client for a certificate.
	ClientCAs *x509.CertPool
	// TLS carries the server certificate (Certificates or GetCertificate)
	// and is cloned; ClientAuth and ClientCAs are set from the fields
	// above. Required by Serve.
	TLS *tls.Config
	// AllowPlaintext lets Handler serve requests that did not arrive over
	// TLS (for a handler mounted behind a trusted local TLS terminator).
	// Bearer tokens then travel in the clear: leave it false.
	AllowPlaintext bool
	// Logger receives authentication failures (default: discard).
	Logger *slog.Logger
}

// Server serves the authenticated admin API.
type Server struct {
	svc       *Service
	tokenHash [sha256.Size]byte
	hasToken  bool
	hasCA     bool
	plaintext bool
	tlsConfig *tls.Config
	handler   http.Handler
	log       *slog.Logger

	mu     sync.Mutex
	srv    *http.Server
	closed bool
}

// NewServer checks cfg and builds the server. It fails with ErrNoCredential
// when neither Token nor ClientCAs is set, and with ErrNoTLS when no server
// certificate is configured.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Service == nil {
		return nil, ErrNoService
	}
	if cfg.Token == "" && cfg.ClientCAs == nil {
		return nil, ErrNoCredential
	}
	if cfg.Token != "" && len(cfg.Token) < MinTokenLength {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrWeakToken, len(cfg.Token), MinTokenLength)
	}
	if cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil && cfg.TLS.GetConfigForClient == nil) {
		return nil, ErrNoTLS
	}
	s := &Server{svc: cfg.Service, hasCA: cfg.ClientCAs != nil, plaintext: cfg.AllowPlaintext, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Token != "" {
		s.tokenHash, s.hasToken = sha256.Sum256([]byte(cfg.Token)), true
	}
	tc := cfg.TLS.Clone()
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	switch {
	case s.hasCA && s.hasToken:
		// Token-only clients must still be able to connect.
		tc.ClientCAs, tc.ClientAuth = cfg.ClientCAs, tls.VerifyClientCertIfGiven
	case s.hasCA:
		tc.ClientCAs, tc.ClientAuth = cfg.ClientCAs, tls.RequireAndVerifyClientCert
	default:
		tc.ClientCAs, tc.ClientAuth = nil, tls.NoClientCert
	}
	s.tlsConfig = tc
	path, h := adminv1connect.NewAdminServiceHandler(s.svc,
		connect.WithReadMaxBytes(MaxRequestBytes),
		// A bug must not take the node down: report it as an internal
		// error (the stored bytes this API decodes may be corrupted).
		connect.WithRecover(func(_ context.Context, spec connect.Spec, _ http.Header, p any) error {
			s.log.Error("admin: panic in handler", "procedure", spec.Procedure, "panic", p)
			return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error in %s", spec.Procedure))
		}))
	mux := http.NewServeMux()
	mux.Handle(path, h)
	s.handler = s.authenticate(mux)
	return s, nil
}

// Handler returns the authenticated Connect handler (for mounting on a
// server the caller runs with TLSConfig).
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig returns the listener's TLS configuration (server certificate
// and, with an admin CA, client certificate verification).
func (s *Server) TLSConfig() *tls.Config { return s.tlsConfig.Clone() }

// authenticate rejects every request without a valid admin credential with
// connect.CodeUnauthenticated, in the caller's protocol (Connect, gRPC or
// gRPC-Web).
func (s *Server) authenticate(next http.Handler) http.Handler {
	ew := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		how, err := s.check(r)
		if err != nil {
			s.log.Warn("admin: unauthenticated request", "peer", r.RemoteAddr, "path", r.URL.Path, "err", err)
			_ = ew.Write(w, r, connect.NewError(connect.CodeUnauthenticated, err))
			return
		}
		s.log.Debug("admin: authenticated request", "peer", r.RemoteAddr, "path", r.URL.Path, "by", how)
		next.ServeHTTP(w, r)
	})
}

// check returns how r authenticated, or why it did not.
func (s *Server) check(r *http.Request) (string, error) {
	if r.TLS == nil && !s.plaintext {
		return "", errors.New("the admin API requires TLS")
	}
	// A client certificate counts only if it verified against the admin
	// CA during the handshake.
	if s.hasCA && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return "certificate", nil
	}
	if s.hasToken {
		auth := r.Header.Get("Authorization")
		scheme, tok, ok := strings.Cut(auth, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
			// Comparing fixed-size hashes in constant time leaks neither
			// the token's content nor its length.
			if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1 {
				return "token", nil
			}
			return "", errors.New("invalid admin credential")
		}
	}
	return "", errors.New("admin credential required")
}

// Serve serves the admin API with TLS on ln until Shutdown. It returns
// http.ErrServerClosed after Shutdown (at once, closing ln, if Shutdown
// came first). A Server serves one listener.
func (s *Server) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.tlsConfig.Clone(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	case s.srv != nil:
		s.mu.Unlock()
		return errors.New("admin: server already serving")
	}
	s.srv = srv
	s.mu.Unlock()
	return srv.ServeTLS(ln, "", "")
}

// ListenAndServe listens on addr (TCP) and calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin: listen %s: %w", addr, err)
	}
	return s.Serve(ln)
}

// Shutdown ends following streams, stops accepting connections and waits
// for in-flight calls until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.svc.Close()
	s.mu.Lock()
	srv := s.srv
	s.closed = true
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}
