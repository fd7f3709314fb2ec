package projections_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// harness drives one Machine with increasing raft indexes.
type harness struct {
	t   testing.TB
	fs  vfs.FS
	dir string
	m   *projections.Machine
	idx uint64
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	fs := vfs.NewMem()
	return newHarnessFS(t, fs, "node")
}

func newHarnessFS(t testing.TB, fs vfs.FS, dir string, opts ...projections.Options) *harness {
	t.Helper()
	o := projections.Options{FS: fs}
	if len(opts) > 0 {
		o = opts[0]
		o.FS = fs
	}
	m, err := projections.OpenWithOptions(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, fs: fs, dir: dir, m: m}
	t.Cleanup(func() { h.m.Close() })
	return h
}

func encodeCmd(t testing.TB, c *projections.Command) []byte {
	t.Helper()
	b, err := projections.EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// apply applies a command at the next raft index.
func (h *harness) apply(conds []projections.Condition, ops ...projections.Op) projections.Result {
	h.t.Helper()
	h.idx++
	return h.m.Apply(h.idx, encodeCmd(h.t, &projections.Command{Conditions: conds, Ops: ops}))
}

// ok applies and fails the test on rejection.
func (h *harness) ok(conds []projections.Condition, ops ...projections.Op) projections.Result {
	h.t.Helper()
	r := h.apply(conds, ops...)
	if r.Err != nil || r.Duplicate {
		h.t.Fatalf("apply %d: %v (dup=%v)", h.idx, r.Err, r.Duplicate)
	}
	return r
}

// stateHash hashes every key and value except the applied index: a rejected
// command must leave it unchanged.
func stateHash(t testing.TB, m *projections.Machine) []byte {
	t.Helper()
	db := m.DBForTest()
	it, err := db.NewIter(&pebble.IterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	h := sha256.New()
	for ok := it.First(); ok; ok = it.Next() {
		if bytes.Equal(it.Key(), []byte("m/applied")) {
			continue
		}
		var l [8]byte
		binary.BigEndian.PutUint64(l[:], uint64(len(it.Key())))
		h.Write(l[:])
		h.Write(it.Key())
		binary.BigEndian.PutUint64(l[:], uint64(len(it.Value())))
		h.Write(l[:])
		h.Write(it.Value())
	}
	return h.Sum(nil)
}

func ev(room string, ts uint64, body eventlog.Body) projections.Op {
	return projections.EventOp(room, ts, body)
}

func conds(c ...projections.Condition) []projections.Condition { return c }

func sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func digest(t testing.TB, m *projections.Machine) []byte {
	t.Helper()
	d, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// replayDigest rebuilds m's projections from its log in a fresh Machine and
// returns the rebuilt digest and log head.
func replayCheck(t testing.TB, h *harness) {
	t.Helper()
	dst, st, err := h.m.ReplayInto(h.dir+"-replay", projections.Options{FS: h.fs})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		dst.Close()
		h.fs.RemoveAll(h.dir + "-replay")
	}()
	head, _ := h.m.LogHead()
	if st.Events != head.Seq {
		t.Fatalf("replayed %d events, log has %d", st.Events, head.Seq)
	}
	if a, b := digest(t, h.m), digest(t, dst); !bytes.Equal(a, b) {
		t.Fatalf("replay digest %x != live %x", b, a)
	}
	if dh, _ := dst.LogHead(); dh != head {
		t.Fatalf("replayed head %+v != %+v", dh, head)
	}
	// The replayed store is a complete store: it continues exactly like
	// the source (on a scratch copy of the source, via its snapshot),
	// and a projections-only replay agrees too.
	var buf bytes.Buffer
	if err := h.m.Snapshot(&buf); err != nil {
		t.Fatal(err)
	}
	cont, err := projections.OpenWithOptions(h.dir+"-cont", projections.Options{FS: h.fs})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cont.Close()
		h.fs.RemoveAll(h.dir + "-cont")
	}()
	if err := cont.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	next := encodeCmd(t, &projections.Command{Ops: []projections.Op{
		ev("replay-check-room", 1, &eventlog.RoomCreated{Hub: "h"}),
		ev("replay-check-room", 1, &eventlog.ApplicationMessageAccepted{Message: []byte("m")}),
	}})
	r1, r2 := cont.Apply(h.idx+1, next), dst.Apply(h.idx+1, next)
	if r1.Err != nil || r2.Err != nil || r1.Events[1].Seq != head.Seq+2 || r2.Events[1].Seq != head.Seq+2 {
		t.Fatalf("continuing after replay: %v %v", r1.Err, r2.Err)
	}
	if !bytes.Equal(stateHash(t, cont), stateHash(t, dst)) {
		t.Fatal("replayed store continues differently from the source")
	}
	if rep, err := dst.VerifyLog(); err != nil || !rep.OK() {
		t.Fatalf("replayed log does not verify: %v %v", err, rep)
	}
	po, err := projections.OpenWithOptions(h.dir+"-proj", projections.Options{FS: h.fs})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		po.Close()
		h.fs.RemoveAll(h.dir + "-proj")
	}()
	snap := h.m.DBForTest().NewSnapshot()
	defer snap.Close()
	if st, err := projections.ReplayProjections(snap, po); err != nil || st.Events != head.Seq {
		t.Fatalf("ReplayProjections: %v (%d events)", err, st.Events)
	}
	if a, b := digest(t, h.m), digest(t, po); !bytes.Equal(a, b) {
		t.Fatalf("projections-only replay digest %x != live %x", b, a)
	}
	if ph, _ := po.LogHead(); ph.Seq != 0 {
		t.Fatal("projections-only replay wrote the log")
	}
}
