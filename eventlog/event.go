package eventlog

import (
	"errors"
	"fmt"

	"github.com/openmimi/mimi/mls/codec"
)

// SchemaVersion is the event schema version this package writes. Decoding
// accepts exactly the versions listed in supportedVersion.
const SchemaVersion uint16 = 1

// Type identifies an event's body. Values are part of the stored format and
// never reused.
type Type uint16

// Event types. The MIMI flows they record are described in
// draft-ralston-mimi-protocol-02, Sections 4 and 5.
const (
	TypeClientRegistered           Type = 1  // a local client and its signature key
	TypeClientRemoved              Type = 2  // a local client deregistered
	TypeKeyPackagesUploaded        Type = 3  // Section 5.2: KeyPackages published by a client
	TypeKeyPackageClaimed          Type = 4  // Section 5.2: one-time claim of a KeyPackage
	TypeKeyPackageRouted           Type = 5  // Section 5.2: hub records ref -> provider
	TypeRoomCreated                Type = 6  // Section 3.1: a room hosted by this hub
	TypeRoomStateUpdated           Type = 7  // Section 4.3.2: participant list / policy change
	TypeRoomClosed                 Type = 8  // the room accepts no further events
	TypeProposalAccepted           Type = 9  // Section 5.3: hub accepted an MLS proposal
	TypeCommitAccepted             Type = 10 // Section 5.3: hub accepted an MLS commit
	TypeApplicationMessageAccepted Type = 11 // Section 5.4: hub accepted a PrivateMessage
	TypeNotifyAccepted             Type = 12 // Section 5.5: follower accepted a /notify body
	TypeFanoutEnqueued             Type = 13 // Section 5.5: hub queued a message for a provider
	TypeFanoutDelivered            Type = 14 // Section 5.5: a provider acknowledged (HTTP 201)
	TypeClientEnqueued             Type = 15 // a message queued for a local client
	TypeClientDelivered            Type = 16 // a local client acknowledged its inbox
	TypeGroupBound                 Type = 17 // Section 5.5: follower bound a room to its MLS group
	TypeNotifyDedupPruned          Type = 18 // Section 5.5: follower forgot old notify dedup entries
	TypeKeyPackagesExpired         Type = 19 // Section 5.2: unclaimed KeyPackages past not_after withdrawn
	TypeHubKeyDeclared             Type = 20 // Section 5.6: the hub's signature key, once
	TypeClientCallAccepted         Type = 21 // a signed client API call taken, against replays
)

var typeNames = map[Type]string{
	TypeClientRegistered:           "ClientRegistered",
	TypeClientRemoved:              "ClientRemoved",
	TypeKeyPackagesUploaded:        "KeyPackagesUploaded",
	TypeKeyPackageClaimed:          "KeyPackageClaimed",
	TypeKeyPackageRouted:           "KeyPackageRouted",
	TypeRoomCreated:                "RoomCreated",
	TypeRoomStateUpdated:           "RoomStateUpdated",
	TypeRoomClosed:                 "RoomClosed",
	TypeProposalAccepted:           "ProposalAccepted",
	TypeCommitAccepted:             "CommitAccepted",
	TypeApplicationMessageAccepted: "ApplicationMessageAccepted",
	TypeNotifyAccepted:             "NotifyAccepted",
	TypeFanoutEnqueued:             "FanoutEnqueued",
	TypeFanoutDelivered:            "FanoutDelivered",
	TypeClientEnqueued:             "ClientEnqueued",
	TypeClientDelivered:            "ClientDelivered",
	TypeGroupBound:                 "GroupBound",
	TypeNotifyDedupPruned:          "NotifyDedupPruned",
	TypeKeyPackagesExpired:         "KeyPackagesExpired",
	TypeHubKeyDeclared:             "HubKeyDeclared",
	TypeClientCallAccepted:         "ClientCallAccepted",
}

// String returns the type's name.
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("Type(%d)", uint16(t))
}

// Types lists every defined event type in ascending order.
func Types() []Type {
	out := make([]Type, 0, len(typeNames))
	for t := TypeClientRegistered; t <= TypeClientCallAccepted; t++ {
		out = append(out, t)
	}
	return out
}

// NewBody returns an empty body of type t, or nil if t is unknown.
func NewBody(t Type) Body {
	switch t {
	case TypeClientRegistered:
		return &ClientRegistered{}
	case TypeClientRemoved:
		return &ClientRemoved{}
	case TypeKeyPackagesUploaded:
		return &KeyPackagesUploaded{}
	case TypeKeyPackageClaimed:
		return &KeyPackageClaimed{}
	case TypeKeyPackageRouted:
		return &KeyPackageRouted{}
	case TypeRoomCreated:
		return &RoomCreated{}
	case TypeRoomStateUpdated:
		return &RoomStateUpdated{}
	case TypeRoomClosed:
		return &RoomClosed{}
	case TypeProposalAccepted:
		return &ProposalAccepted{}
	case TypeCommitAccepted:
		return &CommitAccepted{}
	case TypeApplicationMessageAccepted:
		return &ApplicationMessageAccepted{}
	case TypeNotifyAccepted:
		return &NotifyAccepted{}
	case TypeFanoutEnqueued:
		return &FanoutEnqueued{}
	case TypeFanoutDelivered:
		return &FanoutDelivered{}
	case TypeClientEnqueued:
		return &ClientEnqueued{}
	case TypeClientDelivered:
		return &ClientDelivered{}
	case TypeGroupBound:
		return &GroupBound{}
	case TypeNotifyDedupPruned:
		return &NotifyDedupPruned{}
	case TypeKeyPackagesExpired:
		return &KeyPackagesExpired{}
	case TypeHubKeyDeclared:
		return &HubKeyDeclared{}
	case TypeClientCallAccepted:
		return &ClientCallAccepted{}
	}
	return nil
}

// Body is the typed payload of an event. Every body type in this package
// implements it with a pointer receiver.
type Body interface {
	// EventType names the body's type.
	EventType() Type
	codec.Marshaler
	codec.Unmarshaler
}

// Errors returned when decoding or encoding events.
var (
	// ErrUnsupportedVersion: an event carries a schema version this build
	// cannot decode.
	ErrUnsupportedVersion = errors.New("eventlog: unsupported event schema version")
	// ErrUnknownType: an event carries an unknown type.
	ErrUnknownType = errors.New("eventlog: unknown event type")
	// ErrNilBody: an event to be encoded has no body.
	ErrNilBody = errors.New("eventlog: event has no body")
)

// Event is one entry of the replicated log: every change to a MIMI
// provider's state (draft-ralston-mimi-protocol-02, Section 4.3.1) is
// recorded as an Event.
//
// Its encoding, in the TLS presentation language of RFC 9420, Section 2.1:
//
//	struct {
//	    uint16 version;     /* SchemaVersion */
//	    uint16 type;        /* Type */
//	    opaque room<V>;     /* room ID, may be empty */
//	    uint64 timestamp;   /* milliseconds since the UNIX epoch, chosen by the proposer */
//	    opaque body<V>;     /* the body's own encoding */
//	} Event;
//
// Seq and RoomSeq are not part of that encoding: the log assigns them when
// the event is appended and stores them in the record around it.
type Event struct {
	// Version is the schema version; 0 encodes as SchemaVersion.
	Version uint16
	// Room is the room the event belongs to, or empty.
	Room string
	// Timestamp is milliseconds since the UNIX epoch, chosen by whoever
	// proposed the event (never read from a clock while applying).
	Timestamp uint64
	// Body is the typed payload; its EventType is the event's type.
	Body Body

	// Seq is the global sequence number (1-based), assigned on append.
	Seq uint64
	// RoomSeq is the 1-based sequence number within Room, assigned on
	// append when Room is not empty.
	RoomSeq uint64
}

// New returns an event of the current schema version.
func New(room string, timestamp uint64, body Body) Event {
	return Event{Version: SchemaVersion, Room: room, Timestamp: timestamp, Body: body}
}

// Type returns the type of the event's body, or 0 if it has none.
func (e *Event) Type() Type {
	if e.Body == nil {
		return 0
	}
	return e.Body.EventType()
}

func supportedVersion(v uint16) bool { return v == 1 }

// MarshalMLS writes the event's encoding (without Seq and RoomSeq).
func (e *Event) MarshalMLS(w *codec.Writer) {
	v := e.Version
	if v == 0 {
		v = SchemaVersion
	}
	if !supportedVersion(v) {
		w.Fail(fmt.Errorf("%w: %d", ErrUnsupportedVersion, v))
		return
	}
	if e.Body == nil {
		w.Fail(ErrNilBody)
		return
	}
	w.U16(v)
	w.U16(uint16(e.Body.EventType()))
	w.OpaqueString(e.Room)
	w.U64(e.Timestamp)
	w.Vector(func(w *codec.Writer) { e.Body.MarshalMLS(w) })
}

// UnmarshalMLS reads an event written by MarshalMLS. The body must be
// consumed exactly.
func (e *Event) UnmarshalMLS(r *codec.Reader) {
	*e = Event{}
	e.Version = r.U16("event.version")
	if r.Err() == nil && !supportedVersion(e.Version) {
		r.Fail("event.version", ErrUnsupportedVersion)
		return
	}
	t := Type(r.U16("event.type"))
	if r.Err() != nil {
		return
	}
	body := NewBody(t)
	if body == nil {
		r.Fail("event.type", ErrUnknownType)
		return
	}
	e.Room = r.OpaqueString("event.room")
	e.Timestamp = r.U64("event.timestamp")
	// The body is an opaque<V> holding exactly one value: read it as a
	// vector whose single element must consume the whole content.
	n := 0
	r.Vector("event.body", func(r *codec.Reader) {
		if n > 0 {
			r.Fail("event.body", codec.ErrTrailingData)
			return
		}
		n++
		body.UnmarshalMLS(r)
		if r.Err() == nil && !r.Empty() {
			r.Fail("event.body", codec.ErrTrailingData)
		}
	})
	if r.Err() != nil {
		return
	}
	if n == 0 {
		// An empty body is valid only for types whose encoding is empty.
		if err := codec.Unmarshal(nil, "event.body", body); err != nil {
			r.Fail("event.body", codec.ErrTruncated)
			return
		}
	}
	e.Body = body
}

// Encode returns the event's encoding.
func Encode(e *Event) ([]byte, error) {
	b, err := codec.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("eventlog: encode %s: %w", e.Type(), err)
	}
	return b, nil
}

// Decode parses one event, failing on trailing bytes. Seq and RoomSeq are
// left zero.
func Decode(b []byte) (Event, error) {
	var e Event
	if err := codec.Unmarshal(b, "event", &e); err != nil {
		return Event{}, fmt.Errorf("eventlog: decode event: %w", err)
	}
	return e, nil
}
