// Package local attaches MIMI clients (package client) to a provider
// (package provider) running in the same process: Provider implements
// client.Provider, the client-to-provider steps that
// draft-ralston-mimi-protocol-02, Section 3 shows in [[ double brackets ]],
// by calling the provider's local operations directly.
//
// It is the transport of choice for an application that embeds its
// provider (a single-binary deployment, a demo, tests), and the reference
// for what every client.Provider method means on a provider:
//
//	client.Provider    provider.Provider
//	RegisterClient     RegisterClient
//	UploadKeyPackages  UploadKeyPackages
//	KeyMaterial        LocalKeyMaterial    (Section 5.2, through the hub)
//	CreateRoom         CreateRoom          (Section 3.1, local to the hub)
//	Update             LocalUpdate         (Section 5.3, forwarded to the hub)
//	SubmitMessage      LocalSubmitMessage  (Section 5.4, forwarded to the hub)
//	GroupInfo          LocalGroupInfo      (Section 5.6, from the hub)
//	Inbox              Inbox               (Section 5.5, as delivered to a client)
//	Ack                Ack
//	HubSender          HubSender           (Section 6.4; rooms hosted here only)
//
// # Trust
//
// Every client.Provider method names the calling client, and Provider
// trusts that name: it performs no client authentication. That is right
// when the code holding the Provider is the client (or acts for it), as in
// a process that embeds both. An application that serves several users
// from one process must make sure each user's code only reaches the
// Provider with its own client URIs; across a network, use the Connect
// client API (packages httpapi/clientapi and client/remote) instead, which
// authenticates every call.
//
// # Errors and responses
//
// A refusal the draft expresses as a response code (wrongEpoch, notAllowed,
// userUnknown, notAuthorized, ...) comes back as the response with a nil
// error, exactly as the provider returned it. Errors are wrapped with the
// operation and keep the provider's sentinels (provider.ErrUnknownClient,
// provider.ErrInvalid, provider.ErrUnavailable, provider.ErrPeer, ...) for
// errors.Is. A nil request is refused with an error matching
// provider.ErrInvalid; nothing here panics on its input.
//
// # Sharing memory
//
// By default request and response bodies are passed by pointer, as the
// in-process provider API takes them, so neither side may modify a body
// after handing it over. With Options.Isolate every body instead crosses
// the boundary in its wire encoding (RFC 9420 and draft Section 5 TLS
// encodings, mimi.Encode and mimi.Decode), as the network client API
// carries it: the two sides share no memory, and a body that does not
// survive encoding fails here rather than on the wire later.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
)

var (
	// ErrNoProvider is returned by every method of a Provider that was
	// given no *provider.Provider (New(nil, ...) or the zero Provider).
	ErrNoProvider = errors.New("local: no provider")
	// ErrNotHosted is returned by HubSender for a room hosted by another
	// provider: only the hub knows its own external_senders entry
	// (draft-ralston-mimi-protocol-02, Section 6.4), and the SDK asks only
	// when creating a room, which is local to the hub (Section 3.1). It
	// also matches provider.ErrNoSuchRoom.
	ErrNotHosted = errors.New("local: room is not hosted by this provider")
	// ErrEncoding is returned (wrapped, together with the codec's error)
	// when Options.Isolate is set and a body does not survive its wire
	// encoding (draft-ralston-mimi-protocol-02, Section 5; RFC 9420,
	// Section 6). For a request body the error also matches
	// provider.ErrInvalid.
	ErrEncoding = errors.New("local: body does not survive its wire encoding")
)

// Options customize a Provider. The zero value is usable.
type Options struct {
	// Isolate makes every request and response body cross the boundary
	// in its wire encoding (draft-ralston-mimi-protocol-02, Section 5;
	// RFC 9420, Section 6), as the network client API would carry it:
	// the client and the provider share no memory. It costs one encoding
	// and one decoding per body.
	Isolate bool
	// BeforeInbox, if set, is called at the start of every Inbox call; an
	// error fails the call. Tests use it to run a fanout loop standing in
	// for the fanout worker (Section 5.5); an application may use it to
	// wait for a delivery.
	BeforeInbox func(ctx context.Context) error
}

// Provider is a client.Provider backed by a *provider.Provider in the same
// process (draft-ralston-mimi-protocol-02, Section 3: the provider-local
// steps in [[ double brackets ]]); see the package documentation for the
// mapping and the trust model. It is safe for concurrent use.
type Provider struct {
	p    *provider.Provider
	opts Options
}

var _ client.Provider = (*Provider)(nil)

// New returns a client.Provider calling p (draft-ralston-mimi-protocol-02,
// Section 3). opts may be nil.
func New(p *provider.Provider, opts *Options) *Provider {
	l := &Provider{p: p}
	if opts != nil {
		l.opts = *opts
	}
	return l
}

// Domain returns the domain of the provider the clients are attached to
// (draft-ralston-mimi-protocol-02, Section 3), or "" without one.
func (l *Provider) Domain() string {
	if l == nil || l.p == nil {
		return ""
	}
	return l.p.Domain()
}

// provider returns the provider or ErrNoProvider.
func (l *Provider) provider(op string) (*provider.Provider, error) {
	if l == nil || l.p == nil {
		return nil, fmt.Errorf("local: %s: %w", op, ErrNoProvider)
	}
	return l.p, nil
}

// errNil reports a nil request body.
func errNil(op, what string) error {
	return fmt.Errorf("local: %s: %w: nil %s", op, provider.ErrInvalid, what)
}

// RegisterClient registers a client with its credential and signature
// public key (draft-ralston-mimi-protocol-02, Section 3: provider-local)
// through provider.RegisterClient.
func (l *Provider) RegisterClient(ctx context.Context, cred wire.Credential, sigPub []byte) error {
	p, err := l.provider("register client")
	if err != nil {
		return err
	}
	if l.opts.Isolate {
		c, err := throughRequest(&cred, "Credential")
		if err != nil {
			return fmt.Errorf("local: register client: %w", err)
		}
		cred, sigPub = *c, bytes.Clone(sigPub)
	}
	if _, err := p.RegisterClient(ctx, cred, sigPub); err != nil {
		return fmt.Errorf("local: register client: %w", err)
	}
	return nil
}

// UploadKeyPackages publishes KeyPackages of a registered client
// (draft-ralston-mimi-protocol-02, Section 4.3.1) through
// provider.UploadKeyPackages.
func (l *Provider) UploadKeyPackages(ctx context.Context, cl string, kps []*wire.KeyPackage) error {
	const op = "upload key packages"
	p, err := l.provider(op)
	if err != nil {
		return err
	}
	for i, kp := range kps {
		if kp == nil {
			return errNil(op, fmt.Sprintf("KeyPackage %d", i))
		}
	}
	if l.opts.Isolate {
		cp := make([]*wire.KeyPackage, len(kps))
		for i, kp := range kps {
			if cp[i], err = throughRequest(kp, "KeyPackage"); err != nil {
				return fmt.Errorf("local: %s for %s: KeyPackage %d: %w", op, cl, i, err)
			}
		}
		kps = cp
	}
	if _, err := p.UploadKeyPackages(ctx, cl, kps); err != nil {
		return fmt.Errorf("local: %s for %s: %w", op, cl, err)
	}
	return nil
}

// KeyMaterial claims key material of the target user's clients for a room
// through its hub (draft-ralston-mimi-protocol-02, Section 5.2), through
// provider.LocalKeyMaterial.
func (l *Provider) KeyMaterial(ctx context.Context, cl string, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error) {
	const op = "key material"
	return call(l, op, cl, req, "KeyMaterialRequest", "KeyMaterialResponse",
		func(p *provider.Provider, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error) {
			return p.LocalKeyMaterial(ctx, cl, req)
		})
}

// CreateRoom creates a room hosted by this provider from the creator's
// GroupInfo and ratchet tree (draft-ralston-mimi-protocol-02, Section
// 3.1: room creation is local to the hub), through provider.CreateRoom.
func (l *Provider) CreateRoom(ctx context.Context, cl, room string, gi *wire.GroupInfo, tree wire.RatchetTree) error {
	const op = "create room"
	p, err := l.provider(op)
	if err != nil {
		return err
	}
	if gi == nil {
		return errNil(op, "GroupInfo")
	}
	if l.opts.Isolate {
		if gi, err = throughRequest(gi, "GroupInfo"); err != nil {
			return fmt.Errorf("local: %s %s: %w", op, room, err)
		}
		t, err := throughRequest(&tree, "RatchetTree")
		if err != nil {
			return fmt.Errorf("local: %s %s: %w", op, room, err)
		}
		tree = *t
	}
	if err := p.CreateRoom(ctx, cl, room, gi, tree); err != nil {
		return fmt.Errorf("local: %s %s for %s: %w", op, room, cl, err)
	}
	return nil
}

// Update submits proposals or a commit to the room's hub
// (draft-ralston-mimi-protocol-02, Section 5.3), through
// provider.LocalUpdate.
func (l *Provider) Update(ctx context.Context, cl, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	return call(l, "update "+room, cl, req, "UpdateRequest", "UpdateRoomResponse",
		func(p *provider.Provider, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
			return p.LocalUpdate(ctx, cl, room, req)
		})
}

// SubmitMessage submits an application message to the room's hub
// (draft-ralston-mimi-protocol-02, Section 5.4), through
// provider.LocalSubmitMessage.
func (l *Provider) SubmitMessage(ctx context.Context, cl, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	return call(l, "submit message "+room, cl, req, "SubmitMessageRequest", "SubmitMessageResponse",
		func(p *provider.Provider, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
			return p.LocalSubmitMessage(ctx, cl, room, req)
		})
}

// GroupInfo fetches the room's hub-signed GroupInfo and ratchet tree for
// an external join (draft-ralston-mimi-protocol-02, Section 5.6), through
// provider.LocalGroupInfo.
func (l *Provider) GroupInfo(ctx context.Context, cl, room string, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error) {
	return call(l, "group info "+room, cl, req, "GroupInfoRequest", "GroupInfoResponse",
		func(p *provider.Provider, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error) {
			return p.LocalGroupInfo(ctx, cl, room, req)
		})
}

// Inbox returns up to limit (0: no limit) unacknowledged messages queued
// for the client at positions >= from, oldest first
// (draft-ralston-mimi-protocol-02, Section 5.5), through provider.Inbox;
// an entry's Seq is the provider's inbox position. An unregistered client
// is provider.ErrUnknownClient. Options.BeforeInbox runs first.
func (l *Provider) Inbox(ctx context.Context, cl string, from uint64, limit int) ([]client.InboxEntry, error) {
	const op = "inbox"
	p, err := l.provider(op)
	if err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, fmt.Errorf("local: %s: %w: negative limit %d", op, provider.ErrInvalid, limit)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("local: %s: %w", op, err)
	}
	if err := registered(p, cl); err != nil {
		return nil, fmt.Errorf("local: %s: %w", op, err)
	}
	if l.opts.BeforeInbox != nil {
		if err := l.opts.BeforeInbox(ctx); err != nil {
			return nil, fmt.Errorf("local: %s: before inbox: %w", op, err)
		}
	}
	es, err := p.Inbox(cl, from, limit)
	if err != nil {
		return nil, fmt.Errorf("local: %s of %s: %w", op, cl, err)
	}
	out := make([]client.InboxEntry, 0, len(es))
	for _, e := range es {
		m := &e.Message
		if l.opts.Isolate {
			if m, err = through(m, "FanoutMessage"); err != nil {
				return nil, fmt.Errorf("local: %s of %s: entry %d: %w", op, cl, e.N, err)
			}
		}
		out = append(out, client.InboxEntry{Seq: e.N, Room: e.Room, Message: *m})
	}
	return out, nil
}

// Ack acknowledges every inbox entry of the client up to and including
// upTo (draft-ralston-mimi-protocol-02, Section 5.5), through
// provider.Ack. An unregistered client is provider.ErrUnknownClient.
func (l *Provider) Ack(ctx context.Context, cl string, upTo uint64) error {
	p, err := l.provider("ack")
	if err != nil {
		return err
	}
	if err := registered(p, cl); err != nil {
		return fmt.Errorf("local: ack: %w", err)
	}
	if err := p.Ack(ctx, cl, upTo); err != nil {
		return fmt.Errorf("local: ack %s up to %d: %w", cl, upTo, err)
	}
	return nil
}

// registered checks that cl is a client registered at p: provider.Inbox
// and provider.Ack read and write queues by name, and would answer an
// unknown client with an empty inbox.
func registered(p *provider.Provider, cl string) error {
	_, err := p.Machine().Client(cl)
	switch {
	case errors.Is(err, projections.ErrUnknownClient):
		return fmt.Errorf("%w: %s", provider.ErrUnknownClient, cl)
	case err != nil:
		return fmt.Errorf("%w: %w", provider.ErrUnavailable, err)
	}
	return nil
}

// HubSender returns the external_senders entry of the hub of a room hosted
// by this provider (draft-ralston-mimi-protocol-02, Section 6.4), from
// provider.HubSender. A room hosted elsewhere is ErrNotHosted.
func (l *Provider) HubSender(ctx context.Context, room string) (wire.ExternalSender, error) {
	const op = "hub sender"
	p, err := l.provider(op)
	if err != nil {
		return wire.ExternalSender{}, err
	}
	if err := ctx.Err(); err != nil {
		return wire.ExternalSender{}, fmt.Errorf("local: %s: %w", op, err)
	}
	u, err := mimi.ParseURIKind(room, mimi.KindRoom)
	if err != nil {
		return wire.ExternalSender{}, fmt.Errorf("local: %s: %w: %w", op, provider.ErrInvalid, err)
	}
	if u.Provider != p.Domain() {
		return wire.ExternalSender{}, fmt.Errorf("local: %s: %w: %w: %s is hosted by %s, not %s",
			op, ErrNotHosted, provider.ErrNoSuchRoom, room, u.Provider, p.Domain())
	}
	hs := p.HubSender()
	// Always a copy: the provider's own entry must not be reachable from
	// the client's group state.
	out, err := through(&hs, "ExternalSender")
	if err != nil {
		return wire.ExternalSender{}, fmt.Errorf("local: %s: %w", op, err)
	}
	return *out, nil
}

// call runs one request/response operation: the nil check, the optional
// isolation of both bodies, and the error wrapping.
func call[Req, Resp any, PReq codecPtr[Req], PResp codecPtr[Resp]](
	l *Provider, op, cl string, req PReq, reqName, respName string,
	f func(*provider.Provider, PReq) (PResp, error),
) (PResp, error) {
	p, err := l.provider(op)
	if err != nil {
		return nil, err
	}
	if req == nil {
		return nil, errNil(op, reqName)
	}
	if l.opts.Isolate {
		if req, err = throughRequest[Req, PReq](req, reqName); err != nil {
			return nil, fmt.Errorf("local: %s for %s: %w", op, cl, err)
		}
	}
	resp, err := f(p, req)
	if err != nil {
		return nil, fmt.Errorf("local: %s for %s: %w", op, cl, err)
	}
	if resp == nil {
		return nil, fmt.Errorf("local: %s for %s: the provider returned no %s", op, cl, respName)
	}
	if l.opts.Isolate {
		if resp, err = through[Resp, PResp](resp, respName); err != nil {
			return nil, fmt.Errorf("local: %s for %s: %w", op, cl, err)
		}
	}
	return resp, nil
}

// codecPtr is a pointer to a body with a TLS encoding.
type codecPtr[T any] interface {
	*T
	codec.Marshaler
	codec.Unmarshaler
}

// throughRequest is through for a request body: a failure also matches
// provider.ErrInvalid, as the provider would refuse a body it cannot
// decode.
func throughRequest[T any, P codecPtr[T]](v P, name string) (P, error) {
	out, err := through[T, P](v, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", provider.ErrInvalid, err)
	}
	return out, nil
}

// through returns a deep copy of v made by encoding and decoding it.
func through[T any, P codecPtr[T]](v P, name string) (P, error) {
	b, err := mimi.Encode(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding %s: %w", ErrEncoding, name, err)
	}
	out := P(new(T))
	if err := mimi.Decode(b, name, out); err != nil {
		return nil, fmt.Errorf("%w: decoding %s: %w", ErrEncoding, name, err)
	}
	return out, nil
}
