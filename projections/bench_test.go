package projections_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

func benchMachine(b *testing.B) *projections.Machine {
	b.Helper()
	m, err := projections.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

// storages runs a benchmark on disk (fsync-bound on this machine) and on an
// in-memory filesystem (where Sync is free, isolating the CPU cost).
func storages(b *testing.B, f func(b *testing.B, m *projections.Machine)) {
	b.Run("disk", func(b *testing.B) { f(b, benchMachine(b)) })
	b.Run("mem", func(b *testing.B) {
		m, err := projections.OpenWithOptions("bench", projections.Options{FS: vfs.NewMem()})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		f(b, m)
	})
}

func benchSetup(b *testing.B, m *projections.Machine, rooms int) {
	b.Helper()
	var ops []projections.Op
	for i := 0; i < rooms; i++ {
		ops = append(ops, ev(fmt.Sprint("room-", i), 1, &eventlog.RoomCreated{Hub: "hub", GroupInfo: make([]byte, 512), RatchetTree: make([]byte, 1024)}))
	}
	if r := m.Apply(1, encodeCmd(b, &projections.Command{Ops: ops})); r.Err != nil {
		b.Fatal(r.Err)
	}
}

// message returns a 256-byte application message, distinct for each n
// (a room accepts the same bytes once per epoch).
func message(n int) []byte {
	m := make([]byte, 256)
	binary.BigEndian.PutUint64(m, uint64(n))
	return m
}

// BenchmarkApplySingle: one ApplicationMessageAccepted (256-byte message)
// per Apply, each committed with pebble.Sync on disk.
func BenchmarkApplySingle(b *testing.B) { storages(b, benchApplySingle) }

func benchApplySingle(b *testing.B, m *projections.Machine) {
	benchSetup(b, m, 10)
	cmds := make([][]byte, b.N)
	for i := range cmds {
		cmds[i] = encodeCmd(b, &projections.Command{Ops: []projections.Op{
			ev(fmt.Sprint("room-", i%10), uint64(i), &eventlog.ApplicationMessageAccepted{Message: message(i), Sender: "c"})}})
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if r := m.Apply(uint64(i)+2, cmds[i]); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkApplyBatch100: commands of 100 events (application messages
// with fanout to two providers every fifth), one Sync commit per command.
func BenchmarkApplyBatch100(b *testing.B) { storages(b, benchApplyBatch100) }

func benchApplyBatch100(b *testing.B, m *projections.Machine) {
	benchSetup(b, m, 10)
	cmds := make([][]byte, b.N)
	for i := range cmds {
		var ops []projections.Op
		for j := 0; j < 100; j++ {
			room := fmt.Sprint("room-", (i+j)%10)
			if j%5 == 4 {
				room = fmt.Sprint("room-", (i+j-1)%10) // the message's room
				ops = append(ops, ev(room, uint64(j), &eventlog.FanoutEnqueued{Destinations: []string{"b.example", "c.example"}, Back: 1}))
				continue
			}
			ops = append(ops, ev(room, uint64(j), &eventlog.ApplicationMessageAccepted{Message: message(i*100 + j), Sender: "c"}))
		}
		cmds[i] = encodeCmd(b, &projections.Command{Ops: ops})
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if r := m.Apply(uint64(i)+2, cmds[i]); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkReplay replays a 100,000-event log into a fresh store (both
// projections only and with the log copied) and, on the same log, measures
// a raw Pebble scan of the same record keys; it reports the rates and the
// ratio of full replay to scan. tools/replaybench does the same for
// 1,000,000 events.
func BenchmarkReplay(b *testing.B) {
	const n = 100_000
	src := benchMachine(b)
	benchSetup(b, src, 100)
	idx := uint64(1)
	for done := 100; done < n; {
		var ops []projections.Op
		for j := 0; j < 1000 && done < n; j, done = j+1, done+1 {
			room := fmt.Sprint("room-", done%100)
			if done%5 == 4 {
				room = fmt.Sprint("room-", (done-1)%100) // the message's room
				ops = append(ops, ev(room, uint64(done), &eventlog.FanoutEnqueued{Destinations: []string{"b.example"}, Back: 1}))
				continue
			}
			ops = append(ops, ev(room, uint64(done), &eventlog.ApplicationMessageAccepted{Message: message(done), Sender: "c"}))
		}
		idx++
		if r := src.Apply(idx, encodeCmd(b, &projections.Command{Ops: ops})); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	db := src.DBForTest()
	b.ResetTimer()
	var replayDur, projDur, scanDur time.Duration
	for i := 0; i < b.N; i++ {
		pdst, err := projections.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		psnap := db.NewSnapshot()
		pst, err := projections.ReplayProjections(psnap, pdst)
		psnap.Close()
		if err != nil || pst.Events != n {
			b.Fatalf("projections replay: %v (%d events)", err, pst.Events)
		}
		projDur += pst.Duration
		pdst.Close()

		dst, err := projections.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		snap := db.NewSnapshot()
		st, err := projections.Replay(snap, dst)
		snap.Close()
		if err != nil || st.Events != n {
			b.Fatalf("replay: %v (%d events)", err, st.Events)
		}
		replayDur += st.Duration
		dst.Close()

		start := time.Now()
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("e/g/"), UpperBound: []byte("e/g0")})
		if err != nil {
			b.Fatal(err)
		}
		var count, bytes int
		for ok := it.First(); ok; ok = it.Next() {
			count++
			bytes += len(it.Value())
		}
		it.Close()
		scanDur += time.Since(start)
		if count != n {
			b.Fatalf("scanned %d", count)
		}
	}
	replayRate := float64(n*b.N) / replayDur.Seconds()
	scanRate := float64(n*b.N) / scanDur.Seconds()
	b.ReportMetric(float64(n*b.N)/projDur.Seconds(), "replay-proj-events/s")
	b.ReportMetric(replayRate, "replay-events/s")
	b.ReportMetric(scanRate, "scan-keys/s")
	b.ReportMetric(replayRate/scanRate, "replay/scan")
}

// BenchmarkApplyNotifyFanout mimics a follower's notify command
// (provider.Notify): per message a NotifyNotSeen condition, a
// NotifyAccepted event with a 1 KiB body and a ClientEnqueued to the 17
// local clients of the room; 16 messages per command, applied with
// ApplyBatch (unsynced, on an in-memory filesystem: CPU cost only).
func BenchmarkApplyNotifyFanout(b *testing.B) {
	const (
		clients = 17
		msgs    = 16
		room    = "mimi://a.example/r/bench-room"
		hub     = "a.example"
	)
	m, err := projections.OpenWithOptions("bench", projections.Options{FS: vfs.NewMem()})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	var ops []projections.Op
	var recips []string
	for i := 0; i < clients; i++ {
		c := fmt.Sprintf("mimi://c.example/d/user-%02d/device-%02d", i, i)
		recips = append(recips, c)
		ops = append(ops, ev("", 1, &eventlog.ClientRegistered{User: fmt.Sprintf("mimi://c.example/u/user-%02d", i),
			Client: c, SignatureKey: make([]byte, 32), Credential: make([]byte, 64)}))
	}
	idx := uint64(1)
	if r := m.Apply(idx, encodeCmd(b, &projections.Command{Ops: ops})); r.Err != nil {
		b.Fatal(r.Err)
	}
	var roomSeq, n uint64
	body := make([]byte, 1024)
	next := func() []byte {
		var conds []projections.Condition
		var ops []projections.Op
		for j := 0; j < msgs; j++ {
			n++
			binary.BigEndian.PutUint64(body, n)
			h := eventlog.NotifyHash(room, body)
			conds = append(conds, projections.NotifyNotSeen(hub, h))
			ops = append(ops,
				ev(room, n, &eventlog.NotifyAccepted{Hub: hub, BodyHash: h, Body: append([]byte(nil), body...)}),
				ev(room, n, &eventlog.ClientEnqueued{Clients: recips, Back: 1, Part: eventlog.PartMessage}))
		}
		return encodeCmd(b, &projections.Command{Conditions: append(conds, projections.RoomSeqIs(room, roomSeq)), Ops: ops})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		cmd := next()
		idx++
		b.StartTimer()
		r := m.ApplyBatch([]projections.Entry{{Index: idx, Cmd: cmd}})[0]
		if r.Err != nil {
			b.Fatal(r.Err)
		}
		roomSeq = r.Events[len(r.Events)-1].RoomSeq
	}
	b.ReportMetric(float64(b.N*msgs)/b.Elapsed().Seconds(), "msgs/s")
}
