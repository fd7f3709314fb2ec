package client

import (
	"errors"
	"fmt"

	"github.com/openmimi/mimi/mimi"
)

// Errors callers branch on with errors.Is (draft-ralston-mimi-protocol-02,
// Section 5 response codes, and client-side checks of RFC 9420 and the
// draft). Failures of the provider (transport, unavailability) are returned
// wrapped as they came.
var (
	// ErrWrongEpoch: the hub is at another epoch than the client's group
	// (draft-ralston-mimi-protocol-02, Section 5.3 wrongEpoch, Section 5.4
	// epochTooOld) and retrying after a Sync did not help.
	ErrWrongEpoch = errors.New("client: the hub is at another epoch")
	// ErrNotAllowed: the room policy forbids the operation (Section 5.3
	// notAllowed, Section 5.4 notAllowed), as decided by the hub or
	// checked beforehand by the client against the committed room state.
	ErrNotAllowed = errors.New("client: not allowed by the room policy")
	// ErrInvalidProposal: the hub found a proposal invalid (Section 5.3
	// invalidProposal).
	ErrInvalidProposal = errors.New("client: the hub rejected a proposal as invalid")
	// ErrOutcomeUnknown: the provider did not answer an update, so it is
	// unknown whether the hub accepted it. The commit stays pending: if its
	// echo arrives it is applied, if another commit arrives it is dropped
	// (Section 5.5: clients must be prepared to receive their own message);
	// the next operation on the room first sends it again, and the hub's
	// answer settles it (Section 5.3).
	// Also: the provider did not answer a KeyPackage upload
	// (PublishKeyPackages keeps the private keys).
	ErrOutcomeUnknown = errors.New("client: outcome of the update is unknown")
	// ErrUnknownRoom: the client is not a member of the room.
	ErrUnknownRoom = errors.New("client: not a member of this room")
	// ErrRoomExists: the client is already a member of the room.
	ErrRoomExists = errors.New("client: already a member of this room")
	// ErrNotParticipant / ErrAlreadyParticipant: the user named is not /
	// already a participant of the room (Section 4.3.2).
	ErrNotParticipant     = errors.New("client: user is not a participant")
	ErrAlreadyParticipant = errors.New("client: user is already a participant")
	// ErrNoKeyMaterial: no usable KeyPackage was obtained for a user's
	// clients (Section 5.2); see *KeyMaterialError for the status.
	ErrNoKeyMaterial = errors.New("client: no usable key material")
	// ErrInvalidResponse: the provider or hub answered with something
	// inconsistent or unverifiable (a KeyPackage of another client, a
	// GroupInfoResponse with a bad signature or an unlisted hub_sender).
	ErrInvalidResponse = errors.New("client: invalid response")
	// ErrNoGroupInfo: the hub refused the GroupInfo (Section 5.6
	// notAuthorized or noSuchRoom); see *GroupInfoError.
	ErrNoGroupInfo = errors.New("client: group info not available")
	// ErrLeaving: the client's user has asked to leave the room; the room
	// is waiting for the commit that removes it (Section 3.5).
	ErrLeaving = errors.New("client: leaving this room")
	// ErrInvalidArgument: a caller error (malformed URI, unknown role, ...).
	ErrInvalidArgument = errors.New("client: invalid argument")
	// ErrStateCorrupt: Load input that does not decode or is inconsistent.
	ErrStateCorrupt = errors.New("client: corrupt saved state")
	// ErrUnknownKeyPackage: a Welcome for none of this client's
	// KeyPackages (reported in an EventError).
	ErrUnknownKeyPackage = errors.New("client: Welcome for none of our KeyPackages")
)

// UpdateError is a refusal of an update by the hub
// (draft-ralston-mimi-protocol-02, Section 5.3 UpdateRoomResponse). It
// matches ErrWrongEpoch, ErrNotAllowed or ErrInvalidProposal with
// errors.Is, by Code.
type UpdateError struct {
	Room             string
	Code             mimi.UpdateResponseCode
	Description      string
	CurrentEpoch     uint64   // wrongEpoch
	InvalidProposals [][]byte // invalidProposal: ProposalRefs
}

// Error implements error (draft-ralston-mimi-protocol-02, Section 5.3).
func (e *UpdateError) Error() string {
	var what string
	switch e.Code {
	case mimi.UpdateWrongEpoch:
		what = fmt.Sprintf("wrongEpoch (hub at epoch %d)", e.CurrentEpoch)
	case mimi.UpdateNotAllowed:
		what = "notAllowed"
	case mimi.UpdateInvalidProposal:
		what = fmt.Sprintf("invalidProposal (%d proposals)", len(e.InvalidProposals))
	default:
		what = fmt.Sprintf("response code %d", e.Code)
	}
	return fmt.Sprintf("client: update of %s refused: %s: %q", e.Room, what, e.Description)
}

// Is matches the sentinel for the response code (Section 5.3).
func (e *UpdateError) Is(target error) bool {
	switch e.Code {
	case mimi.UpdateWrongEpoch:
		return target == ErrWrongEpoch
	case mimi.UpdateNotAllowed:
		return target == ErrNotAllowed
	case mimi.UpdateInvalidProposal:
		return target == ErrInvalidProposal
	}
	return false
}

// SubmitError is a refusal of an application message by the hub
// (draft-ralston-mimi-protocol-02, Section 5.4 SubmitMessageResponse). It
// matches ErrNotAllowed or ErrWrongEpoch with errors.Is, by Code.
type SubmitError struct {
	Room         string
	Code         mimi.SubmitResponseCode
	CurrentEpoch uint64 // epochTooOld
}

// Error implements error (draft-ralston-mimi-protocol-02, Section 5.4).
func (e *SubmitError) Error() string {
	switch e.Code {
	case mimi.SubmitNotAllowed:
		return fmt.Sprintf("client: message to %s refused: notAllowed", e.Room)
	case mimi.SubmitEpochTooOld:
		return fmt.Sprintf("client: message to %s refused: epochTooOld (hub at epoch %d)", e.Room, e.CurrentEpoch)
	}
	return fmt.Sprintf("client: message to %s refused: response code %d", e.Room, e.Code)
}

// Is matches the sentinel for the response code (Section 5.4).
func (e *SubmitError) Is(target error) bool {
	switch e.Code {
	case mimi.SubmitNotAllowed:
		return target == ErrNotAllowed
	case mimi.SubmitEpochTooOld:
		return target == ErrWrongEpoch
	}
	return false
}

// KeyMaterialError reports why no usable key material was obtained for a
// user (draft-ralston-mimi-protocol-02, Section 5.2): the user status, and
// per client the client status (or the reason its KeyPackage was
// unusable). It matches ErrNoKeyMaterial.
type KeyMaterialError struct {
	User       string
	UserStatus mimi.KeyMaterialUserCode
	Clients    map[string]string // client URI -> reason
}

// Error implements error (draft-ralston-mimi-protocol-02, Section 5.2).
func (e *KeyMaterialError) Error() string {
	return fmt.Sprintf("client: no usable key material for %s (user status %d, clients %v)", e.User, e.UserStatus, e.Clients)
}

// Is matches ErrNoKeyMaterial (Section 5.2).
func (e *KeyMaterialError) Is(target error) bool { return target == ErrNoKeyMaterial }

// GroupInfoError is a refusal of a GroupInfo request by the hub
// (draft-ralston-mimi-protocol-02, Section 5.6). It matches ErrNoGroupInfo.
type GroupInfoError struct {
	Room   string
	Status mimi.GroupInfoCode
}

// Error implements error (draft-ralston-mimi-protocol-02, Section 5.6).
func (e *GroupInfoError) Error() string {
	switch e.Status {
	case mimi.GroupInfoNotAuthorized:
		return fmt.Sprintf("client: group info of %s: notAuthorized", e.Room)
	case mimi.GroupInfoNoSuchRoom:
		return fmt.Sprintf("client: group info of %s: noSuchRoom", e.Room)
	}
	return fmt.Sprintf("client: group info of %s: status %d", e.Room, e.Status)
}

// Is matches ErrNoGroupInfo (Section 5.6).
func (e *GroupInfoError) Is(target error) bool { return target == ErrNoGroupInfo }
