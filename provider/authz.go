package provider

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// source is who handed the hub a request: a peer provider, or one of our
// own clients (then domain is ours and client is set).
type source struct {
	domain string
	client string
}

// actor is the author of an MLS handshake message as the hub sees it: a
// client with its MIMI identity, or the hub itself (as external sender).
type actor struct {
	hub bool
	id  *mimi.ClientIdentity
}

func (a actor) user() string {
	if a.hub {
		return ""
	}
	return a.id.User
}

// String names the actor in events: the client URI, or the hub's provider
// URI.
func (p *Provider) actorName(a actor) string {
	if a.hub {
		return p.URI()
	}
	return a.id.Client
}

// resolveSender finds the author of a handshake message in the view (RFC
// 9420, Section 6): a member leaf's identity, the hub's external_senders
// entry, or a new member's own credential.
func (p *Provider) resolveSender(v *publicgroup.View, c *wire.FramedContent) (actor, error) {
	s := c.Sender
	var cred *wire.Credential
	switch s.Type {
	case wire.SenderMember:
		m, ok := v.Member(treemath.LeafIndex(s.Index))
		if !ok {
			return actor{}, fmt.Errorf("sender leaf %d is blank", s.Index)
		}
		cred = &m.Credential
	case wire.SenderExternal:
		es := v.ExternalSenders()
		if uint64(s.Index) >= uint64(len(es)) {
			return actor{}, fmt.Errorf("external sender %d is not listed", s.Index)
		}
		if !sameExternalSender(&es[s.Index], &p.hubSend) {
			return actor{}, fmt.Errorf("external sender %d is not this hub", s.Index)
		}
		return actor{hub: true}, nil
	case wire.SenderNewMemberProposal:
		if c.Proposal == nil {
			return actor{}, fmt.Errorf("new_member_proposal without a proposal")
		}
		add, ok := c.Proposal.Body.(*wire.Add)
		if !ok {
			return actor{}, fmt.Errorf("new_member_proposal without an Add")
		}
		cred = &add.KeyPackage.LeafNode.Credential
	case wire.SenderNewMemberCommit:
		if c.Commit == nil || c.Commit.Path == nil {
			return actor{}, fmt.Errorf("external commit without an UpdatePath")
		}
		cred = &c.Commit.Path.LeafNode.Credential
	default:
		return actor{}, fmt.Errorf("sender type %d", s.Type)
	}
	id, err := identityOf(cred)
	if err != nil {
		return actor{}, err
	}
	return actor{id: id}, nil
}

// vouch checks that the source may speak for the actor: a provider
// submits only its own clients' messages (it authenticated them;
// draft-ralston-mimi-protocol-02, Section 4.1 authenticates providers, not
// clients), a local client only its own, and only the hub itself uses the
// hub's external sender key.
func (p *Provider) vouch(src source, a actor) error {
	if a.hub {
		if src.domain != p.domain || src.client != "" {
			return fmt.Errorf("only the hub itself may send as the hub")
		}
		return nil
	}
	if providerOf(a.id.Client) != src.domain {
		return fmt.Errorf("%s may not submit messages of %s", src.domain, a.id.Client)
	}
	if src.client != "" && a.id.Client != src.client {
		return fmt.Errorf("client %s may not submit messages of %s", src.client, a.id.Client)
	}
	return nil
}

// notAllowedErr marks a policy refusal (UpdateRoomResponse notAllowed);
// invalidErr an invalid change (invalidProposal).
type notAllowedErr struct{ msg string }

func (e *notAllowedErr) Error() string { return e.msg }

func notAllowedf(format string, args ...any) error {
	return &notAllowedErr{msg: fmt.Sprintf(format, args...)}
}

// applyAppSync checks an AppSync proposal against the room state it
// applies to and returns the state after it
// (draft-ralston-mimi-protocol-02, Sections 4.3.2 and 7): participant list
// changes are decoded with mimi.ChangeSetFromAppSync and, when authorize,
// authorized for the actor with Room.Authorize; a policy change needs
// canSetPolicy and must keep every participant's role defined. Other
// application IDs are refused: the hub cannot authorize state it does not
// understand. Invalid changes wrap mimi.ErrInvalidChange; refusals are
// *notAllowedErr.
//
// also, when non-nil, is a second room state the actor must be authorized
// in (for commits: the hub's current state, besides the state in commit
// order).
func applyAppSync(a actor, rm *mimi.Room, as *appsync.AppSync, roomID string, authorize bool, also *mimi.Room) (*mimi.Room, error) {
	rooms := []*mimi.Room{rm}
	if also != nil {
		rooms = append(rooms, also)
	}
	switch as.ApplicationID {
	case mimi.AppIDParticipantList:
		cs, err := mimi.ChangeSetFromAppSync(rm, as)
		if err != nil {
			return nil, err
		}
		if authorize && !a.hub {
			for _, r := range rooms {
				if err := r.Authorize(a.user(), cs); err != nil {
					return nil, notAllowedf("%v", err)
				}
			}
		}
		return rm.Apply(cs)
	case mimi.AppIDRoomPolicy:
		if as.Type != appsync.Irreducible {
			return nil, fmt.Errorf("%w: mimiRoomPolicy is irreducible", mimi.ErrInvalidChange)
		}
		for _, r := range rooms {
			if authorize && !a.hub && !r.Can(a.user(), mimi.CanSetPolicy) {
				return nil, notAllowedf("%s may not change the room policy (needs %s)", a.user(), mimi.CanSetPolicy)
			}
		}
		var pol mimi.Policy
		if err := codec.Unmarshal(as.NewState, "RoomPolicy", &pol); err != nil {
			return nil, fmt.Errorf("%w: %w", mimi.ErrInvalidChange, err)
		}
		if pol.RoomID != roomID {
			return nil, fmt.Errorf("%w: policy for room %s", mimi.ErrInvalidChange, pol.RoomID)
		}
		next := &mimi.Room{Policy: pol, Participants: cloneRoom(rm).Participants}
		for _, pt := range next.Participants {
			if pol.Role(pt.Role) == nil {
				return nil, fmt.Errorf("%w: the new policy drops role %q of %s", mimi.ErrInvalidChange, pt.Role, pt.User)
			}
		}
		return next, nil
	}
	return nil, notAllowedf("AppSync for unknown application %#x", as.ApplicationID)
}

// authorizeOther applies the room policy to a proposal other than AppSync
// (draft-ralston-mimi-protocol-02, Sections 5.3 and 6): actorRoom decides
// what the actor may do, targetRoom whether the users it affects are
// participants.
//
//   - Add: the added client's user must be a participant.
//   - Remove: of one's own user's client, of a client whose user is no
//     longer a participant, or with canRemoveUser.
//   - Update: the leaf must keep its client identity.
//   - SelfRemove, PreSharedKey, ExternalInit: allowed.
//   - GroupContextExtensions: needs canSetPolicy, must keep the hub in
//     external_senders and must not change application_states (only
//     AppSync may).
//   - ReInit and anything else: refused (a MIMI room cannot be
//     reinitialized through the hub).
func (p *Provider) authorizeOther(a actor, actorRoom, targetRoom *mimi.Room, v *publicgroup.View, prop *wire.Proposal) error {
	switch body := prop.Body.(type) {
	case *wire.Add:
		id, err := identityOf(&body.KeyPackage.LeafNode.Credential)
		if err != nil {
			return notAllowedf("Add: %v", err)
		}
		if !isParticipant(targetRoom, id.User) {
			return notAllowedf("Add of client %s, whose user %s is not a participant", id.Client, id.User)
		}
	case *wire.Remove:
		m, ok := v.Member(treemath.LeafIndex(body.Removed))
		if !ok {
			return notAllowedf("Remove of blank leaf %d", body.Removed)
		}
		id, err := identityOf(&m.Credential)
		if err != nil || a.hub || id.User == a.user() || !isParticipant(targetRoom, id.User) {
			return nil
		}
		if !actorRoom.Can(a.user(), mimi.CanRemoveUser) {
			return notAllowedf("%s may not remove client %s of %s (needs %s)", a.user(), id.Client, id.User, mimi.CanRemoveUser)
		}
	case *wire.Update:
		id, err := identityOf(&body.LeafNode.Credential)
		if err != nil || a.hub || id.Client != a.id.Client {
			return notAllowedf("Update must keep the client identity %s", a.id.Client)
		}
	case *wire.SelfRemove, *wire.PreSharedKey:
	case *wire.ExternalInit:
		// Only valid in an external commit (RFC 9420, Section 12.1.6),
		// which commit.Apply enforces.
	case *wire.GroupContextExtensions:
		if !a.hub && !actorRoom.Can(a.user(), mimi.CanSetPolicy) {
			return notAllowedf("%s may not change the group context extensions (needs %s)", a.user(), mimi.CanSetPolicy)
		}
		senders, _, err := wire.ExternalSendersExtension(body.Extensions)
		if err != nil || !hasExternalSender(senders, &p.hubSend) {
			return notAllowedf("GroupContextExtensions must keep the hub in external_senders")
		}
		cur, err := v.ApplicationStates().Bytes()
		if err != nil {
			return notAllowedf("application_states: %v", err)
		}
		next, _, err := wire.ApplicationStatesExtension(body.Extensions)
		if err != nil || next == nil {
			return notAllowedf("GroupContextExtensions must keep application_states")
		}
		nb, err := next.Bytes()
		if err != nil || !bytes.Equal(cur, nb) {
			return notAllowedf("GroupContextExtensions may not change application_states; use AppSync")
		}
	default:
		return notAllowedf("proposal type %d is not allowed in a MIMI room", prop.Type)
	}
	return nil
}

// Response helpers (draft-ralston-mimi-protocol-02, Section 5.3).

func describe(format string, args ...any) string {
	s := fmt.Sprintf(format, args...)
	if len(s) > 1024 {
		s = s[:1024]
	}
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func updateWrongEpoch(current uint64) *mimi.UpdateRoomResponse {
	return &mimi.UpdateRoomResponse{Code: mimi.UpdateWrongEpoch, CurrentEpoch: current,
		ErrorDescription: describe("the room is at epoch %d", current)}
}

func updateNotAllowed(format string, args ...any) *mimi.UpdateRoomResponse {
	return &mimi.UpdateRoomResponse{Code: mimi.UpdateNotAllowed, ErrorDescription: describe(format, args...)}
}

func updateInvalid(refs [][]byte, format string, args ...any) *mimi.UpdateRoomResponse {
	if refs == nil {
		refs = [][]byte{}
	}
	return &mimi.UpdateRoomResponse{Code: mimi.UpdateInvalidProposal, InvalidProposals: refs, ErrorDescription: describe(format, args...)}
}

func leafIndex(x uint32) treemath.LeafIndex { return treemath.LeafIndex(x) }

// committable checks that the proposals cached in v could all be committed
// together (RFC 9420, Sections 12.2 and 12.4; draft-ralston-mimi-
// protocol-02, Section 7: at most one AppSync per applicationId, none with
// GroupContextExtensions). The hub requires every commit to include every
// cached proposal (Section 3.5), so accepting a proposal that conflicts
// with the cached ones would block the room for the rest of the epoch. The
// check runs commit.Apply over the cached list as if committed by a member
// none of the proposals updates or removes.
func committable(v *publicgroup.View) error {
	pend := v.PendingProposals()
	if len(pend) == 0 {
		return nil
	}
	touched := map[uint32]bool{}
	for _, pp := range pend {
		switch b := pp.Proposal.Body.(type) {
		case *wire.Remove:
			touched[b.Removed] = true
		case *wire.Update, *wire.SelfRemove:
			if pp.Sender.Type == wire.SenderMember {
				touched[pp.Sender.Index] = true
			}
		}
	}
	var committer *wire.Sender
	for _, m := range v.Members() {
		if !touched[uint32(m.Leaf)] {
			committer = &wire.Sender{Type: wire.SenderMember, Index: uint32(m.Leaf)}
			break
		}
	}
	if committer == nil {
		return nil // every member is leaving or updating; nobody to check for
	}
	t, err := tree.FromRatchetTree(v.Suite(), v.RatchetTree())
	if err != nil {
		return err
	}
	props := make([]commit.SourcedProposal, len(pend))
	for i, pp := range pend {
		props[i] = commit.SourcedProposal{Proposal: pp.Proposal, Sender: pp.Sender, Ref: pp.Ref}
	}
	_, err = commit.Apply(&commit.Params{Suite: v.Suite(), Tree: t, Context: v.GroupContext(), Committer: *committer, Proposals: props, HasPath: true})
	return err
}
