package projections_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// queueModel is what the queues of TestQueuesAfterManyAcks must hold: per
// queue, the source event sequence number of each position (1-based).
type queueModel struct {
	src   map[string][]uint64 // queue -> SourceSeq by position-1
	acked map[string]uint64
}

// checkQueue fails unless entries are exactly the positions from..Enqueued
// of the model queue (limit 0) or their first limit.
func (q *queueModel) checkQueue(t *testing.T, what, name string, from uint64, limit int, got []projections.Delivery) {
	t.Helper()
	var want []uint64
	for n := max(from, q.acked[name]+1); n <= uint64(len(q.src[name])); n++ {
		want = append(want, n)
	}
	if limit > 0 && len(want) > limit {
		want = want[:limit]
	}
	if len(got) != len(want) {
		t.Fatalf("%s %s (from %d, limit %d): %d entries, want %d (acked %d, enqueued %d; got %+v)", what, name, from, limit, len(got), len(want), q.acked[name], len(q.src[name]), got)
	}
	for i, d := range got {
		if d.N != want[i] || d.SourceSeq != q.src[name][d.N-1] {
			t.Fatalf("%s %s: entry %d is position %d (source %d), want position %d (source %d)",
				what, name, i, d.N, d.SourceSeq, want[i], q.src[name][want[i]-1])
		}
	}
}

// checkAll compares every read API over the queues with the model, and
// the in-memory fanout cursors with the DB.
func (q *queueModel) checkAll(t *testing.T, what string, m *projections.Machine, dests []string, client string) {
	t.Helper()
	for _, d := range dests {
		for _, limit := range []int{0, 1, 7} {
			got, err := m.FanoutPending(d, limit)
			if err != nil {
				t.Fatal(err)
			}
			q.checkQueue(t, what+": FanoutPending", d, 0, limit, got)
		}
		cur, err := m.FanoutCursor(d)
		if err != nil || cur.Acked != q.acked[d] || cur.Enqueued != uint64(len(q.src[d])) {
			t.Fatalf("%s: FanoutCursor(%s) = %+v, %v; want acked %d of %d", what, d, cur, err, q.acked[d], len(q.src[d]))
		}
	}
	for _, from := range []uint64{0, 1, q.acked[client], q.acked[client] + 3, uint64(len(q.src[client])) + 1} {
		got, err := m.ClientInbox(client, from, 0)
		if err != nil {
			t.Fatal(err)
		}
		q.checkQueue(t, what+": ClientInbox", client, from, 0, got)
	}
	icur, err := m.InboxCursor(client)
	if err != nil || icur.Acked != q.acked[client] || icur.Enqueued != uint64(len(q.src[client])) {
		t.Fatalf("%s: InboxCursor = %+v, %v; want acked %d of %d", what, icur, err, q.acked[client], len(q.src[client]))
	}
	if db, err := m.InboxCursorFromDBForTest(client); err != nil || db != icur {
		t.Fatalf("%s: InboxCursor %+v, DB holds %+v (%v)", what, icur, db, err)
	}
	if c, err := m.InboxCursor("mimi://a.example/d/nobody"); err != nil || c != (projections.Cursor{}) {
		t.Fatalf("%s: InboxCursor of an unknown client: %+v %v", what, c, err)
	}
	mem, err := m.FanoutDestinations()
	if err != nil {
		t.Fatal(err)
	}
	db, err := m.FanoutDestinationsFromDBForTest()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(mem, db) || len(mem) != len(dests) {
		t.Fatalf("%s: FanoutDestinations %+v, DB holds %+v", what, mem, db)
	}
}

// TestQueuesAfterManyAcks: after many enqueues and acknowledgements (by
// Apply and by ApplyBatch, with rejected commands among them), the
// pending fanout entries, the inbox entries and the cursors (served from
// memory) are exactly what was queued and not acknowledged, and equal to
// what the DB holds, including after a reopen and a Restore; with and
// without the cross-command cache.
func TestQueuesAfterManyAcks(t *testing.T) {
	for _, noCache := range []bool{false, true} {
		t.Run(fmt.Sprintf("nocache=%v", noCache), func(t *testing.T) {
			fs := vfs.NewMem()
			h := newHarnessFS(t, fs, "node", projections.Options{NoCache: noCache})
			dests := []string{"b.example", "c.example"}
			const client = "mimi://a.example/d/x"
			h.ok(nil, ev("room", 1, &eventlog.RoomCreated{Hub: "a.example"}),
				ev("", 1, &eventlog.ClientRegistered{User: "mimi://a.example/u/x", Client: client}))
			q := &queueModel{src: map[string][]uint64{}, acked: map[string]uint64{}}
			rnd := rand.New(rand.NewPCG(1, 2))
			var entries []projections.Entry
			var pending []func() // model updates of the commands in entries
			flush := func() {
				if len(entries) == 0 {
					return
				}
				for i, r := range h.m.ApplyBatch(entries) {
					if r.Err != nil || r.Duplicate {
						t.Fatalf("batch entry %d: %v", i, r.Err)
					}
				}
				for _, f := range pending {
					f()
				}
				entries, pending = nil, nil
			}
			// seq tracks the log head to know the source sequence numbers.
			head, _ := h.m.LogHead()
			seq := head.Seq
			for step := 0; step < 400; step++ {
				batched := rnd.IntN(2) == 0
				var cmd *projections.Command
				var update func()
				switch k := rnd.IntN(10); {
				case k < 6: // a message for both destinations and the client
					src := seq + 1
					cmd = &projections.Command{Ops: []projections.Op{
						ev("room", 2, &eventlog.ApplicationMessageAccepted{Message: []byte(fmt.Sprint("m", step))}),
						ev("room", 2, &eventlog.FanoutEnqueued{Destinations: dests, Back: 1}),
						ev("room", 2, &eventlog.ClientEnqueued{Clients: []string{client}, Back: 2}),
					}}
					seq += 3
					update = func() {
						for _, d := range dests {
							q.src[d] = append(q.src[d], src)
						}
						q.src[client] = append(q.src[client], src)
					}
				case k < 9: // acknowledge a random prefix of a queue
					names := append(append([]string(nil), dests...), client)
					name := names[rnd.IntN(len(names))]
					// The model as it will be once the commands before
					// this one are applied.
					flush()
					enq := uint64(len(q.src[name]))
					if enq == q.acked[name] {
						continue
					}
					upTo := q.acked[name] + 1 + rnd.Uint64N(enq-q.acked[name])
					var body eventlog.Body = &eventlog.FanoutDelivered{Destination: name, UpTo: upTo}
					if name == client {
						body = &eventlog.ClientDelivered{Client: name, UpTo: upTo}
					}
					cmd = &projections.Command{Ops: []projections.Op{ev("", 3, body)}}
					seq++
					update = func() { q.acked[name] = upTo }
				default: // rejected after writing: stale ack after an enqueue
					cmd = &projections.Command{Ops: []projections.Op{
						ev("room", 2, &eventlog.ApplicationMessageAccepted{Message: []byte("rejected")}),
						ev("room", 2, &eventlog.FanoutEnqueued{Destinations: dests, Back: 1}),
						ev("", 3, &eventlog.FanoutDelivered{Destination: dests[0], UpTo: 0}),
					}}
					flush()
					h.idx++
					if batched {
						if r := h.m.ApplyBatch([]projections.Entry{{Index: h.idx, Cmd: encodeCmd(t, cmd)}}); r[0].Err == nil {
							t.Fatal("stale ack accepted")
						}
					} else if r := h.m.Apply(h.idx, encodeCmd(t, cmd)); r.Err == nil {
						t.Fatal("stale ack accepted")
					}
					continue
				}
				h.idx++
				if batched {
					entries = append(entries, projections.Entry{Index: h.idx, Cmd: encodeCmd(t, cmd)})
					pending = append(pending, update)
				} else {
					flush()
					if r := h.m.Apply(h.idx, encodeCmd(t, cmd)); r.Err != nil {
						t.Fatalf("step %d: %v", step, r.Err)
					}
					update()
				}
				if rnd.IntN(8) == 0 {
					flush()
					q.checkAll(t, fmt.Sprintf("step %d", step), h.m, dests, client)
				}
			}
			flush()
			q.checkAll(t, "end", h.m, dests, client)
			for _, d := range dests {
				if q.acked[d] < 50 {
					t.Fatalf("only %d acknowledgements of %s: the test does not exercise what it should", q.acked[d], d)
				}
			}

			// Reopen: the table is rebuilt from the DB.
			h.m.Close()
			m, err := projections.OpenWithOptions("node", projections.Options{FS: fs, NoCache: noCache})
			if err != nil {
				t.Fatal(err)
			}
			h.m = m
			q.checkAll(t, "reopened", h.m, dests, client)

			// Restore into a Machine with other cursors.
			var buf bytes.Buffer
			if err := h.m.Snapshot(&buf); err != nil {
				t.Fatal(err)
			}
			o := newHarnessFS(t, fs, "other", projections.Options{NoCache: noCache})
			o.ok(nil, ev("r2", 1, &eventlog.RoomCreated{Hub: "a.example"}))
			o.ok(nil, ev("r2", 1, &eventlog.ApplicationMessageAccepted{Message: []byte("x")}),
				ev("r2", 1, &eventlog.FanoutEnqueued{Destinations: []string{"z.example"}, Back: 1}))
			if err := o.m.Restore(&buf); err != nil {
				t.Fatal(err)
			}
			q.checkAll(t, "restored", o.m, dests, client)
		})
	}
}

// BenchmarkFanoutPendingAfterAcks: reading the pending entries of a queue
// whose first 20000 entries were acknowledged (and are deletion tombstones
// in the memtable) costs about what reading a fresh queue does.
func BenchmarkFanoutPendingAfterAcks(b *testing.B) {
	h := newHarness(b)
	h.ok(nil, ev("room", 1, &eventlog.RoomCreated{Hub: "a.example"}))
	for i := 0; i < 20000; i++ {
		h.ok(nil, ev("room", 2, &eventlog.ApplicationMessageAccepted{Message: []byte("m")}),
			ev("room", 2, &eventlog.FanoutEnqueued{Destinations: []string{"b.example"}, Back: 1}))
		if i < 19990 {
			h.ok(nil, ev("", 3, &eventlog.FanoutDelivered{Destination: "b.example", UpTo: uint64(i + 1)}))
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ds, err := h.m.FanoutPending("b.example", 64)
		if err != nil || len(ds) != 10 {
			b.Fatal(len(ds), err)
		}
		if _, err := h.m.FanoutDestinations(); err != nil {
			b.Fatal(err)
		}
	}
}
