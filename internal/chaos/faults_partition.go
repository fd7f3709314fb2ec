package chaos

import (
	"context"
	"time"
)

// Partition is one cut of the network between the hub a.example and a
// follower provider, both directions, healed after a few seconds.
type Partition struct {
	// Domain is the follower provider cut from the hub, Cut how: Refused
	// (connections reset) or BlackHoled (connections hang).
	Domain string
	Cut    Cut
	// At is the time since the load started, Length how long the cut
	// lasted.
	At, Length time.Duration
	// Resets counts the connections the cut reset, Stalls the transfers
	// it held, over both directions.
	Resets, Stalls int64
	// AckedDuring counts the messages acknowledged during the cut.
	AckedDuring int
	// CatchUp is how long after healing the hub's fanout took to deliver
	// what it had queued for Domain before.
	CatchUp time.Duration
}

// partition cuts the links between the hub and b.example or c.example in
// both directions, refused or black-holed with equal odds, for
// Config.PartitionMin to PartitionMax, heals them, and waits for the
// hub's fanout to deliver the backlog: the /notify POSTs of the hub and
// the relayed submissions and commits of the follower's clients fail or
// time out meanwhile and are sent again
// (draft-ralston-mimi-protocol-02, Sections 5.3 to 5.5).
func (f *faults) partition(ctx context.Context) error {
	p := Partition{Domain: []string{BDomain, CDomain}[f.rng.IntN(2)], Cut: Refused, At: time.Since(f.start)}
	if f.rng.IntN(2) == 1 {
		p.Cut = BlackHoled
	}
	links := []*Proxy{f.topo.Link(HubDomain, p.Domain), f.topo.Link(p.Domain, HubDomain)}
	for _, l := range links {
		p.Resets -= l.Resets.Load()
		p.Stalls -= l.Stalls.Load()
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
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	p.CatchUp = f.catchUp(ctx, []string{p.Domain})

	f.res.Partitions = append(f.res.Partitions, p)
	if p.Cut == BlackHoled {
		f.res.BlackHoles++
	}
	f.logf("chaos: partition %d: a.example | %s %s at %s for %s (%d connections reset, %d transfers held); %d messages acknowledged meanwhile; fanout caught up %s after healing; %d acknowledged so far",
		len(f.res.Partitions), p.Domain, p.Cut, p.At.Round(time.Millisecond), p.Length.Round(time.Millisecond), p.Resets, p.Stalls,
		p.AckedDuring, p.CatchUp.Round(time.Millisecond), f.acked())
	return nil
}
