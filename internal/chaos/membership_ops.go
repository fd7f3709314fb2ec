package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/remote"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// raceWait bounds how long a racing admin's commit waits for the other's.
const raceWait = 5 * time.Second

// leave has a random client of a random user the actor added leave the
// room (draft-ralston-mimi-protocol-02, Section 3.5), retrying until the
// hub accepted the proposals or GiveUp has passed, then has another member
// complete it at once (the admin commits, or another added user sends a
// message, committing the pending proposals first) or leaves it to the
// admin's next commit. A leave whose answer was lost counts as accepted:
// the SDK then takes it so too (RoomInfo.Leaving), and the next commit
// tells.
func (a *actor) leave(ctx context.Context) bool {
	i := a.rng.IntN(len(a.present))
	u := a.present[i]
	sc := u.devices[a.rng.IntN(len(u.devices))]
	a.fleet.rec.setLabel(sc.id, "leave "+u.user)
	u.left, u.leftAt = sc, len(sc.events)
	deadline := time.Now().Add(a.giveUp)
	for {
		a.st.count(&a.st.calls)
		err := sc.c.Leave(ctx, a.room)
		if err == nil || errors.Is(err, client.ErrUnknownRoom) {
			break // ErrUnknownRoom: a retry found the leave completed
		}
		cause := failureCause(err)
		a.st.fail(cause)
		if cause != "unavailable" {
			a.logf("chaos: membership of %s: leave of %s: %v", a.room, sc.id, err)
		}
		if errors.Is(err, client.ErrOutcomeUnknown) {
			break
		}
		if !a.backoff(ctx, deadline) {
			a.st.count(&a.st.gaveUp)
			a.logf("chaos: membership of %s: gave up the leave of %s: %v", a.room, sc.id, err)
			return true
		}
	}
	a.present = slices.Delete(a.present, i, i+1)
	a.leaving = append(a.leaving, u)
	var others []*simClient
	for _, o := range a.present {
		others = append(others, o.devices...)
	}
	switch n := a.rng.IntN(3); {
	case n == 0:
		return a.completeLeaves(ctx)
	case n == 1 && len(others) > 0:
		a.sendAsMember(ctx, others[a.rng.IntN(len(others))])
	}
	return true
}

// sendAsMember has sc, an added user's client, sync and send one message:
// Send commits the proposals the sync brought first (RFC 9420, Section
// 12.4), which completes a pending leave. Its outcome is the checker's
// business (the message and the commit are recorded).
func (a *actor) sendAsMember(ctx context.Context, sc *simClient) {
	if err := sc.sync(ctx); err != nil {
		return
	}
	label := fmt.Sprintf("%s in %s after a leave", sc.id, a.room)
	a.fleet.rec.setLabel(sc.id, label)
	if _, err := sc.c.Send(ctx, a.room, []byte(label)); err != nil {
		a.st.fail("send")
		a.logf("chaos: membership of %s: send by %s: %v", a.room, sc.id, err)
	}
}

// completeLeaves has the admin commit the pending proposals (Commit) when
// a leave is pending. It returns false when the outcome of the commit
// stayed unknown.
func (a *actor) completeLeaves(ctx context.Context) bool {
	if len(a.leaving) == 0 {
		return true
	}
	var users []string
	for _, u := range a.leaving {
		users = append(users, u.user)
	}
	_, resolved := a.change(ctx, a.admin, time.Now().Add(a.giveUp), fmt.Sprintf("commit the leave of %v", users), func() error {
		return a.admin.c.Commit(ctx, a.room)
	}, func(ri *client.RoomInfo) bool {
		return !slices.ContainsFunc(users, func(u string) bool { _, in := ri.Role(u); return in })
	})
	if resolved {
		a.settle(ctx)
	}
	return resolved
}

// settle syncs the admin while leaves are pending and counts those its
// group shows completed (by any member's commit). A user still in the
// room whose leaving client learned that its leave did not happen
// (client.EventLeaveVoid: the proposals never reached the hub, after
// Leave returned ErrOutcomeUnknown) is present again.
func (a *actor) settle(ctx context.Context) {
	if len(a.leaving) == 0 || a.admin.sync(ctx) != nil {
		return
	}
	ri, err := a.admin.c.Room(a.room)
	if err != nil {
		return
	}
	a.leaving = slices.DeleteFunc(a.leaving, func(u *guestUser) bool {
		if _, in := ri.Role(u.user); in {
			if a.leaveVoid(ctx, u) {
				a.st.count(&a.st.voidLeaves)
				a.present = append(a.present, u)
				return true
			}
			return false
		}
		a.st.count(&a.st.leaves)
		return true
	})
}

// leaveVoid reports whether the client of u that left was told since
// that its leave did not happen, syncing it first if its events do not
// say so yet.
func (a *actor) leaveVoid(ctx context.Context, u *guestUser) bool {
	sc := u.left
	if sc == nil {
		return false
	}
	told := func() bool {
		return slices.ContainsFunc(sc.events[u.leftAt:], func(ev client.Event) bool {
			return ev.Type == client.EventLeaveVoid && ev.Room == a.room
		})
	}
	if !told() && (sc.sync(ctx) != nil || !told()) {
		return false // a failed sync is tried again at the next settle
	}
	u.left = nil
	return true
}

// join has a new client of a random user the actor added join the room by
// external commit (draft-ralston-mimi-protocol-02, Sections 3.6 and 5.6),
// retrying until it joined or GiveUp has passed. After a lost answer the
// next attempt finds the client's leaf in the tree if the hub took the
// first commit, and replaces it (a resync).
func (a *actor) join(ctx context.Context) bool {
	var users []*guestUser
	for _, u := range a.present {
		if len(u.devices) < maxDevices {
			users = append(users, u)
		}
	}
	u := users[a.rng.IntN(len(users))]
	sc, _, err := a.newClient(u.devices[0].domain, u.name, len(u.devices)+1)
	if err != nil {
		a.st.fail("setup")
		a.logf("chaos: membership of %s: new device of %s: %v", a.room, u.user, err)
		return true
	}
	a.guests = append(a.guests, sc)
	a.fleet.rec.setLabel(sc.id, "join "+sc.id)
	if !a.setUp(ctx, sc, "registering", func() error { return sc.c.Register(ctx) }) {
		return true
	}
	deadline := time.Now().Add(a.giveUp)
	for {
		a.st.count(&a.st.calls)
		err := sc.c.JoinNewDevice(ctx, a.room)
		if err == nil || errors.Is(err, client.ErrRoomExists) {
			break
		}
		cause := failureCause(err)
		a.st.fail(cause)
		if cause != "unavailable" {
			a.logf("chaos: membership of %s: join of %s: %v", a.room, sc.id, err)
		}
		if !a.backoff(ctx, deadline) {
			a.st.count(&a.st.gaveUp)
			a.logf("chaos: membership of %s: gave up the join of %s: %v", a.room, sc.id, err)
			return true
		}
	}
	u.devices = append(u.devices, sc)
	a.st.count(&a.st.joins)
	return true
}

// ProblemRaceNotRecovered: a racing admin whose commit the hub answered
// wrongEpoch did not make its change before GiveUp passed: after
// wrongEpoch the SDK must wait for the hub's epoch and commit again
// (draft-ralston-mimi-protocol-02, Section 5.3).
const ProblemRaceNotRecovered ProblemKind = "race-loser-not-recovered"

// race has the room's other admins (a.racing of them, added first, on
// the first race) make one change each, an add of a new user while the
// room has space, else a remove of a user the actor added, with their
// commits held until all are ready (gate), so that the hub takes one and
// answers the others wrongEpoch; the SDK of each loser waits for the hub's
// epoch and commits again, racing the other losers (Section 5.3). Every
// loser must make its change (ProblemRaceNotRecovered). It returns false
// when the outcome of a commit stayed unknown.
func (a *actor) race(ctx context.Context) bool {
	if a.racers == nil && !a.addRacers(ctx) {
		return true
	}
	type plan struct {
		add    *simClient
		remove *guestUser
	}
	plans := make([]plan, a.racing)
	free := a.capacity() - len(a.present) - len(a.leaving)
	removable := slices.Clone(a.present)
	a.rng.Shuffle(len(removable), func(i, j int) { removable[i], removable[j] = removable[j], removable[i] })
	for k := range plans {
		if free > 0 {
			if plans[k].add = a.newGuest(ctx); plans[k].add == nil {
				return true
			}
			free--
			continue
		}
		plans[k].remove, removable = removable[0], removable[1:]
	}
	g := &gate{n: a.racing, open: make(chan struct{})}
	ok, resolved := make([]bool, a.racing), make([]bool, a.racing)
	wrong := make([]int64, a.racing)
	var wg sync.WaitGroup
	for k, p := range plans {
		wrong[k] = a.gates[k].wrongEpochs.Load()
		a.gates[k].gate.Store(g)
		wg.Go(func() {
			if p.add != nil {
				ok[k], resolved[k] = a.addUser(ctx, a.racers[k], p.add, "member")
			} else {
				ok[k], resolved[k] = a.removeUser(ctx, a.racers[k], p.remove)
			}
		})
	}
	wg.Wait()
	all := true
	for k, p := range plans {
		a.gates[k].gate.Store(nil)
		switch {
		case ok[k] && p.add != nil:
			a.present = append(a.present, guestOf(p.add))
		case ok[k]:
			a.present = slices.DeleteFunc(a.present, func(u *guestUser) bool { return u == p.remove })
		}
		all = all && resolved[k]
		lost := a.gates[k].wrongEpochs.Load() - wrong[k]
		if lost == 0 {
			continue
		}
		a.st.count(&a.st.raceLosers)
		switch {
		case ok[k]:
			a.st.count(&a.st.raceRecovered)
		case resolved[k]:
			a.st.mu.Lock()
			a.st.problems = append(a.st.problems, Problem{Kind: ProblemRaceNotRecovered, Client: a.racers[k].id, Room: a.room,
				Detail: fmt.Sprintf("answered wrongEpoch %d times in a race of %d commits, then gave up its change", lost, a.racing)})
			a.st.mu.Unlock()
		}
	}
	a.st.count(&a.st.races)
	if g.sameEpoch() {
		a.st.count(&a.st.racesFull)
	}
	return all
}

// addRacers creates the room's other admins (a.racing of them), at the
// providers after the admin's in turn, and has the admin add them with the
// role admin. It reports whether all are in the room.
func (a *actor) addRacers(ctx context.Context) bool {
	doms := []string{HubDomain, BDomain, CDomain}
	at := slices.Index(doms, a.admin.domain)
	var racers []*simClient
	var gates []*actorProvider
	for k := range a.racing {
		sc, p, err := a.newClient(doms[(at+1+k)%3], fmt.Sprintf("admin%dr%d", a.num, k+1), 1)
		if err != nil {
			a.st.fail("setup")
			a.logf("chaos: membership of %s: new admin: %v", a.room, err)
			return false
		}
		a.guests = append(a.guests, sc)
		if !a.setUp(ctx, sc, "enrolling", func() error { return sc.c.Enroll(ctx, guestKeyPackages) }) {
			return false
		}
		if ok, _ := a.addUser(ctx, a.admin, sc, "admin"); !ok {
			return false
		}
		racers = append(racers, sc)
		gates = append(gates, p)
	}
	a.racers, a.gates = racers, gates
	return true
}

// newClient creates the client mimi://dom/d/<name><device> of user
// mimi://dom/u/<name> (draft-ralston-mimi-protocol-02, Section 3) with an
// actorProvider, which it returns too, and gives its signing key to the
// provider connection; it is not registered yet.
func (a *actor) newClient(dom, name string, device int) (*simClient, *actorProvider, error) {
	sc := &simClient{user: "mimi://" + dom + "/u/" + name, id: fmt.Sprintf("mimi://%s/d/%s%d", dom, name, device), domain: dom}
	var err error
	p := &actorProvider{retrying: a.fleet.prov[dom], st: a.st}
	if sc.c, err = client.New(sc.user, sc.id, cipher.X25519_AES128GCM_SHA256_Ed25519, p, nil); err != nil {
		return nil, nil, err
	}
	s, err := remote.SignerFor(sc.c)
	if err != nil {
		return nil, nil, err
	}
	if err := a.fleet.remote[dom].AddSigner(s); err != nil {
		return nil, nil, err
	}
	return sc, p, nil
}

// actorProvider is the client.Provider of the clients a membership actor
// creates: its domain's retrying provider, which also records proposals
// (one Submit per proposal of an update request) and sends them again
// while no answer comes, as it does commits; it counts the wrongEpoch
// answers (in st, and its own in wrongEpochs), and holds the next commit
// at gate, when one is set.
type actorProvider struct {
	*retrying
	st          *membershipStats
	gate        atomic.Pointer[gate]
	wrongEpochs atomic.Int64
}

// Update implements client.Provider (draft-ralston-mimi-protocol-02,
// Section 5.3).
func (p *actorProvider) Update(ctx context.Context, cl, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	var (
		resp *mimi.UpdateRoomResponse
		err  error
	)
	if req.IsCommit() {
		if g := p.gate.Swap(nil); g != nil {
			g.pass(ctx, req.ProposalOrCommit.Content.Epoch)
		}
		resp, err = p.retrying.Update(ctx, cl, room, req)
	} else {
		resp, err = p.propose(ctx, cl, room, req)
	}
	if err == nil && resp != nil && resp.Code == mimi.UpdateWrongEpoch {
		p.st.count(&p.st.wrongEpochs)
		p.wrongEpochs.Add(1)
	}
	return resp, err
}

// propose sends an update request of proposals, again while no answer
// comes, and records each proposal with the outcome (the same bytes sent
// again by the SDK are the same records).
func (p *actorProvider) propose(ctx context.Context, cl, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	pms := append([]wire.PublicMessage{req.ProposalOrCommit}, req.MoreProposals...)
	msgs := make([][]byte, len(pms))
	for i := range pms {
		b, err := codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: &pms[i]})
		if err != nil {
			return nil, err
		}
		msgs[i] = b
	}
	subs := make([]*Submit, len(pms))
	var fresh []*Submit
	p.rec.mu.Lock()
	for i, b := range msgs {
		var isNew bool
		if subs[i], isNew = p.rec.submitted(nil, cl, room, b); isNew {
			fresh = append(fresh, subs[i])
		}
	}
	p.rec.mu.Unlock()
	resp, err := p.update(ctx, subs[0], cl, room, req)
	p.rec.mu.Lock()
	for _, s := range subs[1:] {
		s.Attempts, s.Acked, s.Refusal, s.Answered = subs[0].Attempts, subs[0].Acked, subs[0].Refusal, subs[0].Answered
	}
	p.rec.mu.Unlock()
	p.st.mu.Lock()
	p.st.proposals = append(p.st.proposals, fresh...)
	p.st.mu.Unlock()
	return resp, err
}

// gate holds the commits of n racing clients until all are ready to be
// sent, or raceWait has passed, so that they are made in the same epoch
// and sent together.
type gate struct {
	n      int
	mu     sync.Mutex
	epochs []uint64 // of the commits that arrived
	open   chan struct{}
	once   sync.Once
}

// sameEpoch reports whether all n commits arrived, all of one epoch.
func (g *gate) sameEpoch() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.epochs) == g.n && !slices.ContainsFunc(g.epochs, func(e uint64) bool { return e != g.epochs[0] })
}

// pass waits, with a commit of epoch, until n commits arrived at the
// gate, raceWait has passed or ctx ended.
func (g *gate) pass(ctx context.Context, epoch uint64) {
	g.mu.Lock()
	g.epochs = append(g.epochs, epoch)
	if len(g.epochs) >= g.n {
		g.once.Do(func() { close(g.open) })
	}
	g.mu.Unlock()
	t := time.NewTimer(raceWait)
	defer t.Stop()
	select {
	case <-g.open:
	case <-ctx.Done():
	case <-t.C:
		g.once.Do(func() { close(g.open) })
	}
}
