package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// Notify dedup pruning (draft-ralston-mimi-protocol-02, Section 5.5): a
// follower remembers each FanoutMessage it took so that a hub's re-send is
// acknowledged and ignored. A hub re-sends only until it sees the 201, on a
// retry schedule capped at minutes (package fanout), so entries older than
// a retention far beyond that are not needed.
const (
	// DefaultNotifyRetention is how long a follower remembers a
	// FanoutMessage it took (Config.NotifyRetention).
	DefaultNotifyRetention = 30 * 24 * time.Hour
	// notifyPruneInterval is the period of the pruning pass on the leader.
	notifyPruneInterval = time.Hour
)

// notifyPruneBatch is the most entries one NotifyDedupPruned event
// forgets (a variable for tests).
var notifyPruneBatch uint32 = 10_000

// now is the daemon's clock (Config.Clock).
func (d *Daemon) now() time.Time {
	if d.cfg.Clock != nil {
		return d.cfg.Clock()
	}
	return time.Now()
}

// pruneNotifyDedup forgets, on the Raft leader, the notify dedup entries
// older than the retention: it appends NotifyDedupPruned events of at
// most notifyPruneBatch entries while the oldest entry is older than the
// cutoff. It returns the number of events appended.
func (d *Daemon) pruneNotifyDedup(ctx context.Context) (int, error) {
	if !d.node.IsLeader() {
		return 0, nil
	}
	now := d.now()
	cutoff := uint64(now.Add(-time.Duration(d.cfg.NotifyRetention)).UnixMilli())
	for n := 0; ; n++ {
		oldest, found, err := d.machine.OldestNotifyDedup()
		if err != nil || !found || oldest >= cutoff {
			return n, err
		}
		cmd, err := projections.EncodeCommand(&projections.Command{Ops: []projections.Op{
			projections.EventOp("", uint64(now.UnixMilli()), &eventlog.NotifyDedupPruned{OlderThan: cutoff, Limit: notifyPruneBatch}),
		}})
		if err != nil {
			return n, err
		}
		res, err := d.repl.Apply(ctx, cmd)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			return n, fmt.Errorf("daemon: pruning the notify dedup set: %w", err)
		}
	}
}

// runNotifyPruner runs pruneNotifyDedup every notifyPruneInterval until ctx
// ends; failures are logged and retried at the next pass.
func (d *Daemon) runNotifyPruner(ctx context.Context) {
	tick := time.NewTicker(notifyPruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, err := d.pruneNotifyDedup(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Warn("notify dedup pruning failed; retrying at the next pass", "err", err)
		case n > 0:
			d.log.Info("pruned the notify dedup set", "events", n, "retention", time.Duration(d.cfg.NotifyRetention))
		}
	}
}
