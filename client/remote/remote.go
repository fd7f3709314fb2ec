// Package remote implements client.Provider, what a MIMI client needs from
// its own provider (the client-to-provider steps draft-ralston-mimi-protocol-02
// shows in [[ double brackets ]], Section 3), over the provider's Connect RPC
// service mimi.client.v1.ClientService (package httpapi/clientapi).
//
// Every call is signed with the calling client's MLS signature key (the
// scheme of package clientauth), so the Provider needs a Signer for each
// client it calls for: pass them to New or AddSigner. The SDK's
// client.Client generates its key itself and does not export it; SignerFor
// (or SignerFromState) reads it from the client's saved state:
//
//	p, _ := remote.New("https://mimi.a.example", httpClient)
//	c, _ := client.New(user, clientURI, suite, p, nil)
//	s, _ := remote.SignerFor(c)
//	_ = p.AddSigner(s)
//	_ = c.Register(ctx)
//
// MIMI and MLS objects travel as their TLS encodings; a refusal the draft
// expresses as a response code comes back as the decoded response, and a
// Connect error as an error wrapping one of this package's sentinels and
// the *connect.Error.
package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/remote/clientauth"
	clientv1 "github.com/openmimi/mimi/gen/mimi/client/v1"
	"github.com/openmimi/mimi/gen/mimi/client/v1/clientv1connect"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// Errors callers branch on with errors.Is (draft-ralston-mimi-protocol-02,
// Section 3: failures of the client-to-provider step itself; the draft's
// response codes come back as responses). Errors from the service wrap one
// of the code sentinels and the *connect.Error itself.
var (
	// ErrNoSigner: the Provider has no Signer for the client a call is
	// for.
	ErrNoSigner = errors.New("remote: no signer for this client")
	// ErrInvalidSigner: a Signer (or a saved state) is unusable.
	ErrInvalidSigner = errors.New("remote: invalid signer")
	// ErrInvalidResponse: the provider's answer does not decode.
	ErrInvalidResponse = errors.New("remote: invalid response from the provider")

	// ErrInvalidArgument: the provider could not decode the request or
	// found it inconsistent (connect.CodeInvalidArgument).
	ErrInvalidArgument = errors.New("remote: invalid argument")
	// ErrNotFound: no such room or client (connect.CodeNotFound).
	ErrNotFound = errors.New("remote: not found")
	// ErrPermissionDenied: the request speaks for someone else, or the
	// registration policy refused (connect.CodePermissionDenied).
	ErrPermissionDenied = errors.New("remote: permission denied")
	// ErrUnauthenticated: the call's authentication was refused: unknown
	// client, bad signature, clock skew, replay
	// (connect.CodeUnauthenticated).
	ErrUnauthenticated = errors.New("remote: unauthenticated")
	// ErrUnavailable: the provider, its replicated log or the room's hub
	// could not answer now; retry later (connect.CodeUnavailable).
	ErrUnavailable = errors.New("remote: provider unavailable")
)

// Signer is a client's signing identity for the client API: its client
// URI (draft-ralston-mimi-protocol-02, Section 3), its cipher suite and
// its MLS signature private key (RFC 9420, Section 5.1.2). Priv is SECRET.
type Signer struct {
	Client string
	Suite  cipher.SuiteID
	Priv   []byte
	pub    []byte
}

// NewSigner checks and returns a Signer: client must be a MIMI client URI
// (draft-ralston-mimi-protocol-02, Section 3) and priv a signature private
// key of suite (RFC 9420, Section 5.1.2).
func NewSigner(clientURI string, suite cipher.SuiteID, priv []byte) (*Signer, error) {
	if _, err := mimi.ParseURIKind(clientURI, mimi.KindClient); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSigner, err)
	}
	s, err := cipher.Lookup(suite)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSigner, err)
	}
	pub, err := s.SignaturePublicKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSigner, err)
	}
	return &Signer{Client: clientURI, Suite: suite, Priv: bytes.Clone(priv), pub: pub}, nil
}

// PublicKey returns the signature public key (RFC 9420, Section 5.1.2).
func (s *Signer) PublicKey() []byte { return bytes.Clone(s.pub) }

// Saved-state header of package client (client.Client.Save): versions 1
// and 2 start alike.
const (
	stateMagic      = "mimi-client-state"
	minStateVersion = 1
	maxStateVersion = 2
)

// SignerFromState reads the Signer from a client's saved state (the output
// of client.Client.Save, whose documented encoding, in the TLS presentation
// language of RFC 9420 Section 2.1, starts with the magic, version, user and
// client URIs, cipher suite and signature private key). The state is
// SECRET.
func SignerFromState(state []byte) (*Signer, error) {
	r := codec.NewReader(state)
	if string(r.Opaque("magic")) != stateMagic || r.Err() != nil {
		return nil, fmt.Errorf("%w: not a saved client state", ErrInvalidSigner)
	}
	if v := r.U8("version"); r.Err() == nil && (v < minStateVersion || v > maxStateVersion) {
		return nil, fmt.Errorf("%w: saved client state version %d", ErrInvalidSigner, v)
	}
	_ = r.Opaque("user_uri")
	clientURI := string(r.Opaque("client_uri"))
	suite := cipher.SuiteID(r.U16("cipher_suite"))
	priv := r.Opaque("signature_priv")
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSigner, err)
	}
	return NewSigner(clientURI, suite, priv)
}

// SignerFor returns the Signer of a client of the SDK, read from its
// saved state (client.Client.Save), and checks it against the client's
// URI and signature public key (RFC 9420, Section 5.1.2).
func SignerFor(c *client.Client) (*Signer, error) {
	st, err := c.Save()
	if err != nil {
		return nil, fmt.Errorf("%w: saving the client: %w", ErrInvalidSigner, err)
	}
	s, err := SignerFromState(st)
	clear(st)
	if err != nil {
		return nil, err
	}
	if s.Client != c.ID() || s.Suite != c.CipherSuite() || !bytes.Equal(s.pub, c.SignaturePublicKey()) {
		return nil, fmt.Errorf("%w: the saved state does not match the client", ErrInvalidSigner)
	}
	return s, nil
}

// Provider implements client.Provider, the client-to-provider steps of
// draft-ralston-mimi-protocol-02, Section 3, over the Connect client API of
// a provider. It is safe for concurrent use.
type Provider struct {
	rpc clientv1connect.ClientServiceClient
	now func() time.Time

	mu      sync.Mutex
	signers map[string]*Signer
	last    map[string]uint64 // last timestamp used per client
}

var _ client.Provider = (*Provider)(nil)

// New returns a Provider (draft-ralston-mimi-protocol-02, Section 3's
// client-to-provider steps) calling the client API at baseURL (for example
// "https://mimi.a.example") with httpClient (which must trust the
// provider's TLS certificate), signing calls with signers.
func New(baseURL string, httpClient connect.HTTPClient, signers ...*Signer) (*Provider, error) {
	if httpClient == nil {
		return nil, errors.New("remote: no HTTP client")
	}
	p := &Provider{
		rpc:     clientv1connect.NewClientServiceClient(httpClient, baseURL),
		now:     time.Now,
		signers: map[string]*Signer{},
		last:    map[string]uint64{},
	}
	for _, s := range signers {
		if err := p.AddSigner(s); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// AddSigner adds (or replaces) the Signer of a client
// (draft-ralston-mimi-protocol-02, Section 3; RFC 9420, Section 5.1.2).
func (p *Provider) AddSigner(s *Signer) error {
	if s == nil {
		return fmt.Errorf("%w: nil", ErrInvalidSigner)
	}
	checked, err := NewSigner(s.Client, s.Suite, s.Priv)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.signers[s.Client] = checked
	p.mu.Unlock()
	return nil
}

// sign signs a call of procedure for clientURI with its Signer, with a
// timestamp later than any this Provider used for the client (so two calls
// never share one; the provider refuses replays within its window).
func (p *Provider) sign(clientURI, procedure string, msg proto.Message, h interface{ Set(k, v string) }) error {
	p.mu.Lock()
	s, ok := p.signers[clientURI]
	var ts uint64
	if ok {
		ts = max(uint64(p.now().UnixMilli()), p.last[clientURI]+1)
		p.last[clientURI] = ts
	}
	p.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoSigner, clientURI)
	}
	rb, err := clientauth.RequestBytes(msg)
	if err != nil {
		return err
	}
	a, err := clientauth.Sign(s.Priv, s.Suite, procedure, clientURI, ts, rb)
	if err != nil {
		return err
	}
	h.Set(clientauth.HeaderName, a.String())
	return nil
}

// request builds a signed request.
func request[T any](p *Provider, clientURI, procedure string, msg *T) (*connect.Request[T], error) {
	req := connect.NewRequest(msg)
	pm, ok := any(msg).(proto.Message)
	if !ok {
		return nil, errors.New("remote: not a protobuf message")
	}
	if err := p.sign(clientURI, procedure, pm, req.Header()); err != nil {
		return nil, err
	}
	return req, nil
}

// callError maps a Connect error to this package's sentinels.
func callError(op string, err error) error {
	var sentinel error
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument:
		sentinel = ErrInvalidArgument
	case connect.CodeNotFound:
		sentinel = ErrNotFound
	case connect.CodePermissionDenied:
		sentinel = ErrPermissionDenied
	case connect.CodeUnauthenticated:
		sentinel = ErrUnauthenticated
	case connect.CodeUnavailable:
		sentinel = ErrUnavailable
	default:
		return fmt.Errorf("remote: %s: %w", op, err)
	}
	return fmt.Errorf("remote: %s: %w: %w", op, sentinel, err)
}

func invalidResponse(op string, err error) error {
	return fmt.Errorf("remote: %s: %w: %w", op, ErrInvalidResponse, err)
}

// RegisterClient implements client.Provider: registers the client named by
// cred (draft-ralston-mimi-protocol-02, Section 3), proving possession of
// sigPub by signing the call with the matching Signer.
func (p *Provider) RegisterClient(ctx context.Context, cred wire.Credential, sigPub []byte) error {
	id, err := mimi.IdentityFromCredential(&cred)
	if err != nil {
		return fmt.Errorf("remote: register: %w", err)
	}
	p.mu.Lock()
	s := p.signers[id.Client]
	p.mu.Unlock()
	if s == nil {
		return fmt.Errorf("remote: register: %w: %s", ErrNoSigner, id.Client)
	}
	if !bytes.Equal(s.pub, sigPub) {
		return fmt.Errorf("remote: register: %w: the signer's key for %s is not the key being registered", ErrInvalidSigner, id.Client)
	}
	cb, err := cred.MarshalBinary()
	if err != nil {
		return fmt.Errorf("remote: register: %w", err)
	}
	req, err := request(p, id.Client, clientv1connect.ClientServiceRegisterClientProcedure,
		&clientv1.RegisterClientRequest{Credential: cb, SignatureKey: bytes.Clone(sigPub)})
	if err != nil {
		return fmt.Errorf("remote: register: %w", err)
	}
	if _, err := p.rpc.RegisterClient(ctx, req); err != nil {
		return callError("register", err)
	}
	return nil
}

// UploadKeyPackages implements client.Provider
// (draft-ralston-mimi-protocol-02, Section 4.3.1).
func (p *Provider) UploadKeyPackages(ctx context.Context, clientURI string, kps []*wire.KeyPackage) error {
	_, err := p.UploadKeyPackageRefs(ctx, clientURI, kps)
	return err
}

// UploadKeyPackageRefs is UploadKeyPackages returning the provider's
// KeyPackageRefs (RFC 9420, Section 5.2), in order.
func (p *Provider) UploadKeyPackageRefs(ctx context.Context, clientURI string, kps []*wire.KeyPackage) ([][]byte, error) {
	msg := &clientv1.UploadKeyPackagesRequest{}
	for i, kp := range kps {
		if kp == nil {
			return nil, fmt.Errorf("remote: upload KeyPackages: KeyPackage %d is nil", i)
		}
		b, err := kp.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("remote: upload KeyPackages: KeyPackage %d: %w", i, err)
		}
		msg.KeyPackages = append(msg.KeyPackages, b)
	}
	req, err := request(p, clientURI, clientv1connect.ClientServiceUploadKeyPackagesProcedure, msg)
	if err != nil {
		return nil, fmt.Errorf("remote: upload KeyPackages: %w", err)
	}
	resp, err := p.rpc.UploadKeyPackages(ctx, req)
	if err != nil {
		return nil, callError("upload KeyPackages", err)
	}
	return resp.Msg.GetKeyPackageRefs(), nil
}

// KeyMaterial implements client.Provider (draft-ralston-mimi-protocol-02,
// Section 5.2).
func (p *Provider) KeyMaterial(ctx context.Context, clientURI string, kr *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error) {
	body, err := mimi.Encode(kr)
	if err != nil {
		return nil, fmt.Errorf("remote: key material: %w", err)
	}
	req, err := request(p, clientURI, clientv1connect.ClientServiceKeyMaterialProcedure, &clientv1.KeyMaterialRequest{Body: body})
	if err != nil {
		return nil, fmt.Errorf("remote: key material: %w", err)
	}
	resp, err := p.rpc.KeyMaterial(ctx, req)
	if err != nil {
		return nil, callError("key material", err)
	}
	var out mimi.KeyMaterialResponse
	if err := mimi.Decode(resp.Msg.GetBody(), "KeyMaterialResponse", &out); err != nil {
		return nil, invalidResponse("key material", err)
	}
	return &out, nil
}

// CreateRoom implements client.Provider (draft-ralston-mimi-protocol-02,
// Section 3.1).
func (p *Provider) CreateRoom(ctx context.Context, clientURI, room string, gi *wire.GroupInfo, tree wire.RatchetTree) error {
	if gi == nil {
		return errors.New("remote: create room: no GroupInfo")
	}
	gib, err := gi.MarshalBinary()
	if err != nil {
		return fmt.Errorf("remote: create room: %w", err)
	}
	tb, err := codec.Marshal(&tree)
	if err != nil {
		return fmt.Errorf("remote: create room: %w", err)
	}
	req, err := request(p, clientURI, clientv1connect.ClientServiceCreateRoomProcedure,
		&clientv1.CreateRoomRequest{Room: room, GroupInfo: gib, RatchetTree: tb})
	if err != nil {
		return fmt.Errorf("remote: create room: %w", err)
	}
	if _, err := p.rpc.CreateRoom(ctx, req); err != nil {
		return callError("create room", err)
	}
	return nil
}

// Update implements client.Provider (draft-ralston-mimi-protocol-02,
// Section 5.3).
func (p *Provider) Update(ctx context.Context, clientURI, room string, ur *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	body, err := mimi.Encode(ur)
	if err != nil {
		return nil, fmt.Errorf("remote: update: %w", err)
	}
	req, err := request(p, clientURI, clientv1connect.ClientServiceUpdateProcedure, &clientv1.UpdateRequest{Room: room, Body: body})
	if err != nil {
		return nil, fmt.Errorf("remote: update: %w", err)
	}
	resp, err := p.rpc.Update(ctx, req)
	if err != nil {
		return nil, callError("update", err)
	}
	var out mimi.UpdateRoomResponse
	if err := mimi.Decode(resp.Msg.GetBody(), "UpdateRoomResponse", &out); err != nil {
		return nil, invalidResponse("update", err)
	}
	return &out, nil
}

// SubmitMessage implements client.Provider (draft-ralston-mimi-protocol-02,
// Section 5.4).
func (p *Provider) SubmitMessage(ctx context.Context, clientURI, room string, sr *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	body, err := mimi.Encode(sr)
	if err != nil {
		return nil, fmt.Errorf("remote: submit message: %w", err)
	}
	req, err := request(p, clientURI, clientv1connect.ClientServiceSubmitMessageProcedure, &clientv1.SubmitMessageRequest{Room: room, Body: body})
	if err != nil {
		return nil, fmt.Errorf("remote: submit message: %w", err)
	}
	resp, err := p.rpc.SubmitMessage(ctx, req)
	if err != nil {
		return nil, callError("submit message", err)
	}
	var out mimi.SubmitMessageResponse
	if err := mimi.Decode(resp.Msg.GetBody(), "SubmitMessageResponse", &out); err != nil {
		return nil, invalidResponse("submit message", err)
	}
	return &out, nil
}

// GroupInfo implements client.Provider (draft-ralston-mimi-protocol-02,
// Section 5.6). The response is the hub's; the caller verifies it.
func (p *Provider) GroupInfo(ctx context.Context, clientURI, room string, gr *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error) {
	body, err := mimi.Encode(gr)
	if err != nil {
		return nil, fmt.Errorf("remote: group info: %w", err)
	}
	req, err := request(p, clientURI, clientv1connect.ClientServiceGroupInfoProcedure, &clientv1.GroupInfoRequest{Room: room, Body: body})
	if err != nil {
		return nil, fmt.Errorf("remote: group info: %w", err)
	}
	resp, err := p.rpc.GroupInfo(ctx, req)
	if err != nil {
		return nil, callError("group info", err)
	}
	var out mimi.GroupInfoResponse
	if err := mimi.Decode(resp.Msg.GetBody(), "GroupInfoResponse", &out); err != nil {
		return nil, invalidResponse("group info", err)
	}
	return &out, nil
}

// Ack implements client.Provider (draft-ralston-mimi-protocol-02, Section
// 5.5 as delivered to a client).
func (p *Provider) Ack(ctx context.Context, clientURI string, upTo uint64) error {
	req, err := request(p, clientURI, clientv1connect.ClientServiceAckProcedure, &clientv1.AckRequest{UpTo: upTo})
	if err != nil {
		return fmt.Errorf("remote: ack: %w", err)
	}
	if _, err := p.rpc.Ack(ctx, req); err != nil {
		return callError("ack", err)
	}
	return nil
}

// HubSender implements client.Provider (draft-ralston-mimi-protocol-02,
// Section 6.4). The call is made for any client this Provider signs for:
// the entry is the provider's, not the client's.
func (p *Provider) HubSender(ctx context.Context, room string) (wire.ExternalSender, error) {
	clientURI, err := p.anyClient()
	if err != nil {
		return wire.ExternalSender{}, fmt.Errorf("remote: hub sender: %w", err)
	}
	req, err := request(p, clientURI, clientv1connect.ClientServiceHubSenderProcedure, &clientv1.HubSenderRequest{Room: room})
	if err != nil {
		return wire.ExternalSender{}, fmt.Errorf("remote: hub sender: %w", err)
	}
	resp, err := p.rpc.HubSender(ctx, req)
	if err != nil {
		return wire.ExternalSender{}, callError("hub sender", err)
	}
	var es wire.ExternalSender
	if err := codec.Unmarshal(resp.Msg.GetExternalSender(), "ExternalSender", &es); err != nil {
		return wire.ExternalSender{}, invalidResponse("hub sender", err)
	}
	return es, nil
}

// anyClient returns the smallest client URI this Provider signs for.
func (p *Provider) anyClient() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	best := ""
	for c := range p.signers {
		if best == "" || c < best {
			best = c
		}
	}
	if best == "" {
		return "", ErrNoSigner
	}
	return best, nil
}
