package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/raftnode"
)

// ErrStorageFailed is returned (wrapped, together with
// projections.ErrStorage) by every write and read barrier after the
// local state machine reported a storage failure: the node has stopped
// applying commands and must be restarted (it then resumes from the last
// durably applied command, or from a snapshot).
var ErrStorageFailed = errors.New("daemon: state machine storage failure; node stopped applying commands")

// machineSM is what the daemon needs of the projections machine as a
// Raft state machine: *projections.Machine implements it.
type machineSM interface {
	raftnode.StateMachine[projections.Result]
	ApplyBatch(entries []projections.Entry) []projections.Result
}

var _ machineSM = (*projections.Machine)(nil)

// fatal reports whether a command result means the machine can no longer
// apply commands deterministically (projections.Machine.ApplyBatch).
func fatal(err error) bool {
	return err != nil && (errors.Is(err, projections.ErrStorage) || errors.Is(err, projections.ErrCorruptState))
}

// stateMachine drives a projections machine from Raft
// (raftnode.BatchStateMachine[projections.Result]): a whole Raft apply
// batch goes to Machine.ApplyBatch (one Pebble batch, unsynced: the Raft
// log is the durable copy, see projections "Durability of ApplyBatch"), converting
// []raftnode.Entry to []projections.Entry.
//
// It also latches storage failures. Once an applied command reports
// projections.ErrStorage (or ErrCorruptState), the machine did not record
// that command as applied, so applying any later command would skip it
// and diverge from the other replicas (raftnode.StateMachine: "an I/O
// error that prevents the commit must stop the process"). From then on
// the latch refuses every Apply/ApplyBatch without touching the machine
// (each result carries ErrStorageFailed wrapping projections.ErrStorage),
// and refuses Snapshot, since an image older than the Raft index it would
// be filed under would let Raft compact away commands the machine never
// applied. onFail is called once, with the first fatal error.
type stateMachine struct {
	m      machineSM
	onFail func(error)
	// onApplied, if set, sees the results of every applied batch, on
	// every node (it must not block).
	onApplied func([]projections.Result)

	mu     sync.Mutex
	failed error
}

var _ raftnode.BatchStateMachine[projections.Result] = (*stateMachine)(nil)

// fault returns the latched failure, or nil.
func (s *stateMachine) fault() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// latch records the first fatal error.
func (s *stateMachine) latch(err error) {
	s.mu.Lock()
	first := s.failed == nil
	if first {
		s.failed = fmt.Errorf("%w: %w", ErrStorageFailed, err)
	}
	s.mu.Unlock()
	if first && s.onFail != nil {
		s.onFail(err)
	}
}

// refused is the result of a command the latch refuses.
func (s *stateMachine) refused() projections.Result {
	return projections.Result{Err: fmt.Errorf("%w: %w", projections.ErrStorage, s.fault())}
}

// Apply implements raftnode.StateMachine.
func (s *stateMachine) Apply(index uint64, cmd []byte) projections.Result {
	if s.fault() != nil {
		return s.refused()
	}
	r := s.m.Apply(index, cmd)
	if fatal(r.Err) {
		s.latch(r.Err)
	}
	return r
}

// ApplyBatch implements raftnode.BatchStateMachine.
func (s *stateMachine) ApplyBatch(entries []raftnode.Entry) []projections.Result {
	out := make([]projections.Result, len(entries))
	if s.fault() != nil {
		for i := range out {
			out[i] = s.refused()
		}
		return out
	}
	pe := make([]projections.Entry, len(entries))
	for i, e := range entries {
		pe[i] = projections.Entry{Index: e.Index, Cmd: e.Cmd}
	}
	res := s.m.ApplyBatch(pe)
	for i := range res {
		if fatal(res[i].Err) {
			s.latch(res[i].Err)
			break
		}
	}
	if s.onApplied != nil {
		s.onApplied(res)
	}
	return res
}

// AppliedIndex implements raftnode.StateMachine.
func (s *stateMachine) AppliedIndex() uint64 { return s.m.AppliedIndex() }

// Snapshot implements raftnode.StateMachine; it fails once the latch is
// set.
func (s *stateMachine) Snapshot(w io.Writer) error {
	if err := s.fault(); err != nil {
		return err
	}
	return s.m.Snapshot(w)
}

// Restore implements raftnode.StateMachine. The latch stays set: the
// storage that failed is the storage being restored into.
func (s *stateMachine) Restore(r io.Reader) error { return s.m.Restore(r) }

// raftNode is the part of *raftnode.Node the provider and the fanout
// acker use.
type raftNode interface {
	Apply(ctx context.Context, cmd []byte) (projections.Result, error)
	ReadBarrier(ctx context.Context) error
}

// replicator is the provider's Raft (provider.Raft) and the fanout
// acker's Applier: the Raft node, timed (append latency), and refused
// once the local state machine failed, so that writes fail with
// provider.ErrUnavailable (HTTP 503) instead of being ordered by a node
// that can no longer apply them.
type replicator struct {
	node    raftNode
	sm      *stateMachine
	observe func(outcome string, d time.Duration)
}

// Apply outcomes (the label of mimi_raft_apply_duration_seconds).
const (
	outcomeApplied  = "applied"  // applied, no rejection
	outcomeRejected = "rejected" // applied as a rejection (Result.Err)
	outcomeError    = "error"    // not applied or fate unknown
	outcomeRefused  = "refused"  // refused by the storage-failure latch
)

// Apply implements provider.Raft and fanout.Applier.
func (r *replicator) Apply(ctx context.Context, cmd []byte) (projections.Result, error) {
	if err := r.sm.fault(); err != nil {
		r.observe(outcomeRefused, 0)
		return projections.Result{}, err
	}
	start := time.Now()
	res, err := r.node.Apply(ctx, cmd)
	outcome := outcomeApplied
	switch {
	case err != nil || fatal(res.Err):
		outcome = outcomeError
	case res.Err != nil:
		outcome = outcomeRejected
	}
	r.observe(outcome, time.Since(start))
	return res, err
}

// ReadBarrier implements provider.Raft. After a storage failure the local
// machine is behind Raft, so no barrier can make its reads current.
func (r *replicator) ReadBarrier(ctx context.Context) error {
	if err := r.sm.fault(); err != nil {
		return err
	}
	return r.node.ReadBarrier(ctx)
}
