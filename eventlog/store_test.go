package eventlog_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/openmimi/mimi/eventlog"
)

func openMem(t testing.TB) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// fill appends n events spread over three rooms and some roomless events,
// committing every 7 events.
func fill(t testing.TB, db *pebble.DB, n int) []eventlog.Event {
	t.Helper()
	var out []eventlog.Event
	for i := 0; i < n; {
		b := db.NewBatch()
		a, err := eventlog.NewAppender(db, b)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 7 && i < n; j, i = j+1, i+1 {
			room := []string{"room-a", "room-b", "", "room\x00c"}[i%4]
			ev := eventlog.New(room, uint64(1000+i), &eventlog.ApplicationMessageAccepted{Epoch: uint64(i), Message: []byte(fmt.Sprintf("msg %d", i)), Sender: "s"})
			if err := a.Append(&ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
		}
		if err := a.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestAppendAndRead(t *testing.T) {
	db := openMem(t)
	evs := fill(t, db, 50)
	roomSeqs := map[string]uint64{}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d seq %d", i, ev.Seq)
		}
		if ev.Room != "" {
			roomSeqs[ev.Room]++
			if ev.RoomSeq != roomSeqs[ev.Room] {
				t.Fatalf("event %d room seq %d want %d", i, ev.RoomSeq, roomSeqs[ev.Room])
			}
		} else if ev.RoomSeq != 0 {
			t.Fatalf("roomless event with room seq")
		}
		got, err := eventlog.Get(db, ev.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != ev.Seq || got.RoomSeq != ev.RoomSeq || got.Timestamp != ev.Timestamp {
			t.Fatalf("get %d: %+v", ev.Seq, got)
		}
	}
	if _, err := eventlog.Get(db, 51); !errors.Is(err, eventlog.ErrNotFound) {
		t.Fatalf("get past end: %v", err)
	}
	head, err := eventlog.ReadHead(db)
	if err != nil || head.Seq != 50 {
		t.Fatalf("head %+v %v", head, err)
	}

	// Global iteration from an arbitrary position.
	it, err := eventlog.NewIterator(db, 17)
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(17)
	prevHash := [32]byte{}
	for it.Next() {
		if it.Event().Seq != want {
			t.Fatalf("iterator at %d, want %d", it.Event().Seq, want)
		}
		_ = prevHash
		want++
	}
	if it.Err() != nil || want != 51 {
		t.Fatalf("iterator ended at %d: %v", want, it.Err())
	}
	it.Close()

	// Per-room iteration.
	for room, n := range roomSeqs {
		it, err := eventlog.NewRoomIterator(db, room, 3)
		if err != nil {
			t.Fatal(err)
		}
		want := uint64(3)
		for it.Next() {
			ev := it.Event()
			if ev.Room != room || ev.RoomSeq != want {
				t.Fatalf("room %q: got %q/%d want %d", room, ev.Room, ev.RoomSeq, want)
			}
			want++
		}
		if it.Err() != nil || want != n+1 {
			t.Fatalf("room %q ended at %d of %d: %v", room, want, n, it.Err())
		}
		it.Close()
		if h, _ := eventlog.RoomHead(db, room); h != n {
			t.Fatalf("room head %d want %d", h, n)
		}
		ev, err := eventlog.GetRoom(db, room, n)
		if err != nil || ev.RoomSeq != n {
			t.Fatalf("GetRoom: %v", err)
		}
	}
	rep, err := eventlog.Verify(db)
	if err != nil || !rep.OK() || rep.Records != 50 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// The chain is a function of content only: two logs with the same events
// have the same head.
func TestChainDeterministic(t *testing.T) {
	a, b := openMem(t), openMem(t)
	fill(t, a, 30)
	fill(t, b, 30)
	ha, _ := eventlog.ReadHead(a)
	hb, _ := eventlog.ReadHead(b)
	if ha != hb {
		t.Fatalf("heads differ: %x %x", ha.Hash, hb.Hash)
	}
}

func globalKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("e/g/"), seq)
}

func rawGet(t *testing.T, db *pebble.DB, k []byte) []byte {
	t.Helper()
	v, c, err := db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return append([]byte(nil), v...)
}

func TestVerifyFlippedByte(t *testing.T) {
	const n = 40
	db := openMem(t)
	fill(t, db, n)
	// Flip every byte position of one record in turn (hash, header,
	// event): Verify must report exactly that record's sequence number.
	const target = 23
	orig := rawGet(t, db, globalKey(target))
	for pos := 0; pos < len(orig); pos++ {
		v := append([]byte(nil), orig...)
		v[pos] ^= 0x40
		if err := db.Set(globalKey(target), v, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		rep, err := eventlog.Verify(db)
		if err != nil {
			t.Fatal(err)
		}
		seqs := rep.CorruptSeqs()
		if len(seqs) != 1 || seqs[0] != target {
			t.Fatalf("flip at byte %d: corrupt seqs %v (%v)", pos, seqs, rep.Corruptions)
		}
		if first, ok := rep.FirstCorrupt(); !ok || first != target {
			t.Fatalf("FirstCorrupt %d", first)
		}
		if rep.Err() == nil || !errors.Is(rep.Err(), eventlog.ErrCorrupt) {
			t.Fatal("Err nil")
		}
	}
	if err := db.Set(globalKey(target), orig, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if rep, _ := eventlog.Verify(db); !rep.OK() {
		t.Fatalf("restored log: %v", rep.Corruptions)
	}
	// The last and the first record too.
	for _, seq := range []uint64{1, n} {
		orig := rawGet(t, db, globalKey(seq))
		v := append([]byte(nil), orig...)
		v[len(v)-1] ^= 1
		db.Set(globalKey(seq), v, pebble.Sync)
		rep, _ := eventlog.Verify(db)
		if s := rep.CorruptSeqs(); len(s) != 1 || s[0] != seq {
			t.Fatalf("flip in %d: %v", seq, rep.Corruptions)
		}
		db.Set(globalKey(seq), orig, pebble.Sync)
	}
	// Two corrupted records are both reported.
	for _, seq := range []uint64{5, 9} {
		v := rawGet(t, db, globalKey(seq))
		v[40] ^= 1
		db.Set(globalKey(seq), v, pebble.Sync)
	}
	rep, _ := eventlog.Verify(db)
	if s := rep.CorruptSeqs(); len(s) != 2 || s[0] != 5 || s[1] != 9 {
		t.Fatalf("two flips: %v", rep.Corruptions)
	}
}

func TestVerifyStructuralDamage(t *testing.T) {
	const n = 20
	tests := []struct {
		name   string
		damage func(t *testing.T, db *pebble.DB)
		want   []uint64
		kind   eventlog.CorruptionKind
	}{
		{"truncated tail", func(t *testing.T, db *pebble.DB) {
			db.Delete(globalKey(n), pebble.Sync)
			db.Delete(globalKey(n-1), pebble.Sync)
		}, []uint64{n - 1}, eventlog.Missing},
		{"missing middle", func(t *testing.T, db *pebble.DB) {
			db.Delete(globalKey(7), pebble.Sync)
		}, []uint64{7}, eventlog.Missing},
		{"swapped records", func(t *testing.T, db *pebble.DB) {
			a, b := rawGet(t, db, globalKey(4)), rawGet(t, db, globalKey(5))
			db.Set(globalKey(4), b, pebble.Sync)
			db.Set(globalKey(5), a, pebble.Sync)
		}, []uint64{4, 5}, eventlog.HashMismatch},
		{"appended behind the head", func(t *testing.T, db *pebble.DB) {
			db.Set(globalKey(n+1), rawGet(t, db, globalKey(n)), pebble.Sync)
		}, []uint64{n + 1}, eventlog.SeqMismatch},
		{"room index entry altered", func(t *testing.T, db *pebble.DB) {
			// Event 6 is room-b's second event (seq 2, 6, 10 ...).
			k := append(eventlog.AppendKeyString([]byte("e/i/"), "room-b"), 0, 0, 0, 0, 0, 0, 0, 2)
			db.Set(k, binary.BigEndian.AppendUint64(nil, 2), pebble.Sync)
		}, []uint64{6}, eventlog.IndexMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openMem(t)
			fill(t, db, n)
			tc.damage(t, db)
			rep, err := eventlog.Verify(db)
			if err != nil {
				t.Fatal(err)
			}
			got := rep.CorruptSeqs()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("corrupt seqs %v, want %v: %v", got, tc.want, rep.Corruptions)
			}
			found := false
			for _, c := range rep.Corruptions {
				found = found || c.Kind == tc.kind
			}
			if !found {
				t.Fatalf("no %s in %v", tc.kind, rep.Corruptions)
			}
		})
	}
}

func TestIteratorReportsCorruption(t *testing.T) {
	db := openMem(t)
	fill(t, db, 5)
	db.Set(globalKey(3), []byte("short"), pebble.Sync)
	it, _ := eventlog.NewIterator(db, 1)
	defer it.Close()
	n := 0
	for it.Next() {
		n++
	}
	if n != 2 || !errors.Is(it.Err(), eventlog.ErrCorrupt) {
		t.Fatalf("n=%d err=%v", n, it.Err())
	}
	if _, err := eventlog.Get(db, 3); !errors.Is(err, eventlog.ErrCorrupt) {
		t.Fatalf("Get: %v", err)
	}
}

func TestAppenderFlushAndDryRun(t *testing.T) {
	db := openMem(t)
	fill(t, db, 10)
	head, _ := eventlog.ReadHead(db)

	// A dry appender computes the same chain without writing anything.
	dry, err := eventlog.NewAppender(openMem(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	it, _ := eventlog.NewIterator(db, 1)
	for it.Next() {
		ev := it.Event()
		seq, rs := ev.Seq, ev.RoomSeq
		if err := dry.Append(&ev); err != nil {
			t.Fatal(err)
		}
		if ev.Seq != seq || ev.RoomSeq != rs || dry.Head().Hash != it.Hash() {
			t.Fatalf("dry append diverged at %d", seq)
		}
	}
	it.Close()
	if dry.Head() != head {
		t.Fatal("dry head differs")
	}
	if err := dry.Flush(); err != nil {
		t.Fatal(err)
	}

	// Forgetting Flush leaves records beyond the head: Verify says so.
	b := db.NewBatch()
	a, _ := eventlog.NewAppender(db, b)
	ev := eventlog.New("room-a", 1, &eventlog.ClientRemoved{Client: "x"})
	a.Append(&ev)
	if err := a.Reset(db.NewBatch()); !errors.Is(err, eventlog.ErrUnflushed) {
		t.Fatalf("Reset with unflushed events: %v", err)
	}
	b.Commit(pebble.Sync)
	rep, _ := eventlog.Verify(db)
	kinds := map[eventlog.CorruptionKind]bool{}
	for _, c := range rep.Corruptions {
		kinds[c.Kind] = true
	}
	if !kinds[eventlog.HeadMismatch] || !kinds[eventlog.RoomHeadMismatch] {
		t.Fatalf("unflushed append not detected: %v", rep.Corruptions)
	}
}

type quiet struct{}

func (quiet) Infof(string, ...any)      {}
func (quiet) Errorf(string, ...any)     {}
func (quiet) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

// BenchmarkAppend appends a hub's submit (a 1 KiB message, its fanout and
// its local recipients) to a fresh batch per command, as the state machine
// does.
func BenchmarkAppend(b *testing.B) {
	db := openMem(b)
	evs := benchEvents()
	b.ReportAllocs()
	var head eventlog.Head
	rooms := map[string]uint64{}
	for b.Loop() {
		batch := db.NewBatch()
		a := eventlog.NewAppenderAt(batch, head, func(room string) (uint64, error) { return rooms[room], nil })
		for _, name := range []string{"app", "enqueue"} {
			ev := evs[name]
			if err := a.Append(&ev); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.Flush(); err != nil {
			b.Fatal(err)
		}
		head = a.Head()
		for r, s := range a.RoomHeads() {
			rooms[r] = s
		}
		batch.Close()
	}
}

// BenchmarkGet reads back a stored event carrying a 1 KiB message.
func BenchmarkGet(b *testing.B) {
	db := openMem(b)
	batch := db.NewBatch()
	a, err := eventlog.NewAppender(db, batch)
	if err != nil {
		b.Fatal(err)
	}
	ev := benchEvents()["app"]
	if err := a.Append(&ev); err != nil {
		b.Fatal(err)
	}
	if err := a.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eventlog.Get(db, 1); err != nil {
			b.Fatal(err)
		}
	}
}
