package client_test

import (
	"context"
	"testing"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/local"
	"github.com/openmimi/mimi/provider/providertest"
)

// realNet is three real providers (a.example, the hub, b.example and
// c.example) on standalone Raft nodes, federated in process.
type realNet struct {
	t     testing.TB
	net   *providertest.Net
	nodes map[string]*providertest.Node
}

func newRealNet(t testing.TB) *realNet {
	r := &realNet{t: t, net: providertest.NewNet(), nodes: map[string]*providertest.Node{}}
	clock := providertest.NewClock()
	for _, d := range []string{"a.example", "b.example", "c.example"} {
		n := providertest.New(t, d, providertest.Options{Remote: r.net.Remote(d), Clock: clock})
		r.net.Add(n.P)
		r.nodes[d] = n
	}
	return r
}

// pump runs every hub's fanout once.
func (r *realNet) pump() {
	for _, hub := range r.nodes {
		providertest.Deliver(r.t, hub, func(ctx context.Context, target, room string, body []byte) error {
			return r.net.Notify(ctx, hub.Domain, target, room, body)
		})
	}
}

func (r *realNet) provider(domain string) client.Provider {
	return local.New(r.nodes[domain].P, &local.Options{BeforeInbox: func(context.Context) error {
		r.pump()
		return nil
	}})
}

func (r *realNet) epoch(room string) uint64 {
	rec, err := r.nodes[domainOf(room)].M.Room(room)
	if err != nil {
		r.t.Fatal(err)
	}
	return rec.Epoch
}

func (r *realNet) pending(cl string) int {
	r.pump()
	es, err := r.nodes[domainOf(cl)].P.Inbox(cl, 0, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	return len(es)
}

// TestSection3FlowsWithProviders runs the same Section 3 flow as
// TestSection3Flows against real providers (package provider), whose hub
// enforces the room policy and checks every update, over an adapter from
// client.Provider to provider.Provider's local API.
func TestSection3FlowsWithProviders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Raft nodes")
	}
	w := &world{t: t, ctx: context.Background(), be: newRealNet(t), clients: map[string]*client.Client{}}
	runFlow(t, w)
}

// TestRolesRemovalResyncWithProviders: role changes, a removal seen by the
// removed user's clients, and a client that lost its state rejoining in
// place, against real providers.
func TestRolesRemovalResyncWithProviders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Raft nodes")
	}
	w := threeUsersIn(t, &world{t: t, ctx: context.Background(), be: newRealNet(t), clients: map[string]*client.Client{}})
	a1, c1 := w.clients["ClientA1"], w.clients["ClientC1"]
	if err := a1.SetRole(w.ctx, clubhouse, cathy, "admin"); err != nil {
		t.Fatal(err)
	}
	w.sync("ClientB1", "ClientB2", "ClientC1")
	if err := c1.SetRole(w.ctx, clubhouse, bob, "reader"); err != nil {
		t.Fatal(err)
	}
	all := []string{"ClientA1", "ClientB1", "ClientB2", "ClientC1"}
	w.sync(all...)
	ri := w.agree(clubhouse, all...)
	if r, _ := ri.Role(bob); r != "reader" {
		t.Fatalf("%+v", ri)
	}
	if err := c1.RemoveUser(w.ctx, clubhouse, bob); err != nil {
		t.Fatal(err)
	}
	evs := w.sync(all...)
	for _, n := range []string{"ClientB1", "ClientB2"} {
		if find(evs[n], client.EventRemoved) == nil {
			t.Fatalf("%s: %+v", n, evs[n])
		}
	}
	w.agree(clubhouse, "ClientA1", "ClientC1")

	// ClientC1 loses its state and rejoins in place.
	c1 = w.add("ClientC1", cathy, 0)
	if err := c1.JoinNewDevice(w.ctx, clubhouse); err != nil {
		t.Fatal(err)
	}
	w.sync("ClientA1")
	ri = w.agree(clubhouse, "ClientA1", "ClientC1")
	if len(ri.Members) != 2 {
		t.Fatalf("%+v", ri.Members)
	}
	if _, err := c1.Send(w.ctx, clubhouse, []byte("back")); err != nil {
		t.Fatal(err)
	}
	evs = w.sync("ClientA1")
	if ev := find(evs["ClientA1"], client.EventMessage); ev == nil || string(ev.Data) != "back" {
		t.Fatalf("%+v", evs)
	}
}
