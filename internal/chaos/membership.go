package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
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
	// answer through every retry (client.ErrOutcomeUnknown) and syncing did
	// not show whether the hub accepted it: the SDK keeps the commit
	// pending and merges it only if its echo arrives, which the hub does
	// not send to its own committer (Section 5.5), and offers no way to
	// send the pending commit again or to compare it with the hub's
	// GroupInfo (Section 5.6). The actor stops.
	ProblemMembershipUnresolved ProblemKind = "membership-outcome-unresolved"
)

const (
	// maxGuests bounds the clients an actor added that are in its room at
	// once.
	maxGuests = 3
	// guestKeyPackages is how many KeyPackages a new client publishes (a
	// claim whose answer was lost uses one up).
	guestKeyPackages = 3
)

// membershipStats counts the membership actors' work.
type membershipStats struct {
	mu sync.Mutex
	// adds and removes count the changes made, calls the AddUser and
	// RemoveUser calls, gaveUp the changes abandoned after GiveUp.
	adds, removes, calls, gaveUp int
	// failures counts the failed calls by cause.
	failures map[string]int
	problems []Problem
}

func (s *membershipStats) fail(cause string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures == nil {
		s.failures = map[string]int{}
	}
	s.failures[cause]++
}

func (s *membershipStats) changes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adds + s.removes
}

// failureCause classifies an error of AddUser, RemoveUser or Enroll.
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
	}
	return "unavailable"
}

// actor changes the membership of one room while the hub nodes are
// killed (draft-ralston-mimi-protocol-02, Sections 3.2, 3.3 and 3.5):
// through its admin client it adds the client of a new user at a random
// provider (AddUser: KeyPackage claim, Section 5.2, and one commit with a
// Welcome, Section 5.3), or removes a user it added (RemoveUser), and
// tries each change again after a failure until it is made or GiveUp has
// passed. The checker then judges every client against the hub log.
type actor struct {
	room  string
	num   int // the room's number, for the new users' names
	admin *simClient
	fleet *fleet
	rng   *rand.Rand
	// every is the mean pause between two changes, giveUp bounds one.
	every, giveUp time.Duration
	st            *membershipStats
	logf          func(string, ...any)
	// guests are the clients the actor created, present those of them in
	// the room.
	guests, present []*simClient
}

// run makes changes until stop is closed, ctx ends, or the outcome of a
// commit stays unknown.
func (a *actor) run(ctx context.Context, stop <-chan struct{}) {
	for {
		pause := a.every/2 + time.Duration(a.rng.Int64N(int64(a.every)))
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		var resolved bool
		if n := len(a.present); n > 0 && (n >= maxGuests || a.rng.IntN(2) == 0) {
			resolved = a.remove(ctx)
		} else {
			resolved = a.add(ctx)
		}
		if !resolved {
			return
		}
	}
}

// add creates, registers and enrolls a new user's client at a random
// provider and adds the user to the room. It returns false when the
// outcome of the commit stayed unknown.
func (a *actor) add(ctx context.Context) bool {
	dom := []string{HubDomain, BDomain, CDomain}[a.rng.IntN(3)]
	sc, err := a.fleet.client(dom, fmt.Sprintf("r%dg%d", a.num, len(a.guests)+1), false)
	if err != nil {
		a.st.fail("setup")
		a.logf("chaos: membership of %s: new client: %v", a.room, err)
		return true
	}
	a.guests = append(a.guests, sc)
	deadline := time.Now().Add(a.giveUp)
	for {
		err := sc.c.Enroll(ctx, guestKeyPackages)
		if err == nil {
			break
		}
		a.st.fail("enroll")
		if !a.backoff(ctx, deadline) {
			a.logf("chaos: membership of %s: gave up enrolling %s: %v", a.room, sc.id, err)
			return true
		}
	}
	ok, resolved := a.change(ctx, deadline, "add "+sc.user, func() error {
		err := a.admin.c.AddUser(ctx, a.room, sc.user, "member")
		switch {
		case errors.Is(err, client.ErrAlreadyParticipant):
			return nil // an earlier attempt's commit was applied since
		case errors.Is(err, client.ErrNoKeyMaterial):
			// Claims whose answers were lost used the KeyPackages up.
			_, _ = sc.c.PublishKeyPackages(ctx, guestKeyPackages)
		}
		return err
	}, func(ri *client.RoomInfo) bool {
		_, in := ri.Role(sc.user)
		return in
	})
	if ok {
		a.present = append(a.present, sc)
		a.st.mu.Lock()
		a.st.adds++
		a.st.mu.Unlock()
	}
	return resolved
}

// remove removes a random user the actor added. It returns false when the
// outcome of the commit stayed unknown.
func (a *actor) remove(ctx context.Context) bool {
	i := a.rng.IntN(len(a.present))
	sc := a.present[i]
	ok, resolved := a.change(ctx, time.Now().Add(a.giveUp), "remove "+sc.user, func() error {
		err := a.admin.c.RemoveUser(ctx, a.room, sc.user)
		if errors.Is(err, client.ErrNotParticipant) {
			return nil // an earlier attempt's commit was applied since
		}
		return err
	}, func(ri *client.RoomInfo) bool {
		_, in := ri.Role(sc.user)
		return !in
	})
	if ok {
		a.present = slices.Delete(a.present, i, i+1)
		a.st.mu.Lock()
		a.st.removes++
		a.st.mu.Unlock()
	}
	return resolved
}

// change calls op (one AddUser or RemoveUser) until it succeeds or
// deadline passes. A refusal or failure leaves no commit pending in the
// SDK, so the next call starts afresh. When op's commit got no answer
// (client.ErrOutcomeUnknown), the admin syncs until done reports the
// change in its group (its provider delivered the commit's echo, which
// the SDK recognizes as its pending commit); otherwise the outcome stays
// unknown (ProblemMembershipUnresolved). ok reports that the change was
// made, resolved that the admin's group is not left with a commit of
// unknown outcome.
func (a *actor) change(ctx context.Context, deadline time.Time, what string, op func() error, done func(*client.RoomInfo) bool) (ok, resolved bool) {
	a.fleet.rec.setLabel(a.admin.id, what)
	for {
		a.st.mu.Lock()
		a.st.calls++
		a.st.mu.Unlock()
		err := op()
		if err == nil {
			return true, true
		}
		cause := failureCause(err)
		a.st.fail(cause)
		if cause != "unavailable" {
			a.logf("chaos: membership of %s: %s: %v", a.room, what, err)
		}
		if errors.Is(err, client.ErrOutcomeUnknown) {
			if a.awaitEcho(ctx, done) {
				return true, true
			}
			a.st.mu.Lock()
			a.st.problems = append(a.st.problems, Problem{Kind: ProblemMembershipUnresolved, Client: a.admin.id, Room: a.room,
				Detail: fmt.Sprintf("%s: %v", what, err)})
			a.st.mu.Unlock()
			return false, false
		}
		if !a.backoff(ctx, deadline) {
			a.st.mu.Lock()
			a.st.gaveUp++
			a.st.mu.Unlock()
			a.logf("chaos: membership of %s: gave up %s: %v", a.room, what, err)
			return false, true
		}
	}
}

// awaitEcho syncs the admin for up to ten seconds, until done reports the
// change in its group.
func (a *actor) awaitEcho(ctx context.Context, done func(*client.RoomInfo) bool) bool {
	until := time.Now().Add(10 * time.Second)
	for time.Now().Before(until) && ctx.Err() == nil {
		if err := a.admin.sync(ctx); err == nil {
			if ri, err := a.admin.c.Room(a.room); err == nil && done(ri) {
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
func (a *actor) backoff(ctx context.Context, deadline time.Time) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(200*time.Millisecond + time.Duration(a.rng.Int64N(int64(800*time.Millisecond)))):
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
