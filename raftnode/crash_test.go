package raftnode_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmimi/mimi/raftnode"
)

const (
	crashEnvDir   = "RAFTNODE_CRASH_DIR"
	crashEnvStart = "RAFTNODE_CRASH_START"
	crashEnvBatch = "RAFTNODE_CRASH_BATCH"
	crashEnvSeed  = "RAFTNODE_CRASH_SEED"
)

// crashConfig is the standalone node configuration used by the helper and
// by the parent's verification; frequent snapshots mean kills also land
// during snapshotting and log compaction.
func crashConfig(dir string) raftnode.Config {
	cfg := raftnode.Config{
		DataDir:           filepath.Join(dir, "raft"),
		SnapshotThreshold: 40,
		SnapshotInterval:  100 * time.Millisecond,
		TrailingLogs:      20,
	}
	fastTiming(&cfg)
	return cfg
}

func openCrashNode(t testing.TB, dir string, batch bool) (*raftnode.Node[testResult], *testSM) {
	t.Helper()
	sm, err := openTestSM(filepath.Join(dir, "sm"))
	if err != nil {
		t.Fatal(err)
	}
	var machine raftnode.StateMachine[testResult] = sm
	if batch {
		machine = batchSM{sm}
	}
	n, err := raftnode.Open[testResult](crashConfig(dir), machine, nil)
	if err != nil {
		_ = sm.Close()
		t.Fatal(err)
	}
	return n, sm
}

// TestCrashHelper is the subprocess body of TestCrashRecovery: it appends
// commands from several goroutines and prints "ack <id>" for each
// acknowledged one, until it is killed.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("subprocess helper for TestCrashRecovery")
	}
	start, err := strconv.Atoi(os.Getenv(crashEnvStart))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := openCrashNode(t, dir, os.Getenv(crashEnvBatch) == "1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
				if _, err := n.Apply(ctx, []byte(fmt.Sprintf("c-%d", id))); err != nil {
					continue
				}
				out.Lock()
				_, _ = os.Stdout.Write([]byte(fmt.Sprintf("ack %d\n", id)))
				out.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashRecovery SIGKILLs a node that is appending in a burst, at a
// random (seeded) moment, restarts on the same data dir and checks that
// every acknowledged command is present exactly once and that no batch was
// half applied (counter == number of records). Rounds alternate between
// per-entry and batched application.
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashEnvDir) != "" {
		t.Skip("inside helper")
	}
	if testing.Short() {
		t.Skip("spawns subprocesses")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashEnvSeed); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("seed %d (set %s to reproduce)", seed, crashEnvSeed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dir := t.TempDir()
	acked := map[string]bool{}
	const rounds = 4
	for round := 0; round < rounds; round++ {
		batch := round%2 == 1
		start := round * 1_000_000
		killAfter := time.Duration(rng.IntN(400)) * time.Millisecond

		roundAcks := runAndKill(t, round, "TestCrashHelper", []string{
			crashEnvDir + "=" + dir,
			crashEnvStart + "=" + strconv.Itoa(start),
			crashEnvBatch + "=" + map[bool]string{true: "1", false: "0"}[batch],
		}, killAfter, func(id string) { acked["c-"+id] = true }, nil)

		// Restart on the same data dir and verify.
		n, sm := openCrashNode(t, dir, batch)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := n.ReadBarrier(ctx)
		cancel()
		if err != nil {
			t.Fatalf("round %d: read barrier after restart: %v", round, err)
		}
		recs, err := sm.Check()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for id := range acked {
			if recs[id] != 1 {
				t.Fatalf("round %d: acknowledged %s present %d times", round, id, recs[id])
			}
		}
		for id, c := range recs {
			if c != 1 {
				t.Fatalf("round %d: %s applied %d times", round, id, c)
			}
		}
		t.Logf("round %d (batch=%v): killed %v after first ack; %d acks this round, %d total, %d records, snapshot index %d",
			round, batch, killAfter, roundAcks, len(acked), len(recs), n.Status().LastSnapshotIndex)
		if err := n.Shutdown(); err != nil {
			t.Fatal(err)
		}
		if err := sm.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
