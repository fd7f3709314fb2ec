package client_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/mimi"
)

// TestRetryWaitsForEpochWithProviders: a client that lost an epoch race
// (wrongEpoch or epochTooOld, draft-ralston-mimi-protocol-02, Sections 5.3
// and 5.4) while the winning commit is still on its way (fanout is
// asynchronous, Section 5.5) waits for it before trying again, and gives up
// with ErrWrongEpoch after Options.EpochWait when it does not come.
func TestRetryWaitsForEpochWithProviders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Raft nodes")
	}
	const (
		wait  = time.Second
		delay = 150 * time.Millisecond
	)
	r := newRealNet(t)
	w := threeUsersIn(t, &world{t: t, ctx: context.Background(), be: r, clients: map[string]*client.Client{},
		opts: &client.Options{EpochWait: wait}})
	all := []string{"ClientA1", "ClientB1", "ClientB2", "ClientC1"}
	a1, b1, c1 := w.clients["ClientA1"], w.clients["ClientB1"], w.clients["ClientC1"]

	// race lets the winner, ClientA1 at the hub, change the room while
	// fanout is held, so that the other clients stay an epoch behind;
	// fanout resumes after release (never if 0). It returns the hub's
	// epoch.
	race := func(win func() error, release time.Duration) uint64 {
		t.Helper()
		r.hold.Store(true)
		if err := win(); err != nil {
			t.Fatal(err)
		}
		if release > 0 {
			time.AfterFunc(release, func() { r.hold.Store(false) })
		}
		return r.epoch(clubhouse)
	}
	commit := func() error { return a1.Commit(w.ctx, clubhouse) }
	// timed runs op and returns its duration and error.
	timed := func(op func() error) (time.Duration, error) {
		start := time.Now()
		err := op()
		return time.Since(start), err
	}
	settle := func(names ...string) {
		t.Helper()
		r.hold.Store(false)
		w.sync(names...)
		w.agree(clubhouse, names...)
	}

	t.Run("commit, winner delayed", func(t *testing.T) {
		e := race(commit, delay)
		took, err := timed(func() error { return c1.Commit(w.ctx, clubhouse) })
		if err != nil || took < delay {
			t.Fatalf("commit after the race: %v after %v, want success after the winner's delivery (%v)", err, took, delay)
		}
		if got := r.epoch(clubhouse); got != e+1 {
			t.Fatalf("hub at %d, want %d", got, e+1)
		}
		t.Logf("succeeded after %v", took)
		settle(all...)
	})
	t.Run("commit, winner never delivered", func(t *testing.T) {
		e := race(commit, 0)
		took, err := timed(func() error { return c1.Commit(w.ctx, clubhouse) })
		var ue *client.UpdateError
		if !errors.Is(err, client.ErrWrongEpoch) || !errors.As(err, &ue) || ue.CurrentEpoch != e {
			t.Fatalf("commit without the winner: %v, want wrongEpoch at %d", err, e)
		}
		if took < wait || took > 3*wait {
			t.Fatalf("gave up after %v, want about %v", took, wait)
		}
		if ep, _ := c1.Epoch(clubhouse); ep != e-1 || r.epoch(clubhouse) != e {
			t.Fatalf("client at %d, hub at %d, want %d and %d", ep, r.epoch(clubhouse), e-1, e)
		}
		t.Logf("gave up after %v", took)
		settle(all...)
		if err := c1.Commit(w.ctx, clubhouse); err != nil {
			t.Fatalf("committing once the winner arrived: %v", err)
		}
		settle(all...)
	})
	t.Run("send, winner delayed", func(t *testing.T) {
		e := race(commit, delay)
		took, err := timed(func() error {
			_, err := c1.Send(w.ctx, clubhouse, []byte("late"))
			return err
		})
		if err != nil || took < delay {
			t.Fatalf("send after the race: %v after %v, want success after the winner's delivery (%v)", err, took, delay)
		}
		if ep, _ := c1.Epoch(clubhouse); ep != e {
			t.Fatalf("sent in epoch %d, want %d", ep, e)
		}
		t.Logf("succeeded after %v", took)
		evs := w.sync("ClientA1")
		if ev := find(evs["ClientA1"], client.EventMessage); ev == nil || string(ev.Data) != "late" {
			t.Fatalf("%+v", evs["ClientA1"])
		}
		settle(all...)
	})
	t.Run("send, winner never delivered", func(t *testing.T) {
		e := race(commit, 0)
		took, err := timed(func() error {
			_, err := c1.Send(w.ctx, clubhouse, []byte("lost"))
			return err
		})
		var se *client.SubmitError
		if !errors.Is(err, client.ErrWrongEpoch) || !errors.As(err, &se) || se.Code != mimi.SubmitEpochTooOld || se.CurrentEpoch != e {
			t.Fatalf("send without the winner: %v, want epochTooOld at %d", err, e)
		}
		if took < wait || took > 3*wait {
			t.Fatalf("gave up after %v, want about %v", took, wait)
		}
		t.Logf("gave up after %v", took)
		settle(all...)
	})
	t.Run("leave, winner delayed", func(t *testing.T) {
		race(commit, delay)
		took, err := timed(func() error { return b1.Leave(w.ctx, clubhouse) })
		if err != nil || took < delay {
			t.Fatalf("leave after the race: %v after %v, want success after the winner's delivery (%v)", err, took, delay)
		}
		settle(all...)
		if err := a1.Commit(w.ctx, clubhouse); err != nil {
			t.Fatal(err)
		}
		evs := w.sync(all...)
		if find(evs["ClientB1"], client.EventRemoved) == nil {
			t.Fatalf("%+v", evs["ClientB1"])
		}
		w.agree(clubhouse, "ClientA1", "ClientC1")
	})
	t.Run("removed while waiting", func(t *testing.T) {
		race(func() error { return a1.RemoveUser(w.ctx, clubhouse, cathy) }, delay)
		took, err := timed(func() error { return c1.Commit(w.ctx, clubhouse) })
		if !errors.Is(err, client.ErrUnknownRoom) || took < delay {
			t.Fatalf("commit by a client removed meanwhile: %v after %v, want ErrUnknownRoom once the removal arrived", err, took)
		}
	})
}

// TestJoinNewDeviceWaitsForGroupInfo: after wrongEpoch, an external joiner
// fetches the GroupInfo until it is of the epoch the hub named
// (draft-ralston-mimi-protocol-02, Sections 5.3 and 5.6), and gives up
// with ErrWrongEpoch after Options.EpochWait.
func TestJoinNewDeviceWaitsForGroupInfo(t *testing.T) {
	const wait = 300 * time.Millisecond
	w := newWorld(t)
	w.opts = &client.Options{EpochWait: wait}
	threeUsersIn(t, w)
	a1 := w.clients["ClientA1"]

	// A lagging provider serves the GroupInfo of the epoch before the
	// race until staleUntil (nanoseconds since the Unix epoch).
	var staleUntil atomic.Int64
	var served mimi.GroupInfoResponse
	w.net.groupInfoHook = func(resp *mimi.GroupInfoResponse) {
		if time.Now().UnixNano() >= staleUntil.Load() {
			served = *resp
			return
		}
		resp.GroupInfo, resp.RatchetTreeOption = served.GroupInfo, served.RatchetTreeOption
		if err := resp.Sign(w.net.hub(domainOf(clubhouse)).priv); err != nil {
			t.Error(err)
		}
	}
	// The first external commit of joiner loses a race with ClientA1.
	race := func(joiner string, stale time.Duration) {
		raced := false
		w.net.updateHook = func(cl string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
			if cl != joiner || raced {
				return nil, nil
			}
			raced = true
			w.net.mu.Unlock()
			defer w.net.mu.Lock()
			if err := a1.Commit(w.ctx, clubhouse); err != nil {
				t.Errorf("the winner's commit: %v", err)
			}
			staleUntil.Store(time.Now().Add(stale).UnixNano())
			return nil, nil
		}
	}

	c2 := w.add("ClientC2", cathy, 0)
	race(c2.ID(), 100*time.Millisecond)
	groupInfos := w.net.calls["GroupInfo"]
	if err := c2.JoinNewDevice(w.ctx, clubhouse); err != nil {
		t.Fatalf("joining after the race: %v", err)
	}
	if n := w.net.calls["GroupInfo"] - groupInfos; n < 3 {
		t.Fatalf("%d GroupInfo requests, want the stale one fetched again", n)
	}
	w.sync("ClientA1", "ClientB1", "ClientB2", "ClientC1")
	w.agree(clubhouse, "ClientA1", "ClientB1", "ClientB2", "ClientC1", "ClientC2")

	c3 := w.add("ClientC3", cathy, 0)
	race(c3.ID(), time.Hour)
	start := time.Now()
	err := c3.JoinNewDevice(w.ctx, clubhouse)
	var ue *client.UpdateError
	if !errors.Is(err, client.ErrWrongEpoch) || !errors.As(err, &ue) || ue.CurrentEpoch != w.net.epoch(clubhouse) {
		t.Fatalf("joining with a GroupInfo that stays stale: %v", err)
	}
	if took := time.Since(start); took < wait || took > 10*wait {
		t.Fatalf("gave up after %v, want about %v", took, wait)
	}
	if rooms := c3.Rooms(); len(rooms) != 0 {
		t.Fatalf("joined %v", rooms)
	}
}

// TestEpochWaitEndsWithContext: the wait for an epoch the hub named ends
// with the context; the error matches both ErrWrongEpoch and the
// context's error.
func TestEpochWaitEndsWithContext(t *testing.T) {
	w := threeUsers(t)
	a1 := w.clients["ClientA1"]
	w.net.updateHook = func(string, *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
		return &mimi.UpdateRoomResponse{Code: mimi.UpdateWrongEpoch, CurrentEpoch: 99}, nil
	}
	ctx, cancel := context.WithTimeout(w.ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := a1.Commit(ctx, clubhouse)
	if !errors.Is(err, client.ErrWrongEpoch) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("commit with a context ending while waiting: %v", err)
	}
	if took := time.Since(start); took > client.DefaultEpochWait/2 {
		t.Fatalf("gave up after %v, want about 200ms", took)
	}
}
