package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/openmimi/mimi/client"
	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
)

// Problems the membership changes can reveal beyond Check's.
const (
	// ProblemMemberState: once every client synced, a client's view of a
	// room (MLS epoch, participant list, members, epoch authenticator)
	// disagrees with the hub's room state or with another member's, or a
	// client the hub does not list as a member still holds the room
	// (draft-ralston-mimi-protocol-02, Sections 4.3 and 5.5; RFC 9420,
	// Section 8.7).
	ProblemMemberState ProblemKind = "member-state-disagrees"
	// ProblemMembershipUnresolved: a commit of a membership actor got no
	// answer through every retry (client.ErrOutcomeUnknown) until GiveUp
	// passed, and ten seconds of syncing did not show whether the hub
	// accepted it: the SDK keeps the commit pending and merges it when its
	// echo arrives (Section 5.5), which it did not. The actor stops.
	ProblemMembershipUnresolved ProblemKind = "membership-outcome-unresolved"
)

const (
	// maxGuests bounds the users an actor added that are in its room at
	// once (leaving ones included).
	maxGuests = 3
	// maxDevices bounds the clients of one such user (the first, added
	// with the user, and those joined by external commit).
	maxDevices = 2
	// guestKeyPackages is how many KeyPackages a new client publishes (a
	// claim whose answer was lost uses one up).
	guestKeyPackages = 3
)

// MembershipOp is one kind of change a membership actor makes
// (Config.MembershipOps).
type MembershipOp string

// The membership actors' operations (draft-ralston-mimi-protocol-02).
const (
	// OpAdd: the room's admin adds a new user with one client at a
	// random provider (Sections 3.2, 3.3, 5.2 and 5.3).
	OpAdd MembershipOp = "add"
	// OpRemove: the admin removes a user it added, every client of it
	// (Section 3.5, "a user removing another user").
	OpRemove MembershipOp = "remove"
	// OpLeave: a client of a user the admin added leaves (client.Leave:
	// Remove proposals for each of its user's clients and an AppSync
	// removing the user, cached by the hub, Section 3.5); another
	// member's next commit completes it: the admin's (Commit, or its next
	// change) or a Send of another added user, which commits pending
	// proposals first.
	OpLeave MembershipOp = "leave"
	// OpJoin: a new client of a user the admin added joins by external
	// commit (client.JoinNewDevice: GroupInfo, then the commit through
	// update, Sections 3.6 and 5.6).
	OpJoin MembershipOp = "join"
	// OpRace: the room's other admins (Config.RaceCommitters of them,
	// default two, added by its admin on the first race) commit a change
	// each at the same moment: the commits are made in the same epoch and
	// sent together, the hub takes one and answers the others wrongEpoch,
	// and their senders wait for the hub's epoch and commit again, racing
	// each other again when more than one lost (Section 5.3).
	OpRace MembershipOp = "race"
)

// MembershipOps lists every operation of the membership actors.
func MembershipOps() []MembershipOp {
	return []MembershipOp{OpAdd, OpRemove, OpLeave, OpJoin, OpRace}
}

// ParseMembershipOps parses a comma-separated list of operations ("all"
// for every one).
func ParseMembershipOps(s string) ([]MembershipOp, error) {
	if s == "all" {
		return MembershipOps(), nil
	}
	var out []MembershipOp
	for f := range strings.SplitSeq(s, ",") {
		op := MembershipOp(strings.TrimSpace(f))
		if !slices.Contains(MembershipOps(), op) {
			return nil, fmt.Errorf("chaos: unknown membership operation %q (want %v or all)", op, MembershipOps())
		}
		if !slices.Contains(out, op) {
			out = append(out, op)
		}
	}
	return out, nil
}

// membershipStats counts the membership actors' work.
type membershipStats struct {
	mu sync.Mutex
	// adds and removes count the changes made by an admin, leaves the
	// leaves completed, joins the clients joined by external commit,
	// races the races of admins' commits run; calls counts the calls
	// of the SDK operations (AddUser, RemoveUser, Commit, Leave,
	// JoinNewDevice), gaveUp the changes abandoned after GiveUp.
	adds, removes, leaves, joins, races, calls, gaveUp int
	// voidLeaves counts the leaves that did not happen: their proposals
	// never reached the hub (client.EventLeaveVoid).
	voidLeaves int
	// raceLosers counts the racing admins answered wrongEpoch at least
	// once, raceRecovered those of them that then made their change,
	// racesFull the races whose commits were all of one epoch.
	raceLosers, raceRecovered, racesFull int
	// wrongEpochs counts the wrongEpoch answers to the update requests
	// of the actors' clients (Section 5.3).
	wrongEpochs int
	// failures counts the failed calls by cause.
	failures map[string]int
	problems []Problem
	// proposals records the proposals the actors' clients submitted.
	proposals []*Submit
}

func (s *membershipStats) fail(cause string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures == nil {
		s.failures = map[string]int{}
	}
	s.failures[cause]++
}

// count adds 1 to the counter n points to.
func (s *membershipStats) count(n *int) {
	s.mu.Lock()
	*n++
	s.mu.Unlock()
}

func (s *membershipStats) changes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adds + s.removes + s.leaves + s.joins
}

// failureCause classifies an error of a membership operation or Enroll.
func failureCause(err error) string {
	switch {
	case errors.Is(err, client.ErrOutcomeUnknown):
		return "outcome-unknown"
	case errors.Is(err, client.ErrWrongEpoch):
		return "wrong-epoch"
	case errors.Is(err, client.ErrNotAllowed):
		return "not-allowed"
	case errors.Is(err, client.ErrInvalidProposal):
		return "invalid-proposal"
	case errors.Is(err, client.ErrNoKeyMaterial):
		return "no-key-material"
	case errors.Is(err, client.ErrNoGroupInfo):
		return "no-group-info"
	}
	return "unavailable"
}

// guestUser is a user an actor added (mimi://<domain>/u/<name>), with its
// clients.
type guestUser struct {
	user, name string
	devices    []*simClient
	// left is the device whose Leave is pending, leftAt the number of
	// its events when it called Leave: a client.EventLeaveVoid after
	// that says the leave did not happen (settle).
	left   *simClient
	leftAt int
}

// guestOf returns the user of sc, a new user's first client.
func guestOf(sc *simClient) *guestUser {
	return &guestUser{user: sc.user, name: strings.TrimPrefix(sc.user, "mimi://"+sc.domain+"/u/"), devices: []*simClient{sc}}
}

// actor changes the membership of one room while the nodes are killed
// (draft-ralston-mimi-protocol-02, Sections 3.2 to 3.6, 5.3 and 5.6): it
// draws its operations (MembershipOp) in rounds, each enabled operation
// once per round in random order (skipping those the room's state does
// not allow yet), and tries each change again after a failure until it is
// made or GiveUp has passed. The checker then judges every client against
// the hub log.
type actor struct {
	room  string
	num   int // the room's number, for the new users' names
	admin *simClient
	fleet *fleet
	rng   *rand.Rand
	rngMu sync.Mutex // the racing admins back off concurrently
	// ops are the enabled operations, round those left in this round.
	ops, round []MembershipOp
	// every is the mean pause between two changes, giveUp bounds one.
	every, giveUp time.Duration
	st            *membershipStats
	logf          func(string, ...any)
	// guests are the clients the actor created (every device, and the
	// racing admins); present the users it added that are in the room,
	// leaving those whose leave proposals await a commit; users counts
	// the users created.
	guests           []*simClient
	present, leaving []*guestUser
	users            int
	// racing is the number of admins that race (Config.RaceCommitters);
	// racers are the room's other admins (set on the first race), gates
	// the providers that hold their commits.
	racing int
	racers []*simClient
	gates  []*actorProvider
}

// capacity bounds the users the actor added that are in its room at once
// (leaving ones included): maxGuests, or more for a race of more
// committers, each of which may add one.
func (a *actor) capacity() int { return max(maxGuests, a.racing) }

// run makes changes until stop is closed, ctx ends, or the outcome of a
// commit stays unknown; when stopped, it first completes the leaves still
// pending.
func (a *actor) run(ctx context.Context, stop <-chan struct{}) {
	for {
		pause := a.every/2 + time.Duration(a.rng.Int64N(int64(a.every)))
		select {
		case <-stop:
			a.completeLeaves(ctx)
			return
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		var resolved bool
		switch a.next() {
		case OpAdd:
			resolved = a.add(ctx)
		case OpRemove:
			resolved = a.remove(ctx)
		case OpLeave:
			resolved = a.leave(ctx)
		case OpJoin:
			resolved = a.join(ctx)
		case OpRace:
			resolved = a.race(ctx)
		default:
			resolved = a.completeLeaves(ctx)
		}
		if !resolved {
			return
		}
		a.settle(ctx)
	}
}

// next draws the next operation: the first of the round that the room
// allows now (a new round starts when none does), else an add or remove,
// else "" (complete the pending leaves).
func (a *actor) next() MembershipOp {
	for range 2 {
		if len(a.round) == 0 {
			a.round = slices.Clone(a.ops)
			a.rng.Shuffle(len(a.round), func(i, j int) { a.round[i], a.round[j] = a.round[j], a.round[i] })
		}
		for i, op := range a.round {
			if a.allows(op) {
				a.round = slices.Delete(a.round, i, i+1)
				return op
			}
		}
		a.round = nil
	}
	for _, op := range []MembershipOp{OpAdd, OpRemove} {
		if a.allows(op) {
			return op
		}
	}
	return ""
}

// allows reports whether the room's state allows op now: room for a new
// user, a user to remove or to leave, a user with room for a device (and
// no leave pending: an external commit cannot include the cached
// proposals, RFC 9420, Section 12.4.3.2), or room for a change of every
// racer.
func (a *actor) allows(op MembershipOp) bool {
	free := a.capacity() - len(a.present) - len(a.leaving)
	switch op {
	case OpAdd:
		return free > 0
	case OpRemove, OpLeave:
		return len(a.present) > 0
	case OpJoin:
		return len(a.leaving) == 0 && slices.ContainsFunc(a.present, func(u *guestUser) bool { return len(u.devices) < maxDevices })
	case OpRace:
		return min(free, a.racing)+len(a.present) >= a.racing
	}
	return false
}

// newGuest creates a new user's client at a random provider, registers
// it and publishes its KeyPackages. It returns nil when that failed
// until GiveUp.
func (a *actor) newGuest(ctx context.Context) *simClient {
	dom := []string{HubDomain, BDomain, CDomain}[a.rng.IntN(3)]
	a.users++
	sc, _, err := a.newClient(dom, fmt.Sprintf("r%dg%d", a.num, a.users), 1)
	if err != nil {
		a.st.fail("setup")
		a.logf("chaos: membership of %s: new client: %v", a.room, err)
		return nil
	}
	a.guests = append(a.guests, sc)
	if !a.setUp(ctx, sc, "enrolling", func() error { return sc.c.Enroll(ctx, guestKeyPackages) }) {
		return nil
	}
	return sc
}

// add creates a new user's client and has the admin add the user. It
// returns false when the outcome of the commit stayed unknown.
func (a *actor) add(ctx context.Context) bool {
	sc := a.newGuest(ctx)
	if sc == nil {
		return true
	}
	ok, resolved := a.addUser(ctx, a.admin, sc, "member")
	if ok {
		a.present = append(a.present, guestOf(sc))
	}
	return resolved
}

// addUser has by add sc's user to the room with role (see change).
func (a *actor) addUser(ctx context.Context, by, sc *simClient, role string) (ok, resolved bool) {
	ok, resolved = a.change(ctx, by, time.Now().Add(a.giveUp), "add "+sc.user, func() error {
		err := by.c.AddUser(ctx, a.room, sc.user, role)
		switch {
		case errors.Is(err, client.ErrAlreadyParticipant):
			return nil // an earlier attempt's commit was applied since
		case errors.Is(err, client.ErrNoKeyMaterial):
			// Claims whose answers were lost used the KeyPackages up.
			if _, err := sc.c.PublishKeyPackages(ctx, guestKeyPackages); err != nil {
				a.logf("chaos: membership of %s: publishing KeyPackages of %s: %v", a.room, sc.id, err)
			}
		}
		return err
	}, func(ri *client.RoomInfo) bool {
		_, in := ri.Role(sc.user)
		return in
	})
	if ok {
		a.st.count(&a.st.adds)
	}
	return ok, resolved
}

// remove has the admin remove a random user it added. It returns false
// when the outcome of the commit stayed unknown.
func (a *actor) remove(ctx context.Context) bool {
	i := a.rng.IntN(len(a.present))
	ok, resolved := a.removeUser(ctx, a.admin, a.present[i])
	if ok {
		a.present = slices.Delete(a.present, i, i+1)
	}
	return resolved
}

// removeUser has by remove u from the room (see change).
func (a *actor) removeUser(ctx context.Context, by *simClient, u *guestUser) (ok, resolved bool) {
	ok, resolved = a.change(ctx, by, time.Now().Add(a.giveUp), "remove "+u.user, func() error {
		err := by.c.RemoveUser(ctx, a.room, u.user)
		if errors.Is(err, client.ErrNotParticipant) {
			return nil // an earlier attempt's commit was applied since
		}
		return err
	}, func(ri *client.RoomInfo) bool {
		_, in := ri.Role(u.user)
		return !in
	})
	if ok {
		a.st.count(&a.st.removes)
	}
	return ok, resolved
}

// change has sc call op (one commit of the SDK: AddUser, RemoveUser,
// Commit) until it succeeds or deadline passes. A refusal or failure
// leaves no commit pending in the SDK, so the next call starts afresh.
// A commit that got no answer (client.ErrOutcomeUnknown) stays pending in
// the SDK, which settles it before the next call's commit by sending it
// again (the hub answers it with its first success if it took it) or
// learns its fate from its echo or the commit that won; op then finds its
// change made (nil) or makes it again. When the deadline passes on an
// unknown outcome, sc syncs until done reports the change in its group
// (its provider delivered the commit's echo, which the SDK recognizes as
// its pending commit); otherwise the outcome stays unknown
// (ProblemMembershipUnresolved). ok reports that the change was made,
// resolved that sc's group is not left with a commit of unknown outcome.
func (a *actor) change(ctx context.Context, sc *simClient, deadline time.Time, what string, op func() error, done func(*client.RoomInfo) bool) (ok, resolved bool) {
	a.fleet.rec.setLabel(sc.id, what)
	for {
		a.st.count(&a.st.calls)
		err := op()
		if err == nil {
			return true, true
		}
		cause := failureCause(err)
		a.st.fail(cause)
		if cause != "unavailable" {
			a.logf("chaos: membership of %s: %s by %s: %v", a.room, what, sc.id, err)
		}
		if a.backoff(ctx, deadline) {
			continue
		}
		if errors.Is(err, client.ErrOutcomeUnknown) {
			if a.awaitEcho(ctx, sc, done) {
				return true, true
			}
			a.st.mu.Lock()
			a.st.problems = append(a.st.problems, Problem{Kind: ProblemMembershipUnresolved, Client: sc.id, Room: a.room,
				Detail: fmt.Sprintf("%s: %v", what, err)})
			a.st.mu.Unlock()
			return false, false
		}
		a.st.count(&a.st.gaveUp)
		a.logf("chaos: membership of %s: gave up %s: %v", a.room, what, err)
		return false, true
	}
}

// awaitEcho syncs sc for up to ten seconds, until done reports the change
// in its group.
func (a *actor) awaitEcho(ctx context.Context, sc *simClient, done func(*client.RoomInfo) bool) bool {
	until := time.Now().Add(10 * time.Second)
	for time.Now().Before(until) && ctx.Err() == nil {
		if err := sc.sync(ctx); err == nil {
			if ri, err := sc.c.Room(a.room); err == nil && done(ri) {
				return true
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	return false
}

// backoff waits 200 ms to 1 s before the next attempt; it returns false
// when ctx ended or deadline passed.
// setUp runs step (registering or enrolling sc) until it succeeds or
// GiveUp passes, backing off between tries; it reports whether it
// succeeded.
func (a *actor) setUp(ctx context.Context, sc *simClient, what string, step func() error) bool {
	deadline := time.Now().Add(a.giveUp)
	for {
		err := step()
		if err == nil {
			return true
		}
		a.st.fail("enroll")
		if !a.backoff(ctx, deadline) {
			a.logf("chaos: membership of %s: gave up %s %s: %v", a.room, what, sc.id, err)
			return false
		}
	}
}

func (a *actor) backoff(ctx context.Context, deadline time.Time) bool {
	a.rngMu.Lock()
	d := 200*time.Millisecond + time.Duration(a.rng.Int64N(int64(800*time.Millisecond)))
	a.rngMu.Unlock()
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
	}
	return time.Now().Before(deadline)
}

// stateCheck compares, once every client synced, each client's view of
// each room with the hub's room state (the admin API's GetRoom on every
// hub node; the nodes must agree): every member of the room's group at the
// hub holds the room at the hub's epoch, with its participant list and
// member clients, and all of them the same epoch authenticator; every
// other client does not hold it (draft-ralston-mimi-protocol-02, Sections
// 4.3, 5.5 and 6; RFC 9420, Section 8.7). It returns the problems and the
// number of member states compared.
func stateCheck(ctx context.Context, topo *Topology, clients []*simClient, rooms []string) ([]Problem, int, error) {
	var out []Problem
	checked := 0
	for _, room := range rooms {
		var hub *adminv1.Room
		for _, n := range topo.Hub().Nodes {
			gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err := n.AdminAPI.GetRoom(gctx, connect.NewRequest(&adminv1.GetRoomRequest{Room: room}))
			cancel()
			if err != nil {
				return nil, 0, fmt.Errorf("chaos: %s: GetRoom %s: %w", n.ID, room, err)
			}
			r := resp.Msg.GetRoom()
			if hub == nil {
				hub = r
				continue
			}
			if r.GetEpoch() != hub.GetEpoch() || !slices.Equal(r.GetMemberClients(), hub.GetMemberClients()) ||
				!slices.Equal(hubParticipants(r), hubParticipants(hub)) {
				out = append(out, Problem{Kind: ProblemDivergence, Room: room, Detail: fmt.Sprintf("%s holds the room at epoch %d with %v, %s at epoch %d with %v",
					topo.Hub().Nodes[0].ID, hub.GetEpoch(), hub.GetMemberClients(), n.ID, r.GetEpoch(), r.GetMemberClients())})
			}
		}
		members := slices.Sorted(slices.Values(hub.GetMemberClients()))
		parts := hubParticipants(hub)
		var ref *client.RoomInfo
		var refID string
		for _, sc := range clients {
			member := slices.Contains(members, sc.id)
			ri, err := sc.c.Room(room)
			switch {
			case !member && err == nil:
				out = append(out, Problem{Kind: ProblemMemberState, Client: sc.id, Room: room,
					Detail: fmt.Sprintf("not a member at the hub (epoch %d), but holds the room at epoch %d", hub.GetEpoch(), ri.Epoch)})
				continue
			case !member:
				continue
			case err != nil:
				out = append(out, Problem{Kind: ProblemMemberState, Client: sc.id, Room: room,
					Detail: fmt.Sprintf("a member at the hub (epoch %d), but does not hold the room: %v", hub.GetEpoch(), err)})
				continue
			}
			checked++
			var diffs []string
			if ri.Epoch != hub.GetEpoch() {
				diffs = append(diffs, fmt.Sprintf("epoch %d, the hub's %d", ri.Epoch, hub.GetEpoch()))
			}
			if got := clientParticipants(ri); !slices.Equal(got, parts) {
				diffs = append(diffs, fmt.Sprintf("participants %v, the hub's %v", got, parts))
			}
			var got []string
			for _, m := range ri.Members {
				got = append(got, m.Client)
			}
			if slices.Sort(got); !slices.Equal(got, members) {
				diffs = append(diffs, fmt.Sprintf("members %v, the hub's %v", got, members))
			}
			switch {
			case ref == nil:
				ref, refID = ri, sc.id
			case !bytes.Equal(ri.EpochAuthenticator, ref.EpochAuthenticator):
				diffs = append(diffs, fmt.Sprintf("epoch authenticator differs from %s's", refID))
			}
			if len(diffs) > 0 {
				out = append(out, Problem{Kind: ProblemMemberState, Client: sc.id, Room: room, Detail: fmt.Sprint(diffs)})
			}
		}
	}
	return out, checked, nil
}

// hubParticipants lists a room's participants as sorted "user=role".
func hubParticipants(r *adminv1.Room) []string {
	var out []string
	for _, p := range r.GetParticipants() {
		out = append(out, p.GetUser()+"="+p.GetRole())
	}
	slices.Sort(out)
	return out
}

// clientParticipants lists a client's participants of a room as sorted
// "user=role".
func clientParticipants(ri *client.RoomInfo) []string {
	var out []string
	for _, p := range ri.Participants {
		out = append(out, p.User+"="+p.Role)
	}
	slices.Sort(out)
	return out
}

// removals returns the removals from rooms the clients' Syncs reported
// (client.EventRemoved), for Check.
func removals(clients []*simClient) map[string][]Removal {
	out := map[string][]Removal{}
	for _, sc := range clients {
		for _, ev := range sc.events {
			if ev.Type == client.EventRemoved {
				out[sc.id] = append(out[sc.id], Removal{Room: ev.Room, Pos: ev.Seq})
			}
		}
	}
	return out
}
