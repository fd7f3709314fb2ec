package projections_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

func kps(suite uint16, specs ...any) []eventlog.KeyPackage {
	var out []eventlog.KeyPackage
	for i := 0; i < len(specs); i += 2 {
		ref := specs[i].(string)
		out = append(out, eventlog.KeyPackage{Ref: []byte(ref), CipherSuite: suite, NotAfter: uint64(specs[i+1].(int)), Data: []byte("kp:" + ref)})
	}
	return out
}

// TestFlow walks the MIMI flows of draft-ralston-mimi-protocol-02,
// Section 3 through the Machine and checks every projection.
func TestFlow(t *testing.T) {
	h := newHarness(t)
	const now = 2_000_000 // ms: 2000 s
	h.ok(nil,
		ev("", 1, &eventlog.ClientRegistered{User: "alice", Client: "a1", SignatureKey: []byte("ka")}),
		ev("", 1, &eventlog.ClientRegistered{User: "bob", Client: "b1"}),
		ev("", 1, &eventlog.ClientRegistered{User: "bob", Client: "b2"}),
		ev("", 2, &eventlog.KeyPackagesUploaded{Client: "b1", KeyPackages: kps(1, "b1-expired", 100, "b1-late", 5000, "b1-soon", 4000)}),
		ev("", 2, &eventlog.KeyPackagesUploaded{Client: "b1", KeyPackages: kps(2, "b1-s2", 9000)}),
		ev("", 2, &eventlog.KeyPackagesUploaded{Client: "b2", KeyPackages: kps(2, "b2-a", 9000)}),
	)
	if cs, _ := h.m.UserClients("bob"); !reflect.DeepEqual(cs, []string{"b1", "b2"}) {
		t.Fatalf("UserClients: %v", cs)
	}
	if c, err := h.m.Client("a1"); err != nil || c.User != "alice" || string(c.SignatureKey) != "ka" {
		t.Fatalf("Client: %+v %v", c, err)
	}
	claimable, _ := h.m.ClaimableKeyPackages("b1", 1, now)
	if len(claimable) != 2 || string(claimable[0].Ref) != "b1-soon" || string(claimable[1].Ref) != "b1-late" {
		t.Fatalf("claimable suite 1: %+v", claimable)
	}
	if all, _ := h.m.ClaimableKeyPackages("b1", 0, now); len(all) != 3 {
		t.Fatalf("claimable any suite: %d", len(all))
	}

	// Alice creates the room.
	h.ok(conds(projections.RoomDoesNotExist("room1")),
		ev("room1", 10, &eventlog.RoomCreated{Hub: "a.example", Creator: "alice", Policy: []byte("pol"), Participants: []byte("alice:admin"),
			GroupInfo: []byte("gi0"), RatchetTree: []byte("tree0"), Members: []string{"a1"}}))
	if r := h.apply(conds(projections.RoomDoesNotExist("room1"))); !errors.Is(r.Err, projections.ErrRoomExists) {
		t.Fatalf("second create: %v", r.Err)
	}

	// The hub claims Bob's KeyPackages for the room: one per client.
	claim := func(client string, required bool) projections.Op {
		return projections.ClaimOp(projections.ClaimRequest{Client: client, Suites: []uint16{1}, Claimer: "alice", Room: "room1", Timestamp: now, Required: required})
	}
	r := h.ok(nil, claim("b1", true), claim("b2", false))
	if len(r.Claims) != 2 || !r.Claims[0].Found || string(r.Claims[0].KeyPackage.Ref) != "b1-soon" || r.Claims[1].Found {
		t.Fatalf("claims: %+v", r.Claims)
	}
	if kp := r.Claims[0].KeyPackage; !kp.Claimed || kp.Claimer != "alice" || kp.Room != "room1" || string(kp.Data) != "kp:b1-soon" || kp.ClaimSeq != r.Events[0].Seq {
		t.Fatalf("claimed KeyPackage: %+v", kp)
	}
	if tr, err := h.m.TargetRoute([]byte("b1-soon")); err != nil || tr.Client != "b1" || tr.Room != "room1" {
		t.Fatalf("TargetRoute: %+v %v", tr, err)
	}
	if _, err := h.m.TargetRoute([]byte("b1-late")); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("TargetRoute of unclaimed: %v", err)
	}
	r = h.ok(nil, claim("b1", true))
	if string(r.Claims[0].KeyPackage.Ref) != "b1-late" {
		t.Fatalf("second claim got %s", r.Claims[0].KeyPackage.Ref)
	}
	before := stateHash(t, h.m)
	if r := h.apply(nil, claim("b1", true)); !errors.Is(r.Err, projections.ErrNoKeyPackage) {
		t.Fatalf("exhausted required claim: %v", r.Err)
	}
	if !bytes.Equal(before, stateHash(t, h.m)) {
		t.Fatal("failed claim changed state")
	}
	// The expired one is never handed out, even when named explicitly.
	if r := h.apply(nil, ev("room1", now, &eventlog.KeyPackageClaimed{Ref: []byte("b1-expired"), Client: "b1", Claimer: "x"})); !errors.Is(r.Err, projections.ErrKeyPackageExpired) {
		t.Fatalf("expired claim: %v", r.Err)
	}
	if r := h.apply(nil, ev("room1", now, &eventlog.KeyPackageClaimed{Ref: []byte("b1-soon"), Client: "b1", Claimer: "x"})); !errors.Is(r.Err, projections.ErrKeyPackageClaimed) {
		t.Fatalf("double claim: %v", r.Err)
	}
	// Any-suite claim falls through to suite 2.
	r = h.ok(nil, projections.ClaimOp(projections.ClaimRequest{Client: "b1", Claimer: "alice", Room: "room1", Timestamp: now}))
	if string(r.Claims[0].KeyPackage.Ref) != "b1-s2" {
		t.Fatalf("any-suite claim: %+v", r.Claims)
	}

	// The hub records where b1's KeyPackage came from.
	h.ok(nil, ev("room1", 11, &eventlog.KeyPackageRouted{Ref: []byte("b1-soon"), Provider: "b.example", User: "bob"}))

	// Proposals for epoch 0.
	h.ok(conds(projections.RoomEpochIs("room1", 0)),
		ev("room1", 12, &eventlog.ProposalAccepted{Epoch: 0, Message: []byte("prop1"), ProposalRef: []byte("p1"), Sender: "a1"}),
		ev("room1", 13, &eventlog.ProposalAccepted{Epoch: 0, Message: []byte("prop2"), ProposalRef: []byte("p2"), Sender: "hub"}))
	if ps, _ := h.m.RoomProposals("room1"); len(ps) != 2 || string(ps[1].Ref) != "p2" || string(ps[0].Message) != "prop1" {
		t.Fatalf("proposals: %+v", ps)
	}
	if r := h.apply(nil, ev("room1", 14, &eventlog.ProposalAccepted{Epoch: 1, ProposalRef: []byte("p3")})); !errors.Is(r.Err, projections.ErrWrongEpoch) {
		t.Fatalf("future-epoch proposal: %v", r.Err)
	}

	// Alice commits, adding Bob; the Welcome goes to b.example and the
	// commit to b.example too.
	r = h.ok(conds(projections.RoomEpochIs("room1", 0)),
		ev("room1", 20, &eventlog.CommitAccepted{Epoch: 1, Commit: []byte("commit1"), Welcome: []byte("welcome1"),
			WelcomeRoutes: []eventlog.WelcomeRoute{{Ref: []byte("b1-soon"), Provider: "b.example"}},
			GroupInfo:     []byte("gi1"), RatchetTree: []byte("tree1"), Participants: []byte("alice:admin,bob:member"),
			Members: []string{"b1", "a1"}, Sender: "a1"}),
		ev("room1", 20, &eventlog.FanoutEnqueued{Destinations: []string{"b.example"}, Back: 1, Part: eventlog.PartWelcome}),
		ev("room1", 20, &eventlog.FanoutEnqueued{Destinations: []string{"b.example"}, Back: 2, Part: eventlog.PartMessage}))
	commitSeq := r.Events[0].Seq
	room, err := h.m.Room("room1")
	if err != nil || room.Epoch != 1 || string(room.GroupInfo) != "gi1" || string(room.RatchetTree) != "tree1" ||
		string(room.Participants) != "alice:admin,bob:member" || string(room.Policy) != "pol" ||
		!reflect.DeepEqual(room.Members, []string{"a1", "b1"}) || room.Proposals != 0 || room.LastCommitSeq != commitSeq || room.LastCommitAt != 20 {
		t.Fatalf("room after commit: %+v %v", room, err)
	}
	if ps, _ := h.m.RoomProposals("room1"); len(ps) != 0 {
		t.Fatalf("proposals not cleared: %d", len(ps))
	}
	if rs, _ := h.m.ClientRooms("b1"); !reflect.DeepEqual(rs, []string{"room1"}) {
		t.Fatalf("ClientRooms: %v", rs)
	}
	if hr, err := h.m.HubRoute([]byte("b1-soon")); err != nil || hr.Provider != "b.example" || hr.User != "bob" || hr.Room != "room1" {
		t.Fatalf("HubRoute: %+v %v", hr, err)
	}
	if r := h.apply(conds(projections.RoomEpochIs("room1", 0)), ev("room1", 21, &eventlog.CommitAccepted{Epoch: 1})); !errors.Is(r.Err, projections.ErrWrongEpoch) {
		t.Fatalf("stale commit: %v", r.Err)
	}
	var we *projections.WrongEpochError
	if r := h.apply(nil, ev("room1", 21, &eventlog.CommitAccepted{Epoch: 5})); !errors.As(r.Err, &we) || we.Current != 1 {
		t.Fatalf("skipping commit: %v", r.Err)
	}

	// Bob sends a message; it fans out to b.example and into a1's inbox.
	h.ok(conds(projections.RoomEpochIs("room1", 1)),
		ev("room1", 30, &eventlog.ApplicationMessageAccepted{Epoch: 1, Message: []byte("hello"), Sender: "b1"}),
		ev("room1", 30, &eventlog.FanoutEnqueued{Destinations: []string{"b.example", "c.example"}, Back: 1}),
		ev("room1", 30, &eventlog.ClientEnqueued{Clients: []string{"a1"}, Back: 2}))
	if r := h.apply(nil, ev("room1", 31, &eventlog.ApplicationMessageAccepted{Epoch: 2})); !errors.Is(r.Err, projections.ErrWrongEpoch) {
		t.Fatalf("future-epoch message: %v", r.Err)
	}
	pending, _ := h.m.FanoutPending("b.example", 0)
	if len(pending) != 3 {
		t.Fatalf("pending: %+v", pending)
	}
	var payloads []string
	for _, d := range pending {
		p, err := h.m.Payload(d)
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, string(p))
	}
	if !reflect.DeepEqual(payloads, []string{"welcome1", "commit1", "hello"}) || pending[2].Timestamp != 30 || pending[0].N != 1 {
		t.Fatalf("payloads %v %+v", payloads, pending)
	}
	if two, _ := h.m.FanoutPending("b.example", 2); len(two) != 2 {
		t.Fatal("limit")
	}
	inbox, _ := h.m.ClientInbox("a1", 0, 10)
	if len(inbox) != 1 || inbox[0].Room != "room1" {
		t.Fatalf("inbox: %+v", inbox)
	}
	dests, _ := h.m.FanoutDestinations()
	if len(dests) != 2 || dests[0].Destination != "b.example" || dests[0].Cursor != (projections.Cursor{Enqueued: 3}) || dests[1].Cursor.Pending() != 1 {
		t.Fatalf("destinations: %+v", dests)
	}
	// Bad references are rejected.
	for name, body := range map[string]eventlog.Body{
		"welcome of a message":  &eventlog.FanoutEnqueued{Destinations: []string{"x"}, Back: 1, Part: eventlog.PartWelcome},
		"back to another room":  &eventlog.FanoutEnqueued{Destinations: []string{"x"}, Back: 1000},
		"back zero":             &eventlog.FanoutEnqueued{Destinations: []string{"x"}, Back: 0},
		"no destinations":       &eventlog.FanoutEnqueued{Back: 1},
		"duplicate destination": &eventlog.FanoutEnqueued{Destinations: []string{"x", "x"}, Back: 3},
		"unknown client":        &eventlog.ClientEnqueued{Clients: []string{"zz"}, Back: 3},
	} {
		if r := h.apply(nil, ev("room1", 40, body)); r.Err == nil {
			t.Fatalf("%s accepted", name)
		}
	}

	// Deliveries are acknowledged.
	h.ok(nil, ev("", 50, &eventlog.FanoutDelivered{Destination: "b.example", UpTo: 2}))
	if p, _ := h.m.FanoutPending("b.example", 0); len(p) != 1 || p[0].N != 3 {
		t.Fatalf("after ack: %+v", p)
	}
	if r := h.apply(nil, ev("", 51, &eventlog.FanoutDelivered{Destination: "b.example", UpTo: 2})); !errors.Is(r.Err, projections.ErrStaleAck) {
		t.Fatalf("stale ack: %v", r.Err)
	}
	if r := h.apply(nil, ev("", 51, &eventlog.FanoutDelivered{Destination: "b.example", UpTo: 4})); !errors.Is(r.Err, projections.ErrAckBeyondQueue) {
		t.Fatalf("ack beyond: %v", r.Err)
	}
	if r := h.apply(nil, ev("", 51, &eventlog.FanoutDelivered{Destination: "nobody", UpTo: 1})); !errors.Is(r.Err, projections.ErrAckBeyondQueue) {
		t.Fatalf("ack unknown: %v", r.Err)
	}
	h.ok(nil, ev("", 52, &eventlog.ClientDelivered{Client: "a1", UpTo: 1}))
	if c, _ := h.m.InboxCursor("a1"); c != (projections.Cursor{Enqueued: 1, Acked: 1}) {
		t.Fatalf("inbox cursor %+v", c)
	}

	// Follower side: notify dedup.
	body := []byte("fanout-messages")
	h.ok(conds(projections.NotifyNotSeen("hub.example", eventlog.NotifyHash("remote-room", body))),
		ev("remote-room", 60, &eventlog.NotifyAccepted{Hub: "hub.example", BodyHash: eventlog.NotifyHash("remote-room", body), Body: body}),
		ev("remote-room", 60, &eventlog.ClientEnqueued{Clients: []string{"b2"}, Back: 1, Index: 0}))
	if seen, _ := h.m.NotifySeen("hub.example", eventlog.NotifyHash("remote-room", body)); !seen {
		t.Fatal("NotifySeen false")
	}
	if r := h.apply(nil, ev("remote-room", 61, &eventlog.NotifyAccepted{Hub: "hub.example", BodyHash: eventlog.NotifyHash("remote-room", body), Body: body})); !errors.Is(r.Err, projections.ErrDuplicateNotify) {
		t.Fatalf("duplicate notify: %v", r.Err)
	}
	if r := h.apply(nil, ev("remote-room", 61, &eventlog.NotifyAccepted{Hub: "hub.example", BodyHash: sum([]byte("x")), Body: body})); !errors.Is(r.Err, projections.ErrInvalidEvent) {
		t.Fatalf("bad hash: %v", r.Err)
	}
	if in, _ := h.m.ClientInbox("b2", 0, 0); len(in) != 1 {
		t.Fatalf("b2 inbox %+v", in)
	} else if p, _ := h.m.Payload(in[0]); !bytes.Equal(p, body) {
		t.Fatalf("notify payload %q", p)
	}

	// Room state update, then close.
	h.ok(nil, ev("room1", 70, &eventlog.RoomStateUpdated{Policy: []byte("pol2"), Sender: "a1"}))
	if room, _ := h.m.Room("room1"); string(room.Policy) != "pol2" || string(room.Participants) != "alice:admin,bob:member" {
		t.Fatalf("state update: %+v", room)
	}
	h.ok(nil, ev("room1", 71, &eventlog.RoomClosed{Sender: "a1"}))
	if r := h.apply(nil, ev("room1", 72, &eventlog.ProposalAccepted{Epoch: 1, ProposalRef: []byte("p")})); !errors.Is(r.Err, projections.ErrRoomClosed) {
		t.Fatalf("closed room: %v", r.Err)
	}
	if ids, _ := h.m.Rooms(); !reflect.DeepEqual(ids, []string{"room1"}) {
		t.Fatalf("Rooms %v", ids)
	}

	// Removing b2 withdraws its KeyPackages and empties its inbox.
	h.ok(nil, ev("", 80, &eventlog.ClientRemoved{Client: "b2"}))
	if _, err := h.m.KeyPackage([]byte("b2-a")); !errors.Is(err, projections.ErrKeyPackageUnknown) {
		t.Fatalf("b2 KeyPackage survived: %v", err)
	}
	if in, _ := h.m.ClientInbox("b2", 0, 0); len(in) != 0 {
		t.Fatal("b2 inbox survived")
	}
	if cs, _ := h.m.UserClients("bob"); !reflect.DeepEqual(cs, []string{"b1"}) {
		t.Fatalf("UserClients after removal: %v", cs)
	}

	// The log reads back per room and globally.
	evs, _ := h.m.RoomEvents("room1", 1, 0)
	for i, e := range evs {
		if e.Room != "room1" || e.RoomSeq != uint64(i+1) {
			t.Fatalf("room event %d: %+v", i, e)
		}
	}
	if head, err := h.m.RoomHead("room1"); err != nil || head != uint64(len(evs)) || len(evs) == 0 {
		t.Fatalf("RoomHead = %d, %v; %d room events", head, err, len(evs))
	}
	if head, err := h.m.RoomHead("no-such-room"); err != nil || head != 0 {
		t.Fatalf("RoomHead of an unknown room = %d, %v", head, err)
	}
	all, _ := h.m.Events(1, 0)
	head, _ := h.m.LogHead()
	if uint64(len(all)) != head.Seq {
		t.Fatalf("%d events, head %d", len(all), head.Seq)
	}

	replayCheck(t, h)
	rep, err := h.m.Audit("audit-scratch")
	if err != nil || !rep.OK() {
		t.Fatalf("audit: %+v %v", rep, err)
	}
}

func TestApplyDuplicateAndMalformed(t *testing.T) {
	h := newHarness(t)
	cmd := encodeCmd(t, &projections.Command{Ops: []projections.Op{ev("", 1, &eventlog.ClientRegistered{User: "u", Client: "c"})}})
	if r := h.m.Apply(5, cmd); r.Err != nil || r.Duplicate || len(r.Events) != 1 || r.Events[0].Seq != 1 {
		t.Fatalf("first apply: %+v", r)
	}
	d := digest(t, h.m)
	for _, idx := range []uint64{5, 4, 0} {
		if r := h.m.Apply(idx, cmd); !r.Duplicate || r.Err != nil || len(r.Events) != 0 {
			t.Fatalf("index %d: %+v", idx, r)
		}
	}
	before := stateHash(t, h.m)
	r := h.m.Apply(6, []byte("garbage"))
	if !errors.Is(r.Err, projections.ErrMalformedCommand) || h.m.AppliedIndex() != 6 {
		t.Fatalf("malformed: %+v", r)
	}
	if !bytes.Equal(before, stateHash(t, h.m)) || !bytes.Equal(d, digest(t, h.m)) {
		t.Fatal("malformed command changed state")
	}
	// Atomicity: the first op is valid, the second fails; neither lands.
	r = h.m.Apply(7, encodeCmd(t, &projections.Command{Ops: []projections.Op{
		ev("", 1, &eventlog.ClientRegistered{User: "u", Client: "c2"}),
		ev("", 1, &eventlog.ClientRegistered{User: "other", Client: "c"}),
	}}))
	if !errors.Is(r.Err, projections.ErrClientExists) || !bytes.Equal(before, stateHash(t, h.m)) || h.m.AppliedIndex() != 7 {
		t.Fatalf("partial command: %v", r.Err)
	}
	// The applied index survives reopening.
	h.m.Close()
	m, err := projections.OpenWithOptions(h.dir, projections.Options{FS: h.fs})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	if m.AppliedIndex() != 7 || !bytes.Equal(before, stateHash(t, m)) {
		t.Fatalf("after reopen: applied %d", m.AppliedIndex())
	}
	if r := m.Apply(7, cmd); !r.Duplicate {
		t.Fatal("index 7 not a duplicate after reopen")
	}
	// Closed machine.
	m.Close()
	if r := m.Apply(8, cmd); !errors.Is(r.Err, projections.ErrClosed) {
		t.Fatalf("closed: %v", r.Err)
	}
	if _, err := m.Digest(); !errors.Is(err, projections.ErrClosed) {
		t.Fatalf("closed digest: %v", err)
	}
}

// TestConcurrentClaims: many proposers race to claim the same client's
// KeyPackages; the serial Apply hands each KeyPackage out once.
func TestConcurrentClaims(t *testing.T) {
	h := newHarness(t)
	var list []eventlog.KeyPackage
	for i := 0; i < 10; i++ {
		list = append(list, eventlog.KeyPackage{Ref: []byte(fmt.Sprint("kp", i)), CipherSuite: 1, NotAfter: 1 << 40})
	}
	h.ok(nil, ev("", 1, &eventlog.ClientRegistered{User: "u", Client: "c"}), ev("", 1, &eventlog.KeyPackagesUploaded{Client: "c", KeyPackages: list}))
	var (
		mu    sync.Mutex // stands in for Raft: one index, one Apply at a time
		idx   = h.idx
		refs  = map[string]int{}
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		reads sync.WaitGroup
	)
	// Readers run concurrently with Apply.
	reads.Add(1)
	go func() {
		defer reads.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := h.m.ClaimableKeyPackages("c", 0, 5); err != nil {
				t.Error(err)
				return
			}
			if _, err := h.m.Digest(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := encodeCmd(t, &projections.Command{Ops: []projections.Op{projections.ClaimOp(projections.ClaimRequest{Client: "c", Claimer: fmt.Sprint("u", i), Room: "r", Timestamp: 5, Required: true})}})
			mu.Lock()
			defer mu.Unlock()
			idx++
			r := h.m.Apply(idx, cmd)
			if r.Err != nil {
				if !errors.Is(r.Err, projections.ErrNoKeyPackage) {
					t.Errorf("claim: %v", r.Err)
				}
				return
			}
			refs[string(r.Claims[0].KeyPackage.Ref)]++
		}(i)
	}
	wg.Wait()
	close(stop)
	reads.Wait()
	if len(refs) != 10 {
		t.Fatalf("%d distinct KeyPackages claimed, want 10", len(refs))
	}
	for ref, n := range refs {
		if n != 1 {
			t.Fatalf("%s handed out %d times", ref, n)
		}
	}
	if left, _ := h.m.ClaimableKeyPackages("c", 0, 5); len(left)+len(refs) != 10 {
		t.Fatalf("%d left + %d claimed != 10", len(left), len(refs))
	}
}

// TestFlippedByteInMachine flips one byte of a stored event under a Machine
// and checks that VerifyLog names exactly that event and Audit fails.
func TestFlippedByteInMachine(t *testing.T) {
	h := newHarness(t)
	h.ok(nil, ev("r", 1, &eventlog.RoomCreated{Hub: "h"}))
	for i := 0; i < 20; i++ {
		h.ok(nil, ev("r", uint64(i), &eventlog.ApplicationMessageAccepted{Message: []byte(fmt.Sprint("message ", i))}))
	}
	if rep, err := h.m.VerifyLog(); err != nil || !rep.OK() || rep.Records != 21 {
		t.Fatalf("clean log: %+v %v", rep, err)
	}
	h.m.Close()
	path := h.fs.PathJoin(h.dir, projections.StateDir)
	db, err := pebble.Open(path, &pebble.Options{FS: h.fs, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	k := append([]byte("e/g/"), 0, 0, 0, 0, 0, 0, 0, 13)
	v, c, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	v = append([]byte(nil), v...)
	c.Close()
	v[len(v)-3] ^= 0x01 // inside the message
	db.Set(k, v, pebble.Sync)
	db.Close()
	m, err := projections.OpenWithOptions(h.dir, projections.Options{FS: h.fs})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	rep, err := m.VerifyLog()
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.CorruptSeqs(); len(s) != 1 || s[0] != 13 {
		t.Fatalf("corrupt seqs %v: %v", s, rep.Corruptions)
	}
	audit, err := m.Audit("scratch")
	if err != nil {
		t.Fatal(err)
	}
	if audit.OK() || !errors.Is(audit.ReplayErr, projections.ErrReplayDiverged) {
		t.Fatalf("audit of corrupt log: ok=%v replayErr=%v", audit.OK(), audit.ReplayErr)
	}
}

type quiet struct{}

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(f string, a ...any) {
	panic(fmt.Sprintf(f, a...))
}

func TestSnapshotRestore(t *testing.T) {
	fs := vfs.NewMem()
	src := newHarnessFS(t, fs, "src")
	runRandom(t, src, 7, 150)
	var buf bytes.Buffer
	if err := src.m.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	snap := buf.Bytes()

	// Restore into a fresh Machine that already holds unrelated state.
	dst := newHarnessFS(t, fs, "dst")
	dst.ok(nil, ev("", 1, &eventlog.ClientRegistered{User: "someone", Client: "else"}))
	if err := dst.m.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	check := func(m *projections.Machine) {
		t.Helper()
		if !bytes.Equal(digest(t, src.m), digest(t, m)) {
			t.Fatal("digest differs after restore")
		}
		if m.AppliedIndex() != src.m.AppliedIndex() {
			t.Fatalf("applied %d != %d", m.AppliedIndex(), src.m.AppliedIndex())
		}
		if a, b := stateHash(t, src.m), stateHash(t, m); !bytes.Equal(a, b) {
			t.Fatal("full state differs after restore")
		}
	}
	check(dst.m)
	if _, err := dst.m.Client("else"); !errors.Is(err, projections.ErrUnknownClient) {
		t.Fatal("old state survived restore")
	}
	// Restored state persists across reopen.
	dst.m.Close()
	m, err := projections.OpenWithOptions("dst", projections.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	dst.m = m
	check(m)
	// Both continue identically.
	dst.idx = src.idx
	cmd := []projections.Op{ev("new-room", 1, &eventlog.RoomCreated{Hub: "h"})}
	src.ok(nil, cmd...)
	dst.ok(nil, cmd...)
	check(dst.m)

	// Damaged streams are rejected and leave the Machine unchanged.
	buf.Reset()
	if err := src.m.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	snap = buf.Bytes()
	before := stateHash(t, dst.m)
	damaged := map[string][]byte{
		"truncated":       snap[:len(snap)/2],
		"no checksum":     snap[:len(snap)-32],
		"empty":           nil,
		"flipped byte":    flip(snap, len(snap)/3),
		"flipped trailer": flip(snap, len(snap)-1),
		"bad magic":       flip(snap, 0),
	}
	// Valid checksums over records that do not decode: refused before the
	// swap, not after it (which would leave a Machine that cannot open).
	body := snap[:len(snap)-sha256.Size]
	for name, key := range map[string]string{"bad applied index": "m/applied", "bad log head": "e/H", "bad cursor": "p/icur/"} {
		edited := false
		damaged[name] = rewriteSnapshot(t, body, func(k, v []byte) []byte {
			if !bytes.HasPrefix(k, []byte(key)) {
				return v
			}
			edited = true
			return []byte{1}
		})
		if !edited {
			t.Fatalf("%s: no %s record in the snapshot", name, key)
		}
	}
	for name, b := range damaged {
		err := dst.m.Restore(bytes.NewReader(b))
		if !errors.Is(err, projections.ErrBadSnapshot) {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(before, stateHash(t, dst.m)) {
			t.Fatalf("%s changed state", name)
		}
	}
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x10
	return out
}

// TestRestoreRecovery: a leftover partial restore is discarded on Open; a
// committed one (marker present) is completed.
func TestRestoreRecovery(t *testing.T) {
	fs := vfs.NewMem()
	h := newHarnessFS(t, fs, "n")
	h.ok(nil, ev("", 1, &eventlog.ClientRegistered{User: "u", Client: "c"}))
	want := stateHash(t, h.m)
	h.m.Close()
	// Partial restore without marker: discarded.
	fs.MkdirAll("n/state.restore", 0o755)
	f, _ := fs.Create("n/state.restore/junk", vfs.WriteCategoryUnspecified)
	f.Close()
	m, err := projections.OpenWithOptions("n", projections.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, stateHash(t, m)) {
		t.Fatal("state changed")
	}
	if _, err := fs.Stat("n/state.restore"); err == nil {
		t.Fatal("partial restore not removed")
	}
	// A committed restore: snapshot another machine, load it by hand.
	other := newHarnessFS(t, fs, "o")
	other.ok(nil, ev("", 1, &eventlog.ClientRegistered{User: "v", Client: "d"}))
	var buf bytes.Buffer
	other.m.Snapshot(&buf)
	if err := m.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	m.Close()
	h.m = m
	if _, err := fs.Stat("n/RESTORE-COMMIT"); err == nil {
		t.Fatal("marker left behind")
	}
}

// TestDuplicateApplicationMessage: a room accepts the same application
// message bytes once per epoch (draft-ralston-mimi-protocol-02, Section
// 5.4); the rejection changes nothing, AcceptedMessage reports the first
// acceptance, an epoch's set outlives the next three commits and is
// emptied by the fourth, and replay agrees.
func TestDuplicateApplicationMessage(t *testing.T) {
	h := newHarness(t)
	h.ok(nil, ev("room", 1, &eventlog.RoomCreated{Hub: "hub"}))
	msg := []byte("ciphertext")
	first := h.ok(nil, ev("room", 7, &eventlog.ApplicationMessageAccepted{Epoch: 0, Message: msg}))
	before := stateHash(t, h.m)
	r := h.apply(nil, ev("room", 9, &eventlog.ApplicationMessageAccepted{Epoch: 0, Message: msg}))
	if !errors.Is(r.Err, projections.ErrDuplicateMessage) {
		t.Fatalf("second acceptance: %v", r.Err)
	}
	if !bytes.Equal(before, stateHash(t, h.m)) {
		t.Fatal("the rejected duplicate changed state")
	}
	// In one command: the second copy fails the whole command.
	r = h.apply(nil, ev("room", 9, &eventlog.ApplicationMessageAccepted{Epoch: 0, Message: []byte("other")}),
		ev("room", 9, &eventlog.ApplicationMessageAccepted{Epoch: 0, Message: []byte("other")}))
	if !errors.Is(r.Err, projections.ErrDuplicateMessage) {
		t.Fatalf("duplicate inside one command: %v", r.Err)
	}
	// The same bytes in another room are another message.
	h.ok(nil, ev("room2", 1, &eventlog.RoomCreated{Hub: "hub"}))
	h.ok(nil, ev("room2", 8, &eventlog.ApplicationMessageAccepted{Epoch: 0, Message: msg}))
	hash := sum(msg)
	rec, found, err := h.m.AcceptedMessage("room", 0, hash)
	if err != nil || !found || rec.Seq != first.Events[0].Seq || rec.Timestamp != 7 {
		t.Fatalf("AcceptedMessage = %+v %v %v, want seq %d ts 7", rec, found, err, first.Events[0].Seq)
	}
	// The ResultCodec carries the rejection to a forwarding follower.
	enc, err := projections.ResultCodec{}.EncodeResult(projections.Result{Err: r.Err})
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := (projections.ResultCodec{}).DecodeResult(enc); err != nil || !errors.Is(dec.Err, projections.ErrDuplicateMessage) {
		t.Fatalf("decoded %v %v", dec.Err, err)
	}
	// The next three commits keep epoch 0's set (a resend after a lost
	// answer still finds its acceptance); the fourth empties it.
	h.ok(nil, ev("room", 10, &eventlog.CommitAccepted{Epoch: 1, Commit: []byte("c1")}))
	h.ok(nil, ev("room", 11, &eventlog.ApplicationMessageAccepted{Epoch: 1, Message: msg}))
	for e := uint64(2); e <= 3; e++ {
		h.ok(nil, ev("room", 10+e, &eventlog.CommitAccepted{Epoch: e, Commit: []byte(fmt.Sprint("c", e))}))
	}
	if rec, found, err := h.m.AcceptedMessage("room", 0, hash); err != nil || !found || rec.Timestamp != 7 {
		t.Fatalf("after three commits: %+v found=%v err=%v", rec, found, err)
	}
	h.ok(nil, ev("room", 14, &eventlog.CommitAccepted{Epoch: 4, Commit: []byte("c4")}))
	if _, found, err := h.m.AcceptedMessage("room", 0, hash); err != nil || found {
		t.Fatalf("after four commits: found=%v err=%v", found, err)
	}
	if _, found, err := h.m.AcceptedMessage("room", 1, hash); err != nil || !found {
		t.Fatalf("epoch 1 after three more commits: found=%v err=%v", found, err)
	}
	if _, found, _ := h.m.AcceptedMessage("room2", 0, hash); !found {
		t.Fatal("the commits of room pruned room2's messages")
	}
	replayCheck(t, h)
}

// TestGroupBound: a followed room and an MLS group are bound once, both
// ways, per hub (draft-ralston-mimi-protocol-02, Section 5.5): another
// hub's binding of the same group ID is its own. A refused binding
// changes nothing.
func TestGroupBound(t *testing.T) {
	h := newHarness(t)
	bind := func(hub, gid string) *eventlog.GroupBound {
		return &eventlog.GroupBound{Hub: hub, GroupID: []byte(gid)}
	}
	h.ok(nil, ev("r1", 1, bind("hub1", "g1")))
	if room, err := h.m.GroupRoom("hub1", []byte("g1")); err != nil || room != "r1" {
		t.Fatalf("GroupRoom(hub1, g1) = %q %v", room, err)
	}
	for _, q := range [][2]string{{"hub1", "g2"}, {"hub2", "g1"}} {
		if room, err := h.m.GroupRoom(q[0], []byte(q[1])); err != nil || room != "" {
			t.Fatalf("GroupRoom(%s, %s) = %q %v", q[0], q[1], room, err)
		}
	}
	before := stateHash(t, h.m)
	for _, tc := range []struct{ room, hub, gid string }{
		{"r2", "hub1", "g1"}, {"r1", "hub1", "g2"}, {"r1", "hub1", "g1"}, {"", "hub1", "g3"}, {"r3", "hub1", ""}, {"r3", "", "g3"},
	} {
		r := h.apply(nil, ev(tc.room, 2, bind(tc.hub, tc.gid)))
		if !errors.Is(r.Err, projections.ErrGroupBound) && !errors.Is(r.Err, projections.ErrInvalidEvent) {
			t.Errorf("bind %q to %s/%q: %v", tc.room, tc.hub, tc.gid, r.Err)
		}
	}
	if !bytes.Equal(before, stateHash(t, h.m)) {
		t.Fatal("a refused binding changed state")
	}
	h.ok(nil, ev("r2", 3, bind("hub1", "g2")))
	// Another hub's room may carry the same group ID: group IDs are
	// public, and one hub must not claim another's.
	h.ok(nil, ev("r9", 4, bind("hub2", "g1")))
	replayCheck(t, h)
}

// TestNotifyDedupPruned: the notify dedup set forgets its oldest entries,
// by acceptance time and at most Limit per event
// (draft-ralston-mimi-protocol-02, Section 5.5); replay agrees.
func TestNotifyDedupPruned(t *testing.T) {
	h := newHarness(t)
	if _, found, err := h.m.OldestNotifyDedup(); err != nil || found {
		t.Fatalf("empty set: found=%v %v", found, err)
	}
	var hashes [][]byte
	for i, ts := range []uint64{10, 20, 30, 40} {
		body := []byte(fmt.Sprint("fanout message ", i))
		hash := eventlog.NotifyHash("room", body)
		hashes = append(hashes, hash)
		h.ok(nil, ev("room", ts, &eventlog.NotifyAccepted{Hub: "hub.example", BodyHash: hash, Body: body}))
	}
	seen := func() (out []bool) {
		for _, hash := range hashes {
			ok, err := h.m.NotifySeen("hub.example", hash)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ok)
		}
		return out
	}
	for _, bad := range []eventlog.NotifyDedupPruned{{OlderThan: 100, Limit: 0}, {OlderThan: 100, Limit: 1_000_000}} {
		if r := h.apply(nil, ev("", 50, &bad)); !errors.Is(r.Err, projections.ErrInvalidEvent) {
			t.Fatalf("%+v: %v", bad, r.Err)
		}
	}
	// Older than 35, at most 1: only the first goes.
	h.ok(nil, ev("", 50, &eventlog.NotifyDedupPruned{OlderThan: 35, Limit: 1}))
	if got := fmt.Sprint(seen()); got != "[false true true true]" {
		t.Fatalf("after the first prune: %s", got)
	}
	if ts, found, err := h.m.OldestNotifyDedup(); err != nil || !found || ts != 20 {
		t.Fatalf("oldest = %d %v %v, want 20", ts, found, err)
	}
	h.ok(nil, ev("", 51, &eventlog.NotifyDedupPruned{OlderThan: 35, Limit: 100}))
	if got := fmt.Sprint(seen()); got != "[false false false true]" {
		t.Fatalf("after the second prune: %s", got)
	}
	// A forgotten message is new again.
	h.ok(nil, ev("room", 60, &eventlog.NotifyAccepted{Hub: "hub.example", BodyHash: hashes[0], Body: []byte("fanout message 0")}))
	replayCheck(t, h)
}

// TestKeyPackagesExpired: unclaimed KeyPackages past their not_after are
// withdrawn, earliest first and at most Limit per event (RFC 9420,
// Section 7.2; draft-ralston-mimi-protocol-02, Section 5.2); claimed ones
// stay (they route Welcomes), and so do those still valid.
func TestKeyPackagesExpired(t *testing.T) {
	h := newHarness(t)
	h.ok(nil,
		ev("", 1, &eventlog.ClientRegistered{User: "bob", Client: "b1"}),
		ev("", 1, &eventlog.ClientRegistered{User: "bob", Client: "b2"}),
		ev("", 2, &eventlog.KeyPackagesUploaded{Client: "b1", KeyPackages: kps(1, "old1", 100, "old2", 200, "claimed", 150, "valid", 9000)}),
		ev("", 2, &eventlog.KeyPackagesUploaded{Client: "b2", KeyPackages: kps(1, "old3", 300)}),
	)
	h.ok(nil, ev("room", 140_000, &eventlog.KeyPackageClaimed{Ref: []byte("claimed"), Client: "b1", Claimer: "alice"}))
	if na, found, err := h.m.EarliestKeyPackageExpiry(); err != nil || !found || na != 100 {
		t.Fatalf("earliest = %d %v %v", na, found, err)
	}
	if r := h.apply(nil, ev("", 1, &eventlog.KeyPackagesExpired{Now: 1_000_000, Limit: 0})); !errors.Is(r.Err, projections.ErrInvalidEvent) {
		t.Fatalf("limit 0: %v", r.Err)
	}
	const now = 1_000_000 // ms: 1000 s
	h.ok(nil, ev("", now, &eventlog.KeyPackagesExpired{Now: now, Limit: 2}))
	exists := func(ref string) bool {
		_, err := h.m.KeyPackage([]byte(ref))
		if err != nil && !errors.Is(err, projections.ErrNotFound) && !errors.Is(err, projections.ErrKeyPackageUnknown) {
			t.Fatal(err)
		}
		return err == nil
	}
	var got []string
	for _, ref := range []string{"old1", "old2", "old3", "claimed", "valid"} {
		if exists(ref) {
			got = append(got, ref)
		}
	}
	if fmt.Sprint(got) != "[old3 claimed valid]" {
		t.Fatalf("after the first event: %v", got)
	}
	h.ok(nil, ev("", now, &eventlog.KeyPackagesExpired{Now: now, Limit: 100}))
	if exists("old3") || !exists("claimed") || !exists("valid") {
		t.Fatal("second event")
	}
	if na, found, _ := h.m.EarliestKeyPackageExpiry(); !found || na != 9000 {
		t.Fatalf("earliest after = %d %v", na, found)
	}
	// Removing the client withdraws the rest, index included.
	h.ok(nil, ev("", now, &eventlog.ClientRemoved{Client: "b1"}))
	if _, found, _ := h.m.EarliestKeyPackageExpiry(); found {
		t.Fatal("the removed client's KeyPackage is still indexed")
	}
	replayCheck(t, h)
}

// TestDuplicateProposal: a room caches a ProposalRef once per epoch (RFC
// 9420, Section 5.2); the refused duplicate changes nothing, and the next
// epoch starts with an empty set.
func TestDuplicateProposal(t *testing.T) {
	h := newHarness(t)
	h.ok(nil, ev("room", 1, &eventlog.RoomCreated{Hub: "hub"}))
	prop := func(ts uint64, epoch uint64, ref string) projections.Op {
		return ev("room", ts, &eventlog.ProposalAccepted{Epoch: epoch, Message: []byte("m" + ref), ProposalRef: []byte(ref), Sender: "a1"})
	}
	h.ok(nil, prop(2, 0, "p1"))
	before := stateHash(t, h.m)
	if r := h.apply(nil, prop(3, 0, "p1")); !errors.Is(r.Err, projections.ErrDuplicateProposal) {
		t.Fatalf("duplicate: %v", r.Err)
	}
	if r := h.apply(nil, prop(3, 0, "p2"), prop(3, 0, "p2")); !errors.Is(r.Err, projections.ErrDuplicateProposal) {
		t.Fatalf("duplicate in one command: %v", r.Err)
	}
	if !bytes.Equal(before, stateHash(t, h.m)) {
		t.Fatal("a refused duplicate changed state")
	}
	h.ok(nil, ev("room", 4, &eventlog.CommitAccepted{Epoch: 1, Commit: []byte("c1")}))
	h.ok(nil, prop(5, 1, "p1"))
	if ps, _ := h.m.RoomProposals("room"); len(ps) != 1 || ps[0].Epoch != 1 {
		t.Fatalf("proposals of epoch 1: %+v", ps)
	}
	replayCheck(t, h)
}

// The hub key is declared once: a second declaration, of the same key or
// another, is refused and changes nothing (RFC 9420, Section 12.1.8.1).
func TestHubKeyDeclared(t *testing.T) {
	h := newHarness(t)
	if _, _, found, err := h.m.HubKey(); err != nil || found {
		t.Fatalf("before: found %v, %v", found, err)
	}
	for _, bad := range []*eventlog.HubKeyDeclared{{CipherSuite: 0, SignatureKey: []byte("k")}, {CipherSuite: 1}} {
		if r := h.apply(nil, ev("", 1, bad)); !errors.Is(r.Err, projections.ErrInvalidEvent) {
			t.Fatalf("%+v: %v", bad, r.Err)
		}
	}
	h.ok(nil, ev("", 1, &eventlog.HubKeyDeclared{CipherSuite: 1, SignatureKey: []byte("key-1")}))
	before := stateHash(t, h.m)
	for _, again := range []*eventlog.HubKeyDeclared{{CipherSuite: 1, SignatureKey: []byte("key-1")}, {CipherSuite: 1, SignatureKey: []byte("key-2")}} {
		if r := h.apply(nil, ev("", 2, again)); !errors.Is(r.Err, projections.ErrHubKeyDeclared) {
			t.Fatalf("second declaration %q: %v", again.SignatureKey, r.Err)
		}
	}
	if !bytes.Equal(stateHash(t, h.m), before) {
		t.Fatal("a refused declaration changed the state")
	}
	suite, key, found, err := h.m.HubKey()
	if err != nil || !found || suite != 1 || string(key) != "key-1" {
		t.Fatalf("HubKey: %d %q %v %v", suite, key, found, err)
	}
	replayCheck(t, h)
}

// Resolve names a delivery's source and bytes, and for a Welcome the tree
// of the epoch its commit created (draft-ralston-mimi-protocol-02,
// Section 5.5).
func TestResolveWelcome(t *testing.T) {
	h := newHarness(t)
	h.ok(nil, ev("", 1, &eventlog.ClientRegistered{User: "u", Client: "c"}))
	h.ok(nil, ev("room", 2, &eventlog.RoomCreated{Hub: "a.example", Creator: "u", GroupInfo: []byte("gi"), RatchetTree: []byte("tree0")}))
	h.ok(nil,
		ev("room", 3, &eventlog.CommitAccepted{Epoch: 1, Commit: []byte("commit"), Welcome: []byte("welcome"), GroupInfo: []byte("gi1"), RatchetTree: []byte("tree1")}),
		ev("room", 3, &eventlog.FanoutEnqueued{Destinations: []string{"b.example"}, Back: 1, Part: eventlog.PartWelcome}),
		ev("room", 3, &eventlog.ClientEnqueued{Clients: []string{"c"}, Back: 2, Part: eventlog.PartMessage}),
	)
	pend, err := h.m.FanoutPending("b.example", 0)
	if err != nil || len(pend) != 1 {
		t.Fatalf("pending: %v %v", pend, err)
	}
	r, err := h.m.Resolve(pend[0])
	if err != nil || r.Source != eventlog.TypeCommitAccepted || string(r.Message) != "welcome" || string(r.RatchetTree) != "tree1" {
		t.Fatalf("Welcome: %+v %v", r, err)
	}
	in, err := h.m.ClientInbox("c", 0, 0)
	if err != nil || len(in) != 1 {
		t.Fatalf("inbox: %v %v", in, err)
	}
	if r, err := h.m.Resolve(in[0]); err != nil || string(r.Message) != "commit" || r.RatchetTree != nil {
		t.Fatalf("commit: %+v %v", r, err)
	}
}

// A client call is taken once within its validity window; expired records
// are forgotten by later calls (eventlog.ClientCallAccepted).
func TestClientCallAccepted(t *testing.T) {
	h := newHarness(t)
	call := func(d string, expiry, now uint64) projections.Result {
		return h.apply(nil, ev("", now, &eventlog.ClientCallAccepted{Digest: []byte(d), Expiry: expiry, Now: now}))
	}
	for _, bad := range []*eventlog.ClientCallAccepted{{Expiry: 10, Now: 1}, {Digest: []byte("d"), Expiry: 5, Now: 5}, {Digest: bytes.Repeat([]byte("d"), 65), Expiry: 9, Now: 1}} {
		if r := h.apply(nil, ev("", 1, bad)); !errors.Is(r.Err, projections.ErrInvalidEvent) {
			t.Fatalf("%+v: %v", bad, r.Err)
		}
	}
	if r := call("a", 100, 10); r.Err != nil {
		t.Fatal(r.Err)
	}
	before := stateHash(t, h.m)
	if r := call("a", 100, 20); !errors.Is(r.Err, projections.ErrReplayedCall) {
		t.Fatalf("replay: %v", r.Err)
	}
	if !bytes.Equal(stateHash(t, h.m), before) {
		t.Fatal("a refused replay changed the state")
	}
	for i := range 70 {
		if r := call(fmt.Sprintf("b%02d", i), 50, 30); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	// At 60 the 70 "b" records have expired: one call forgets 64 of them
	// (and "a", expiring at 100, stays), the next the other 6.
	if r := call("c", 200, 60); r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := call("b00", 200, 61); r.Err != nil {
		t.Fatalf("an expired digest again: %v", r.Err)
	}
	if r := call("a", 200, 62); !errors.Is(r.Err, projections.ErrReplayedCall) {
		t.Fatalf("a live record was forgotten: %v", r.Err)
	}
	if r := call("b69", 200, 63); r.Err != nil {
		t.Fatalf("the last expired digest again: %v", r.Err)
	}
	replayCheck(t, h)
}
