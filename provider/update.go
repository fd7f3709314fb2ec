package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// Update serves POST /update/{roomId} from peer as the room's hub
// (draft-ralston-mimi-protocol-02, Sections 5.3 and 6). The room must be
// hosted here (ErrNoSuchRoom). A message for another epoch is answered
// wrongEpoch with the current epoch.
//
// Proposals (the PublicMessage and moreProposals, all or nothing): each
// must verify and be valid in the current epoch (RFC 9420, Section 12.1;
// otherwise invalidProposal with its ProposalRef), be authored by a client
// of peer (or the hub itself), and be allowed by the room policy in the
// state left by the ones before it: a participant-list AppSync authorized
// for its author (mimi.Room.Authorize), a policy AppSync only with
// canSetPolicy, Adds only of participants' clients, Removes of other
// users' clients only with canRemoveUser, no ReInit, and GroupContext
// extensions only with canSetPolicy, keeping the hub in external_senders
// and application_states unchanged. A removed participant's clients may
// only propose Remove or SelfRemove of their own user's clients (Section
// 5.3). Accepted proposals are cached and their room-state effect applied
// at once (Section 6.1).
//
// Commits: processed by the room's group view (RFC 9420, Section 12.4.2;
// a bad proposal is invalidProposal with the offending ProposalRef, any
// other failure notAllowed), then refused (notAllowed) unless: the
// committer is a client of peer whose user is a participant (a removed
// participant may not commit; an external commit is only for a
// participant's new client, Section 3.6); the commit includes every
// proposal cached in the epoch (Section 3.5) and no ReInit; its AppSyncs,
// in commit order, are valid for the state they apply to, those by value
// authorized for the committer (those by reference were when accepted),
// and yield exactly the new application_states; external_senders still
// lists the hub; afterwards every member's user is a participant and no
// client has two leaves; the GroupInfo is the new epoch's (checked against
// the view's result, without ratchet_tree) and the RatchetTreeOption the
// new tree; a Welcome is present exactly when there are Adds, for exactly
// the added KeyPackageRefs, each obtained through this hub for this room.
// An accepted commit is answered success with the acceptance timestamp.
func (p *Provider) Update(ctx context.Context, peer, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	return p.hubUpdate(ctx, source{domain: peer}, room, req)
}

// LocalUpdate submits a local client's proposals or commit
// (draft-ralston-mimi-protocol-02, Sections 3 and 5.3): handled here when
// the room is hosted here (the messages must be the client's own), and
// forwarded to the room's hub otherwise. The client receives its own
// proposals and commit back in its inbox, wherever the room is hosted: if
// this answer is lost on its way, the echo tells the client that the hub
// accepted them (Section 5.5: clients must be prepared to receive their
// own messages).
func (p *Provider) LocalUpdate(ctx context.Context, client, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	hub, err := p.localRoomHub(client, room)
	if err != nil {
		return nil, err
	}
	if hub == p.domain {
		return p.hubUpdate(ctx, source{domain: p.domain, client: client}, room, req)
	}
	rem, err := p.remoteOrErr()
	if err != nil {
		return nil, err
	}
	resp, err := rem.Update(ctx, hub, room, req)
	if err != nil {
		return nil, fmt.Errorf("provider: update via hub %s: %w", hub, err)
	}
	return resp, nil
}

// hubUpdate decides an update request for a room hosted here
// (draft-ralston-mimi-protocol-02, Sections 5.3 and 6).
//
// Proposals (the PublicMessage and moreProposals) are verified and cached
// in the room's public group view, checked against the room policy
// (checkProposals) and, when all pass, accepted in one Raft command that
// applies their room-state effect immediately (Section 6.1) and queues
// them for every provider with participants and every local member.
//
// A commit is processed by the view (RFC 9420, Section 12.4.2) and checked
// by checkCommit; an accepted commit becomes one Raft command (the
// CommitAccepted event, its fanout, the Welcome routed only to the
// providers and local clients whose KeyPackageRefs it carries, and the
// local inbox entries) conditioned on the room still being at the commit's
// epoch, so of two racing commits the loser gets wrongEpoch.
//
// Every command is also conditioned on the room's last room sequence
// number, so a decision made on state that changed meanwhile (another node
// accepted a proposal) is re-made.
func (p *Provider) hubUpdate(ctx context.Context, src source, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", ErrInvalid)
	}
	hr := p.hubRoom(room)
	hr.mu.Lock()
	defer hr.mu.Unlock()
	// Application messages that arrived before this update are decided
	// first, in their epoch.
	p.flushSubmits(hr, room)
	for attempt := 0; attempt < p.attempts; attempt++ {
		rec, err := p.hostedRoom(room)
		if err != nil {
			return nil, err
		}
		if rec.Closed {
			return updateNotAllowed("room %s is closed", room), nil
		}
		v, err := p.view(hr, rec)
		if err != nil {
			return nil, err
		}
		eff, err := effectiveRoom(rec)
		if err != nil {
			return nil, err
		}
		ts := p.nowMillis()
		var (
			resp *mimi.UpdateRoomResponse
			ops  []projections.Op
			next *publicgroup.View
		)
		if req.IsCommit() {
			if resp, err := p.commitAcceptedBefore(room, rec, &req.ProposalOrCommit); err != nil || resp != nil {
				return resp, err
			}
			resp, ops, next, err = p.checkCommit(src, room, rec, v, eff, req, ts)
		} else {
			msgs := make([]*wire.PublicMessage, 0, 1+len(req.MoreProposals))
			msgs = append(msgs, &req.ProposalOrCommit)
			for i := range req.MoreProposals {
				msgs = append(msgs, &req.MoreProposals[i])
			}
			resp, ops, next, err = p.checkProposals(src, room, rec, v, eff, msgs, ts)
		}
		if err != nil || resp != nil {
			return resp, err
		}
		head := uint64(0)
		if hr.headKnown {
			head = hr.head
		}
		cmd := &projections.Command{
			Conditions: []projections.Condition{projections.RoomEpochIs(room, v.Epoch()), projections.RoomSeqIs(room, head)},
			Ops:        ops,
		}
		res, err := p.apply(ctx, cmd)
		if err != nil {
			return nil, err
		}
		var we *projections.WrongEpochError
		var se *projections.RoomSeqError
		switch {
		case res.Err == nil:
			hr.view, hr.epoch, hr.nprops = next, next.Epoch(), uint32(len(next.PendingProposals()))
			// RoomSeqIs held, and the command's events are the room's
			// next ones.
			if n := len(res.Events); n > 0 {
				hr.head, hr.headKnown = res.Events[n-1].RoomSeq, true
			}
			p.kicked(res)
			return &mimi.UpdateRoomResponse{Code: mimi.UpdateSuccess, AcceptedTimestamp: ts}, nil
		case errors.As(res.Err, &we):
			hr.invalidate()
			if req.IsCommit() {
				// The commit that moved the room on may be this one, sent
				// again while its first copy was being replicated: it
				// gets that acceptance (the state machine applied it
				// here before refusing this command).
				rec, err := p.hostedRoom(room)
				if err != nil {
					return nil, err
				}
				if resp, err := p.commitAcceptedBefore(room, rec, &req.ProposalOrCommit); err != nil || resp != nil {
					return resp, err
				}
			}
			return updateWrongEpoch(we.Current), nil
		case errors.As(res.Err, &se):
			// The room changed under us (or the head was unknown): catch
			// up and decide again. The view stays if the epoch and the
			// cached proposals did not change (view checks).
			hr.head, hr.headKnown = se.Current, true
			if err := p.barrier(ctx); err != nil {
				return nil, err
			}
			continue
		case errors.Is(res.Err, projections.ErrRoomClosed):
			return updateNotAllowed("room %s is closed", room), nil
		case errors.Is(res.Err, projections.ErrUnknownClient), errors.Is(res.Err, projections.ErrDuplicateProposal):
			// A local recipient was deregistered meanwhile, or another
			// node of the hub's cluster cached the proposal first.
			hr.invalidate()
			if err := p.barrier(ctx); err != nil {
				return nil, err
			}
			continue
		default:
			hr.invalidate()
			return nil, fmt.Errorf("provider: update of %s: %w", room, res.Err)
		}
	}
	return nil, fmt.Errorf("%w: room %s is contended", ErrUnavailable, room)
}

// checkProposals validates proposals for the hub (draft-ralston-mimi-
// protocol-02, Sections 5.3 and 6.1). Each must be a valid proposal of the
// current epoch (publicgroup.View.HandleProposal: signature, sender,
// RFC 9420 Section 12.1 validity), submitted by the provider of its author
// (vouch), and allowed by the room policy in the room state left by the
// previous ones: a participant-list AppSync authorized for its author, a
// policy AppSync only with canSetPolicy, and (Section 5.3) an author whose
// user was removed from the room may only propose Remove or SelfRemove of
// its own user's clients. The batch is all-or-nothing; invalid proposals
// are reported together by ProposalRef. A proposal the room already cached
// in this epoch is skipped (accepted once); a request of nothing new is
// answered with the first acceptance's timestamp.
func (p *Provider) checkProposals(src source, roomID string, rec *projections.Room, v *publicgroup.View, eff *mimi.Room,
	msgs []*wire.PublicMessage, ts uint64) (*mimi.UpdateRoomResponse, []projections.Op, *publicgroup.View, error) {
	work := v.Clone()
	rm := eff
	var (
		ops     []projections.Op
		invalid [][]byte
		why     []string
	)
	locals := p.localMembers(rec.Members, nil)
	memberDests := map[string]bool{}
	for _, c := range rec.Members {
		if d := providerOf(c); d != "" {
			memberDests[d] = true
		}
	}
	var again []byte // a proposal of the request the room already cached
	for i, pm := range msgs {
		if pm.Content.Epoch != work.Epoch() {
			return updateWrongEpoch(work.Epoch()), nil, nil, nil
		}
		// A proposal the room already cached (a provider retrying after a
		// lost answer, or one repeated in the request) is accepted once:
		// it is neither cached nor fanned out again.
		if r, err := publicgroup.ProposalRef(work.Suite(), pm); err == nil && work.HasProposal(r) {
			if again == nil {
				again = r
			}
			continue
		}
		ref, err := work.HandleProposal(pm)
		if err != nil {
			if errors.Is(err, publicgroup.ErrWrongEpoch) {
				return updateWrongEpoch(work.Epoch()), nil, nil, nil
			}
			if r, rerr := publicgroup.ProposalRef(work.Suite(), pm); rerr == nil {
				invalid = append(invalid, r)
			}
			why = append(why, fmt.Sprintf("proposal %d: %v", i, err))
			continue
		}
		a, err := p.resolveSender(work, &pm.Content)
		if err != nil {
			return updateNotAllowed("proposal %d: %v", i, err), nil, nil, nil
		}
		if err := p.vouch(src, a); err != nil {
			return updateNotAllowed("proposal %d: %v", i, err), nil, nil, nil
		}
		prop := pm.Content.Proposal
		next := rm
		if !a.hub && !isParticipant(rm, a.user()) {
			// Section 5.3: a removed participant's clients may only
			// propose to remove their own user's clients.
			ok := prop.Type == wire.ProposalSelfRemove
			if rmv, isRemove := prop.Body.(*wire.Remove); isRemove {
				if m, found := work.Member(leafIndex(rmv.Removed)); found {
					if id, err := identityOf(&m.Credential); err == nil && id.User == a.user() {
						ok = true
					}
				}
			}
			if !ok {
				return updateNotAllowed("proposal %d: %s is not a participant; it may only remove its own clients", i, a.user()), nil, nil, nil
			}
		} else if as, isSync := prop.Body.(*wire.AppSync); isSync {
			next, err = applyAppSync(a, rm, &as.AppSync, roomID, true, nil)
			if err != nil {
				var na *notAllowedErr
				if errors.As(err, &na) {
					return updateNotAllowed("proposal %d: %v", i, err), nil, nil, nil
				}
				invalid = append(invalid, ref)
				why = append(why, fmt.Sprintf("proposal %d: %v", i, err))
				continue
			}
		} else if err := p.authorizeOther(a, rm, rm, work, prop); err != nil {
			return updateNotAllowed("proposal %d: %v", i, err), nil, nil, nil
		}
		if add, isAdd := prop.Body.(*wire.Add); isAdd {
			// A cached Add must be committable: its Welcome must be
			// routable (see checkCommit).
			kpRef, err := add.KeyPackage.Ref(work.Suite())
			if err != nil {
				return nil, nil, nil, fmt.Errorf("provider: %w", err)
			}
			if _, _, ok := p.welcomeRoute(kpRef, roomID); !ok {
				return updateNotAllowed("proposal %d: KeyPackage %x was not obtained through the hub for this room", i, kpRef), nil, nil, nil
			}
		}
		msgBytes, err := publicMessageBytes(pm)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("provider: %w", err)
		}
		start := len(ops)
		ops = append(ops, projections.EventOp(roomID, ts, &eventlog.ProposalAccepted{
			Epoch: work.Epoch(), Message: msgBytes, ProposalRef: ref, Sender: p.actorName(a),
		}))
		if next != rm {
			upd := &eventlog.RoomStateUpdated{Sender: p.actorName(a)}
			op, oparts, err1 := encodeRoom(rm)
			np, nparts, err2 := encodeRoom(next)
			if err1 != nil || err2 != nil {
				return nil, nil, nil, fmt.Errorf("provider: encoding room state: %v %v", err1, err2)
			}
			if !bytes.Equal(op, np) {
				upd.Policy = np
			}
			if !bytes.Equal(oparts, nparts) {
				upd.Participants = nparts
			}
			if upd.Policy != nil || upd.Participants != nil {
				ops = append(ops, projections.EventOp(roomID, ts, upd))
			}
		}
		// Providers with participants before or after, and those of
		// every MLS member: a client whose user was removed from the
		// participant list is a member until the next commit, which may
		// refer to this proposal (RFC 9420, Section 12.4), and it should
		// see that commit (Section 5.5).
		dests := maps.Clone(memberDests)
		participantProviders(dests, rm)
		participantProviders(dests, next)
		delete(dests, p.domain)
		if len(dests) > 0 {
			ops = append(ops, projections.EventOp(roomID, ts, &eventlog.FanoutEnqueued{
				Destinations: sortedKeys(dests), Back: uint64(len(ops) - start), Part: eventlog.PartMessage,
			}))
		}
		if len(locals) > 0 {
			ops = append(ops, projections.EventOp(roomID, ts, &eventlog.ClientEnqueued{
				Clients: locals, Back: uint64(len(ops) - start), Part: eventlog.PartMessage,
			}))
		}
		rm = next
	}
	if len(invalid) > 0 || len(why) > 0 {
		return updateInvalid(invalid, "%v", why), nil, nil, nil
	}
	if len(ops) == 0 && again != nil {
		// Nothing new: the answer the first acceptance got.
		ps, err := p.m.RoomProposals(roomID)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		for _, cp := range ps {
			if bytes.Equal(cp.Ref, again) {
				return &mimi.UpdateRoomResponse{Code: mimi.UpdateSuccess, AcceptedTimestamp: cp.Timestamp}, nil, nil, nil
			}
		}
		return nil, nil, nil, fmt.Errorf("%w: proposal %x is in the view but not in the room's cache", ErrUnavailable, again)
	}
	if err := committable(work); err != nil {
		// Blame the offending proposal if it is one of this request's,
		// else all of them.
		var pe *commit.ProposalError
		var refs [][]byte
		for _, op := range ops {
			if pa, ok := op.Event.Body.(*eventlog.ProposalAccepted); ok {
				if errors.As(err, &pe) && bytes.Equal(pe.Ref, pa.ProposalRef) {
					refs = [][]byte{pa.ProposalRef}
					break
				}
				refs = append(refs, pa.ProposalRef)
			}
		}
		return updateInvalid(refs, "the proposals cached for epoch %d could not be committed together: %v", work.Epoch(), err), nil, nil, nil
	}
	return nil, ops, work, nil
}

// checkCommit validates a commit for the hub and plans its events
// (draft-ralston-mimi-protocol-02, Sections 3.3-3.6, 5.3, 5.5 and 6):
//
//   - the view processes it (RFC 9420, Section 12.4.2): an invalid
//     proposal is invalidProposal with its ProposalRef, a wrong epoch
//     wrongEpoch, anything else notAllowed;
//   - the committer's provider submitted it, and its user is a
//     participant (Section 5.3: removed participants may not commit;
//     Section 3.6: external commits only for participants' new clients);
//   - it includes every proposal the hub cached in this epoch (Section
//     3.5, the leave flow) and no ReInit;
//   - its AppSyncs, in commit order, are valid for the room state they
//     apply to; those by value are authorized for the committer (those by
//     reference were authorized when accepted); the other proposals by
//     value pass authorizeOther; the resulting room state is exactly the
//     new application_states, and external_senders still lists the hub;
//   - after the commit every member's user is a participant, each client
//     has one leaf, and every Add is for a participant's client;
//   - the GroupInfo is the new epoch's (CommitResult.CheckGroupInfo),
//     without ratchet_tree, and the RatchetTreeOption is the new tree;
//   - the Welcome is present exactly when there are Adds, in the group's
//     suite, for exactly the added KeyPackageRefs, each of which the hub
//     obtained for this room (a local claim or a hub route).
func (p *Provider) checkCommit(src source, roomID string, rec *projections.Room, v *publicgroup.View, eff *mimi.Room,
	req *mimi.UpdateRequest, ts uint64) (*mimi.UpdateRoomResponse, []projections.Op, *publicgroup.View, error) {
	pm := &req.ProposalOrCommit
	if pm.Content.Epoch != v.Epoch() {
		return updateWrongEpoch(v.Epoch()), nil, nil, nil
	}
	res, err := v.HandleCommit(pm)
	if err != nil {
		var pe *commit.ProposalError
		switch {
		case errors.As(err, &pe):
			var refs [][]byte
			if pe.Ref != nil {
				refs = append(refs, pe.Ref)
			}
			return updateInvalid(refs, "proposal %d of the commit: %v", pe.Index, pe.Err), nil, nil, nil
		case errors.Is(err, publicgroup.ErrWrongEpoch):
			return updateWrongEpoch(v.Epoch()), nil, nil, nil
		}
		return updateNotAllowed("commit rejected: %v", err), nil, nil, nil
	}
	a, err := p.resolveSender(v, &pm.Content)
	if err != nil {
		return updateNotAllowed("committer: %v", err), nil, nil, nil
	}
	if a.hub {
		return updateNotAllowed("the hub does not commit"), nil, nil, nil
	}
	if err := p.vouch(src, a); err != nil {
		return updateNotAllowed("%v", err), nil, nil, nil
	}
	if !isParticipant(eff, a.user()) {
		if res.External {
			return updateNotAllowed("external commit by %s, whose user %s is not a participant", a.id.Client, a.user()), nil, nil, nil
		}
		return updateNotAllowed("%s is not a participant and may not commit", a.user()), nil, nil, nil
	}
	pending := map[string]publicgroup.PendingProposal{}
	for _, pp := range v.PendingProposals() {
		pending[string(pp.Ref)] = pp
	}
	included := map[string]bool{}
	for _, r := range res.ProposalRefs {
		included[string(r)] = true
	}
	var missing int
	for r := range pending {
		if !included[r] {
			missing++
		}
	}
	if missing > 0 {
		return updateNotAllowed("the commit omits %d of the %d proposals the hub holds for epoch %d", missing, len(pending), v.Epoch()), nil, nil, nil
	}
	if res.ReInit != nil {
		return updateNotAllowed("ReInit is not allowed in a MIMI room"), nil, nil, nil
	}

	// Room state: the AppSyncs in commit order, from the committed state.
	committed, err := mimi.RoomFromStates(v.ApplicationStates())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("provider: room %s: committed room state: %w", roomID, err)
	}
	cur := committed
	var byValue []*wire.Proposal
	for i, por := range pm.Content.Commit.Proposals {
		prop, byRef := por.Proposal, por.Type == wire.ProposalOrRefReference
		if byRef {
			prop = pending[string(por.Reference)].Proposal
		}
		if prop == nil {
			continue
		}
		as, isSync := prop.Body.(*wire.AppSync)
		if !isSync {
			if !byRef {
				byValue = append(byValue, prop)
			}
			continue
		}
		next, err := applyAppSync(a, cur, &as.AppSync, roomID, !byRef, eff)
		if err != nil {
			var na *notAllowedErr
			if errors.As(err, &na) {
				return updateNotAllowed("proposal %d of the commit: %v", i, err), nil, nil, nil
			}
			var refs [][]byte
			if byRef {
				refs = append(refs, por.Reference)
			}
			return updateInvalid(refs, "proposal %d of the commit: %v", i, err), nil, nil, nil
		}
		cur = next
	}
	final, err := mimi.RoomFromStates(res.ApplicationStates)
	if err != nil {
		return updateNotAllowed("room state after the commit: %v", err), nil, nil, nil
	}
	if !sameRoom(final, cur) || final.Policy.RoomID != roomID {
		return updateNotAllowed("application_states after the commit differ from the authorized AppSyncs"), nil, nil, nil
	}
	for i, prop := range byValue {
		if err := p.authorizeOther(a, eff, final, v, prop); err != nil {
			return updateNotAllowed("proposal by value %d: %v", i, err), nil, nil, nil
		}
	}
	senders, _, err := wire.ExternalSendersExtension(res.GroupContext.Extensions)
	if err != nil || !hasExternalSender(senders, &p.hubSend) {
		return updateNotAllowed("external_senders must list the hub"), nil, nil, nil
	}

	// Membership after the commit.
	added := map[string]bool{}
	for _, ad := range res.Added {
		id, err := identityOf(&ad.Credential)
		if err != nil {
			return updateNotAllowed("Add: %v", err), nil, nil, nil
		}
		if !isParticipant(final, id.User) {
			return updateNotAllowed("Add of client %s, whose user %s is not a participant after the commit", id.Client, id.User), nil, nil, nil
		}
		added[id.Client] = true
	}
	next := res.View()
	var members []string
	seen := map[string]bool{}
	for _, mb := range next.Members() {
		id, err := identityOf(&mb.Credential)
		if err != nil {
			return updateNotAllowed("member at leaf %d: %v", mb.Leaf, err), nil, nil, nil
		}
		if !isParticipant(final, id.User) {
			return updateNotAllowed("member %s's user %s is not a participant after the commit", id.Client, id.User), nil, nil, nil
		}
		if seen[id.Client] {
			return updateNotAllowed("client %s would have two leaves", id.Client), nil, nil, nil
		}
		seen[id.Client] = true
		members = append(members, id.Client)
	}

	// GroupInfo and tree for the new epoch.
	if req.GroupInfo == nil || req.RatchetTreeOption == nil {
		return updateNotAllowed("a commit needs a GroupInfo and the ratchet tree"), nil, nil, nil
	}
	if _, found, _ := wire.RatchetTreeExtension(req.GroupInfo.Extensions); found {
		return updateNotAllowed("the GroupInfo must omit the ratchet_tree extension"), nil, nil, nil
	}
	if err := res.CheckGroupInfo(req.GroupInfo); err != nil {
		return updateNotAllowed("GroupInfo: %v", err), nil, nil, nil
	}
	nt := next.RatchetTree()
	ntb, err := codec.Marshal(&nt)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("provider: encoding the tree: %w", err)
	}
	if b, err := codec.Marshal(&req.RatchetTreeOption.Tree); err != nil || !bytes.Equal(b, ntb) {
		return updateNotAllowed("the ratchet tree differs from the tree after the commit"), nil, nil, nil
	}
	gib, err := codec.Marshal(req.GroupInfo)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("provider: encoding the GroupInfo: %w", err)
	}

	// Welcome routing (Sections 4.3.1 and 5.5).
	var (
		welcomeBytes   []byte
		routes         []eventlog.WelcomeRoute
		welcomeDests   = map[string]bool{}
		welcomeClients []string
	)
	switch {
	case len(res.Added) == 0 && req.Welcome != nil:
		return updateNotAllowed("a Welcome without Adds"), nil, nil, nil
	case len(res.Added) > 0:
		w := req.Welcome
		if w == nil {
			return updateNotAllowed("the commit adds members but carries no Welcome"), nil, nil, nil
		}
		if w.CipherSuite != v.Suite().ID() {
			return updateNotAllowed("the Welcome is for cipher suite %v", w.CipherSuite), nil, nil, nil
		}
		want := map[string]bool{}
		for _, ad := range res.Added {
			want[string(ad.KeyPackageRef)] = true
		}
		got := map[string]bool{}
		for _, s := range w.Secrets {
			if !want[string(s.NewMember)] || got[string(s.NewMember)] {
				return updateNotAllowed("the Welcome's secrets do not match the added KeyPackages"), nil, nil, nil
			}
			got[string(s.NewMember)] = true
		}
		if len(got) != len(want) {
			return updateNotAllowed("the Welcome's secrets do not match the added KeyPackages"), nil, nil, nil
		}
		for _, ad := range res.Added {
			ref := ad.KeyPackageRef
			client, prov, ok := p.welcomeRoute(ref, roomID)
			switch {
			case !ok:
				return updateNotAllowed("KeyPackage %x was not obtained through the hub for this room", ref), nil, nil, nil
			case client != "":
				welcomeClients = append(welcomeClients, client)
			default:
				routes = append(routes, eventlog.WelcomeRoute{Ref: bytes.Clone(ref), Provider: prov})
				welcomeDests[prov] = true
			}
		}
		welcomeBytes, err = codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatWelcome, Welcome: w})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("provider: encoding the Welcome: %w", err)
		}
	}

	// Destinations: providers with participants before or after, and
	// those of removed members, which SHOULD see their removal (Section
	// 5.5); local members before and after, except the newly added (they
	// join by the Welcome). The committer gets its own commit too: a client
	// whose answer was lost learns from it that the hub accepted its commit
	// (Section 5.5: clients must be prepared to receive their own message).
	dests := map[string]bool{}
	participantProviders(dests, eff)
	participantProviders(dests, committed)
	participantProviders(dests, final)
	for _, rmd := range res.Removed {
		if id, err := identityOf(&rmd.Credential); err == nil {
			dests[providerOf(id.Client)] = true
		}
	}
	delete(dests, p.domain)
	locals := p.localMembers(append(slices.Clone(rec.Members), members...), func(c *projections.Client) bool {
		return !added[c.Client]
	})
	welcomeClients = p.localMembers(welcomeClients, nil)

	commitBytes, err := publicMessageBytes(pm)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("provider: %w", err)
	}
	pol, parts, err := encodeRoom(final)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("provider: %w", err)
	}
	slices.Sort(members)
	ops := []projections.Op{projections.EventOp(roomID, ts, &eventlog.CommitAccepted{
		Epoch: res.Epoch, Commit: commitBytes, Welcome: welcomeBytes, WelcomeRoutes: routes,
		GroupInfo: gib, RatchetTree: ntb, Participants: parts, Policy: pol, Members: members,
		Sender: p.actorName(a),
	})}
	if len(dests) > 0 {
		ops = append(ops, projections.EventOp(roomID, ts, &eventlog.FanoutEnqueued{
			Destinations: sortedKeys(dests), Back: uint64(len(ops)), Part: eventlog.PartMessage}))
	}
	if len(welcomeDests) > 0 {
		ops = append(ops, projections.EventOp(roomID, ts, &eventlog.FanoutEnqueued{
			Destinations: sortedKeys(welcomeDests), Back: uint64(len(ops)), Part: eventlog.PartWelcome}))
	}
	if len(locals) > 0 {
		ops = append(ops, projections.EventOp(roomID, ts, &eventlog.ClientEnqueued{
			Clients: locals, Back: uint64(len(ops)), Part: eventlog.PartMessage}))
	}
	if len(welcomeClients) > 0 {
		ops = append(ops, projections.EventOp(roomID, ts, &eventlog.ClientEnqueued{
			Clients: welcomeClients, Back: uint64(len(ops)), Part: eventlog.PartWelcome}))
	}
	return nil, ops, next, nil
}

// welcomeRoute finds where the Welcome for a KeyPackageRef goes
// (draft-ralston-mimi-protocol-02, Sections 4.3.1 and 5.5): a local client
// when the KeyPackage was claimed here for this room (the target route),
// or the provider the hub fetched it from for this room (the hub route).
func (p *Provider) welcomeRoute(ref []byte, room string) (client, provider string, ok bool) {
	if tr, err := p.m.TargetRoute(ref); err == nil && tr.Room == room && p.isLocal(tr.Client) {
		return tr.Client, "", true
	}
	if hr, err := p.m.HubRoute(ref); err == nil && hr.Room == room && hr.Provider != p.domain {
		return "", hr.Provider, true
	}
	return "", "", false
}

// commitAcceptedBefore returns the answer to a commit the room accepted
// last (the same bytes as its latest CommitAccepted, one epoch back): the
// success its first submission got, with that acceptance's timestamp
// (draft-ralston-mimi-protocol-02, Section 5.3). A provider that lost the
// answer and sends the commit again thus learns that it was accepted,
// rather than wrongEpoch, which would not tell it whether its own commit
// or another one won. It returns nil for any other commit.
func (p *Provider) commitAcceptedBefore(room string, rec *projections.Room, pm *wire.PublicMessage) (*mimi.UpdateRoomResponse, error) {
	if rec.LastCommitSeq == 0 || pm.Content.Epoch+1 != rec.Epoch {
		return nil, nil
	}
	ev, err := p.m.Event(rec.LastCommitSeq)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	ca, ok := ev.Body.(*eventlog.CommitAccepted)
	if !ok || ev.Room != room {
		return nil, fmt.Errorf("provider: room %s: event %d is not its latest commit", room, rec.LastCommitSeq)
	}
	b, err := publicMessageBytes(pm)
	if err != nil || !bytes.Equal(b, ca.Commit) {
		return nil, nil
	}
	return &mimi.UpdateRoomResponse{Code: mimi.UpdateSuccess, AcceptedTimestamp: ev.Timestamp}, nil
}
