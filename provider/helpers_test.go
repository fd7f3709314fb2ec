package provider_test

import (
	"context"
	"testing"
	"time"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

const (
	hubDomain = "a.example"
	room      = "mimi://a.example/r/clubhouse"
)

// world is three in-process providers: a.example (the hub), b.example and
// c.example, with alice@a, bob@b and cathy@c registered, each with
// KeyPackages, as in draft-ralston-mimi-protocol-02, Section 3.
type world struct {
	t                  testing.TB
	net                *providertest.Net
	a, b, c            *providertest.Node
	alice, bob, cathy  *providertest.Client
	aliceG, bobG       *mls.Group
	pendingAtHub       []*wire.PublicMessage
	ctx                context.Context
	cancel             context.CancelFunc
	deliveredToClients map[string]uint64
}

func newWorld(t testing.TB) *world {
	t.Helper()
	return newWorldHub(t, providertest.Options{})
}

// newWorldHub is newWorld with options for the hub a.example (its Remote
// and Clock are set here).
func newWorldHub(t testing.TB, hubOpts providertest.Options) *world {
	t.Helper()
	return newWorldOpts(t, hubOpts, providertest.Options{})
}

// newWorldOpts is newWorld with options for a.example and b.example
// (their Remote and Clock are set here).
func newWorldOpts(t testing.TB, hubOpts, bOpts providertest.Options) *world {
	t.Helper()
	w := &world{t: t, net: providertest.NewNet()}
	w.ctx, w.cancel = context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(w.cancel)
	clock := providertest.NewClock()
	hubOpts.Remote, hubOpts.Clock = w.net.Remote("a.example"), clock
	w.a = providertest.New(t, "a.example", hubOpts)
	bOpts.Remote, bOpts.Clock = w.net.Remote("b.example"), clock
	w.b = providertest.New(t, "b.example", bOpts)
	w.c = providertest.New(t, "c.example", providertest.Options{Remote: w.net.Remote("c.example"), Clock: clock})
	for _, n := range []*providertest.Node{w.a, w.b, w.c} {
		w.net.Add(n.P)
	}
	w.alice = providertest.NewClient(t, "a.example", "alice", "alice1")
	w.bob = providertest.NewClient(t, "b.example", "bob", "bob1")
	w.cathy = providertest.NewClient(t, "c.example", "cathy", "cathy1")
	for _, x := range []struct {
		c *providertest.Client
		n *providertest.Node
	}{{w.alice, w.a}, {w.bob, w.b}, {w.cathy, w.c}} {
		x.c.Register(t, x.n)
		x.c.Upload(t, x.n, 2)
	}
	return w
}

// createRoom creates the clubhouse with alice as admin (Section 3.1).
func (w *world) createRoom() {
	w.t.Helper()
	rm := providertest.Room(room, map[string]string{w.alice.User: "admin"})
	w.aliceG = providertest.CreateGroup(w.t, w.alice, w.a.HubSender, rm)
	providertest.CreateRoom(w.t, w.a, w.alice, w.aliceG, room)
}

// deliver runs the hub's fanout once over the in-process network.
func (w *world) deliver() int {
	w.t.Helper()
	return providertest.Deliver(w.t, w.a, func(ctx context.Context, target, rm string, body []byte) error {
		return w.net.Notify(ctx, w.a.Domain, target, rm, body)
	})
}

// addUser has alice fetch target's key material through the hub and
// commit AppSync(+target as role) and Adds (Sections 3.2 and 3.3).
func (w *world) addUser(committer *providertest.Client, g *mls.Group, at *providertest.Node, target *providertest.Client, role string) *mimi.UpdateRoomResponse {
	w.t.Helper()
	km, err := at.P.LocalKeyMaterial(w.ctx, committer.Client, providertest.KeyMaterialRequest(committer.User, target.User, room))
	if err != nil {
		w.t.Fatal(err)
	}
	if km.UserStatus != mimi.UserSuccess {
		w.t.Fatalf("key material for %s: user status %d", target.User, km.UserStatus)
	}
	props := []*wire.Proposal{providertest.AppSync(&mimi.ChangeSet{Add: []mimi.Participant{{User: target.User, Role: role}}})}
	for _, ck := range km.Clients {
		props = append(props, providertest.Add(ck.KeyPackage))
	}
	pc, req := providertest.Commit(w.t, g, &mls.CommitOptions{Proposals: props}, w.pendingAtHub...)
	resp, err := at.P.LocalUpdate(w.ctx, committer.Client, room, req)
	if err != nil {
		w.t.Fatal(err)
	}
	if resp.Code == mimi.UpdateSuccess {
		if err := pc.Merge(); err != nil {
			w.t.Fatal(err)
		}
		w.pendingAtHub = nil
	} else {
		pc.Discard()
	}
	return resp
}

// inbox returns the unacknowledged messages of a client and acknowledges
// them.
func (w *world) inbox(n *providertest.Node, c *providertest.Client) []mimi.FanoutMessage {
	w.t.Helper()
	es, err := n.P.Inbox(c.Client, 0, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []mimi.FanoutMessage
	for _, e := range es {
		out = append(out, e.Message)
	}
	if len(es) > 0 {
		if err := n.P.Ack(w.ctx, c.Client, es[len(es)-1].N); err != nil {
			w.t.Fatal(err)
		}
	}
	return out
}

// process feeds messages to a group, failing on errors.
func (w *world) process(g *mls.Group, msgs []mimi.FanoutMessage) []*mls.Processed {
	w.t.Helper()
	var out []*mls.Processed
	for i := range msgs {
		if providertest.PastHandshake(g, &msgs[i].Message) {
			continue // the echo of a commit or proposal g already applied
		}
		p, err := g.Process(&msgs[i].Message)
		if err != nil {
			w.t.Fatalf("processing message %d: %v", i, err)
		}
		out = append(out, p)
	}
	return out
}

// welcomeFor returns the single Welcome in msgs.
func (w *world) welcomeFor(msgs []mimi.FanoutMessage) *mimi.FanoutMessage {
	w.t.Helper()
	for i := range msgs {
		if msgs[i].Message.WireFormat == wire.WireFormatWelcome {
			return &msgs[i]
		}
	}
	w.t.Fatalf("no Welcome among %d messages", len(msgs))
	return nil
}

// aliceAddsBob runs Section 3.2 and has bob join.
func (w *world) aliceAddsBob(role string) {
	w.t.Helper()
	if resp := w.addUser(w.alice, w.aliceG, w.a, w.bob, role); resp.Code != mimi.UpdateSuccess {
		w.t.Fatalf("alice adds bob: %d %s", resp.Code, resp.ErrorDescription)
	}
	w.deliver()
	w.bobG = w.bob.Join(w.t, w.welcomeFor(w.inbox(w.b, w.bob)))
	// Alice, local to the hub, gets her own commit back (Section 5.5).
	if es := w.inbox(w.a, w.alice); len(es) != 1 || !providertest.PastHandshake(w.aliceG, &es[0].Message) {
		w.t.Fatalf("alice's inbox after adding bob: %d entries, want the echo of her commit", len(es))
	}
}

// mustRoom decodes the hub's room state.
func mustRoom(t testing.TB, rec *projections.Room) *mimi.Room {
	t.Helper()
	rm, err := provider.RoomState(rec)
	if err != nil {
		t.Fatal(err)
	}
	return rm
}
