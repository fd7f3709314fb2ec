package projections

import (
	"fmt"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mls/codec"
)

// CommandVersion is the command encoding version.
const CommandVersion uint16 = 1

// Command is what the Raft leader proposes and every node applies: a list of
// conditions checked against the projections before anything is written,
// then a list of operations, each appending one event. The whole command
// succeeds or changes nothing (except the applied index).
//
// Encoding (TLS presentation language, RFC 9420, Section 2.1):
//
//	struct {
//	    uint16 version;             /* CommandVersion */
//	    Condition conditions<V>;
//	    Op ops<V>;
//	} Command;
type Command struct {
	Conditions []Condition
	Ops        []Op
}

// ConditionKind selects a Condition's check.
type ConditionKind uint8

// Condition kinds. Each names the fields of Condition it uses.
const (
	// CondRoomExists(Room): fails with ErrNoSuchRoom.
	CondRoomExists ConditionKind = 1
	// CondRoomDoesNotExist(Room): fails with ErrRoomExists.
	CondRoomDoesNotExist ConditionKind = 2
	// CondRoomEpochIs(Room, Epoch): fails with ErrNoSuchRoom or
	// *WrongEpochError.
	CondRoomEpochIs ConditionKind = 3
	// CondRoomSeqIs(Room, Seq): the room's last room sequence number is
	// Seq (0 for no events); fails with *RoomSeqError.
	CondRoomSeqIs ConditionKind = 4
	// CondKeyPackageUnclaimed(Ref, Now): the KeyPackage exists, is
	// unclaimed and not expired at Now; fails with ErrKeyPackageUnknown,
	// ErrKeyPackageClaimed or ErrKeyPackageExpired.
	CondKeyPackageUnclaimed ConditionKind = 5
	// CondNotifyNotSeen(Hub, Hash): fails with ErrDuplicateNotify.
	CondNotifyNotSeen ConditionKind = 6
	// CondClientRegistered(Client): fails with ErrUnknownClient.
	CondClientRegistered ConditionKind = 7
	// CondClientNotRegistered(Client): fails with ErrClientExists.
	CondClientNotRegistered ConditionKind = 8
	// CondRoomProposalsAre(Room, Epoch, Proposals): the room is at Epoch
	// with Proposals proposals cached; fails with ErrNoSuchRoom,
	// *WrongEpochError or ErrProposalsChanged.
	CondRoomProposalsAre ConditionKind = 9
)

// Condition is a precondition of a command, evaluated against the state
// before the command's operations. Only the fields its Kind names are
// encoded; build conditions with the constructors.
type Condition struct {
	Kind      ConditionKind
	Room      string
	Epoch     uint64
	Seq       uint64
	Ref       []byte
	Now       uint64 // milliseconds since the UNIX epoch
	Hub       string
	Hash      []byte
	Client    string
	Proposals uint32
}

// RoomExists is the condition "room exists".
func RoomExists(room string) Condition { return Condition{Kind: CondRoomExists, Room: room} }

// RoomDoesNotExist is the condition "room does not exist".
func RoomDoesNotExist(room string) Condition {
	return Condition{Kind: CondRoomDoesNotExist, Room: room}
}

// RoomEpochIs is the condition "room is at epoch"
// (draft-ralston-mimi-protocol-02, Section 5.3 wrongEpoch).
func RoomEpochIs(room string, epoch uint64) Condition {
	return Condition{Kind: CondRoomEpochIs, Room: room, Epoch: epoch}
}

// RoomProposalsAre is the condition "room is at epoch with n proposals
// cached": RoomEpochIs, and no proposal accepted since the caller read the
// room (draft-ralston-mimi-protocol-02, Section 6.1: a participant-list
// AppSync proposal takes effect when accepted, so what was decided from
// the room before it must be decided again).
func RoomProposalsAre(room string, epoch uint64, n uint32) Condition {
	return Condition{Kind: CondRoomProposalsAre, Room: room, Epoch: epoch, Proposals: n}
}

// RoomSeqIs is the condition "room's last room sequence number is seq".
func RoomSeqIs(room string, seq uint64) Condition {
	return Condition{Kind: CondRoomSeqIs, Room: room, Seq: seq}
}

// KeyPackageUnclaimed is the condition "ref is unclaimed and unexpired at
// now" (draft-ralston-mimi-protocol-02, Section 5.2).
func KeyPackageUnclaimed(ref []byte, now uint64) Condition {
	return Condition{Kind: CondKeyPackageUnclaimed, Ref: ref, Now: now}
}

// NotifyNotSeen is the condition "no notify body with hash was accepted
// from hub" (draft-ralston-mimi-protocol-02, Section 5.5).
func NotifyNotSeen(hub string, hash []byte) Condition {
	return Condition{Kind: CondNotifyNotSeen, Hub: hub, Hash: hash}
}

// ClientIsRegistered is the condition "client is registered".
func ClientIsRegistered(client string) Condition {
	return Condition{Kind: CondClientRegistered, Client: client}
}

// ClientNotRegistered is the condition "client is not registered".
func ClientNotRegistered(client string) Condition {
	return Condition{Kind: CondClientNotRegistered, Client: client}
}

// ClaimRequest asks Apply to choose and claim one KeyPackage of Client
// (draft-ralston-mimi-protocol-02, Section 5.2). The choice is made inside
// Apply, so concurrent claims never receive the same KeyPackage: among the
// client's unclaimed KeyPackages not expired at Timestamp, with a cipher
// suite in Suites (tried in order; empty means any suite, lowest first),
// the one expiring soonest (then the earliest uploaded) is claimed by a
// KeyPackageClaimed event with Room and Timestamp. If none is claimable
// the command fails with ErrNoKeyPackage when Required, and otherwise the
// ClaimResult reports Found=false.
type ClaimRequest struct {
	Client    string
	Suites    []uint16
	Claimer   string
	Room      string
	Timestamp uint64
	Required  bool
}

// Op is one operation of a command: exactly one of Event (appended as
// given, after validation) or Claim (resolved inside Apply).
//
//	enum { event(1), claim(2) } OpKind;
//	struct {
//	    OpKind kind;
//	    select (kind) {
//	        case event: Event event;
//	        case claim: ClaimRequest claim;
//	    };
//	} Op;
type Op struct {
	Event *eventlog.Event
	Claim *ClaimRequest
}

// EventOp wraps an event as an operation.
func EventOp(room string, timestamp uint64, body eventlog.Body) Op {
	ev := eventlog.New(room, timestamp, body)
	return Op{Event: &ev}
}

// ClaimOp wraps a claim request as an operation.
func ClaimOp(c ClaimRequest) Op { return Op{Claim: &c} }

const (
	opEvent uint8 = 1
	opClaim uint8 = 2
)

// MarshalMLS implements codec.Marshaler.
func (c *Condition) MarshalMLS(w *codec.Writer) {
	w.U8(uint8(c.Kind))
	switch c.Kind {
	case CondRoomExists, CondRoomDoesNotExist:
		w.OpaqueString(c.Room)
	case CondRoomEpochIs:
		w.OpaqueString(c.Room)
		w.U64(c.Epoch)
	case CondRoomSeqIs:
		w.OpaqueString(c.Room)
		w.U64(c.Seq)
	case CondRoomProposalsAre:
		w.OpaqueString(c.Room)
		w.U64(c.Epoch)
		w.U32(c.Proposals)
	case CondKeyPackageUnclaimed:
		w.Opaque(c.Ref)
		w.U64(c.Now)
	case CondNotifyNotSeen:
		w.OpaqueString(c.Hub)
		w.Opaque(c.Hash)
	case CondClientRegistered, CondClientNotRegistered:
		w.OpaqueString(c.Client)
	default:
		w.Fail(fmt.Errorf("%w: condition kind %d", ErrMalformedCommand, c.Kind))
	}
}

// UnmarshalMLS implements codec.Unmarshaler.
func (c *Condition) UnmarshalMLS(r *codec.Reader) {
	*c = Condition{Kind: ConditionKind(r.U8("condition.kind"))}
	switch c.Kind {
	case CondRoomExists, CondRoomDoesNotExist:
		c.Room = r.OpaqueString("condition.room")
	case CondRoomEpochIs:
		c.Room = r.OpaqueString("condition.room")
		c.Epoch = r.U64("condition.epoch")
	case CondRoomSeqIs:
		c.Room = r.OpaqueString("condition.room")
		c.Seq = r.U64("condition.seq")
	case CondRoomProposalsAre:
		c.Room = r.OpaqueString("condition.room")
		c.Epoch = r.U64("condition.epoch")
		c.Proposals = r.U32("condition.proposals")
	case CondKeyPackageUnclaimed:
		c.Ref = r.Opaque("condition.ref")
		c.Now = r.U64("condition.now")
	case CondNotifyNotSeen:
		c.Hub = r.OpaqueString("condition.hub")
		c.Hash = r.Opaque("condition.hash")
	case CondClientRegistered, CondClientNotRegistered:
		c.Client = r.OpaqueString("condition.client")
	default:
		r.Fail("condition.kind", codec.ErrInvalidValue)
	}
}

// MarshalMLS implements codec.Marshaler.
func (c *ClaimRequest) MarshalMLS(w *codec.Writer) {
	w.OpaqueString(c.Client)
	w.Vector(func(w *codec.Writer) {
		for _, s := range c.Suites {
			w.U16(s)
		}
	})
	w.OpaqueString(c.Claimer)
	w.OpaqueString(c.Room)
	w.U64(c.Timestamp)
	w.Bool(c.Required)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (c *ClaimRequest) UnmarshalMLS(r *codec.Reader) {
	*c = ClaimRequest{}
	c.Client = r.OpaqueString("claim.client")
	r.Vector("claim.suites", func(r *codec.Reader) { c.Suites = append(c.Suites, r.U16("claim.suite")) })
	c.Claimer = r.OpaqueString("claim.claimer")
	c.Room = r.OpaqueString("claim.room")
	c.Timestamp = r.U64("claim.timestamp")
	c.Required = r.Bool("claim.required")
}

// MarshalMLS implements codec.Marshaler.
func (o *Op) MarshalMLS(w *codec.Writer) {
	switch {
	case o.Event != nil && o.Claim == nil:
		w.U8(opEvent)
		o.Event.MarshalMLS(w)
	case o.Claim != nil && o.Event == nil:
		w.U8(opClaim)
		o.Claim.MarshalMLS(w)
	default:
		w.Fail(fmt.Errorf("%w: an op needs exactly one of Event and Claim", ErrMalformedCommand))
	}
}

// UnmarshalMLS implements codec.Unmarshaler.
func (o *Op) UnmarshalMLS(r *codec.Reader) {
	*o = Op{}
	switch r.U8("op.kind") {
	case opEvent:
		o.Event = new(eventlog.Event)
		o.Event.UnmarshalMLS(r)
	case opClaim:
		o.Claim = new(ClaimRequest)
		o.Claim.UnmarshalMLS(r)
	default:
		r.Fail("op.kind", codec.ErrInvalidValue)
	}
}

// MarshalMLS implements codec.Marshaler.
func (c *Command) MarshalMLS(w *codec.Writer) {
	w.U16(CommandVersion)
	w.Vector(func(w *codec.Writer) {
		for i := range c.Conditions {
			c.Conditions[i].MarshalMLS(w)
		}
	})
	w.Vector(func(w *codec.Writer) {
		for i := range c.Ops {
			c.Ops[i].MarshalMLS(w)
		}
	})
}

// UnmarshalMLS implements codec.Unmarshaler.
func (c *Command) UnmarshalMLS(r *codec.Reader) {
	*c = Command{}
	if v := r.U16("command.version"); r.Err() == nil && v != CommandVersion {
		r.Fail("command.version", codec.ErrInvalidValue)
		return
	}
	r.Vector("command.conditions", func(r *codec.Reader) {
		var cond Condition
		cond.UnmarshalMLS(r)
		c.Conditions = append(c.Conditions, cond)
	})
	r.Vector("command.ops", func(r *codec.Reader) {
		var op Op
		op.UnmarshalMLS(r)
		c.Ops = append(c.Ops, op)
	})
}

// EncodeCommand returns the command's deterministic encoding.
func EncodeCommand(c *Command) ([]byte, error) {
	b, err := codec.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("projections: encode command: %w", err)
	}
	return b, nil
}

// DecodeCommand parses a command. Decoding is strict: a command that
// decodes re-encodes to exactly the same bytes. Errors wrap
// ErrMalformedCommand.
func DecodeCommand(b []byte) (*Command, error) {
	var c Command
	if err := codec.Unmarshal(b, "command", &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedCommand, err)
	}
	return &c, nil
}
