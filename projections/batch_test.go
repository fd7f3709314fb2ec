package projections_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// sameResult fails the test unless a (from Apply) and b (from ApplyBatch)
// are the same outcome: the forwarding encoding (events, claims, error kind
// and fields) and the error text agree.
func sameResult(t testing.TB, what string, a, b projections.Result) {
	t.Helper()
	if a.Duplicate != b.Duplicate {
		t.Fatalf("%s: duplicate %v vs %v", what, a.Duplicate, b.Duplicate)
	}
	if (a.Err == nil) != (b.Err == nil) || (a.Err != nil && a.Err.Error() != b.Err.Error()) {
		t.Fatalf("%s: error %v vs %v", what, a.Err, b.Err)
	}
	ea, err := projections.ResultCodec{}.EncodeResult(a)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := projections.ResultCodec{}.EncodeResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ea, eb) {
		t.Fatalf("%s: results differ:\n%+v\n%+v", what, a, b)
	}
}

// sameStore fails the test unless the two Machines hold the same state:
// every key (log and projections) but the applied index, the digest, the
// log head and the applied index.
func sameStore(t testing.TB, a, b *projections.Machine) {
	t.Helper()
	if !bytes.Equal(stateHash(t, a), stateHash(t, b)) {
		t.Fatal("stores differ")
	}
	if !bytes.Equal(digest(t, a), digest(t, b)) {
		t.Fatal("digests differ")
	}
	ha, err := a.LogHead()
	if err != nil {
		t.Fatal(err)
	}
	hb, err := b.LogHead()
	if err != nil {
		t.Fatal(err)
	}
	if ha != hb {
		t.Fatalf("log heads %+v vs %+v", ha, hb)
	}
	if a.AppliedIndex() != b.AppliedIndex() {
		t.Fatalf("applied %d vs %d", a.AppliedIndex(), b.AppliedIndex())
	}
}

// TestApplyBatchEqualsSequential: random command sequences (with
// rejections, some after earlier operations of the same command wrote,
// malformed commands, index gaps and duplicate indexes) applied entry by
// entry with Apply and in random-sized slices with ApplyBatch give the
// same results, the same store and the same digest; with and without the
// cross-command cache.
func TestApplyBatchEqualsSequential(t *testing.T) {
	for _, seed := range []uint64{11, 12} {
		for _, noCache := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed%d/nocache=%v", seed, noCache), func(t *testing.T) {
				fs := vfs.NewMem()
				// The generator needs a live Machine as its oracle.
				g := runRandom(t, newHarnessFS(t, fs, "gen"), seed, 300)
				seqH := newHarnessFS(t, fs, "seq")
				batH := newHarnessFS(t, fs, "bat", projections.Options{NoCache: noCache})
				runRandom(t, seqH, seed, 0)
				runRandom(t, batH, seed, 0)
				if seqH.idx != batH.idx {
					t.Fatal("seeding differs")
				}

				rnd := rand.New(rand.NewPCG(seed, 99))
				var plan []projections.Entry
				idx := seqH.idx
				for _, cmd := range g.cmds {
					if rnd.IntN(10) == 0 && idx > 0 { // a replayed (duplicate) index
						plan = append(plan, projections.Entry{Index: 1 + rnd.Uint64N(idx), Cmd: g.cmds[rnd.IntN(len(g.cmds))]})
					}
					idx += 1
					if rnd.IntN(8) == 0 { // Raft entries without a command
						idx += 1 + rnd.Uint64N(3)
					}
					plan = append(plan, projections.Entry{Index: idx, Cmd: cmd})
				}

				want := make([]projections.Result, len(plan))
				for i, e := range plan {
					want[i] = seqH.m.Apply(e.Index, e.Cmd)
				}
				var got []projections.Result
				batches := 0
				for rest := plan; len(rest) > 0; batches++ {
					n := min(len(rest), 1+rnd.IntN(64))
					res := batH.m.ApplyBatch(rest[:n])
					if len(res) != n {
						t.Fatalf("ApplyBatch returned %d results for %d entries", len(res), n)
					}
					got = append(got, res...)
					rest = rest[n:]
					if batH.m.AppliedIndex() != plan[len(got)-1].Index && !got[len(got)-1].Duplicate {
						t.Fatalf("applied index %d after a batch ending at %d", batH.m.AppliedIndex(), plan[len(got)-1].Index)
					}
				}
				var dups, rejected, ok int
				for i := range plan {
					sameResult(t, fmt.Sprintf("entry %d (index %d)", i, plan[i].Index), want[i], got[i])
					switch {
					case want[i].Duplicate:
						dups++
					case want[i].Err != nil:
						if errors.Is(want[i].Err, projections.ErrStorage) {
							t.Fatalf("entry %d: %v", i, want[i].Err)
						}
						rejected++
					default:
						ok++
					}
				}
				t.Logf("%d entries in %d batches: %d accepted, %d rejected, %d duplicates", len(plan), batches, ok, rejected, dups)
				if rejected < 30 || dups < 10 || ok < 100 {
					t.Fatalf("plan too lopsided: %d accepted, %d rejected, %d duplicates", ok, rejected, dups)
				}
				sameStore(t, seqH.m, batH.m)
				if rep, err := batH.m.VerifyLog(); err != nil || !rep.OK() {
					t.Fatalf("verify: %v %v", err, rep)
				}
				if a, err := batH.m.Audit("audit"); err != nil || !a.OK() {
					t.Fatalf("audit: %v %+v", err, a)
				}
				// The applied index is durable.
				applied := batH.m.AppliedIndex()
				if err := batH.m.Close(); err != nil {
					t.Fatal(err)
				}
				m, err := projections.OpenWithOptions("bat", projections.Options{FS: fs})
				if err != nil {
					t.Fatal(err)
				}
				batH.m = m
				if m.AppliedIndex() != applied {
					t.Fatalf("reopened at %d, want %d", m.AppliedIndex(), applied)
				}
				sameStore(t, seqH.m, batH.m)
			})
		}
	}
}

// TestApplyBatchRollback: a command rejected after some of its operations
// were written inside the batch leaves no trace for the commands after it
// in the same batch (the savepoint is restored), including claims.
func TestApplyBatchRollback(t *testing.T) {
	for _, noCache := range []bool{false, true} {
		t.Run(fmt.Sprintf("nocache=%v", noCache), func(t *testing.T) {
			fs := vfs.NewMem()
			seqH := newHarnessFS(t, fs, "seq")
			batH := newHarnessFS(t, fs, "bat", projections.Options{NoCache: noCache})
			cmd := func(conds []projections.Condition, ops ...projections.Op) []byte {
				return encodeCmd(t, &projections.Command{Conditions: conds, Ops: ops})
			}
			reg := func(c string) projections.Op {
				return ev("", 1, &eventlog.ClientRegistered{User: "u", Client: c})
			}
			claim := func() projections.Op {
				return projections.ClaimOp(projections.ClaimRequest{Client: "x", Claimer: "u", Room: "room", Timestamp: 1000, Required: true})
			}
			entries := []projections.Entry{
				{1, cmd(nil, reg("x"), ev("room", 1, &eventlog.RoomCreated{Hub: "hub", Members: []string{"x"}}))},
				// Rejected after registering y: y must vanish.
				{2, cmd(nil, reg("y"), ev("nowhere", 1, &eventlog.RoomStateUpdated{Policy: []byte("p")}))},
				{3, cmd(conds(projections.ClientNotRegistered("y")), reg("z"))},
				{4, cmd(nil, ev("", 1, &eventlog.KeyPackagesUploaded{Client: "x", KeyPackages: kps(1, "kp1", 100, "kp2", 200)}))},
				// Two claims succeed, the third finds nothing: all undone.
				{5, cmd(nil, claim(), claim(), claim())},
				{6, cmd(nil, claim())},
				// Rejected after a message and a fanout enqueue.
				{7, cmd(nil, ev("room", 1, &eventlog.ApplicationMessageAccepted{Message: []byte("m1")}),
					ev("room", 1, &eventlog.FanoutEnqueued{Destinations: []string{"b.example"}, Back: 1}),
					ev("room", 1, &eventlog.CommitAccepted{Epoch: 7}))},
				{8, cmd(nil, ev("room", 1, &eventlog.ApplicationMessageAccepted{Message: []byte("m2")}),
					ev("room", 1, &eventlog.FanoutEnqueued{Destinations: []string{"b.example"}, Back: 1}))},
				{8, cmd(nil, reg("dup"))},           // duplicate index inside the batch
				{9, []byte("not a command")},        // malformed
				{10, cmd(nil, reg("y"), reg("y2"))}, // y is registrable again
				{11, cmd(nil, claim(), claim())},    // one left: rejected after one claim
			}
			want := make([]projections.Result, len(entries))
			for i, e := range entries {
				want[i] = seqH.m.Apply(e.Index, e.Cmd)
			}
			got := batH.m.ApplyBatch(entries)
			for i := range entries {
				sameResult(t, fmt.Sprintf("entry %d", i), want[i], got[i])
			}
			for i, rejected := range []bool{false, true, false, false, true, false, true, false, false, true, false, true} {
				if (got[i].Err != nil) != rejected {
					t.Fatalf("entry %d: err %v, want rejected=%v", i, got[i].Err, rejected)
				}
			}
			if !got[8].Duplicate {
				t.Fatal("repeated index not reported as duplicate")
			}
			if c := got[5].Claims; len(c) != 1 || !c[0].Found || string(c[0].KeyPackage.Ref) != "kp1" {
				t.Fatalf("claim after a rolled-back claim: %+v", c)
			}
			sameStore(t, seqH.m, batH.m)
			if _, err := batH.m.Client("dup"); !errors.Is(err, projections.ErrUnknownClient) {
				t.Fatalf("duplicate entry applied: %v", err)
			}
			if cur, err := batH.m.FanoutCursor("b.example"); err != nil || cur.Enqueued != 1 {
				t.Fatalf("fanout cursor %+v, %v", cur, err)
			}
			if a, err := batH.m.Audit("audit"); err != nil || !a.OK() {
				t.Fatalf("audit: %v %+v", err, a)
			}

			// All duplicates: nothing changes; empty: nothing happens.
			before := stateHash(t, batH.m)
			for _, r := range batH.m.ApplyBatch(entries[:4]) {
				if !r.Duplicate {
					t.Fatalf("replayed entry not a duplicate: %+v", r)
				}
			}
			if len(batH.m.ApplyBatch(nil)) != 0 || !bytes.Equal(before, stateHash(t, batH.m)) || batH.m.AppliedIndex() != 11 {
				t.Fatal("duplicate or empty batch changed the store")
			}
			// Closed.
			batH.m.Close()
			for _, r := range batH.m.ApplyBatch(entries[:2]) {
				if !errors.Is(r.Err, projections.ErrClosed) {
					t.Fatalf("closed machine: %+v", r)
				}
			}
		})
	}
}

// TestApplyBatchConcurrentReads: the read APIs, Digest and Snapshot run
// while batches are applied (for -race), and every read sees a whole batch
// or none of it: the number of messages in the room always equals the
// fanout cursor (each command appends a message and its enqueue).
func TestApplyBatchConcurrentReads(t *testing.T) {
	h := newHarness(t)
	h.ok(nil, ev("room", 1, &eventlog.RoomCreated{Hub: "hub"}))
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			var buf bytes.Buffer
			if err := h.m.Snapshot(&buf); err != nil {
				errs <- err
				return
			}
			if _, err := h.m.Digest(); err != nil {
				errs <- err
				return
			}
			head, err := h.m.LogHead()
			if err != nil {
				errs <- err
				return
			}
			if (head.Seq-1)%2 != 0 {
				errs <- fmt.Errorf("log head %d splits a command", head.Seq)
				return
			}
		}
	}()
	idx := h.idx
	for b := 0; b < 40; b++ {
		var entries []projections.Entry
		for j := 0; j < 16; j++ {
			idx++
			entries = append(entries, projections.Entry{Index: idx, Cmd: encodeCmd(t, &projections.Command{Ops: []projections.Op{
				ev("room", 2, &eventlog.ApplicationMessageAccepted{Message: []byte(fmt.Sprint("m", idx))}),
				ev("room", 2, &eventlog.FanoutEnqueued{Destinations: []string{"b.example"}, Back: 1}),
			}})})
		}
		for i, r := range h.m.ApplyBatch(entries) {
			if r.Err != nil || r.Duplicate {
				t.Fatalf("batch %d entry %d: %+v", b, i, r)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if cur, err := h.m.FanoutCursor("b.example"); err != nil || cur.Enqueued != 640 {
		t.Fatalf("cursor %+v %v", cur, err)
	}
}

// BenchmarkApplyBatchVsApply: 64 one-message commands per round, on disk,
// applied one Apply (one fsync) each or with one ApplyBatch (one fsync).
func BenchmarkApplyBatchVsApply(b *testing.B) {
	for _, batched := range []bool{false, true} {
		b.Run(map[bool]string{false: "apply", true: "applybatch"}[batched], func(b *testing.B) {
			m := benchMachine(b)
			benchSetup(b, m, 10)
			cmds := make([][]byte, 64)
			for i := range cmds {
				cmds[i] = encodeCmd(b, &projections.Command{Ops: []projections.Op{
					ev(fmt.Sprint("room-", i%10), uint64(i), &eventlog.ApplicationMessageAccepted{Message: make([]byte, 256), Sender: "c"})}})
			}
			idx := uint64(1)
			entries := make([]projections.Entry, len(cmds))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				for j := range cmds {
					idx++
					entries[j] = projections.Entry{Index: idx, Cmd: cmds[j]}
				}
				if batched {
					for _, r := range m.ApplyBatch(entries) {
						if r.Err != nil {
							b.Fatal(r.Err)
						}
					}
					continue
				}
				for _, e := range entries {
					if r := m.Apply(e.Index, e.Cmd); r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			b.ReportMetric(float64(b.N*len(cmds))/time.Since(start).Seconds(), "cmds/s")
		})
	}
}

// TestApplyBatchSplit: a slice whose writes exceed the batch size bound is
// committed in several synced batches; results and store still equal
// sequential Apply, including a rejected command (rolled back) and a
// duplicate right after a split.
func TestApplyBatchSplit(t *testing.T) {
	if testing.Short() {
		t.Skip("writes ~40 MB")
	}
	seqH := newHarnessFS(t, vfs.Default, t.TempDir())
	batH := newHarnessFS(t, vfs.Default, t.TempDir())
	big := bytes.Repeat([]byte("m"), 6<<20)
	msg := func(ts uint64, body []byte) projections.Op {
		return ev("room", ts, &eventlog.ApplicationMessageAccepted{Message: body})
	}
	cmd := func(ops ...projections.Op) []byte { return encodeCmd(t, &projections.Command{Ops: ops}) }
	entries := []projections.Entry{{Index: 1, Cmd: cmd(ev("room", 1, &eventlog.RoomCreated{Hub: "hub"}))}}
	for i := 0; i < 3; i++ { // 18 MiB: the 16 MiB bound is crossed here
		body := append(bytes.Clone(big), byte(i)) // distinct: a room accepts a message once
		entries = append(entries, projections.Entry{Index: uint64(len(entries) + 1), Cmd: cmd(msg(2, body))})
	}
	entries = append(entries,
		projections.Entry{Index: 3, Cmd: cmd(msg(3, []byte("dup")))},
		projections.Entry{Index: 5, Cmd: cmd(msg(4, []byte("rolled back")), ev("room", 4, &eventlog.CommitAccepted{Epoch: 5}))},
		projections.Entry{Index: 6, Cmd: cmd(msg(5, []byte("last")))},
	)
	want := make([]projections.Result, len(entries))
	for i, e := range entries {
		want[i] = seqH.m.Apply(e.Index, e.Cmd)
	}
	got := batH.m.ApplyBatch(entries)
	for i := range entries {
		sameResult(t, fmt.Sprintf("entry %d", i), want[i], got[i])
	}
	if !got[4].Duplicate || got[5].Err == nil || got[6].Err != nil || got[6].Events[0].Seq != 5 {
		t.Fatalf("unexpected results: %+v / %v / %+v", got[4], got[5].Err, got[6])
	}
	sameStore(t, seqH.m, batH.m)
	if a, err := batH.m.Audit(t.TempDir() + "/audit"); err != nil || !a.OK() {
		t.Fatalf("audit: %v %+v", err, a)
	}
}

// TestApplyBatchFatal: a corrupt projection record makes a command fail
// fatally inside a batch: the entries before it are committed, it and the
// later ones report ErrStorage and are not recorded as applied.
func TestApplyBatchFatal(t *testing.T) {
	fs := vfs.NewMem()
	h := newHarnessFS(t, fs, "node")
	reg := func(c string) []byte {
		return encodeCmd(t, &projections.Command{Ops: []projections.Op{ev("", 1, &eventlog.ClientRegistered{User: "u", Client: c})}})
	}
	if r := h.m.Apply(1, reg("x")); r.Err != nil {
		t.Fatal(r.Err)
	}
	// Reopen (empty cache) and corrupt x's client record.
	h.m.Close()
	m, err := projections.OpenWithOptions("node", projections.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	if err := m.DBForTest().Set(eventlog.AppendKeyString([]byte("p/cli/"), "x"), []byte{0xff, 0xff}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	got := m.ApplyBatch([]projections.Entry{
		{Index: 2, Cmd: reg("a")},
		{Index: 3, Cmd: encodeCmd(t, &projections.Command{Ops: []projections.Op{ev("", 1, &eventlog.ClientRemoved{Client: "x"})}})},
		{Index: 4, Cmd: reg("c")},
		{Index: 1, Cmd: reg("d")},
	})
	if got[0].Err != nil || !errors.Is(got[1].Err, projections.ErrStorage) || !errors.Is(got[1].Err, projections.ErrCorruptState) ||
		!errors.Is(got[2].Err, projections.ErrStorage) || !got[3].Duplicate {
		t.Fatalf("results: %v / %v / %v / %+v", got[0].Err, got[1].Err, got[2].Err, got[3])
	}
	if m.AppliedIndex() != 2 {
		t.Fatalf("applied index %d, want 2", m.AppliedIndex())
	}
	if _, err := m.Client("a"); err != nil {
		t.Fatalf("entry before the failure not committed: %v", err)
	}
	if _, err := m.Client("c"); !errors.Is(err, projections.ErrUnknownClient) {
		t.Fatalf("entry after the failure applied: %v", err)
	}
}
