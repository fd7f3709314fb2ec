package projections

import (
	"fmt"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mls/codec"
)

// Room is the hub's state of a room (draft-ralston-mimi-protocol-02,
// Sections 4.3.1 and 6.1): its hub, base policy, participant list, MLS
// epoch, latest GroupInfo and ratchet tree, and the MLS clients in its
// group.
type Room struct {
	ID           string
	Hub          string
	Creator      string
	Epoch        uint64
	Policy       []byte
	Participants []byte
	// Members are the MLS client URIs in the group, sorted.
	Members []string
	Closed  bool
	// CreatedAt/CreatedSeq: timestamp and log position of RoomCreated.
	CreatedAt, CreatedSeq uint64
	// LastCommitAt/LastCommitSeq: the latest CommitAccepted (0 if none).
	LastCommitAt, LastCommitSeq uint64
	// Proposals is the number of proposals cached for the current epoch.
	Proposals uint32

	// GroupInfo and RatchetTree are those of Epoch.
	GroupInfo   []byte
	RatchetTree []byte
}

func (r *Room) marshal(w *codec.Writer) {
	w.Opaque([]byte(r.ID))
	w.Opaque([]byte(r.Hub))
	w.Opaque([]byte(r.Creator))
	w.U64(r.Epoch)
	w.Opaque(r.Policy)
	w.Opaque(r.Participants)
	writeStrings(w, r.Members)
	w.Bool(r.Closed)
	w.U64(r.CreatedAt)
	w.U64(r.CreatedSeq)
	w.U64(r.LastCommitAt)
	w.U64(r.LastCommitSeq)
	w.U32(r.Proposals)
}

func (r *Room) unmarshal(rd *codec.Reader) {
	r.ID = string(rd.Opaque("room.id"))
	r.Hub = string(rd.Opaque("room.hub"))
	r.Creator = string(rd.Opaque("room.creator"))
	r.Epoch = rd.U64("room.epoch")
	r.Policy = rd.Opaque("room.policy")
	r.Participants = rd.Opaque("room.participants")
	r.Members = readStrings(rd, "room.members")
	r.Closed = rd.Bool("room.closed")
	r.CreatedAt = rd.U64("room.created_at")
	r.CreatedSeq = rd.U64("room.created_seq")
	r.LastCommitAt = rd.U64("room.last_commit_at")
	r.LastCommitSeq = rd.U64("room.last_commit_seq")
	r.Proposals = rd.U32("room.proposals")
}

// groupState is the part of a room that changes on every commit and is
// large, stored apart from the room record.
type groupState struct {
	Epoch       uint64
	GroupInfo   []byte
	RatchetTree []byte
}

func (g *groupState) marshal(w *codec.Writer) {
	w.U64(g.Epoch)
	w.Opaque(g.GroupInfo)
	w.Opaque(g.RatchetTree)
}

func (g *groupState) unmarshal(r *codec.Reader) {
	g.Epoch = r.U64("group.epoch")
	g.GroupInfo = r.Opaque("group.group_info")
	g.RatchetTree = r.Opaque("group.ratchet_tree")
}

// Proposal is a proposal cached for a room's current epoch
// (draft-ralston-mimi-protocol-02, Section 6.3; RFC 9420, Section 12.1).
type Proposal struct {
	Seq       uint64 // log position of ProposalAccepted
	Timestamp uint64
	Epoch     uint64
	Ref       []byte // ProposalRef
	Sender    string
	Message   []byte // MLSMessage
}

func (p *Proposal) marshal(w *codec.Writer) {
	w.U64(p.Seq)
	w.U64(p.Timestamp)
	w.U64(p.Epoch)
	w.Opaque(p.Ref)
	w.Opaque([]byte(p.Sender))
	w.Opaque(p.Message)
}

func (p *Proposal) unmarshal(r *codec.Reader) {
	p.Seq = r.U64("proposal.seq")
	p.Timestamp = r.U64("proposal.timestamp")
	p.Epoch = r.U64("proposal.epoch")
	p.Ref = r.Opaque("proposal.ref")
	p.Sender = string(r.Opaque("proposal.sender"))
	p.Message = r.Opaque("proposal.message")
}

// Client is a registered local client.
type Client struct {
	Client       string
	User         string
	SignatureKey []byte
	Credential   []byte
	RegisteredAt uint64 // timestamp of the first registration
	Seq          uint64 // log position of the latest ClientRegistered
}

func (c *Client) marshal(w *codec.Writer) {
	w.Opaque([]byte(c.Client))
	w.Opaque([]byte(c.User))
	w.Opaque(c.SignatureKey)
	w.Opaque(c.Credential)
	w.U64(c.RegisteredAt)
	w.U64(c.Seq)
}

func (c *Client) unmarshal(r *codec.Reader) {
	c.Client = string(r.Opaque("client.client"))
	c.User = string(r.Opaque("client.user"))
	c.SignatureKey = r.Opaque("client.signature_key")
	c.Credential = r.Opaque("client.credential")
	c.RegisteredAt = r.U64("client.registered_at")
	c.Seq = r.U64("client.seq")
}

// KeyPackage is an uploaded KeyPackage and its claim state
// (draft-ralston-mimi-protocol-02, Section 5.2).
type KeyPackage struct {
	Ref         []byte
	Client      string
	CipherSuite uint16
	NotAfter    uint64 // seconds since the UNIX epoch
	Data        []byte
	UploadSeq   uint64 // log position of KeyPackagesUploaded
	UploadIndex uint32 // position within that event
	Claimed     bool
	Claimer     string // requesting user
	Room        string // room the claim was for
	ClaimedAt   uint64 // timestamp of the claim
	ClaimSeq    uint64 // log position of KeyPackageClaimed
}

func (k *KeyPackage) marshal(w *codec.Writer) {
	w.Opaque(k.Ref)
	w.Opaque([]byte(k.Client))
	w.U16(k.CipherSuite)
	w.U64(k.NotAfter)
	w.Opaque(k.Data)
	w.U64(k.UploadSeq)
	w.U32(k.UploadIndex)
	w.Bool(k.Claimed)
	w.Opaque([]byte(k.Claimer))
	w.Opaque([]byte(k.Room))
	w.U64(k.ClaimedAt)
	w.U64(k.ClaimSeq)
}

func (k *KeyPackage) unmarshal(r *codec.Reader) {
	k.Ref = r.Opaque("key_package.ref")
	k.Client = string(r.Opaque("key_package.client"))
	k.CipherSuite = r.U16("key_package.cipher_suite")
	k.NotAfter = r.U64("key_package.not_after")
	k.Data = r.Opaque("key_package.data")
	k.UploadSeq = r.U64("key_package.upload_seq")
	k.UploadIndex = r.U32("key_package.upload_index")
	k.Claimed = r.Bool("key_package.claimed")
	k.Claimer = string(r.Opaque("key_package.claimer"))
	k.Room = string(r.Opaque("key_package.room"))
	k.ClaimedAt = r.U64("key_package.claimed_at")
	k.ClaimSeq = r.U64("key_package.claim_seq")
}

// Expired reports whether the KeyPackage is expired at now (milliseconds
// since the UNIX epoch): its NotAfter second has passed
// (draft-ralston-mimi-protocol-02, Section 5.2: "MUST NOT provide expired
// keying material").
func (k *KeyPackage) Expired(now uint64) bool { return expired(k.NotAfter, now) }

func expired(notAfter, nowMillis uint64) bool { return nowMillis/1000 > notAfter }

// TargetRoute is the target provider's association of a claimed
// KeyPackageRef with its client (draft-ralston-mimi-protocol-02,
// Section 5.2).
type TargetRoute struct {
	Ref     []byte
	Client  string
	Claimer string
	Room    string
	Seq     uint64
}

// HubRoute is the hub's association of a KeyPackageRef with the provider
// it came from, used to route Welcome messages
// (draft-ralston-mimi-protocol-02, Sections 4.3.1 and 5.5).
type HubRoute struct {
	Ref      []byte
	Provider string
	User     string
	Room     string
	Seq      uint64
}

func (h *HubRoute) marshal(w *codec.Writer) {
	w.Opaque(h.Ref)
	w.Opaque([]byte(h.Provider))
	w.Opaque([]byte(h.User))
	w.Opaque([]byte(h.Room))
	w.U64(h.Seq)
}

func (h *HubRoute) unmarshal(r *codec.Reader) {
	h.Ref = r.Opaque("hub_route.ref")
	h.Provider = string(r.Opaque("hub_route.provider"))
	h.User = string(r.Opaque("hub_route.user"))
	h.Room = string(r.Opaque("hub_route.room"))
	h.Seq = r.U64("hub_route.seq")
}

// Cursor is the state of one delivery queue (a destination provider's
// fanout queue or a local client's inbox): entries 1..Enqueued were queued,
// 1..Acked are acknowledged, Acked+1..Enqueued are pending.
type Cursor struct {
	Enqueued uint64
	Acked    uint64
}

// Pending is the number of unacknowledged entries.
func (c Cursor) Pending() uint64 { return c.Enqueued - c.Acked }

func (c *Cursor) marshal(w *codec.Writer) {
	w.U64(c.Enqueued)
	w.U64(c.Acked)
}

func (c *Cursor) unmarshal(r *codec.Reader) {
	c.Enqueued = r.U64("cursor.enqueued")
	c.Acked = r.U64("cursor.acked")
}

// Delivery is one queued entry: Part of the event at SourceSeq, queued by
// the event at EnqueueSeq at position N of its queue. Resolve its bytes
// with Machine.Payload.
type Delivery struct {
	N          uint64
	SourceSeq  uint64
	Part       eventlog.Part
	Index      uint32
	Room       string
	EnqueueSeq uint64
	// Timestamp is the source event's timestamp: the hub acceptance time
	// a FanoutMessage carries (draft-ralston-mimi-protocol-02, Section 5.5).
	Timestamp uint64
}

func (d *Delivery) marshal(w *codec.Writer) {
	w.U64(d.N)
	w.U64(d.SourceSeq)
	w.U8(uint8(d.Part))
	w.U32(d.Index)
	w.Opaque([]byte(d.Room))
	w.U64(d.EnqueueSeq)
	w.U64(d.Timestamp)
}

func (d *Delivery) unmarshal(r *codec.Reader) {
	d.N = r.U64("delivery.n")
	d.SourceSeq = r.U64("delivery.source_seq")
	d.Part = eventlog.Part(r.U8("delivery.part"))
	d.Index = r.U32("delivery.index")
	d.Room = string(r.Opaque("delivery.room"))
	d.EnqueueSeq = r.U64("delivery.enqueue_seq")
	d.Timestamp = r.U64("delivery.timestamp")
}

// notifyRecord is an entry of the inbound notify dedup set.
type notifyRecord struct {
	Seq  uint64
	Room string
}

func (n *notifyRecord) marshal(w *codec.Writer) {
	w.U64(n.Seq)
	w.Opaque([]byte(n.Room))
}

func (n *notifyRecord) unmarshal(r *codec.Reader) {
	n.Seq = r.U64("notify.seq")
	n.Room = string(r.Opaque("notify.room"))
}

// MessageRecord is an entry of a hosted room's set of accepted
// application messages of the current epoch (draft-ralston-mimi-protocol-02,
// Section 5.4): the event that accepted the message and its hub
// timestamp, so that a resubmission of the same bytes gets the first
// answer again.
type MessageRecord struct {
	Seq       uint64
	Timestamp uint64
}

func (m *MessageRecord) marshal(w *codec.Writer) {
	w.U64(m.Seq)
	w.U64(m.Timestamp)
}

func (m *MessageRecord) unmarshal(r *codec.Reader) {
	m.Seq = r.U64("message.seq")
	m.Timestamp = r.U64("message.timestamp")
}

// notifyAge is an entry of the dedup set's acceptance-order index: the
// accepting event's timestamp and the dedup entry's key.
type notifyAge struct {
	Timestamp uint64
	Key       []byte
}

func (n *notifyAge) marshal(w *codec.Writer) {
	w.U64(n.Timestamp)
	w.Opaque(n.Key)
}

func (n *notifyAge) unmarshal(r *codec.Reader) {
	n.Timestamp = r.U64("notify_age.timestamp")
	n.Key = r.Opaque("notify_age.key")
}

type record interface {
	marshal(w *codec.Writer)
	unmarshal(r *codec.Reader)
}

// maxEncoder is the size past which an encoder starts a new buffer.
const maxEncoder = 64 << 10

// encoder encodes records into one growing buffer, replaced once past
// maxEncoder. A codec.Writer only appends, so a record's encoding is the
// tail its marshal added and is never overwritten by later records: the
// records share a buffer instead of allocating (and growing) one each. An
// encoding must not be retained, since it pins the whole buffer: the
// batch copies what it is given, and so does tx.set for its cache.
type encoder struct {
	w *codec.Writer
}

// encode returns rec's encoding.
func (e *encoder) encode(rec record) ([]byte, error) {
	if e.w == nil || e.w.Len() > maxEncoder {
		e.w = codec.NewWriter()
	}
	start := e.w.Len()
	rec.marshal(e.w)
	b, err := e.w.Bytes()
	if err != nil {
		e.w = nil // the error is sticky
		return nil, fmt.Errorf("%w: encode record: %w", ErrInvalidEvent, err)
	}
	return b[start:len(b):len(b)], nil
}

func decode(b []byte, field string, rec record) error {
	r := codec.NewReader(b)
	rec.unmarshal(r)
	if err := r.Done(field); err != nil {
		return fmt.Errorf("%w: %s record: %w", ErrCorruptState, field, err)
	}
	return nil
}

func writeStrings(w *codec.Writer, ss []string) {
	w.Vector(func(w *codec.Writer) {
		for _, s := range ss {
			w.Opaque([]byte(s))
		}
	})
}

func readStrings(r *codec.Reader, field string) []string {
	var out []string
	r.Vector(field, func(r *codec.Reader) { out = append(out, string(r.Opaque(field))) })
	return out
}
