package chaos

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// PartitionMode is what a Partition cuts.
type PartitionMode int

const (
	// BothWays cuts the links between the hub and a follower provider in
	// both directions, refused or black-holed.
	BothWays PartitionMode = iota
	// HubToFollower cuts only the hub's link to the follower: the hub's
	// /notify POSTs fail or hang, the follower's relayed submissions and
	// commits still reach the hub.
	HubToFollower
	// FollowerToHub cuts only the follower's link to the hub: its relayed
	// submissions fail or hang, the hub's /notify POSTs still arrive.
	FollowerToHub
	// LostAnswers loses answers on both links between the hub and a
	// follower (Cut AnswersBlackHoled or AnswersReset): requests on the
	// connections open when it begins reach the other provider, which
	// processes them, but their answers never come back, so the hub sends
	// its /notify bodies again and the follower relays its clients'
	// submissions again, with the same bytes, and each side must
	// deduplicate (draft-ralston-mimi-protocol-02, Sections 5.4 and 5.5).
	LostAnswers
	// RaftPeers cuts one node of a cluster, the hub a.example's or the
	// clustered follower b.example's, from its two peers
	// (Cluster.CutRaft), refused or black-holed, while the other
	// providers and its clients still reach it: a cut leader must be
	// replaced and step down, the writes the cut node forwarded to its
	// leader must end (the clients then send them again), and the cut
	// node must catch up after.
	RaftPeers
)

// String names the mode.
func (m PartitionMode) String() string {
	switch m {
	case BothWays:
		return "both-ways"
	case HubToFollower:
		return "hub-to-follower"
	case FollowerToHub:
		return "follower-to-hub"
	case LostAnswers:
		return "lost-answers"
	case RaftPeers:
		return "raft-peers"
	}
	return fmt.Sprintf("PartitionMode(%d)", int(m))
}

// MarshalText names the mode in JSON (tools/chaos -json).
func (m PartitionMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// partitionWeights are the odds of each mode in a partition turn;
// RaftPeers is drawn only when a cluster can be cut
// (Cluster.CanCutRaft). Lost answers weigh most: they are the only fault
// where a request is processed and its sender cannot know.
var partitionWeights = map[PartitionMode]int{BothWays: 2, HubToFollower: 1, FollowerToHub: 1, LostAnswers: 3, RaftPeers: 2}

// Partition is one cut of the network between the hub a.example and a
// follower provider, or inside the clustered follower, healed after a
// few seconds.
type Partition struct {
	// Mode is what was cut. Domain is the follower provider cut from the
	// hub (or, with RaftPeers, the provider, a.example or b.example, whose
	// node was cut from its peers), Cut how: Refused (connections reset) or BlackHoled
	// (connections hang), AnswersBlackHoled or AnswersReset with
	// LostAnswers.
	Mode   PartitionMode
	Domain string
	Cut    Cut
	// Node is the node cut from its peers (RaftPeers), WasLeader whether
	// it led its cluster then; NewLeader is the node seen leading the
	// cluster meanwhile (empty if none was), Elected how long after the
	// cut it was first seen, and StepDown how long after healing the
	// former leader stopped reporting itself leader of its old term.
	Node      string
	WasLeader bool
	NewLeader string
	Elected   time.Duration
	StepDown  time.Duration
	// At is the time since the load started, Length how long the cut
	// lasted.
	At, Length time.Duration
	// Resets counts the connections the cut reset, Stalls the transfers
	// it held, Lost the connections whose answers it dropped, over the
	// links it cut.
	Resets, Stalls, Lost int64
	// AckedDuring counts the messages acknowledged during the cut.
	AckedDuring int
	// CatchUp is how long after healing the hub's fanout took to deliver
	// what it had queued for Domain before.
	CatchUp time.Duration
}

// partition cuts, for Config.PartitionMin to PartitionMax, the links
// between the hub and b.example or c.example (a PartitionMode drawn by
// partitionWeights: both directions, one, or their answers only) or the
// Raft links of a node of the hub's or b.example's cluster, heals them,
// and waits for
// the hub's fanout to deliver the backlog: the /notify POSTs of the hub
// and the relayed submissions and commits of the follower's clients fail
// or time out meanwhile, or are processed without an answer, and are sent
// again (draft-ralston-mimi-protocol-02, Sections 5.3 to 5.5).
func (f *faults) partition(ctx context.Context) error {
	modes := []PartitionMode{BothWays, HubToFollower, FollowerToHub, LostAnswers}
	var cuttable []*Cluster
	for _, c := range f.topo.Clusters {
		if c.CanCutRaft() {
			cuttable = append(cuttable, c)
		}
	}
	if len(cuttable) > 0 {
		modes = append(modes, RaftPeers)
	}
	total := 0
	for _, m := range modes {
		total += partitionWeights[m]
	}
	p := Partition{At: time.Since(f.start)}
	r := f.rng.IntN(total)
	for _, m := range modes {
		if r < partitionWeights[m] {
			p.Mode = m
			break
		}
		r -= partitionWeights[m]
	}
	p.Domain = []string{BDomain, CDomain}[f.rng.IntN(2)]
	p.Cut = []Cut{Refused, BlackHoled}[f.rng.IntN(2)]
	var links []*Proxy
	switch p.Mode {
	case BothWays:
		links = []*Proxy{f.topo.Link(HubDomain, p.Domain), f.topo.Link(p.Domain, HubDomain)}
	case HubToFollower:
		links = []*Proxy{f.topo.Link(HubDomain, p.Domain)}
	case FollowerToHub:
		links = []*Proxy{f.topo.Link(p.Domain, HubDomain)}
	case LostAnswers:
		p.Cut = []Cut{AnswersBlackHoled, AnswersReset}[f.rng.IntN(2)]
		links = []*Proxy{f.topo.Link(HubDomain, p.Domain), f.topo.Link(p.Domain, HubDomain)}
	case RaftPeers:
		// Each cuttable cluster with equal odds: the hub's with odds 1/2
		// when b.example's can be cut too.
		return f.raftPartition(ctx, p, cuttable[f.rng.IntN(len(cuttable))])
	}
	for _, l := range links {
		p.Resets -= l.Resets.Load()
		p.Stalls -= l.Stalls.Load()
		p.Lost -= l.Lost.Load()
	}
	length := f.uniform(f.cfg.PartitionMin, f.cfg.PartitionMax)
	acked := f.acked()
	cutAt := time.Now()
	for _, l := range links {
		l.SetCut(p.Cut)
	}
	sleep(ctx, length)
	for _, l := range links {
		l.SetCut(Connected)
	}
	p.Length = time.Since(cutAt)
	p.AckedDuring = f.acked() - acked
	for _, l := range links {
		p.Resets += l.Resets.Load()
		p.Stalls += l.Stalls.Load()
		p.Lost += l.Lost.Load()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	p.CatchUp = f.catchUp(ctx, []string{p.Domain})
	f.record(p)
	return nil
}

// raftPartition cuts a node of c, the hub's or b.example's cluster, from
// its peers (drawn as a kill's victim in that cluster: its leader with
// Config.LeaderShare) and heals the cut, checking as a freeze does that a
// cut leader is replaced and steps down, then waits for the hub's fanout
// to deliver its backlog: to b.example after a cut of b.example's node,
// to every follower provider after a cut of a hub node (a cut hub leader
// stops running the fanout, its successor takes it over).
func (f *faults) raftPartition(ctx context.Context, p Partition, c *Cluster) error {
	p.Domain = c.Domain
	victim := c.Nodes[f.rng.IntN(len(c.Nodes))]
	leader, st := c.Leader(ctx)
	if leader != nil && f.rng.Float64() < f.cfg.LeaderShare {
		victim = leader
	}
	p.Node, p.WasLeader = victim.ID, leader == victim
	for _, n := range c.Nodes {
		p.Resets -= n.RaftProxy.Resets.Load()
		p.Stalls -= n.RaftProxy.Stalls.Load()
	}
	length := f.uniform(f.cfg.PartitionMin, f.cfg.PartitionMax)
	acked := f.acked()
	cutAt := time.Now()
	c.CutRaft(victim, p.Cut)
	// Healed on every path, the end of ctx included.
	defer c.CutRaft(victim, Connected)
	var err error
	if p.NewLeader, p.Elected, err = f.holdWatching(ctx, c, victim, p.WasLeader, cutAt, length); err != nil {
		return err
	}
	c.CutRaft(victim, Connected)
	p.Length = time.Since(cutAt)
	p.AckedDuring = f.acked() - acked
	for _, n := range c.Nodes {
		p.Resets += n.RaftProxy.Resets.Load()
		p.Stalls += n.RaftProxy.Stalls.Load()
	}
	if p.WasLeader {
		p.StepDown = f.failedOver(ctx, c, victim, p.NewLeader, p.Length, p.At, st.GetTerm(), "cut from its peers", "healing from a cut from its peers")
	}
	domains := []string{p.Domain}
	if c == f.topo.Hub() {
		domains = []string{BDomain, CDomain}
	}
	p.CatchUp = f.catchUp(ctx, domains)
	f.record(p)
	return nil
}

// record adds a partition to the Result and logs it.
func (f *faults) record(p Partition) {
	f.res.Partitions = append(f.res.Partitions, p)
	if p.Cut == BlackHoled {
		f.res.BlackHoles++
	}
	what := "a.example | " + p.Domain
	switch p.Mode {
	case HubToFollower:
		what = "a.example -> " + p.Domain
	case FollowerToHub:
		what = p.Domain + " -> a.example"
	case LostAnswers:
		what = "answers between a.example and " + p.Domain
	case RaftPeers:
		what = fmt.Sprintf("%s of %s | its peers (leader=false)", p.Node, p.Domain)
		if p.WasLeader {
			what = fmt.Sprintf("%s of %s | its peers (leader=true; new leader %q after %s, old one stepped down %s after healing)",
				p.Node, p.Domain, p.NewLeader, p.Elected.Round(time.Millisecond), p.StepDown.Round(time.Millisecond))
		}
	}
	f.logf("chaos: partition %d (%s): %s %s at %s for %s (%d connections reset, %d transfers held, %d connections lost answers); %d messages acknowledged meanwhile; fanout caught up %s after healing; %d acknowledged so far",
		len(f.res.Partitions), p.Mode, what, p.Cut, p.At.Round(time.Millisecond), p.Length.Round(time.Millisecond), p.Resets, p.Stalls, p.Lost,
		p.AckedDuring, p.CatchUp.Round(time.Millisecond), f.acked())
}

// partitionModes counts the partitions by mode for the summary, the
// RaftPeers cuts by cluster (raft-peers-a for a.example's, raft-peers-b
// for b.example's), such as "lost-answers 2, raft-peers-a 1,
// raft-peers-b 1".
func (r *Result) partitionModes() string {
	n := map[string]int{}
	var names []string
	for _, p := range slices.SortedFunc(slices.Values(r.Partitions), func(a, b Partition) int {
		return cmp.Or(cmp.Compare(a.Mode, b.Mode), strings.Compare(a.Domain, b.Domain))
	}) {
		name := p.Mode.String()
		if p.Mode == RaftPeers {
			label, _, _ := strings.Cut(p.Domain, ".")
			name += "-" + label
		}
		if n[name] == 0 {
			names = append(names, name)
		}
		n[name]++
	}
	var parts []string
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %d", name, n[name]))
	}
	return strings.Join(parts, ", ")
}
