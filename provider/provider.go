package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// Errors the provider's operations return (wrapped, with context). The
// federation layer maps each to an HTTP status; callers branch on them with
// errors.Is. A rejection that the draft expresses as a response code
// (wrongEpoch, notAllowed, userUnknown, ...) is a response, not an error.
var (
	// ErrNoSuchRoom: the room is not hosted here, or (for /notify) not a
	// room this provider follows (draft-ralston-mimi-protocol-02,
	// Sections 5.3-5.6).
	ErrNoSuchRoom = errors.New("provider: no such room")
	// ErrForbidden: the peer may not make this request: a /notify not from
	// the room's hub (Section 5.5), a /keyMaterial for which we are neither
	// the target's provider nor the room's hub (Section 5.2), a peer
	// speaking for another provider's user or client.
	ErrForbidden = errors.New("provider: forbidden")
	// ErrInvalid: the request is well-formed but inconsistent (a body that
	// contradicts the path, a local operation with invalid MLS objects).
	ErrInvalid = errors.New("provider: invalid request")
	// ErrUnknownClient: a local operation names a client that is not
	// registered here.
	ErrUnknownClient = errors.New("provider: unknown client")
	// ErrUnavailable: the replicated log could not take the command (no
	// leader, storage failure, too much contention); the request may be
	// retried.
	ErrUnavailable = errors.New("provider: temporarily unavailable")
	// ErrPeer: a peer provider failed or answered with something invalid.
	ErrPeer = errors.New("provider: peer provider failure")
)

// MalformedError reports a request body that does not decode as the
// draft's TLS structure (draft-ralston-mimi-protocol-02, Section 5). It
// matches ErrInvalid with errors.Is.
type MalformedError struct {
	What string // the structure, e.g. "FanoutMessage"
	Err  error  // the decoding error
}

// Error implements error.
func (e *MalformedError) Error() string { return "malformed " + e.What + ": " + e.Err.Error() }

// Unwrap returns the decoding error.
func (e *MalformedError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *MalformedError) Is(target error) bool { return target == ErrInvalid }

// Raft is the replication API the provider needs: *raftnode.Node with
// result type projections.Result satisfies it. Apply proposes a projections
// command and returns the state machine's result; ReadBarrier makes the
// local projections reflect every command committed before the call.
type Raft interface {
	Apply(ctx context.Context, cmd []byte) (projections.Result, error)
	ReadBarrier(ctx context.Context) error
}

// Remote reaches peer providers' federation endpoints
// (draft-ralston-mimi-protocol-02, Section 5). Package httpapi/federation
// implements it over mutually authenticated HTTPS; tests may connect
// providers directly. target is the peer's domain; room IDs and user IDs
// are MIMI URIs. A non-nil error means no valid response was obtained;
// errors should wrap ErrNoSuchRoom or ErrForbidden when the peer said so.
type Remote interface {
	KeyMaterial(ctx context.Context, target string, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error)
	Update(ctx context.Context, hub, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error)
	SubmitMessage(ctx context.Context, hub, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error)
	GroupInfo(ctx context.Context, hub, room string, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error)
}

// ConsentFunc decides whether peer may claim key material of the target
// user for the room in req (draft-ralston-mimi-protocol-02, Section 5.2 and
// Section 1.1 "Consent"). It returns mimi.UserSuccess to allow, or the user
// code to answer with: UserNoConsent, UserNoConsentForThisRoom,
// UserDeleted or UserUnknown. peer is our own domain for local requests.
type ConsentFunc func(ctx context.Context, peer string, req *mimi.KeyMaterialRequest) mimi.KeyMaterialUserCode

// Config configures a Provider.
type Config struct {
	// Domain is the provider's domain (draft-ralston-mimi-protocol-02,
	// Section 3), e.g. "a.example".
	Domain string
	// Raft replicates commands to Machine (required).
	Raft Raft
	// Machine is the projections state machine Raft applies to; the
	// provider reads it (required).
	Machine *projections.Machine
	// Remote reaches peer providers; nil means no federation (requests
	// that need a peer fail with ErrPeer).
	Remote Remote
	// HubSignaturePriv and HubSender are the hub's signature key pair and
	// its external_senders entry (RFC 9420, Section 12.1.8.1): the hub
	// signs GroupInfoResponses with the key (draft Section 5.6), and every
	// room it hosts must list HubSender in external_senders (Section 6.4).
	// HubSender.SignatureKey must be the public key of HubSignaturePriv.
	HubSignaturePriv []byte
	HubSender        wire.ExternalSender
	// Clock returns the current time (default time.Now). Timestamps of
	// events are taken from it on the proposing node.
	Clock func() time.Time
	// Logger receives diagnostics (default slog.Default()).
	Logger *slog.Logger
	// Consent authorizes key material claims; nil allows every request.
	Consent ConsentFunc
	// KickDestinations, if set, is called after a command queued
	// messages for other providers (FanoutEnqueued events,
	// draft-ralston-mimi-protocol-02, Section 5.5) with the destinations
	// that got new entries (sorted, without duplicates), to wake the
	// fanout worker for exactly those. It must not block. It runs on the
	// node that proposed the command: where the fanout runs on another
	// node (a Raft cluster's leader), wake it from the state machine
	// instead, as internal/daemon does.
	KickDestinations func(dests []string)
	// MaxAttempts bounds how often a command whose preconditions lost a
	// race is re-validated and retried (default 16).
	MaxAttempts int
	// ApplyTimeout bounds how long one command waits for the replicated
	// log (default DefaultApplyTimeout): without a Raft quorum a request
	// then fails with ErrUnavailable (503 with Retry-After at the
	// federation endpoints) instead of waiting for its caller to give up.
	// The command may still be applied later; the duplicate checks make a
	// retry safe.
	ApplyTimeout time.Duration
}

// DefaultApplyTimeout is Config.ApplyTimeout's default.
const DefaultApplyTimeout = 10 * time.Second

// Provider is one MIMI provider (one domain): it implements the semantics
// of every federation endpoint of draft-ralston-mimi-protocol-02,
// Section 5, on decoded bodies, for the roles the draft gives a provider
// (key material publisher, hub of the rooms it hosts, follower of rooms
// hosted elsewhere), and the local operations of its own clients. All
// state changes go through Raft as projections commands. It is safe for
// concurrent use.
type Provider struct {
	domain   string
	raft     Raft
	m        *projections.Machine
	remote   Remote
	hubPriv  []byte
	hubSend  wire.ExternalSender
	clock    func() time.Time
	log      *slog.Logger
	consent  ConsentFunc
	kickTo   func([]string)
	attempts int
	applyTTL time.Duration

	hubRooms      sync.Map // room ID -> *hubRoom
	followerRooms sync.Map // room ID -> *followerRoom
	echoes        echoCache
}

// New validates cfg and returns a Provider.
func New(cfg Config) (*Provider, error) {
	if err := mimi.ValidateDomain(cfg.Domain); err != nil {
		return nil, fmt.Errorf("provider: domain %q: %w", cfg.Domain, err)
	}
	if cfg.Raft == nil || cfg.Machine == nil {
		return nil, errors.New("provider: Raft and Machine are required")
	}
	if len(cfg.HubSignaturePriv) == 0 || len(cfg.HubSender.SignatureKey) == 0 {
		return nil, errors.New("provider: the hub signature key pair and HubSender are required")
	}
	p := &Provider{
		domain:   cfg.Domain,
		raft:     cfg.Raft,
		m:        cfg.Machine,
		remote:   cfg.Remote,
		hubPriv:  cfg.HubSignaturePriv,
		hubSend:  cfg.HubSender,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		consent:  cfg.Consent,
		kickTo:   cfg.KickDestinations,
		attempts: cfg.MaxAttempts,
		applyTTL: cfg.ApplyTimeout,
	}
	if p.applyTTL <= 0 {
		p.applyTTL = DefaultApplyTimeout
	}
	if p.clock == nil {
		p.clock = time.Now
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.attempts <= 0 {
		p.attempts = 16
	}
	return p, nil
}

// Domain returns the provider's domain (draft-ralston-mimi-protocol-02,
// Section 3).
func (p *Provider) Domain() string { return p.domain }

// URI returns the provider's MIMI URI, mimi://<domain>
// (draft-ralston-mimi-protocol-02, Section 3).
func (p *Provider) URI() string { return "mimi://" + p.domain }

// HubSender returns the hub's external_senders entry, which every room
// hosted here must carry (draft-ralston-mimi-protocol-02, Section 6.4).
func (p *Provider) HubSender() wire.ExternalSender { return p.hubSend }

// Machine returns the projections the provider reads (the hub and
// follower state of draft-ralston-mimi-protocol-02, Section 4.3.1).
func (p *Provider) Machine() *projections.Machine { return p.m }

func (p *Provider) nowMillis() uint64 {
	t := p.clock().UnixMilli()
	if t < 0 {
		return 0
	}
	return uint64(t)
}

// apply encodes and proposes cmd. A transport or storage failure is
// ErrUnavailable; a rejection is left in Result.Err for the caller.
func (p *Provider) apply(ctx context.Context, cmd *projections.Command) (projections.Result, error) {
	b, err := projections.EncodeCommand(cmd)
	if err != nil {
		return projections.Result{}, fmt.Errorf("provider: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, p.applyTTL)
	res, err := p.raft.Apply(actx, b)
	cancel()
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if res.Err != nil && (errors.Is(res.Err, projections.ErrStorage) || errors.Is(res.Err, projections.ErrClosed)) {
		return res, fmt.Errorf("%w: %w", ErrUnavailable, res.Err)
	}
	return res, nil
}

// applyOK is apply for commands that are expected to succeed: a rejection
// is returned as an error.
func (p *Provider) applyOK(ctx context.Context, cmd *projections.Command) (projections.Result, error) {
	res, err := p.apply(ctx, cmd)
	if err != nil {
		return res, err
	}
	if res.Err != nil {
		return res, res.Err
	}
	return res, nil
}

// kicked wakes the fanout worker if the result queued anything for
// another provider: for the destinations named by its FanoutEnqueued
// events (Config.KickDestinations).
func (p *Provider) kicked(res projections.Result) {
	if p.kickTo == nil {
		return
	}
	if dests := eventlog.FanoutDestinations(res.Events); len(dests) > 0 {
		p.kickTo(dests)
	}
}

// barrier brings the local projections up to date after a lost race.
func (p *Provider) barrier(ctx context.Context) error {
	if err := p.raft.ReadBarrier(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// remoteOrErr returns the Remote or an ErrPeer error.
func (p *Provider) remoteOrErr() (Remote, error) {
	if p.remote == nil {
		return nil, fmt.Errorf("%w: no federation client configured", ErrPeer)
	}
	return p.remote, nil
}
