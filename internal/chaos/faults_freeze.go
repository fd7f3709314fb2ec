package chaos

import (
	"context"
	"fmt"
	"time"
)

// Freeze is one SIGSTOP of a node, resumed with SIGCONT: the node keeps
// its connections open but answers nothing meanwhile.
type Freeze struct {
	Node, Domain string
	// WasLeader: the node was its cluster's Raft leader; Follower: a
	// follower provider's node, not a hub node.
	WasLeader, Follower bool
	// At is the time since the load started, Length how long the node
	// stayed frozen.
	At, Length time.Duration
	// NewLeader is the node seen leading the cluster while its frozen
	// leader was stopped (empty when none was, as in a freeze shorter
	// than an election), Elected how long after the freeze it was first
	// seen.
	NewLeader string
	Elected   time.Duration
	// StepDown is how long after resuming a replaced leader stopped
	// reporting itself leader of its old term.
	StepDown time.Duration
	// AckedDuring counts the messages acknowledged while the node was
	// frozen.
	AckedDuring int
	// CatchUp is how long after resuming the hub's fanout took to deliver
	// what it had queued before: to every follower provider after a hub
	// freeze, to the node's provider otherwise.
	CatchUp time.Duration
}

// freeze stops a node drawn as a kill's victim for Config.FreezeMin to
// FreezeMax and resumes it. While a cluster's leader is frozen the other
// nodes must elect another, and once resumed it must step down without
// two leaders of one term; then the node must be ready again and the
// hub's fanout must deliver its backlog.
func (f *faults) freeze(ctx context.Context) error {
	victim, leader, follower := f.victim(ctx)
	c := f.topo.Cluster(victim.Domain)
	fr := Freeze{Node: victim.ID, Domain: victim.Domain, WasLeader: leader != nil, Follower: follower, At: time.Since(f.start)}
	length := f.uniform(f.cfg.FreezeMin, f.cfg.FreezeMax)
	acked := f.acked()
	if err := victim.Proc.Freeze(); err != nil {
		return err
	}
	frozenAt := time.Now()
	// Resumed on every path, an error or the end of ctx included.
	defer func() { _ = victim.Proc.Thaw() }()
	var err error
	if fr.NewLeader, fr.Elected, err = f.holdWatching(ctx, c, victim, fr.WasLeader, frozenAt, length); err != nil {
		return err
	}
	if err := victim.Proc.Thaw(); err != nil {
		return err
	}
	fr.Length = time.Since(frozenAt)
	fr.AckedDuring = f.acked() - acked
	if fr.WasLeader {
		fr.StepDown = f.failedOver(ctx, c, victim, fr.NewLeader, fr.Length, fr.At, leader.GetTerm(), "frozen", "resuming from a freeze")
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	err = victim.Proc.WaitReady(rctx)
	rcancel()
	if err != nil {
		return fmt.Errorf("%w; log:\n%s", err, victim.Proc.LogTail(6000))
	}
	domains := []string{victim.Domain}
	if !follower {
		domains = []string{BDomain, CDomain}
	}
	fr.CatchUp = f.catchUp(ctx, domains)

	f.res.Freezes = append(f.res.Freezes, fr)
	if fr.WasLeader {
		f.res.LeaderFreezes++
	}
	if fr.Follower {
		f.res.FollowerFreezes++
	}
	f.logf("chaos: freeze %d: %s of %s (leader=%v follower=%v) at %s for %s; new leader %q after %s, old one stepped down %s after resuming; %d messages acknowledged meanwhile; fanout caught up %s after resuming; %d acknowledged so far",
		len(f.res.Freezes), fr.Node, fr.Domain, fr.WasLeader, fr.Follower, fr.At.Round(time.Millisecond), fr.Length.Round(time.Millisecond),
		fr.NewLeader, fr.Elected.Round(time.Millisecond), fr.StepDown.Round(time.Millisecond), fr.AckedDuring, fr.CatchUp.Round(time.Millisecond), f.acked())
	return nil
}

// stepDown waits until old, the former leader of term, resumed or healed
// (after names which in the report), no longer reports itself leader of
// that term, and returns how long that took. It reports a split brain if
// that takes stepDownBound.
func (f *faults) stepDown(ctx context.Context, c *Cluster, old *Node, term uint64, after string) time.Duration {
	began := time.Now()
	for time.Since(began) < stepDownBound && ctx.Err() == nil {
		if t, ok := f.leaders(ctx, c, nil)[old]; !ok || t > term {
			return time.Since(began)
		}
		sleep(ctx, 100*time.Millisecond)
	}
	if ctx.Err() == nil {
		f.report(Problem{Kind: ProblemSplitBrain,
			Detail: fmt.Sprintf("%s: %s still leader of term %d %s after %s, though another node was elected", c.Domain, old.ID, term, stepDownBound, after)})
	}
	return time.Since(began)
}
