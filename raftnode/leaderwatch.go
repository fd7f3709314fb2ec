package raftnode

import (
	"context"
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

// errLeaderMoved ends a forwarded request whose target is no longer the
// leader this node knows (see whileLeader).
var errLeaderMoved = errors.New("raftnode: the leader changed while the request was in flight")

// leaderWatch wakes waiters whenever the leader known to this node
// changes (hashicorp/raft's LeaderObservation; Raft paper, Section 5.2).
type leaderWatch struct {
	mu sync.Mutex
	ch chan struct{}
}

func newLeaderWatch() *leaderWatch { return &leaderWatch{ch: make(chan struct{})} }

// changed returns a channel closed at the next leader change.
func (w *leaderWatch) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

func (w *leaderWatch) notify() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}

// observeLeaders feeds w from r's leader observations until closed is
// closed; the returned function deregisters the observer.
func observeLeaders(r *raft.Raft, w *leaderWatch, closed <-chan struct{}) func() {
	obs := make(chan raft.Observation, 8)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(o)
	go func() {
		for {
			select {
			case <-obs:
				w.notify()
			case <-closed:
				return
			}
		}
	}()
	return func() { r.DeregisterObserver(o) }
}

// whileLeader returns a context derived from ctx that also ends, with
// cause errLeaderMoved, once this node knows a leader other than addr or
// is the leader itself. A request forwarded to addr is then not worth
// waiting for: a leader that froze or was cut off keeps its connections
// open but answers nothing, while the cluster already elected another
// (Raft paper, Section 5.2). The caller must call the returned function.
func (n *Node[R]) whileLeader(ctx context.Context, addr string) (context.Context, func()) {
	if n.leaders == nil {
		return ctx, func() {} // no Raft to observe (a bare Node in the forwarding tests)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		for {
			ch := n.leaders.changed()
			if a, _ := n.raft.LeaderWithID(); (a != "" && string(a) != addr) || n.IsLeader() {
				cancel(errLeaderMoved)
				return
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, func() { cancel(nil) }
}
