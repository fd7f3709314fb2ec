package client_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

// threeUsers sets up the clubhouse with Alice (admin, ClientA1), Bob
// (member, ClientB1 and ClientB2) and Cathy (member, ClientC1).
func threeUsers(t testing.TB) *world {
	t.Helper()
	return threeUsersIn(t, newWorld(t))
}

func threeUsersIn(t testing.TB, w *world) *world {
	t.Helper()
	a1 := w.add("ClientA1", alice, 1)
	w.add("ClientB1", bob, 3)
	w.add("ClientB2", bob, 3)
	w.add("ClientC1", cathy, 3)
	if err := a1.CreateRoom(w.ctx, clubhouse, flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{bob, cathy} {
		if err := a1.AddUser(w.ctx, clubhouse, u, "member"); err != nil {
			t.Fatal(err)
		}
	}
	w.sync("ClientA1", "ClientB1", "ClientB2", "ClientC1")
	w.agree(clubhouse, "ClientA1", "ClientB1", "ClientB2", "ClientC1")
	return w
}

// TestRemoveUserAndRoles: a user removed by another sees its removal
// (draft-ralston-mimi-protocol-02, Section 5.5), role changes reach every
// member, and the client refuses what the room policy forbids before
// asking the hub.
func TestRemoveUserAndRoles(t *testing.T) {
	w := threeUsers(t)
	a1, c1 := w.clients["ClientA1"], w.clients["ClientC1"]

	// Cathy (member) may not remove Bob: refused locally.
	updates := w.net.calls["Update"]
	err := c1.RemoveUser(w.ctx, clubhouse, bob)
	if !errors.Is(err, client.ErrNotAllowed) || w.net.calls["Update"] != updates {
		t.Fatalf("cathy removing bob: %v (%d updates)", err, w.net.calls["Update"]-updates)
	}
	if err := c1.SetRole(w.ctx, clubhouse, bob, "admin"); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("cathy promoting bob: %v", err)
	}
	// Argument errors.
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"add participant", a1.AddUser(w.ctx, clubhouse, bob, "member"), client.ErrAlreadyParticipant},
		{"remove non-participant", a1.RemoveUser(w.ctx, clubhouse, "mimi://d.example/u/dave"), client.ErrNotParticipant},
		{"remove self", a1.RemoveUser(w.ctx, clubhouse, alice), client.ErrInvalidArgument},
		{"unknown role", a1.SetRole(w.ctx, clubhouse, bob, "owner"), client.ErrInvalidArgument},
		{"bad user", a1.AddUser(w.ctx, clubhouse, "mimi://d.example/d/dave", "member"), client.ErrInvalidArgument},
		{"unknown room", a1.AddUser(w.ctx, "mimi://a.example/r/other", "mimi://d.example/u/dave", "member"), client.ErrUnknownRoom},
		{"unknown user", a1.AddUser(w.ctx, clubhouse, "mimi://d.example/u/dave", "member"), client.ErrNoKeyMaterial},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}

	// Alice makes Cathy admin, then Cathy demotes Bob to reader.
	if err := a1.SetRole(w.ctx, clubhouse, cathy, "admin"); err != nil {
		t.Fatal(err)
	}
	evs := w.sync("ClientB1", "ClientB2", "ClientC1")
	if ev := find(evs["ClientC1"], client.EventParticipants); ev == nil || len(ev.Changes.SetRole) != 1 || ev.Changes.SetRole[0] != (mimi.Participant{User: cathy, Role: "admin"}) {
		t.Fatalf("cathy: %+v", evs["ClientC1"])
	}
	if err := c1.SetRole(w.ctx, clubhouse, bob, "reader"); err != nil {
		t.Fatal(err)
	}
	w.sync("ClientA1", "ClientB1", "ClientB2")
	w.agree(clubhouse, "ClientA1", "ClientB1", "ClientB2", "ClientC1")
	// A reader may not send.
	if _, err := w.clients["ClientB1"].Send(w.ctx, clubhouse, []byte("hi")); !errors.Is(err, client.ErrNotAllowed) {
		t.Fatalf("reader sending: %v", err)
	}

	// Alice removes Bob: both of Bob's clients process the commit that
	// removes them and report it.
	if err := a1.RemoveUser(w.ctx, clubhouse, bob); err != nil {
		t.Fatal(err)
	}
	evs = w.sync("ClientB1", "ClientB2", "ClientC1")
	for _, n := range []string{"ClientB1", "ClientB2"} {
		ev := find(evs[n], client.EventRemoved)
		if ev == nil || ev.Sender == nil || ev.Sender.Client != clientURI(alice, "ClientA1") {
			t.Fatalf("%s: %+v", n, evs[n])
		}
		if pe := find(evs[n], client.EventParticipants); pe == nil || !slices.Equal(pe.Changes.Remove, []string{bob}) {
			t.Fatalf("%s: %+v", n, evs[n])
		}
		if len(w.clients[n].Rooms()) != 0 {
			t.Fatalf("%s still lists the room", n)
		}
	}
	ri := w.agree(clubhouse, "ClientA1", "ClientC1")
	if len(ri.Members) != 2 || len(ri.Participants) != 2 {
		t.Fatalf("%+v", ri)
	}
}

// TestCreateRoomAddsClients: creating a room adds the creator's other
// clients and the initial participants' clients
// (draft-ralston-mimi-protocol-02, Section 3.1).
func TestCreateRoomAddsClients(t *testing.T) {
	w := newWorld(t)
	a1 := w.add("ClientA1", alice, 1)
	w.add("ClientA2", alice, 1)
	w.add("ClientB1", bob, 1)
	w.add("ClientB2", bob, 0) // nothing to claim: left out
	err := a1.CreateRoom(w.ctx, clubhouse, flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}, {User: bob, Role: "member"}})
	if err != nil {
		t.Fatal(err)
	}
	evs := w.sync("ClientA2", "ClientB1", "ClientB2")
	if find(evs["ClientA2"], client.EventJoined) == nil || find(evs["ClientB1"], client.EventJoined) == nil || len(evs["ClientB2"]) != 0 {
		t.Fatalf("%+v", evs)
	}
	ri := w.agree(clubhouse, "ClientA1", "ClientA2", "ClientB1")
	if len(ri.Members) != 3 || len(ri.Participants) != 2 {
		t.Fatalf("%+v", ri)
	}
	// B2 publishes KeyPackages later and is added by its own user.
	if _, err := w.clients["ClientB2"].PublishKeyPackages(w.ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := w.clients["ClientB1"].AddClients(w.ctx, clubhouse, bob); err != nil {
		t.Fatal(err)
	}
	w.sync("ClientA1", "ClientA2", "ClientB2")
	w.agree(clubhouse, "ClientA1", "ClientA2", "ClientB1", "ClientB2")
	if err := w.clients["ClientB1"].AddClients(w.ctx, clubhouse, bob); !errors.Is(err, client.ErrNoKeyMaterial) {
		t.Fatalf("nothing left to add: %v", err)
	}

	for _, tc := range []struct {
		name  string
		room  string
		pol   mimi.Policy
		parts []mimi.Participant
		want  error
	}{
		{"exists", clubhouse, flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}}, client.ErrRoomExists},
		{"remote room", "mimi://b.example/r/x", flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}}, client.ErrInvalidArgument},
		{"creator missing", "mimi://a.example/r/x", flowPolicy(), []mimi.Participant{{User: bob, Role: "admin"}}, client.ErrInvalidArgument},
		{"unknown role", "mimi://a.example/r/x", flowPolicy(), []mimi.Participant{{User: alice, Role: "owner"}}, client.ErrInvalidArgument},
		{"other room's policy", "mimi://a.example/r/x", mimi.Policy{RoomID: clubhouse}, []mimi.Participant{{User: alice, Role: "admin"}}, client.ErrInvalidArgument},
	} {
		if err := a1.CreateRoom(w.ctx, tc.room, tc.pol, tc.parts); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestUpdateRefusals: the hub's wrongEpoch, notAllowed and
// invalidProposal answers (draft-ralston-mimi-protocol-02, Section 5.3)
// leave the group in its epoch; wrongEpoch is retried after a Sync, and
// given up when the epoch the hub named is not reached within
// Options.EpochWait.
func TestUpdateRefusals(t *testing.T) {
	w := newWorld(t)
	w.opts = &client.Options{EpochWait: 100 * time.Millisecond}
	threeUsersIn(t, w)
	a1, b1 := w.clients["ClientA1"], w.clients["ClientB1"]
	all := []string{"ClientA1", "ClientB1", "ClientB2", "ClientC1"}

	// A real race: while the hub handles Bob's commit, Alice's commit
	// gets there first.
	raced := false
	w.net.updateHook = func(cl string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
		if cl != b1.ID() || raced || !req.IsCommit() {
			return nil, nil
		}
		raced = true
		w.net.mu.Unlock()
		defer w.net.mu.Lock()
		if err := a1.SetRole(w.ctx, clubhouse, cathy, "admin"); err != nil {
			t.Errorf("alice's commit: %v", err)
		}
		return nil, nil
	}
	updates := w.net.calls["Update"]
	if err := b1.AddUser(w.ctx, clubhouse, "mimi://b.example/u/bob2", "member"); !errors.Is(err, client.ErrNoKeyMaterial) {
		t.Fatalf("no such user: %v", err)
	}
	w.add("ClientD1", "mimi://d.example/u/dave", 1)
	if err := b1.AddUser(w.ctx, clubhouse, "mimi://d.example/u/dave", "member"); err != nil {
		t.Fatal(err)
	}
	if !raced || w.net.calls["Update"]-updates != 3 {
		t.Fatalf("raced %v, %d updates", raced, w.net.calls["Update"]-updates)
	}
	w.net.updateHook = nil
	all = append(all, "ClientD1")
	evs := w.sync(all...)
	if find(evs["ClientD1"], client.EventJoined) == nil {
		t.Fatalf("dave: %+v", evs["ClientD1"])
	}
	ri := w.agree(clubhouse, all...)
	if r, _ := ri.Role(cathy); r != "admin" {
		t.Fatalf("%+v", ri)
	}

	// Refusals: the error matches, the epoch does not move, and the
	// client keeps working.
	for _, tc := range []struct {
		resp *mimi.UpdateRoomResponse
		want error
	}{
		{&mimi.UpdateRoomResponse{Code: mimi.UpdateNotAllowed, ErrorDescription: "no"}, client.ErrNotAllowed},
		{&mimi.UpdateRoomResponse{Code: mimi.UpdateInvalidProposal, InvalidProposals: [][]byte{{1}}}, client.ErrInvalidProposal},
		{&mimi.UpdateRoomResponse{Code: mimi.UpdateWrongEpoch, CurrentEpoch: 99}, client.ErrWrongEpoch},
	} {
		w.net.updateHook = func(string, *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) { return tc.resp, nil }
		epoch, _ := a1.Epoch(clubhouse)
		err := a1.SetRole(w.ctx, clubhouse, bob, "admin")
		var ue *client.UpdateError
		if !errors.Is(err, tc.want) || !errors.As(err, &ue) || ue.Code != tc.resp.Code {
			t.Fatalf("code %d: %v", tc.resp.Code, err)
		}
		if e, _ := a1.Epoch(clubhouse); e != epoch {
			t.Fatalf("code %d moved the epoch", tc.resp.Code)
		}
		if err := b1.Leave(w.ctx, clubhouse); !errors.Is(err, tc.want) {
			t.Fatalf("leave, code %d: %v", tc.resp.Code, err)
		}
		if ri, _ := b1.Room(clubhouse); ri.Leaving {
			t.Fatal("a refused leave left the room leaving")
		}
	}
	w.net.updateHook = nil
	if err := a1.SetRole(w.ctx, clubhouse, bob, "admin"); err != nil {
		t.Fatal(err)
	}
	w.sync(all...)
	w.agree(clubhouse, all...)
	// B1's refused leave left no proposals behind: B1 can commit.
	if err := b1.Commit(w.ctx, clubhouse); err != nil {
		t.Fatal(err)
	}
	w.sync(all...)
	w.agree(clubhouse, all...)
}

// TestOutcomeUnknown: when the provider does not answer an update that the
// hub accepted, the commit stays pending and is applied when its echo
// arrives (draft-ralston-mimi-protocol-02, Section 5.5).
func TestOutcomeUnknown(t *testing.T) {
	w := threeUsers(t)
	a1 := w.clients["ClientA1"]
	w.net.echo = true
	w.net.afterHook = func(cl string, resp *mimi.UpdateRoomResponse) (*mimi.UpdateRoomResponse, error) {
		return nil, errors.New("connection reset")
	}
	if err := a1.SetRole(w.ctx, clubhouse, cathy, "admin"); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("%v", err)
	}
	w.net.afterHook = nil
	all := []string{"ClientA1", "ClientB1", "ClientB2", "ClientC1"}
	w.sync(all...)
	ri := w.agree(clubhouse, all...)
	if r, _ := ri.Role(cathy); r != "admin" {
		t.Fatalf("%+v", ri)
	}
	// The same for a message.
	w.net.echo = false
	if _, err := a1.Send(w.ctx, clubhouse, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	evs := w.sync(all...)
	if ev := find(evs["ClientC1"], client.EventMessage); ev == nil || string(ev.Data) != "hi" {
		t.Fatalf("%+v", evs["ClientC1"])
	}
}

// TestSendCommitsPending: a member with cached proposals commits them
// before sending (RFC 9420, Section 12.4), which completes a leave.
func TestSendCommitsPending(t *testing.T) {
	w := threeUsers(t)
	if err := w.clients["ClientB1"].Leave(w.ctx, clubhouse); err != nil {
		t.Fatal(err)
	}
	// Cathy receives Bob's proposals; her Send commits them first.
	w.sync("ClientC1")
	if _, err := w.clients["ClientC1"].Send(w.ctx, clubhouse, []byte("bye bob")); err != nil {
		t.Fatal(err)
	}
	evs := w.sync("ClientA1", "ClientB1", "ClientB2")
	for _, n := range []string{"ClientB1", "ClientB2"} {
		if find(evs[n], client.EventRemoved) == nil {
			t.Fatalf("%s: %+v", n, evs[n])
		}
	}
	if ev := find(evs["ClientA1"], client.EventMessage); ev == nil || string(ev.Data) != "bye bob" {
		t.Fatalf("alice: %+v", evs["ClientA1"])
	}
	w.agree(clubhouse, "ClientA1", "ClientC1")
}

// TestJoinNewDeviceChecks: the GroupInfoResponse must be signed by a hub
// that the group lists as external sender, for the room asked for, and the
// user must be a participant (draft-ralston-mimi-protocol-02, Sections 5.6
// and 6.4). A client that lost its state rejoins in place (resync).
func TestJoinNewDeviceChecks(t *testing.T) {
	w := threeUsers(t)
	c2 := w.add("ClientC2", cathy, 0)
	s, _ := cipher.Lookup(suite)
	otherPriv, otherPub, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		hook func(*mimi.GroupInfoResponse)
		want error
	}{
		{"bad signature", func(r *mimi.GroupInfoResponse) { r.Signature[0] ^= 1 }, client.ErrInvalidResponse},
		{"unlisted hub", func(r *mimi.GroupInfoResponse) {
			r.HubSender.SignatureKey = otherPub
			if err := r.Sign(otherPriv); err != nil {
				t.Fatal(err)
			}
		}, client.ErrInvalidResponse},
		{"other room", func(r *mimi.GroupInfoResponse) {
			r.RoomID = []byte("mimi://a.example/r/other")
			if err := r.Sign(w.net.hubs["a.example"].priv); err != nil {
				t.Fatal(err)
			}
		}, client.ErrInvalidResponse},
		{"not authorized", func(r *mimi.GroupInfoResponse) {
			*r = mimi.GroupInfoResponse{Version: mimi.ProtocolMLS10, Status: mimi.GroupInfoNotAuthorized}
		}, client.ErrNoGroupInfo},
	} {
		w.net.groupInfoHook = tc.hook
		if err := c2.JoinNewDevice(w.ctx, clubhouse); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if len(c2.Rooms()) != 0 {
			t.Fatalf("%s: joined", tc.name)
		}
	}
	w.net.groupInfoHook = nil
	if err := c2.JoinNewDevice(w.ctx, "mimi://a.example/r/nowhere"); !errors.Is(err, client.ErrNoGroupInfo) {
		t.Errorf("no such room: %v", err)
	}
	eve := w.add("ClientE1", "mimi://e.example/u/eve", 0)
	if err := eve.JoinNewDevice(w.ctx, clubhouse); !errors.Is(err, client.ErrNotParticipant) {
		t.Errorf("non-participant: %v", err)
	}
	if err := c2.JoinNewDevice(w.ctx, clubhouse); err != nil {
		t.Fatal(err)
	}
	if err := c2.JoinNewDevice(w.ctx, clubhouse); !errors.Is(err, client.ErrRoomExists) {
		t.Errorf("again: %v", err)
	}
	all := []string{"ClientA1", "ClientB1", "ClientB2", "ClientC1", "ClientC2"}
	w.sync(all...)
	w.agree(clubhouse, all...)

	// ClientC1 loses its state: a fresh client with the same URI rejoins,
	// replacing its old leaf.
	c1 := w.add("ClientC1", cathy, 0)
	if err := c1.JoinNewDevice(w.ctx, clubhouse); err != nil {
		t.Fatal(err)
	}
	w.sync(all...)
	ri := w.agree(clubhouse, all...)
	if len(ri.Members) != 5 {
		t.Fatalf("%+v", ri.Members)
	}
}

// TestKeyMaterialChecks: KeyPackages that do not belong to the client they
// are listed for, or refusals, yield ErrNoKeyMaterial
// (draft-ralston-mimi-protocol-02, Section 5.2).
func TestKeyMaterialChecks(t *testing.T) {
	w := newWorld(t)
	a1 := w.add("ClientA1", alice, 1)
	w.add("ClientB1", bob, 3)
	w.add("ClientB2", bob, 3)
	if err := a1.CreateRoom(w.ctx, clubhouse, flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		hook func(*mimi.KeyMaterialResponse)
		want mimi.KeyMaterialUserCode
	}{
		{"swapped clients", func(r *mimi.KeyMaterialResponse) {
			r.Clients[0].ClientURI, r.Clients[1].ClientURI = r.Clients[1].ClientURI, r.Clients[0].ClientURI
		}, mimi.UserSuccess},
		{"no consent", func(r *mimi.KeyMaterialResponse) {
			*r = mimi.KeyMaterialResponse{Protocol: mimi.ProtocolMLS10, UserStatus: mimi.UserNoConsent, UserURI: r.UserURI}
		}, mimi.UserNoConsent},
	} {
		w.net.keyMaterialHook = tc.hook
		err := a1.AddUser(w.ctx, clubhouse, bob, "member")
		var ke *client.KeyMaterialError
		if !errors.Is(err, client.ErrNoKeyMaterial) || !errors.As(err, &ke) || ke.UserStatus != tc.want {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	w.net.keyMaterialHook = nil
	if err := a1.AddUser(w.ctx, clubhouse, bob, "member"); err != nil {
		t.Fatal(err)
	}
}

// TestInboxErrors: undeliverable inbox entries become EventError and are
// acknowledged; later entries are processed.
func TestInboxErrors(t *testing.T) {
	w := threeUsers(t)
	c1 := w.clients["ClientC1"]
	n := w.net
	n.mu.Lock()
	// A Welcome for none of Cathy's KeyPackages.
	n.deliver(c1.ID(), clubhouse, mimi.FanoutMessage{Message: wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatWelcome,
		Welcome: &wire.Welcome{CipherSuite: suite, Secrets: []wire.EncryptedGroupSecrets{{NewMember: []byte("nope")}}}},
		RatchetTreeOption: &mimi.RatchetTreeOption{Representation: mimi.RatchetTreeFull, Tree: n.rooms[clubhouse].tree}})
	// A message for a room Cathy is not in, and garbage for the room.
	n.deliver(c1.ID(), "mimi://a.example/r/other", mimi.FanoutMessage{Message: wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPrivateMessage,
		PrivateMessage: &wire.PrivateMessage{GroupID: []byte("x"), ContentType: wire.ContentApplication}}})
	n.deliver(c1.ID(), clubhouse, mimi.FanoutMessage{Message: wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPrivateMessage,
		PrivateMessage: &wire.PrivateMessage{GroupID: []byte("mimi://a.example/g/clubhouse"), Epoch: n.rooms[clubhouse].view.Epoch(),
			ContentType: wire.ContentApplication, EncryptedSenderData: make([]byte, 40), Ciphertext: make([]byte, 40)}}})
	n.mu.Unlock()
	if _, err := w.clients["ClientA1"].Send(w.ctx, clubhouse, []byte("still fine")); err != nil {
		t.Fatal(err)
	}
	evs, err := c1.Sync(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	var msg *client.Event
	for i, ev := range evs {
		switch ev.Type {
		case client.EventError:
			errs = append(errs, ev.Err)
		case client.EventMessage:
			msg = &evs[i]
		}
	}
	if len(errs) != 3 || !errors.Is(errs[0], client.ErrUnknownKeyPackage) || !errors.Is(errs[1], client.ErrUnknownRoom) {
		t.Fatalf("errors: %v", errs)
	}
	if msg == nil || string(msg.Data) != "still fine" {
		t.Fatalf("%+v", evs)
	}
	if w.net.pending(c1.ID()) != 0 {
		t.Fatal("entries left unacknowledged")
	}
}

// TestCheckpoint: Sync hands the state to Options.Checkpoint before
// acknowledging; a failing checkpoint leaves the entries in the inbox, and
// a client loaded from the last checkpoint goes on from there.
func TestCheckpoint(t *testing.T) {
	w := threeUsers(t)
	var saved []byte
	fail := false
	opts := &client.Options{Checkpoint: func(_ context.Context, st []byte) error {
		if fail {
			return errors.New("disk full")
		}
		saved = st
		return nil
	}}
	st, err := w.clients["ClientC1"].Save()
	if err != nil {
		t.Fatal(err)
	}
	c1, err := client.Load(st, w.net.provider("c.example"), opts)
	if err != nil {
		t.Fatal(err)
	}
	w.clients["ClientC1"] = c1
	if _, err := w.clients["ClientA1"].Send(w.ctx, clubhouse, []byte("one")); err != nil {
		t.Fatal(err)
	}
	w.sync("ClientC1")
	if saved == nil || w.net.pending(c1.ID()) != 0 {
		t.Fatal("no checkpoint, or not acknowledged")
	}
	if _, err := w.clients["ClientA1"].Send(w.ctx, clubhouse, []byte("two")); err != nil {
		t.Fatal(err)
	}
	fail = true
	if _, err := c1.Sync(w.ctx); err == nil || w.net.pending(c1.ID()) != 1 {
		t.Fatalf("failed checkpoint: %v, %d pending", err, w.net.pending(c1.ID()))
	}
	// Restart from the last good checkpoint: "two" is delivered again.
	fail = false
	c1, err = client.Load(saved, w.net.provider("c.example"), opts)
	if err != nil {
		t.Fatal(err)
	}
	w.clients["ClientC1"] = c1
	evs := w.sync("ClientC1")
	if ev := find(evs["ClientC1"], client.EventMessage); ev == nil || string(ev.Data) != "two" {
		t.Fatalf("%+v", evs)
	}
	w.sync("ClientB1", "ClientB2")
	w.agree(clubhouse, "ClientA1", "ClientB1", "ClientB2", "ClientC1")
}

// TestLoadCorrupt: Load rejects damaged states with ErrStateCorrupt.
func TestLoadCorrupt(t *testing.T) {
	w := threeUsers(t)
	st, err := w.clients["ClientB1"].Save()
	if err != nil {
		t.Fatal(err)
	}
	p := w.net.provider("b.example")
	if _, err := client.Load(st, p, nil); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":     nil,
		"truncated": st[:len(st)/2],
		"trailing":  append(slices.Clone(st), 0),
		"garbage":   bytes.Repeat([]byte{0x42}, 100),
		"version":   func() []byte { b := slices.Clone(st); b[len("mimi-client-state")+1] = 9; return b }(),
	}
	for name, b := range cases {
		if _, err := client.Load(b, p, nil); !errors.Is(err, client.ErrStateCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Flipping any single byte is detected or harmless; it never panics.
	for i := 0; i < len(st); i += 97 {
		b := slices.Clone(st)
		b[i] ^= 0x01
		_, _ = client.Load(b, p, nil)
	}
}

// FuzzLoad checks that Load never panics on arbitrary input.
func FuzzLoad(f *testing.F) {
	w := threeUsers(f)
	st, err := w.clients["ClientB1"].Save()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(st)
	f.Add([]byte{})
	p := w.net.provider("b.example")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := client.Load(b, p, nil)
		if err == nil {
			if _, err := c.Save(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
