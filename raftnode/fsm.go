package raftnode

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// StateMachine is the replicated, durable application state that a Node
// drives (Raft paper, Section 5.3: "each server applies committed entries
// to its state machine in log order"). R is the result type of Apply; it
// is returned to the caller of Node.Apply, on whichever node it was called.
//
// projections.Machine satisfies StateMachine[projections.Result] as it is,
// with no adapter: Open[projections.Result](cfg, machine, codec).
//
// Requirements:
//
//   - Apply must be deterministic (same state, index and command give the
//     same new state and result on every node) and atomic: its effects,
//     including the new applied index, are committed in one write before
//     it returns. The write need not be synced: Node applies only entries
//     that are already in its fsynced Raft log (Raft paper, Section 5.3),
//     so a crash that loses the machine's latest writes is repaired on
//     Open by applying the entries after the surviving AppliedIndex again
//     from the log (or, if the log was compacted past it, by restoring the
//     latest snapshot first). What the machine must guarantee is that a
//     crash loses only a suffix of its commits, with AppliedIndex in step
//     (Pebble's write-ahead log gives this for unsynced batches). An Apply
//     with index <= AppliedIndex() must be a no-op (Node never issues one,
//     but the rule makes replay after a crash safe). Apply must not fail:
//     a command the application rejects is applied as a rejection recorded
//     in R; an I/O error that prevents the commit must stop the process
//     (continuing would diverge replicas).
//   - AppliedIndex is the index of the last applied entry, as persisted; it
//     is read at Open and after Restore, never concurrently with Apply.
//   - Snapshot writes a complete, internally consistent point-in-time image
//     of the state including its applied index (for example from a Pebble
//     snapshot). It runs concurrently with Apply. The image may be newer
//     than the Raft snapshot index it is filed under; Restore followed by
//     the replay of later entries is still correct because entries at or
//     below the restored AppliedIndex are skipped.
//   - Restore discards all state and replaces it with the image, durably,
//     after which AppliedIndex reports the image's applied index. It is never
//     called concurrently with Apply or Snapshot.
type StateMachine[R any] interface {
	Apply(index uint64, cmd []byte) R
	AppliedIndex() uint64
	Snapshot(w io.Writer) error
	Restore(r io.Reader) error
}

// Entry is one committed log entry (Raft paper, Section 5.3) handed to a
// BatchStateMachine.
type Entry struct {
	Index uint64
	Cmd   []byte
}

// BatchStateMachine is an optional extension of StateMachine: when
// implemented, committed commands are delivered in batches (up to Raft's
// MaxAppendEntries, in index order, without gaps between commands) so the
// machine can commit them in a single write. ApplyBatch must return
// one result per entry and is otherwise bound by the rules of Apply.
type BatchStateMachine[R any] interface {
	StateMachine[R]
	ApplyBatch(entries []Entry) []R
}

// snapshotMagic prefixes every snapshot image written by a Node so Restore
// rejects a stream that is not one.
var snapshotMagic = []byte("MIMIRSN1")

// ErrBadSnapshot is returned (wrapped) when a snapshot stream (Raft paper,
// Section 7, InstallSnapshot) does not carry the Node snapshot header.
var ErrBadSnapshot = errors.New("raftnode: not a raftnode snapshot")

// fsm adapts a StateMachine to raft.FSM. It tracks the applied index itself
// (an atomic readable from any goroutine) and skips entries at or below it.
type fsm[R any] struct {
	sm StateMachine[R]

	applied  atomic.Uint64
	restores atomic.Uint64

	mu     sync.Mutex
	waitCh chan struct{} // closed and cleared when applied advances
}

type batchingFSM[R any] struct {
	*fsm[R]
	bsm BatchStateMachine[R]
}

func newFSM[R any](sm StateMachine[R]) *fsm[R] {
	f := &fsm[R]{sm: sm}
	f.applied.Store(sm.AppliedIndex())
	return f
}

// raftFSM returns the raft.FSM to hand to raft.NewRaft: a raft.BatchingFSM
// when the state machine supports batches.
func (f *fsm[R]) raftFSM() raft.FSM {
	if b, ok := f.sm.(BatchStateMachine[R]); ok {
		return &batchingFSM[R]{fsm: f, bsm: b}
	}
	return f
}

func (f *fsm[R]) setApplied(i uint64) {
	f.applied.Store(i)
	f.mu.Lock()
	if f.waitCh != nil {
		close(f.waitCh)
		f.waitCh = nil
	}
	f.mu.Unlock()
}

// waitChan returns a channel closed at the next change of the applied index.
func (f *fsm[R]) waitChan() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waitCh == nil {
		f.waitCh = make(chan struct{})
	}
	return f.waitCh
}

// Apply implements raft.FSM.
func (f *fsm[R]) Apply(l *raft.Log) interface{} {
	if l.Type != raft.LogCommand || l.Index <= f.applied.Load() {
		var zero R
		return zero
	}
	r := f.sm.Apply(l.Index, l.Data)
	f.setApplied(l.Index)
	return r
}

// ApplyBatch implements raft.BatchingFSM.
func (b *batchingFSM[R]) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	applied := b.applied.Load()
	entries := make([]Entry, 0, len(logs))
	pos := make([]int, 0, len(logs))
	for i, l := range logs {
		var zero R
		out[i] = zero
		if l.Type == raft.LogCommand && l.Index > applied {
			entries = append(entries, Entry{Index: l.Index, Cmd: l.Data})
			pos = append(pos, i)
		}
	}
	if len(entries) == 0 {
		return out
	}
	res := b.bsm.ApplyBatch(entries)
	if len(res) != len(entries) {
		panic(fmt.Sprintf("raftnode: ApplyBatch returned %d results for %d entries", len(res), len(entries)))
	}
	for j, i := range pos {
		out[i] = res[j]
	}
	b.setApplied(entries[len(entries)-1].Index)
	return out
}

// Snapshot implements raft.FSM. The image is produced in Persist.
func (f *fsm[R]) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot[R]{sm: f.sm}, nil
}

// Restore implements raft.FSM.
func (f *fsm[R]) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 256<<10)
	hdr := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, hdr); err != nil || string(hdr) != string(snapshotMagic) {
		return fmt.Errorf("raftnode: restore: %w", ErrBadSnapshot)
	}
	if err := f.sm.Restore(br); err != nil {
		return fmt.Errorf("raftnode: restore state machine: %w", err)
	}
	f.restores.Add(1)
	f.setApplied(f.sm.AppliedIndex())
	return nil
}

type fsmSnapshot[R any] struct {
	sm StateMachine[R]
}

// Persist implements raft.FSMSnapshot, streaming the image into the sink.
func (s *fsmSnapshot[R]) Persist(sink raft.SnapshotSink) error {
	bw := bufio.NewWriterSize(sink, 256<<10)
	err := func() error {
		if _, err := bw.Write(snapshotMagic); err != nil {
			return err
		}
		if err := s.sm.Snapshot(bw); err != nil {
			return err
		}
		return bw.Flush()
	}()
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raftnode: persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("raftnode: close snapshot sink: %w", err)
	}
	return nil
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot[R]) Release() {}
