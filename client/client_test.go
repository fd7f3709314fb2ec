package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/mimi"
)

const (
	clubhouse = "mimi://a.example/r/clubhouse"
	alice     = "mimi://a.example/u/alice"
	bob       = "mimi://b.example/u/bob"
	cathy     = "mimi://c.example/u/cathy"
)

// flowPolicy is the clubhouse policy of the draft's Section 3.1, plus what
// the rest of the flow needs. The draft's example has only
// admin = [canAddUser, canRemoveUser, canSetUserRole] and lets Bob add
// Cathy without saying how Bob may; our hub enforces canAddUser and
// canSendMessage (docs/codepoints.md), so Bob and Cathy join as "member",
// which may add users and send messages, and admin may also send.
func flowPolicy() mimi.Policy {
	return mimi.Policy{Roles: []mimi.Role{
		{Name: "admin", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanRemoveUser, mimi.CanSetUserRole, mimi.CanSendMessage}},
		{Name: "member", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanSendMessage}},
		{Name: "reader"},
	}}
}

// backend is what the tests run the clients against: the in-memory fake
// (fakeNet) or real providers (realNet).
type backend interface {
	provider(domain string) client.Provider
	// epoch is the hub's epoch of a room.
	epoch(room string) uint64
	// pending is how many inbox entries a client has not acknowledged.
	pending(client string) int
}

type world struct {
	t       testing.TB
	ctx     context.Context
	be      backend
	net     *fakeNet // when be is the fake
	clients map[string]*client.Client
	// opts are the Options of the clients add makes (nil: defaults).
	opts *client.Options
}

func newWorld(t testing.TB) *world {
	n := newFakeNet(t)
	return &world{t: t, ctx: context.Background(), be: n, net: n, clients: map[string]*client.Client{}}
}

// add makes, registers and publishes KeyPackages for client
// mimi://<domain>/d/<name> of user.
func (w *world) add(name, user string, kps int) *client.Client {
	w.t.Helper()
	domain := domainOf(user)
	c, err := client.New(user, "mimi://"+domain+"/d/"+name, suite, w.be.provider(domain), w.opts)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := c.Enroll(w.ctx, kps); err != nil {
		w.t.Fatal(err)
	}
	w.clients[name] = c
	return c
}

// sync syncs the named clients and returns their events; an EventError
// fails the test.
func (w *world) sync(names ...string) map[string][]client.Event {
	w.t.Helper()
	out := map[string][]client.Event{}
	for _, n := range names {
		evs, err := w.clients[n].Sync(w.ctx)
		if err != nil {
			w.t.Fatalf("%s: sync: %v", n, err)
		}
		for _, ev := range evs {
			if ev.Type == client.EventError {
				w.t.Fatalf("%s: error event: %v", n, ev.Err)
			}
		}
		out[n] = evs
	}
	return out
}

// agree checks that the named clients all hold the same room: epoch (the
// hub's), epoch authenticator, policy, participants and members.
func (w *world) agree(room string, names ...string) *client.RoomInfo {
	w.t.Helper()
	var ref *client.RoomInfo
	for _, n := range names {
		ri, err := w.clients[n].Room(room)
		if err != nil {
			w.t.Fatalf("%s: %v", n, err)
		}
		if e := w.be.epoch(room); ri.Epoch != e {
			w.t.Fatalf("%s is at epoch %d, the hub at %d", n, ri.Epoch, e)
		}
		if ref == nil {
			ref = ri
			continue
		}
		if ri.Epoch != ref.Epoch || !bytes.Equal(ri.EpochAuthenticator, ref.EpochAuthenticator) {
			w.t.Fatalf("%s disagrees with %s: epoch %d/%d, authenticator %x/%x", n, names[0], ri.Epoch, ref.Epoch, ri.EpochAuthenticator, ref.EpochAuthenticator)
		}
		if fmt.Sprint(ri.Participants) != fmt.Sprint(ref.Participants) || fmt.Sprint(ri.Members) != fmt.Sprint(ref.Members) ||
			fmt.Sprint(ri.Policy) != fmt.Sprint(ref.Policy) {
			w.t.Fatalf("%s disagrees with %s:\n%+v\n%+v", n, names[0], ri, ref)
		}
	}
	return ref
}

func participants(ri *client.RoomInfo) string { return fmt.Sprint(ri.Participants) }

func memberClients(ri *client.RoomInfo) []string {
	var out []string
	for _, m := range ri.Members {
		out = append(out, m.Client)
	}
	sort.Strings(out)
	return out
}

func find(evs []client.Event, typ client.EventType) *client.Event {
	for i := range evs {
		if evs[i].Type == typ {
			return &evs[i]
		}
	}
	return nil
}

func clientURI(user, name string) string { return "mimi://" + domainOf(user) + "/d/" + name }

// TestSection3Flows runs the example of draft-ralston-mimi-protocol-02,
// Section 3 with real MLS, each client through the SDK: Alice creates the
// clubhouse, adds Bob (two devices), Bob adds Cathy (two devices), Cathy
// says hello, Bob leaves (his proposals committed by Cathy's client), and
// Cathy adds a new device by external commit. After every step all clients
// agree on epoch, epoch authenticator, participants and members. Alice's
// and Cathy's second client are saved and loaded mid-flow. It runs once as
// the draft describes the hub, and once with a hub that echoes every
// message to its sender too (Section 5.5).
func TestSection3Flows(t *testing.T) {
	for _, echo := range []bool{false, true} {
		t.Run(fmt.Sprintf("echo=%v", echo), func(t *testing.T) {
			w := newWorld(t)
			w.net.echo = echo
			runFlow(t, w)
		})
	}
}

func runFlow(t *testing.T, w *world) {
	a1 := w.add("ClientA1", alice, 2)
	w.add("ClientB1", bob, 2)
	w.add("ClientB2", bob, 2)
	w.add("ClientC1", cathy, 2)
	w.add("ClientC2", cathy, 2)

	// 3.1 Alice creates the room.
	if err := a1.CreateRoom(w.ctx, clubhouse, flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	ri := w.agree(clubhouse, "ClientA1")
	if participants(ri) != fmt.Sprint([]mimi.Participant{{User: alice, Role: "admin"}}) || ri.Policy.RoomID != clubhouse {
		t.Fatalf("room after creation: %+v", ri)
	}
	if gid, _ := client.GroupURI(clubhouse); string(ri.GroupID) != gid || gid != "mimi://a.example/g/clubhouse" {
		t.Fatalf("group ID %q", ri.GroupID)
	}

	// 3.2 Alice adds Bob; both of Bob's clients join by Welcome.
	if err := a1.AddUser(w.ctx, clubhouse, bob, "member"); err != nil {
		t.Fatal(err)
	}
	evs := w.sync("ClientA1", "ClientB1", "ClientB2")
	for _, n := range []string{"ClientB1", "ClientB2"} {
		if ev := find(evs[n], client.EventJoined); ev == nil || ev.Room != clubhouse {
			t.Fatalf("%s did not join: %+v", n, evs[n])
		}
	}
	ri = w.agree(clubhouse, "ClientA1", "ClientB1", "ClientB2")
	if r, _ := ri.Role(bob); r != "member" || len(ri.Members) != 3 {
		t.Fatalf("after adding bob: %+v", ri)
	}

	// 3.3 Bob adds Cathy through the hub.
	if err := w.clients["ClientB1"].AddUser(w.ctx, clubhouse, cathy, "member"); err != nil {
		t.Fatal(err)
	}
	evs = w.sync("ClientA1", "ClientB1", "ClientB2", "ClientC1", "ClientC2")
	for _, n := range []string{"ClientC1", "ClientC2"} {
		if find(evs[n], client.EventJoined) == nil {
			t.Fatalf("%s did not join: %+v", n, evs[n])
		}
	}
	for _, n := range []string{"ClientA1", "ClientB2"} {
		pe, me := find(evs[n], client.EventParticipants), find(evs[n], client.EventMembers)
		if pe == nil || len(pe.Changes.Add) != 1 || pe.Changes.Add[0].User != cathy || pe.Sender == nil || pe.Sender.Client != clientURI(bob, "ClientB1") {
			t.Fatalf("%s: participant event %+v", n, evs[n])
		}
		if me == nil || !slices.Equal(me.Added, []string{clientURI(cathy, "ClientC1"), clientURI(cathy, "ClientC2")}) {
			t.Fatalf("%s: member event %+v", n, me)
		}
	}
	all := []string{"ClientA1", "ClientB1", "ClientB2", "ClientC1", "ClientC2"}
	ri = w.agree(clubhouse, all...)
	if len(ri.Participants) != 3 || len(ri.Members) != 5 {
		t.Fatalf("after adding cathy: %+v", ri)
	}

	// Save and load Alice's and Cathy's second client mid-flow.
	for _, n := range []string{"ClientA1", "ClientC2"} {
		st, err := w.clients[n].Save()
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Load(st, w.be.provider(domainOf(w.clients[n].ID())), nil)
		if err != nil {
			t.Fatalf("%s: load: %v", n, err)
		}
		again, err := c.Save()
		if err != nil || !bytes.Equal(again, st) {
			t.Fatalf("%s: Save(Load(state)) differs (%v)", n, err)
		}
		w.clients[n] = c
	}
	a1 = w.clients["ClientA1"]
	w.agree(clubhouse, all...)

	// 3.4 Cathy says hello; every other client decrypts it.
	if _, err := w.clients["ClientC1"].Send(w.ctx, clubhouse, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	evs = w.sync(all...)
	for _, n := range all {
		ev := find(evs[n], client.EventMessage)
		if n == "ClientC1" {
			if ev != nil {
				t.Fatalf("cathy got her own message back as an event")
			}
			continue
		}
		if ev == nil || string(ev.Data) != "hello" || ev.Sender == nil || ev.Sender.Client != clientURI(cathy, "ClientC1") || ev.Sender.User != cathy {
			t.Fatalf("%s: %+v", n, evs[n])
		}
	}
	w.agree(clubhouse, all...)

	// 3.5 Bob leaves: his proposals are cached by the hub and committed by
	// Cathy's client.
	epoch := w.be.epoch(clubhouse)
	if err := w.clients["ClientB1"].Leave(w.ctx, clubhouse); err != nil {
		t.Fatal(err)
	}
	if w.be.epoch(clubhouse) != epoch {
		t.Fatal("leaving must not commit")
	}
	if ri, _ := w.clients["ClientB1"].Room(clubhouse); !ri.Leaving {
		t.Fatal("B1 should be leaving")
	}
	if _, err := w.clients["ClientB1"].Send(w.ctx, clubhouse, []byte("x")); !errors.Is(err, client.ErrLeaving) {
		t.Fatalf("sending while leaving: %v", err)
	}
	evs = w.sync("ClientA1", "ClientB2", "ClientC1", "ClientC2")
	for _, n := range []string{"ClientA1", "ClientB2", "ClientC1", "ClientC2"} {
		var removes, appsyncs int
		for _, ev := range evs[n] {
			if ev.Type != client.EventProposal || ev.Sender == nil || ev.Sender.Client != clientURI(bob, "ClientB1") {
				continue
			}
			if ev.Changes != nil && slices.Equal(ev.Changes.Remove, []string{bob}) {
				appsyncs++
			} else {
				removes++
			}
		}
		if removes != 2 || appsyncs != 1 {
			t.Fatalf("%s: proposals %+v", n, evs[n])
		}
	}
	if err := w.clients["ClientC1"].Commit(w.ctx, clubhouse); err != nil {
		t.Fatal(err)
	}
	evs = w.sync(all...)
	for _, n := range []string{"ClientB1", "ClientB2"} {
		if ev := find(evs[n], client.EventRemoved); ev == nil || ev.Room != clubhouse {
			t.Fatalf("%s: %+v", n, evs[n])
		}
		if rooms := w.clients[n].Rooms(); len(rooms) != 0 {
			t.Fatalf("%s still has %v", n, rooms)
		}
		if _, err := w.clients[n].Room(clubhouse); !errors.Is(err, client.ErrUnknownRoom) {
			t.Fatalf("%s: %v", n, err)
		}
	}
	for _, n := range []string{"ClientA1", "ClientC2"} {
		pe, me := find(evs[n], client.EventParticipants), find(evs[n], client.EventMembers)
		if pe == nil || !slices.Equal(pe.Changes.Remove, []string{bob}) {
			t.Fatalf("%s: %+v", n, evs[n])
		}
		if me == nil || !slices.Equal(me.Removed, []string{clientURI(bob, "ClientB1"), clientURI(bob, "ClientB2")}) {
			t.Fatalf("%s: %+v", n, me)
		}
	}
	rest := []string{"ClientA1", "ClientC1", "ClientC2"}
	ri = w.agree(clubhouse, rest...)
	if _, ok := ri.Role(bob); ok || len(ri.Members) != 3 {
		t.Fatalf("after bob left: %+v", ri)
	}

	// 3.6 Cathy adds a new device by GroupInfo and external commit.
	c3 := w.add("ClientC3", cathy, 0)
	if err := c3.JoinNewDevice(w.ctx, clubhouse); err != nil {
		t.Fatal(err)
	}
	evs = w.sync(rest...)
	for _, n := range rest {
		me := find(evs[n], client.EventMembers)
		if me == nil || !slices.Equal(me.Added, []string{clientURI(cathy, "ClientC3")}) || me.Sender == nil || me.Sender.Client != clientURI(cathy, "ClientC3") {
			t.Fatalf("%s: %+v", n, evs[n])
		}
	}
	rest = append(rest, "ClientC3")
	ri = w.agree(clubhouse, rest...)
	if !slices.Equal(memberClients(ri), []string{clientURI(alice, "ClientA1"), clientURI(cathy, "ClientC1"), clientURI(cathy, "ClientC2"), clientURI(cathy, "ClientC3")}) {
		t.Fatalf("members: %v", memberClients(ri))
	}
	// The new device talks with everyone.
	if _, err := c3.Send(w.ctx, clubhouse, []byte("from my new device")); err != nil {
		t.Fatal(err)
	}
	evs = w.sync(rest...)
	for _, n := range []string{"ClientA1", "ClientC1", "ClientC2"} {
		if ev := find(evs[n], client.EventMessage); ev == nil || string(ev.Data) != "from my new device" {
			t.Fatalf("%s: %+v", n, evs[n])
		}
	}
	if _, err := a1.Send(w.ctx, clubhouse, []byte("welcome")); err != nil {
		t.Fatal(err)
	}
	evs = w.sync(rest...)
	if ev := find(evs["ClientC3"], client.EventMessage); ev == nil || string(ev.Data) != "welcome" {
		t.Fatalf("C3: %+v", evs["ClientC3"])
	}
	w.agree(clubhouse, rest...)
	for _, n := range rest {
		if k := w.be.pending(w.clients[n].ID()); k != 0 {
			t.Fatalf("%s has %d unacknowledged entries", n, k)
		}
	}
}
