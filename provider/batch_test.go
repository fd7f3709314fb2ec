package provider_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

// gateRaft wraps the hub's Raft node: it records every command and runs a
// hook before forwarding one, which may block it or answer it instead.
type gateRaft struct {
	provider.Raft
	mu   sync.Mutex
	cmds []*projections.Command
	hook func(cmd *projections.Command) (projections.Result, bool)
}

func (g *gateRaft) Apply(ctx context.Context, b []byte) (projections.Result, error) {
	cmd, err := projections.DecodeCommand(b)
	if err != nil {
		return projections.Result{}, err
	}
	g.mu.Lock()
	g.cmds = append(g.cmds, cmd)
	h := g.hook
	g.mu.Unlock()
	if h != nil {
		if res, done := h(cmd); done {
			return res, nil
		}
	}
	return g.Raft.Apply(ctx, b)
}

func (g *gateRaft) setHook(h func(cmd *projections.Command) (projections.Result, bool)) {
	g.mu.Lock()
	g.hook = h
	g.mu.Unlock()
}

// messageCounts returns, for every command carrying application messages,
// how many it carries.
func (g *gateRaft) messageCounts() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []int
	for _, c := range g.cmds {
		if n := messagesIn(c); n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func messagesIn(c *projections.Command) int {
	n := 0
	for _, op := range c.Ops {
		if op.Event != nil && op.Event.Type() == eventlog.TypeApplicationMessageAccepted {
			n++
		}
	}
	return n
}

// holdFirstMessage makes the first command carrying application messages
// wait until release is closed; held is closed when it waits, and the
// number of messages it carries is sent on sizes.
func (g *gateRaft) holdFirstMessage() (held chan int, release chan struct{}) {
	held, release = make(chan int, 1), make(chan struct{})
	var once sync.Once
	g.setHook(func(cmd *projections.Command) (projections.Result, bool) {
		if n := messagesIn(cmd); n > 0 {
			once.Do(func() {
				held <- n
				<-release
			})
		}
		return projections.Result{}, false
	})
	return held, release
}

// newGatedWorld is a world whose hub writes through a gateRaft, with the
// room created and bob added as a member (both providers may send).
func newGatedWorld(t *testing.T) (*world, *gateRaft) {
	t.Helper()
	g := &gateRaft{}
	w := newWorldHub(t, providertest.Options{WrapRaft: func(r provider.Raft) provider.Raft {
		g.Raft = r
		return g
	}})
	w.createRoom()
	w.aliceAddsBob("member")
	return w, g
}

// waitQueued waits until n messages wait in the room's queue at the hub.
func waitQueued(t *testing.T, p *provider.Provider, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for p.QueuedSubmitsForTest(room) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages queued, want %d", p.QueuedSubmitsForTest(room), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// submission is one message sent to the hub and its answer.
type submission struct {
	name string
	send func(ctx context.Context) (*mimi.SubmitMessageResponse, error)
	msg  []byte // the encoded MLSMessage
	resp *mimi.SubmitMessageResponse
	err  error
}

func encodedMsg(t testing.TB, req *mimi.SubmitMessageRequest) []byte {
	t.Helper()
	b, err := codec.Marshal(&req.AppMessage)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fromPeer submits req as peer (POST /submitMessage, Section 5.4).
func (w *world) fromPeer(name, peer string, req *mimi.SubmitMessageRequest) *submission {
	return &submission{name: name, msg: encodedMsg(w.t, req), send: func(ctx context.Context) (*mimi.SubmitMessageResponse, error) {
		return w.a.P.SubmitMessage(ctx, peer, room, req)
	}}
}

// fromAlice submits req as alice's local client (Section 3.4).
func (w *world) fromAlice(name string, req *mimi.SubmitMessageRequest) *submission {
	return &submission{name: name, msg: encodedMsg(w.t, req), send: func(ctx context.Context) (*mimi.SubmitMessageResponse, error) {
		return w.a.P.LocalSubmitMessage(ctx, w.alice.Client, room, req)
	}}
}

// submitAsync starts a submission and returns a function waiting for its
// answer.
func submitAsync(w *world, s *submission) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.resp, s.err = s.send(w.ctx)
	}()
	return func() { <-done }
}

// queueInOrder starts the submissions one after the other, each once the
// previous one is in the hub's queue (which holds base messages before),
// so that they wait there in this order. It returns a function waiting
// for every answer.
func queueInOrder(t *testing.T, w *world, base int, subs ...*submission) (wait func()) {
	t.Helper()
	var waits []func()
	for i, s := range subs {
		waits = append(waits, submitAsync(w, s))
		waitQueued(t, w.a.P, base+i+1)
	}
	return func() {
		for _, f := range waits {
			f()
		}
	}
}

// roomMessages returns the encoded messages of the room's
// ApplicationMessageAccepted events in log order, with their timestamps.
func roomMessages(t testing.TB, m *projections.Machine) (msgs [][]byte, ts []uint64) {
	t.Helper()
	evs, err := m.RoomEvents(room, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if b, ok := ev.Body.(*eventlog.ApplicationMessageAccepted); ok {
			msgs = append(msgs, b.Message)
			ts = append(ts, ev.Timestamp)
		}
	}
	return msgs, ts
}

func accepted(s *submission) bool {
	return s.err == nil && s.resp != nil && s.resp.Code == mimi.SubmitAccepted && s.resp.AcceptedTimestamp != 0
}

// TestSubmitGroupCommit: concurrent submissions for one room from several
// goroutines (a remote provider's and a local client's) are all accepted,
// each answered with its own acceptance, in fewer Raft commands than
// messages: those queued while a command is applied go into the next one
// together. Every sender's messages are in the log in the order it sent
// them, every message once, and each is queued for fanout in log order.
func TestSubmitGroupCommit(t *testing.T) {
	w, g := newGatedWorld(t)
	held, release := g.holdFirstMessage()

	const senders, perSender = 4, 6
	subs := make([][]*submission, senders)
	for s := range senders {
		for i := range perSender {
			name := fmt.Sprintf("sender %d message %d", s, i)
			if s == 0 {
				subs[s] = append(subs[s], w.fromAlice(name, providertest.Message(t, w.aliceG, name)))
			} else {
				subs[s] = append(subs[s], w.fromPeer(name, "b.example", providertest.Message(t, w.bobG, name)))
			}
		}
	}
	var wg sync.WaitGroup
	run := func(s int) {
		defer wg.Done()
		for _, x := range subs[s] {
			x.resp, x.err = x.send(w.ctx)
		}
	}
	// Sender 0's first message is held in its Raft apply; the other
	// senders' first messages queue up behind it.
	wg.Add(1)
	go run(0)
	if n := <-held; n != 1 {
		t.Fatalf("the first command carries %d messages, want 1", n)
	}
	for s := 1; s < senders; s++ {
		wg.Add(1)
		go run(s)
	}
	waitQueued(t, w.a.P, senders-1)
	close(release)
	wg.Wait()

	byMsg := map[string]*submission{}
	for s := range senders {
		for _, x := range subs[s] {
			if !accepted(x) {
				t.Fatalf("%s: %v %+v", x.name, x.err, x.resp)
			}
			byMsg[string(x.msg)] = x
		}
	}
	// The three queued behind the held command go into the next one
	// together; sender 0's second message, sent when its first was
	// answered, may join them if it is queued before the batch is taken.
	counts := g.messageCounts()
	if len(counts) < 2 || counts[0] != 1 || counts[1] < senders-1 || counts[1] > senders {
		t.Fatalf("messages per command %v, want 1 then %d (or %d)", counts, senders-1, senders)
	}
	if len(counts) >= senders*perSender {
		t.Fatalf("%d commands for %d messages: no group commit", len(counts), senders*perSender)
	}
	msgs, ts := roomMessages(t, w.a.M)
	if len(msgs) != senders*perSender {
		t.Fatalf("%d messages in the log, want %d", len(msgs), senders*perSender)
	}
	next := make(map[int]int)
	seen := map[string]bool{}
	for i, m := range msgs {
		x := byMsg[string(m)]
		if x == nil || seen[string(m)] {
			t.Fatalf("log message %d unknown or repeated", i)
		}
		seen[string(m)] = true
		var s, k int
		fmt.Sscanf(x.name, "sender %d message %d", &s, &k)
		if k != next[s] {
			t.Fatalf("log message %d is %q, want sender %d message %d", i, x.name, s, next[s])
		}
		next[s]++
		if x.resp.AcceptedTimestamp != ts[i] {
			t.Fatalf("%s: answered timestamp %d, event timestamp %d", x.name, x.resp.AcceptedTimestamp, ts[i])
		}
	}
	// Fanout to b.example in log order; nothing for alice (the only local
	// member sent her own messages and the others came from b.example).
	pend, err := w.a.M.FanoutPending("b.example", 0)
	if err != nil {
		t.Fatal(err)
	}
	var fanned [][]byte
	for _, d := range pend {
		b, err := w.a.M.Payload(d)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := byMsg[string(b)]; ok {
			fanned = append(fanned, b)
		}
	}
	if len(fanned) != len(msgs) {
		t.Fatalf("%d messages queued for b.example, want %d", len(fanned), len(msgs))
	}
	for i := range fanned {
		if !bytes.Equal(fanned[i], msgs[i]) {
			t.Fatalf("fanout entry %d out of log order", i)
		}
	}
	aliceInbox := 0
	for _, m := range w.inbox(w.a, w.alice) {
		if m.Message.WireFormat == wire.WireFormatPrivateMessage {
			aliceInbox++
		}
	}
	if aliceInbox != (senders-1)*perSender {
		t.Fatalf("alice's inbox has %d application messages, want %d (the others', not her own)", aliceInbox, (senders-1)*perSender)
	}
}

// TestSubmitGroupCommitRefusals: refused messages in a batch get their own
// answers and do not affect the others, which are accepted in one command;
// and a command refused as a whole for an unexpected reason is retried
// message by message.
func TestSubmitGroupCommitRefusals(t *testing.T) {
	w, g := newGatedWorld(t)
	// An old message (epoch 1), then a commit to epoch 2 that bob follows.
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

	held, release := g.holdFirstMessage()
	wrongGroup := providertest.Message(t, w.bobG, "other group")
	wrongGroup.AppMessage.PrivateMessage.GroupID = []byte("mimi://a.example/g/other")
	future := providertest.Message(t, w.bobG, "future")
	future.AppMessage.PrivateMessage.Epoch = 9
	handshake := providertest.Message(t, w.bobG, "not application content")
	handshake.AppMessage.PrivateMessage.ContentType = wire.ContentProposal
	alice2 := providertest.NewClient(t, "a.example", "alice", "alice2")
	alice2.Register(t, w.a)
	nonMemberReq := providertest.Message(t, w.aliceG, "non-member")
	nonMember := &submission{name: "non-member", msg: encodedMsg(t, nonMemberReq)}
	nonMember.send = func(ctx context.Context) (*mimi.SubmitMessageResponse, error) {
		return w.a.P.LocalSubmitMessage(ctx, alice2.Client, room, nonMemberReq)
	}
	subs := []*submission{
		w.fromPeer("first", "b.example", providertest.Message(t, w.bobG, "first")),
		w.fromPeer("good 1", "b.example", providertest.Message(t, w.bobG, "good 1")),
		w.fromPeer("wrong group", "b.example", wrongGroup),
		w.fromPeer("old epoch", "b.example", old),
		w.fromAlice("good 2", providertest.Message(t, w.aliceG, "good 2")),
		w.fromPeer("future epoch", "b.example", future),
		w.fromPeer("no participant at c", "c.example", providertest.Message(t, w.bobG, "c")),
		w.fromPeer("handshake content", "b.example", handshake),
		nonMember,
		w.fromPeer("good 3", "b.example", providertest.Message(t, w.bobG, "good 3")),
	}
	wait := submitAsync(w, subs[0])
	<-held
	wait2 := queueInOrder(t, w, 0, subs[1:]...)
	close(release)
	wait()
	wait2()
	want := map[string]func(*submission) bool{
		"wrong group":         func(s *submission) bool { return s.resp.Code == mimi.SubmitNotAllowed },
		"old epoch":           func(s *submission) bool { return s.resp.Code == mimi.SubmitEpochTooOld && s.resp.CurrentEpoch == 2 },
		"future epoch":        func(s *submission) bool { return s.resp.Code == mimi.SubmitNotAllowed },
		"no participant at c": func(s *submission) bool { return s.resp.Code == mimi.SubmitNotAllowed },
		"handshake content":   func(s *submission) bool { return s.resp.Code == mimi.SubmitNotAllowed },
		"non-member":          func(s *submission) bool { return s.resp.Code == mimi.SubmitNotAllowed },
	}
	for _, s := range subs {
		if check, refused := want[s.name]; refused {
			if s.err != nil || s.resp == nil || !check(s) {
				t.Errorf("%s: %v %+v", s.name, s.err, s.resp)
			}
		} else if !accepted(s) {
			t.Errorf("%s: %v %+v", s.name, s.err, s.resp)
		}
	}
	if counts := g.messageCounts(); len(counts) != 2 || counts[0] != 1 || counts[1] != 3 {
		t.Fatalf("messages per command %v, want [1 3]", counts)
	}
	msgs, _ := roomMessages(t, w.a.M)
	var names []string
	for _, m := range msgs {
		for _, s := range subs {
			if bytes.Equal(m, s.msg) {
				names = append(names, s.name)
			}
		}
	}
	if fmt.Sprint(names) != fmt.Sprint([]string{"first", "good 1", "good 2", "good 3"}) {
		t.Fatalf("accepted in the log: %q", names)
	}

	// A batch refused as a whole (as if by an invalid event) is retried
	// message by message: each is then accepted alone.
	held, release = g.holdFirstMessage()
	refusedOnce := false
	inner := g.hook
	g.setHook(func(cmd *projections.Command) (projections.Result, bool) {
		if messagesIn(cmd) > 1 && !refusedOnce {
			refusedOnce = true
			return projections.Result{Err: fmt.Errorf("%w: refused for the test", projections.ErrInvalidEvent)}, true
		}
		return inner(cmd)
	})
	subs = []*submission{
		w.fromPeer("first", "b.example", providertest.Message(t, w.bobG, "again first")),
		w.fromPeer("a", "b.example", providertest.Message(t, w.bobG, "a")),
		w.fromPeer("b", "b.example", providertest.Message(t, w.bobG, "b")),
	}
	wait = submitAsync(w, subs[0])
	<-held
	wait2 = queueInOrder(t, w, 0, subs[1:]...)
	close(release)
	wait()
	wait2()
	for _, s := range subs {
		if !accepted(s) {
			t.Fatalf("%s: %v %+v", s.name, s.err, s.resp)
		}
	}
	if counts := g.messageCounts(); fmt.Sprint(counts[2:]) != "[1 2 1 1]" {
		t.Fatalf("messages per command %v, want ... 1 2 1 1", counts)
	}
}

// TestSubmitGroupCommitEpochChange: a batch whose epoch changed under it
// (another node accepted a commit) is answered epochTooOld with the new
// epoch, message by message; and messages queued before an update of the
// room are decided before it, in their epoch, while those after it get
// epochTooOld.
func TestSubmitGroupCommitEpochChange(t *testing.T) {
	w, g := newGatedWorld(t)
	rec, err := w.a.M.Room(room)
	if err != nil {
		t.Fatal(err)
	}
	epoch := rec.Epoch

	// A commit accepted elsewhere while the batch waits: apply its event
	// straight to the replicated log just before the batch's command.
	pc, req := providertest.Commit(t, w.aliceG, nil)
	commitMsg, err := codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: &req.ProposalOrCommit})
	if err != nil {
		t.Fatal(err)
	}
	gi, err := codec.Marshal(req.GroupInfo)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := codec.Marshal(&req.RatchetTreeOption.Tree)
	if err != nil {
		t.Fatal(err)
	}
	raceCmd, err := projections.EncodeCommand(&projections.Command{Ops: []projections.Op{projections.EventOp(room, 1, &eventlog.CommitAccepted{
		Epoch: epoch + 1, Commit: commitMsg, GroupInfo: gi, RatchetTree: tree, Members: rec.Members, Sender: w.alice.Client,
	})}})
	if err != nil {
		t.Fatal(err)
	}
	held, release := g.holdFirstMessage()
	inner := g.hook
	raced := false
	g.setHook(func(cmd *projections.Command) (projections.Result, bool) {
		if messagesIn(cmd) > 1 && !raced {
			raced = true
			if res, err := w.a.Raft.Apply(w.ctx, raceCmd); err != nil || res.Err != nil {
				t.Errorf("racing commit: %v %v", err, res.Err)
			}
		}
		return inner(cmd)
	})
	subs := []*submission{
		w.fromPeer("first", "b.example", providertest.Message(t, w.bobG, "first")),
		w.fromPeer("second", "b.example", providertest.Message(t, w.bobG, "second")),
		w.fromAlice("third", providertest.Message(t, w.aliceG, "third")),
		w.fromPeer("fourth", "b.example", providertest.Message(t, w.bobG, "fourth")),
	}
	wait := submitAsync(w, subs[0])
	<-held
	wait2 := queueInOrder(t, w, 0, subs[1:]...)
	close(release)
	wait()
	wait2()
	if !accepted(subs[0]) {
		t.Fatalf("first: %v %+v", subs[0].err, subs[0].resp)
	}
	for _, s := range subs[1:] {
		if s.err != nil || s.resp.Code != mimi.SubmitEpochTooOld || s.resp.CurrentEpoch != epoch+1 {
			t.Fatalf("%s: %v %+v, want epochTooOld %d", s.name, s.err, s.resp, epoch+1)
		}
	}
	// Both groups follow the commit; the hub rebuilt its view from the
	// stored GroupInfo and tree and accepts the new epoch's messages.
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	w.process(w.bobG, []mimi.FanoutMessage{{Message: wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: &req.ProposalOrCommit}}})
	epoch++

	// Messages queued before an update are decided before it, also when
	// the update, not the room's drainer, gets the room's lock first. The
	// first two message commands are held: the update starts waiting for
	// the lock during the first, m2 is queued before it, m3 during the
	// second. An update that waited more than 1 ms gets the lock on the
	// next unlock (sync.Mutex starvation mode), at the latest when the
	// second is released; whenever it does, messages are still queued.
	g.setHook(nil)
	var (
		heldN  = make(chan int, 2)
		rel    = [2]chan struct{}{make(chan struct{}), make(chan struct{})}
		holdMu sync.Mutex
		holds  int
	)
	g.setHook(func(cmd *projections.Command) (projections.Result, bool) {
		if n := messagesIn(cmd); n > 0 {
			holdMu.Lock()
			k := holds
			holds++
			holdMu.Unlock()
			if k < 2 {
				heldN <- n
				<-rel[k]
			}
		}
		return projections.Result{}, false
	})
	subs = []*submission{
		w.fromPeer("m1", "b.example", providertest.Message(t, w.bobG, "m1")),
		w.fromPeer("m2", "b.example", providertest.Message(t, w.bobG, "m2")),
		w.fromAlice("m3", providertest.Message(t, w.aliceG, "m3")),
	}
	late := providertest.Message(t, w.bobG, "late")
	wait = submitAsync(w, subs[0])
	<-heldN
	wait2 = queueInOrder(t, w, 0, subs[1])
	pc, req = providertest.Commit(t, w.aliceG, nil)
	updated := make(chan error, 1)
	go func() {
		resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, req)
		if err == nil && resp.Code != mimi.UpdateSuccess {
			err = fmt.Errorf("update: %+v", resp)
		}
		updated <- err
	}()
	// Let the update wait for the room's lock behind the held command.
	time.Sleep(20 * time.Millisecond)
	close(rel[0])
	// Either the drainer took m2 (and is held again), or the update got
	// the lock and decided m2 itself before its commit.
	var wait3 func()
	select {
	case <-heldN:
		wait3 = queueInOrder(t, w, 0, subs[2])
		time.Sleep(5 * time.Millisecond)
	case err := <-updated:
		updated <- err
		wait3 = submitAsync(w, subs[2])
	}
	close(rel[1])
	wait()
	wait2()
	wait3()
	if err := <-updated; err != nil {
		t.Fatal(err)
	}
	// m1 and m2 were queued before the update and are decided before its
	// commit. m3 was queued while a message command was held; when that
	// command was the update's own (deciding m2 under the room's lock),
	// the update commits right after it and m3, of the old epoch, is
	// refused: both outcomes are the hub's ordering at work.
	want := []string{"m1", "m2", "m3", fmt.Sprint("commit ", epoch+1)}
	for _, s := range subs {
		if s == subs[2] && !accepted(s) && s.err == nil && s.resp.Code == mimi.SubmitEpochTooOld && s.resp.CurrentEpoch == epoch+1 {
			want = slices.Delete(want, 2, 3)
			continue
		}
		if !accepted(s) {
			t.Fatalf("%s: %v %+v", s.name, s.err, s.resp)
		}
	}
	evs, err := w.a.M.RoomEvents(room, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, ev := range evs {
		switch b := ev.Body.(type) {
		case *eventlog.CommitAccepted:
			order = append(order, fmt.Sprint("commit ", b.Epoch))
		case *eventlog.ApplicationMessageAccepted:
			for _, s := range subs {
				if bytes.Equal(b.Message, s.msg) {
					order = append(order, s.name)
				}
			}
		}
	}
	if got := fmt.Sprint(order[len(order)-len(want):]); got != fmt.Sprint(want) {
		t.Fatalf("room log ends %s, want %s", got, want)
	}
	resp, err := w.a.P.SubmitMessage(w.ctx, "b.example", room, late)
	if err != nil || resp.Code != mimi.SubmitEpochTooOld || resp.CurrentEpoch != epoch+1 {
		t.Fatalf("message of the old epoch after the update: %v %+v", err, resp)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	if resp, err := w.a.P.LocalSubmitMessage(w.ctx, w.alice.Client, room, providertest.Message(t, w.aliceG, "new epoch")); err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatalf("new epoch: %v %+v", err, resp)
	}
}

// TestSubmitAbandoned: a submitter that stops waiting while its message is
// queued gets an error, and the message is not accepted; the others are.
func TestSubmitAbandoned(t *testing.T) {
	w, g := newGatedWorld(t)
	held, release := g.holdFirstMessage()
	first := w.fromPeer("first", "b.example", providertest.Message(t, w.bobG, "first"))
	wait := submitAsync(w, first)
	<-held
	ctx, cancel := context.WithCancel(w.ctx)
	gone := providertest.Message(t, w.bobG, "gone")
	errc := make(chan error, 1)
	go func() {
		_, err := w.a.P.SubmitMessage(ctx, "b.example", room, gone)
		errc <- err
	}()
	waitQueued(t, w.a.P, 1)
	cancel()
	if err := <-errc; !errors.Is(err, provider.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned submit: %v", err)
	}
	stay := w.fromPeer("stays", "b.example", providertest.Message(t, w.bobG, "stays"))
	wait2 := queueInOrder(t, w, 1, stay)
	close(release)
	wait()
	wait2()
	if !accepted(first) || !accepted(stay) {
		t.Fatalf("first %v %+v, stays %v %+v", first.err, first.resp, stay.err, stay.resp)
	}
	msgs, _ := roomMessages(t, w.a.M)
	for _, m := range msgs {
		if bytes.Equal(m, encodedMsg(t, gone)) {
			t.Fatal("the abandoned message was accepted")
		}
	}
}

// TestKickDestinations: the provider wakes the fanout for exactly the
// destinations a command queued messages for, and not at all when it
// queued none.
func TestKickDestinations(t *testing.T) {
	var mu sync.Mutex
	var kicks [][]string
	w := newWorldHub(t, providertest.Options{KickDestinations: func(d []string) {
		mu.Lock()
		kicks = append(kicks, append([]string(nil), d...))
		mu.Unlock()
	}})
	took := func() [][]string {
		mu.Lock()
		defer mu.Unlock()
		k := kicks
		kicks = nil
		return k
	}
	w.createRoom()
	// Only local participants: nothing for other providers.
	if resp, err := w.a.P.LocalSubmitMessage(w.ctx, w.alice.Client, room, providertest.Message(t, w.aliceG, "alone")); err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatal(err, resp)
	}
	if k := took(); len(k) != 0 {
		t.Fatalf("kicks without fanout: %v", k)
	}
	w.aliceAddsBob("member")
	if k := took(); fmt.Sprint(k) != "[[b.example]]" {
		t.Fatalf("kicks for the commit adding bob: %v", k)
	}
	if resp, err := w.a.P.LocalSubmitMessage(w.ctx, w.alice.Client, room, providertest.Message(t, w.aliceG, "hi")); err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatal(err, resp)
	}
	if k := took(); fmt.Sprint(k) != "[[b.example]]" {
		t.Fatalf("kicks for a message: %v", k)
	}
}

// TestFollowerRelayDuringNotify: while a /notify for the room is being
// replicated at the follower (holding the room's follower lock), its
// members' messages are relayed to the hub without waiting for it; a
// non-member's are still refused.
func TestFollowerRelayDuringNotify(t *testing.T) {
	g := &gateRaft{}
	w := newWorldOpts(t, providertest.Options{}, providertest.Options{WrapRaft: func(r provider.Raft) provider.Raft {
		g.Raft = r
		return g
	}})
	w.createRoom()
	w.aliceAddsBob("member")
	bob2 := providertest.NewClient(t, "b.example", "bob", "bob2")
	bob2.Register(t, w.b)

	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	g.setHook(func(cmd *projections.Command) (projections.Result, bool) {
		for _, op := range cmd.Ops {
			if op.Event != nil && op.Event.Type() == eventlog.TypeNotifyAccepted {
				once.Do(func() {
					close(held)
					<-release
				})
			}
		}
		return projections.Result{}, false
	})
	if resp, err := w.a.P.LocalSubmitMessage(w.ctx, w.alice.Client, room, providertest.Message(t, w.aliceG, "to bob")); err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatal(err, resp)
	}
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		w.deliver()
	}()
	<-held
	type answer struct {
		resp *mimi.SubmitMessageResponse
		err  error
	}
	answers := make(chan answer, 1)
	go func() {
		resp, err := w.b.P.LocalSubmitMessage(w.ctx, w.bob.Client, room, providertest.Message(t, w.bobG, "meanwhile"))
		answers <- answer{resp, err}
	}()
	select {
	case a := <-answers:
		if a.err != nil || a.resp.Code != mimi.SubmitAccepted {
			t.Errorf("member's message during a notify: %v %+v", a.err, a.resp)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the member's message waited for the notify being replicated")
	}
	// A client that may not relay waits and is checked against the
	// current state.
	go func() {
		resp, err := w.b.P.LocalSubmitMessage(w.ctx, bob2.Client, room, providertest.Message(t, w.bobG, "not joined"))
		answers <- answer{resp, err}
	}()
	close(release)
	<-delivered
	if a := <-answers; a.err != nil || a.resp.Code != mimi.SubmitNotAllowed {
		t.Fatalf("non-member's message: %v %+v", a.err, a.resp)
	}
	got := w.process(w.bobG, w.inbox(w.b, w.bob))
	if len(got) != 1 || string(got[0].ApplicationData) != "to bob" {
		t.Fatalf("bob got %+v", got)
	}
}

// TestSubmitResubmission: the same SubmitMessageRequest submitted again —
// after its answer was lost, or twice in one group commit — is accepted
// once: one event, one fanout entry, and every copy answered with the
// first acceptance's timestamp (draft-ralston-mimi-protocol-02, Section
// 5.4). After a commit the old bytes are epochTooOld, not accepted again.
func TestSubmitResubmission(t *testing.T) {
	w, g := newGatedWorld(t)
	req := providertest.Message(t, w.bobG, "once")
	first, err := w.a.P.SubmitMessage(w.ctx, "b.example", room, req)
	if err != nil || first.Code != mimi.SubmitAccepted {
		t.Fatalf("first: %v %+v", err, first)
	}
	pend, _ := w.a.M.FanoutPending("b.example", 0)
	again, err := w.a.P.SubmitMessage(w.ctx, "b.example", room, req)
	if err != nil || again.Code != mimi.SubmitAccepted || again.AcceptedTimestamp != first.AcceptedTimestamp {
		t.Fatalf("again: %v %+v, want accepted at %d", err, again, first.AcceptedTimestamp)
	}
	if msgs, _ := roomMessages(t, w.a.M); len(msgs) != 1 {
		t.Fatalf("%d messages in the log, want 1", len(msgs))
	}
	if pend2, _ := w.a.M.FanoutPending("b.example", 0); len(pend2) != len(pend) {
		t.Fatalf("fanout queue grew from %d to %d", len(pend), len(pend2))
	}

	// Twins in one batch: one copy is held in its Raft apply while two
	// copies of another message and a third message queue behind it.
	held, release := g.holdFirstMessage()
	hold := w.fromPeer("hold", "b.example", providertest.Message(t, w.bobG, "hold"))
	waitHold := submitAsync(w, hold)
	<-held
	twin := providertest.Message(t, w.bobG, "twin")
	t1, t2 := w.fromPeer("twin 1", "b.example", twin), w.fromPeer("twin 2", "b.example", twin)
	other := w.fromPeer("other", "b.example", providertest.Message(t, w.bobG, "other"))
	wait := queueInOrder(t, w, 0, t1, t2, other)
	close(release)
	waitHold()
	wait()
	for _, s := range []*submission{hold, t1, t2, other} {
		if !accepted(s) {
			t.Fatalf("%s: %v %+v", s.name, s.err, s.resp)
		}
	}
	if t1.resp.AcceptedTimestamp != t2.resp.AcceptedTimestamp {
		t.Fatalf("twins answered %d and %d", t1.resp.AcceptedTimestamp, t2.resp.AcceptedTimestamp)
	}
	msgs, _ := roomMessages(t, w.a.M)
	if len(msgs) != 4 {
		t.Fatalf("%d messages in the log, want 4 (once, hold, twin, other)", len(msgs))
	}
	if counts := g.messageCounts(); counts[len(counts)-1] != 2 {
		t.Fatalf("messages per command %v: the last command should carry the twin once and the other message", counts)
	}

	// A resend batched with a new message: under load the hub does not
	// look messages up before the state machine, which refuses the batch
	// as a duplicate; decided one by one, the resend gets the first
	// acceptance and the new message is accepted once.
	held, release = g.holdFirstMessage()
	hold2 := w.fromPeer("hold 2", "b.example", providertest.Message(t, w.bobG, "hold 2"))
	waitHold = submitAsync(w, hold2)
	<-held
	resend := w.fromPeer("resend", "b.example", req)
	fresh := w.fromPeer("fresh", "b.example", providertest.Message(t, w.bobG, "fresh"))
	wait = queueInOrder(t, w, 0, resend, fresh)
	close(release)
	waitHold()
	wait()
	for _, s := range []*submission{hold2, resend, fresh} {
		if !accepted(s) {
			t.Fatalf("%s: %v %+v", s.name, s.err, s.resp)
		}
	}
	if resend.resp.AcceptedTimestamp != first.AcceptedTimestamp {
		t.Fatalf("resend answered %d, want the first acceptance %d", resend.resp.AcceptedTimestamp, first.AcceptedTimestamp)
	}
	if msgs, _ := roomMessages(t, w.a.M); len(msgs) != 6 {
		t.Fatalf("%d messages in the log, want 6 (+ hold 2, fresh)", len(msgs))
	}
	// The batch of two was refused and "fresh" went alone; the resend
	// was answered from the lookup, without a command.
	if counts := g.messageCounts(); len(counts) < 2 || counts[len(counts)-2] != 2 || counts[len(counts)-1] != 1 {
		t.Fatalf("messages per command %v: want the refused pair, then fresh alone", counts)
	}

	// After a commit, a resend (the answer was lost while the epoch moved
	// on) still gets its first acceptance; a new message of the old epoch
	// is too old. The fourth commit forgets the epoch's messages.
	commit := func() {
		t.Helper()
		pc, up := providertest.Commit(t, w.aliceG, nil)
		if resp, err := w.a.P.LocalUpdate(w.ctx, w.alice.Client, room, up); err != nil || resp.Code != mimi.UpdateSuccess {
			t.Fatalf("commit: %v %+v", err, resp)
		}
		if err := pc.Merge(); err != nil {
			t.Fatal(err)
		}
	}
	stale := providertest.Message(t, w.bobG, "never sent before the commit")
	commit()
	if resp, err := w.a.P.SubmitMessage(w.ctx, "b.example", room, req); err != nil || resp.Code != mimi.SubmitAccepted || resp.AcceptedTimestamp != first.AcceptedTimestamp {
		t.Fatalf("resend after a commit: %v %+v, want accepted at %d", err, resp, first.AcceptedTimestamp)
	}
	if resp, err := w.a.P.SubmitMessage(w.ctx, "b.example", room, stale); err != nil || resp.Code != mimi.SubmitEpochTooOld {
		t.Fatalf("new message of the old epoch: %v %+v, want epochTooOld", err, resp)
	}
	commit()
	commit()
	if resp, err := w.a.P.SubmitMessage(w.ctx, "b.example", room, req); err != nil || resp.Code != mimi.SubmitAccepted || resp.AcceptedTimestamp != first.AcceptedTimestamp {
		t.Fatalf("resend after three commits: %v %+v, want accepted at %d", err, resp, first.AcceptedTimestamp)
	}
	commit()
	if resp, err := w.a.P.SubmitMessage(w.ctx, "b.example", room, req); err != nil || resp.Code != mimi.SubmitEpochTooOld {
		t.Fatalf("after four commits: %v %+v, want epochTooOld", err, resp)
	}
	if msgs, _ := roomMessages(t, w.a.M); len(msgs) != 6 {
		t.Fatalf("%d messages in the log, want still 6", len(msgs))
	}
}
