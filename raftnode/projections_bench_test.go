package raftnode_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/raftnode"
)

const benchRoom = "bench-room@hub.example"

// benchMessageCmd is one Raft entry appending one event: a 256-byte
// application message.
func benchMessageCmd(b testing.TB, i int) []byte {
	return mustCmd(b, nil, projections.EventOp(benchRoom, uint64(i),
		&eventlog.ApplicationMessageAccepted{Message: make([]byte, 256), Sender: "alice/phone"}))
}

func benchProjStandalone(b *testing.B, batch, batchApplyCh bool) (*raftnode.Node[projections.Result], *batchStats) {
	b.Helper()
	dir := b.TempDir()
	m, err := projections.Open(filepath.Join(dir, "sm"))
	if err != nil {
		b.Fatal(err)
	}
	stats := &batchStats{}
	cfg := raftnode.Config{DataDir: filepath.Join(dir, "raft")}
	fastTiming(&cfg)
	if batchApplyCh {
		cfg.TuneRaft = func(c *raft.Config) { c.BatchApplyCh = true }
	}
	n, err := raftnode.Open[projections.Result](cfg, projSM(m, batch, stats), projections.ResultCodec{})
	if err != nil {
		_ = m.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Shutdown(); _ = m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := n.Apply(ctx, mustCmd(b, nil, projections.EventOp(benchRoom, 0, &eventlog.RoomCreated{Hub: "hub.example"})))
	if err != nil || res.Err != nil {
		b.Fatal(err, res.Err)
	}
	return n, stats
}

// BenchmarkProjectionsApplySequential: one client, one event per Raft
// entry on a standalone node over projections.Machine: each command costs
// a synced Raft log write and a synced Machine batch.
func BenchmarkProjectionsApplySequential(b *testing.B) {
	n, _ := benchProjStandalone(b, false, false)
	cmd := benchMessageCmd(b, 1)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := n.Apply(ctx, cmd)
		if err != nil || res.Err != nil {
			b.Fatal(err, res.Err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkProjectionsApplyConcurrent: 64 concurrent clients, one event
// per Raft entry. Raft group-commits queued entries into one log write;
// the Machine commits each entry (per-entry) or each Raft apply batch
// (ApplyBatch, one synced Pebble batch), optionally with BatchApplyCh.
func BenchmarkProjectionsApplyConcurrent(b *testing.B) {
	const clients = 64
	for _, tc := range []struct {
		name          string
		batch, applyC bool
	}{
		{"per-entry", false, false},
		{"applybatch", true, false},
		{"applybatch+BatchApplyCh", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n, stats := benchProjStandalone(b, tc.batch, tc.applyC)
			cmd := benchMessageCmd(b, 1)
			ctx := context.Background()
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failure error
			b.ResetTimer()
			for c := 0; c < clients; c++ {
				share := b.N / clients
				if c < b.N%clients {
					share++
				}
				wg.Add(1)
				go func(share int) {
					defer wg.Done()
					for i := 0; i < share; i++ {
						res, err := n.Apply(ctx, cmd)
						if err == nil {
							err = res.Err
						}
						if err != nil {
							mu.Lock()
							failure = err
							mu.Unlock()
							return
						}
					}
				}(share)
			}
			wg.Wait()
			b.StopTimer()
			if failure != nil {
				b.Fatal(failure)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if tc.batch && stats.batches.Load() > 0 {
				b.ReportMetric(float64(stats.entries.Load())/float64(stats.batches.Load()), "entries/batch")
			}
		})
	}
}

// BenchmarkProjectionsCommitLatency3Node: sequential Apply latency of
// one-event commands on a 3-node loopback mutual-TLS cluster over
// projections.Machine (replicated to a quorum and applied on the leader),
// issued on the leader and on a forwarding follower; reports p50/p99.
// The followers apply with ApplyBatch, the leader per entry.
func BenchmarkProjectionsCommitLatency3Node(b *testing.B) {
	for _, via := range []string{"leader", "follower"} {
		b.Run(via, func(b *testing.B) {
			c := newPCluster(b, 3, func(i int) bool { return i > 0 }, nil)
			c.nodes[0].cfg.Bootstrap = true
			c.start(0)
			c.leader(10 * time.Second)
			c.start(1)
			c.start(2)
			c.addVoters(1, 2)
			l := c.leader(10 * time.Second)
			target := c.nodes[l]
			mustAccept(b, target, mustCmd(b, nil, projections.EventOp(benchRoom, 0, &eventlog.RoomCreated{Hub: "hub.example"})))
			if via == "follower" {
				target = c.nodes[c.followers()[0]]
			}
			cmd := benchMessageCmd(b, 1)
			for i := 0; i < 20; i++ {
				mustAccept(b, target, cmd)
			}
			ctx := context.Background()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				res, err := target.n.Apply(ctx, cmd)
				if err != nil || res.Err != nil {
					b.Fatal(err, res.Err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
			}
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if testing.Verbose() {
				b.Log(fmt.Sprintf("n=%d p50=%vµs p99=%vµs", len(lat), pct(0.5), pct(0.99)))
			}
		})
	}
}
