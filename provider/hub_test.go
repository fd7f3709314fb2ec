package provider_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

// TestSubmitMessage covers the hub's answers to /submitMessage
// (draft-ralston-mimi-protocol-02, Section 5.4).
func TestSubmitMessage(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("reader")
	old := providertest.Message(t, w.bobG, "from epoch 1")
	pc, req := providertest.Commit(t, w.aliceG, nil)
	if resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, req); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("commit: %v %+v", err, resp)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	w.deliver()
	w.process(w.bobG, w.inbox(w.b, w.bob))
	w.process(w.aliceG, w.inbox(w.a, w.alice)) // the echo of her commit

	// Too old: epochTooOld with the current epoch.
	resp, err := w.a.P.SubmitMessage(w.ctx, "b.example", room, old)
	if err != nil || resp.Code != mimi.SubmitEpochTooOld || resp.CurrentEpoch != 2 {
		t.Fatalf("old epoch: %v %+v", err, resp)
	}
	// From the future: notAllowed.
	future := providertest.Message(t, w.aliceG, "x")
	future.AppMessage.PrivateMessage.Epoch = 7
	if resp, err := w.a.P.SubmitMessage(w.ctx, "a.example", room, future); err != nil || resp.Code != mimi.SubmitNotAllowed {
		t.Fatalf("future epoch: %v %+v", err, resp)
	}
	// Another group.
	other := providertest.Message(t, w.aliceG, "x")
	other.AppMessage.PrivateMessage.GroupID = []byte("mimi://a.example/g/other")
	if resp, err := w.a.P.SubmitMessage(w.ctx, "a.example", room, other); err != nil || resp.Code != mimi.SubmitNotAllowed {
		t.Fatalf("other group: %v %+v", err, resp)
	}
	// Bob is a reader: b.example has no participant with canSendMessage.
	if resp, err := w.b.P.LocalSubmitMessage(w.ctx, w.bob.Client, room, providertest.Message(t, w.bobG, "x")); err != nil || resp.Code != mimi.SubmitNotAllowed {
		t.Fatalf("reader: %v %+v", err, resp)
	}
	// c.example has no participant at all.
	if resp, err := w.a.P.SubmitMessage(w.ctx, "c.example", room, providertest.Message(t, w.aliceG, "x")); err != nil || resp.Code != mimi.SubmitNotAllowed {
		t.Fatalf("no participant: %v %+v", err, resp)
	}
	// A local client that is not a member.
	alice2 := providertest.NewClient(t, "a.example", "alice", "alice2")
	alice2.Register(t, w.a)
	if resp, err := w.a.P.LocalSubmitMessage(w.ctx, alice2.Client, room, providertest.Message(t, w.aliceG, "x")); err != nil || resp.Code != mimi.SubmitNotAllowed {
		t.Fatalf("non-member: %v %+v", err, resp)
	}
	// Accepted: queued for b.example and not for the sender.
	resp, err = w.a.P.LocalSubmitMessage(w.ctx, w.alice.Client, room, providertest.Message(t, w.aliceG, "hello"))
	if err != nil || resp.Code != mimi.SubmitAccepted || resp.AcceptedTimestamp == 0 {
		t.Fatalf("accepted: %v %+v", err, resp)
	}
	if got := w.inbox(w.a, w.alice); len(got) != 0 {
		t.Fatalf("the sender got %d messages", len(got))
	}
	w.deliver()
	ps := w.process(w.bobG, w.inbox(w.b, w.bob))
	if len(ps) != 1 || string(ps[0].ApplicationData) != "hello" {
		t.Fatalf("bob: %+v", ps)
	}
	if _, err := w.a.P.SubmitMessage(w.ctx, "b.example", "mimi://a.example/r/none", old); !errors.Is(err, provider.ErrNoSuchRoom) {
		t.Fatalf("unknown room: %v", err)
	}
}

// TestNotify covers the follower side of /notify (Section 5.5): only the
// hub may notify, a duplicate body is acknowledged and processed once, and
// the follower state survives a restart.
func TestNotify(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")
	resp, err := w.a.P.LocalSubmitMessage(w.ctx, w.alice.Client, room, providertest.Message(t, w.aliceG, "one"))
	if err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatal(err, resp)
	}
	pending, err := w.a.M.FanoutPending("b.example", 0)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending %v %v", pending, err)
	}
	fm, err := provider.ResolveDelivery(w.a.M, pending[0])
	if err != nil {
		t.Fatal(err)
	}
	body, err := mimi.MarshalFanout([]mimi.FanoutMessage{*fm})
	if err != nil {
		t.Fatal(err)
	}
	// Not from the hub.
	if err := w.b.P.Notify(w.ctx, "c.example", room, body); !errors.Is(err, provider.ErrForbidden) {
		t.Fatalf("notify from c.example: %v", err)
	}
	if err := w.b.P.Notify(w.ctx, "a.example", room, []byte{1, 2}); !errors.Is(err, provider.ErrInvalid) {
		t.Fatalf("garbage: %v", err)
	}
	// Twice: accepted both times, processed once.
	if err := w.b.P.Notify(w.ctx, "a.example", room, body); err != nil {
		t.Fatal(err)
	}
	digest := w.b.Digest(t)
	if err := w.b.P.Notify(w.ctx, "a.example", room, body); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(digest, w.b.Digest(t)) {
		t.Fatal("the duplicate changed state")
	}
	if seen, _ := w.b.M.NotifySeen("a.example", eventlog.NotifyHash(room, body)); !seen {
		t.Fatal("not recorded")
	}
	got := w.inbox(w.b, w.bob)
	if len(got) != 1 {
		t.Fatalf("bob got %d messages", len(got))
	}
	ps := w.process(w.bobG, got)
	if string(ps[0].ApplicationData) != "one" {
		t.Fatal("wrong message")
	}

	// Restart b.example: the duplicate is still recognized, and Bob still
	// receives the room's messages (the follower state is rebuilt from the
	// log).
	w.b.Close()
	b2 := providertest.New(t, "b.example", providertest.Options{Dir: w.b.Dir, Remote: w.net.Remote("b.example"), Clock: w.b.Clock,
		HubPriv: w.b.HubPriv, HubSender: &w.b.HubSender})
	w.net.Add(b2.P)
	w.b = b2
	if err := w.b.P.Notify(w.ctx, "a.example", room, body); err != nil {
		t.Fatal(err)
	}
	if got := w.inbox(w.b, w.bob); len(got) != 0 {
		t.Fatalf("duplicate after restart delivered %d messages", len(got))
	}
	resp, err = w.a.P.LocalSubmitMessage(w.ctx, w.alice.Client, room, providertest.Message(t, w.aliceG, "two"))
	if err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatal(err, resp)
	}
	// Record the manual delivery of "one" at the hub, then deliver "two".
	cmd, _ := projections.EncodeCommand(&projections.Command{Ops: []projections.Op{projections.EventOp("", 1,
		&eventlog.FanoutDelivered{Destination: "b.example", UpTo: pending[0].N})}})
	if r, err := w.a.Raft.Apply(w.ctx, cmd); err != nil || r.Err != nil {
		t.Fatal(err, r.Err)
	}
	w.deliver()
	ps = w.process(w.bobG, w.inbox(w.b, w.bob))
	if len(ps) != 1 || string(ps[0].ApplicationData) != "two" {
		t.Fatalf("after restart: %+v", ps)
	}
}

// TestGroupInfo covers /groupInfo (Section 5.6).
func TestGroupInfo(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")
	ctx := w.ctx
	resp, err := w.a.P.GroupInfo(ctx, "b.example", room, providertest.GroupInfoRequest(t, w.bob))
	if err != nil || resp.Status != mimi.GroupInfoSuccess {
		t.Fatalf("success: %v %+v", err, resp)
	}
	if err := resp.Verify(); err != nil {
		t.Fatal(err)
	}
	if string(resp.RoomID) != room || !bytes.Equal(resp.HubSender.SignatureKey, w.a.HubSender.SignatureKey) || resp.GroupInfo.GroupContext.Epoch != 1 {
		t.Fatalf("response %+v", resp)
	}
	if _, err := mimi.Encode(resp); err != nil {
		t.Fatal(err)
	}
	// Through b.example for Bob's client, checked there.
	if r, err := w.b.P.LocalGroupInfo(ctx, w.bob.Client, room, providertest.GroupInfoRequest(t, w.bob)); err != nil || r.Status != mimi.GroupInfoSuccess {
		t.Fatalf("via b.example: %v %+v", err, r)
	}

	bad := providertest.GroupInfoRequest(t, w.bob)
	bad.Signature[0] ^= 1
	dave := providertest.NewClient(t, "b.example", "dave", "dave1")
	cases := []struct {
		name string
		peer string
		room string
		req  *mimi.GroupInfoRequest
		want mimi.GroupInfoCode
	}{
		{"bad signature", "b.example", room, bad, mimi.GroupInfoNotAuthorized},
		{"not a participant", "b.example", room, providertest.GroupInfoRequest(t, dave), mimi.GroupInfoNotAuthorized},
		{"another provider's client", "c.example", room, providertest.GroupInfoRequest(t, w.bob), mimi.GroupInfoNotAuthorized},
		{"no such room", "b.example", "mimi://a.example/r/none", providertest.GroupInfoRequest(t, w.bob), mimi.GroupInfoNoSuchRoom},
		{"room elsewhere", "b.example", "mimi://c.example/r/x", providertest.GroupInfoRequest(t, w.bob), mimi.GroupInfoNoSuchRoom},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := w.a.P.GroupInfo(ctx, tc.peer, tc.room, tc.req)
			if err != nil || r.Status != tc.want {
				t.Fatalf("got %v %+v, want status %d", err, r, tc.want)
			}
			if _, err := mimi.Encode(r); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestCreateRoom checks the room creation rules (Sections 3.1 and 6.4).
func TestCreateRoom(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	rm := providertest.Room(room, map[string]string{w.alice.User: "admin"})
	good := providertest.CreateGroup(t, w.alice, w.a.HubSender, rm)
	gi, _ := good.GroupInfo(false)
	giTree, _ := good.GroupInfo(true)

	_, otherHub := providertest.HubKey(t, "a.example")
	noHub := providertest.CreateGroup(t, w.alice, otherHub, rm)
	noHubGI, _ := noHub.GroupInfo(false)
	notParticipant := providertest.CreateGroup(t, w.alice, w.a.HubSender, providertest.Room(room, map[string]string{"mimi://a.example/u/zed": "admin"}))
	npGI, _ := notParticipant.GroupInfo(false)
	otherRoom := providertest.CreateGroup(t, w.alice, w.a.HubSender, providertest.Room("mimi://a.example/r/other", map[string]string{w.alice.User: "admin"}))
	orGI, _ := otherRoom.GroupInfo(false)

	cases := []struct {
		name   string
		client string
		room   string
		gi     *wire.GroupInfo
		tree   wire.RatchetTree
		want   error
	}{
		{"hub not an external sender", w.alice.Client, room, noHubGI.GroupInfo, noHub.RatchetTree(), provider.ErrInvalid},
		{"creator not a participant", w.alice.Client, room, npGI.GroupInfo, notParticipant.RatchetTree(), provider.ErrInvalid},
		{"policy for another room", w.alice.Client, room, orGI.GroupInfo, otherRoom.RatchetTree(), provider.ErrInvalid},
		{"room of another provider", w.alice.Client, "mimi://b.example/r/x", gi.GroupInfo, good.RatchetTree(), provider.ErrInvalid},
		{"GroupInfo with ratchet_tree", w.alice.Client, room, giTree.GroupInfo, good.RatchetTree(), provider.ErrInvalid},
		{"unknown creator", "mimi://a.example/d/nobody", room, gi.GroupInfo, good.RatchetTree(), provider.ErrUnknownClient},
		{"ok", w.alice.Client, room, gi.GroupInfo, good.RatchetTree(), nil},
		{"exists", w.alice.Client, room, gi.GroupInfo, good.RatchetTree(), provider.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := w.a.P.CreateRoom(ctx, tc.client, tc.room, tc.gi, tc.tree)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	rec, err := w.a.M.Room(room)
	if err != nil || rec.Hub != "a.example" || len(rec.Members) != 1 || rec.Members[0] != w.alice.Client {
		t.Fatalf("room %+v %v", rec, err)
	}
}

// TestHubRestart: the hub's view of the group is rebuilt from the
// projections (GroupInfo, tree, cached proposals) after a restart.
func TestHubRestart(t *testing.T) {
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
	w.deliver()
	w.process(w.aliceG, w.inbox(w.a, w.alice))
	w.a.Close()
	a2 := providertest.New(t, "a.example", providertest.Options{Dir: w.a.Dir, Remote: w.net.Remote("a.example"), Clock: w.a.Clock,
		HubPriv: w.a.HubPriv, HubSender: &w.a.HubSender})
	w.net.Add(a2.P)
	w.a = a2
	pc, req := providertest.Commit(t, w.aliceG, nil, sp.Message.PublicMessage)
	if resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, req); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("commit after restart: %v %+v", err, resp)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	w.deliver()
	w.process(w.bobG, w.inbox(w.b, w.bob))
	if w.bobG.Epoch() != 2 {
		t.Fatalf("bob at epoch %d", w.bobG.Epoch())
	}
	rep, err := w.a.M.Audit(t.TempDir() + "/audit")
	if err != nil || !rep.OK() {
		t.Fatalf("audit: %v %+v", err, rep)
	}
}

// TestNotifyRebatched: a follower takes each FanoutMessage once however
// the hub batches it (Section 5.5): after a body whose answer was lost, a
// restarted hub (or a new leader) re-sends the backlog in a different
// body; only the messages not seen before are delivered, also across a
// restart of the follower, and a message repeated inside one body counts
// once. The room is bound to its group: a message of the group under
// another room, or of another group under the room, is invalid and
// changes nothing.
func TestNotifyRebatched(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")
	var fms []mimi.FanoutMessage
	for i := range 4 {
		resp, err := w.a.P.LocalSubmitMessage(w.ctx, w.alice.Client, room, providertest.Message(t, w.aliceG, fmt.Sprint("m", i)))
		if err != nil || resp.Code != mimi.SubmitAccepted {
			t.Fatal(err, resp)
		}
	}
	pending, err := w.a.M.FanoutPending("b.example", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range pending {
		fm, err := provider.ResolveDelivery(w.a.M, d)
		if err != nil {
			t.Fatal(err)
		}
		if fm.Message.WireFormat == wire.WireFormatPrivateMessage {
			fms = append(fms, *fm)
		}
	}
	if len(fms) != 4 {
		t.Fatalf("%d application messages queued for b.example", len(fms))
	}
	body := func(fs ...mimi.FanoutMessage) []byte {
		b, err := mimi.MarshalFanout(fs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	received := func(want ...string) {
		t.Helper()
		var got []string
		for _, p := range w.process(w.bobG, w.inbox(w.b, w.bob)) {
			got = append(got, string(p.ApplicationData))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("bob received %q, want %q", got, want)
		}
	}
	notify := func(room string, b []byte) error { return w.b.P.Notify(w.ctx, "a.example", room, b) }
	unchanged := func(name string, f func() error, wantErr error) {
		t.Helper()
		before := w.b.Digest(t)
		if err := f(); !errors.Is(err, wantErr) {
			t.Fatalf("%s: %v, want %v", name, err, wantErr)
		}
		if !bytes.Equal(before, w.b.Digest(t)) {
			t.Fatalf("%s changed state", name)
		}
	}
	if err := notify(room, body(fms[0], fms[1])); err != nil {
		t.Fatal(err)
	}
	received("m0", "m1")
	// The backlog re-batched: only m2 is new.
	if err := notify(room, body(fms[0], fms[1], fms[2])); err != nil {
		t.Fatal(err)
	}
	received("m2")
	unchanged("a sub-range of what was taken", func() error { return notify(room, body(fms[1], fms[2])) }, nil)
	// m3 twice in one body: once.
	if err := notify(room, body(fms[3], fms[3])); err != nil {
		t.Fatal(err)
	}
	received("m3")

	// One room, one group.
	const other = "mimi://a.example/r/other"
	unchanged("the room's messages under another room", func() error { return notify(other, body(fms[0])) }, provider.ErrInvalid)
	foreign := fms[0]
	pm := *foreign.Message.PrivateMessage
	pm.GroupID = []byte("another group")
	foreign.Message.PrivateMessage = &pm
	unchanged("another group under the room", func() error { return notify(room, body(foreign)) }, provider.ErrInvalid)
	unchanged("two groups in one body", func() error { return notify(other, body(foreign, fms[0])) }, provider.ErrInvalid)

	// After a restart of b.example, from the log.
	w.b.Close()
	b2 := providertest.New(t, "b.example", providertest.Options{Dir: w.b.Dir, Remote: w.net.Remote("b.example"), Clock: w.b.Clock,
		HubPriv: w.b.HubPriv, HubSender: &w.b.HubSender})
	w.net.Add(b2.P)
	w.b = b2
	unchanged("everything again after a restart", func() error { return notify(room, body(fms...)) }, nil)
	unchanged("another group after a restart", func() error { return notify(room, body(foreign)) }, provider.ErrInvalid)
	received()
}

// hookRaft runs before, once, ahead of the next group commit of
// application messages (a command with a RoomProposalsAre condition).
type hookRaft struct {
	provider.Raft
	before atomic.Pointer[func()]
}

func (h *hookRaft) Apply(ctx context.Context, cmd []byte) (projections.Result, error) {
	if c, err := projections.DecodeCommand(cmd); err == nil && len(c.Conditions) > 0 && c.Conditions[0].Kind == projections.CondRoomProposalsAre {
		if f := h.before.Swap(nil); f != nil {
			(*f)()
		}
	}
	return h.Raft.Apply(ctx, cmd)
}

// TestSubmitRacingLeave: a message decided on one node of the hub's
// cluster while another node accepts a participant's leave proposals is
// decided again after them (Section 6.1: the leave takes effect when
// accepted), so the leaving user's clients do not receive it (Section 5.3).
// The second node is a second Provider over the same Raft node and state.
func TestSubmitRacingLeave(t *testing.T) {
	h := &hookRaft{}
	w := newWorldHub(t, providertest.Options{WrapRaft: func(r provider.Raft) provider.Raft { h.Raft = r; return h }})
	w.createRoom()
	dave := providertest.NewClient(t, "a.example", "dave", "dave1")
	dave.Register(t, w.a)
	dave.Upload(t, w.a, 1)
	if resp := w.addUser(w.alice, w.aliceG, w.a, dave, "member"); resp.Code != mimi.UpdateSuccess {
		t.Fatalf("alice adds dave: %d %s", resp.Code, resp.ErrorDescription)
	}
	daveG := dave.Join(t, w.welcomeFor(w.inbox(w.a, dave)))
	w.process(w.aliceG, w.inbox(w.a, w.alice))

	other, err := provider.New(provider.Config{
		Domain: "a.example", Raft: w.a.Raft, Machine: w.a.M,
		HubSignaturePriv: w.a.HubPriv, HubSender: w.a.HubSender, Clock: w.a.Clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	sr, err := daveG.ProposeSelfRemove(nil)
	if err != nil {
		t.Fatal(err)
	}
	as, err := daveG.ProposeAppSync((&mimi.ChangeSet{Remove: []string{dave.User}}).AppSync(), nil)
	if err != nil {
		t.Fatal(err)
	}
	leave := func() {
		resp, err := other.LocalUpdate(w.ctx, dave.Client, room, providertest.Proposals(as.Message, sr.Message))
		if err != nil || resp.Code != mimi.UpdateSuccess {
			t.Errorf("dave's leave through the other node: %v %+v", err, resp)
		}
	}
	h.before.Store(&leave)
	resp, err := w.a.P.LocalSubmitMessage(w.ctx, w.alice.Client, room, providertest.Message(t, w.aliceG, "after the leave"))
	if err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatalf("alice's message: %v %+v", err, resp)
	}
	if h.before.Load() != nil {
		t.Fatal("the leave did not run between the decision and the command")
	}
	got := w.inbox(w.a, dave)
	for _, fm := range got {
		if fm.Message.WireFormat == wire.WireFormatPrivateMessage {
			t.Fatal("dave received an application message accepted after his leave proposals")
		}
	}
	if len(got) != 2 {
		t.Fatalf("dave received %d messages, want his 2 proposals", len(got))
	}
}
