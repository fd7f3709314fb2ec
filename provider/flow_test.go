package provider_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

// TestFlow runs the example of draft-ralston-mimi-protocol-02, Section 3:
// Alice creates the room, adds Bob, Bob adds Cathy through the hub, Cathy
// sends a message, and Bob leaves.
func TestFlow(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")

	// The Welcome went only to b.example: a hub route was recorded.
	if n := w.deliver(); n != 0 {
		t.Fatalf("nothing should be pending, sent %d", n)
	}

	// Section 3.3: Bob adds Cathy; key material flows b -> a -> c.
	if resp := w.addUser(w.bob, w.bobG, w.b, w.cathy, "member"); resp.Code != mimi.UpdateSuccess {
		t.Fatalf("bob adds cathy: %d %s", resp.Code, resp.ErrorDescription)
	}
	// The Welcome is queued only for c.example, whose KeyPackage it
	// carries; the commit for both followers (Section 5.5).
	parts := func(dest string) []eventlog.Part {
		ds, err := w.a.M.FanoutPending(dest, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []eventlog.Part
		for _, d := range ds {
			out = append(out, d.Part)
		}
		return out
	}
	if got := parts("b.example"); len(got) != 1 || got[0] != eventlog.PartMessage {
		t.Fatalf("b.example queue: %v", got)
	}
	if got := parts("c.example"); len(got) != 2 || got[0] != eventlog.PartMessage || got[1] != eventlog.PartWelcome {
		t.Fatalf("c.example queue: %v", got)
	}
	// Alice (local to the hub) got the commit in her inbox, not the
	// Welcome.
	if es, _ := w.a.P.Inbox(w.alice.Client, 0, 0); len(es) != 1 || es[0].Message.Message.WireFormat != wire.WireFormatPublicMessage {
		t.Fatalf("alice's inbox: %+v", es)
	}
	w.deliver()
	cathyG := w.cathy.Join(t, w.welcomeFor(w.inbox(w.c, w.cathy)))
	w.process(w.aliceG, w.inbox(w.a, w.alice))
	// Bob gets his own commit back, relayed through his provider
	// (Section 5.5): the echo of the epoch he already left.
	if got := w.inbox(w.b, w.bob); len(got) != 1 || !providertest.PastHandshake(w.bobG, &got[0].Message) {
		t.Fatalf("bob got %d messages, want the echo of his commit", len(got))
	}
	if w.aliceG.Epoch() != cathyG.Epoch() || w.bobG.Epoch() != cathyG.Epoch() {
		t.Fatalf("epochs differ: %d %d %d", w.aliceG.Epoch(), w.bobG.Epoch(), cathyG.Epoch())
	}

	// Section 3.4: Cathy says hello through c.example.
	resp, err := w.c.P.LocalSubmitMessage(w.ctx, w.cathy.Client, room, providertest.Message(t, cathyG, "hello"))
	if err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatalf("submit: %v %+v", err, resp)
	}
	w.deliver()
	for _, x := range []struct {
		g *mls.Group
		n *providertest.Node
		c *providertest.Client
	}{{w.aliceG, w.a, w.alice}, {w.bobG, w.b, w.bob}} {
		ps := w.process(x.g, w.inbox(x.n, x.c))
		if len(ps) != 1 || string(ps[0].ApplicationData) != "hello" {
			t.Fatalf("%s did not get hello: %+v", x.c.Client, ps)
		}
	}
	// Cathy's own message comes back to c.example (other clients of c
	// need it) but not to her.
	if got := w.inbox(w.c, w.cathy); len(got) != 0 {
		t.Fatalf("cathy got %d messages, want none", len(got))
	}

	// Section 3.5: Bob leaves: SelfRemove and AppSync(-bob) are cached by
	// the hub, the next commit must include them.
	sr, err := w.bobG.ProposeSelfRemove(nil)
	if err != nil {
		t.Fatal(err)
	}
	as, err := w.bobG.ProposeAppSync((&mimi.ChangeSet{Remove: []string{w.bob.User}}).AppSync(), nil)
	if err != nil {
		t.Fatal(err)
	}
	up, err := w.b.P.LocalUpdate(w.ctx, w.bob.Client, room, providertest.Proposals(as.Message, sr.Message))
	if err != nil || up.Code != mimi.UpdateSuccess {
		t.Fatalf("leave proposals: %v %+v", err, up)
	}
	rec, err := w.a.M.Room(room)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := provider.RoomState(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rm.Participant(w.bob.User); ok || rec.Proposals != 2 {
		t.Fatalf("the leave should take effect at once (Section 6.1): participants %+v, %d proposals", rm.Participants, rec.Proposals)
	}
	// Bob can no longer send application messages.
	w.bobG.SetConfig(mls.Config{AllowAppDataWithPendingProposals: true})
	if resp, err := w.b.P.SubmitMessage(w.ctx, "b.example", room, providertest.Message(t, w.bobG, "still here?")); err == nil && resp.Code != mimi.SubmitNotAllowed {
		t.Fatalf("a removed participant's message was accepted: %+v", resp)
	}
	w.deliver()
	w.process(cathyG, w.inbox(w.c, w.cathy))
	w.process(w.aliceG, w.inbox(w.a, w.alice))

	// Cathy commits; the hub requires the cached proposals.
	pend := []*wire.PublicMessage{as.Message.PublicMessage, sr.Message.PublicMessage}
	pc, req := providertest.Commit(t, cathyG, &mls.CommitOptions{SkipPending: true, Proposals: nil}, pend...)
	r, err := w.c.P.LocalUpdate(w.ctx, w.cathy.Client, room, req)
	if err != nil || r.Code != mimi.UpdateNotAllowed {
		t.Fatalf("a commit without the cached proposals: %v %+v", err, r)
	}
	pc.Discard()
	pc, req = providertest.Commit(t, cathyG, nil, pend...)
	r, err = w.c.P.LocalUpdate(w.ctx, w.cathy.Client, room, req)
	if err != nil || r.Code != mimi.UpdateSuccess {
		t.Fatalf("cathy's commit: %v %+v", err, r)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	w.deliver()
	w.process(w.aliceG, w.inbox(w.a, w.alice))
	// Bob gets his two proposals back (Section 5.5), then the commit.
	ps := w.process(w.bobG, w.inbox(w.b, w.bob))
	if len(ps) != 3 || ps[0].Proposal == nil || ps[1].Proposal == nil || ps[2].Commit == nil || !ps[2].Commit.SelfRemoved {
		t.Fatalf("bob should see his proposals and his removal: %+v", ps)
	}
	rec, err = w.a.M.Room(room)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rec.Members {
		if m == w.bob.Client {
			t.Fatalf("bob is still a member: %v", rec.Members)
		}
	}
	// Nothing more for b.example: Bob is gone.
	resp, err = w.a.P.LocalSubmitMessage(w.ctx, w.alice.Client, room, providertest.Message(t, w.aliceG, "bye"))
	if err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatalf("alice's message: %v %+v", err, resp)
	}
	if cur, err := w.a.M.FanoutCursor("b.example"); err != nil {
		t.Fatal(err)
	} else if p, _ := w.a.M.FanoutPending("b.example", 0); len(p) != 0 {
		t.Fatalf("b.example still gets messages: %+v %v", cur, p)
	}
	w.deliver()
	if ps := w.process(cathyG, w.inbox(w.c, w.cathy)); len(ps) != 1 || !bytes.Equal(ps[0].ApplicationData, []byte("bye")) {
		t.Fatalf("cathy: %+v", ps)
	}
}

// One /notify body carrying messages of several senders: the follower
// delivers each to every local member except a local sender of that very
// message (Section 5.5; the echo rule), message by message.
func TestFollowerEchoInOneBody(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")
	if resp := w.addUser(w.bob, w.bobG, w.b, w.cathy, "member"); resp.Code != mimi.UpdateSuccess {
		t.Fatalf("bob adds cathy: %d %s", resp.Code, resp.ErrorDescription)
	}
	w.deliver()
	cathyG := w.cathy.Join(t, w.welcomeFor(w.inbox(w.c, w.cathy)))
	w.process(w.aliceG, w.inbox(w.a, w.alice))
	w.process(w.bobG, w.inbox(w.b, w.bob))

	send := func(n *providertest.Node, c *providertest.Client, g *mls.Group, text string) {
		t.Helper()
		resp, err := n.P.LocalSubmitMessage(w.ctx, c.Client, room, providertest.Message(t, g, text))
		if err != nil || resp.Code != mimi.SubmitAccepted {
			t.Fatalf("%s submits %q: %v %+v", c.Client, text, err, resp)
		}
	}
	// Nothing is delivered in between, so each follower gets all five
	// in one body.
	send(w.c, w.cathy, cathyG, "c1")
	send(w.a, w.alice, w.aliceG, "a1")
	send(w.c, w.cathy, cathyG, "c2")
	send(w.b, w.bob, w.bobG, "b1")
	send(w.c, w.cathy, cathyG, "c3")
	if n := w.deliver(); n != 2 {
		t.Fatalf("%d /notify bodies sent, want one per follower", n)
	}
	texts := func(g *mls.Group, n *providertest.Node, c *providertest.Client) string {
		var out []string
		for _, p := range w.process(g, w.inbox(n, c)) {
			out = append(out, string(p.ApplicationData))
		}
		return strings.Join(out, " ")
	}
	for _, x := range []struct {
		g    *mls.Group
		n    *providertest.Node
		c    *providertest.Client
		want string
	}{
		{w.aliceG, w.a, w.alice, "c1 c2 b1 c3"},
		{w.bobG, w.b, w.bob, "c1 a1 c2 c3"},
		{cathyG, w.c, w.cathy, "a1 b1"},
	} {
		if got := texts(x.g, x.n, x.c); got != x.want {
			t.Errorf("%s got %q, want %q", x.c.Client, got, x.want)
		}
	}
}
