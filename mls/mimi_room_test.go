package mls_test

import (
	"bytes"
	"testing"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/wire"
)

// mimiRoom is a MIMI room's group with a hub in external_senders and the
// room state in application_states, followed by a hub's public view.
type mimiRoom struct {
	t       *testing.T
	suite   *cipher.Suite
	hubPriv []byte
	view    *publicgroup.View
}

func (r *mimiRoom) signer(name string) mls.Signer {
	s := newSigner(r.t, r.suite.ID(), name)
	id := mimi.ClientIdentity{User: "mimi://a.example/u/" + name, Client: "mimi://a.example/d/" + name}
	cred, err := id.Credential()
	if err != nil {
		r.t.Fatal(err)
	}
	s.Credential = cred
	return s
}

// agree checks that every group and the view are at the same epoch, tree
// hash and application_states.
func (r *mimiRoom) agree(groups ...*mls.Group) {
	r.t.Helper()
	want, err := r.view.ApplicationStates().Bytes()
	if err != nil {
		r.t.Fatal(err)
	}
	vctx := r.view.GroupContext()
	for i, g := range groups {
		ctx := g.GroupContext()
		if ctx.Epoch != vctx.Epoch || !bytes.Equal(ctx.TreeHash, vctx.TreeHash) {
			r.t.Fatalf("group %d at epoch %d tree %x, view at %d tree %x", i, ctx.Epoch, ctx.TreeHash, vctx.Epoch, vctx.TreeHash)
		}
		st, _, err := wire.ApplicationStatesExtension(ctx.Extensions)
		if err != nil {
			r.t.Fatal(err)
		}
		got, _ := st.Bytes()
		if !bytes.Equal(got, want) {
			r.t.Fatalf("group %d application_states differ from the view's", i)
		}
	}
}

// commitToView runs a commit through the hub's view, as MIMI's hub does
// before accepting it.
func (r *mimiRoom) commitToView(pc *mls.PendingCommit) {
	r.t.Helper()
	res, err := r.view.HandleCommit(pc.Message.PublicMessage)
	if err != nil {
		r.t.Fatalf("hub view rejects the commit: %v", err)
	}
	if err := r.view.Accept(res); err != nil {
		r.t.Fatal(err)
	}
}

// TestMIMIRoomAppSyncAndExternalSenders: a member commits an AppSync adding
// a participant together with the Adds of that user's clients, and the
// other members, the new members and the hub's public view reach the same
// application_states, tree hash and epoch; then the hub, as an external
// sender, proposes a Remove and an AppSync that members and the view accept,
// while the same proposals signed by a key not in external_senders are
// rejected by both.
func TestMIMIRoomAppSyncAndExternalSenders(t *testing.T) {
	suite, _ := cipher.Lookup(cipher.X25519_AES128GCM_SHA256_Ed25519)
	hubPriv, hubPub, _ := suite.GenerateSignatureKey()
	r := &mimiRoom{t: t, suite: suite, hubPriv: hubPriv}
	room := &mimi.Room{
		Policy:       mimi.Policy{RoomID: "mimi://a.example/r/clubhouse", Roles: []mimi.Role{{Name: "admin", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanRemoveUser}}, {Name: "member"}}},
		Participants: []mimi.Participant{{User: "mimi://a.example/u/alice", Role: "admin"}, {User: "mimi://a.example/u/bob", Role: "member"}},
	}
	states, err := room.ApplicationStates()
	if err != nil {
		t.Fatal(err)
	}
	asExt, _ := wire.NewApplicationStatesExtension(states)
	esExt, err := wire.NewExternalSendersExtension(wire.ExternalSenders{{SignatureKey: hubPub, Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte("a.example")}}})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := mls.CreateGroup(suite.ID(), []byte("mimi://a.example/g/clubhouse"), r.signer("alice"), &mls.CreateOptions{Extensions: []wire.Extension{esExt, asExt}})
	if err != nil {
		t.Fatal(err)
	}
	// Alice adds Bob (already a participant).
	bobKP := newKP(t, suite.ID(), r.signer("bob"))
	pc, err := alice.Commit(&mls.CommitOptions{Proposals: []*wire.Proposal{prop(&wire.Add{KeyPackage: *bobKP.KeyPackage})}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	bob, err := mls.JoinFromWelcome(roundTrip(t, pc.Welcome), bobKP, &mls.JoinOptions{RatchetTree: alice.RatchetTree()})
	if err != nil {
		t.Fatal(err)
	}
	// The hub's view starts from the GroupInfo and tree of epoch 1.
	if r.view, err = publicgroup.New(suite, pc.GroupInfo.GroupInfo, alice.RatchetTree()); err != nil {
		t.Fatal(err)
	}
	r.agree(alice, bob)

	// One commit: AppSync adding dave + Adds of dave's two clients.
	change := &mimi.ChangeSet{Add: []mimi.Participant{{User: "mimi://a.example/u/dave", Role: "member"}}}
	d1, d2 := r.signer("dave"), r.signer("dave")
	d1KP, d2KP := newKP(t, suite.ID(), d1), newKP(t, suite.ID(), d2)
	pc, err = alice.Commit(&mls.CommitOptions{NoPath: true, Proposals: []*wire.Proposal{
		prop(&wire.AppSync{AppSync: *change.AppSync()}),
		prop(&wire.Add{KeyPackage: *d1KP.KeyPackage}),
		prop(&wire.Add{KeyPackage: *d2KP.KeyPackage}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	r.commitToView(pc)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Process(roundTrip(t, pc.Message)); err != nil {
		t.Fatal(err)
	}
	dave1, err := mls.JoinFromWelcome(roundTrip(t, pc.Welcome), d1KP, &mls.JoinOptions{RatchetTree: r.view.RatchetTree()})
	if err != nil {
		t.Fatal(err)
	}
	dave2, err := mls.JoinFromWelcome(roundTrip(t, pc.Welcome), d2KP, &mls.JoinOptions{RatchetTree: r.view.RatchetTree()})
	if err != nil {
		t.Fatal(err)
	}
	r.agree(alice, bob, dave1, dave2)
	got, err := mimi.RoomFromStates(r.view.ApplicationStates())
	if err != nil {
		t.Fatal(err)
	}
	if role, ok := got.Participant("mimi://a.example/u/dave"); !ok || role != "member" {
		t.Fatalf("dave not a participant in the view: %v", got.Participants)
	}

	// The hub removes Bob: a Remove and an AppSync as external proposals.
	members := []*mls.Group{alice, bob, dave1, dave2}
	bobLeaf := bob.LeafIndex()
	remove := prop(&wire.Remove{Removed: uint32(bobLeaf)})
	sync := prop(&wire.AppSync{AppSync: *(&mimi.ChangeSet{Remove: []string{"mimi://a.example/u/bob"}}).AppSync()})
	epoch := alice.Epoch()
	// Forged: the same proposals signed by a key not in external_senders.
	otherPriv, _, _ := suite.GenerateSignatureKey()
	for _, p := range []*wire.Proposal{remove, sync} {
		forged, err := mls.NewExternalProposal(suite.ID(), alice.GroupID(), epoch, 0, otherPriv, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range members {
			if _, err := g.Process(roundTrip(t, forged)); err == nil {
				t.Fatalf("member %d accepted a proposal signed by an unlisted key", i)
			}
		}
		if _, err := r.view.HandleProposal(roundTrip(t, forged).PublicMessage); err == nil {
			t.Fatal("the view accepted a proposal signed by an unlisted key")
		}
	}
	for _, p := range []*wire.Proposal{remove, sync} {
		msg, err := mls.NewExternalProposal(suite.ID(), alice.GroupID(), epoch, 0, hubPriv, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.view.HandleProposal(roundTrip(t, msg).PublicMessage); err != nil {
			t.Fatalf("view: %v", err)
		}
		for i, g := range members {
			if _, err := g.Process(roundTrip(t, msg)); err != nil {
				t.Fatalf("member %d rejects the hub's proposal: %v", i, err)
			}
		}
	}
	pc, err = dave1.Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	r.commitToView(pc)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	for _, g := range []*mls.Group{alice, dave2, bob} {
		if _, err := g.Process(roundTrip(t, pc.Message)); err != nil {
			t.Fatal(err)
		}
	}
	if bob.Active() {
		t.Fatal("bob still active after the hub's Remove was committed")
	}
	r.agree(alice, dave1, dave2)
	after, _ := mimi.RoomFromStates(r.view.ApplicationStates())
	if _, ok := after.Participant("mimi://a.example/u/bob"); ok {
		t.Fatal("bob still a participant")
	}
}

// prop wraps a proposal body with its type.
func prop(b wire.ProposalBody) *wire.Proposal { return &wire.Proposal{Type: b.ProposalType(), Body: b} }
