package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// Housekeeping of the replicated state, run by the Raft leader:
//
//   - notify dedup pruning (draft-ralston-mimi-protocol-02, Section 5.5): a
//     follower remembers each FanoutMessage it took so that a hub's
//     re-send is acknowledged and ignored. A hub re-sends only until it
//     sees the 201, on a retry schedule capped at minutes (package
//     fanout), so entries older than a retention far beyond that are not
//     needed;
//   - expired KeyPackages (RFC 9420, Section 7.2; draft Section 5.2):
//     unclaimed KeyPackages past their not_after are never handed out, and
//     are withdrawn to reclaim their storage.
const (
	// DefaultNotifyRetention is how long a follower remembers a
	// FanoutMessage it took (Config.NotifyRetention).
	DefaultNotifyRetention = 30 * 24 * time.Hour
	// housekeepingInterval is the period of the housekeeping pass.
	housekeepingInterval = time.Hour
)

// pruneBatch is the most entries one pruning event removes (a variable for
// tests).
var pruneBatch uint32 = 10_000

// now is the daemon's clock (Config.Clock).
func (d *Daemon) now() time.Time {
	if d.cfg.Clock != nil {
		return d.cfg.Clock()
	}
	return time.Now()
}

// pruneWhile appends the event made by next while this node leads and
// stale reports that something is left to prune; it returns the number of
// events appended.
func (d *Daemon) pruneWhile(ctx context.Context, what string, stale func() (bool, error), next func() eventlog.Body) (int, error) {
	for n := 0; ; n++ {
		if !d.node.IsLeader() {
			return n, nil
		}
		more, err := stale()
		if err != nil || !more {
			return n, err
		}
		cmd, err := projections.EncodeCommand(&projections.Command{Ops: []projections.Op{
			projections.EventOp("", uint64(d.now().UnixMilli()), next()),
		}})
		if err != nil {
			return n, err
		}
		res, err := d.repl.Apply(ctx, cmd)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			return n, fmt.Errorf("daemon: %s: %w", what, err)
		}
	}
}

// pruneNotifyDedup forgets the notify dedup entries older than
// Config.NotifyRetention (eventlog.NotifyDedupPruned).
func (d *Daemon) pruneNotifyDedup(ctx context.Context) (int, error) {
	cutoff := uint64(d.now().Add(-time.Duration(d.cfg.NotifyRetention)).UnixMilli())
	return d.pruneWhile(ctx, "pruning the notify dedup set", func() (bool, error) {
		oldest, found, err := d.machine.OldestNotifyDedup()
		return found && oldest < cutoff, err
	}, func() eventlog.Body {
		return &eventlog.NotifyDedupPruned{OlderThan: cutoff, Limit: pruneBatch}
	})
}

// pruneExpiredKeyPackages withdraws the unclaimed KeyPackages whose
// lifetime ended (eventlog.KeyPackagesExpired).
func (d *Daemon) pruneExpiredKeyPackages(ctx context.Context) (int, error) {
	now := uint64(d.now().UnixMilli())
	return d.pruneWhile(ctx, "withdrawing expired KeyPackages", func() (bool, error) {
		notAfter, found, err := d.machine.EarliestKeyPackageExpiry()
		return found && now/1000 > notAfter, err
	}, func() eventlog.Body {
		return &eventlog.KeyPackagesExpired{Now: now, Limit: pruneBatch}
	})
}

// runHousekeeping runs the housekeeping passes every housekeepingInterval
// until ctx ends; failures are logged and retried at the next pass.
func (d *Daemon) runHousekeeping(ctx context.Context) {
	tick := time.NewTicker(housekeepingInterval)
	defer tick.Stop()
	passes := []struct {
		name string
		run  func(context.Context) (int, error)
	}{
		{"notify dedup pruning", d.pruneNotifyDedup},
		{"expired KeyPackage withdrawal", d.pruneExpiredKeyPackages},
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, p := range passes {
			n, err := p.run(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				d.log.Warn("housekeeping failed; retrying at the next pass", "pass", p.name, "err", err)
			case n > 0:
				d.log.Info("housekeeping", "pass", p.name, "events", n)
			}
		}
	}
}
