package projections

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/openmimi/mimi/eventlog"
)

const digestDomain = "mimi projections digest v1\x00"

// Digest returns SHA-256 over every projection key and value (the keys
// under "p/", in key order, each length-prefixed), excluding the raw log and
// the applied index. Nodes that applied the same log have equal digests, and
// so does a store rebuilt from the log by Replay.
func (m *Machine) Digest() ([]byte, error) {
	var d []byte
	err := m.snapshotView(func(r pebble.Reader) error {
		var err error
		d, err = digestOf(r)
		return err
	})
	return d, err
}

func digestOf(r pebble.Reader) ([]byte, error) {
	h := sha256.New()
	h.Write([]byte(digestDomain))
	var lens [16]byte
	err := eachUnder(r, prefixProjections, nil, func(k, v []byte) (bool, error) {
		binary.BigEndian.PutUint64(lens[:8], uint64(len(k)))
		binary.BigEndian.PutUint64(lens[8:], uint64(len(v)))
		h.Write(lens[:])
		h.Write(k)
		h.Write(v)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// ReplayStats describes a replay.
type ReplayStats struct {
	Events   uint64
	Duration time.Duration
}

// replayChunk is the number of events applied per batch during replay.
const replayChunk = 1024

// Replay rebuilds every projection of dst from the log in src alone: it
// re-appends each event of src to dst's (empty) log and applies it with the
// same function Apply uses, checking that the rebuilt hash chain equals the
// source's record by record. dst's applied index is left 0, since the Raft
// index is not part of the log. src is any consistent reader (a pebble
// snapshot of a live Machine, or a closed Machine's DB opened read-only).
func Replay(src pebble.Reader, dst *Machine) (ReplayStats, error) { return replay(src, dst, true) }

// ReplayProjections is Replay without copying the log: dst receives only
// the projections (and is then useful only for Digest and the read APIs;
// never Apply to it). The hash chain is still recomputed and checked.
func ReplayProjections(src pebble.Reader, dst *Machine) (ReplayStats, error) {
	return replay(src, dst, false)
}

func replay(src pebble.Reader, dst *Machine, copyLog bool) (st ReplayStats, err error) {
	start := time.Now()
	dst.applyMu.Lock()
	defer dst.applyMu.Unlock()
	dst.dbMu.RLock()
	defer dst.dbMu.RUnlock()
	if dst.closed {
		return st, ErrClosed
	}
	// Replay writes behind the cache's back: rebuild it afterwards.
	defer func() {
		if cerr := dst.resetCache(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	head, err := eventlog.ReadHead(dst.db)
	if err != nil {
		return st, storageErr("read head", err)
	}
	if head.Seq != 0 {
		return st, fmt.Errorf("projections: replay target already holds %d events", head.Seq)
	}
	it, err := eventlog.NewIterator(src, 1)
	if err != nil {
		return st, err
	}
	defer it.Close()
	// Replay writes plain batches of up to replayChunk events and reads
	// through the tx cache and the DB; an event that needs a range read
	// starts a new batch so that the DB holds everything it must see.
	// The tx's caches and the appender's heads carry over from batch to
	// batch: replay is the only writer of dst, so they stay exact.
	b := dst.db.NewBatch()
	defer func() { b.Close() }()
	var t *tx
	if copyLog {
		t, err = newTx(b, dst.db)
	} else {
		t, err = newDryLogTx(b, dst.db, src)
	}
	if err != nil {
		return st, err
	}
	pending := 0
	commit := func(opts *pebble.WriteOptions) error {
		if err := t.finish(); err != nil {
			return err
		}
		if err := b.Commit(opts); err != nil {
			return storageErr("replay commit", err)
		}
		b.Close()
		b = dst.db.NewBatch()
		pending = 0
		return t.rebind(b)
	}
	for it.Next() {
		ev := it.Event()
		if pending > 0 && (pending >= replayChunk || needsRangeRead(&ev)) {
			if err := commit(pebble.NoSync); err != nil {
				return st, err
			}
		}
		if err := t.replayOne(ev, it.Hash()); err != nil {
			return st, err
		}
		pending++
		st.Events++
	}
	if err := it.Err(); err != nil {
		return st, fmt.Errorf("projections: replay source: %w", err)
	}
	if err := commit(pebble.Sync); err != nil {
		return st, err
	}
	st.Duration = time.Since(start)
	return st, nil
}

func (t *tx) replayOne(ev eventlog.Event, want [eventlog.HashSize]byte) error {
	seq, roomSeq, err := t.app.Next(ev.Room)
	if err != nil {
		return storageErr("log head", err)
	}
	if seq != ev.Seq || roomSeq != ev.RoomSeq {
		return fmt.Errorf("%w: source event at %d/%d, replay at %d/%d", ErrReplayDiverged, ev.Seq, ev.RoomSeq, seq, roomSeq)
	}
	if err := t.applyEvent(&ev); err != nil {
		return fmt.Errorf("%w: event %d (%s) rejected on replay: %w", ErrReplayDiverged, ev.Seq, ev.Type(), err)
	}
	if err := t.app.Append(&ev); err != nil {
		return storageErr("append", err)
	}
	t.appended(&ev)
	if got := t.app.Head().Hash; got != want {
		return fmt.Errorf("%w: chain hash differs at seq %d", ErrReplayDiverged, ev.Seq)
	}
	return nil
}

// ReplayInto replays a consistent snapshot of m's log into a new Machine in
// dir (which must not hold one already), returning it open.
func (m *Machine) ReplayInto(dir string, o Options) (*Machine, ReplayStats, error) {
	if o.FS == nil {
		o.FS = m.fs
	}
	dst, err := OpenWithOptions(dir, o)
	if err != nil {
		return nil, ReplayStats{}, err
	}
	var st ReplayStats
	err = m.snapshotView(func(r pebble.Reader) error {
		var err error
		st, err = Replay(r, dst)
		return err
	})
	if err != nil {
		dst.Close()
		return nil, st, err
	}
	return dst, st, nil
}

// AuditReport is the result of Audit.
type AuditReport struct {
	// Log is the integrity walk of the log.
	Log *eventlog.Report
	// Replay describes the rebuild; ReplayErr is why it failed, if it did.
	Replay    ReplayStats
	ReplayErr error
	// LiveDigest is the Digest of the live projections at the audited
	// point; ReplayDigest that of the projections rebuilt from the log.
	LiveDigest, ReplayDigest []byte
}

// OK reports whether the log is intact and replay reproduced the live
// projections exactly.
func (a *AuditReport) OK() bool {
	return a.Log != nil && a.Log.OK() && a.ReplayErr == nil && a.LiveDigest != nil && bytes.Equal(a.LiveDigest, a.ReplayDigest)
}

// Audit checks the store end to end at one point in time: it runs the log
// integrity walk, replays the log (ReplayProjections) into a scratch
// Machine in scratchDir (created, and removed afterwards) and compares the
// rebuilt projections' Digest with the live one.
func (m *Machine) Audit(scratchDir string) (*AuditReport, error) {
	rep := &AuditReport{}
	err := m.snapshotView(func(r pebble.Reader) error {
		var err error
		if rep.Log, err = eventlog.Verify(r); err != nil {
			return err
		}
		if rep.LiveDigest, err = digestOf(r); err != nil {
			return err
		}
		if _, err := m.fs.Stat(scratchDir); err == nil {
			return fmt.Errorf("projections: audit scratch directory %s exists", scratchDir)
		}
		dst, err := OpenWithOptions(scratchDir, Options{FS: m.fs, Logger: m.opts.Logger})
		if err != nil {
			return err
		}
		defer m.fs.RemoveAll(scratchDir)
		defer dst.Close()
		rep.Replay, rep.ReplayErr = ReplayProjections(r, dst)
		if rep.ReplayErr == nil {
			rep.ReplayDigest, err = dst.Digest()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// Snapshot format: magic, then entries "0x01 uvarint(len k) k uvarint(len v)
// v" in key order, then "0x00" and SHA-256 of everything before it.
var snapshotMagic = []byte("MIMI-PROJECTIONS-SNAPSHOT-v1\n")

// Snapshot writes a consistent point-in-time dump of all state (the log,
// the projections and the applied index) from a Pebble snapshot, streaming.
// Apply may proceed concurrently; the dump reflects the state when
// Snapshot started.
func (m *Machine) Snapshot(w io.Writer) error {
	m.dbMu.RLock()
	defer m.dbMu.RUnlock()
	db, err := m.reader()
	if err != nil {
		return err
	}
	snap := db.NewSnapshot()
	defer snap.Close()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<16)
	if _, err := bw.Write(snapshotMagic); err != nil {
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	it, err := snap.NewIter(&pebble.IterOptions{})
	if err != nil {
		return storageErr("snapshot iterate", err)
	}
	defer it.Close()
	var hdr [1 + 2*binary.MaxVarintLen64]byte
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		hdr[0] = 1
		n := 1 + binary.PutUvarint(hdr[1:], uint64(len(k)))
		if _, err := bw.Write(hdr[:n]); err != nil {
			return fmt.Errorf("projections: snapshot: %w", err)
		}
		bw.Write(k)
		n = binary.PutUvarint(hdr[:], uint64(len(v)))
		bw.Write(hdr[:n])
		if _, err := bw.Write(v); err != nil {
			return fmt.Errorf("projections: snapshot: %w", err)
		}
	}
	if err := it.Error(); err != nil {
		return storageErr("snapshot iterate", err)
	}
	if err := bw.WriteByte(0); err != nil {
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	return nil
}

// hashingReader feeds every byte read into a hash.
type hashingReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (hr *hashingReader) ReadByte() (byte, error) {
	c, err := hr.r.ReadByte()
	if err == nil {
		hr.h.Write([]byte{c})
	}
	return c, err
}

func (hr *hashingReader) readFull(b []byte) error {
	if _, err := io.ReadFull(hr.r, b); err != nil {
		return err
	}
	hr.h.Write(b)
	return nil
}

// maxSnapshotField bounds a key or value length in a snapshot stream.
const maxSnapshotField = 1 << 31

// Restore replaces all state with a dump written by Snapshot. The dump is
// loaded into a new Pebble directory and checked (magic, key order,
// checksum) before it atomically replaces the current state, so a bad or
// truncated stream leaves the Machine unchanged.
func (m *Machine) Restore(r io.Reader) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.dbMu.RLock()
	closed := m.closed
	m.dbMu.RUnlock()
	if closed {
		return ErrClosed
	}
	tmp := m.path(restoreDir)
	if err := m.fs.RemoveAll(tmp); err != nil {
		return fmt.Errorf("projections: restore: %w", err)
	}
	if err := m.load(tmp, r); err != nil {
		m.fs.RemoveAll(tmp)
		return err
	}
	// Commit point: once the marker exists, Open completes the swap.
	if err := m.writeMarker(); err != nil {
		m.fs.RemoveAll(tmp)
		return err
	}
	m.dbMu.Lock()
	defer m.dbMu.Unlock()
	if err := m.db.Close(); err != nil {
		return fmt.Errorf("projections: restore: close: %w", err)
	}
	m.closed = true
	if err := m.recoverRestore(); err != nil {
		return err
	}
	db, err := m.openDB(m.path(stateDir))
	if err != nil {
		return err
	}
	idx, err := readApplied(db)
	if err != nil {
		db.Close()
		return err
	}
	m.db, m.closed = db, false
	m.applied.Store(idx)
	return m.resetCache()
}

// load reads a snapshot stream into a new Pebble DB at path.
func (m *Machine) load(path string, r io.Reader) error {
	db, err := m.openDB(path)
	if err != nil {
		return err
	}
	defer db.Close()
	hr := &hashingReader{r: bufio.NewReaderSize(r, 1<<16), h: sha256.New()}
	magic := make([]byte, len(snapshotMagic))
	if err := hr.readFull(magic); err != nil || !bytes.Equal(magic, snapshotMagic) {
		return fmt.Errorf("%w: bad magic", ErrBadSnapshot)
	}
	b := db.NewBatch()
	defer func() { b.Close() }()
	var prev []byte
	for {
		tag, err := hr.ReadByte()
		if err != nil {
			return fmt.Errorf("%w: truncated: %w", ErrBadSnapshot, err)
		}
		if tag == 0 {
			break
		}
		if tag != 1 {
			return fmt.Errorf("%w: bad entry tag %d", ErrBadSnapshot, tag)
		}
		k, err := readField(hr)
		if err != nil {
			return err
		}
		v, err := readField(hr)
		if err != nil {
			return err
		}
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			return fmt.Errorf("%w: keys out of order", ErrBadSnapshot)
		}
		prev = k
		if err := b.Set(k, v, nil); err != nil {
			return storageErr("restore set", err)
		}
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return storageErr("restore commit", err)
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	want := hr.h.Sum(nil)
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(hr.r, got); err != nil {
		return fmt.Errorf("%w: missing checksum: %w", ErrBadSnapshot, err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return storageErr("restore commit", err)
	}
	if err := checkRestored(db); err != nil {
		return err
	}
	if err := db.Flush(); err != nil {
		return storageErr("restore flush", err)
	}
	return nil
}

// checkRestored reads from a loaded dump what opening it reads (the
// applied index, the log head, the delivery cursors), so that a dump with
// a valid checksum but a bad record is refused before the commit point
// instead of leaving a Machine that cannot open.
func checkRestored(db *pebble.DB) error {
	if _, err := readApplied(db); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	if _, err := eventlog.ReadHead(db); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	var cursors cursorTable
	if err := cursors.load(db); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	return nil
}

func readField(hr *hashingReader) ([]byte, error) {
	n, err := binary.ReadUvarint(hr)
	if err != nil {
		return nil, fmt.Errorf("%w: bad length: %w", ErrBadSnapshot, err)
	}
	if n > maxSnapshotField {
		return nil, fmt.Errorf("%w: field of %d bytes", ErrBadSnapshot, n)
	}
	// Read in bounded pieces so a hostile length cannot force a huge
	// allocation before the data is actually there.
	var out []byte
	for n > 0 {
		c := min(n, 1<<20)
		buf := make([]byte, c)
		if err := hr.readFull(buf); err != nil {
			return nil, fmt.Errorf("%w: truncated: %w", ErrBadSnapshot, err)
		}
		out = append(out, buf...)
		n -= c
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

func (m *Machine) writeMarker() error {
	f, err := m.fs.Create(m.path(restoreMarker), vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("projections: restore marker: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("projections: restore marker: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("projections: restore marker: %w", err)
	}
	return syncDir(m.fs, m.dir)
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("projections: sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("projections: sync dir: %w", err)
	}
	return nil
}

func exists(fs vfs.FS, path string) bool {
	_, err := fs.Stat(path)
	return err == nil
}

// recoverRestore finishes or discards an interrupted Restore: with the
// marker present the loaded state replaces the old one; without it a
// leftover partial load is removed.
func (m *Machine) recoverRestore() error {
	marker, tmp, state := m.path(restoreMarker), m.path(restoreDir), m.path(stateDir)
	if !exists(m.fs, marker) {
		if exists(m.fs, tmp) {
			if err := m.fs.RemoveAll(tmp); err != nil {
				return fmt.Errorf("projections: discard partial restore: %w", err)
			}
		}
		return nil
	}
	if exists(m.fs, tmp) {
		if err := m.fs.RemoveAll(state); err != nil {
			return fmt.Errorf("projections: restore swap: %w", err)
		}
		if err := m.fs.Rename(tmp, state); err != nil {
			return fmt.Errorf("projections: restore swap: %w", err)
		}
		if err := syncDir(m.fs, m.dir); err != nil {
			return err
		}
	}
	if err := m.fs.Remove(marker); err != nil && exists(m.fs, marker) {
		return fmt.Errorf("projections: restore marker: %w", err)
	}
	return syncDir(m.fs, m.dir)
}
