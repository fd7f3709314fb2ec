package raftnode_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/raftnode"
)

func snapTuning(c *raftnode.Config) {
	c.TrailingLogs = 16
	c.SnapshotThreshold = 64
	c.SnapshotInterval = time.Second
}

// TestCluster drives a 3-node mTLS cluster on loopback through
// replication, forwarding, refusal, leader failover, catch-up from the log
// and from a snapshot, checking state machine digests along the way.
func TestCluster(t *testing.T) {
	c := newCluster(t, 3, snapTuning)
	c.nodes[2].cfg.DisableForwarding = true
	var acked []string // every command whose Apply returned success

	// Bootstrap n0 alone, then grow the cluster with AddVoter.
	c.nodes[0].cfg.Bootstrap = true
	c.start(0)
	if l := c.leader(10 * time.Second); l != 0 {
		t.Fatalf("leader = n%d, want n0", l)
	}
	c.start(1)
	c.start(2)
	c.addVoters(1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Membership changes on a follower are refused with the leader's name.
	l := c.leader(10 * time.Second)
	if f := c.follower(); true {
		err := c.nodes[f].n.AddVoter(ctx, "x", "127.0.0.1:1")
		if nl, ok := isNotLeader(err); !ok {
			t.Fatalf("AddVoter on follower: %v, want ErrNotLeader", err)
		} else if nl.LeaderID != "" && nl.LeaderID != c.nodes[l].id {
			t.Fatalf("AddVoter on follower named leader %q", nl.LeaderID)
		}
	}
	waitFor(t, 10*time.Second, "3 voters everywhere", func() bool {
		for _, tn := range c.nodes {
			if len(tn.n.Status().Servers) != 3 {
				return false
			}
		}
		return true
	})

	t.Run("replicate", func(t *testing.T) {
		l := c.leader(10 * time.Second)
		acked = append(acked, applyN(t, c.nodes[l], "lead", 30)...)
		c.converged(10 * time.Second)
	})

	t.Run("forward", func(t *testing.T) {
		l := c.leader(10 * time.Second)
		f := 1
		if l == 1 {
			f = 0
		}
		cmds := applyN(t, c.nodes[f], "fwd", 10)
		acked = append(acked, cmds...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Read your writes: a forwarded Apply returns once the follower
		// applied the entry too.
		for i := range 5 {
			cmd := fmt.Sprintf("ryw-%d", i)
			if _, err := c.nodes[f].n.Apply(ctx, []byte(cmd)); err != nil {
				t.Fatal(err)
			}
			acked = append(acked, cmd)
			recs, err := c.nodes[f].sm.Check()
			if err != nil {
				t.Fatal(err)
			}
			if recs[cmd] != 1 {
				t.Fatalf("follower %s lacks %s right after its forwarded Apply", c.nodes[f].id, cmd)
			}
		}
		// And after a read barrier.
		if err := c.nodes[f].n.ReadBarrier(ctx); err != nil {
			t.Fatalf("ReadBarrier on follower: %v", err)
		}
		recs, err := c.nodes[f].sm.Check()
		if err != nil {
			t.Fatal(err)
		}
		for _, cmd := range cmds {
			if recs[cmd] != 1 {
				t.Fatalf("follower %s lacks %s after ReadBarrier", c.nodes[f].id, cmd)
			}
		}
		// Concurrent forwarded applies share the connection pool.
		var wg sync.WaitGroup
		var mu sync.Mutex
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					cmd := fmt.Sprintf("fwdc-%d-%d", g, i)
					if _, err := c.nodes[f].n.Apply(ctx, []byte(cmd)); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					acked = append(acked, cmd)
					mu.Unlock()
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent forwarded apply: %v", err)
		}
		c.converged(10 * time.Second)
	})

	t.Run("refuse", func(t *testing.T) {
		l := c.leader(10 * time.Second)
		if l == 2 {
			t.Skip("refusing node became leader")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.nodes[2].n.Apply(ctx, []byte("refused"))
		nl, ok := isNotLeader(err)
		if !ok {
			t.Fatalf("Apply on non-forwarding follower: %v, want ErrNotLeader", err)
		}
		if nl.LeaderAddr != c.nodes[l].addr || nl.LeaderID != c.nodes[l].id {
			t.Fatalf("ErrNotLeader = %+v, want %s at %s", nl, c.nodes[l].id, c.nodes[l].addr)
		}
		if _, ok := isNotLeader(c.nodes[2].n.ReadBarrier(ctx)); !ok {
			t.Fatal("ReadBarrier on non-forwarding follower was not refused")
		}
	})

	t.Run("failover", func(t *testing.T) {
		old := c.leader(10 * time.Second)
		c.stop(old) // no leave: the cluster still counts it as a voter
		l := c.leader(10 * time.Second)
		if l == old {
			t.Fatal("stopped node still leader")
		}
		acked = append(acked, applyN(t, c.nodes[l], "newlead", 10)...)
		if f := c.follower(); c.nodes[f].cfg.DisableForwarding {
			_, err := c.nodes[f].n.Apply(context.Background(), []byte("x"))
			if nl, ok := isNotLeader(err); !ok || nl.LeaderID != c.nodes[l].id {
				t.Fatalf("refusing follower after failover: %v", err)
			}
		} else {
			acked = append(acked, applyN(t, c.nodes[f], "newfwd", 5)...)
		}
		// The stopped node restarts and catches up from the log.
		c.start(old)
		c.leader(10 * time.Second)
		c.converged(15 * time.Second)
		if r := c.nodes[old].sm.Restores(); r != 0 {
			t.Logf("note: %s restored %d snapshot(s) while catching up", c.nodes[old].id, r)
		}
	})

	t.Run("snapshot-catch-up", func(t *testing.T) {
		l := c.leader(10 * time.Second)
		f := c.follower()
		before := c.nodes[f].n.AppliedIndex()
		c.stop(f)
		acked = append(acked, applyN(t, c.nodes[l], "while-down", 80)...)
		// Every running node snapshots and truncates its log, so that
		// whichever of them leads when the follower returns (leadership
		// may move under load) can only catch it up with a snapshot.
		c.converged(15 * time.Second)
		for i, tn := range c.nodes {
			if i == f || tn.n == nil {
				continue
			}
			if err := tn.n.Snapshot(); err != nil {
				t.Fatalf("%s snapshot: %v", tn.id, err)
			}
		}
		st := c.nodes[l].n.Status()
		first, _ := strconv.ParseUint(st.Raw["last_snapshot_index"], 10, 64)
		if st.LastSnapshotIndex != first || st.LastSnapshotIndex <= before+16 {
			t.Fatalf("snapshot index %d does not truncate past the stopped follower's %d", st.LastSnapshotIndex, before)
		}
		c.start(f)
		c.converged(20 * time.Second)
		if c.nodes[f].sm.Restores() == 0 || c.nodes[f].n.Restores() == 0 {
			t.Fatalf("%s caught up without installing a snapshot", c.nodes[f].id)
		}
		// It keeps following afterwards.
		acked = append(acked, applyN(t, c.nodes[c.leader(10*time.Second)], "after-snap", 10)...)
		c.converged(10 * time.Second)
	})

	t.Run("final", func(t *testing.T) {
		c.converged(10 * time.Second)
		for _, tn := range c.nodes {
			recs, err := tn.sm.Check()
			if err != nil {
				t.Fatalf("%s: %v", tn.id, err)
			}
			for _, cmd := range acked {
				if recs[cmd] != 1 {
					t.Fatalf("%s holds %s %d times", tn.id, cmd, recs[cmd])
				}
			}
			st := tn.n.Status()
			if st.Term == 0 || st.CommitIndex == 0 || st.LastLogIndex == 0 || len(st.Servers) != 3 || st.LeaderAddr == "" {
				t.Fatalf("%s status incomplete: %+v", tn.id, st)
			}
		}
		t.Logf("%d acknowledged commands on 3 nodes with equal digests", len(acked))
	})
}

// TestClusterBootstrapPeers bootstraps all three nodes with the same peer
// list (the alternative to AddVoter) and removes a server.
func TestClusterBootstrapPeers(t *testing.T) {
	c := newCluster(t, 3, nil)
	// Pick fixed addresses by starting and stopping nodes once (no
	// bootstrap, so no state is written except the empty log store).
	for i := range c.nodes {
		c.start(i)
	}
	var peers []raftnode.Peer
	for _, tn := range c.nodes {
		peers = append(peers, raftnode.Peer{ID: tn.id, Addr: tn.addr})
	}
	c.stopAll()
	for i := range c.nodes {
		c.nodes[i].cfg.Bootstrap = true
		c.nodes[i].cfg.Peers = peers
		c.start(i)
	}
	l := c.leader(15 * time.Second)
	applyN(t, c.nodes[c.follower()], "boot", 5)
	c.converged(10 * time.Second)

	victim := c.follower()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[l].n.RemoveServer(ctx, c.nodes[victim].id); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	c.stop(victim)
	waitFor(t, 10*time.Second, "2 voters", func() bool { return len(c.nodes[l].n.Status().Servers) == 2 })
	applyN(t, c.nodes[c.leader(10*time.Second)], "after-remove", 5)
	c.converged(10 * time.Second)
}

// TestStandalone checks the embedded default: only a data dir.
func TestStandalone(t *testing.T) {
	dir := t.TempDir()
	open := func(sm raftnode.StateMachine[testResult]) *raftnode.Node[testResult] {
		cfg := raftnode.Config{DataDir: dir + "/raft", TrailingLogs: 4}
		fastTiming(&cfg)
		n, err := raftnode.Open[testResult](cfg, sm, nil)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	sm, err := openTestSM(dir + "/sm")
	if err != nil {
		t.Fatal(err)
	}
	n := open(sm)
	for i := 1; i <= 20; i++ {
		r, err := n.Apply(ctx, []byte(fmt.Sprintf("a-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if r.Count != uint64(i) {
			t.Fatalf("count = %d, want %d", r.Count, i)
		}
	}
	if err := n.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.AddVoter(ctx, "x", "y"); !errors.Is(err, raftnode.ErrStandalone) {
		t.Fatalf("AddVoter standalone = %v", err)
	}
	if _, err := n.Apply(ctx, make([]byte, raftnode.DefaultMaxCommandSize+1)); !errors.Is(err, raftnode.ErrCommandTooLarge) {
		t.Fatalf("oversize command = %v", err)
	}
	if err := n.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for i := 21; i <= 30; i++ {
		if _, err := n.Apply(ctx, []byte(fmt.Sprintf("a-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal("second Shutdown:", err)
	}
	if _, err := n.Apply(ctx, []byte("late")); !errors.Is(err, raftnode.ErrClosed) {
		t.Fatalf("Apply after Shutdown = %v", err)
	}

	// Restart: entries after the snapshot are replayed by Raft but skipped
	// by the state machine; nothing is applied twice and no restore runs.
	n = open(sm)
	r, err := n.Apply(ctx, []byte("a-31"))
	if err != nil || r.Count != 31 {
		t.Fatalf("after restart: %+v, %v", r, err)
	}
	if sm.Restores() != 0 {
		t.Fatal("restart restored a snapshot over a newer state machine")
	}
	if _, err := sm.Check(); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	_ = sm.Close()

	// Lose the state machine (e.g. a crash between snapshot installation
	// and restore): Open must restore the snapshot and replay the log.
	fresh, err := openTestSM(dir + "/sm-fresh")
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	n = open(fresh)
	defer n.Shutdown()
	if fresh.Restores() != 1 {
		t.Fatalf("fresh state machine restores = %d, want 1", fresh.Restores())
	}
	if err := n.ReadBarrier(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := fresh.Check()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 31; i++ {
		if recs[fmt.Sprintf("a-%d", i)] != 1 {
			t.Fatalf("fresh state lacks a-%d", i)
		}
	}
	st := n.Status()
	if st.State != "Leader" || st.ID != "local" || len(st.Servers) != 1 {
		t.Fatalf("standalone status: %+v", st)
	}
}

// TestNoticeLeader: a notice passed to NoticeLeader on any node reaches the
// leader's OnNotice, and only the leader's.
func TestNoticeLeader(t *testing.T) {
	c := newCluster(t, 3, nil)
	var mu sync.Mutex
	got := map[int][]string{}
	for i := range c.nodes {
		c.nodes[i].cfg.OnNotice = func(p []byte) {
			mu.Lock()
			defer mu.Unlock()
			got[i] = append(got[i], string(p))
		}
	}
	c.nodes[0].cfg.Bootstrap = true
	c.start(0)
	c.leader(10 * time.Second)
	c.start(1)
	c.start(2)
	c.addVoters(1, 2)
	l := c.leader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var want []string
	for i, tn := range c.nodes {
		p := fmt.Sprintf("from n%d", i)
		if err := tn.n.NoticeLeader(ctx, []byte(p)); err != nil {
			t.Fatalf("n%d: %v", i, err)
		}
		want = append(want, p)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range c.nodes {
		if i == l {
			if !slices.Equal(got[i], want) {
				t.Errorf("leader n%d got %q, want %q", i, got[i], want)
			}
		} else if len(got[i]) != 0 {
			t.Errorf("follower n%d got %q", i, got[i])
		}
	}
}
