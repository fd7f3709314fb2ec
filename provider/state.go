package provider

import (
	"bytes"
	"fmt"
	"slices"
	"sort"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// The room state the hub keeps in the projections (Room.Policy and
// Room.Participants, and the optional fields of RoomCreated,
// RoomStateUpdated and CommitAccepted) is encoded as the two MIMI
// application states (draft-ralston-mimi-protocol-02, Sections 4.3 and 7;
// docs/wire.md):
//
//   - Policy: the content of the irreducible mimiRoomPolicy state, i.e.
//     mimi.Policy's encoding;
//   - Participants: the whole mimiParticipantList ApplicationState (map
//     from user URI to role name), as appsync encodes it.

// encodeRoom returns the projections encoding of a room's policy and
// participant list.
func encodeRoom(rm *mimi.Room) (policy, participants []byte, err error) {
	st, err := rm.ApplicationStates()
	if err != nil {
		return nil, nil, err
	}
	policy = st.Get(mimi.AppIDRoomPolicy).State
	participants, err = codec.Marshal(st.Get(mimi.AppIDParticipantList))
	if err != nil {
		return nil, nil, err
	}
	return policy, participants, nil
}

// decodeRoom parses and validates the projections encoding of a room.
func decodeRoom(policy, participants []byte) (*mimi.Room, error) {
	var pl appsync.ApplicationState
	if err := codec.Unmarshal(participants, "mimiParticipantList", &pl); err != nil {
		return nil, fmt.Errorf("%w: %w", mimi.ErrInvalidRoomState, err)
	}
	if pl.ApplicationID != mimi.AppIDParticipantList {
		return nil, fmt.Errorf("%w: participant list under application %#x", mimi.ErrInvalidRoomState, pl.ApplicationID)
	}
	st := &appsync.States{}
	st.Set(&appsync.ApplicationState{ApplicationID: mimi.AppIDRoomPolicy, Type: appsync.Irreducible, State: policy})
	st.Set(&pl)
	return mimi.RoomFromStates(st)
}

// sameRoom reports whether two rooms encode identically.
func sameRoom(a, b *mimi.Room) bool {
	ap, apl, err1 := encodeRoom(a)
	bp, bpl, err2 := encodeRoom(b)
	return err1 == nil && err2 == nil && bytes.Equal(ap, bp) && bytes.Equal(apl, bpl)
}

// cloneRoom returns an independent copy.
func cloneRoom(rm *mimi.Room) *mimi.Room {
	c := &mimi.Room{Policy: mimi.Policy{RoomID: rm.Policy.RoomID}, Participants: slices.Clone(rm.Participants)}
	for _, r := range rm.Policy.Roles {
		c.Policy.Roles = append(c.Policy.Roles, mimi.Role{Name: r.Name, Permissions: slices.Clone(r.Permissions)})
	}
	return c
}

// providerOf returns the provider domain of a MIMI URI, or "".
func providerOf(uri string) string {
	u, err := mimi.ParseURI(uri)
	if err != nil {
		return ""
	}
	return u.Provider
}

// participantProviders adds the provider of every participant to set.
func participantProviders(set map[string]bool, rm *mimi.Room) {
	for _, pt := range rm.Participants {
		if d := providerOf(pt.User); d != "" {
			set[d] = true
		}
	}
}

// isParticipant reports whether user is a participant of rm.
func isParticipant(rm *mimi.Room, user string) bool {
	_, ok := rm.Participant(user)
	return ok
}

// identityOf decodes the MIMI client identity of an MLS credential
// (docs/wire.md, "Client identity").
func identityOf(cred *wire.Credential) (*mimi.ClientIdentity, error) {
	return mimi.IdentityFromCredential(cred)
}

// publicMessageBytes encodes a PublicMessage as an MLSMessage (RFC 9420,
// Section 6).
func publicMessageBytes(pm *wire.PublicMessage) ([]byte, error) {
	return codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: pm})
}

// sortedKeys returns the keys of a set, sorted.
func sortedKeys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k, ok := range set {
		if ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// sameExternalSender reports whether two external_senders entries are
// equal.
func sameExternalSender(a, b *wire.ExternalSender) bool {
	ab, err1 := codec.Marshal(a)
	bb, err2 := codec.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// hasExternalSender reports whether list contains s.
func hasExternalSender(list wire.ExternalSenders, s *wire.ExternalSender) bool {
	for i := range list {
		if sameExternalSender(&list[i], s) {
			return true
		}
	}
	return false
}

// HubCredential returns the basic credential the hub of domain uses in its
// external_senders entry: the identity is the provider URI
// "mimi://<domain>" (draft-ralston-mimi-protocol-02, Sections 3 and 6.4
// leave the hub's credential open; this is our convention).
func HubCredential(domain string) wire.Credential {
	return wire.Credential{Type: wire.CredentialBasic, Identity: []byte("mimi://" + domain)}
}

// supportsExtension, supportsProposal and supportsCredential implement the
// capability rules of RFC 9420, Section 7.2: the extension types 1-5 and
// proposal types 1-7 of RFC 9420 are supported by every client without
// being listed; credential types must be listed.
func supportsExtension(c *wire.Capabilities, t wire.ExtensionType) bool {
	return t >= 1 && t <= 5 || slices.Contains(c.Extensions, t)
}

func supportsProposal(c *wire.Capabilities, t wire.ProposalType) bool {
	return t >= 1 && t <= 7 || slices.Contains(c.Proposals, t)
}

// compatible reports whether a KeyPackage satisfies the requester's
// acceptable cipher suites and required capabilities
// (draft-ralston-mimi-protocol-02, Section 5.2; RFC 9420, Section 11.1).
func compatible(kp *wire.KeyPackage, rc *wire.RequiredCapabilities) bool {
	c := &kp.LeafNode.Capabilities
	for _, t := range rc.ExtensionTypes {
		if !supportsExtension(c, t) {
			return false
		}
	}
	for _, t := range rc.ProposalTypes {
		if !supportsProposal(c, t) {
			return false
		}
	}
	for _, t := range rc.CredentialTypes {
		if !slices.Contains(c.Credentials, t) {
			return false
		}
	}
	return true
}
