package raftnode_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// BenchmarkProjectionsApplyBatchSequential: one client, one event per
// Raft entry, on a standalone node whose projections.Machine is driven
// through ApplyBatch (as in the daemon): each command costs the synced
// Raft log write plus the Machine's commit (unsynced, see "Durability of
// ApplyBatch" in package projections). Every message is distinct (a room
// accepts a message once).
func BenchmarkProjectionsApplyBatchSequential(b *testing.B) {
	n, _ := benchProjStandalone(b, true, false)
	ctx := context.Background()
	cmds := make([][]byte, b.N)
	for i := range cmds {
		cmds[i] = mustCmd(b, nil, projections.EventOp(benchRoom, uint64(i+1),
			&eventlog.ApplicationMessageAccepted{Message: binary.BigEndian.AppendUint64(make([]byte, 248), uint64(i)), Sender: "alice/phone"}))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := n.Apply(ctx, cmds[i])
		if err != nil || res.Err != nil {
			b.Fatal(err, res.Err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
}
