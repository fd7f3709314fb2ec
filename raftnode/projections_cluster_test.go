package raftnode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/raftnode"
)

// projBatch makes a projections.Machine a raftnode.BatchStateMachine: a
// whole Raft apply batch is committed in one synced Pebble batch
// (projections.Machine.ApplyBatch). projections cannot name raftnode.Entry
// (raftnode sits above it), hence this adapter; the Machine alone is a
// per-entry raftnode.StateMachine.
type projBatch struct {
	*projections.Machine
	stats *batchStats // optional
}

// batchStats counts the batches a projBatch received.
type batchStats struct {
	batches, entries, largest atomic.Uint64
}

func (s *batchStats) String() string {
	return fmt.Sprintf("%d batches, %d entries, largest %d", s.batches.Load(), s.entries.Load(), s.largest.Load())
}

// ApplyBatch implements raftnode.BatchStateMachine.
func (p projBatch) ApplyBatch(entries []raftnode.Entry) []projections.Result {
	pe := make([]projections.Entry, len(entries))
	for i, e := range entries {
		pe[i] = projections.Entry{Index: e.Index, Cmd: e.Cmd}
	}
	if s := p.stats; s != nil {
		s.batches.Add(1)
		s.entries.Add(uint64(len(entries)))
		if n := uint64(len(entries)); n > s.largest.Load() {
			s.largest.Store(n) // ApplyBatch calls are serialised by Raft
		}
	}
	return p.Machine.ApplyBatch(pe)
}

var (
	_ raftnode.StateMachine[projections.Result]      = (*projections.Machine)(nil)
	_ raftnode.BatchStateMachine[projections.Result] = projBatch{}
	_ raftnode.ResultCodec[projections.Result]       = projections.ResultCodec{}
)

// projSM returns m as a raftnode state machine, batched (counting into
// stats, which may be nil) or per entry.
func projSM(m *projections.Machine, batch bool, stats *batchStats) raftnode.StateMachine[projections.Result] {
	if batch {
		return projBatch{m, stats}
	}
	return m
}

// mustCmd encodes a command.
func mustCmd(t testing.TB, conds []projections.Condition, ops ...projections.Op) []byte {
	t.Helper()
	b, err := projections.EncodeCommand(&projections.Command{Conditions: conds, Ops: ops})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pcluster is the test cluster with projections.Machine as the state
// machine and projections.ResultCodec for forwarding.
type (
	pnode    = node[projections.Result, *projections.Machine]
	pcluster = cluster[projections.Result, *projections.Machine]
)

// newPCluster prepares n nodes (n0, n1, ...) with certificates from a fresh
// test CA; nodes for which batch(i) holds apply with ApplyBatch. Converged
// nodes have applied the leader's index in the machine too and agree on the
// projections digest and the log head.
func newPCluster(t testing.TB, n int, batch func(i int) bool, tune func(*raftnode.Config)) *pcluster {
	return newNodes(&pcluster{
		t: t,
		open: func(tn *pnode) (*projections.Machine, raftnode.StateMachine[projections.Result], raftnode.ResultCodec[projections.Result], error) {
			m, err := projections.Open(filepath.Join(tn.dir, "sm"))
			if err != nil {
				return nil, nil, nil, err
			}
			return m, projSM(m, tn.batch, &tn.stats), projections.ResultCodec{}, nil
		},
		state: func(m *projections.Machine) ([]byte, string, error) {
			d, err := m.Digest()
			if err != nil {
				return nil, "", err
			}
			h, err := m.LogHead()
			return d, fmt.Sprint(h), err
		},
		applied: (*projections.Machine).AppliedIndex,
	}, "projections cluster CA", n, batch, tune)
}

// auditNodes checks the event log and replays it on every running node.
func auditNodes(c *pcluster) {
	c.t.Helper()
	for _, tn := range c.nodes {
		if tn.n == nil {
			continue
		}
		checkMachine(c.t, tn.id, tn.sm)
	}
}

// checkMachine runs VerifyLog and Audit (replay digest == live digest).
func checkMachine(t testing.TB, what string, m *projections.Machine) *projections.AuditReport {
	t.Helper()
	rep, err := m.VerifyLog()
	if err != nil || !rep.OK() {
		t.Fatalf("%s: log does not verify: %v %+v", what, err, rep)
	}
	a, err := m.Audit(filepath.Join(t.TempDir(), "audit"))
	if err != nil || !a.OK() {
		t.Fatalf("%s: audit failed: %v %+v", what, err, a)
	}
	return a
}

// propose applies a command through tn; a transport-level failure fails
// the test, a rejection is in the Result.
func propose(t testing.TB, tn *pnode, cmd []byte) projections.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := tn.n.Apply(ctx, cmd)
	if err != nil {
		t.Fatalf("apply via %s: %v", tn.id, err)
	}
	if res.Duplicate {
		t.Fatalf("apply via %s: duplicate result", tn.id)
	}
	return res
}

// mustAccept is propose that fails the test on a rejection.
func mustAccept(t testing.TB, tn *pnode, cmd []byte) projections.Result {
	t.Helper()
	res := propose(t, tn, cmd)
	if res.Err != nil {
		t.Fatalf("command via %s rejected: %v", tn.id, res.Err)
	}
	return res
}

const (
	pcNow      = uint64(1_750_000_000_000) // ms: the hub's clock in commands
	pcRoom     = "room-1@hub.example"
	pcTarget   = "bob/phone"
	pcKPs      = 30
	pcFanout1  = "b.example"
	pcFanout2  = "c.example"
	pcClaimers = 3 // concurrent claim loops per node
)

// pcState tracks what the test expects the replicated state to be.
type pcState struct {
	mu       sync.Mutex
	epoch    uint64
	gi       []byte            // GroupInfo of the current epoch
	messages int               // fanout enqueues to pcFanout1 (one per accepted commit or message)
	claims   map[string]string // KeyPackageRef -> claimer that received it
	kpData   map[string][]byte
	ts       uint64
}

func (s *pcState) now() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ts += 1000
	return pcNow + s.ts
}

// commitCmd is a commit of the room from epoch to epoch+1, guarded by
// RoomEpochIs, followed by its fanout (draft-ralston-mimi-protocol-02,
// Section 5.3: the hub accepts exactly one commit per epoch).
func commitCmd(t testing.TB, epoch uint64, tag string, ts uint64) ([]byte, []byte) {
	gi := []byte(fmt.Sprintf("groupinfo-%d-%s", epoch+1, tag))
	return mustCmd(t, []projections.Condition{projections.RoomEpochIs(pcRoom, epoch)},
		projections.EventOp(pcRoom, ts, &eventlog.CommitAccepted{
			Epoch: epoch + 1, Commit: []byte(fmt.Sprintf("commit-%d-%s", epoch, tag)),
			GroupInfo: gi, RatchetTree: []byte("tree-" + tag),
			Members: []string{"alice/laptop", "alice/phone", pcTarget}, Sender: "alice/phone",
		}),
		projections.EventOp(pcRoom, ts, &eventlog.FanoutEnqueued{Destinations: []string{pcFanout1, pcFanout2}, Back: 1}),
	), gi
}

// messageCmd is an application message with its fanout.
func messageCmd(t testing.TB, epoch uint64, text string, ts uint64) []byte {
	return mustCmd(t, nil,
		projections.EventOp(pcRoom, ts, &eventlog.ApplicationMessageAccepted{Epoch: epoch, Message: []byte(text), Sender: "alice/phone"}),
		projections.EventOp(pcRoom, ts, &eventlog.FanoutEnqueued{Destinations: []string{pcFanout1}, Back: 1}),
	)
}

// raceCommits proposes two commits for the same epoch concurrently via a
// and b; exactly one must win and the other must get a *WrongEpochError
// naming the new epoch. It returns whether the loser's node was a follower
// (its result came back through forwarding).
func raceCommits(t testing.TB, c *pcluster, s *pcState, a, b int) (loserForwarded bool) {
	t.Helper()
	epoch := s.epoch
	type out struct {
		node int
		gi   []byte
		res  projections.Result
		lead bool
	}
	start := make(chan struct{})
	results := make(chan out, 2)
	for k, i := range []int{a, b} {
		cmd, gi := commitCmd(t, epoch, fmt.Sprintf("%s-%d", c.nodes[i].id, k), s.now())
		go func(i int) {
			<-start
			tn := c.nodes[i]
			lead := tn.n.IsLeader()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			res, err := tn.n.Apply(ctx, cmd)
			if err != nil {
				res.Err = fmt.Errorf("transport: %w", err)
			}
			results <- out{node: i, gi: gi, res: res, lead: lead}
		}(i)
	}
	close(start)
	r1, r2 := <-results, <-results
	winner, loser := r1, r2
	if r1.res.Err != nil {
		winner, loser = r2, r1
	}
	if winner.res.Err != nil || loser.res.Err == nil {
		t.Fatalf("epoch %d race via %s and %s: results %v / %v, want exactly one winner",
			epoch, c.nodes[a].id, c.nodes[b].id, r1.res.Err, r2.res.Err)
	}
	var we *projections.WrongEpochError
	if !errors.As(loser.res.Err, &we) || !errors.Is(loser.res.Err, projections.ErrWrongEpoch) {
		t.Fatalf("epoch %d race: loser via %s got %T %v, want *WrongEpochError", epoch, c.nodes[loser.node].id, loser.res.Err, loser.res.Err)
	}
	if we.Room != pcRoom || we.Current != epoch+1 || we.Proposed != epoch {
		t.Fatalf("epoch %d race: loser's error %+v", epoch, we)
	}
	if len(winner.res.Events) != 2 || winner.res.Events[0].Type() != eventlog.TypeCommitAccepted {
		t.Fatalf("winner's events: %+v", winner.res.Events)
	}
	s.epoch++
	s.gi = winner.gi
	s.messages++
	return !loser.lead
}

// notifyWriters submit idempotent notify commands and retry those whose
// outcome is unknown.
type notifyWriters struct {
	perWriter int
	wg        sync.WaitGroup
	names     []string
	acked     atomic.Int64 // applied (first or retried attempt)
	unknown   atomic.Int64 // attempts with an unknown outcome
	dups      atomic.Int64 // retries rejected as already applied
	errs      chan error
}

const pcNotifyHub = "peer-hub.example"

func notifyBody(writer string, i int) []byte { return []byte(fmt.Sprintf("notify-%s-%d", writer, i)) }

func (w *notifyWriters) start(tn *pnode, name string, s *pcState) {
	if w.errs == nil {
		w.errs = make(chan error, 64)
	}
	w.names = append(w.names, name)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for i := 0; i < w.perWriter; i++ {
			body := notifyBody(name, i)
			sum := eventlog.NotifyHash("notify-room@peer-hub.example", body)
			cmd, err := projections.EncodeCommand(&projections.Command{
				Conditions: []projections.Condition{projections.NotifyNotSeen(pcNotifyHub, sum)},
				Ops: []projections.Op{projections.EventOp("notify-room@peer-hub.example", s.now(),
					&eventlog.NotifyAccepted{Hub: pcNotifyHub, BodyHash: sum, Body: body})},
			})
			if err != nil {
				w.errs <- err
				return
			}
			deadline := time.Now().Add(30 * time.Second)
			for retried := false; ; retried = true {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				res, err := tn.n.Apply(ctx, cmd)
				cancel()
				if err == nil && res.Err == nil {
					break
				}
				if err == nil && retried && errors.Is(res.Err, projections.ErrDuplicateNotify) {
					w.dups.Add(1)
					break
				}
				if err == nil {
					w.errs <- fmt.Errorf("notify %s rejected: %w", body, res.Err)
					return
				}
				if time.Now().After(deadline) {
					w.errs <- fmt.Errorf("notify %s: %w", body, err)
					return
				}
				w.unknown.Add(1)
			}
			w.acked.Add(1)
		}
	}()
}

func (w *notifyWriters) wait(t testing.TB) {
	t.Helper()
	w.wg.Wait()
	close(w.errs)
	for err := range w.errs {
		t.Fatal(err)
	}
	if int(w.acked.Load()) != w.perWriter*len(w.names) {
		t.Fatalf("%d notifies applied, want %d", w.acked.Load(), w.perWriter*len(w.names))
	}
}

// check verifies that every notify is in tn's event log exactly once.
func (w *notifyWriters) check(t testing.TB, tn *pnode) {
	t.Helper()
	evs, err := tn.sm.Events(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, ev := range evs {
		if b, ok := ev.Body.(*eventlog.NotifyAccepted); ok {
			counts[string(b.Body)]++
		}
	}
	for _, name := range w.names {
		for i := 0; i < w.perWriter; i++ {
			body := notifyBody(name, i)
			sum := eventlog.NotifyHash("notify-room@peer-hub.example", body)
			if counts[string(body)] != 1 {
				t.Fatalf("%s: notify %s in the log %d times", tn.id, body, counts[string(body)])
			}
			if seen, err := tn.sm.NotifySeen(pcNotifyHub, sum); err != nil || !seen {
				t.Fatalf("%s: notify %s not in the dedup set (%v)", tn.id, body, err)
			}
		}
	}
	if len(counts) != w.perWriter*len(w.names) {
		t.Fatalf("%s: %d notifies in the log, want %d", tn.id, len(counts), w.perWriter*len(w.names))
	}
}

// TestProjectionsCluster runs the hub's state machine (projections.Machine)
// on a 3-node Raft cluster over loopback mutual TLS: n0 applies entry by
// entry, n1 and n2 with ApplyBatch, so equal digests also show that both
// paths build the same state. It covers client registration, KeyPackage
// upload and concurrent one-time claims through all nodes, commits racing
// for the same epoch through different nodes (the loser's
// *WrongEpochError survives forwarding), leader failure, catch-up from the
// log (with idempotent writes continuing across the failover) and from a
// snapshot, and ends with equal digests and log heads and a
// passing audit on every node.
func TestProjectionsCluster(t *testing.T) {
	c := newPCluster(t, 3, func(i int) bool { return i > 0 }, func(cfg *raftnode.Config) {
		// No automatic snapshots: the log catch-up below must not turn
		// into a snapshot install; the snapshot phase forces one.
		cfg.SnapshotThreshold = 1 << 30
		cfg.SnapshotInterval = time.Hour
		cfg.TrailingLogs = 16
	})
	c.nodes[0].cfg.Bootstrap = true
	c.start(0)
	c.leader(10 * time.Second)
	c.start(1)
	c.start(2)
	c.addVoters(1, 2)
	waitFor(t, 10*time.Second, "3 voters everywhere", func() bool {
		for _, tn := range c.nodes {
			if len(tn.n.Status().Servers) != 3 {
				return false
			}
		}
		return true
	})
	s := &pcState{claims: map[string]string{}, kpData: map[string][]byte{}}

	t.Run("register-and-upload", func(t *testing.T) {
		clients := []struct{ user, client string }{
			{"alice", "alice/phone"}, {"alice", "alice/laptop"}, {"bob", pcTarget}, {"bob", "bob/laptop"}, {"carol", "carol/phone"},
		}
		for i, cl := range clients {
			tn := c.nodes[i%3]
			mustAccept(t, tn, mustCmd(t, []projections.Condition{projections.ClientNotRegistered(cl.client)},
				projections.EventOp("", s.now(), &eventlog.ClientRegistered{User: cl.user, Client: cl.client, SignatureKey: []byte("sk-" + cl.client)})))
		}
		// Registering again is refused, through a follower too.
		f := c.followers()[0]
		res := propose(t, c.nodes[f], mustCmd(t, []projections.Condition{projections.ClientNotRegistered("carol/phone")},
			projections.EventOp("", s.now(), &eventlog.ClientRegistered{User: "carol", Client: "carol/phone"})))
		if !errors.Is(res.Err, projections.ErrClientExists) {
			t.Fatalf("second registration via follower: %v, want ErrClientExists", res.Err)
		}
		// bob/phone uploads pcKPs KeyPackages in three batches, one per node.
		notAfter := pcNow/1000 + 3600
		for b := 0; b < 3; b++ {
			var list []eventlog.KeyPackage
			for j := 0; j < pcKPs/3; j++ {
				n := b*(pcKPs/3) + j
				ref := fmt.Sprintf("kpref-%02d", n)
				kp := eventlog.KeyPackage{Ref: []byte(ref), CipherSuite: uint16(1 + n%2), NotAfter: notAfter + uint64(n%5), Data: []byte("keypackage-" + ref)}
				s.kpData[ref] = kp.Data
				list = append(list, kp)
			}
			mustAccept(t, c.nodes[b], mustCmd(t, []projections.Condition{projections.ClientIsRegistered(pcTarget)},
				projections.EventOp("", s.now(), &eventlog.KeyPackagesUploaded{Client: pcTarget, KeyPackages: list})))
		}
		c.converged(10 * time.Second)
		for _, tn := range c.nodes {
			kps, err := tn.sm.ClaimableKeyPackages(pcTarget, 1, pcNow)
			if err != nil || len(kps) != pcKPs/2 {
				t.Fatalf("%s: %d claimable suite-1 KeyPackages, want %d (%v)", tn.id, len(kps), pcKPs/2, err)
			}
		}
	})

	t.Run("concurrent-claims", func(t *testing.T) {
		// pcClaimers loops per node claim bob/phone's KeyPackages until
		// none is left; every KeyPackage is handed out exactly once.
		var wg sync.WaitGroup
		errs := make(chan error, 3*pcClaimers)
		for i := range c.nodes {
			for g := 0; g < pcClaimers; g++ {
				wg.Add(1)
				go func(tn *pnode, claimer string) {
					defer wg.Done()
					for {
						cmd := mustCmd(t, nil, projections.ClaimOp(projections.ClaimRequest{
							Client: pcTarget, Claimer: claimer, Room: pcRoom, Timestamp: s.now(), Required: true}))
						ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
						res, err := tn.n.Apply(ctx, cmd)
						cancel()
						switch {
						case err != nil:
							errs <- fmt.Errorf("claim via %s: %w", tn.id, err)
							return
						case errors.Is(res.Err, projections.ErrNoKeyPackage):
							return
						case res.Err != nil:
							errs <- fmt.Errorf("claim via %s: %w", tn.id, res.Err)
							return
						}
						if len(res.Claims) != 1 || !res.Claims[0].Found {
							errs <- fmt.Errorf("claim via %s: result %+v", tn.id, res.Claims)
							return
						}
						kp := res.Claims[0].KeyPackage
						ref := string(kp.Ref)
						s.mu.Lock()
						prev, dup := s.claims[ref]
						s.claims[ref] = claimer
						s.mu.Unlock()
						if dup {
							errs <- fmt.Errorf("KeyPackage %s handed to %s and %s", ref, prev, claimer)
							return
						}
						if !kp.Claimed || kp.Claimer != claimer || !bytes.Equal(kp.Data, s.kpData[ref]) || res.Claims[0].Seq != res.Events[0].Seq {
							errs <- fmt.Errorf("claim result for %s: %+v", ref, kp)
							return
						}
					}
				}(c.nodes[i], fmt.Sprintf("claimer-%s-%d", c.nodes[i].id, g))
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(s.claims) != pcKPs {
			t.Fatalf("%d KeyPackages claimed, want %d", len(s.claims), pcKPs)
		}
		c.converged(10 * time.Second)
		for _, tn := range c.nodes {
			for ref, claimer := range s.claims {
				kp, err := tn.sm.KeyPackage([]byte(ref))
				if err != nil || !kp.Claimed || kp.Claimer != claimer || kp.Room != pcRoom {
					t.Fatalf("%s: KeyPackage %s: %+v %v, want claimed by %s", tn.id, ref, kp, err, claimer)
				}
			}
			for _, suite := range []uint16{1, 2} {
				if left, err := tn.sm.ClaimableKeyPackages(pcTarget, suite, pcNow); err != nil || len(left) != 0 {
					t.Fatalf("%s: %d KeyPackages left claimable (%v)", tn.id, len(left), err)
				}
			}
		}
		// A non-required claim now reports Found=false, through a follower.
		res := mustAccept(t, c.nodes[c.followers()[0]], mustCmd(t, nil, projections.ClaimOp(projections.ClaimRequest{
			Client: pcTarget, Claimer: "late", Room: pcRoom, Timestamp: s.now()})))
		if len(res.Claims) != 1 || res.Claims[0].Found || len(res.Events) != 0 {
			t.Fatalf("claim of an exhausted client: %+v", res)
		}
	})

	t.Run("racing-commits", func(t *testing.T) {
		l := c.leader(10 * time.Second)
		mustAccept(t, c.nodes[l], mustCmd(t, []projections.Condition{projections.RoomDoesNotExist(pcRoom)},
			projections.EventOp(pcRoom, s.now(), &eventlog.RoomCreated{Hub: "hub.example", Creator: "alice", Epoch: 0,
				Policy: []byte("policy"), Participants: []byte("alice,bob"), GroupInfo: []byte("groupinfo-0"), RatchetTree: []byte("tree-0"),
				Members: []string{"alice/phone", pcTarget}})))
		s.gi = []byte("groupinfo-0")
		forwardedLosses := 0
		for round := 0; round < 6; round++ {
			fs := c.followers()
			a, b := fs[0], fs[1]
			if round%3 == 2 { // leader against a follower
				a, b = c.leader(10*time.Second), fs[round%2]
			}
			if raceCommits(t, c, s, a, b) {
				forwardedLosses++
			}
			// A message at the new epoch, through b.
			mustAccept(t, c.nodes[b], messageCmd(t, s.epoch, fmt.Sprint("hello at ", s.epoch), s.now()))
			s.messages++
		}
		if forwardedLosses < 4 {
			t.Fatalf("only %d of 6 losers were forwarded", forwardedLosses)
		}
		c.converged(10 * time.Second)
	})

	t.Run("failover", func(t *testing.T) {
		old := c.leader(10 * time.Second)
		// Writers on both followers keep submitting while the leader is
		// stopped. Their commands are idempotent (NotifyNotSeen guards a
		// NotifyAccepted: draft-ralston-mimi-protocol-02, Section 5.5), so
		// an attempt with an unknown outcome is retried and the retry
		// either applies or reports ErrDuplicateNotify.
		nw := notifyWriters{perWriter: 25}
		for _, f := range c.followers() {
			for g := 0; g < 2; g++ {
				nw.start(c.nodes[f], fmt.Sprintf("%s-%d", c.nodes[f].id, g), s)
			}
		}
		waitFor(t, 15*time.Second, "writes before the leader stops", func() bool { return nw.acked.Load() >= 20 })
		c.stop(old)
		nw.wait(t)
		l := c.leader(10 * time.Second)
		if l == old {
			t.Fatal("stopped node still leads")
		}
		// The new leader accepts writes, directly and forwarded.
		f := c.followers()[0]
		raceCommits(t, c, s, l, f)
		for i := 0; i < 10; i++ {
			via := []int{l, f}[i%2]
			mustAccept(t, c.nodes[via], messageCmd(t, s.epoch, fmt.Sprint("after failover ", i), s.now()))
			s.messages++
		}
		// The stopped node restarts and catches up from the log alone.
		c.start(old)
		c.leader(10 * time.Second)
		c.converged(15 * time.Second)
		if r := c.nodes[old].n.Restores(); r != 0 {
			t.Fatalf("%s restored %d snapshot(s); expected log catch-up", c.nodes[old].id, r)
		}
		for _, tn := range c.nodes {
			nw.check(t, tn)
		}
		t.Logf("failover: %d idempotent notifies from 4 writers, %d attempts with unknown outcome retried, %d retries found their first attempt applied",
			nw.acked.Load(), nw.unknown.Load(), nw.dups.Load())
	})

	t.Run("snapshot-catch-up", func(t *testing.T) {
		l := c.leader(10 * time.Second)
		f := c.followers()[0]
		before := c.nodes[f].n.AppliedIndex()
		c.stop(f)
		for i := 0; i < 40; i++ {
			mustAccept(t, c.nodes[l], messageCmd(t, s.epoch, fmt.Sprint("while down ", i), s.now()))
			s.messages++
		}
		// Acknowledge part of the fanout queue (cursor moves, entries go).
		mustAccept(t, c.nodes[l], mustCmd(t, nil, projections.EventOp("", s.now(), &eventlog.FanoutDelivered{Destination: pcFanout1, UpTo: 10})))
		other := c.followers()[0]
		raceCommits(t, c, s, l, other)
		if err := c.nodes[l].n.Snapshot(); err != nil {
			t.Fatalf("leader snapshot: %v", err)
		}
		if st := c.nodes[l].n.Status(); st.LastSnapshotIndex <= before+16 {
			t.Fatalf("snapshot index %d does not truncate past the stopped follower's %d", st.LastSnapshotIndex, before)
		}
		c.start(f)
		c.converged(20 * time.Second)
		if c.nodes[f].n.Restores() == 0 {
			t.Fatalf("%s caught up without installing a snapshot", c.nodes[f].id)
		}
		// It keeps following afterwards, and serves forwarded writes.
		raceCommits(t, c, s, f, c.leader(10*time.Second))
		for i := 0; i < 5; i++ {
			mustAccept(t, c.nodes[f], messageCmd(t, s.epoch, fmt.Sprint("after snapshot ", i), s.now()))
			s.messages++
		}
		c.converged(10 * time.Second)
	})

	t.Run("final", func(t *testing.T) {
		digest := c.converged(15 * time.Second)
		var head eventlog.Head
		for i, tn := range c.nodes {
			h, err := tn.sm.LogHead()
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				head = h
			} else if h != head {
				t.Fatalf("%s: log head %+v, want %+v", tn.id, h, head)
			}
			room, err := tn.sm.Room(pcRoom)
			if err != nil {
				t.Fatal(err)
			}
			if room.Epoch != s.epoch || !bytes.Equal(room.GroupInfo, s.gi) || len(room.Members) != 3 {
				t.Fatalf("%s: room at epoch %d with GroupInfo %q, want %d / %q", tn.id, room.Epoch, room.GroupInfo, s.epoch, s.gi)
			}
			cur, err := tn.sm.FanoutCursor(pcFanout1)
			if err != nil || cur.Enqueued != uint64(s.messages) || cur.Acked != 10 {
				t.Fatalf("%s: fanout cursor %+v (%v), want %d enqueued, 10 acked", tn.id, cur, err, s.messages)
			}
			pending, err := tn.sm.FanoutPending(pcFanout1, 0)
			if err != nil || len(pending) != s.messages-10 {
				t.Fatalf("%s: %d pending deliveries (%v), want %d", tn.id, len(pending), err, s.messages-10)
			}
			if p, err := tn.sm.Payload(pending[len(pending)-1]); err != nil || !bytes.HasPrefix(p, []byte("after snapshot ")) {
				t.Fatalf("%s: last pending payload %q (%v)", tn.id, p, err)
			}
		}
		auditNodes(c)
		for _, tn := range c.nodes {
			if tn.batch {
				t.Logf("%s ApplyBatch: %v", tn.id, &tn.stats)
				if tn.stats.largest.Load() < 2 {
					t.Errorf("%s never received a batch of more than one entry", tn.id)
				}
			}
		}
		st := c.nodes[c.leader(10*time.Second)].n.Status()
		t.Logf("3 nodes (n0 per-entry, n1/n2 ApplyBatch) agree: applied index %d, %d events, epoch %d, %d KeyPackages claimed once each, digest %x",
			st.StateMachineIndex, head.Seq, s.epoch, len(s.claims), digest[:8])
	})
}
