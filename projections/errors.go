package projections

import (
	"errors"
	"fmt"
)

// Errors a command can be rejected with (returned in Result.Err, wrapped
// with the failing condition or operation; test with errors.Is / errors.As).
// A rejected command changes nothing but the applied index.
var (
	// ErrMalformedCommand: the command bytes do not decode.
	ErrMalformedCommand = errors.New("projections: malformed command")
	// ErrInvalidEvent: an event is structurally unacceptable (empty
	// required field, bad reference, hash mismatch, ...).
	ErrInvalidEvent = errors.New("projections: invalid event")

	// ErrNoSuchRoom: the room does not exist (draft-ralston-mimi-protocol-02,
	// Section 5.6 noSuchRoom).
	ErrNoSuchRoom = errors.New("projections: no such room")
	// ErrRoomExists: the room already exists.
	ErrRoomExists = errors.New("projections: room already exists")
	// ErrRoomClosed: the room is closed.
	ErrRoomClosed = errors.New("projections: room is closed")
	// ErrWrongEpoch: an epoch precondition failed; the error is a
	// *WrongEpochError carrying the room's current epoch
	// (draft-ralston-mimi-protocol-02, Section 5.3 wrongEpoch and
	// Section 5.4 epochTooOld).
	ErrWrongEpoch = errors.New("projections: wrong epoch")
	// ErrProposalsChanged: a RoomProposalsAre precondition failed on the
	// number of proposals cached in the room's epoch: a proposal was
	// accepted (or the cache emptied) since the caller read the room.
	ErrProposalsChanged = errors.New("projections: the room's cached proposals changed")
	// ErrRoomSeqMismatch: a RoomSeqIs precondition failed; the error is a
	// *RoomSeqError.
	ErrRoomSeqMismatch = errors.New("projections: room sequence mismatch")

	// ErrUnknownClient: the client is not registered.
	ErrUnknownClient = errors.New("projections: unknown client")
	// ErrClientExists: the client is registered (to another user, for
	// ClientRegistered).
	ErrClientExists = errors.New("projections: client already registered")

	// ErrKeyPackageUnknown: no KeyPackage with that ref.
	ErrKeyPackageUnknown = errors.New("projections: unknown KeyPackage")
	// ErrKeyPackageExists: a KeyPackage with that ref was already uploaded.
	ErrKeyPackageExists = errors.New("projections: KeyPackage already uploaded")
	// ErrKeyPackageClaimed: the KeyPackage was already claimed
	// (draft-ralston-mimi-protocol-02, Section 5.2: one-time use).
	ErrKeyPackageClaimed = errors.New("projections: KeyPackage already claimed")
	// ErrKeyPackageExpired: the KeyPackage's not_after has passed.
	ErrKeyPackageExpired = errors.New("projections: KeyPackage expired")
	// ErrNoKeyPackage: a required claim found no claimable KeyPackage
	// (draft-ralston-mimi-protocol-02, Section 5.2 keyMaterialExhausted).
	ErrNoKeyPackage = errors.New("projections: no claimable KeyPackage")

	// ErrDuplicateNotify: the notify body from that hub was already
	// accepted (draft-ralston-mimi-protocol-02, Section 5.5).
	ErrDuplicateNotify = errors.New("projections: duplicate notify")

	// ErrDuplicateMessage: the room already accepted an application
	// message with the same bytes in the current epoch
	// (draft-ralston-mimi-protocol-02, Section 5.4: a resubmission after a
	// lost answer must not be fanned out twice). Machine.AcceptedMessage
	// returns the first acceptance.
	ErrDuplicateMessage = errors.New("projections: duplicate application message")

	// ErrDuplicateProposal: the room already cached a proposal with the
	// same ProposalRef in the current epoch (RFC 9420, Section 5.2;
	// draft-ralston-mimi-protocol-02, Section 5.3).
	ErrDuplicateProposal = errors.New("projections: duplicate proposal")

	// ErrGroupBound: a followed room is already bound to another MLS
	// group, or the group to another room (draft-ralston-mimi-protocol-02,
	// Section 5.5; see eventlog.GroupBound).
	ErrGroupBound = errors.New("projections: room and group already bound")

	// ErrReplayedCall: a client API call with this digest was taken
	// already within its validity window (see eventlog.ClientCallAccepted).
	ErrReplayedCall = errors.New("projections: client call replayed")

	// ErrHubKeyDeclared: this provider's hub signature key was declared
	// already (see eventlog.HubKeyDeclared); it is declared once.
	ErrHubKeyDeclared = errors.New("projections: hub key already declared")

	// ErrStaleAck: an acknowledgement does not advance the cursor.
	ErrStaleAck = errors.New("projections: acknowledgement does not advance the cursor")
	// ErrAckBeyondQueue: an acknowledgement covers entries never queued.
	ErrAckBeyondQueue = errors.New("projections: acknowledgement beyond the queue")
)

// Errors that are not command rejections.
var (
	// ErrStorage: Pebble failed. The state machine cannot continue
	// deterministically; the node must stop and recover from a snapshot.
	// Apply does not record the applied index when it returns this.
	ErrStorage = errors.New("projections: storage failure")
	// ErrCorruptState: a stored projection record does not decode.
	ErrCorruptState = errors.New("projections: corrupt state")
	// ErrClosed: the Machine is closed.
	ErrClosed = errors.New("projections: machine closed")
	// ErrNotFound: a read API found nothing (routes, events, cursors).
	ErrNotFound = errors.New("projections: not found")
	// ErrReplayDiverged: replay produced a different log than the source.
	ErrReplayDiverged = errors.New("projections: replay diverged from the source log")
	// ErrBadSnapshot: a snapshot stream is malformed or its checksum fails.
	ErrBadSnapshot = errors.New("projections: bad snapshot")
)

// WrongEpochError reports an epoch mismatch with the room's current epoch.
// It matches ErrWrongEpoch with errors.Is.
type WrongEpochError struct {
	Room     string
	Current  uint64 // the room's epoch
	Proposed uint64 // the epoch the command named
}

// Error implements error.
func (e *WrongEpochError) Error() string {
	return fmt.Sprintf("projections: wrong epoch for room %q: current %d, got %d", e.Room, e.Current, e.Proposed)
}

// Is makes errors.Is(err, ErrWrongEpoch) true.
func (e *WrongEpochError) Is(target error) bool { return target == ErrWrongEpoch }

// RoomSeqError reports that a room's last room sequence number is not the
// expected one (another event for the room was accepted first).
type RoomSeqError struct {
	Room     string
	Current  uint64
	Expected uint64
}

// Error implements error.
func (e *RoomSeqError) Error() string {
	return fmt.Sprintf("projections: room %q is at room sequence %d, expected %d", e.Room, e.Current, e.Expected)
}

// Is makes errors.Is(err, ErrRoomSeqMismatch) true.
func (e *RoomSeqError) Is(target error) bool { return target == ErrRoomSeqMismatch }

func storageErr(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrStorage, op, err)
}
