package client_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/local"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/provider/providertest"
)

// realNet is three real providers (a.example, the hub, b.example and
// c.example) on standalone Raft nodes, federated in process.
type realNet struct {
	t     testing.TB
	net   *providertest.Net
	nodes map[string]*providertest.Node
	// hold stops pump: nothing is fanned out while it is set (a test may
	// release it from another goroutine).
	hold atomic.Bool
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
	if r.hold.Load() {
		return
	}
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

// lossyUploads stores every KeyPackage upload at the provider but loses
// the answer of the first lose ones (the provider's answer never reaches
// the client).
type lossyUploads struct {
	client.Provider
	lose  int
	calls int
}

func (l *lossyUploads) UploadKeyPackages(ctx context.Context, cl string, kps []*wire.KeyPackage) error {
	err := l.Provider.UploadKeyPackages(ctx, cl, kps)
	l.calls++
	if l.calls <= l.lose {
		return errors.New("connection reset after the upload")
	}
	return err
}

// TestPublishKeyPackagesLostAnswer: an upload whose answer was lost is sent
// again, and the provider takes it as done (draft-ralston-mimi-protocol-02,
// Section 4.3.1); when no answer comes at all the private keys are kept,
// since the provider holds the KeyPackages and may hand them out.
func TestPublishKeyPackagesLostAnswer(t *testing.T) {
	ctx := context.Background()
	r := newRealNet(t)
	node := r.nodes["b.example"]
	for _, tc := range []struct {
		name    string
		lose    int
		wantErr error
	}{{"one answer lost", 1, nil}, {"every answer lost", 100, client.ErrOutcomeUnknown}} {
		t.Run(tc.name, func(t *testing.T) {
			p := &lossyUploads{Provider: r.provider("b.example"), lose: tc.lose}
			dev := "mimi://b.example/d/" + strings.ReplaceAll(tc.name, " ", "-")
			c, err := client.New(bob, dev, suite, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Register(ctx); err != nil {
				t.Fatal(err)
			}
			refs, err := c.PublishKeyPackages(ctx, 2)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("PublishKeyPackages: %v, want %v", err, tc.wantErr)
			}
			if len(refs) != 2 || c.KeyPackageCount() != 2 {
				t.Fatalf("%d refs, %d private keys kept; want 2 and 2", len(refs), c.KeyPackageCount())
			}
			if p.calls < 2 {
				t.Fatalf("%d uploads, want the lost one sent again", p.calls)
			}
			held, err := node.M.ClaimableKeyPackages(dev, 0, uint64(time.Now().UnixMilli()))
			if err != nil || len(held) != 2 {
				t.Fatalf("the provider holds %d KeyPackages (%v), want 2", len(held), err)
			}
		})
	}
}

// lossyNet is a realNet whose providers lose the answer to every update
// of the clients in lose: the hub decides them, the client never learns
// how; and the update itself of the clients in drop.
type lossyNet struct {
	*realNet
	lose, drop map[string]bool
	// afterLost, when set, runs once when an update's answer is lost,
	// after the hub decided it.
	afterLost func()
}

func (l *lossyNet) provider(domain string) client.Provider {
	return &lossyUpdates{Provider: l.realNet.provider(domain), net: l}
}

// lossyRoom is lossyWorld with the names of the clients in clubhouse;
// it skips the test in -short mode.
func lossyRoom(t *testing.T) (*lossyNet, *world, []string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts three Raft nodes")
	}
	l, w := lossyWorld(t)
	return l, w, []string{"ClientA1", "ClientB1", "ClientB2", "ClientC1"}
}

// lossyWorld is threeUsersIn on a lossyNet that loses nothing yet.
func lossyWorld(t *testing.T) (*lossyNet, *world) {
	l := &lossyNet{realNet: newRealNet(t), lose: map[string]bool{}, drop: map[string]bool{}}
	return l, threeUsersIn(t, &world{t: t, ctx: context.Background(), be: l, clients: map[string]*client.Client{}})
}

type lossyUpdates struct {
	client.Provider
	net *lossyNet
}

func (l *lossyUpdates) Update(ctx context.Context, cl, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	if l.net.drop[cl] {
		return nil, errors.New("connection reset before the update")
	}
	resp, err := l.Provider.Update(ctx, cl, room, req)
	if l.net.lose[cl] {
		if f := l.net.afterLost; f != nil {
			l.net.afterLost = nil
			f()
		}
		return nil, errors.New("connection reset after the update")
	}
	return resp, err
}

// TestCommitAnswerLostWithProviders: a client whose every try of a commit
// lost its answer (ErrOutcomeUnknown) learns from the echo of its commit,
// which the providers deliver to it like to every member
// (draft-ralston-mimi-protocol-02, Section 5.5), that the hub accepted it;
// for a client at the hub and for one at a follower, which then commits
// again at once.
func TestCommitAnswerLostWithProviders(t *testing.T) {
	l, w, all := lossyRoom(t)
	a1, c1 := w.clients["ClientA1"], w.clients["ClientC1"]

	l.lose[a1.ID()] = true
	before := l.epoch(clubhouse)
	if err := a1.SetRole(w.ctx, clubhouse, cathy, "admin"); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("SetRole with its answers lost: %v", err)
	}
	if l.epoch(clubhouse) != before+1 {
		t.Fatalf("hub at epoch %d, want %d: the commit was not accepted", l.epoch(clubhouse), before+1)
	}
	l.lose[a1.ID()] = false
	w.sync(all...)
	ri := w.agree(clubhouse, all...)
	if r, _ := ri.Role(cathy); r != "admin" {
		t.Fatalf("%+v", ri)
	}

	l.lose[c1.ID()] = true
	if err := c1.SetRole(w.ctx, clubhouse, bob, "reader"); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("SetRole via a follower with its answers lost: %v", err)
	}
	l.lose[c1.ID()] = false
	// The next operation syncs first: the echo merges the lost commit,
	// and the new commit builds on it.
	if err := c1.SetRole(w.ctx, clubhouse, bob, "member"); err != nil {
		t.Fatalf("committing after the lost answer: %v", err)
	}
	w.sync(all...)
	ri = w.agree(clubhouse, all...)
	if r, _ := ri.Role(bob); r != "member" || l.epoch(clubhouse) != before+3 {
		t.Fatalf("bob is %q at epoch %d, want member at %d", r, l.epoch(clubhouse), before+3)
	}
}

// TestCommitAcceptedThenOvertaken: a commit's first try is accepted but
// its answer lost, and another member commits on top of it before the
// client sends it again; the hub answers that resend wrongEpoch, as it
// recognizes only the commit it accepted last
// (draft-ralston-mimi-protocol-02, Section 5.3). The client keeps the
// commit pending, merges its echo and reports the change made, without
// making it a second time over the other member's.
func TestCommitAcceptedThenOvertaken(t *testing.T) {
	l, w, all := lossyRoom(t)
	a1, c1 := w.clients["ClientA1"], w.clients["ClientC1"]
	if err := a1.SetRole(w.ctx, clubhouse, cathy, "admin"); err != nil {
		t.Fatal(err)
	}
	w.sync(all...)
	before := l.epoch(clubhouse)
	l.lose[a1.ID()] = true
	l.afterLost = func() {
		l.lose[a1.ID()] = false
		w.sync("ClientC1")
		if err := c1.SetRole(w.ctx, clubhouse, bob, "member"); err != nil {
			t.Errorf("cathy's commit on top: %v", err)
		}
	}
	if err := a1.SetRole(w.ctx, clubhouse, bob, "reader"); err != nil {
		t.Fatalf("alice's change, accepted at the first try: %v", err)
	}
	if got := l.epoch(clubhouse); got != before+2 {
		t.Fatalf("hub at %d, want %d: alice's commit and cathy's", got, before+2)
	}
	w.sync(all...)
	if r, _ := w.agree(clubhouse, all...).Role(bob); r != "member" {
		t.Fatalf("bob is %q, want member (cathy's later change)", r)
	}
}

// TestJoinNewDeviceAnswerLost: a new device's external commit whose
// every answer was lost (ErrOutcomeUnknown) is completed by its echo
// (EventJoined) when the hub accepted it, and sent again by the next
// JoinNewDevice when it never reached the hub
// (draft-ralston-mimi-protocol-02, Sections 3.6 and 5.3).
func TestJoinNewDeviceAnswerLost(t *testing.T) {
	l, w, all := lossyRoom(t)
	before := l.epoch(clubhouse)

	c2 := w.add("ClientC2", cathy, 0)
	l.lose[c2.ID()] = true
	if err := c2.JoinNewDevice(w.ctx, clubhouse); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("a join with its answers lost: %v", err)
	}
	l.lose[c2.ID()] = false
	if got := l.epoch(clubhouse); got != before+1 {
		t.Fatalf("hub at %d, want %d: the external commit was not accepted", got, before+1)
	}
	if ev := find(w.sync("ClientC2")["ClientC2"], client.EventJoined); ev == nil || ev.Epoch != before+1 {
		t.Fatalf("the echo did not complete the join: %+v", ev)
	}
	all = append(all, "ClientC2")
	w.sync(all...)
	w.agree(clubhouse, all...)

	// Accepted, answers lost, and JoinNewDevice called again before any
	// sync: the same commit is sent again and answered with its success.
	c3 := w.add("ClientC3", cathy, 0)
	l.lose[c3.ID()] = true
	if err := c3.JoinNewDevice(w.ctx, clubhouse); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("a join with its answers lost: %v", err)
	}
	l.lose[c3.ID()] = false
	if err := c3.JoinNewDevice(w.ctx, clubhouse); err != nil {
		t.Fatalf("joining again: %v", err)
	}
	if got := l.epoch(clubhouse); got != before+2 {
		t.Fatalf("hub at %d, want %d: one external commit, sent twice", got, before+2)
	}

	// Never reached the hub: joining again sends it.
	c4 := w.add("ClientC4", cathy, 0)
	l.drop[c4.ID()] = true
	if err := c4.JoinNewDevice(w.ctx, clubhouse); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("a join that never arrived: %v", err)
	}
	l.drop[c4.ID()] = false
	if err := c4.JoinNewDevice(w.ctx, clubhouse); err != nil {
		t.Fatalf("joining again: %v", err)
	}
	if got := l.epoch(clubhouse); got != before+3 {
		t.Fatalf("hub at %d, want %d", got, before+3)
	}
	all = append(all, "ClientC3", "ClientC4")
	w.sync(all...)
	w.agree(clubhouse, all...)
}

// TestLeaveVoid: leave proposals that never reached the hub
// (ErrOutcomeUnknown) are not in the next commit; the client learns that
// its leave did not happen (EventLeaveVoid), is a member again, and can
// leave again (draft-ralston-mimi-protocol-02, Section 3.5).
func TestLeaveVoid(t *testing.T) {
	l, w, all := lossyRoom(t)
	b1 := w.clients["ClientB1"]
	l.drop[b1.ID()] = true
	if err := b1.Leave(w.ctx, clubhouse); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("a leave that never arrived: %v", err)
	}
	l.drop[b1.ID()] = false
	if _, err := b1.Send(w.ctx, clubhouse, []byte("x")); !errors.Is(err, client.ErrLeaving) {
		t.Fatalf("sending while the leave is open: %v", err)
	}
	if err := w.clients["ClientA1"].Commit(w.ctx, clubhouse); err != nil {
		t.Fatal(err)
	}
	ev := find(w.sync("ClientB1")["ClientB1"], client.EventLeaveVoid)
	if ev == nil || !errors.Is(ev.Err, client.ErrLeaving) {
		t.Fatalf("no void leave reported: %+v", ev)
	}
	if _, err := b1.Send(w.ctx, clubhouse, []byte("still here")); err != nil {
		t.Fatalf("sending after the void leave: %v", err)
	}
	w.sync(all...)
	w.agree(clubhouse, all...)
	if err := b1.Leave(w.ctx, clubhouse); err != nil {
		t.Fatalf("leaving again: %v", err)
	}
}

// TestCommitUnresolvedAcrossRestart: a client saved while its commit's
// outcome was unknown, and loaded again, still settles the commit: by its
// echo when the hub accepted it, by sending the same request again when
// the request never reached the hub (draft-ralston-mimi-protocol-02,
// Sections 5.3 and 5.5).
func TestCommitUnresolvedAcrossRestart(t *testing.T) {
	l, w, all := lossyRoom(t)
	restart := func(name string) {
		t.Helper()
		st, err := w.clients[name].Save()
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Load(st, l.provider(domainOf(w.clients[name].ID())), nil)
		if err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}
		if again, err := c.Save(); err != nil || !bytes.Equal(again, st) {
			t.Fatalf("%s: Save(Load(state)) differs (%v)", name, err)
		}
		w.clients[name] = c
	}
	c1 := w.clients["ClientC1"]
	before := l.epoch(clubhouse)

	// Accepted, every answer lost: the restored client merges the echo.
	l.lose[c1.ID()] = true
	if err := c1.Commit(w.ctx, clubhouse); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("a commit with its answers lost: %v", err)
	}
	l.lose[c1.ID()] = false
	restart("ClientC1")
	w.sync(all...)
	if got := w.agree(clubhouse, all...); got.Epoch != before+1 {
		t.Fatalf("epoch %d after the echo, want %d", got.Epoch, before+1)
	}

	// Never reached the hub: the restored client sends the same commit
	// again before its next one.
	c1 = w.clients["ClientC1"]
	l.drop[c1.ID()] = true
	if err := c1.Commit(w.ctx, clubhouse); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("a commit that never arrived: %v", err)
	}
	l.drop[c1.ID()] = false
	if l.epoch(clubhouse) != before+1 {
		t.Fatalf("hub at %d: the dropped commit arrived", l.epoch(clubhouse))
	}
	restart("ClientC1")
	if err := w.clients["ClientC1"].Commit(w.ctx, clubhouse); err != nil {
		t.Fatalf("committing after the restart: %v", err)
	}
	if got := l.epoch(clubhouse); got != before+3 {
		t.Fatalf("hub at %d, want %d (the resent commit, then the new one)", got, before+3)
	}
	w.sync(all...)
	w.agree(clubhouse, all...)
}

// TestCommitUnresolvedThenCommit: a client whose commit's outcome is
// unknown settles it before changing the room again, also when the echo
// has not arrived yet: it sends the same commit again, which the hub
// answers with its first success when it accepted it
// (draft-ralston-mimi-protocol-02, Section 5.3), or with wrongEpoch when
// another commit won, after which the client syncs that one and goes on.
func TestCommitUnresolvedThenCommit(t *testing.T) {
	l, w, all := lossyRoom(t)
	a1, c1 := w.clients["ClientA1"], w.clients["ClientC1"]
	before := l.epoch(clubhouse)

	// Accepted, answer lost, echo held back: c1 commits again at once.
	l.lose[c1.ID()] = true
	l.hold.Store(true)
	if err := c1.Commit(w.ctx, clubhouse); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("an empty commit with its answers lost: %v", err)
	}
	if l.epoch(clubhouse) != before+1 {
		t.Fatalf("hub at %d, want %d", l.epoch(clubhouse), before+1)
	}
	l.lose[c1.ID()] = false
	if err := c1.Commit(w.ctx, clubhouse); err != nil {
		t.Fatalf("committing again before the echo arrived: %v", err)
	}
	if ep, _ := c1.Epoch(clubhouse); ep != before+2 || l.epoch(clubhouse) != before+2 {
		t.Fatalf("client at %d, hub at %d, want both at %d", ep, l.epoch(clubhouse), before+2)
	}
	l.hold.Store(false)
	w.sync(all...)
	w.agree(clubhouse, all...)

	// Never reached the hub, and another commit won: c1 learns it from
	// wrongEpoch, syncs the winner and commits on top of it.
	l.drop[c1.ID()] = true
	if err := c1.Commit(w.ctx, clubhouse); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("a commit that never reached the hub: %v", err)
	}
	l.drop[c1.ID()] = false
	if err := a1.Commit(w.ctx, clubhouse); err != nil {
		t.Fatal(err)
	}
	if err := c1.Commit(w.ctx, clubhouse); err != nil {
		t.Fatalf("committing after another commit won: %v", err)
	}
	w.sync(all...)
	w.agree(clubhouse, all...)
	if got := l.epoch(clubhouse); got != before+4 {
		t.Fatalf("hub at %d, want %d", got, before+4)
	}
}

// TestCommitAfterUnseenLeave: bob leaves (his proposals cached by the hub,
// Section 3.5) while the fanout is held, so cathy's role change at
// c.example omits them and the hub refuses it as notAllowed; cathy waits
// for what she had not seen and, since one commit holds one
// participant-list AppSync, commits bob's leave on its own first and her
// change after it.
func TestCommitAfterUnseenLeave(t *testing.T) {
	l, w, all := lossyRoom(t)
	a1, c1 := w.clients["ClientA1"], w.clients["ClientC1"]
	if err := a1.SetRole(w.ctx, clubhouse, cathy, "admin"); err != nil {
		t.Fatal(err)
	}
	w.sync(all...)
	before := l.epoch(clubhouse)
	l.hold.Store(true)
	if err := w.clients["ClientB1"].Leave(w.ctx, clubhouse); err != nil {
		t.Fatalf("bob leaves: %v", err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(150 * time.Millisecond)
		l.hold.Store(false)
	}()
	if err := c1.SetRole(w.ctx, clubhouse, alice, "member"); err != nil {
		t.Fatalf("role change after an unseen leave: %v", err)
	}
	<-released
	if got := l.epoch(clubhouse); got != before+2 {
		t.Fatalf("hub at %d, want %d (the leave, then the role change)", got, before+2)
	}
	evs := w.sync(all...)
	for _, n := range []string{"ClientB1", "ClientB2"} {
		if find(evs[n], client.EventRemoved) == nil {
			t.Fatalf("%s was not removed: %+v", n, evs[n])
		}
	}
	ri := w.agree(clubhouse, "ClientA1", "ClientC1")
	if r, _ := ri.Role(alice); r != "member" {
		t.Fatalf("%+v", ri)
	}
}

// TestLateMessageAfterOwnCommits: while the hub's fanout to c.example
// waits, cathy's own commits (relayed by c.example, which still reaches
// the hub) move her group more epochs past a message bob sent before
// them than DefaultPastEpochs; when the backlog arrives she still
// decrypts it (past epochs kept for Options.PastEpochTime;
// draft-ralston-mimi-protocol-02, Section 5.5).
func TestLateMessageAfterOwnCommits(t *testing.T) {
	l, w, all := lossyRoom(t)
	c1 := w.clients["ClientC1"]
	if err := w.clients["ClientA1"].SetRole(w.ctx, clubhouse, cathy, "admin"); err != nil {
		t.Fatal(err)
	}
	w.sync(all...)
	l.hold.Store(true)
	if _, err := w.clients["ClientB1"].Send(w.ctx, clubhouse, []byte("before your commits")); err != nil {
		t.Fatal(err)
	}
	for range client.DefaultPastEpochs + 2 {
		if err := c1.Commit(w.ctx, clubhouse); err != nil {
			t.Fatal(err)
		}
	}
	l.hold.Store(false)
	evs := w.sync("ClientC1")
	if ev := find(evs["ClientC1"], client.EventMessage); ev == nil || string(ev.Data) != "before your commits" {
		t.Fatalf("cathy: %+v", evs["ClientC1"])
	}
	w.sync(all...)
	w.agree(clubhouse, all...)
}

// TestTwoLeavesInOneEpoch: bob leaves, then cathy leaves before anyone
// committed bob's leave; one commit holds one participant-list AppSync,
// so cathy's client completes bob's leave first (Section 3.5), then
// proposes hers, which alice's next commit completes.
func TestTwoLeavesInOneEpoch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Raft nodes")
	}
	l, w := lossyWorld(t)
	before := l.epoch(clubhouse)
	if err := w.clients["ClientB1"].Leave(w.ctx, clubhouse); err != nil {
		t.Fatalf("bob leaves: %v", err)
	}
	if err := w.clients["ClientC1"].Leave(w.ctx, clubhouse); err != nil {
		t.Fatalf("cathy leaves after bob: %v", err)
	}
	if err := w.clients["ClientA1"].Commit(w.ctx, clubhouse); err != nil {
		t.Fatal(err)
	}
	if got := l.epoch(clubhouse); got != before+2 {
		t.Fatalf("hub at %d, want %d", got, before+2)
	}
	evs := w.sync("ClientB1", "ClientB2", "ClientC1")
	for _, n := range []string{"ClientB1", "ClientB2", "ClientC1"} {
		if find(evs[n], client.EventRemoved) == nil {
			t.Fatalf("%s was not removed: %+v", n, evs[n])
		}
	}
	ri := w.agree(clubhouse, "ClientA1")
	if len(ri.Members) != 1 {
		t.Fatalf("members %+v", ri.Members)
	}
}
