package eventlog

import (
	"crypto/sha256"
	"slices"

	"github.com/openmimi/mimi/mls/codec"
)

// Encoding helpers shared by the bodies. Strings are opaque<V> holding the
// string's bytes; a nil []byte marked "optional" is absent, any non-nil
// value (even empty) is present.

func writeString(w *codec.Writer, s string) { w.OpaqueString(s) }

func readString(r *codec.Reader, field string) string { return r.OpaqueString(field) }

func writeStrings(w *codec.Writer, ss []string) {
	w.Vector(func(w *codec.Writer) {
		for _, s := range ss {
			writeString(w, s)
		}
	})
}

func readStrings(r *codec.Reader, field string) []string {
	var out []string
	r.Vector(field, func(r *codec.Reader) { out = append(out, readString(r, field)) })
	return out
}

func writeOptBytes(w *codec.Writer, b []byte) {
	w.Optional(b != nil, func(w *codec.Writer) { w.Opaque(b) })
}

func readOptBytes(r *codec.Reader, field string) []byte {
	var out []byte
	r.Optional(field, func(r *codec.Reader) { out = r.Opaque(field) })
	return out
}

// Part selects which message of a source event a delivery refers to.
type Part uint8

// Parts of a source event (draft-ralston-mimi-protocol-02, Section 5.5:
// a FanoutMessage carries either the handshake/application MLSMessage or a
// Welcome).
const (
	// PartMessage is the event's main message: the proposal, the commit,
	// the application message, or a notify body.
	PartMessage Part = 0
	// PartWelcome is a CommitAccepted event's Welcome.
	PartWelcome Part = 1
)

// ClientRegistered records a local client of a local user with its MLS
// signature key and credential (RFC 9420, Section 5.3).
type ClientRegistered struct {
	User         string // user URI, e.g. mimi://a.example/u/alice
	Client       string // client URI
	SignatureKey []byte // SignaturePublicKey
	Credential   []byte // encoded MLS Credential
}

// EventType implements Body.
func (*ClientRegistered) EventType() Type { return TypeClientRegistered }

// MarshalMLS implements codec.Marshaler.
func (b *ClientRegistered) MarshalMLS(w *codec.Writer) {
	writeString(w, b.User)
	writeString(w, b.Client)
	w.Opaque(b.SignatureKey)
	w.Opaque(b.Credential)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *ClientRegistered) UnmarshalMLS(r *codec.Reader) {
	b.User = readString(r, "client_registered.user")
	b.Client = readString(r, "client_registered.client")
	b.SignatureKey = r.Opaque("client_registered.signature_key")
	b.Credential = r.Opaque("client_registered.credential")
}

// ClientRemoved records that a local client was deregistered; its unclaimed
// KeyPackages are withdrawn.
type ClientRemoved struct {
	Client string
}

// EventType implements Body.
func (*ClientRemoved) EventType() Type { return TypeClientRemoved }

// MarshalMLS implements codec.Marshaler.
func (b *ClientRemoved) MarshalMLS(w *codec.Writer) { writeString(w, b.Client) }

// UnmarshalMLS implements codec.Unmarshaler.
func (b *ClientRemoved) UnmarshalMLS(r *codec.Reader) {
	b.Client = readString(r, "client_removed.client")
}

// KeyPackage is one uploaded KeyPackage (RFC 9420, Section 10) with the
// facts the provider indexes it by.
type KeyPackage struct {
	Ref         []byte // KeyPackageRef (RFC 9420, Section 5.2)
	CipherSuite uint16
	NotAfter    uint64 // leaf_node.lifetime.not_after, seconds since the UNIX epoch
	Data        []byte // the KeyPackage's MLS encoding
}

// KeyPackagesUploaded records KeyPackages a client published
// (draft-ralston-mimi-protocol-02, Section 4.3.1).
type KeyPackagesUploaded struct {
	Client      string
	KeyPackages []KeyPackage
}

// EventType implements Body.
func (*KeyPackagesUploaded) EventType() Type { return TypeKeyPackagesUploaded }

// MarshalMLS implements codec.Marshaler.
func (b *KeyPackagesUploaded) MarshalMLS(w *codec.Writer) {
	writeString(w, b.Client)
	w.Vector(func(w *codec.Writer) {
		for i := range b.KeyPackages {
			kp := &b.KeyPackages[i]
			w.Opaque(kp.Ref)
			w.U16(kp.CipherSuite)
			w.U64(kp.NotAfter)
			w.Opaque(kp.Data)
		}
	})
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *KeyPackagesUploaded) UnmarshalMLS(r *codec.Reader) {
	b.Client = readString(r, "key_packages_uploaded.client")
	b.KeyPackages = nil
	r.Vector("key_packages_uploaded.key_packages", func(r *codec.Reader) {
		var kp KeyPackage
		kp.Ref = r.Opaque("key_package.ref")
		kp.CipherSuite = r.U16("key_package.cipher_suite")
		kp.NotAfter = r.U64("key_package.not_after")
		kp.Data = r.Opaque("key_package.data")
		b.KeyPackages = append(b.KeyPackages, kp)
	})
}

// KeyPackageClaimed records the one-time claim of a KeyPackage by a
// requesting user for a room (draft-ralston-mimi-protocol-02, Section 5.2:
// "Keying material provided from one response MUST NOT be provided in any
// other response"). The event's Room is the room the claim is for; the
// claim also establishes the target-side route ref -> client.
type KeyPackageClaimed struct {
	Ref     []byte // KeyPackageRef
	Client  string // the client owning the KeyPackage
	Claimer string // the requesting user URI
}

// EventType implements Body.
func (*KeyPackageClaimed) EventType() Type { return TypeKeyPackageClaimed }

// MarshalMLS implements codec.Marshaler.
func (b *KeyPackageClaimed) MarshalMLS(w *codec.Writer) {
	w.Opaque(b.Ref)
	writeString(w, b.Client)
	writeString(w, b.Claimer)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *KeyPackageClaimed) UnmarshalMLS(r *codec.Reader) {
	b.Ref = r.Opaque("key_package_claimed.ref")
	b.Client = readString(r, "key_package_claimed.client")
	b.Claimer = readString(r, "key_package_claimed.claimer")
}

// KeyPackageRouted records, at the hub, which provider a KeyPackage was
// obtained from, so a Welcome can later be routed there
// (draft-ralston-mimi-protocol-02, Section 4.3.1).
type KeyPackageRouted struct {
	Ref      []byte // KeyPackageRef
	Provider string // the target provider's domain
	User     string // the target user URI
}

// EventType implements Body.
func (*KeyPackageRouted) EventType() Type { return TypeKeyPackageRouted }

// MarshalMLS implements codec.Marshaler.
func (b *KeyPackageRouted) MarshalMLS(w *codec.Writer) {
	w.Opaque(b.Ref)
	writeString(w, b.Provider)
	writeString(w, b.User)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *KeyPackageRouted) UnmarshalMLS(r *codec.Reader) {
	b.Ref = r.Opaque("key_package_routed.ref")
	b.Provider = readString(r, "key_package_routed.provider")
	b.User = readString(r, "key_package_routed.user")
}

// RoomCreated records a room whose hub is this provider
// (draft-ralston-mimi-protocol-02, Sections 3.1 and 6.1). The event's Room
// is the room ID.
type RoomCreated struct {
	Hub          string // hub provider domain
	Creator      string // creating user URI
	Epoch        uint64 // MLS epoch of GroupInfo
	Policy       []byte // encoded base policy
	Participants []byte // encoded participant list with roles
	GroupInfo    []byte // MLS GroupInfo (without ratchet_tree)
	RatchetTree  []byte // encoded ratchet tree
	Members      []string
}

// EventType implements Body.
func (*RoomCreated) EventType() Type { return TypeRoomCreated }

// MarshalMLS implements codec.Marshaler.
func (b *RoomCreated) MarshalMLS(w *codec.Writer) {
	writeString(w, b.Hub)
	writeString(w, b.Creator)
	w.U64(b.Epoch)
	w.Opaque(b.Policy)
	w.Opaque(b.Participants)
	w.Opaque(b.GroupInfo)
	w.Opaque(b.RatchetTree)
	writeStrings(w, b.Members)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *RoomCreated) UnmarshalMLS(r *codec.Reader) {
	b.Hub = readString(r, "room_created.hub")
	b.Creator = readString(r, "room_created.creator")
	b.Epoch = r.U64("room_created.epoch")
	b.Policy = r.Opaque("room_created.policy")
	b.Participants = r.Opaque("room_created.participants")
	b.GroupInfo = r.Opaque("room_created.group_info")
	b.RatchetTree = r.Opaque("room_created.ratchet_tree")
	b.Members = readStrings(r, "room_created.members")
}

// RoomStateUpdated records a hub-accepted change of the participant list or
// base policy ahead of the commit that confirms it
// (draft-ralston-mimi-protocol-02, Sections 4.3.2 and 6.1). A nil field is
// unchanged.
type RoomStateUpdated struct {
	Participants []byte // optional
	Policy       []byte // optional
	Sender       string
}

// EventType implements Body.
func (*RoomStateUpdated) EventType() Type { return TypeRoomStateUpdated }

// MarshalMLS implements codec.Marshaler.
func (b *RoomStateUpdated) MarshalMLS(w *codec.Writer) {
	writeOptBytes(w, b.Participants)
	writeOptBytes(w, b.Policy)
	writeString(w, b.Sender)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *RoomStateUpdated) UnmarshalMLS(r *codec.Reader) {
	b.Participants = readOptBytes(r, "room_state_updated.participants")
	b.Policy = readOptBytes(r, "room_state_updated.policy")
	b.Sender = readString(r, "room_state_updated.sender")
}

// RoomClosed records that a room accepts no further proposals, commits or
// messages.
type RoomClosed struct {
	Sender string
	Reason string
}

// EventType implements Body.
func (*RoomClosed) EventType() Type { return TypeRoomClosed }

// MarshalMLS implements codec.Marshaler.
func (b *RoomClosed) MarshalMLS(w *codec.Writer) {
	writeString(w, b.Sender)
	writeString(w, b.Reason)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *RoomClosed) UnmarshalMLS(r *codec.Reader) {
	b.Sender = readString(r, "room_closed.sender")
	b.Reason = readString(r, "room_closed.reason")
}

// ProposalAccepted records a proposal the hub accepted for the current epoch
// (draft-ralston-mimi-protocol-02, Section 5.3; RFC 9420, Section 12.1).
type ProposalAccepted struct {
	Epoch       uint64
	Message     []byte // MLSMessage (PublicMessage) carrying the proposal
	ProposalRef []byte // RFC 9420, Section 5.2
	Sender      string
}

// EventType implements Body.
func (*ProposalAccepted) EventType() Type { return TypeProposalAccepted }

// MarshalMLS implements codec.Marshaler.
func (b *ProposalAccepted) MarshalMLS(w *codec.Writer) {
	w.U64(b.Epoch)
	w.Opaque(b.Message)
	w.Opaque(b.ProposalRef)
	writeString(w, b.Sender)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *ProposalAccepted) UnmarshalMLS(r *codec.Reader) {
	b.Epoch = r.U64("proposal_accepted.epoch")
	b.Message = r.Opaque("proposal_accepted.message")
	b.ProposalRef = r.Opaque("proposal_accepted.proposal_ref")
	b.Sender = readString(r, "proposal_accepted.sender")
}

// WelcomeRoute says which provider a Welcome must reach for one
// KeyPackageRef in its secrets (draft-ralston-mimi-protocol-02, Section 5.5).
type WelcomeRoute struct {
	Ref      []byte
	Provider string
}

// CommitAccepted records a commit the hub accepted, moving the room to
// Epoch (draft-ralston-mimi-protocol-02, Section 5.3). The event's
// Timestamp is the hub's acceptedTimestamp.
type CommitAccepted struct {
	Epoch         uint64 // the new epoch
	Commit        []byte // MLSMessage (PublicMessage) carrying the commit
	Welcome       []byte // optional MLSMessage carrying a Welcome
	WelcomeRoutes []WelcomeRoute
	GroupInfo     []byte // GroupInfo for the new epoch
	RatchetTree   []byte // ratchet tree for the new epoch
	Participants  []byte // optional: new participant list
	Policy        []byte // optional: new base policy
	Members       []string
	Sender        string
}

// EventType implements Body.
func (*CommitAccepted) EventType() Type { return TypeCommitAccepted }

// MarshalMLS implements codec.Marshaler.
func (b *CommitAccepted) MarshalMLS(w *codec.Writer) {
	w.U64(b.Epoch)
	w.Opaque(b.Commit)
	writeOptBytes(w, b.Welcome)
	w.Vector(func(w *codec.Writer) {
		for _, rt := range b.WelcomeRoutes {
			w.Opaque(rt.Ref)
			writeString(w, rt.Provider)
		}
	})
	w.Opaque(b.GroupInfo)
	w.Opaque(b.RatchetTree)
	writeOptBytes(w, b.Participants)
	writeOptBytes(w, b.Policy)
	writeStrings(w, b.Members)
	writeString(w, b.Sender)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *CommitAccepted) UnmarshalMLS(r *codec.Reader) {
	b.Epoch = r.U64("commit_accepted.epoch")
	b.Commit = r.Opaque("commit_accepted.commit")
	b.Welcome = readOptBytes(r, "commit_accepted.welcome")
	b.WelcomeRoutes = nil
	r.Vector("commit_accepted.welcome_routes", func(r *codec.Reader) {
		var rt WelcomeRoute
		rt.Ref = r.Opaque("welcome_route.ref")
		rt.Provider = readString(r, "welcome_route.provider")
		b.WelcomeRoutes = append(b.WelcomeRoutes, rt)
	})
	b.GroupInfo = r.Opaque("commit_accepted.group_info")
	b.RatchetTree = r.Opaque("commit_accepted.ratchet_tree")
	b.Participants = readOptBytes(r, "commit_accepted.participants")
	b.Policy = readOptBytes(r, "commit_accepted.policy")
	b.Members = readStrings(r, "commit_accepted.members")
	b.Sender = readString(r, "commit_accepted.sender")
}

// ApplicationMessageAccepted records an application message the hub
// accepted (draft-ralston-mimi-protocol-02, Section 5.4).
type ApplicationMessageAccepted struct {
	Epoch   uint64
	Message []byte // MLSMessage (PrivateMessage)
	Sender  string
}

// EventType implements Body.
func (*ApplicationMessageAccepted) EventType() Type { return TypeApplicationMessageAccepted }

// MarshalMLS implements codec.Marshaler.
func (b *ApplicationMessageAccepted) MarshalMLS(w *codec.Writer) {
	w.U64(b.Epoch)
	w.Opaque(b.Message)
	writeString(w, b.Sender)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *ApplicationMessageAccepted) UnmarshalMLS(r *codec.Reader) {
	b.Epoch = r.U64("application_message_accepted.epoch")
	b.Message = r.Opaque("application_message_accepted.message")
	b.Sender = readString(r, "application_message_accepted.sender")
}

// NotifyAccepted records, at a follower, the first receipt of a /notify
// request from a hub (draft-ralston-mimi-protocol-02, Section 5.5:
// byte-exact duplicates from the same hub are acknowledged but ignored).
// A request is its room (the path) and its body, so BodyHash is
// NotifyHash(room, Body): the same body posted for another room is another
// request.
type NotifyAccepted struct {
	Hub      string // hub provider domain
	BodyHash []byte // NotifyHash of the event's Room and Body
	Body     []byte // the request body (one or more FanoutMessages)
}

// EventType implements Body.
func (*NotifyAccepted) EventType() Type { return TypeNotifyAccepted }

// MarshalMLS implements codec.Marshaler.
func (b *NotifyAccepted) MarshalMLS(w *codec.Writer) {
	writeString(w, b.Hub)
	w.Opaque(b.BodyHash)
	w.Opaque(b.Body)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *NotifyAccepted) UnmarshalMLS(r *codec.Reader) {
	b.Hub = readString(r, "notify_accepted.hub")
	b.BodyHash = r.Opaque("notify_accepted.body_hash")
	b.Body = r.Opaque("notify_accepted.body")
}

// GroupBound records, at a follower, the MLS group of a room hosted
// elsewhere, as first seen in the group_id of a PublicMessage or
// PrivateMessage its hub fanned out (draft-ralston-mimi-protocol-02,
// Section 5.5; RFC 9420, Section 6). A room has one group and a group
// one room: later messages for the room must carry this group_id, and a
// message of this group posted under another room of the same hub is
// refused. Bindings are per hub: group IDs travel in clear, so one hub
// must not be able to claim another hub's group.
type GroupBound struct {
	Hub     string // the room's hub provider domain
	GroupID []byte
}

// EventType implements Body.
func (*GroupBound) EventType() Type { return TypeGroupBound }

// MarshalMLS implements codec.Marshaler.
func (b *GroupBound) MarshalMLS(w *codec.Writer) {
	writeString(w, b.Hub)
	w.Opaque(b.GroupID)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *GroupBound) UnmarshalMLS(r *codec.Reader) {
	b.Hub = readString(r, "group_bound.hub")
	b.GroupID = r.Opaque("group_bound.group_id")
}

// NotifyDedupPruned makes a follower forget, oldest first, at most Limit
// entries of its notify dedup set (draft-ralston-mimi-protocol-02, Section
// 5.5) that were accepted before OlderThan (milliseconds since the Unix
// epoch, the accepting event's timestamp). A hub re-sends a message only
// until it sees the 201, so entries past a retention far longer than any
// retry schedule are not needed; a hub that comes back after longer could
// deliver a message twice.
type NotifyDedupPruned struct {
	OlderThan uint64
	Limit     uint32
}

// EventType implements Body.
func (*NotifyDedupPruned) EventType() Type { return TypeNotifyDedupPruned }

// MarshalMLS implements codec.Marshaler.
func (b *NotifyDedupPruned) MarshalMLS(w *codec.Writer) {
	w.U64(b.OlderThan)
	w.U32(b.Limit)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *NotifyDedupPruned) UnmarshalMLS(r *codec.Reader) {
	b.OlderThan = r.U64("notify_dedup_pruned.older_than")
	b.Limit = r.U32("notify_dedup_pruned.limit")
}

// KeyPackagesExpired withdraws, oldest not_after first, at most Limit
// unclaimed KeyPackages whose lifetime ended before Now (milliseconds since
// the Unix epoch; RFC 9420, Section 7.2 lifetime). Such KeyPackages are
// never handed out (draft-ralston-mimi-protocol-02, Section 5.2); this
// reclaims their storage. Claimed KeyPackages stay: they route Welcomes.
type KeyPackagesExpired struct {
	Now   uint64
	Limit uint32
}

// EventType implements Body.
func (*KeyPackagesExpired) EventType() Type { return TypeKeyPackagesExpired }

// MarshalMLS implements codec.Marshaler.
func (b *KeyPackagesExpired) MarshalMLS(w *codec.Writer) {
	w.U64(b.Now)
	w.U32(b.Limit)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *KeyPackagesExpired) UnmarshalMLS(r *codec.Reader) {
	b.Now = r.U64("key_packages_expired.now")
	b.Limit = r.U32("key_packages_expired.limit")
}

// HubKeyDeclared records, once per provider, the signature key this
// provider signs with as a hub: its external_senders entry in the rooms it
// hosts (RFC 9420, Section 12.1.8.1) and the key of its GroupInfoResponses
// (draft-ralston-mimi-protocol-02, Section 5.6). Every node of a hub
// cluster must hold this key; a node holding another one would sign what
// clients reject.
type HubKeyDeclared struct {
	CipherSuite  uint16
	SignatureKey []byte // SignaturePublicKey
}

// EventType implements Body.
func (*HubKeyDeclared) EventType() Type { return TypeHubKeyDeclared }

// MarshalMLS implements codec.Marshaler.
func (b *HubKeyDeclared) MarshalMLS(w *codec.Writer) {
	w.U16(b.CipherSuite)
	w.Opaque(b.SignatureKey)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *HubKeyDeclared) UnmarshalMLS(r *codec.Reader) {
	b.CipherSuite = r.U16("hub_key_declared.cipher_suite")
	b.SignatureKey = r.Opaque("hub_key_declared.signature_key")
}

// ClientCallAccepted records that the provider took a signed call of its
// client API whose replay would consume something (a key-material request
// claims KeyPackages, draft-ralston-mimi-protocol-02, Section 5.2), by
// the digest of its signed content, until Expiry (milliseconds since the
// Unix epoch: the end of the call's validity window). Recorded in the
// replicated log, a replay to another node of the provider is refused as
// it is on the node that took the call. Now is the proposer's clock: the
// records expired by then are forgotten.
type ClientCallAccepted struct {
	Digest []byte
	Expiry uint64
	Now    uint64
}

// EventType implements Body.
func (*ClientCallAccepted) EventType() Type { return TypeClientCallAccepted }

// MarshalMLS implements codec.Marshaler.
func (b *ClientCallAccepted) MarshalMLS(w *codec.Writer) {
	w.Opaque(b.Digest)
	w.U64(b.Expiry)
	w.U64(b.Now)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *ClientCallAccepted) UnmarshalMLS(r *codec.Reader) {
	b.Digest = r.Opaque("client_call_accepted.digest")
	b.Expiry = r.U64("client_call_accepted.expiry")
	b.Now = r.U64("client_call_accepted.now")
}

// FanoutEnqueued queues one part of an earlier event for delivery to each
// destination provider (draft-ralston-mimi-protocol-02, Section 5.5). The
// source event is the one Back positions before this event in the global
// log (Back = 1 is the immediately preceding event), so a command can
// enqueue the event it appends without knowing its sequence number.
type FanoutEnqueued struct {
	Destinations []string // provider domains
	Back         uint64
	Part         Part
}

// EventType implements Body.
func (*FanoutEnqueued) EventType() Type { return TypeFanoutEnqueued }

// FanoutDestinations returns the destinations that the FanoutEnqueued
// events among evs queue messages for, sorted and each once
// (draft-ralston-mimi-protocol-02, Section 5.5): whose fanout to wake
// after the events are applied.
func FanoutDestinations(evs []Event) []string {
	var dests []string
	for i := range evs {
		if fe, ok := evs[i].Body.(*FanoutEnqueued); ok {
			dests = append(dests, fe.Destinations...)
		}
	}
	slices.Sort(dests)
	return slices.Compact(dests)
}

// MarshalMLS implements codec.Marshaler.
func (b *FanoutEnqueued) MarshalMLS(w *codec.Writer) {
	writeStrings(w, b.Destinations)
	w.U64(b.Back)
	w.U8(uint8(b.Part))
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *FanoutEnqueued) UnmarshalMLS(r *codec.Reader) {
	b.Destinations = readStrings(r, "fanout_enqueued.destinations")
	b.Back = r.U64("fanout_enqueued.back")
	b.Part = Part(r.U8("fanout_enqueued.part"))
}

// FanoutDelivered records that a destination provider acknowledged every
// queued entry up to and including UpTo (draft-ralston-mimi-protocol-02,
// Section 5.5: HTTP 201).
type FanoutDelivered struct {
	Destination string
	UpTo        uint64
}

// EventType implements Body.
func (*FanoutDelivered) EventType() Type { return TypeFanoutDelivered }

// MarshalMLS implements codec.Marshaler.
func (b *FanoutDelivered) MarshalMLS(w *codec.Writer) {
	writeString(w, b.Destination)
	w.U64(b.UpTo)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *FanoutDelivered) UnmarshalMLS(r *codec.Reader) {
	b.Destination = readString(r, "fanout_delivered.destination")
	b.UpTo = r.U64("fanout_delivered.up_to")
}

// ClientEnqueued queues one part of an earlier event (Back positions before
// this one, as in FanoutEnqueued) into each local client's inbox. Index
// selects a sub-message within the part where the part holds several (the
// FanoutMessages of a notify body); its meaning is the caller's.
type ClientEnqueued struct {
	Clients []string
	Back    uint64
	Part    Part
	Index   uint32
}

// EventType implements Body.
func (*ClientEnqueued) EventType() Type { return TypeClientEnqueued }

// MarshalMLS implements codec.Marshaler.
func (b *ClientEnqueued) MarshalMLS(w *codec.Writer) {
	writeStrings(w, b.Clients)
	w.U64(b.Back)
	w.U8(uint8(b.Part))
	w.U32(b.Index)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *ClientEnqueued) UnmarshalMLS(r *codec.Reader) {
	b.Clients = readStrings(r, "client_enqueued.clients")
	b.Back = r.U64("client_enqueued.back")
	b.Part = Part(r.U8("client_enqueued.part"))
	b.Index = r.U32("client_enqueued.index")
}

// ClientDelivered records that a local client acknowledged every inbox entry
// up to and including UpTo.
type ClientDelivered struct {
	Client string
	UpTo   uint64
}

// EventType implements Body.
func (*ClientDelivered) EventType() Type { return TypeClientDelivered }

// MarshalMLS implements codec.Marshaler.
func (b *ClientDelivered) MarshalMLS(w *codec.Writer) {
	writeString(w, b.Client)
	w.U64(b.UpTo)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (b *ClientDelivered) UnmarshalMLS(r *codec.Reader) {
	b.Client = readString(r, "client_delivered.client")
	b.UpTo = r.U64("client_delivered.up_to")
}

// NotifyHash identifies a /notify request for deduplication
// (draft-ralston-mimi-protocol-02, Section 5.5): SHA-256 over the room ID
// (as opaque<V>) followed by the request body.
func NotifyHash(room string, body []byte) []byte {
	h := sha256.New()
	w := codec.NewWriter()
	w.Opaque([]byte(room))
	b, _ := w.Bytes() // a room ID is far below the varint limit
	h.Write(b)
	h.Write(body)
	return h.Sum(nil)
}
