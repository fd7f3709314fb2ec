package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
)

// Problems found while freezing nodes and partitioning providers.
const (
	// ProblemSplitBrain: two nodes of a cluster reported themselves
	// leader of the same Raft term, or a leader frozen or cut from its
	// peers that was replaced still reported itself leader of its old
	// term stepDownBound after it resumed or the cut healed.
	ProblemSplitBrain ProblemKind = "split-brain"
	// ProblemNoFailover: a cluster's leader stayed frozen or cut from its
	// peers for at least failoverBound and no other node of the cluster
	// became leader meanwhile.
	ProblemNoFailover ProblemKind = "no-failover"
	// ProblemBacklogStuck: after a frozen node resumed or a partition
	// healed, the hub's fanout did not deliver within catchUpBound what
	// it had queued for a follower provider before
	// (draft-ralston-mimi-protocol-02, Section 5.5).
	ProblemBacklogStuck ProblemKind = "fanout-backlog-stuck"
)

// Bounds of the fault checks. failoverBound is many election timeouts
// (500 ms); catchUpBound leaves the fanout's backoff several rounds after
// a partition healed (a peer that reaches the hub again cuts it short).
const (
	failoverBound = 4 * time.Second
	stepDownBound = 10 * time.Second
	catchUpBound  = 60 * time.Second
)

// faults runs the freezes and partitions of the chaos loop
// (Config.FreezeShare, Config.PartitionShare), records them in the Result
// and collects the problems they show.
type faults struct {
	cfg  *Config
	topo *Topology
	rng  *rand.Rand
	res  *Result
	logf func(format string, args ...any)
	// start is when the load started; acked returns the number of
	// messages acknowledged so far.
	start time.Time
	acked func() int
	// problems are the violations found (split brain, no failover, stuck
	// backlog), each once.
	problems []Problem
}

// report adds a problem unless the same was reported before (a split
// brain stays visible over several polls).
func (f *faults) report(p Problem) {
	if !slices.Contains(f.problems, p) {
		f.problems = append(f.problems, p)
	}
}

// turn draws what one turn of the chaos loop does: it freezes a node or
// partitions two providers and returns true, or returns false when the
// turn is a kill's.
func (f *faults) turn(ctx context.Context) (bool, error) {
	fs, ps := max(f.cfg.FreezeShare, 0), max(f.cfg.PartitionShare, 0)
	if fs == 0 && ps == 0 {
		return false, nil
	}
	switch r := f.rng.Float64(); {
	case r < fs:
		return true, f.freeze(ctx)
	case r < fs+ps:
		return true, f.partition(ctx)
	}
	return false, nil
}

// uniform draws a duration in [lo, hi).
func (f *faults) uniform(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(f.rng.Int64N(int64(hi-lo)))
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// victim draws a node as the chaos loop draws a kill's: a follower
// provider's with Config.FollowerShare, else a hub node; in a cluster its
// leader with Config.LeaderShare. It returns the node and, when the node
// is its cluster's leader, the leader's status.
func (f *faults) victim(ctx context.Context) (n *Node, leader *adminv1.ClusterStatus, follower bool) {
	nodes := f.topo.Hub().Nodes
	followers := f.topo.All()[len(nodes):]
	follower = len(followers) > 0 && f.rng.Float64() < f.cfg.FollowerShare
	if follower {
		nodes = followers
	}
	n = nodes[f.rng.IntN(len(nodes))]
	if c := f.topo.Cluster(n.Domain); c != nil {
		l, st := c.Leader(ctx)
		if l != nil && f.rng.Float64() < f.cfg.LeaderShare {
			n = l
		}
		if l == n {
			leader = st
		}
	}
	return n, leader, follower
}

// leaders asks every node of c but skip for its Raft state and returns
// the term of each that reports itself leader. Two leaders of one term
// are a split brain.
func (f *faults) leaders(ctx context.Context, c *Cluster, skip *Node) map[*Node]uint64 {
	out := map[*Node]uint64{}
	byTerm := map[uint64]*Node{}
	for _, n := range c.Nodes {
		if n == skip {
			continue
		}
		st, err := n.ClusterStatus(ctx)
		if err != nil || st.GetState() != "Leader" {
			continue
		}
		out[n] = st.GetTerm()
		if other := byTerm[st.GetTerm()]; other != nil {
			f.report(Problem{Kind: ProblemSplitBrain,
				Detail: fmt.Sprintf("%s: %s and %s both leader of term %d", c.Domain, other.ID, n.ID, st.GetTerm())})
		}
		byTerm[st.GetTerm()] = n
	}
	return out
}

// catchUp waits until the hub's fanout has delivered to each of the
// domains everything it had queued for it when catchUp was called, and
// returns how long that took. Past catchUpBound it reports a stuck
// backlog and returns the bound.
func (f *faults) catchUp(ctx context.Context, domains []string) time.Duration {
	began := time.Now()
	deadline := began.Add(catchUpBound)
	var target map[string]uint64
	var last []*adminv1.FanoutDestination
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if dests := f.fanoutStatus(ctx); dests != nil {
			last = dests
			if target == nil {
				target = map[string]uint64{}
				for _, d := range dests {
					if slices.Contains(domains, d.GetDestination()) {
						target[d.GetDestination()] = d.GetEnqueued()
					}
				}
			}
			done := true
			for _, d := range dests {
				if d.GetAcked() < target[d.GetDestination()] {
					done = false
				}
			}
			if done {
				return time.Since(began)
			}
		}
		sleep(ctx, 100*time.Millisecond)
	}
	if ctx.Err() != nil {
		return time.Since(began)
	}
	var state []string
	for _, d := range last {
		if slices.Contains(domains, d.GetDestination()) {
			state = append(state, fmt.Sprintf("%s acked %d of %d queued before (now %d; last error %q)",
				d.GetDestination(), d.GetAcked(), target[d.GetDestination()], d.GetEnqueued(), d.GetLastError()))
		}
	}
	if target == nil {
		state = append(state, "no hub leader answered FanoutStatus")
	}
	f.report(Problem{Kind: ProblemBacklogStuck,
		Detail: fmt.Sprintf("%s after the fault ended: %s", catchUpBound, strings.Join(state, "; "))})
	return catchUpBound
}

// fanoutStatus returns the hub leader's fanout destinations, or nil if
// no leader answered.
func (f *faults) fanoutStatus(ctx context.Context) []*adminv1.FanoutDestination {
	n, _ := f.topo.Hub().Leader(ctx)
	if n == nil {
		return nil
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := n.AdminAPI.FanoutStatus(fctx, connect.NewRequest(&adminv1.FanoutStatusRequest{}))
	if err != nil {
		return nil
	}
	if d := resp.Msg.GetDestinations(); d != nil {
		return d
	}
	return []*adminv1.FanoutDestination{}
}

// holdWatching waits until length after start, while victim, a node of
// c, is frozen or cut off; when it was the leader (watch), it notes the
// first other node seen as leader and how long after start.
func (f *faults) holdWatching(ctx context.Context, c *Cluster, victim *Node, watch bool, start time.Time, length time.Duration) (newLeader string, elected time.Duration, err error) {
	for left := length; left > 0; left = length - time.Since(start) {
		if watch && newLeader == "" {
			for n := range f.leaders(ctx, c, victim) {
				newLeader, elected = n.ID, time.Since(start)
			}
		}
		sleep(ctx, min(left, 250*time.Millisecond))
		if ctx.Err() != nil {
			return newLeader, elected, ctx.Err()
		}
	}
	return newLeader, elected, nil
}

// failedOver checks, once victim, the leader of c in term until it was
// frozen or cut off (how) for away at at, is back, that another node
// (newLeader) became leader meanwhile (ProblemNoFailover when none did
// within failoverBound), and returns how long victim took to step down
// after coming back (back names how; see stepDown), 0 without a new
// leader.
func (f *faults) failedOver(ctx context.Context, c *Cluster, victim *Node, newLeader string, away, at time.Duration, term uint64, how, back string) time.Duration {
	if newLeader == "" {
		if away >= failoverBound {
			f.report(Problem{Kind: ProblemNoFailover,
				Detail: fmt.Sprintf("%s: leader %s %s for %s at %s, no other node became leader", c.Domain, victim.ID, how, away.Round(time.Millisecond), at.Round(time.Millisecond))})
		}
		return 0
	}
	return f.stepDown(ctx, c, victim, term, back)
}
