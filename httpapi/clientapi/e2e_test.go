package clientapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/fanout"
	"github.com/openmimi/mimi/httpapi/clientapi"
	"github.com/openmimi/mimi/httpapi/federation"
	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/internal/testpki"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

// fedProvider is one provider of the federation: its own data directory
// and Raft node (providertest), the federation endpoints over mutual TLS
// (httpapi/federation behind httpapi/transport), the /notify fanout engine
// posting over the same transport, and the client API over TLS.
type fedProvider struct {
	domain string
	node   *providertest.Node
	engine *fanout.Engine
	api    *api
}

// federationNet is a.example, b.example and c.example, each with a
// certificate from one test CA, federating over loopback mutual TLS.
type federationNet struct {
	t   *testing.T
	ctx context.Context
	p   map[string]*fedProvider
}

func newFederation(t *testing.T) *federationNet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	ca := testpki.MustNew(t, "mimi test CA")
	domains := []string{"a.example", "b.example", "c.example"}
	lns := map[string]net.Listener{}
	addrs := map[string]string{}
	for _, d := range domains {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[d], addrs[d] = ln, ln.Addr().String()
	}
	f := &federationNet{t: t, ctx: ctx, p: map[string]*fedProvider{}}
	clock := providertest.NewClock()
	quiet := slog.New(slog.DiscardHandler)
	for _, d := range domains {
		cert := ca.MustIssue(t, d)
		srv, err := transport.NewServer(transport.ServerConfig{
			Domains:   []transport.Domain{{Name: d, Certificate: cert}},
			ClientCAs: ca.Pool(),
		})
		if err != nil {
			t.Fatal(err)
		}
		tc, err := transport.NewClient(transport.ClientConfig{
			Source: d, Certificate: cert, RootCAs: ca.Pool(), Resolver: transport.StaticResolver(addrs),
		})
		if err != nil {
			t.Fatal(err)
		}
		var eng atomic.Pointer[fanout.Engine]
		node := providertest.New(t, d, providertest.Options{
			Dir:    t.TempDir(),
			Remote: federation.NewClient(tc),
			Clock:  clock,
			KickDestinations: func(dests []string) {
				if e := eng.Load(); e != nil {
					for _, d := range dests {
						e.Kick(d)
					}
				}
			},
		})
		engine, err := fanout.New(fanout.Config{
			Store:        fanout.NewMachineStore(node.M),
			Acker:        fanout.NewRaftAcker(node.Raft),
			Sender:       fanout.NewTransportSender(tc),
			IsLeader:     node.Raft.IsLeader,
			BackoffBase:  20 * time.Millisecond,
			BackoffCap:   500 * time.Millisecond,
			ScanInterval: 250 * time.Millisecond,
			Logger:       quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		eng.Store(engine)
		runCtx, stop := context.WithCancel(context.Background())
		engDone := make(chan struct{})
		go func() {
			defer close(engDone)
			_ = engine.Run(runCtx)
		}()
		h, err := federation.NewHandler(node.P, srv, quiet)
		if err != nil {
			t.Fatal(err)
		}
		hs := srv.HTTPServer(h)
		hs.ErrorLog = log.New(io.Discard, "", 0)
		done := make(chan struct{})
		ln := lns[d]
		go func() {
			defer close(done)
			if err := hs.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("serve %s: %v", d, err)
			}
		}()
		// Cleanups run in reverse: the client API first (registered by
		// serveAPI below), then federation and fanout, then the node
		// (registered by providertest.New above).
		t.Cleanup(func() {
			stop()
			<-engDone
			tc.CloseIdleConnections()
			_ = hs.Close()
			<-done
		})
		f.p[d] = &fedProvider{domain: d, node: node, engine: engine,
			api: serveAPI(t, ca, node.P, clientapi.Config{Applied: node.Raft})}
	}
	return f
}

// hub returns the hub's epoch and participants of the room.
func (f *federationNet) hub() (uint64, []mimi.Participant) {
	f.t.Helper()
	rec, err := f.p["a.example"].node.M.Room(room)
	if err != nil {
		f.t.Fatal(err)
	}
	rm, err := provider.RoomState(rec)
	if err != nil {
		f.t.Fatal(err)
	}
	return rec.Epoch, sortedParticipants(rm.Participants)
}

func sortedParticipants(ps []mimi.Participant) []mimi.Participant {
	out := slices.Clone(ps)
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// flowClients are the clients of the flow by name.
type flowClients map[string]*sdkClient

// until syncs the named clients (accumulating their events) until cond
// holds, or fails the test after a timeout with what cond last said.
func (f *federationNet) until(cs flowClients, names []string, cond func(evs map[string][]client.Event) error) map[string][]client.Event {
	f.t.Helper()
	evs := map[string][]client.Event{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, n := range names {
			got, err := cs[n].Sync(f.ctx)
			if err != nil {
				f.t.Fatalf("%s: sync: %v", n, err)
			}
			for _, ev := range got {
				if ev.Type == client.EventError {
					f.t.Fatalf("%s: error event: %v", n, ev.Err)
				}
			}
			evs[n] = append(evs[n], got...)
		}
		err := cond(evs)
		if err == nil {
			return evs
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out: %v", err)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// agreement reports whether the named clients and the hub agree on the
// room's epoch and participant list, and the clients among themselves on
// the epoch authenticator and the members.
func (f *federationNet) agreement(cs flowClients, names []string) (*client.RoomInfo, error) {
	epoch, parts := f.hub()
	var ref *client.RoomInfo
	for _, n := range names {
		ri, err := cs[n].Room(room)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if ri.Epoch != epoch {
			return nil, fmt.Errorf("%s at epoch %d, the hub at %d", n, ri.Epoch, epoch)
		}
		if got := sortedParticipants(ri.Participants); fmt.Sprint(got) != fmt.Sprint(parts) {
			return nil, fmt.Errorf("%s has participants %v, the hub %v", n, got, parts)
		}
		if ref == nil {
			ref = ri
			continue
		}
		if !bytes.Equal(ri.EpochAuthenticator, ref.EpochAuthenticator) || fmt.Sprint(ri.Members) != fmt.Sprint(ref.Members) {
			return nil, fmt.Errorf("%s disagrees with %s: %+v / %+v", n, names[0], ri, ref)
		}
	}
	return ref, nil
}

// agree syncs the named clients until they and the hub agree (see
// agreement), and returns the events and the agreed room.
func (f *federationNet) agree(step string, cs flowClients, names ...string) (map[string][]client.Event, *client.RoomInfo) {
	f.t.Helper()
	var ri *client.RoomInfo
	evs := f.until(cs, names, func(map[string][]client.Event) error {
		var err error
		ri, err = f.agreement(cs, names)
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		return nil
	})
	f.t.Logf("%s: epoch %d, participants %v, %d members", step, ri.Epoch, ri.Participants, len(ri.Members))
	return evs, ri
}

func members(ri *client.RoomInfo) []string {
	var out []string
	for _, m := range ri.Members {
		out = append(out, m.Client)
	}
	sort.Strings(out)
	return out
}

// TestE2EFederation is the end-to-end acceptance of the federation
// (draft-ralston-mimi-protocol-02, Section 3): three providers, a.example
// (the hub of the clubhouse), b.example and c.example, each with its own
// data directory, Raft node and certificate from one test CA, federating
// over loopback mutual TLS with their fanout engines delivering /notify,
// each serving the client API over TLS. Every client is an SDK client
// (client.New) talking to its own provider through remote.New. The flows
// of Section 3 run in order: Alice creates the clubhouse (3.1), adds Bob
// and his two devices (3.2), Bob adds Cathy through the hub (3.3), Cathy
// sends a message every other client decrypts (3.4), Bob leaves with
// proposals the hub caches and Cathy's client commits (3.5), and Cathy
// adds a new device by GroupInfo and external commit (3.6). After every
// step all clients and the hub agree on the participant list and the
// epoch (and the clients on the epoch authenticator and the members).
func TestE2EFederation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three providers")
	}
	f := newFederation(t)
	ctx := f.ctx
	alice, bob, cathy := userURI("a.example", "alice"), userURI("b.example", "bob"), userURI("c.example", "cathy")
	cs := flowClients{
		"A1": newClient(t, ctx, f.p["a.example"].api, alice, "alice1", 2),
		"B1": newClient(t, ctx, f.p["b.example"].api, bob, "bob1", 2),
		"B2": newClient(t, ctx, f.p["b.example"].api, bob, "bob2", 2),
		"C1": newClient(t, ctx, f.p["c.example"].api, cathy, "cathy1", 2),
		"C2": newClient(t, ctx, f.p["c.example"].api, cathy, "cathy2", 2),
	}

	// 3.1 Alice creates the clubhouse.
	if err := cs["A1"].CreateRoom(ctx, room, flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	_, ri := f.agree("3.1 create", cs, "A1")
	if len(ri.Participants) != 1 || len(ri.Members) != 1 {
		t.Fatalf("after creation: %+v", ri)
	}

	// 3.2 Alice adds Bob; both his devices join by Welcome, delivered by
	// a.example's fanout to b.example.
	if err := cs["A1"].AddUser(ctx, room, bob, "member"); err != nil {
		t.Fatal(err)
	}
	evs, ri := f.agree("3.2 alice adds bob", cs, "A1", "B1", "B2")
	for _, n := range []string{"B1", "B2"} {
		if find(evs[n], client.EventJoined) == nil {
			t.Fatalf("%s did not join: %+v", n, evs[n])
		}
	}
	if r, _ := ri.Role(bob); r != "member" || len(ri.Members) != 3 {
		t.Fatalf("after adding bob: %+v", ri)
	}

	// 3.3 Bob adds Cathy through the hub: b.example asks a.example for
	// key material, which a.example claims at c.example; the commit goes
	// through b.example to the hub.
	if err := cs["B1"].AddUser(ctx, room, cathy, "member"); err != nil {
		t.Fatal(err)
	}
	all := []string{"A1", "B1", "B2", "C1", "C2"}
	evs, ri = f.agree("3.3 bob adds cathy", cs, all...)
	for _, n := range []string{"C1", "C2"} {
		if find(evs[n], client.EventJoined) == nil {
			t.Fatalf("%s did not join: %+v", n, evs[n])
		}
	}
	if pe := find(evs["A1"], client.EventParticipants); pe == nil || pe.Sender == nil || pe.Sender.Client != cs["B1"].ID() {
		t.Fatalf("A1: %+v", evs["A1"])
	}
	if len(ri.Participants) != 3 || len(ri.Members) != 5 {
		t.Fatalf("after adding cathy: %+v", ri)
	}

	// 3.4 Cathy says hello; every other client decrypts it.
	if _, err := cs["C1"].Send(ctx, room, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	others := []string{"A1", "B1", "B2", "C2"}
	f.until(cs, others, func(evs map[string][]client.Event) error {
		for _, n := range others {
			ev := find(evs[n], client.EventMessage)
			if ev == nil {
				return fmt.Errorf("3.4: %s has no message yet", n)
			}
			if string(ev.Data) != "hello" || ev.Sender == nil || ev.Sender.Client != cs["C1"].ID() {
				t.Fatalf("%s: %+v", n, ev)
			}
		}
		return nil
	})
	f.agree("3.4 cathy sends", cs, all...)

	// 3.5 Bob leaves: his Remove and AppSync proposals are cached by the
	// hub (no commit), and committed by Cathy's client once it has them.
	epoch, _ := f.hub()
	if err := cs["B1"].Leave(ctx, room); err != nil {
		t.Fatal(err)
	}
	if e, parts := f.hub(); e != epoch || slices.ContainsFunc(parts, func(p mimi.Participant) bool { return p.User == bob }) {
		t.Fatalf("after the leave proposals the hub is at epoch %d (was %d) with %v", e, epoch, parts)
	}
	stay := []string{"A1", "B2", "C1", "C2"}
	f.until(cs, stay, func(evs map[string][]client.Event) error {
		for _, n := range stay {
			k := 0
			for _, ev := range evs[n] {
				if ev.Type == client.EventProposal && ev.Sender != nil && ev.Sender.Client == cs["B1"].ID() {
					k++
				}
			}
			if k < 3 {
				return fmt.Errorf("3.5: %s has %d of bob's 3 proposals", n, k)
			}
		}
		return nil
	})
	if err := cs["C1"].Commit(ctx, room); err != nil {
		t.Fatal(err)
	}
	rest := []string{"A1", "C1", "C2"}
	f.until(cs, []string{"B1", "B2"}, func(evs map[string][]client.Event) error {
		for _, n := range []string{"B1", "B2"} {
			if find(evs[n], client.EventRemoved) == nil {
				return fmt.Errorf("3.5: %s not removed yet", n)
			}
		}
		return nil
	})
	_, ri = f.agree("3.5 bob leaves", cs, rest...)
	if _, ok := ri.Role(bob); ok || len(ri.Members) != 3 {
		t.Fatalf("after bob left: %+v", ri)
	}
	for _, n := range []string{"B1", "B2"} {
		if rooms := cs[n].Rooms(); len(rooms) != 0 {
			t.Fatalf("%s still in %v", n, rooms)
		}
	}

	// 3.6 Cathy adds a new device by GroupInfo (from the hub, through
	// c.example) and external commit.
	cs["C3"] = newClient(t, ctx, f.p["c.example"].api, cathy, "cathy3", 0)
	if err := cs["C3"].JoinNewDevice(ctx, room); err != nil {
		t.Fatal(err)
	}
	rest = append(rest, "C3")
	_, ri = f.agree("3.6 cathy's new device", cs, rest...)
	if want := []string{cs["A1"].ID(), cs["C1"].ID(), cs["C2"].ID(), cs["C3"].ID()}; !slices.Equal(members(ri), want) {
		t.Fatalf("members %v, want %v", members(ri), want)
	}
	// The new device talks with everyone.
	if _, err := cs["C3"].Send(ctx, room, []byte("from my new device")); err != nil {
		t.Fatal(err)
	}
	f.until(cs, []string{"A1", "C1", "C2"}, func(evs map[string][]client.Event) error {
		for _, n := range []string{"A1", "C1", "C2"} {
			if ev := find(evs[n], client.EventMessage); ev == nil || string(ev.Data) != "from my new device" {
				return fmt.Errorf("%s: no message from C3 yet", n)
			}
		}
		return nil
	})
	f.agree("end", cs, rest...)
	// The hub delivered everything to both followers over /notify.
	dests, err := f.p["a.example"].node.M.FanoutDestinations()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range dests {
		if d.Cursor.Enqueued == 0 || d.Cursor.Acked != d.Cursor.Enqueued {
			t.Fatalf("fanout to %s: %+v", d.Destination, d.Cursor)
		}
		seen[d.Destination] = true
	}
	if !seen["b.example"] || !seen["c.example"] {
		t.Fatalf("fanout destinations %+v", dests)
	}
	// Every client acknowledged its whole inbox.
	for _, n := range rest {
		d := domainOf(cs[n].ID())
		if es, err := f.p[d].node.P.Inbox(cs[n].ID(), 0, 0); err != nil || len(es) != 0 {
			t.Fatalf("%s: %d unacknowledged entries (%v)", n, len(es), err)
		}
	}
}

// domainOf returns the provider of a MIMI URI.
func domainOf(uri string) string {
	u, err := mimi.ParseURI(uri)
	if err != nil {
		return ""
	}
	return u.Provider
}
