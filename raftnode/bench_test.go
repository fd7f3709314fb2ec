package raftnode_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/openmimi/mimi/raftnode"
)

func benchStandalone(b *testing.B, batch, batchApplyCh bool) *raftnode.Node[testResult] {
	b.Helper()
	dir := b.TempDir()
	sm, err := openTestSM(filepath.Join(dir, "sm"))
	if err != nil {
		b.Fatal(err)
	}
	var machine raftnode.StateMachine[testResult] = sm
	if batch {
		machine = batchSM{sm}
	}
	cfg := raftnode.Config{DataDir: filepath.Join(dir, "raft")}
	fastTiming(&cfg)
	if batchApplyCh {
		cfg.TuneRaft = func(c *raft.Config) { c.BatchApplyCh = true }
	}
	n, err := raftnode.Open[testResult](cfg, machine, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Shutdown(); _ = sm.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.ReadBarrier(ctx); err != nil { // waits for leadership
		b.Fatal(err)
	}
	return n
}

var payload = make([]byte, 256)

// BenchmarkApplySequential: one command per Raft entry, one client; every
// command costs a synced log write plus a synced state machine batch.
func BenchmarkApplySequential(b *testing.B) {
	n := benchStandalone(b, false, false)
	ctx := context.Background()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := n.Apply(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
}

// BenchmarkApplyConcurrent: 64 concurrent clients; Raft group-commits the
// queued entries into one StoreLogs (one fsync), optionally with the
// batching state machine (one synced batch per Raft apply batch) and
// BatchApplyCh.
func BenchmarkApplyConcurrent(b *testing.B) {
	for _, tc := range []struct {
		name          string
		batch, applyC bool
	}{
		{"per-entry-fsm", false, false},
		{"batching-fsm", true, false},
		{"batching-fsm+BatchApplyCh", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n := benchStandalone(b, tc.batch, tc.applyC)
			ctx := context.Background()
			b.SetBytes(int64(len(payload)))
			b.SetParallelism(32) // x GOMAXPROCS goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := n.Apply(ctx, payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
		})
	}
}

// BenchmarkCommitLatency3Node measures Apply latency (replicated to a
// quorum over loopback mTLS, applied on the leader) in a 3-node cluster,
// issued on the leader and on a forwarding follower, sequentially.
func BenchmarkCommitLatency3Node(b *testing.B) {
	for _, via := range []string{"leader", "follower"} {
		b.Run(via, func(b *testing.B) {
			c := newCluster(b, 3, func(cfg *raftnode.Config) { cfg.Logger = testLogger() })
			c.nodes[0].cfg.Bootstrap = true
			c.start(0)
			c.leader(10 * time.Second)
			c.start(1)
			c.start(2)
			ctx := context.Background()
			c.addVoters(1, 2)
			target := c.nodes[c.leader(10*time.Second)]
			if via == "follower" {
				target = c.nodes[c.follower()]
			}
			applyN(b, target, "warm", 20)
			lat := make([]time.Duration, 0, b.N)
			var failed atomic.Int64
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := target.n.Apply(ctx, payload); err != nil {
					failed.Add(1)
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d applies failed", f)
			}
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
			}
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
			if testing.Verbose() {
				b.Log(fmt.Sprintf("n=%d p50=%vµs p99=%vµs", len(lat), pct(0.5), pct(0.99)))
			}
		})
	}
}
