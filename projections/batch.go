package projections

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/batchrepr"
)

// Entry is one committed Raft log entry (Ongaro & Ousterhout, "In Search of
// an Understandable Consensus Algorithm", Section 5.3: committed entries are
// applied to the state machine in log order) handed to ApplyBatch: the Raft
// index and the command proposed there.
//
// It mirrors raftnode.Entry, which this package cannot name (raftnode sits
// above it); an adapter converts one to the other.
type Entry struct {
	Index uint64
	Cmd   []byte
}

// maxBatchBytes bounds the Pebble batch ApplyBatch accumulates: once the
// staged writes exceed it, they are committed (with their applied index)
// and a new batch starts. Raft hands over at most MaxAppendEntries
// entries at a time, so this only matters for very large commands.
const maxBatchBytes = 16 << 20

// ApplyBatch applies entries, in order, with the same results and the same
// final state as calling Apply for each of them in turn (the hub "is
// responsible for ordering and distributing messages",
// draft-ralston-mimi-protocol-02, Section 1; the order is the Raft log's),
// but commits them in a single Pebble batch (split only past maxBatchBytes
// of writes), without an fsync: see "Durability of ApplyBatch" in the
// package documentation for why the Raft log's fsync suffices. It returns
// one Result per entry.
//
// An entry whose Index is at or below the applied index (including indexes
// applied earlier in the same slice) is a no-op reported as Duplicate.
// Gaps between indexes are allowed (Raft's own entries carry no command).
//
// Per-command atomicity inside the shared batch uses savepoints. Every
// command runs on one indexed batch, so it reads the writes of the commands
// staged before it. Pebble's batch representation is append-only (a header
// followed by the records in write order), so the batch as of a savepoint
// is the prefix of its representation up to the savepoint's length with the
// savepoint's record count in the header. A rejected command that wrote
// nothing costs nothing; one that wrote something is undone by rebuilding
// the indexed batch from that prefix (batchrepr.SetCount, Batch.SetRepr,
// Batch.Apply). So a rejected command changes nothing but the applied
// index, exactly as with Apply. The cross-command cache of committed values
// receives a command's writes as soon as the command is staged (later
// commands must see them); if the batch then fails to commit, the cache is
// dropped, as Apply does.
//
// The applied index is written once per commit, in the same batch as the
// effects: after a crash, state and applied index agree and each commit is
// present either whole or not at all. A crash of the process or the
// machine may lose the most recent commits (never an earlier one without
// the later ones); AppliedIndex then reports the last commit that
// survived, and the caller must apply the lost entries again from its
// durable log (raftnode does so on start). ApplyBatch is therefore only
// for a caller whose commands are durable elsewhere before they are
// applied; Apply commits with pebble.Sync.
//
// On a fatal error (errors.Is(Result.Err, ErrStorage) or ErrCorruptState)
// for entry k, the entries before k are committed and entry k and every
// later entry that is not a Duplicate report an error wrapping ErrStorage
// and are not recorded as applied: the node must stop (Apply's rule). On a
// closed Machine every Result carries ErrClosed.
func (m *Machine) ApplyBatch(entries []Entry) []Result {
	out := make([]Result, len(entries))
	if len(entries) == 0 {
		return out
	}
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.dbMu.RLock()
	defer m.dbMu.RUnlock()
	if m.closed {
		for i := range out {
			out[i] = Result{Err: ErrClosed}
		}
		return out
	}
	run := &batchRun{m: m, out: out, committed: m.applied.Load(), cursors: make(map[string]*Cursor)}
	run.applied = run.committed
	run.b = m.db.NewIndexedBatch()
	defer func() { run.b.Close() }()

	for i, e := range entries {
		if e.Index <= run.applied {
			out[i] = Result{Duplicate: true}
			continue
		}
		sp := savepoint{size: run.b.Len(), count: run.b.Count()}
		res, err := m.stage(run.b, e.Cmd, run.cursors)
		if err != nil && isFatal(err) {
			run.fail(i, entries, err, sp)
			return out
		}
		if err != nil {
			// Rejected: undo whatever the command wrote.
			if run.b.Len() != sp.size || run.b.Count() != sp.count {
				if rerr := run.rollback(sp); rerr != nil {
					run.abandon(i, entries, rerr)
					return out
				}
			}
			res = Result{Err: err}
		}
		out[i] = res
		run.applied = e.Index
		run.staged = append(run.staged, i)
		if run.b.Len() >= maxBatchBytes {
			if err := run.commit(); err != nil {
				run.abandon(i+1, entries, err)
				return out
			}
		}
	}
	if err := run.commit(); err != nil {
		run.abandon(len(entries), entries, err)
	}
	return out
}

// savepoint marks a position in an append-only batch.
type savepoint struct {
	size  int    // Batch.Len()
	count uint32 // Batch.Count()
}

// batchRun is the state of one ApplyBatch.
type batchRun struct {
	m         *Machine
	b         *pebble.Batch // indexed; holds the staged commands
	out       []Result
	committed uint64 // applied index as committed to the DB
	applied   uint64 // applied index including the staged commands
	staged    []int  // positions in out whose results depend on b committing
	// cursors are the cursors written by the staged commands, for
	// Machine.cursors once they are committed.
	cursors map[string]*Cursor
}

// stage runs the command data on the indexed batch b, which already holds
// the writes of the commands staged before it, without recording an
// applied index or committing. On success the command's writes are
// published to the cross-command cache and its cursor writes added
// to cursors. It is execute minus the commit; the two must stay in step.
func (m *Machine) stage(b *pebble.Batch, data []byte, cursors map[string]*Cursor) (Result, error) {
	cmd, err := DecodeCommand(data)
	if err != nil {
		return Result{}, err
	}
	t, err := m.applyTx(b)
	if err != nil {
		return Result{}, err
	}
	res, err := t.run(cmd)
	if err != nil {
		return Result{}, err
	}
	t.publish()
	t.takeCursors(cursors)
	if t.clientsChanged {
		m.clientsDirty = true
	}
	return res, nil
}

// rollback replaces the batch with its prefix up to sp.
func (r *batchRun) rollback(sp savepoint) error {
	nb := r.m.db.NewIndexedBatch()
	if sp.count > 0 {
		repr := bytes.Clone(r.b.Repr()[:sp.size])
		batchrepr.SetCount(repr, sp.count)
		tmp := r.m.db.NewBatch()
		err := tmp.SetRepr(repr)
		if err == nil {
			err = nb.Apply(tmp, nil)
		}
		tmp.Close()
		if err != nil {
			nb.Close()
			return storageErr("roll back rejected command", err)
		}
	}
	r.b.Close()
	r.b = nb
	return nil
}

// commit writes the staged commands and the applied index in one atomic
// Pebble batch, unsynced (see ApplyBatch), and starts a new batch.
func (r *batchRun) commit() error {
	if r.applied == r.committed {
		return nil
	}
	if err := r.b.Set(keyApplied, binary.BigEndian.AppendUint64(nil, r.applied), nil); err != nil {
		return storageErr("record applied index", err)
	}
	if err := r.b.Commit(pebble.NoSync); err != nil {
		return storageErr("commit", err)
	}
	r.m.applied.Store(r.applied)
	r.m.cursors.merge(r.cursors)
	clear(r.cursors)
	if r.m.clientsDirty {
		r.m.clients.invalidate()
		r.m.clientsDirty = false
	}
	r.committed = r.applied
	r.staged = r.staged[:0]
	r.b.Close()
	r.b = r.m.db.NewIndexedBatch()
	return nil
}

// fail handles a fatal error of entry k: the batch is rolled back to the
// savepoint before it, the entries before it are committed, and k and the
// rest fail.
func (r *batchRun) fail(k int, entries []Entry, err error, sp savepoint) {
	if !errors.Is(err, ErrStorage) {
		err = fmt.Errorf("%w: %w", ErrStorage, err)
	}
	if rerr := r.rollback(sp); rerr != nil {
		r.abandon(k, entries, rerr)
		return
	}
	if cerr := r.commit(); cerr != nil {
		r.abandon(k, entries, cerr)
		return
	}
	r.rest(k, entries, err)
}

// abandon handles a failure that leaves the uncommitted batch unusable:
// every staged result and every entry from k on fails with err, and the
// cross-command cache, which already holds staged writes, is dropped.
func (r *batchRun) abandon(k int, entries []Entry, err error) {
	r.m.cache = nil
	r.m.cursors.invalidate()
	r.m.clients.invalidate()
	r.m.clientsDirty = false
	clear(r.cursors)
	for _, i := range r.staged {
		r.out[i] = Result{Err: err}
	}
	r.staged = r.staged[:0]
	r.applied = r.committed
	r.rest(k, entries, err)
}

// rest fails every entry from k on that is not a duplicate of a committed
// index.
func (r *batchRun) rest(k int, entries []Entry, err error) {
	for i := k; i < len(entries); i++ {
		if entries[i].Index <= r.committed {
			r.out[i] = Result{Duplicate: true}
			continue
		}
		if i == k {
			r.out[i] = Result{Err: err}
		} else {
			r.out[i] = Result{Err: fmt.Errorf("%w: not applied after an earlier failure in the batch: %w", ErrStorage, err)}
		}
	}
}
