package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// RequiredCapabilities is the required_capabilities extension of every room
// the client creates (RFC 9420, Section 11.1): every member must support
// the application_states extension and the AppSync proposal that carry the
// room state (draft-ralston-mimi-protocol-02, Section 7), SelfRemove
// (draft-ietf-mls-extensions), and basic credentials (docs/wire.md).
func RequiredCapabilities() wire.RequiredCapabilities {
	return wire.RequiredCapabilities{
		ExtensionTypes:  []wire.ExtensionType{wire.ExtensionApplicationStates},
		ProposalTypes:   []wire.ProposalType{wire.ProposalSelfRemove, wire.ProposalAppSync},
		CredentialTypes: []wire.CredentialType{wire.CredentialBasic},
	}
}

// GroupURI returns the MLS group URI of a room, mimi://<hub>/g/<id>, the
// group ID the client gives the rooms it creates
// (draft-ralston-mimi-protocol-02, Section 3).
func GroupURI(roomID string) (string, error) {
	ru, err := mimi.ParseURIKind(roomID, mimi.KindRoom)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return mimi.URI{Kind: mimi.KindGroup, Provider: ru.Provider, ID: ru.ID}.String(), nil
}

func appSyncProposal(cs *mimi.ChangeSet) *wire.Proposal {
	return &wire.Proposal{Type: wire.ProposalAppSync, Body: &wire.AppSync{AppSync: *cs.AppSync()}}
}

func addProposal(kp *wire.KeyPackage) *wire.Proposal {
	return &wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp}}
}

func removeProposal(leaf uint32) *wire.Proposal {
	return &wire.Proposal{Type: wire.ProposalRemove, Body: &wire.Remove{Removed: leaf}}
}

// CreateRoom creates a room hosted by the client's provider
// (draft-ralston-mimi-protocol-02, Section 3.1): an MLS group with group ID
// GroupURI(roomID) whose GroupContext carries the room's policy and
// participant list in application_states (Sections 4.3 and 7), the hub as
// external sender (Section 6.4) and RequiredCapabilities; the room is then
// created at the provider from the group's GroupInfo and tree.
//
// policy.RoomID may be empty (it becomes roomID). participants must include
// the client's own user. Then the clients of every participant (the
// creator's other clients included) are added in one commit, with the key
// material the provider can claim for them (Section 5.2); a participant
// for whom no key material is available is skipped (its clients can join
// later by external commit, Section 5.6). When that step fails the room
// exists anyway and the error says so.
func (c *Client) CreateRoom(ctx context.Context, roomID string, policy mimi.Policy, participants []mimi.Participant) error {
	ru, err := mimi.ParseURIKind(roomID, mimi.KindRoom)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if ru.Provider != providerOf(c.id.Client) {
		return fmt.Errorf("%w: room %s is not at the client's provider (room creation is local to the hub)", ErrInvalidArgument, roomID)
	}
	pol := mimi.Policy{RoomID: policy.RoomID}
	for _, r := range policy.Roles {
		pol.Roles = append(pol.Roles, mimi.Role{Name: r.Name, Permissions: slices.Clone(r.Permissions)})
	}
	if pol.RoomID == "" {
		pol.RoomID = roomID
	}
	if pol.RoomID != roomID {
		return fmt.Errorf("%w: the policy names room %s", ErrInvalidArgument, pol.RoomID)
	}
	pol.Normalize()
	rm, err := (&mimi.Room{Policy: pol}).Apply(&mimi.ChangeSet{Add: participants})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if _, ok := rm.Participant(c.id.User); !ok {
		return fmt.Errorf("%w: the creator %s must be a participant", ErrInvalidArgument, c.id.User)
	}
	st, err := rm.ApplicationStates()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if _, err := mimi.RoomFromStates(st); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	gid, err := GroupURI(roomID)
	if err != nil {
		return err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rooms[roomID] != nil {
		return fmt.Errorf("%w: %s", ErrRoomExists, roomID)
	}
	hub, err := c.p.HubSender(ctx, roomID)
	if err != nil {
		return fmt.Errorf("client: the hub's external sender for %s: %w", roomID, err)
	}
	if err := c.suite.ValidateSignaturePublicKey(hub.SignatureKey); err != nil {
		return fmt.Errorf("%w: the hub's signature key is not usable with cipher suite %v: %w", ErrInvalidResponse, c.suite.ID(), err)
	}
	es, err := wire.NewExternalSendersExtension(wire.ExternalSenders{hub})
	if err != nil {
		return fmt.Errorf("%w: external_senders: %w", ErrInvalidResponse, err)
	}
	reqCaps := RequiredCapabilities()
	rc, err := wire.NewRequiredCapabilitiesExtension(&reqCaps)
	if err != nil {
		return fmt.Errorf("client: required_capabilities: %w", err)
	}
	as, err := wire.NewApplicationStatesExtension(st)
	if err != nil {
		return fmt.Errorf("client: application_states: %w", err)
	}
	g, err := mls.CreateGroup(c.suite.ID(), []byte(gid), c.signer(), &mls.CreateOptions{
		Extensions: []wire.Extension{es, rc, as}, Config: c.mlsConfig(),
	})
	if err != nil {
		return fmt.Errorf("client: creating the group of %s: %w", roomID, err)
	}
	gi, err := g.GroupInfo(false)
	if err != nil {
		return fmt.Errorf("client: GroupInfo of %s: %w", roomID, err)
	}
	if err := c.p.CreateRoom(ctx, c.id.Client, roomID, gi.GroupInfo, g.RatchetTree()); err != nil {
		return fmt.Errorf("client: creating room %s at the provider: %w", roomID, err)
	}
	c.rooms[roomID] = &room{id: roomID, g: g}

	users := make([]string, 0, len(rm.Participants))
	for _, p := range rm.Participants {
		users = append(users, p.User)
	}
	if err := c.addClientsLocked(ctx, roomID, users, true, c.waitUntil()); err != nil {
		return fmt.Errorf("client: room %s was created, but adding its participants' clients failed: %w", roomID, err)
	}
	return nil
}

// AddUser adds user to the room with role (draft-ralston-mimi-protocol-02,
// Sections 3.2 and 3.3): it claims KeyPackages for all the user's clients
// through the provider (Section 5.2) and commits, in one Commit, an AppSync
// adding the user to the participant list together with Add proposals for
// those clients (and every proposal cached in this epoch), sending the
// Commit, Welcome, GroupInfo and full ratchet tree to the hub (Section 5.3).
// The group moves to the new epoch only once the hub accepted.
//
// The client's own user must have canAddUser in the committed room state
// (checked before asking the hub, which decides). On wrongEpoch the client
// syncs and tries again, up to Options.MaxAttempts.
func (c *Client) AddUser(ctx context.Context, roomID, user, role string) error {
	if _, err := mimi.ParseURIKind(user, mimi.KindUser); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	until := c.waitUntil()
	if err := c.syncLocked(ctx); err != nil {
		return err
	}
	cs := &mimi.ChangeSet{Add: []mimi.Participant{{User: user, Role: role}}}
	r, err := c.room(roomID)
	if err != nil {
		return err
	}
	if _, err := c.checkChange(r, cs); err != nil {
		return err
	}
	kps, err := c.claim(ctx, r, user, nil)
	if err != nil {
		return err
	}
	return c.commitLocked(ctx, roomID, until, func(r *room) ([]*wire.Proposal, error) {
		if _, err := c.checkChange(r, cs); err != nil {
			return nil, err
		}
		props := []*wire.Proposal{appSyncProposal(cs)}
		for _, kp := range kps {
			props = append(props, addProposal(kp))
		}
		return props, nil
	})
}

// AddClients adds the clients of a participant that are not members of the
// room's group yet (draft-ralston-mimi-protocol-02, Section 3.1: "ensures
// ... that Alice's other clients are members"), with the key material the
// provider can claim for them; no participant-list change. The client's
// own user may always add its own clients; for another user's clients the
// hub decides.
func (c *Client) AddClients(ctx context.Context, roomID, user string) error {
	if _, err := mimi.ParseURIKind(user, mimi.KindUser); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	until := c.waitUntil()
	if err := c.syncLocked(ctx); err != nil {
		return err
	}
	return c.addClientsLocked(ctx, roomID, []string{user}, false, until)
}

// addClientsLocked claims key material for users' clients that are not
// members and commits their Adds (waiting for epochs until until, see
// commitLocked). With lenient, users without usable key material are
// skipped silently.
func (c *Client) addClientsLocked(ctx context.Context, roomID string, users []string, lenient bool, until time.Time) error {
	r, err := c.room(roomID)
	if err != nil {
		return err
	}
	var kps []*wire.KeyPackage
	for _, u := range users {
		rm, err := roomState(r.g)
		if err != nil {
			return err
		}
		if _, ok := rm.Participant(u); !ok {
			return fmt.Errorf("%w: %s in %s", ErrNotParticipant, u, roomID)
		}
		got, err := c.claim(ctx, r, u, func(client string) bool { return isMember(r.g, client) })
		if err != nil {
			if lenient && errors.Is(err, ErrNoKeyMaterial) {
				continue
			}
			return err
		}
		kps = append(kps, got...)
	}
	if len(kps) == 0 {
		if lenient {
			return nil
		}
		return fmt.Errorf("%w: no client to add", ErrNoKeyMaterial)
	}
	return c.commitLocked(ctx, roomID, until, func(r *room) ([]*wire.Proposal, error) {
		var props []*wire.Proposal
		for _, kp := range kps {
			id, _ := mimi.IdentityFromCredential(&kp.LeafNode.Credential)
			if id != nil && !isMember(r.g, id.Client) {
				props = append(props, addProposal(kp))
			}
		}
		if len(props) == 0 {
			return nil, errNothingToCommit
		}
		return props, nil
	})
}

// errNothingToCommit ends commitLocked without a commit.
var errNothingToCommit = errors.New("client: nothing to commit")

// RemoveUser removes another user from the room
// (draft-ralston-mimi-protocol-02, Section 3.5 "A user removing another
// user follows the same flow as adding"): one Commit of an AppSync removing
// the user from the participant list and Remove proposals for all its
// clients. The client's own user needs canRemoveUser; to remove oneself,
// use Leave.
func (c *Client) RemoveUser(ctx context.Context, roomID, user string) error {
	if _, err := mimi.ParseURIKind(user, mimi.KindUser); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if user == c.id.User {
		return fmt.Errorf("%w: a client cannot commit its own removal; use Leave", ErrInvalidArgument)
	}
	cs := &mimi.ChangeSet{Remove: []string{user}}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.commitLocked(ctx, roomID, c.waitUntil(), func(r *room) ([]*wire.Proposal, error) {
		if _, err := c.checkChange(r, cs); err != nil {
			return nil, err
		}
		props := []*wire.Proposal{appSyncProposal(cs)}
		ms, err := members(r.g)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if m.id.User == user {
				props = append(props, removeProposal(m.leaf))
			}
		}
		return props, nil
	})
}

// SetRole changes a participant's role (draft-ralston-mimi-protocol-02,
// Section 4.3.2 SetRole) with a Commit of one AppSync. The client's own
// user needs canSetUserRole.
func (c *Client) SetRole(ctx context.Context, roomID, user, role string) error {
	if _, err := mimi.ParseURIKind(user, mimi.KindUser); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	cs := &mimi.ChangeSet{SetRole: []mimi.Participant{{User: user, Role: role}}}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.commitLocked(ctx, roomID, c.waitUntil(), func(r *room) ([]*wire.Proposal, error) {
		if _, err := c.checkChange(r, cs); err != nil {
			return nil, err
		}
		return []*wire.Proposal{appSyncProposal(cs)}, nil
	})
}

// Commit commits every proposal cached in the room's current epoch (RFC
// 9420, Section 12.4), with an UpdatePath (fresh keys for this client:
// post-compromise security). This is how another participant's leave is
// completed (draft-ralston-mimi-protocol-02, Section 3.5: the hub requires
// the next committer to include the cached proposals).
func (c *Client) Commit(ctx context.Context, roomID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.commitLocked(ctx, roomID, c.waitUntil(), func(*room) ([]*wire.Proposal, error) { return nil, nil })
}

// checkChange validates a participant-list change against the committed
// room state and authorizes it for the client's own user (the hub
// decides; this only avoids asking in vain).
func (c *Client) checkChange(r *room, cs *mimi.ChangeSet) (*mimi.Room, error) {
	rm, err := roomState(r.g)
	if err != nil {
		return nil, err
	}
	for _, p := range cs.Add {
		if _, ok := rm.Participant(p.User); ok {
			return nil, fmt.Errorf("%w: %s in %s", ErrAlreadyParticipant, p.User, r.id)
		}
	}
	for _, u := range cs.Remove {
		if _, ok := rm.Participant(u); !ok {
			return nil, fmt.Errorf("%w: %s in %s", ErrNotParticipant, u, r.id)
		}
	}
	for _, p := range cs.SetRole {
		if _, ok := rm.Participant(p.User); !ok {
			return nil, fmt.Errorf("%w: %s in %s", ErrNotParticipant, p.User, r.id)
		}
	}
	if err := cs.Validate(rm); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if err := rm.Authorize(c.id.User, cs); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	return rm, nil
}

// claim fetches KeyPackages for a user's clients for the room (draft-
// ralston-mimi-protocol-02, Section 5.2), keeping those that verify, are
// for the group's cipher suite and carry the identity of the client they
// are listed for; clients for which skip returns true are left out.
func (c *Client) claim(ctx context.Context, r *room, user string, skip func(client string) bool) ([]*wire.KeyPackage, error) {
	rc, found, err := wire.RequiredCapabilitiesExtension(r.g.Extensions())
	if err != nil {
		return nil, fmt.Errorf("client: required_capabilities of %s: %w", r.id, err)
	}
	req := &mimi.KeyMaterialRequest{
		Protocol: mimi.ProtocolMLS10, RequestingUser: c.id.User, TargetUser: user, RoomID: r.id,
		AcceptableCiphersuites: []cipher.SuiteID{r.g.CipherSuite()},
	}
	if found {
		req.RequiredCapabilities = *rc
	}
	resp, err := c.p.KeyMaterial(ctx, c.id.Client, req)
	if err != nil {
		return nil, fmt.Errorf("client: key material for %s: %w", user, err)
	}
	if resp == nil || resp.Protocol != mimi.ProtocolMLS10 || resp.UserURI != user {
		return nil, fmt.Errorf("%w: key material response for another user or protocol", ErrInvalidResponse)
	}
	kerr := &KeyMaterialError{User: user, UserStatus: resp.UserStatus, Clients: map[string]string{}}
	switch resp.UserStatus {
	case mimi.UserSuccess, mimi.UserPartialSuccess, mimi.UserNoCompatibleMaterial:
	default:
		return nil, kerr
	}
	var kps []*wire.KeyPackage
	seen := map[string]bool{}
	for _, cl := range resp.Clients {
		if seen[cl.ClientURI] {
			return nil, fmt.Errorf("%w: client %s listed twice", ErrInvalidResponse, cl.ClientURI)
		}
		seen[cl.ClientURI] = true
		if cl.Status != mimi.ClientSuccess {
			kerr.Clients[cl.ClientURI] = fmt.Sprintf("client status %d", cl.Status)
			continue
		}
		if skip != nil && skip(cl.ClientURI) {
			continue
		}
		if err := c.checkKeyPackage(cl.KeyPackage, r.g.CipherSuite(), user, cl.ClientURI); err != nil {
			kerr.Clients[cl.ClientURI] = err.Error()
			continue
		}
		kps = append(kps, cl.KeyPackage)
	}
	if len(kps) == 0 {
		return nil, kerr
	}
	return kps, nil
}

// checkKeyPackage verifies a claimed KeyPackage (RFC 9420, Section 10.1)
// and that it belongs to client of user (docs/wire.md).
func (c *Client) checkKeyPackage(kp *wire.KeyPackage, suite cipher.SuiteID, user, client string) error {
	if kp == nil {
		return errors.New("no KeyPackage")
	}
	if kp.CipherSuite != suite {
		return fmt.Errorf("KeyPackage for cipher suite %v", kp.CipherSuite)
	}
	s, err := cipher.Lookup(suite)
	if err != nil {
		return err
	}
	if err := kp.Verify(s); err != nil {
		return err
	}
	id, err := mimi.IdentityFromCredential(&kp.LeafNode.Credential)
	if err != nil {
		return err
	}
	if id.User != user || id.Client != client {
		return fmt.Errorf("KeyPackage of %s (%s), listed for %s", id.Client, id.User, client)
	}
	return nil
}

func isMember(g *mls.Group, client string) bool {
	ms, err := members(g)
	if err != nil {
		return false
	}
	for _, m := range ms {
		if m.id.Client == client {
			return true
		}
	}
	return false
}

// commitLocked syncs, commits the proposals build returns (by value)
// together with every proposal cached in the epoch, and sends the commit to
// the hub; on wrongEpoch it tries again once the group reached the hub's
// epoch (see awaitEpoch, which gives up at until), up to
// Options.MaxAttempts.
func (c *Client) commitLocked(ctx context.Context, roomID string, until time.Time, build func(*room) ([]*wire.Proposal, error)) error {
	var last error
	var mine *unresolvedCommit // a try of this change whose outcome is open
	for try := range c.opts.MaxAttempts {
		if err := c.beforeTry(ctx, roomID, try, last, until); err != nil {
			return err
		}
		r, err := c.room(roomID)
		if err != nil {
			return err
		}
		pending := r.unresolved
		if merged, err := c.resolve(ctx, r); errors.Is(err, ErrWrongEpoch) {
			last = err
			continue
		} else if err != nil {
			return err
		} else if merged && pending == mine {
			return nil // an earlier try of this change was accepted after all
		}
		if r.leaving {
			return fmt.Errorf("%w: %s", ErrLeaving, roomID)
		}
		props, err := build(r)
		if errors.Is(err, errNothingToCommit) {
			return nil
		}
		if err != nil {
			return err
		}
		if appSyncConflict(r.g, props) {
			// A commit holds one AppSync per applicationId (RFC 9420
			// extensions, AppSync): the cached one (another user's leave)
			// is committed first, on its own, and our change after it.
			pc, req, err := c.prepareCommit(r.g, &mls.CommitOptions{})
			if err != nil {
				return err
			}
			if err := c.sendCommit(ctx, r, pc, req); errors.Is(err, ErrWrongEpoch) {
				last = err
				continue
			} else if err != nil {
				return fmt.Errorf("client: committing the cached proposals first: %w", err)
			}
			if props, err = build(r); errors.Is(err, errNothingToCommit) {
				return nil
			} else if err != nil {
				return err
			}
		}
		epoch, cached := r.g.Epoch(), len(r.g.PendingProposals())
		pc, req, err := c.prepareCommit(r.g, &mls.CommitOptions{Proposals: props})
		if err != nil {
			return err
		}
		err = c.sendCommit(ctx, r, pc, req)
		if errors.Is(err, ErrWrongEpoch) {
			if r.unresolved != nil && r.unresolved.pc == pc {
				mine = r.unresolved
			}
			last = err
			continue
		}
		if errors.Is(err, ErrNotAllowed) && try+1 < c.opts.MaxAttempts && c.awaitNews(ctx, roomID, epoch, cached, until) {
			// The hub holds proposals we had not received yet (the next
			// commit must include them, Section 3.5), or a change of the
			// room we had not seen: they arrived, so decide again.
			last = err
			continue
		}
		return err
	}
	return last
}

// appSyncConflict reports whether props hold an AppSync for an
// applicationId that a proposal cached in g's epoch also changes.
func appSyncConflict(g *mls.Group, props []*wire.Proposal) bool {
	ids := map[uint32]bool{}
	for _, p := range g.PendingProposals() {
		if as, ok := p.Proposal.Body.(*wire.AppSync); ok {
			ids[as.ApplicationID] = true
		}
	}
	for _, p := range props {
		if as, ok := p.Body.(*wire.AppSync); ok && ids[as.ApplicationID] {
			return true
		}
	}
	return false
}

// awaitNews waits, after the hub refused a commit as notAllowed although
// the client's own view of the room allowed it, for something the hub saw
// and the client did not: proposals cached in the epoch beyond the cached
// it had, or a new epoch. It syncs and polls (see pollDelay) until then,
// until, or ctx ends, and reports whether something arrived.
func (c *Client) awaitNews(ctx context.Context, roomID string, epoch uint64, cached int, until time.Time) bool {
	ok, err := c.syncUntil(ctx, roomID, until, func(r *room) bool {
		return r == nil || r.g.Epoch() != epoch || len(r.g.PendingProposals()) > cached
	})
	return err == nil && ok && c.rooms[roomID] != nil
}

// prepareCommit creates a commit of g and its UpdateRequest.
func (c *Client) prepareCommit(g *mls.Group, opts *mls.CommitOptions) (*mls.PendingCommit, *mimi.UpdateRequest, error) {
	pc, err := g.Commit(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("client: creating the commit: %w", err)
	}
	req, err := c.updateRequest(pc)
	if err != nil {
		pc.Discard()
		return nil, nil, err
	}
	return pc, req, nil
}

// updateRequest builds the UpdateRequest of a commit
// (draft-ralston-mimi-protocol-02, Section 5.3): the Commit PublicMessage,
// the Welcome, the new epoch's GroupInfo without the ratchet_tree extension
// and the full new ratchet tree.
func (c *Client) updateRequest(pc *mls.PendingCommit) (*mimi.UpdateRequest, error) {
	if pc.Message == nil || pc.Message.PublicMessage == nil {
		return nil, errors.New("client: the commit is not a PublicMessage")
	}
	if pc.GroupInfo == nil || pc.GroupInfo.GroupInfo == nil {
		return nil, errors.New("client: the commit has no GroupInfo")
	}
	gi := pc.GroupInfo.GroupInfo
	tree := pc.RatchetTree()
	req := &mimi.UpdateRequest{
		ProposalOrCommit:  *pc.Message.PublicMessage,
		GroupInfo:         gi,
		RatchetTreeOption: &mimi.RatchetTreeOption{Representation: mimi.RatchetTreeFull, Tree: tree},
	}
	if pc.Welcome != nil {
		req.Welcome = pc.Welcome.Welcome
	}
	return req, nil
}

// sendCommit sends a commit's UpdateRequest and merges the commit when the
// hub accepted it, or discards it when the hub refused. When the provider
// does not answer, the same request is sent again (see resend: the hub
// answers the commit it accepted last with its first success,
// draft-ralston-mimi-protocol-02, Section 5.3); if no answer ever comes,
// the commit stays pending (ErrOutcomeUnknown). A wrongEpoch answer after
// a try that got none also leaves it pending, unresolved: the hub
// recognizes only the commit it accepted last, so the unanswered try may
// have been accepted before another commit followed it; the echo or the
// commit that won settles it (resolve).
func (c *Client) sendCommit(ctx context.Context, r *room, pc *mls.PendingCommit, req *mimi.UpdateRequest) error {
	resp, lost, err := c.update(ctx, r.id, req)
	if err != nil {
		r.unresolved = &unresolvedCommit{pc: pc, req: req}
		return fmt.Errorf("%w: commit to %s: %w", ErrOutcomeUnknown, r.id, err)
	}
	if resp.Code == mimi.UpdateWrongEpoch && lost {
		r.unresolved = &unresolvedCommit{pc: pc, req: req}
		return updateError(r.id, resp)
	}
	if resp.Code != mimi.UpdateSuccess {
		pc.Discard()
		return updateError(r.id, resp)
	}
	return c.mergeOwn(r, pc)
}

// update sends an UpdateRequest through the provider, again with the same
// bytes while no answer comes back (see resend): the hub answers a commit
// it accepted last, sent again, with its first success
// (draft-ralston-mimi-protocol-02, Section 5.3). lost reports that a try
// went unanswered: the hub may have applied the request before the
// answer that came.
func (c *Client) update(ctx context.Context, roomID string, req *mimi.UpdateRequest) (resp *mimi.UpdateRoomResponse, lost bool, err error) {
	resp, err = answered(ctx, c, func() (*mimi.UpdateRoomResponse, error) {
		out, err := c.p.Update(ctx, c.id.Client, roomID, req)
		lost = lost || err != nil || out == nil
		return out, err
	})
	return resp, lost, err
}

// answered makes call through resend and returns its answer; a nil answer
// without an error counts as none.
func answered[T any](ctx context.Context, c *Client, call func() (*T, error)) (*T, error) {
	var out *T
	err := c.resend(ctx, func() (err error) {
		out, err = call()
		if err == nil && out == nil {
			err = errors.New("no response")
		}
		return err
	})
	return out, err
}

// mergeOwn merges our commit that the hub accepted.
func (c *Client) mergeOwn(r *room, pc *mls.PendingCommit) error {
	if err := pc.Merge(); err != nil {
		return fmt.Errorf("client: merging our accepted commit to %s: %w", r.id, err)
	}
	if b, err := codec.Marshal(pc.Message); err == nil {
		r.remember(b)
	}
	return nil
}

// resolve settles the room's unresolved commit, if any, before the client
// changes the room again: a new commit would replace it as the group's
// pending commit, after which its echo could no longer be recognized. When
// the group has left the commit's epoch (the echo merged it, or another
// commit of that epoch was processed) there is nothing left to do;
// otherwise the same request is sent again, which the hub answers with its
// first success if it accepted the commit (draft-ralston-mimi-protocol-02,
// Section 5.3). On wrongEpoch the commit stays pending: the hub moved on,
// and the next sync brings either our commit's echo or the one that won.
// If the provider still does not answer, the error is ErrOutcomeUnknown.
// merged reports that the unresolved commit was merged.
func (c *Client) resolve(ctx context.Context, r *room) (merged bool, err error) {
	u := r.unresolved
	if u == nil {
		return false, nil
	}
	if r.g.Epoch() != u.base() {
		r.unresolved = nil
		return u.pc.Merged(), nil
	}
	resp, _, err := c.update(ctx, r.id, u.req)
	if err != nil {
		return false, fmt.Errorf("%w: an earlier commit to %s: %w", ErrOutcomeUnknown, r.id, err)
	}
	switch resp.Code {
	case mimi.UpdateSuccess:
		r.unresolved = nil
		return true, c.mergeOwn(r, u.pc)
	case mimi.UpdateWrongEpoch:
		return false, updateError(r.id, resp)
	}
	r.unresolved = nil
	u.pc.Discard()
	return false, updateError(r.id, resp)
}

func updateError(roomID string, resp *mimi.UpdateRoomResponse) *UpdateError {
	return &UpdateError{Room: roomID, Code: resp.Code, Description: resp.ErrorDescription,
		CurrentEpoch: resp.CurrentEpoch, InvalidProposals: resp.InvalidProposals}
}

// Leave leaves the room (draft-ralston-mimi-protocol-02, Section 3.5): a
// client cannot commit its own removal, so it sends the hub, as proposals
// in one update, Remove proposals for every client of its user (itself
// included) and an AppSync removing its user from the participant list.
// The hub caches them and requires the next committer to include them; the
// client learns of its removal from that commit (EventRemoved). Until then
// the room is Leaving: it no longer commits or sends messages.
//
// The proposals are made on a copy of the group, which replaces it only
// when the hub accepted them (or may have): a refused leave leaves no
// proposals behind. On wrongEpoch the client tries again once its group
// reached the hub's epoch (see Options.EpochWait), up to
// Options.MaxAttempts.
func (c *Client) Leave(ctx context.Context, roomID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	until := c.waitUntil()
	var last error
	for try := range c.opts.MaxAttempts {
		if err := c.beforeTry(ctx, roomID, try, last, until); err != nil {
			return err
		}
		r, err := c.room(roomID)
		if err != nil {
			return err
		}
		if _, err := c.resolve(ctx, r); errors.Is(err, ErrWrongEpoch) {
			last = err
			continue
		} else if err != nil {
			return err
		}
		rm, err := roomState(r.g)
		if err != nil {
			return err
		}
		if _, ok := rm.Participant(c.id.User); !ok {
			return fmt.Errorf("%w: %s in %s", ErrNotParticipant, c.id.User, roomID)
		}
		leave := &mimi.ChangeSet{Remove: []string{c.id.User}}
		if appSyncConflict(r.g, []*wire.Proposal{appSyncProposal(leave)}) {
			// Another user's leave is cached, and the next commit could
			// not hold both participant-list AppSyncs: complete it first
			// (Section 3.5), then leave.
			if err := c.commitLocked(ctx, roomID, until, func(*room) ([]*wire.Proposal, error) { return nil, nil }); err != nil {
				return fmt.Errorf("client: committing the cached proposals before leaving: %w", err)
			}
			continue
		}
		work, err := c.cloneGroup(r.g)
		if err != nil {
			return err
		}
		ms, err := members(work)
		if err != nil {
			return err
		}
		var msgs []*wire.MLSMessage
		for _, m := range ms {
			if m.id.User != c.id.User {
				continue
			}
			sp, err := work.ProposeRemove(treemath.LeafIndex(m.leaf), nil)
			if err != nil {
				return fmt.Errorf("client: proposing the removal of %s: %w", m.id.Client, err)
			}
			msgs = append(msgs, sp.Message)
		}
		sp, err := work.ProposeAppSync(leave.AppSync(), nil)
		if err != nil {
			return fmt.Errorf("client: proposing the participant list change: %w", err)
		}
		msgs = append(msgs, sp.Message)
		req := &mimi.UpdateRequest{ProposalOrCommit: *msgs[0].PublicMessage}
		for _, m := range msgs[1:] {
			req.MoreProposals = append(req.MoreProposals, *m.PublicMessage)
		}
		accept := func() {
			r.g, r.leaving = work, true
			for _, m := range msgs {
				if b, err := codec.Marshal(m); err == nil {
					r.remember(b)
				}
			}
		}
		resp, lost, err := c.update(ctx, roomID, req)
		if err == nil && lost && resp.Code == mimi.UpdateWrongEpoch {
			// An unanswered try may have been accepted before a commit
			// moved the hub on (see sendCommit).
			err = updateError(roomID, resp)
		}
		if err != nil {
			accept()
			return fmt.Errorf("%w: leave proposals for %s: %w", ErrOutcomeUnknown, roomID, err)
		}
		if resp.Code == mimi.UpdateSuccess {
			accept()
			return nil
		}
		last = updateError(roomID, resp)
		if resp.Code != mimi.UpdateWrongEpoch {
			return last
		}
	}
	return last
}

// cloneGroup copies a group through its serialized state.
func (c *Client) cloneGroup(g *mls.Group) (*mls.Group, error) {
	st, err := g.MarshalState()
	if err != nil {
		return nil, fmt.Errorf("client: copying the group: %w", err)
	}
	cp, err := mls.UnmarshalState(st, c.mlsConfig())
	if err != nil {
		return nil, fmt.Errorf("client: copying the group: %w", err)
	}
	return cp, nil
}

// Send encrypts data as an MLS application message (a PrivateMessage, RFC
// 9420 Section 6.3) and submits it to the room's hub
// (draft-ralston-mimi-protocol-02, Sections 3.4 and 5.4). It returns the
// hub's acceptance time in milliseconds since the Unix epoch.
//
// Proposals cached in the epoch are committed first (RFC 9420, Section
// 12.4: a member commits pending proposals before sending application
// data). The client's user needs canSendMessage. On epochTooOld the client
// syncs until its group reached the hub's epoch (see Options.EpochWait)
// and tries again in that epoch, up to Options.MaxAttempts. When the
// provider does not answer, the same message is sent again (see submit);
// if no answer ever comes, the error is ErrOutcomeUnknown.
func (c *Client) Send(ctx context.Context, roomID string, data []byte) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	until := c.waitUntil()
	var last error
	refused := false // the last try got wrongEpoch or epochTooOld (last)
	for range c.opts.MaxAttempts {
		if refused {
			if err := c.awaitEpoch(ctx, roomID, last, until); err != nil {
				return 0, err
			}
			refused = false
		}
		r, err := c.room(roomID)
		if err != nil {
			return 0, err
		}
		if _, err := c.resolve(ctx, r); errors.Is(err, ErrWrongEpoch) {
			last, refused = err, true
			continue
		} else if err != nil {
			return 0, err
		}
		if r.leaving {
			return 0, fmt.Errorf("%w: %s", ErrLeaving, roomID)
		}
		rm, err := roomState(r.g)
		if err != nil {
			return 0, err
		}
		if !rm.Can(c.id.User, mimi.CanSendMessage) {
			return 0, fmt.Errorf("%w: %s may not send messages in %s (needs %s)", ErrNotAllowed, c.id.User, roomID, mimi.CanSendMessage)
		}
		if len(r.g.PendingProposals()) > 0 {
			if err := c.commitLocked(ctx, roomID, until, func(*room) ([]*wire.Proposal, error) { return nil, nil }); err != nil {
				return 0, fmt.Errorf("client: committing pending proposals before sending: %w", err)
			}
			continue
		}
		msg, err := r.g.ProtectApplication(data, nil)
		if err != nil {
			return 0, fmt.Errorf("client: encrypting the message: %w", err)
		}
		resp, err := c.submit(ctx, roomID, &mimi.SubmitMessageRequest{Protocol: mimi.ProtocolMLS10, AppMessage: *msg})
		if err != nil {
			return 0, fmt.Errorf("%w: message to %s: %w", ErrOutcomeUnknown, roomID, err)
		}
		switch resp.Code {
		case mimi.SubmitAccepted:
			if b, err := codec.Marshal(msg); err == nil {
				r.remember(b)
			}
			return resp.AcceptedTimestamp, nil
		case mimi.SubmitEpochTooOld:
			last, refused = &SubmitError{Room: roomID, Code: resp.Code, CurrentEpoch: resp.CurrentEpoch}, true
			continue
		}
		return 0, &SubmitError{Room: roomID, Code: resp.Code, CurrentEpoch: resp.CurrentEpoch}
	}
	if last == nil {
		last = fmt.Errorf("%w: %s keeps changing", ErrWrongEpoch, roomID)
	}
	return 0, last
}

// resendDelay is the wait before the first resend of a message whose
// submission got no answer; it doubles with each resend.
const resendDelay = 100 * time.Millisecond

// submit sends req to the hub through the provider, again with the same
// bytes while no answer comes back (see resend). A resend is safe: the hub
// accepts a message once per epoch and answers a resend with the first
// acceptance (draft-ralston-mimi-protocol-02, Section 5.4), so a message
// whose answer was lost is neither lost nor duplicated.
func (c *Client) submit(ctx context.Context, roomID string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	return answered(ctx, c, func() (*mimi.SubmitMessageResponse, error) {
		return c.p.SubmitMessage(ctx, c.id.Client, roomID, req)
	})
}

// resend calls send until it returns no error (an answer came back), up to
// Options.MaxAttempts tries in all, waiting resendDelay before the second
// try, then twice that, and so on; it stops early when ctx ends. It
// returns the last error. send must be safe to repeat (it sends the same
// request).
func (c *Client) resend(ctx context.Context, send func() error) error {
	var err error
	for try := range c.opts.MaxAttempts {
		if try > 0 {
			t := time.NewTimer(resendDelay << (try - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(err, ctx.Err())
			case <-t.C:
			}
		}
		if err = send(); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// Polling while waiting for an epoch the hub named (see awaitEpoch): the
// first delay, doubled after each poll up to epochPollMax.
const (
	epochPollDelay = 20 * time.Millisecond
	epochPollMax   = 160 * time.Millisecond
)

// waitUntil is when an operation starting now stops waiting for epochs
// (Options.EpochWait).
func (c *Client) waitUntil() time.Time { return time.Now().Add(c.opts.EpochWait) }

// hubEpoch returns the hub's current epoch named in a wrongEpoch or
// epochTooOld refusal (draft-ralston-mimi-protocol-02, Sections 5.3 and
// 5.4), or 0.
func hubEpoch(refusal error) uint64 {
	var ue *UpdateError
	if errors.As(refusal, &ue) && ue.Code == mimi.UpdateWrongEpoch {
		return ue.CurrentEpoch
	}
	var se *SubmitError
	if errors.As(refusal, &se) && se.Code == mimi.SubmitEpochTooOld {
		return se.CurrentEpoch
	}
	return 0
}

// pollDelay sleeps before the next poll of a wait that ends at until: for
// delay, or what is left of the wait if less, and doubles delay, up to
// epochPollMax. It reports whether to poll again: false, without
// sleeping, when nothing of the wait is left, and false when ctx ends.
func pollDelay(ctx context.Context, delay *time.Duration, until time.Time) bool {
	left := time.Until(until)
	if left <= 0 {
		return false
	}
	t := time.NewTimer(min(*delay, left))
	defer t.Stop()
	*delay = min(2**delay, epochPollMax)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// beforeTry syncs before an operation's first try; before a retry, which
// follows a wrongEpoch answer (last), it waits for the epoch that answer
// named (awaitEpoch).
func (c *Client) beforeTry(ctx context.Context, roomID string, try int, last error, until time.Time) error {
	if try == 0 {
		return c.syncLocked(ctx)
	}
	return c.awaitEpoch(ctx, roomID, last, until)
}

// awaitEpoch is the wait before retrying after refusal, a wrongEpoch or
// epochTooOld answer naming the hub's current epoch: the commits that took
// the hub there are on their way to the client (fanout is asynchronous,
// draft-ralston-mimi-protocol-02, Section 5.5), and a retry before they
// arrive fails again. It syncs, then polls the inbox (see pollDelay) until
// the room's group reaches that epoch or the room is gone (the client was
// removed); the retry then finds out which. If that does not happen by
// until, it returns refusal, joined with the context's error if ctx ended
// (also during a sync).
func (c *Client) awaitEpoch(ctx context.Context, roomID string, refusal error, until time.Time) error {
	want := hubEpoch(refusal)
	ok, err := c.syncUntil(ctx, roomID, until, func(r *room) bool { return r == nil || r.g.Epoch() >= want })
	switch {
	case err != nil && ctx.Err() != nil:
		return errors.Join(refusal, err)
	case err != nil:
		return err
	case ok:
		return nil
	case ctx.Err() != nil:
		return errors.Join(refusal, ctx.Err())
	}
	return refusal
}

// syncUntil syncs, then polls the inbox (see pollDelay), until done holds
// for the room (nil once the client is no longer in it), until passes or
// ctx ends. It reports whether done held; err is a failed sync.
func (c *Client) syncUntil(ctx context.Context, roomID string, until time.Time, done func(*room) bool) (bool, error) {
	delay := epochPollDelay
	for {
		if err := c.syncLocked(ctx); err != nil {
			return false, err
		}
		if done(c.rooms[roomID]) {
			return true, nil
		}
		if !pollDelay(ctx, &delay, until) {
			return false, nil
		}
	}
}

// JoinNewDevice joins a room of the client's user by external commit: the
// "Cathy adds a new device" flow (draft-ralston-mimi-protocol-02, Sections
// 3.6 and 5.6). It asks the hub, through the provider, for the GroupInfo
// with a GroupInfoRequest signed with the client's key; verifies the hub's
// signature on the response and that its hub_sender is listed in the
// group's external_senders (Section 6.4), that the response is for this
// room and that the client's user is a participant; creates the external
// Commit (RFC 9420, Section 12.4.3.2; if this client already has a leaf,
// from a lost state, the commit removes it: a resync) and sends it to the
// hub with the new GroupInfo and tree. On wrongEpoch it fetches the
// GroupInfo again, until it is of the hub's epoch (see Options.EpochWait),
// up to Options.MaxAttempts.
//
// When no try is answered the join's outcome is unknown
// (ErrOutcomeUnknown): the external commit is kept, and its echo from
// the provider completes the join in Sync (EventJoined), while a new call
// of JoinNewDevice first sends the same commit again. The kept commit is
// not part of the saved state.
func (c *Client) JoinNewDevice(ctx context.Context, roomID string) error {
	if _, err := mimi.ParseURIKind(roomID, mimi.KindRoom); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	until := c.waitUntil()
	var last error
	for range c.opts.MaxAttempts {
		if c.rooms[roomID] != nil {
			return fmt.Errorf("%w: %s", ErrRoomExists, roomID)
		}
		if done, err := c.resolveJoin(ctx, roomID); done || err != nil {
			return err
		}
		gi, tree, err := c.groupInfoAt(ctx, roomID, last, until)
		if err != nil {
			return err
		}
		opts := &mls.ExternalJoinOptions{RatchetTree: tree, Config: c.mlsConfig()}
		if l, ok := c.ownLeaf(tree); ok {
			opts.RemoveLeaf = &l
		}
		pc, err := mls.JoinExternal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatGroupInfo, GroupInfo: gi}, c.signer(), opts)
		if err != nil {
			return fmt.Errorf("client: external commit to %s: %w", roomID, err)
		}
		ureq, err := c.updateRequest(pc)
		if err != nil {
			pc.Discard()
			return err
		}
		uresp, _, err := c.update(ctx, roomID, ureq)
		if err != nil {
			if enc, merr := codec.Marshal(pc.Message); merr == nil {
				c.joins[roomID] = &pendingJoin{pc: pc, req: ureq, enc: enc}
			} else {
				pc.Discard()
			}
			return fmt.Errorf("%w: external commit to %s: %w", ErrOutcomeUnknown, roomID, err)
		}
		if uresp.Code != mimi.UpdateSuccess {
			pc.Discard()
			last = updateError(roomID, uresp)
			if uresp.Code == mimi.UpdateWrongEpoch {
				continue
			}
			return last
		}
		return c.joinedExternally(roomID, pc)
	}
	return last
}

// pendingJoin is an external commit of ours whose outcome is unknown
// (JoinNewDevice): the UpdateRequest that carried it, and the commit's
// encoding, to recognize its echo.
type pendingJoin struct {
	pc  *mls.PendingCommit
	req *mimi.UpdateRequest
	enc []byte
}

// resolveJoin settles a pending external commit to roomID before a new
// join: it sends the same request again, which the hub answers with its
// first success if it accepted the commit and no other came since
// (draft-ralston-mimi-protocol-02, Section 5.3). done reports that the
// join is complete. Any refusal drops the commit, and the caller joins
// afresh; if the hub had taken it after all, the new external commit
// removes that leaf (a resync, RFC 9420 Section 12.4.3.2) and the old
// commit's echo is a past epoch's.
func (c *Client) resolveJoin(ctx context.Context, roomID string) (done bool, err error) {
	p := c.joins[roomID]
	if p == nil {
		return false, nil
	}
	resp, _, err := c.update(ctx, roomID, p.req)
	if err != nil {
		return false, fmt.Errorf("%w: an earlier external commit to %s: %w", ErrOutcomeUnknown, roomID, err)
	}
	delete(c.joins, roomID)
	if resp.Code == mimi.UpdateSuccess {
		return true, c.joinedExternally(roomID, p.pc)
	}
	p.pc.Discard()
	return false, nil
}

// joinedExternally merges our external commit that the hub accepted and
// adds the room it joined.
func (c *Client) joinedExternally(roomID string, pc *mls.PendingCommit) error {
	if err := pc.Merge(); err != nil {
		return fmt.Errorf("client: merging our accepted external commit to %s: %w", roomID, err)
	}
	g := pc.Group()
	if err := c.checkGroupID(g.GroupID(), ""); err != nil {
		return err
	}
	r := &room{id: roomID, g: g}
	if b, err := codec.Marshal(pc.Message); err == nil {
		r.remember(b)
	}
	c.rooms[roomID] = r
	return nil
}

// groupInfoAt fetches the room's GroupInfo and tree from the hub through
// the provider (draft-ralston-mimi-protocol-02, Section 5.6) and checks
// them (checkGroupInfoResponse). After refusal, a wrongEpoch answer to an
// external commit (or nil for the first try), it fetches them again,
// polling (see pollDelay), until they are of the epoch the hub named: one
// served before the hub got there, by a provider that lags, would be
// refused again. If none is by until, it returns refusal (joined with the
// context's error if ctx ended).
func (c *Client) groupInfoAt(ctx context.Context, roomID string, refusal error, until time.Time) (*wire.GroupInfo, wire.RatchetTree, error) {
	greq := &mimi.GroupInfoRequest{
		Protocol: mimi.ProtocolMLS10, CipherSuite: c.suite.ID(),
		RequestingSignatureKey: c.SignaturePublicKey(), RequestingCredential: c.Credential(),
	}
	if err := greq.Sign(c.sigPriv); err != nil {
		return nil, nil, fmt.Errorf("client: signing the GroupInfo request: %w", err)
	}
	want := hubEpoch(refusal)
	delay := epochPollDelay
	for {
		resp, err := c.p.GroupInfo(ctx, c.id.Client, roomID, greq)
		if err != nil {
			return nil, nil, fmt.Errorf("client: group info of %s: %w", roomID, err)
		}
		gi, tree, err := c.checkGroupInfoResponse(roomID, resp)
		if err != nil || gi.GroupContext.Epoch >= want {
			return gi, tree, err
		}
		if !pollDelay(ctx, &delay, until) {
			if ctx.Err() != nil {
				return nil, nil, errors.Join(refusal, ctx.Err())
			}
			return nil, nil, refusal
		}
	}
}

// checkGroupInfoResponse verifies a GroupInfoResponse for an external join
// (draft-ralston-mimi-protocol-02, Sections 5.6 and 6.4) and returns its
// GroupInfo and ratchet tree.
func (c *Client) checkGroupInfoResponse(roomID string, resp *mimi.GroupInfoResponse) (*wire.GroupInfo, wire.RatchetTree, error) {
	if resp == nil || resp.Version != mimi.ProtocolMLS10 {
		return nil, nil, fmt.Errorf("%w: GroupInfo response without protocol mls10", ErrInvalidResponse)
	}
	if resp.Status != mimi.GroupInfoSuccess {
		return nil, nil, &GroupInfoError{Room: roomID, Status: resp.Status}
	}
	if err := resp.Verify(); err != nil {
		return nil, nil, fmt.Errorf("%w: GroupInfo response signature: %w", ErrInvalidResponse, err)
	}
	if string(resp.RoomID) != roomID {
		return nil, nil, fmt.Errorf("%w: GroupInfo response for room %q", ErrInvalidResponse, resp.RoomID)
	}
	gi := &resp.GroupInfo
	if gi.GroupContext.CipherSuite != c.suite.ID() {
		return nil, nil, fmt.Errorf("%w: room %s uses cipher suite %v, this client %v", ErrInvalidArgument, roomID, gi.GroupContext.CipherSuite, c.suite.ID())
	}
	senders, _, err := wire.ExternalSendersExtension(gi.GroupContext.Extensions)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: external_senders: %w", ErrInvalidResponse, err)
	}
	listed := false
	for i := range senders {
		if sameSender(&senders[i], &resp.HubSender) {
			listed = true
			break
		}
	}
	if !listed {
		return nil, nil, fmt.Errorf("%w: the hub_sender that signed the response is not in the group's external_senders", ErrInvalidResponse)
	}
	if resp.RatchetTreeOption.Representation != mimi.RatchetTreeFull || len(resp.RatchetTreeOption.Tree) == 0 {
		return nil, nil, fmt.Errorf("%w: no ratchet tree", ErrInvalidResponse)
	}
	st, _, err := wire.ApplicationStatesExtension(gi.GroupContext.Extensions)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: application_states: %w", ErrInvalidResponse, err)
	}
	rm, err := mimi.RoomFromStates(st)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: room state: %w", ErrInvalidResponse, err)
	}
	if rm.Policy.RoomID != roomID {
		return nil, nil, fmt.Errorf("%w: the group holds room %s", ErrInvalidResponse, rm.Policy.RoomID)
	}
	if _, ok := rm.Participant(c.id.User); !ok {
		return nil, nil, fmt.Errorf("%w: %s in %s", ErrNotParticipant, c.id.User, roomID)
	}
	return gi, resp.RatchetTreeOption.Tree, nil
}

// ownLeaf finds a leaf of this client in a ratchet tree (RFC 9420, Section
// 4.1: leaves are the even nodes).
func (c *Client) ownLeaf(tree wire.RatchetTree) (treemath.LeafIndex, bool) {
	for i := 0; i < len(tree); i += 2 {
		n := tree[i]
		if n == nil || n.Leaf == nil {
			continue
		}
		if id, err := mimi.IdentityFromCredential(&n.Leaf.Credential); err == nil && id.Client == c.id.Client {
			return treemath.LeafIndex(i / 2), true
		}
	}
	return 0, false
}

func sameSender(a, b *wire.ExternalSender) bool {
	return bytes.Equal(a.SignatureKey, b.SignatureKey) && a.Credential.Type == b.Credential.Type &&
		bytes.Equal(a.Credential.Identity, b.Credential.Identity) &&
		slices.EqualFunc(a.Credential.Certificates, b.Credential.Certificates, bytes.Equal)
}

// checkGroupID enforces RFC 9420, Section 12.4.3.1: a joined group's ID
// must not be that of another of the client's groups (except the room's
// own, being replaced).
func (c *Client) checkGroupID(gid []byte, replacing string) error {
	for id, r := range c.rooms {
		if id != replacing && bytes.Equal(r.g.GroupID(), gid) {
			return fmt.Errorf("%w: group ID %q is already used by room %s", ErrRoomExists, gid, id)
		}
	}
	return nil
}

func providerOf(uri string) string {
	u, err := mimi.ParseURI(uri)
	if err != nil {
		return ""
	}
	return u.Provider
}
