package client

import (
	"fmt"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/wire"
)

// EventType says what an Event reports (draft-ralston-mimi-protocol-02,
// Sections 3 and 5.5).
type EventType uint8

// Event types. Each is produced by Sync from the messages the hubs fanned
// out to the client (draft-ralston-mimi-protocol-02, Section 5.5).
const (
	// EventJoined: the client joined the room by a Welcome (Sections 3.2
	// and 3.3), or the echo of its external commit completed a
	// JoinNewDevice whose outcome was unknown (Section 3.6). Its room
	// state is available with Client.Room.
	EventJoined EventType = iota + 1
	// EventMessage: an application message (Section 3.4); Data holds it.
	EventMessage
	// EventParticipants: a commit changed the participant list (Section
	// 4.3.2); Changes lists the adds, removes and role changes.
	EventParticipants
	// EventMembers: a commit added or removed MLS clients (Section 6.2);
	// Added and Removed list client URIs.
	EventMembers
	// EventPolicy: a commit changed the room's base policy (Section 4.3.1).
	EventPolicy
	// EventProposal: a proposal was received and cached, to be included in
	// the next commit (Sections 3.5 and 6.3); Proposal holds it, and
	// Changes the participant list change it proposes, if any.
	EventProposal
	// EventRemoved: a commit removed this client from the room (Section
	// 5.5: removed clients receive their removal). The room is forgotten.
	EventRemoved
	// EventError: a message could not be processed; Err says why. The
	// message is skipped.
	EventError
	// EventLeaveVoid: a commit did not include this client's leave
	// proposals (Section 3.5), so the leave did not happen: the proposals
	// never reached the hub (Leave returned ErrOutcomeUnknown) or the hub
	// dropped them. The client is a member again, not Leaving; Err
	// (matching ErrLeaving) says so. Call Leave again to leave.
	EventLeaveVoid
)

// String names the event type (draft-ralston-mimi-protocol-02, Section 3).
func (t EventType) String() string {
	switch t {
	case EventJoined:
		return "joined"
	case EventMessage:
		return "message"
	case EventParticipants:
		return "participants"
	case EventMembers:
		return "members"
	case EventPolicy:
		return "policy"
	case EventProposal:
		return "proposal"
	case EventRemoved:
		return "removed"
	case EventError:
		return "error"
	case EventLeaveVoid:
		return "leave-void"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is something that happened in a room, for the application
// (draft-ralston-mimi-protocol-02, Sections 3 and 5.5).
type Event struct {
	Type EventType
	Room string
	// Seq is the inbox position of the message that caused the event.
	Seq uint64
	// Timestamp is the hub's acceptance time, in milliseconds since the
	// Unix epoch (Section 5.5).
	Timestamp uint64
	// Epoch is the MLS epoch the client's group is in after the event.
	Epoch uint64
	// Sender is the client that sent the message, proposal or commit, or
	// nil; FromHub is set when the hub sent it as external sender
	// (Section 6.4).
	Sender  *mimi.ClientIdentity
	FromHub bool
	// Data is the application message (EventMessage).
	Data []byte
	// Changes is the participant list change (EventParticipants, and
	// EventProposal for a participant-list AppSync).
	Changes *mimi.ChangeSet
	// Added and Removed are client URIs (EventMembers).
	Added, Removed []string
	// Policy is the new base policy (EventPolicy).
	Policy *mimi.Policy
	// Proposal is the received proposal (EventProposal).
	Proposal *wire.Proposal
	// Err is why a message was skipped (EventError).
	Err error
}
