package provider_test

import (
	"bytes"
	"sync"
	"testing"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/provider/providertest"
)

// TestUpdateNotAllowed: a participant without canAddUser adds a user
// (draft-ralston-mimi-protocol-02, Sections 4.3.2 and 5.3).
func TestUpdateNotAllowed(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("member")
	resp := w.addUser(w.bob, w.bobG, w.b, w.cathy, "member")
	if resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("got %d %q, want notAllowed", resp.Code, resp.ErrorDescription)
	}
	// Only the hub route of the key material fetch was recorded.
	rec, _ := w.a.M.Room(room)
	if rec.Epoch != 1 || len(mustRoom(t, rec).Participants) != 2 {
		t.Fatalf("epoch %d, room %+v", rec.Epoch, mustRoom(t, rec))
	}
}

// TestUpdateWrongEpoch: a commit for a past epoch gets wrongEpoch with the
// current epoch; of two racing commits exactly one wins; the winner sent
// again gets its first answer.
func TestUpdateWrongEpoch(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")

	// Racing: Alice and Bob commit at epoch 1 concurrently.
	pa, ra := providertest.Commit(t, w.aliceG, nil)
	pb, rb := providertest.Commit(t, w.bobG, nil)
	var wg sync.WaitGroup
	var respA, respB *mimi.UpdateRoomResponse
	var errA, errB error
	wg.Add(2)
	go func() { defer wg.Done(); respA, errA = w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, ra) }()
	go func() { defer wg.Done(); respB, errB = w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, rb) }()
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	codes := map[mimi.UpdateResponseCode]int{respA.Code: 1}
	codes[respB.Code]++
	if codes[mimi.UpdateSuccess] != 1 || codes[mimi.UpdateWrongEpoch] != 1 {
		t.Fatalf("codes %d and %d; want one success and one wrongEpoch", respA.Code, respB.Code)
	}
	loser := respA
	if respA.Code == mimi.UpdateSuccess {
		loser = respB
	}
	if loser.CurrentEpoch != 2 {
		t.Fatalf("currentEpoch %d, want 2", loser.CurrentEpoch)
	}
	// The losing commit again: wrongEpoch.
	stale, won, wonResp, wonFrom := rb, ra, respA, w.a
	if respB.Code == mimi.UpdateSuccess {
		stale, won, wonResp, wonFrom = ra, rb, respB, w.b
	}
	resp, err := w.a.P.Update(w.ctx, "a.example", room, stale)
	if err != nil || resp.Code != mimi.UpdateWrongEpoch || resp.CurrentEpoch != 2 {
		t.Fatalf("stale commit: %v %+v", err, resp)
	}
	if _, err := mimi.Encode(resp); err != nil {
		t.Fatal(err)
	}
	// The winning commit again (its answer lost): the first success, and
	// nothing changes.
	digest := w.a.Digest(t)
	client := w.alice.Client
	if wonFrom == w.b {
		client = w.bob.Client
	}
	again, err := wonFrom.P.LocalUpdate(w.ctx, client, room, won)
	if err != nil || again.Code != mimi.UpdateSuccess || again.AcceptedTimestamp != wonResp.AcceptedTimestamp {
		t.Fatalf("the accepted commit again: %v %+v, want success at %d", err, again, wonResp.AcceptedTimestamp)
	}
	if !bytes.Equal(digest, w.a.Digest(t)) {
		t.Fatal("the accepted commit sent again changed the hub's state")
	}
	pa.Discard()
	pb.Discard()
}

// TestUpdateInvalidProposal: invalid proposals are reported by
// ProposalRef (Section 5.3 invalidProposal).
func TestUpdateInvalidProposal(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")

	// A proposal whose signature does not verify.
	sp, err := w.bobG.ProposeAppSync((&mimi.ChangeSet{SetRole: []mimi.Participant{{User: w.alice.User, Role: "member"}}}).AppSync(), nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := *sp.Message.PublicMessage
	bad.Auth.Signature = bytes.Clone(bad.Auth.Signature)
	bad.Auth.Signature[3] ^= 0x40
	wantRef, err := publicgroup.ProposalRef(mustSuite(t), &bad)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, &mimi.UpdateRequest{ProposalOrCommit: bad})
	if err != nil || resp.Code != mimi.UpdateInvalidProposal || len(resp.InvalidProposals) != 1 || !bytes.Equal(resp.InvalidProposals[0], wantRef) {
		t.Fatalf("bad signature: %v %+v", err, resp)
	}

	// A commit including by reference a proposal the hub never got.
	pc, req := providertest.Commit(t, w.bobG, nil, sp.Message.PublicMessage)
	resp, err = w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, req)
	if err != nil || resp.Code != mimi.UpdateInvalidProposal || len(resp.InvalidProposals) != 1 || !bytes.Equal(resp.InvalidProposals[0], sp.Ref) {
		t.Fatalf("unknown reference: %v %+v", err, resp)
	}
	pc.Discard()
	if rec, _ := w.a.M.Room(room); rec.Epoch != 1 || rec.Proposals != 0 {
		t.Fatalf("state changed: epoch %d, %d proposals", rec.Epoch, rec.Proposals)
	}
}

// TestUpdateMissingCachedProposals: the hub requires the proposals it
// cached in the epoch (Section 3.5); then the commit succeeds.
func TestUpdateMissingCachedProposals(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")
	sp, err := w.bobG.ProposeAppSync((&mimi.ChangeSet{SetRole: []mimi.Participant{{User: w.alice.User, Role: "member"}}}).AppSync(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, providertest.Proposals(sp.Message)); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("proposal: %v %+v", err, resp)
	}
	// The role change took effect at once: Alice is a member now.
	rec, _ := w.a.M.Room(room)
	if rm := mustRoom(t, rec); !rm.Can(w.bob.User, mimi.CanAddUser) || rm.Can(w.alice.User, mimi.CanAddUser) {
		t.Fatalf("room state: %+v", rm.Participants)
	}
	pc, req := providertest.Commit(t, w.aliceG, nil) // Alice has not seen the proposal
	resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, req)
	if err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("commit without the cached proposal: %v %+v", err, resp)
	}
	pc.Discard()
	w.deliver()
	w.process(w.aliceG, w.inbox(w.a, w.alice))
	pc, req = providertest.Commit(t, w.aliceG, nil, sp.Message.PublicMessage)
	resp, err = w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, req)
	if err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("commit with the cached proposal: %v %+v", err, resp)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	st, err := w.aliceG.ApplicationStates()
	if err != nil {
		t.Fatal(err)
	}
	rm, err := mimi.RoomFromStates(st)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := rm.Participant(w.alice.User); r != "member" {
		t.Fatalf("committed role %q", r)
	}
}

// TestUpdateRemovedParticipant: after Bob's removal was accepted (but not
// yet committed), his clients may not commit, may only propose removals of
// their own clients, and may not send messages (Section 5.3).
func TestUpdateRemovedParticipant(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")
	w.bobG.SetConfig(mls.Config{AllowAppDataWithPendingProposals: true})
	as, err := w.bobG.ProposeAppSync((&mimi.ChangeSet{Remove: []string{w.bob.User}}).AppSync(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, providertest.Proposals(as.Message)); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("leave: %v %+v", err, resp)
	}
	pending := []*wire.PublicMessage{as.Message.PublicMessage}

	// A commit by Bob.
	pc, req := providertest.Commit(t, w.bobG, nil, pending...)
	if resp, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, req); err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("removed participant's commit: %v %+v", err, resp)
	}
	pc.Discard()
	// A proposal other than removing his own clients.
	ap, err := w.bobG.ProposeAppSync((&mimi.ChangeSet{SetRole: []mimi.Participant{{User: w.alice.User, Role: "reader"}}}).AppSync(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, providertest.Proposals(ap.Message)); err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("removed participant's AppSync: %v %+v", err, resp)
	}
	// A message.
	msg := providertest.Message(t, w.bobG, "hi")
	if resp, err := w.a.P.SubmitMessage(w.ctx, "b.example", room, msg); err != nil || resp.Code != mimi.SubmitNotAllowed {
		t.Fatalf("removed participant's message: %v %+v", err, resp)
	}
	// Removing his own client is allowed.
	sr, err := w.bobG.ProposeSelfRemove(nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, providertest.Proposals(sr.Message)); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("removed participant's SelfRemove: %v %+v", err, resp)
	}
}

// TestUpdateVouching: a provider may submit only its own clients'
// messages.
func TestUpdateVouching(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	pc, req := providertest.Commit(t, w.aliceG, nil)
	defer pc.Discard()
	resp, err := w.a.P.Update(w.ctx, "b.example", room, req)
	if err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("b.example submitting alice's commit: %v %+v", err, resp)
	}
	// A local client submitting another local client's commit.
	alice2 := providertest.NewClient(t, "a.example", "alice", "alice2")
	alice2.Register(t, w.a)
	resp, err = w.a.P.LocalUpdate(w.ctx, alice2.Client, room, req)
	if err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("alice2 submitting alice1's commit: %v %+v", err, resp)
	}
}

// TestUpdateCommitChecks: the GroupInfo and tree must be the new epoch's;
// a commit must keep the hub in external_senders.
func TestUpdateCommitChecks(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	pc, req := providertest.Commit(t, w.aliceG, nil)
	// The tree of the old epoch.
	bad := *req
	bad.RatchetTreeOption = &mimi.RatchetTreeOption{Representation: mimi.RatchetTreeFull, Tree: w.aliceG.RatchetTree()}
	if resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, &bad); err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("wrong tree: %v %+v", err, resp)
	}
	// The GroupInfo of the old epoch.
	old, err := w.aliceG.GroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	bad = *req
	bad.GroupInfo = old.GroupInfo
	if resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, &bad); err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("wrong GroupInfo: %v %+v", err, resp)
	}
	pc.Discard()

	// Dropping the hub from external_senders.
	es, _ := wire.NewExternalSendersExtension(wire.ExternalSenders{})
	st, _ := w.aliceG.ApplicationStates()
	ase, _ := wire.NewApplicationStatesExtension(st)
	gce := &wire.Proposal{Type: wire.ProposalGroupContextExtensions, Body: &wire.GroupContextExtensions{Extensions: []wire.Extension{es, ase}}}
	pc, req = providertest.Commit(t, w.aliceG, &mls.CommitOptions{Proposals: []*wire.Proposal{gce}})
	if resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, req); err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("dropping the hub: %v %+v", err, resp)
	}
	pc.Discard()

	// A plain commit passes.
	pc, req = providertest.Commit(t, w.aliceG, nil)
	if resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, req); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("plain commit: %v %+v", err, resp)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
}

// TestUpdatePolicy: changing the room policy needs canSetPolicy.
func TestUpdatePolicy(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("member")
	rec, _ := w.a.M.Room(room)
	pol := mustRoom(t, rec).Policy
	pol.Roles = append(pol.Roles, mimi.Role{Name: "zz-guest"})
	pol.Normalize()
	pb, err := codec.Marshal(&pol)
	if err != nil {
		t.Fatal(err)
	}
	as := &appsync.AppSync{ApplicationID: mimi.AppIDRoomPolicy, Type: appsync.Irreducible, NewState: pb}
	prop := &wire.Proposal{Type: wire.ProposalAppSync, Body: &wire.AppSync{AppSync: *as}}

	pc, req := providertest.Commit(t, w.bobG, &mls.CommitOptions{Proposals: []*wire.Proposal{prop}})
	if resp, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, req); err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("policy change by a member: %v %+v", err, resp)
	}
	pc.Discard()
	pc, req = providertest.Commit(t, w.aliceG, &mls.CommitOptions{Proposals: []*wire.Proposal{prop}})
	if resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, req); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("policy change by an admin: %v %+v", err, resp)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	rec, _ = w.a.M.Room(room)
	if mustRoom(t, rec).Policy.Role("zz-guest") == nil {
		t.Fatal("the new role is missing")
	}
}

// TestExternalJoin: Alice's new client joins by external commit (Section
// 3.6); a non-participant may not.
func TestExternalJoin(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")
	alice2 := providertest.NewClient(t, "a.example", "alice", "alice2")
	alice2.Register(t, w.a)
	gi, err := w.a.P.LocalGroupInfo(w.ctx, alice2.Client, room, providertest.GroupInfoRequest(t, alice2))
	if err != nil || gi.Status != mimi.GroupInfoSuccess {
		t.Fatalf("group info: %v %+v", err, gi)
	}
	pc, req := providertest.ExternalJoin(t, alice2, gi)
	resp, err := w.a.P.LocalUpdate(w.ctx, alice2.Client, room, req)
	if err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("external commit: %v %+v", err, resp)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	rec, _ := w.a.M.Room(room)
	if !contains(rec.Members, alice2.Client) {
		t.Fatalf("members %v", rec.Members)
	}
	w.deliver()
	w.process(w.bobG, w.inbox(w.b, w.bob))
	w.process(w.aliceG, w.inbox(w.a, w.alice))
	if w.bobG.Epoch() != pc.Group().Epoch() {
		t.Fatal("epochs differ")
	}

	// Dave (b.example) is no participant: the hub refuses the GroupInfo,
	// and an external commit built from a GroupInfo obtained otherwise.
	dave := providertest.NewClient(t, "b.example", "dave", "dave1")
	dave.Register(t, w.b)
	if r, err := w.a.P.GroupInfo(w.ctx, "b.example", room, providertest.GroupInfoRequest(t, dave)); err != nil || r.Status != mimi.GroupInfoNotAuthorized {
		t.Fatalf("dave's group info: %v %+v", err, r)
	}
	gi, err = w.a.P.LocalGroupInfo(w.ctx, w.alice.Client, room, providertest.GroupInfoRequest(t, w.alice))
	if err != nil {
		t.Fatal(err)
	}
	pcd, req := providertest.ExternalJoin(t, dave, gi)
	defer pcd.Discard()
	resp, err = w.b.P.LocalUpdate(w.ctx, dave.Client, room, req)
	if err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("dave's external commit: %v %+v", err, resp)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestUpdateConflictingProposals: a proposal that could not be committed
// together with the cached ones (two participant-list AppSyncs) is
// refused, since every commit must include every cached proposal.
func TestUpdateConflictingProposals(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")
	p1, err := w.bobG.ProposeAppSync((&mimi.ChangeSet{SetRole: []mimi.Participant{{User: w.bob.User, Role: "member"}}}).AppSync(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, providertest.Proposals(p1.Message)); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("first: %v %+v", err, resp)
	}
	p2, err := w.aliceG.ProposeAppSync((&mimi.ChangeSet{SetRole: []mimi.Participant{{User: w.alice.User, Role: "reader"}}}).AppSync(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, providertest.Proposals(p2.Message))
	if err != nil || resp.Code != mimi.UpdateInvalidProposal || len(resp.InvalidProposals) != 1 || !bytes.Equal(resp.InvalidProposals[0], p2.Ref) {
		t.Fatalf("second: %v %+v", err, resp)
	}
	if rec, _ := w.a.M.Room(room); rec.Proposals != 1 {
		t.Fatalf("%d proposals cached", rec.Proposals)
	}
}

// TestUpdateProposalResubmitted: a proposal the hub already cached in the
// epoch — sent again after a lost answer, or twice in one request — is
// accepted once (draft-ralston-mimi-protocol-02, Section 5.3): one event,
// one fanout, the first acceptance's timestamp; a request adding a new
// proposal beside it caches only the new one.
func TestUpdateProposalResubmitted(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")
	w.bobG.SetConfig(mls.Config{AllowAppDataWithPendingProposals: true})
	sp, err := w.bobG.ProposeAppSync((&mimi.ChangeSet{SetRole: []mimi.Participant{{User: w.alice.User, Role: "member"}}}).AppSync(), nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, providertest.Proposals(sp.Message))
	if err != nil || first.Code != mimi.UpdateSuccess {
		t.Fatalf("proposal: %v %+v", err, first)
	}
	digest := w.a.Digest(t)
	for _, req := range []*mimi.UpdateRequest{providertest.Proposals(sp.Message), providertest.Proposals(sp.Message, sp.Message)} {
		again, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, req)
		if err != nil || again.Code != mimi.UpdateSuccess || again.AcceptedTimestamp != first.AcceptedTimestamp {
			t.Fatalf("again: %v %+v, want success at %d", err, again, first.AcceptedTimestamp)
		}
	}
	if !bytes.Equal(digest, w.a.Digest(t)) {
		t.Fatal("a resubmitted proposal changed the hub's state")
	}
	sp2, err := w.bobG.ProposeUpdate(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, providertest.Proposals(sp.Message, sp2.Message)); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("old and new: %v %+v", err, resp)
	}
	if ps, _ := w.a.M.RoomProposals(room); len(ps) != 2 {
		t.Fatalf("%d proposals cached, want 2", len(ps))
	}
	// Alice receives each once and commits both; Bob gets his own back
	// once each too (Section 5.5).
	w.deliver()
	es := w.inbox(w.a, w.alice)
	if len(es) != 2 {
		t.Fatalf("alice received %d messages, want the 2 proposals once each", len(es))
	}
	if got := w.inbox(w.b, w.bob); len(got) != 2 {
		t.Fatalf("bob received %d messages, want his 2 proposals once each", len(got))
	}
	w.process(w.aliceG, es)
	pc, req := providertest.Commit(t, w.aliceG, nil, sp.Message.PublicMessage, sp2.Message.PublicMessage)
	if resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, req); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("commit: %v %+v", err, resp)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
}
