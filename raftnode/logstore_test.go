package raftnode

import (
	"bytes"
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

func openTestStore(t *testing.T, dir string) *LogStore {
	t.Helper()
	s, err := OpenLogStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mkLog(i uint64) *raft.Log {
	return &raft.Log{Index: i, Term: i/10 + 1, Type: raft.LogCommand, Data: []byte{byte(i), byte(i >> 8)}}
}

func storeRange(t *testing.T, s *LogStore, lo, hi uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := lo; i <= hi; i++ {
		logs = append(logs, mkLog(i))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
}

func bounds(t *testing.T, s *LogStore) (uint64, uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	return f, l
}

func TestLogStoreEmpty(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	if f, l := bounds(t, s); f != 0 || l != 0 {
		t.Fatalf("empty store bounds = %d,%d", f, l)
	}
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog on empty = %v, want ErrLogNotFound", err)
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
}

func TestLogStoreRoundTrip(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	at := time.Unix(1700000000, 123456789)
	cases := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("conf")},
		{Index: 2, Term: 1, Type: raft.LogNoop},
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: bytes.Repeat([]byte{7}, 100000), Extensions: []byte("ext"), AppendedAt: at},
		{Index: 4, Term: math.MaxUint64, Type: raft.LogBarrier},
	}
	for _, c := range cases {
		if err := s.StoreLog(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range cases {
		var got raft.Log
		if err := s.GetLog(want.Index, &got); err != nil {
			t.Fatal(err)
		}
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
			!got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("log %d: got %+v want %+v", want.Index, got, want)
		}
	}
	if f, l := bounds(t, s); f != 1 || l != 4 {
		t.Fatalf("bounds = %d,%d", f, l)
	}
}

func TestLogStoreDeleteRange(t *testing.T) {
	cases := []struct {
		name        string
		del         [2]uint64
		first, last uint64
		present     []uint64
		absent      []uint64
	}{
		{"prefix", [2]uint64{1, 10}, 11, 20, []uint64{11, 20}, []uint64{1, 10}},
		{"prefix-below-first", [2]uint64{0, 5}, 6, 20, []uint64{6}, []uint64{5}},
		{"suffix", [2]uint64{15, 20}, 1, 14, []uint64{1, 14}, []uint64{15, 20}},
		{"suffix-to-max", [2]uint64{15, math.MaxUint64}, 1, 14, []uint64{14}, []uint64{15}},
		{"middle", [2]uint64{5, 7}, 1, 20, []uint64{4, 8}, []uint64{5, 6, 7}},
		{"all", [2]uint64{1, 20}, 0, 0, nil, []uint64{1, 20}},
		{"all-wide", [2]uint64{0, math.MaxUint64}, 0, 0, nil, []uint64{1, 20}},
		{"outside", [2]uint64{30, 40}, 1, 20, []uint64{1, 20}, nil},
		{"empty-range", [2]uint64{9, 3}, 1, 20, []uint64{3, 9}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir)
			storeRange(t, s, 1, 20)
			if err := s.DeleteRange(tc.del[0], tc.del[1]); err != nil {
				t.Fatal(err)
			}
			check := func(s *LogStore) {
				if f, l := bounds(t, s); f != tc.first || l != tc.last {
					t.Fatalf("bounds = %d,%d want %d,%d", f, l, tc.first, tc.last)
				}
				var l raft.Log
				for _, i := range tc.present {
					if err := s.GetLog(i, &l); err != nil || l.Index != i {
						t.Fatalf("GetLog(%d) = %v", i, err)
					}
				}
				for _, i := range tc.absent {
					if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
						t.Fatalf("GetLog(%d) = %v, want ErrLogNotFound", i, err)
					}
				}
			}
			check(s)
			// Bounds must survive a reopen (recomputed with iterators).
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTestStore(t, dir)
			defer s.Close()
			check(s)
		})
	}
}

// TestLogStoreRaftPatterns exercises the sequences hashicorp/raft issues:
// compaction after a snapshot (prefix delete), conflict truncation on a
// follower (suffix delete then overwrite), and a gap after a snapshot
// install (StoreLogs far beyond LastIndex).
func TestLogStoreRaftPatterns(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	storeRange(t, s, 1, 100)
	if err := s.DeleteRange(1, 90); err != nil { // compaction
		t.Fatal(err)
	}
	if err := s.DeleteRange(96, 100); err != nil { // conflict truncation
		t.Fatal(err)
	}
	if f, l := bounds(t, s); f != 91 || l != 95 {
		t.Fatalf("bounds = %d,%d", f, l)
	}
	over := &raft.Log{Index: 96, Term: 99, Type: raft.LogCommand, Data: []byte("new")}
	if err := s.StoreLog(over); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(96, &got); err != nil || got.Term != 99 || string(got.Data) != "new" {
		t.Fatalf("overwrite: %v %+v", err, got)
	}
	storeRange(t, s, 500, 505) // gap
	if f, l := bounds(t, s); f != 91 || l != 505 {
		t.Fatalf("bounds after gap = %d,%d", f, l)
	}
	if err := s.GetLog(200, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("gap GetLog = %v", err)
	}
	if err := s.DeleteRange(91, 499); err != nil {
		t.Fatal(err)
	}
	if f, l := bounds(t, s); f != 500 || l != 505 {
		t.Fatalf("bounds after gap delete = %d,%d", f, l)
	}
}

func TestStableStore(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	if v, err := s.Get([]byte("missing")); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get missing = %v, %v; want empty non-nil slice", v, err)
	}
	if v, err := s.GetUint64([]byte("missing")); err != nil || v != 0 {
		t.Fatalf("GetUint64 missing = %d, %v", v, err)
	}
	if err := s.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	// Stable keys must not disturb the log bounds.
	if f, l := bounds(t, s); f != 0 || l != 0 {
		t.Fatalf("bounds = %d,%d", f, l)
	}
	_ = s.Close()
	s = openTestStore(t, dir)
	defer s.Close()
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
		t.Fatalf("GetUint64 = %d, %v", v, err)
	}
	if err := s.Set([]byte("short"), []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("short")); !errors.Is(err, ErrCorruptLog) {
		t.Fatalf("GetUint64 of 2 bytes = %v, want ErrCorruptLog", err)
	}
}

// TestLogStoreValueBytes checks that StoreLogs writes exactly encodeLog's
// bytes, sized by encodedLogLen, across the varint widths of every field.
func TestLogStoreValueBytes(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	var logs []*raft.Log
	idx := uint64(1)
	for _, term := range []uint64{0, 1, 127, 128, 1 << 32, math.MaxUint64} {
		for _, n := range []int{0, 1, 127, 128, 16384, 100000} {
			for _, at := range []time.Time{{}, time.Unix(0, 1), time.Unix(-5, 0), time.Unix(1700000000, 123456789)} {
				logs = append(logs, &raft.Log{Index: idx, Term: term, Type: raft.LogCommand,
					Data: bytes.Repeat([]byte{byte(n)}, n), Extensions: bytes.Repeat([]byte{1}, n%200), AppendedAt: at})
				idx++
			}
		}
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	for _, l := range logs {
		want := encodeLog(nil, l)
		if n := encodedLogLen(l); n != len(want) {
			t.Fatalf("log %d: encodedLogLen %d, encoding has %d bytes", l.Index, n, len(want))
		}
		v, closer, err := s.db.Get(logKey(l.Index))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v, want) {
			t.Fatalf("log %d: stored %x..., want %x...", l.Index, v[:min(len(v), 16)], want[:min(len(want), 16)])
		}
		closer.Close()
	}
}

func TestLogStoreCorruptValue(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	good := encodeLog(nil, &raft.Log{Index: 1, Term: 3, Data: []byte("abc"), Extensions: []byte("e")})
	bad := [][]byte{
		{},
		{9},
		{logValueVersion},
		good[:len(good)-1],
		append(append([]byte{}, good...), 0),
		{logValueVersion, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, // huge length
	}
	for i, v := range bad {
		idx := uint64(i + 1)
		if err := s.db.Set(logKey(idx), v, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		var l raft.Log
		if err := s.GetLog(idx, &l); !errors.Is(err, ErrCorruptLog) {
			t.Fatalf("case %d: GetLog = %v, want ErrCorruptLog", i, err)
		}
	}
}

func nullLogger() hclog.Logger { return hclog.NewNullLogger() }

// FuzzDecodeLog: a stored log entry (Pebble, possibly corrupt) decodes
// without panicking, and what decodes survives re-encoding. The encoding
// is not canonical, so bytes are not compared: encoding/binary's varint
// readers accept non-minimal encodings, which encodeLog never writes, and
// a re-encoding is never longer than the input.
func FuzzDecodeLog(f *testing.F) {
	for _, l := range []*raft.Log{
		{Term: 3, Type: raft.LogCommand, Data: []byte("abc"), Extensions: []byte("e"), AppendedAt: time.Unix(1700000000, 123456789)},
		{Term: math.MaxUint64, Type: raft.LogConfiguration, AppendedAt: time.Unix(-5, 0)},
		{Type: raft.LogNoop},
	} {
		b := encodeLog(nil, l)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		var l raft.Log
		if err := decodeLog(7, v, &l); err != nil {
			if !errors.Is(err, ErrCorruptLog) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		enc := encodeLog(nil, &l)
		if len(enc) > len(v) || len(enc) != encodedLogLen(&l) {
			t.Fatalf("re-encoding of %d bytes (sized %d) from %d", len(enc), encodedLogLen(&l), len(v))
		}
		var l2 raft.Log
		if err := decodeLog(7, enc, &l2); err != nil || !reflect.DeepEqual(l, l2) {
			t.Fatalf("re-encoded entry differs: %v\n%+v\n%+v", err, l, l2)
		}
	})
}

// TestLogStoreWithRaft runs a single-node hashicorp/raft on the store
// through bootstrap, applies, a snapshot with compaction and a restart.
func TestLogStoreWithRaft(t *testing.T) {
	dir := t.TempDir()
	run := func(bootstrap bool, applies int) (last uint64) {
		s := openTestStore(t, filepath.Join(dir, "log"))
		defer s.Close()
		conf := raft.DefaultConfig()
		conf.LocalID = "a"
		conf.HeartbeatTimeout = 50 * time.Millisecond
		conf.ElectionTimeout = 50 * time.Millisecond
		conf.LeaderLeaseTimeout = 50 * time.Millisecond
		conf.TrailingLogs = 5
		conf.Logger = nullLogger()
		addr, trans := raft.NewInmemTransport("a")
		snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 1, nullLogger())
		if err != nil {
			t.Fatal(err)
		}
		fsm := &raft.MockFSM{}
		if bootstrap {
			if err := raft.BootstrapCluster(conf, s, s, snaps, trans, raft.Configuration{Servers: []raft.Server{{ID: "a", Address: addr}}}); err != nil {
				t.Fatal(err)
			}
		}
		r, err := raft.NewRaft(conf, fsm, s, s, snaps, trans)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Shutdown()
		deadline := time.Now().Add(10 * time.Second)
		for r.State() != raft.Leader {
			if time.Now().After(deadline) {
				t.Fatal("no leader")
			}
			time.Sleep(5 * time.Millisecond)
		}
		for i := 0; i < applies; i++ {
			if err := r.Apply([]byte{byte(i)}, 5*time.Second).Error(); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
		f, l := bounds(t, s)
		if l-f+1 > 5+1 {
			t.Fatalf("after snapshot log holds %d..%d, want <= TrailingLogs", f, l)
		}
		if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term == 0 {
			t.Fatalf("CurrentTerm = %d, %v", term, err)
		}
		return l
	}
	l1 := run(true, 30)
	l2 := run(false, 10)
	if l2 <= l1 {
		t.Fatalf("restart did not continue the log: %d then %d", l1, l2)
	}
}

// BenchmarkStoreLogs stores batches of 16 entries of a 1.2 KiB command,
// as a busy leader does.
func BenchmarkStoreLogs(b *testing.B) {
	s, err := OpenLogStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := bytes.Repeat([]byte{0xa5}, 1200)
	now := time.Now()
	logs := make([]*raft.Log, 16)
	next := uint64(1)
	b.ReportAllocs()
	for b.Loop() {
		for i := range logs {
			logs[i] = &raft.Log{Index: next, Term: 3, Type: raft.LogCommand, Data: data, AppendedAt: now}
			next++
		}
		if err := s.StoreLogs(logs); err != nil {
			b.Fatal(err)
		}
	}
}
