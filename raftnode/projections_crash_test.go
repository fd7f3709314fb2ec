package raftnode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/raftnode"
)

const (
	pcrashEnvDir   = "RAFTNODE_PCRASH_DIR"
	pcrashEnvStart = "RAFTNODE_PCRASH_START"
	pcrashEnvBatch = "RAFTNODE_PCRASH_BATCH"
	// pcrashEnvSeed reproduces a run's kill moments; pcrashEnvKillMS
	// overrides them (milliseconds after the first acknowledgement).
	pcrashEnvSeed   = "RAFTNODE_PCRASH_SEED"
	pcrashEnvKillMS = "RAFTNODE_PCRASH_KILL_MS"

	pcrashRoom = "crash-room@hub.example"
	pcrashDest = "b.example"
)

// pcrashMsgPrefix starts every message body; the id follows.
var pcrashMsgPrefix = []byte("crash-msg-")

func openProjCrashNode(t testing.TB, dir string, batch bool) (*raftnode.Node[projections.Result], *projections.Machine) {
	t.Helper()
	m, err := projections.Open(filepath.Join(dir, "sm"))
	if err != nil {
		t.Fatal(err)
	}
	// crashConfig: frequent snapshots and compaction, so kills also land
	// while the Machine streams a snapshot.
	n, err := raftnode.Open[projections.Result](crashConfig(dir), projSM(m, batch, nil), projections.ResultCodec{})
	if err != nil {
		_ = m.Close()
		t.Fatal(err)
	}
	return n, m
}

// pcrashCmd appends one application message carrying id and its fanout.
func pcrashCmd(t testing.TB, id int) []byte {
	return mustCmd(t, nil,
		projections.EventOp(pcrashRoom, uint64(id), &eventlog.ApplicationMessageAccepted{
			Message: append(append([]byte(nil), pcrashMsgPrefix...), strconv.Itoa(id)...), Sender: "c"}),
		projections.EventOp(pcrashRoom, uint64(id), &eventlog.FanoutEnqueued{Destinations: []string{pcrashDest}, Back: 1}),
	)
}

// pcrashID returns the id of a message command, or false.
func pcrashID(cmd []byte) (int, bool) {
	c, err := projections.DecodeCommand(cmd)
	if err != nil || len(c.Ops) == 0 || c.Ops[0].Event == nil {
		return 0, false
	}
	if b, ok := c.Ops[0].Event.Body.(*eventlog.ApplicationMessageAccepted); ok {
		return messageID(b.Message)
	}
	return 0, false
}

func messageID(msg []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(msg, pcrashMsgPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.Atoi(string(rest))
	return id, err == nil
}

// TestProjectionsCrashHelper is the subprocess body of
// TestProjectionsCrashRecovery: a standalone node over projections.Machine
// that appends message commands from several goroutines and prints
// "ack <id>" for each accepted one until it is killed.
func TestProjectionsCrashHelper(t *testing.T) {
	dir := os.Getenv(pcrashEnvDir)
	if dir == "" {
		t.Skip("subprocess helper for TestProjectionsCrashRecovery")
	}
	start, err := strconv.Atoi(os.Getenv(pcrashEnvStart))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := openProjCrashNode(t, dir, os.Getenv(pcrashEnvBatch) == "1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The room exists from the first round on.
	res, err := n.Apply(ctx, mustCmd(t, []projections.Condition{projections.RoomDoesNotExist(pcrashRoom)},
		projections.EventOp(pcrashRoom, 0, &eventlog.RoomCreated{Hub: "hub.example", GroupInfo: []byte("gi")})))
	if err != nil || (res.Err != nil && !errors.Is(res.Err, projections.ErrRoomExists)) {
		t.Fatalf("create room: %v %v", err, res.Err)
	}
	var (
		next atomic.Int64
		out  sync.Mutex
		wg   sync.WaitGroup
	)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				id := start + int(next.Add(1))
				res, err := n.Apply(ctx, pcrashCmd(t, id))
				line := fmt.Sprintf("ack %d\n", id)
				switch {
				case err != nil:
					continue
				case res.Err != nil:
					line = fmt.Sprintf("rejected %d: %v\n", id, res.Err)
				}
				out.Lock()
				_, _ = os.Stdout.WriteString(line)
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

// raftCommandIDs reads the Raft log left in dir and returns the message id
// of every command entry still in it, by Raft index.
func raftCommandIDs(t testing.TB, dir string) (ids map[uint64]int, first, last uint64) {
	t.Helper()
	ls, err := raftnode.OpenLogStore(filepath.Join(dir, "raft", "raft-log"))
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	first, _ = ls.FirstIndex()
	last, _ = ls.LastIndex()
	ids = map[uint64]int{}
	for i := first; i <= last && i > 0; i++ {
		var l raft.Log
		if err := ls.GetLog(i, &l); err != nil {
			t.Fatalf("raft log entry %d: %v", i, err)
		}
		if l.Type != raft.LogCommand {
			continue
		}
		if id, ok := pcrashID(l.Data); ok {
			ids[i] = id
		}
	}
	return ids, first, last
}

// messageCounts counts the message events per id in m's log.
func messageCounts(t testing.TB, m *projections.Machine) map[int]int {
	t.Helper()
	evs, err := m.Events(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int{}
	for _, ev := range evs {
		if b, ok := ev.Body.(*eventlog.ApplicationMessageAccepted); ok {
			id, ok := messageID(b.Message)
			if !ok {
				t.Fatalf("event %d: foreign message %q", ev.Seq, b.Message)
			}
			counts[id]++
		}
	}
	return counts
}

// TestProjectionsCrashRecovery SIGKILLs a standalone node running
// projections.Machine while it appends in a burst, at a random (seeded,
// logged, overridable) moment, and checks on the same data dir:
//
//   - before Raft restarts, the Machine's persisted applied index agrees
//     with its event log: a message command in the Raft log is in the
//     event log exactly once if its index is at or below the applied
//     index, and absent otherwise (state and applied index are committed
//     together, per entry or per batch);
//   - after the restart and a read barrier, every acknowledged id and every
//     id in the Raft log is in the event log exactly once;
//   - the hash chain verifies, Audit passes (the projections replayed from
//     the log equal the live ones: nothing half-applied), the fanout cursor
//     counts exactly the messages, and the node's and Machine's applied
//     indexes agree.
//
// Rounds alternate between per-entry Apply and ApplyBatch.
func TestProjectionsCrashRecovery(t *testing.T) {
	if os.Getenv(pcrashEnvDir) != "" || os.Getenv(crashEnvDir) != "" {
		t.Skip("inside a helper")
	}
	if testing.Short() {
		t.Skip("spawns subprocesses")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(pcrashEnvSeed); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	killOverride := time.Duration(-1)
	if s := os.Getenv(pcrashEnvKillMS); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		killOverride = time.Duration(v) * time.Millisecond
	}
	t.Logf("seed %d (set %s to reproduce, %s to fix the kill delay)", seed, pcrashEnvSeed, pcrashEnvKillMS)
	rng := rand.New(rand.NewPCG(seed, seed^0x6a09e667f3bcc908))
	dir := t.TempDir()
	acked := map[int]bool{}
	const rounds = 6
	for round := 0; round < rounds; round++ {
		batch := round%2 == 1
		start := round * 1_000_000
		killAfter := time.Duration(rng.IntN(400)) * time.Millisecond
		if killOverride >= 0 {
			killAfter = killOverride
		}

		roundAcks := runAndKill(t, round, "TestProjectionsCrashHelper", []string{
			pcrashEnvDir + "=" + dir,
			pcrashEnvStart + "=" + strconv.Itoa(start),
			pcrashEnvBatch + "=" + map[bool]string{true: "1", false: "0"}[batch],
		}, killAfter, func(s string) {
			id, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("round %d: bad ack %q", round, s)
			}
			acked[id] = true
		}, func(l string) {
			if strings.HasPrefix(l, "rejected ") {
				t.Fatalf("round %d: helper: %s", round, l)
			}
		})

		// 1. Before Raft replays anything: applied index vs event log.
		raftIDs, first, last := raftCommandIDs(t, dir)
		m, err := projections.Open(filepath.Join(dir, "sm"))
		if err != nil {
			t.Fatal(err)
		}
		applied := m.AppliedIndex()
		counts := messageCounts(t, m)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if applied > last {
			t.Fatalf("round %d: machine applied %d beyond the Raft log's last index %d", round, applied, last)
		}
		pendingAtKill := 0
		for idx, id := range raftIDs {
			want := 0
			if idx <= applied {
				want = 1
			} else {
				pendingAtKill++
			}
			if counts[id] != want {
				t.Fatalf("round %d: id %d at Raft index %d (applied %d) is in the event log %d times, want %d",
					round, id, idx, applied, counts[id], want)
			}
		}

		// 2. Restart on the same data dir.
		n, m := openProjCrashNode(t, dir, batch)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = n.ReadBarrier(ctx)
		cancel()
		if err != nil {
			t.Fatalf("round %d: read barrier after restart: %v", round, err)
		}
		counts = messageCounts(t, m)
		for id := range acked {
			if counts[id] != 1 {
				t.Fatalf("round %d: acknowledged id %d is in the event log %d times", round, id, counts[id])
			}
		}
		for idx, id := range raftIDs {
			if counts[id] != 1 {
				t.Fatalf("round %d: id %d of Raft entry %d is in the event log %d times", round, id, idx, counts[id])
			}
		}
		total := 0
		for id, c := range counts {
			if c != 1 {
				t.Fatalf("round %d: id %d applied %d times", round, id, c)
			}
			total += c
		}
		a := checkMachine(t, fmt.Sprintf("round %d", round), m)
		cur, err := m.FanoutCursor(pcrashDest)
		if err != nil || cur.Enqueued != uint64(total) {
			t.Fatalf("round %d: fanout cursor %+v (%v), want %d enqueued", round, cur, err, total)
		}
		st := n.Status()
		if m.AppliedIndex() != n.AppliedIndex() || st.StateMachineIndex != m.AppliedIndex() || m.AppliedIndex() > st.LastLogIndex || m.AppliedIndex() < applied {
			t.Fatalf("round %d: applied indexes disagree: machine %d, node %d, status %+v, before restart %d",
				round, m.AppliedIndex(), n.AppliedIndex(), st, applied)
		}
		t.Logf("round %d (batch=%v): killed %v after the first ack; %d acks (%d total); Raft log %d..%d, machine at %d with %d entries pending at the kill; %d messages, %d events replayed by audit",
			round, batch, killAfter, roundAcks, len(acked), first, last, applied, pendingAtKill, total, a.Replay.Events)
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
