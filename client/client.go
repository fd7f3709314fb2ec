package client

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

// Defaults of Options (retries follow draft-ralston-mimi-protocol-02,
// Sections 5.3 and 5.4; the inbox is Section 5.5's fanout as delivered to
// a client).
const (
	// DefaultMaxAttempts is how many times an update or message is tried
	// when the hub answers wrongEpoch / epochTooOld (each retry once the
	// client's group reached the hub's epoch, see Options.EpochWait).
	DefaultMaxAttempts = 3
	// DefaultEpochWait is how long, in all, one operation waits for the
	// client's group to reach the epoch a hub named in a wrongEpoch or
	// epochTooOld answer before it gives up (see Options.EpochWait).
	DefaultEpochWait = 5 * time.Second
	// DefaultPastEpochs is how many past epochs a room's group keeps for
	// application messages that arrive late (mls.Config.PastEpochs, RFC
	// 9420 Section 15.2 leaves it to the application). A provider's
	// fanout may deliver a room's messages only after commits moved the
	// group on: after a follower's outage or a partition its clients may
	// still reach the hub and commit while the hub's backlog to their
	// provider waits (draft-ralston-mimi-protocol-02, Section 5.5). The
	// keys of unused generations of these epochs stay in memory and in the
	// saved state until then.
	DefaultPastEpochs = 8
	// DefaultPastEpochTime is how long after a room's group left an epoch
	// it keeps the epoch for late application messages beyond
	// DefaultPastEpochs, at most mls.DefaultMaxPastEpochs epochs
	// (mls.Config.PastEpochTime): a backlog held up by an outage or a
	// partition is then decryptable however many commits the client made
	// meanwhile, within that time.
	DefaultPastEpochTime = 10 * time.Minute
	// DefaultInboxBatch is how many inbox entries Sync asks for at once.
	DefaultInboxBatch = 256
	// MaxKeyPackages bounds one PublishKeyPackages call.
	MaxKeyPackages = 1000
)

// Options customize a Client (draft-ralston-mimi-protocol-02 leaves these
// client-side choices open). The zero value is usable.
type Options struct {
	// Clock returns the current time (KeyPackage lifetimes, RFC 9420
	// Section 7.2, and their checks); nil means time.Now.
	Clock func() time.Time
	// MaxAttempts bounds the tries of an update or message after
	// wrongEpoch / epochTooOld (draft-ralston-mimi-protocol-02, Sections
	// 5.3 and 5.4); 0 means DefaultMaxAttempts.
	MaxAttempts int
	// EpochWait bounds the total time one operation (AddUser, Send, Leave,
	// JoinNewDevice, ...) waits between its tries; 0 means
	// DefaultEpochWait. A wrongEpoch or epochTooOld answer names the hub's
	// current epoch (draft-ralston-mimi-protocol-02, Sections 5.3 and
	// 5.4), and the commits that led there reach the client through its
	// provider's fanout (Section 5.5), which may lag: before trying again
	// the client syncs until its group reaches that epoch (or the room is
	// gone), polling the inbox with a growing delay; for JoinNewDevice it
	// fetches the GroupInfo again until it is of that epoch. When the wait
	// would exceed EpochWait, or the context ends, the operation gives up
	// with the hub's refusal (matching ErrWrongEpoch).
	EpochWait time.Duration
	// PastEpochs is how many past epochs each room's group keeps for late
	// application messages; 0 means DefaultPastEpochs, negative keeps
	// none.
	PastEpochs int
	// PastEpochTime keeps older past epochs until this long after the
	// group left them (see mls.Config.PastEpochTime and MaxPastEpochs); 0
	// means DefaultPastEpochTime, negative keeps only PastEpochs.
	PastEpochTime time.Duration
	// MaxPastEpochs bounds the past epochs kept under PastEpochTime; 0
	// means mls.DefaultMaxPastEpochs.
	MaxPastEpochs int
	// InboxBatch is the inbox page size Sync uses; 0 means
	// DefaultInboxBatch.
	InboxBatch int
	// Checkpoint, when set, is called by Sync with the client's saved state
	// (Save output: SECRET) after processing inbox entries and before
	// acknowledging them, so that an application that persists the state
	// there never acknowledges a message whose effect it has not stored. An
	// error stops Sync before the acknowledgement.
	Checkpoint func(ctx context.Context, state []byte) error
}

// Client is one MIMI client (one device of one user,
// draft-ralston-mimi-protocol-02, Section 3): its signature key and MLS
// credential (a basic credential carrying mimi.ClientIdentity, docs/wire.md),
// the private parts of the KeyPackages it published, the MLS group of every
// room it is in (package mls), and its position in its provider's inbox.
//
// A Client is safe for concurrent use; its methods serialize, including the
// provider calls they make.
type Client struct {
	mu sync.Mutex

	id      mimi.ClientIdentity
	suite   *cipher.Suite
	sigPriv []byte
	sigPub  []byte
	cred    wire.Credential
	p       Provider
	opts    Options

	bundles   map[string]*mls.KeyPackageBundle // by KeyPackageRef
	rooms     map[string]*room                 // by room URI
	joins     map[string]*pendingJoin          // external commits of unknown outcome, by room URI
	inboxNext uint64                           // next inbox position to process
	events    []Event                          // produced but not yet returned by Sync
}

// room is the client's state in one room.
type room struct {
	id      string
	g       *mls.Group
	leaving bool       // our user's leave proposals were accepted (Section 3.5)
	sent    [][32]byte // hashes of our messages the hub accepted, to drop their echoes
	// unresolved is our last commit, when no answer to it came back.
	unresolved *unresolvedCommit
}

// unresolvedCommit is a commit of ours that the provider did not answer
// (ErrOutcomeUnknown): it stays the group's pending commit until its echo
// arrives (the hub accepted it), another commit of its epoch arrives (the
// hub took that one), or a resend gets an answer
// (draft-ralston-mimi-protocol-02, Sections 5.3 and 5.5).
type unresolvedCommit struct {
	pc  *mls.PendingCommit
	req *mimi.UpdateRequest
}

// base is the epoch the commit was made in.
func (u *unresolvedCommit) base() uint64 { return u.pc.Epoch - 1 }

// maxSent bounds room.sent.
const maxSent = 64

func (r *room) remember(b []byte) {
	r.sent = append(r.sent, hashOf(b))
	if len(r.sent) > maxSent {
		r.sent = slices.Delete(r.sent, 0, len(r.sent)-maxSent)
	}
}

func (r *room) isEcho(b []byte) bool {
	return slices.Contains(r.sent, hashOf(b))
}

// New creates a client of user (a MIMI user URI) with client URI clientURI,
// both at the same provider (draft-ralston-mimi-protocol-02, Section 3), for
// cipher suite suite: it generates the signature key pair and the basic
// credential carrying the client identity (docs/wire.md). p is the client's
// provider; opts may be nil.
func New(user, clientURI string, suite cipher.SuiteID, p Provider, opts *Options) (*Client, error) {
	id := mimi.ClientIdentity{User: user, Client: clientURI}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	s, err := cipher.Lookup(suite)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		return nil, fmt.Errorf("client: generating the signature key: %w", err)
	}
	return newClient(id, s, priv, pub, p, opts)
}

func newClient(id mimi.ClientIdentity, s *cipher.Suite, priv, pub []byte, p Provider, opts *Options) (*Client, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: no provider", ErrInvalidArgument)
	}
	cred, err := id.Credential()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	c := &Client{
		id: id, suite: s, sigPriv: priv, sigPub: pub, cred: cred, p: p,
		bundles: map[string]*mls.KeyPackageBundle{}, rooms: map[string]*room{}, joins: map[string]*pendingJoin{},
	}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.MaxAttempts <= 0 {
		c.opts.MaxAttempts = DefaultMaxAttempts
	}
	if c.opts.EpochWait <= 0 {
		c.opts.EpochWait = DefaultEpochWait
	}
	if c.opts.InboxBatch <= 0 {
		c.opts.InboxBatch = DefaultInboxBatch
	}
	return c, nil
}

// User returns the client's user URI (draft-ralston-mimi-protocol-02,
// Section 3).
func (c *Client) User() string { return c.id.User }

// ID returns the client's URI (draft-ralston-mimi-protocol-02, Section 3).
func (c *Client) ID() string { return c.id.Client }

// CipherSuite returns the client's cipher suite (RFC 9420, Section 5.1).
func (c *Client) CipherSuite() cipher.SuiteID { return c.suite.ID() }

// SignaturePublicKey returns the client's signature public key (RFC 9420,
// Section 5.1.2).
func (c *Client) SignaturePublicKey() []byte { return bytes.Clone(c.sigPub) }

// Credential returns the client's MLS credential (RFC 9420, Section 5.3;
// docs/wire.md).
func (c *Client) Credential() wire.Credential {
	return wire.Credential{Type: c.cred.Type, Identity: bytes.Clone(c.cred.Identity)}
}

func (c *Client) now() time.Time {
	if c.opts.Clock != nil {
		return c.opts.Clock()
	}
	return time.Now()
}

func (c *Client) signer() mls.Signer {
	return mls.Signer{Credential: c.cred, SignaturePriv: c.sigPriv}
}

// mlsConfig is the policy of every group of the client: every leaf must
// carry a valid MIMI client identity, and two leaves are the same client
// when they name the same client URI (RFC 9420, Sections 5.3.1 and 12.2;
// docs/wire.md).
func (c *Client) mlsConfig() mls.Config {
	past, window := c.opts.PastEpochs, c.opts.PastEpochTime
	if past == 0 {
		past = DefaultPastEpochs
	}
	if window == 0 {
		window = DefaultPastEpochTime
	}
	return mls.Config{
		Clock:         c.opts.Clock,
		PastEpochs:    past,
		PastEpochTime: window,
		MaxPastEpochs: c.opts.MaxPastEpochs,
		VerifyCredential: func(ln *wire.LeafNode) error {
			_, err := mimi.IdentityFromCredential(&ln.Credential)
			return err
		},
		SameClient: func(a, b *wire.LeafNode) bool {
			ia, err1 := mimi.IdentityFromCredential(&a.Credential)
			ib, err2 := mimi.IdentityFromCredential(&b.Credential)
			return err1 == nil && err2 == nil && ia.Client == ib.Client
		},
	}
}

// Register registers the client with its provider: its credential and
// signature public key (draft-ralston-mimi-protocol-02, Section 3, a
// provider-local step).
func (c *Client) Register(ctx context.Context) error {
	if err := c.p.RegisterClient(ctx, c.Credential(), c.SignaturePublicKey()); err != nil {
		return fmt.Errorf("client: registering %s: %w", c.id.Client, err)
	}
	return nil
}

// Enroll is what a new device does first: Register, then (n > 0)
// PublishKeyPackages(n), so that others can add it to rooms
// (draft-ralston-mimi-protocol-02, Sections 3 and 4.3.1).
func (c *Client) Enroll(ctx context.Context, n int) error {
	if err := c.Register(ctx); err != nil {
		return err
	}
	if n > 0 {
		if _, err := c.PublishKeyPackages(ctx, n); err != nil {
			return fmt.Errorf("client: publishing KeyPackages of %s: %w", c.id.Client, err)
		}
	}
	return nil
}

// PublishKeyPackages generates n KeyPackages (RFC 9420, Section 10) with
// the default capabilities of package mls (which include AppSync,
// application_states and SelfRemove, as MIMI rooms require), keeps their
// private keys, and uploads them to the provider
// (draft-ralston-mimi-protocol-02, Section 4.3.1). It returns their
// KeyPackageRefs.
//
// An upload that gets no answer is sent again, the same KeyPackages (a
// provider takes a KeyPackage it already holds as uploaded). If no try is
// answered, the error wraps ErrOutcomeUnknown and the private keys are kept
// anyway: the provider may hold the KeyPackages and hand them out, and a
// Welcome to one of them must still be processed. KeyPackageCount then
// counts them.
func (c *Client) PublishKeyPackages(ctx context.Context, n int) ([][]byte, error) {
	if n <= 0 || n > MaxKeyPackages {
		return nil, fmt.Errorf("%w: %d KeyPackages (1 to %d)", ErrInvalidArgument, n, MaxKeyPackages)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kps := make([]*wire.KeyPackage, 0, n)
	refs := make([][]byte, 0, n)
	bundles := make(map[string]*mls.KeyPackageBundle, n)
	for range n {
		b, err := mls.NewKeyPackage(c.suite.ID(), c.cred, c.sigPriv, &mls.KeyPackageOptions{Clock: c.opts.Clock})
		if err != nil {
			return nil, fmt.Errorf("client: generating a KeyPackage: %w", err)
		}
		ref, err := b.Ref()
		if err != nil {
			return nil, fmt.Errorf("client: KeyPackageRef: %w", err)
		}
		bundles[string(ref)] = b
		kps = append(kps, b.KeyPackage)
		refs = append(refs, ref)
	}
	err := c.resend(ctx, func() error { return c.p.UploadKeyPackages(ctx, c.id.Client, kps) })
	for r, b := range bundles {
		c.bundles[r] = b
	}
	if err != nil {
		return refs, fmt.Errorf("%w: uploading KeyPackages: %w", ErrOutcomeUnknown, err)
	}
	return refs, nil
}

// KeyPackageCount returns how many published KeyPackages have not been
// used by a Welcome yet (RFC 9420, Section 16.8: each is used once).
func (c *Client) KeyPackageCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.bundles)
}

// RoomInfo is the state of a room as the client's MLS group holds it
// (draft-ralston-mimi-protocol-02, Section 6): the base policy and
// participant list from the application_states extension, the MLS members
// with their identities, and the epoch.
type RoomInfo struct {
	ID                 string
	GroupID            []byte
	Policy             mimi.Policy
	Participants       []mimi.Participant // ascending by user URI
	Members            []mimi.ClientIdentity
	Epoch              uint64
	EpochAuthenticator []byte
	// Leaving is set after Leave, until the commit removing the client.
	Leaving bool
}

// Role returns a participant's role (draft-ralston-mimi-protocol-02,
// Section 4.3.1).
func (ri *RoomInfo) Role(user string) (string, bool) {
	for _, p := range ri.Participants {
		if p.User == user {
			return p.Role, true
		}
	}
	return "", false
}

// Rooms returns the URIs of the rooms the client is a member of, sorted
// (draft-ralston-mimi-protocol-02, Section 3).
func (c *Client) Rooms() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.rooms))
	for id := range c.rooms {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Room returns the room's state as the client's group holds it
// (draft-ralston-mimi-protocol-02, Sections 4.3 and 6.1): policy and
// participants decoded from application_states, and the members.
func (c *Client) Room(roomID string) (*RoomInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.room(roomID)
	if err != nil {
		return nil, err
	}
	rm, err := roomState(r.g)
	if err != nil {
		return nil, err
	}
	ms, err := members(r.g)
	if err != nil {
		return nil, err
	}
	info := &RoomInfo{
		ID: r.id, GroupID: r.g.GroupID(), Policy: rm.Policy, Participants: rm.Participants,
		Epoch: r.g.Epoch(), EpochAuthenticator: r.g.EpochAuthenticator(), Leaving: r.leaving,
	}
	for _, m := range ms {
		info.Members = append(info.Members, m.id)
	}
	return info, nil
}

// Epoch returns the current MLS epoch of the room's group (RFC 9420,
// Section 8.1).
func (c *Client) Epoch(roomID string) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.room(roomID)
	if err != nil {
		return 0, err
	}
	return r.g.Epoch(), nil
}

// EpochAuthenticator returns the epoch_authenticator of the room's group
// (RFC 9420, Section 8.7): members who agree on it share the epoch's keys
// and state, which apps can compare out of band.
func (c *Client) EpochAuthenticator(roomID string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, err := c.room(roomID)
	if err != nil {
		return nil, err
	}
	return r.g.EpochAuthenticator(), nil
}

func (c *Client) room(roomID string) (*room, error) {
	r := c.rooms[roomID]
	if r == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownRoom, roomID)
	}
	return r, nil
}

// roomState decodes the MIMI room from the group's application_states
// (draft-ralston-mimi-protocol-02, Sections 4.3 and 7).
func roomState(g *mls.Group) (*mimi.Room, error) {
	st, err := g.ApplicationStates()
	if err != nil {
		return nil, fmt.Errorf("client: application_states: %w", err)
	}
	rm, err := mimi.RoomFromStates(st)
	if err != nil {
		return nil, fmt.Errorf("client: room state: %w", err)
	}
	return rm, nil
}

// member is an MLS member with its MIMI identity.
type member struct {
	leaf uint32
	id   mimi.ClientIdentity
}

// members lists the group's members with their identities, in leaf order.
func members(g *mls.Group) ([]member, error) {
	var out []member
	for _, m := range g.Members() {
		id, err := mimi.IdentityFromCredential(&m.Credential)
		if err != nil {
			return nil, fmt.Errorf("client: member at leaf %d: %w", m.Leaf, err)
		}
		out = append(out, member{leaf: uint32(m.Leaf), id: *id})
	}
	return out, nil
}
