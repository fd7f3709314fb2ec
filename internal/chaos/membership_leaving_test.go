package chaos

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/eventlog"
	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// TestMarkLeaving: a participant-list AppSync proposal removing a user
// (a leave, draft-ralston-mimi-protocol-02, Section 3.5) names every
// member client of that user in the room's tree as Leaving; a Remove
// proposal and a commit name nobody.
func TestMarkLeaving(t *testing.T) {
	const room = "mimi://a.example/r/leave"
	suite := cipher.X25519_AES128GCM_SHA256_Ed25519
	s, err := cipher.Lookup(suite)
	if err != nil {
		t.Fatal(err)
	}
	signer := func(user, cl string) mls.Signer {
		priv, _, err := s.GenerateSignatureKey()
		if err != nil {
			t.Fatal(err)
		}
		cred, err := (&mimi.ClientIdentity{User: user, Client: cl}).Credential()
		if err != nil {
			t.Fatal(err)
		}
		return mls.Signer{Credential: cred, SignaturePriv: priv}
	}
	alice := signer("mimi://a.example/u/alice", "mimi://a.example/d/alice1")
	g, err := mls.CreateGroup(suite, []byte(room), alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	var adds []*wire.Proposal
	for _, id := range [][2]string{{"mimi://b.example/u/bob", "mimi://b.example/d/bob1"}, {"mimi://b.example/u/bob", "mimi://b.example/d/bob2"},
		{"mimi://c.example/u/cy", "mimi://c.example/d/cy1"}} {
		sg := signer(id[0], id[1])
		kp, err := mls.NewKeyPackage(suite, sg.Credential, sg.SignaturePriv, nil)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, &wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp.KeyPackage}})
	}
	tree0, err := codec.Marshal(new(g.RatchetTree()))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := g.Commit(&mls.CommitOptions{Proposals: adds})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	commit, err := codec.Marshal(pc.Message)
	if err != nil {
		t.Fatal(err)
	}
	tree1, err := codec.Marshal(new(g.RatchetTree()))
	if err != nil {
		t.Fatal(err)
	}
	leave := &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: &wire.PublicMessage{
		Content: wire.FramedContent{GroupID: []byte(room), Epoch: 1, Sender: wire.Sender{Type: wire.SenderMember, Index: 1}, ContentType: wire.ContentProposal,
			Proposal: &wire.Proposal{Type: wire.ProposalAppSync, Body: &wire.AppSync{AppSync: *(&mimi.ChangeSet{Remove: []string{"mimi://b.example/u/bob"}}).AppSync()}}},
		Auth: wire.FramedContentAuthData{Signature: []byte{1}}, MembershipTag: []byte{2},
	}}
	leaveBytes, err := codec.Marshal(leave)
	if err != nil {
		t.Fatal(err)
	}
	remove, err := g.ProposeRemove(3, nil)
	if err != nil {
		t.Fatal(err)
	}
	removeBytes, err := codec.Marshal(remove.Message)
	if err != nil {
		t.Fatal(err)
	}
	bodies := []eventlog.Body{
		&eventlog.RoomCreated{Hub: "a.example", Epoch: 0, RatchetTree: tree0, Members: []string{"mimi://a.example/d/alice1"}},
		&eventlog.CommitAccepted{Epoch: 1, Commit: commit, RatchetTree: tree1, Sender: "mimi://a.example/d/alice1"},
		&eventlog.ProposalAccepted{Epoch: 1, Message: leaveBytes, Sender: "b.example"},
		&eventlog.ProposalAccepted{Epoch: 1, Message: removeBytes, Sender: "mimi://a.example/d/alice1"},
	}
	var evs []*adminv1.Event
	for i, b := range bodies {
		ev := eventlog.New(room, 0, b)
		raw, err := eventlog.Encode(&ev)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, &adminv1.Event{Seq: uint64(i + 1), RoomSeq: uint64(i + 1), Room: room, Raw: raw})
	}
	entries, err := logEntries(evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("%d entries, want 4", len(entries))
	}
	for i, want := range [][]string{nil, nil, {"mimi://b.example/d/bob1", "mimi://b.example/d/bob2"}, nil} {
		if !slices.Equal(entries[i].Leaving, want) {
			t.Errorf("entry %d (%s): leaving %v, want %v", i, entries[i].Kind, entries[i].Leaving, want)
		}
	}
}

// TestLeaveVoid: a user whose leaving client was told that its leave did
// not happen (client.EventLeaveVoid, in the actor's room, after it called
// Leave) is present again; an event of another room, or one from before
// the leave, is not enough.
func TestLeaveVoid(t *testing.T) {
	const room = "mimi://a.example/r/chaos-1"
	void := func(r string) client.Event { return client.Event{Type: client.EventLeaveVoid, Room: r} }
	for _, tc := range []struct {
		name   string
		events []client.Event
		leftAt int
		want   bool
	}{
		{"told", []client.Event{{Type: client.EventMessage, Room: room}, void(room)}, 1, true},
		{"another room", []client.Event{void("mimi://a.example/r/chaos-2")}, 0, false},
		{"before the leave", []client.Event{void(room)}, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := &simClient{id: "mimi://b.example/d/g1", events: tc.events}
			if !tc.want {
				// leaveVoid syncs when not told yet: give it a client
				// without a provider, whose Sync fails.
				sc.c = syncFails(t)
			}
			u := &guestUser{user: "mimi://b.example/u/g", left: sc, leftAt: tc.leftAt}
			a := &actor{room: room}
			if got := a.leaveVoid(t.Context(), u); got != tc.want {
				t.Fatalf("leaveVoid = %v, want %v", got, tc.want)
			}
			if tc.want != (u.left == nil) {
				t.Fatalf("left %v after leaveVoid = %v", u.left, tc.want)
			}
		})
	}
}

// unreachable is a client.Provider whose inbox cannot be read.
type unreachable struct{ client.Provider }

func (unreachable) Inbox(context.Context, string, uint64, int) ([]client.InboxEntry, error) {
	return nil, errors.New("unreachable")
}

// syncFails returns a client whose Sync fails.
func syncFails(t *testing.T) *client.Client {
	c, err := client.New("mimi://b.example/u/g", "mimi://b.example/d/g1", cipher.X25519_AES128GCM_SHA256_Ed25519, unreachable{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
