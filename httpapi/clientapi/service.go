package clientapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/openmimi/mimi/client/remote/clientauth"
	clientv1 "github.com/openmimi/mimi/gen/mimi/client/v1"
	"github.com/openmimi/mimi/gen/mimi/client/v1/clientv1connect"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
)

// Defaults of Config (choices draft-ralston-mimi-protocol-02, Section 3
// leaves to the provider).
const (
	// DefaultMaxClockSkew is the accepted difference between a call's
	// timestamp and the provider's clock.
	DefaultMaxClockSkew = 2 * time.Minute
	// DefaultReplayCacheSize bounds the replay cache (about 100 bytes an
	// entry).
	DefaultReplayCacheSize = 1 << 18
	// DefaultMaxRequestBytes bounds a request message: an Update carries a
	// Commit, a Welcome, a GroupInfo and the full ratchet tree. It is
	// above the federation's 4 MiB body limit (httpapi/transport), which a
	// relayed update must also fit.
	DefaultMaxRequestBytes = 8 << 20
	// DefaultPollInterval bounds how long a following Inbox stream waits
	// before reading the inbox again without a wake-up.
	DefaultPollInterval = 500 * time.Millisecond
	// DefaultHeartbeatInterval is how long a following Inbox stream stays
	// silent before it sends a heartbeat.
	DefaultHeartbeatInterval = 15 * time.Second
	// MaxKeyPackages bounds one UploadKeyPackages call (as the SDK's
	// client.MaxKeyPackages).
	MaxKeyPackages = 1000
	// inboxPage is how many entries Inbox reads from the provider at once.
	inboxPage = 128
)

// ErrNoProvider: New was given no provider (the draft-ralston-mimi-protocol-02
// provider whose client API this is).
var ErrNoProvider = errors.New("clientapi: no provider")

// AppliedWaiter wakes following Inbox streams when the replicated log
// applies commands (which is when deliveries reach a client's inbox,
// draft-ralston-mimi-protocol-02, Section 5.5). *raftnode.Node implements
// it.
type AppliedWaiter interface {
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
}

// RegistrationRequest is what a RegistrationPolicy decides on: a client
// (device) of a user of this provider (draft-ralston-mimi-protocol-02,
// Section 3) asking to register, having proved possession of SignatureKey.
type RegistrationRequest struct {
	// Identity is the client identity in Credential (docs/wire.md).
	Identity mimi.ClientIdentity
	// Credential is the MLS credential (RFC 9420, Section 5.3).
	Credential wire.Credential
	// SignatureKey is the key being registered, and Suite the cipher
	// suite the registration call was signed with.
	SignatureKey []byte
	Suite        cipher.SuiteID
	// RegisteredKey is the client's currently registered key, nil for a
	// new client. When set and different from SignatureKey, the call
	// replaces an existing device's key (a device that lost its state, or
	// someone taking the client URI over): decide with care.
	RegisteredKey []byte
	// Header holds the request's HTTP header fields, where an account
	// system's credentials (a session token) travel.
	Header http.Header
	// Peer is the network peer.
	Peer connect.Peer
}

// RegistrationPolicy decides whether a registration may proceed
// (draft-ralston-mimi-protocol-02 leaves accounts to providers). It returns
// nil to allow; an error refuses with connect.CodePermissionDenied, unless
// it is a *connect.Error, which is returned as it is (for example
// CodeUnauthenticated when the account session is missing).
type RegistrationPolicy func(ctx context.Context, req *RegistrationRequest) error

// AllowAllRegistrations is the development registration policy: every
// client of every user of the provider's domain may register, and may
// replace the key of an existing client (draft-ralston-mimi-protocol-02,
// Section 3 leaves accounts to providers). Production deployments must plug
// in their account system instead.
func AllowAllRegistrations(context.Context, *RegistrationRequest) error { return nil }

// Config configures a Service, the client-to-provider API of
// draft-ralston-mimi-protocol-02, Section 3. The zero value is usable for
// development (AllowAllRegistrations).
type Config struct {
	// Registration decides registrations (default AllowAllRegistrations,
	// for development only).
	Registration RegistrationPolicy
	// MaxClockSkew is the accepted difference between a call's timestamp
	// and Clock (default DefaultMaxClockSkew). Replays are detected within
	// it.
	MaxClockSkew time.Duration
	// ReplayCacheSize bounds the replay cache (default
	// DefaultReplayCacheSize).
	ReplayCacheSize int
	// MaxRequestBytes bounds a request message (default
	// DefaultMaxRequestBytes).
	MaxRequestBytes int
	// Applied wakes following Inbox streams (the provider's Raft node);
	// nil makes them poll every PollInterval.
	Applied AppliedWaiter
	// PollInterval and HeartbeatInterval tune following Inbox streams
	// (defaults DefaultPollInterval and DefaultHeartbeatInterval).
	PollInterval      time.Duration
	HeartbeatInterval time.Duration
	// AllowPlaintext serves requests that did not arrive over TLS (for a
	// handler behind a trusted TLS-terminating proxy). Leave it false.
	AllowPlaintext bool
	// Clock is the clock timestamps are checked against (default
	// time.Now).
	Clock func() time.Time
	// Logger receives diagnostics (default: discard).
	Logger *slog.Logger
}

// Service implements clientv1connect.ClientServiceHandler over a
// provider.Provider: the client-to-provider steps of
// draft-ralston-mimi-protocol-02, Section 3; see the package documentation.
type Service struct {
	p      *provider.Provider
	cfg    Config
	log    *slog.Logger
	replay *replayCache

	// ctx ends when the service is closed, which ends following streams.
	ctx    context.Context
	cancel context.CancelFunc
}

var _ clientv1connect.ClientServiceHandler = (*Service)(nil)

// New returns the client API of provider p (draft-ralston-mimi-protocol-02,
// Section 3's client-to-provider steps).
func New(p *provider.Provider, cfg Config) (*Service, error) {
	if p == nil {
		return nil, ErrNoProvider
	}
	devPolicy := cfg.Registration == nil
	if devPolicy {
		cfg.Registration = AllowAllRegistrations
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = DefaultMaxClockSkew
	}
	if cfg.ReplayCacheSize <= 0 {
		cfg.ReplayCacheSize = DefaultReplayCacheSize
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &Service{p: p, cfg: cfg, log: cfg.Logger, replay: newReplayCache(cfg.ReplayCacheSize)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if devPolicy {
		s.log.Warn("clientapi: no registration policy configured: every client of every user may register (development only)")
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// NewHandler returns the path prefix and the HTTP handler of the client
// API of provider p, for mounting on a TLS server (see TLSConfig). With a
// nil provider every call fails with connect.CodeInternal. Use New and
// Service.Handler to be able to Close the service.
func NewHandler(p *provider.Provider, cfg Config) (string, http.Handler) {
	s, err := New(p, cfg)
	if err != nil {
		ew := connect.NewErrorWriter()
		return "/" + clientv1connect.ClientServiceName + "/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = ew.Write(w, r, connect.NewError(connect.CodeInternal, err))
		})
	}
	return s.Handler()
}

// Handler returns the path prefix and the HTTP handler serving the
// service (draft-ralston-mimi-protocol-02, Section 3's client-to-provider
// steps): the Connect, gRPC and gRPC-Web protocols, behind the checks
// done before a request body is read (TLS, a fresh and well-formed
// Mimi-Client-Auth header, a registered client).
func (s *Service) Handler() (string, http.Handler) {
	path, h := clientv1connect.NewClientServiceHandler(s,
		connect.WithReadMaxBytes(s.cfg.MaxRequestBytes),
		connect.WithRecover(func(_ context.Context, spec connect.Spec, _ http.Header, p any) error {
			s.log.Error("clientapi: panic in handler", "procedure", spec.Procedure, "panic", p)
			return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error in %s", spec.Procedure))
		}))
	return path, s.precheck(h)
}

// Close ends every following Inbox stream (draft-ralston-mimi-protocol-02,
// Section 5.5 as delivered to clients); later calls still work but do not
// follow.
func (s *Service) Close() { s.cancel() }

// TLSConfig returns a server TLS configuration for the client API
// (draft-ralston-mimi-protocol-02, Section 3) with the given certificates (server authentication only: clients authenticate
// with their MLS signature keys, not certificates). It requires TLS 1.2 or
// later (RFC 9325) and offers HTTP/2.
func TLSConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: certs,
		NextProtos:   []string{"h2", "http/1.1"},
		ClientAuth:   tls.NoClientCert,
	}
}

// invalid is a connect.CodeInvalidArgument error for an undecodable field.
func invalid(what string, err error) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %w", what, err))
}

// providerError maps an error of package provider to a Connect error.
func (s *Service) providerError(op string, err error) error {
	var code connect.Code
	switch {
	case errors.Is(err, context.Canceled):
		code = connect.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		code = connect.CodeDeadlineExceeded
	case errors.Is(err, provider.ErrInvalid):
		code = connect.CodeInvalidArgument
	case errors.Is(err, provider.ErrNoSuchRoom), errors.Is(err, provider.ErrUnknownClient):
		code = connect.CodeNotFound
	case errors.Is(err, provider.ErrForbidden):
		code = connect.CodePermissionDenied
	case errors.Is(err, provider.ErrUnavailable), errors.Is(err, provider.ErrPeer):
		code = connect.CodeUnavailable
	default:
		s.log.Error("clientapi: provider failure", "op", op, "err", err)
		return connect.NewError(connect.CodeInternal, fmt.Errorf("%s: internal error", op))
	}
	return connect.NewError(code, fmt.Errorf("%s: %w", op, err))
}

// encoded encodes a response body.
func (s *Service) encoded(op string, m codec.Marshaler) ([]byte, error) {
	b, err := mimi.Encode(m)
	if err != nil {
		s.log.Error("clientapi: encoding a response", "op", op, "err", err)
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("%s: encoding the response", op))
	}
	return b, nil
}

// RegisterClient implements ClientService.RegisterClient: proof of
// possession of the key being registered (the call is signed with it by the
// credential's client), the registration policy, then
// provider.RegisterClient (draft-ralston-mimi-protocol-02, Section 3).
func (s *Service) RegisterClient(ctx context.Context, req *connect.Request[clientv1.RegisterClientRequest]) (*connect.Response[clientv1.RegisterClientResponse], error) {
	var cred wire.Credential
	if err := cred.UnmarshalBinary(req.Msg.GetCredential()); err != nil {
		return nil, invalid("credential", err)
	}
	id, err := mimi.IdentityFromCredential(&cred)
	if err != nil {
		return nil, invalid("credential", err)
	}
	key := req.Msg.GetSignatureKey()
	a, _, err := s.verify(req.Spec().Procedure, req.Header(), req.Msg, func(a *clientauth.Auth) ([]byte, error) {
		if a.Client != id.Client {
			return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("the call is signed for %s, the credential names %s", a.Client, id.Client))
		}
		return key, nil
	})
	if err != nil {
		s.log.Debug("clientapi: unauthenticated registration", "client", id.Client, "err", err)
		return nil, err
	}
	rr := &RegistrationRequest{Identity: *id, Credential: cred, SignatureKey: bytes.Clone(key), Suite: a.Suite, Header: req.Header().Clone(), Peer: req.Peer()}
	rec, err := s.p.Machine().Client(id.Client)
	if err == nil {
		rr.RegisteredKey = rec.SignatureKey
	}
	if err := s.cfg.Registration(ctx, rr); err != nil {
		s.log.Info("clientapi: registration refused", "client", id.Client, "user", id.User, "err", err)
		if ce := new(connect.Error); errors.As(err, &ce) {
			return nil, ce
		}
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("registration refused: %w", err))
	}
	got, err := s.p.RegisterClient(ctx, cred, key)
	if err != nil {
		return nil, s.providerError("register client", err)
	}
	s.log.Info("clientapi: client registered", "client", got.Client, "user", got.User, "replaced_key", rr.RegisteredKey != nil && !bytes.Equal(rr.RegisteredKey, key))
	return connect.NewResponse(&clientv1.RegisterClientResponse{User: got.User, Client: got.Client}), nil
}

// UploadKeyPackages implements ClientService.UploadKeyPackages
// (draft-ralston-mimi-protocol-02, Section 4.3.1).
func (s *Service) UploadKeyPackages(ctx context.Context, req *connect.Request[clientv1.UploadKeyPackagesRequest]) (*connect.Response[clientv1.UploadKeyPackagesResponse], error) {
	c, err := s.authenticate(req.Spec(), req.Header(), req.Msg)
	if err != nil {
		return nil, err
	}
	raw := req.Msg.GetKeyPackages()
	if len(raw) == 0 || len(raw) > MaxKeyPackages {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%d KeyPackages, want 1 to %d", len(raw), MaxKeyPackages))
	}
	kps := make([]*wire.KeyPackage, len(raw))
	for i, b := range raw {
		kp, err := wire.UnmarshalKeyPackage(b)
		if err != nil {
			return nil, invalid(fmt.Sprintf("KeyPackage %d", i), err)
		}
		kps[i] = kp
	}
	refs, err := s.p.UploadKeyPackages(ctx, c.Client, kps)
	if err != nil {
		return nil, s.providerError("upload KeyPackages", err)
	}
	return connect.NewResponse(&clientv1.UploadKeyPackagesResponse{KeyPackageRefs: refs}), nil
}

// KeyMaterial implements ClientService.KeyMaterial
// (draft-ralston-mimi-protocol-02, Section 5.2). The requesting user must be
// the client's.
func (s *Service) KeyMaterial(ctx context.Context, req *connect.Request[clientv1.KeyMaterialRequest]) (*connect.Response[clientv1.KeyMaterialResponse], error) {
	c, call, err := s.authenticateCall(req.Spec(), req.Header(), req.Msg)
	if err != nil {
		return nil, err
	}
	var body mimi.KeyMaterialRequest
	if err := mimi.Decode(req.Msg.GetBody(), "KeyMaterialRequest", &body); err != nil {
		return nil, invalid("KeyMaterialRequest", err)
	}
	if body.RequestingUser != c.User {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("requesting user %s is not the client's user %s", body.RequestingUser, c.User))
	}
	// A replay claims KeyPackages: the call is recorded in the replicated
	// log, so that it is refused on every node of the provider.
	if err := s.p.RecordClientCall(ctx, call.digest, call.expiry); err != nil {
		if errors.Is(err, projections.ErrReplayedCall) {
			return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w: %w", ErrReplay, err))
		}
		return nil, s.providerError("key material", err)
	}
	resp, err := s.p.LocalKeyMaterial(ctx, c.Client, &body)
	if err != nil {
		return nil, s.providerError("key material", err)
	}
	b, err := s.encoded("key material", resp)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&clientv1.KeyMaterialResponse{Body: b}), nil
}

// CreateRoom implements ClientService.CreateRoom
// (draft-ralston-mimi-protocol-02, Section 3.1).
func (s *Service) CreateRoom(ctx context.Context, req *connect.Request[clientv1.CreateRoomRequest]) (*connect.Response[clientv1.CreateRoomResponse], error) {
	c, err := s.authenticate(req.Spec(), req.Header(), req.Msg)
	if err != nil {
		return nil, err
	}
	gi, err := wire.UnmarshalGroupInfo(req.Msg.GetGroupInfo())
	if err != nil {
		return nil, invalid("GroupInfo", err)
	}
	var tree wire.RatchetTree
	if err := codec.Unmarshal(req.Msg.GetRatchetTree(), "ratchet_tree", &tree); err != nil {
		return nil, invalid("ratchet tree", err)
	}
	if err := s.p.CreateRoom(ctx, c.Client, req.Msg.GetRoom(), gi, tree); err != nil {
		return nil, s.providerError("create room", err)
	}
	return connect.NewResponse(&clientv1.CreateRoomResponse{}), nil
}

// Update implements ClientService.Update (draft-ralston-mimi-protocol-02,
// Section 5.3).
func (s *Service) Update(ctx context.Context, req *connect.Request[clientv1.UpdateRequest]) (*connect.Response[clientv1.UpdateResponse], error) {
	c, err := s.authenticate(req.Spec(), req.Header(), req.Msg)
	if err != nil {
		return nil, err
	}
	var body mimi.UpdateRequest
	if err := mimi.Decode(req.Msg.GetBody(), "UpdateRequest", &body); err != nil {
		return nil, invalid("UpdateRequest", err)
	}
	resp, err := s.p.LocalUpdate(ctx, c.Client, req.Msg.GetRoom(), &body)
	if err != nil {
		return nil, s.providerError("update", err)
	}
	b, err := s.encoded("update", resp)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&clientv1.UpdateResponse{Body: b}), nil
}

// SubmitMessage implements ClientService.SubmitMessage
// (draft-ralston-mimi-protocol-02, Section 5.4).
func (s *Service) SubmitMessage(ctx context.Context, req *connect.Request[clientv1.SubmitMessageRequest]) (*connect.Response[clientv1.SubmitMessageResponse], error) {
	c, err := s.authenticate(req.Spec(), req.Header(), req.Msg)
	if err != nil {
		return nil, err
	}
	var body mimi.SubmitMessageRequest
	if err := mimi.Decode(req.Msg.GetBody(), "SubmitMessageRequest", &body); err != nil {
		return nil, invalid("SubmitMessageRequest", err)
	}
	resp, err := s.p.LocalSubmitMessage(ctx, c.Client, req.Msg.GetRoom(), &body)
	if err != nil {
		return nil, s.providerError("submit message", err)
	}
	b, err := s.encoded("submit message", resp)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&clientv1.SubmitMessageResponse{Body: b}), nil
}

// GroupInfo implements ClientService.GroupInfo
// (draft-ralston-mimi-protocol-02, Section 5.6). The request's credential
// must carry the client's identity and its key be the registered one: a
// client asks only in its own name.
func (s *Service) GroupInfo(ctx context.Context, req *connect.Request[clientv1.GroupInfoRequest]) (*connect.Response[clientv1.GroupInfoResponse], error) {
	c, err := s.authenticate(req.Spec(), req.Header(), req.Msg)
	if err != nil {
		return nil, err
	}
	var body mimi.GroupInfoRequest
	if err := mimi.Decode(req.Msg.GetBody(), "GroupInfoRequest", &body); err != nil {
		return nil, invalid("GroupInfoRequest", err)
	}
	id, err := mimi.IdentityFromCredential(&body.RequestingCredential)
	if err != nil {
		return nil, invalid("GroupInfoRequest credential", err)
	}
	if id.Client != c.Client || !bytes.Equal(body.RequestingSignatureKey, c.SignatureKey) {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("the GroupInfoRequest is not %s's own (credential of %s or another key)", c.Client, id.Client))
	}
	resp, err := s.p.LocalGroupInfo(ctx, c.Client, req.Msg.GetRoom(), &body)
	if err != nil {
		return nil, s.providerError("group info", err)
	}
	b, err := s.encoded("group info", resp)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&clientv1.GroupInfoResponse{Body: b}), nil
}

// Ack implements ClientService.Ack (draft-ralston-mimi-protocol-02, Section
// 5.5 as delivered to a client).
func (s *Service) Ack(ctx context.Context, req *connect.Request[clientv1.AckRequest]) (*connect.Response[clientv1.AckResponse], error) {
	c, err := s.authenticate(req.Spec(), req.Header(), req.Msg)
	if err != nil {
		return nil, err
	}
	if err := s.p.Ack(ctx, c.Client, req.Msg.GetUpTo()); err != nil {
		return nil, s.providerError("ack", err)
	}
	return connect.NewResponse(&clientv1.AckResponse{}), nil
}

// HubSender implements ClientService.HubSender
// (draft-ralston-mimi-protocol-02, Section 6.4): the room must be hosted by
// this provider (NotFound otherwise); it need not exist yet, since a
// creator needs the entry to create the room's group.
func (s *Service) HubSender(_ context.Context, req *connect.Request[clientv1.HubSenderRequest]) (*connect.Response[clientv1.HubSenderResponse], error) {
	if _, err := s.authenticate(req.Spec(), req.Header(), req.Msg); err != nil {
		return nil, err
	}
	u, err := mimi.ParseURIKind(req.Msg.GetRoom(), mimi.KindRoom)
	if err != nil {
		return nil, invalid("room", err)
	}
	if u.Provider != s.p.Domain() {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("room %s is not hosted at %s", req.Msg.GetRoom(), s.p.Domain()))
	}
	hs := s.p.HubSender()
	b, err := s.encoded("hub sender", &hs)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&clientv1.HubSenderResponse{ExternalSender: b}), nil
}
