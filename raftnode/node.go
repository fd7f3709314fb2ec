package raftnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// DefaultMaxCommandSize is the default Config.MaxCommandSize.
const DefaultMaxCommandSize = 16 << 20

// maxResultSize bounds a forwarded result or error message.
const maxResultSize = 64 << 20

// retryInterval is how often leader-dependent operations re-check for a
// leader while one is being elected.
const retryInterval = 10 * time.Millisecond

// Peer names a cluster member (Raft paper, Section 6, cluster membership):
// its Raft server ID and its advertised address (host:port of its shared
// Raft/forwarding TLS port).
type Peer struct {
	ID   string
	Addr string
}

// Config configures a Node. Only DataDir is required for the embedded
// standalone default; a clustered node also needs ID, BindAddr and TLS.
//
// Standalone mode (TLS == nil): the node uses Raft's in-memory transport,
// opens no socket, always bootstraps itself as the single voter of a
// one-node cluster, and cannot add members (ErrStandalone). Clustered mode
// (TLS != nil): Raft and forwarding share one mutually authenticated TLS
// port at BindAddr.
type Config struct {
	// ID is the Raft server ID, unique in the cluster for all time.
	// Required with TLS; default "local" in standalone mode.
	ID string
	// DataDir holds the Raft log ("raft-log", Pebble) and snapshots
	// ("snapshots"). Required. The StateMachine's storage is separate.
	DataDir string
	// BindAddr is the TCP listen address, e.g. "0.0.0.0:7400" or
	// "127.0.0.1:0". Required with TLS.
	BindAddr string
	// AdvertiseAddr is the address peers dial; default the listener's
	// address (which must then not be unspecified).
	AdvertiseAddr string
	// TLS enables clustered mode; nil means standalone.
	TLS *TLSConfig
	// Bootstrap, in clustered mode, makes a node with no Raft state
	// bootstrap a new cluster whose voters are itself and Peers. Set it on
	// exactly one node of a new cluster (or on all with identical Peers);
	// other nodes join with the leader's AddVoter. Ignored once state
	// exists.
	Bootstrap bool
	// Peers are the initial voters besides this node, used with Bootstrap.
	Peers []Peer
	// DisableForwarding makes followers refuse Apply and ReadBarrier with
	// ErrNotLeader instead of forwarding them to the leader.
	DisableForwarding bool
	// MaxCommandSize bounds one command; default DefaultMaxCommandSize.
	MaxCommandSize int
	// OnNotice, if set, receives on the leader the payloads that any
	// node passes to NoticeLeader: hints that need no replication (for
	// example "this peer is reachable again"). It must not block.
	OnNotice func(payload []byte)

	// Raft timing (Raft paper, Section 5.2 and 9.3); zero means Raft's
	// default (1s, 1s, 500ms, 50ms).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration

	// Snapshotting and log compaction (Raft paper, Section 7); zero means
	// Raft's default (120s, 8192 entries, 10240 entries).
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotRetain is how many snapshots to keep on disk; default 2.
	SnapshotRetain int

	// Logger receives Raft's logs; default warnings and errors on stderr.
	Logger hclog.Logger
	// TuneRaft, if set, may adjust the raft.Config after it is filled in
	// from the fields above (e.g. MaxAppendEntries, BatchApplyCh).
	TuneRaft func(*raft.Config)
}

// Node is one member of a Raft-replicated state machine: it owns the Raft
// instance, its Pebble log store, its snapshot store and (in clustered
// mode) its mTLS listener. The StateMachine remains owned by the caller,
// who closes it after Shutdown. All methods are safe for concurrent use.
type Node[R any] struct {
	cfg    Config
	id     raft.ServerID
	addr   raft.ServerAddress
	sm     StateMachine[R]
	codec  ResultCodec[R]
	fsm    *fsm[R]
	raft   *raft.Raft
	logs   *LogStore
	trans  raft.Transport
	mux    *muxListener
	fwd    *forwardClient
	logger hclog.Logger

	leaders      *leaderWatch
	ready        chan struct{} // closed once raft is set
	closed       chan struct{}
	shutdownOnce sync.Once
	shutdownErr  error
}

// Open starts a node over sm, whose results are R (for example
// Open[projections.Result](cfg, machine, nil)). codec carries results of
// forwarded commands back to followers; nil means JSONCodec[R].
//
// On a restart, Raft entries at or below sm.AppliedIndex() are not applied
// again; if the latest Raft snapshot is newer than the state machine (a
// crash during snapshot installation) the snapshot is restored first.
func Open[R any](cfg Config, sm StateMachine[R], codec ResultCodec[R]) (_ *Node[R], err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("raftnode: Config.DataDir is required")
	}
	if sm == nil {
		return nil, errors.New("raftnode: state machine is nil")
	}
	if cfg.TLS != nil {
		if cfg.ID == "" || cfg.BindAddr == "" {
			return nil, errors.New("raftnode: clustered mode needs Config.ID and Config.BindAddr")
		}
		if err := cfg.TLS.validate(); err != nil {
			return nil, err
		}
	} else if cfg.ID == "" {
		cfg.ID = "local"
	}
	if cfg.MaxCommandSize <= 0 {
		cfg.MaxCommandSize = DefaultMaxCommandSize
	}
	if cfg.SnapshotRetain <= 0 {
		cfg.SnapshotRetain = 2
	}
	if codec == nil {
		codec = JSONCodec[R]{}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: os.Stderr})
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("raftnode: create data dir: %w", err)
	}

	n := &Node[R]{
		cfg:    cfg,
		id:     raft.ServerID(cfg.ID),
		sm:     sm,
		codec:  codec,
		logger: logger,
		ready:  make(chan struct{}),
		closed: make(chan struct{}),
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	n.logs, err = OpenLogStore(filepath.Join(cfg.DataDir, "raft-log"))
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = n.logs.Close() })
	cache, err := raft.NewLogCache(1024, n.logs)
	if err != nil {
		return nil, fmt.Errorf("raftnode: log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.SnapshotRetain, logger.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("raftnode: snapshot store: %w", err)
	}

	if cfg.TLS == nil {
		var inmem *raft.InmemTransport
		n.addr, inmem = raft.NewInmemTransport(raft.ServerAddress(cfg.ID))
		n.trans = inmem
		cleanup = append(cleanup, func() { _ = inmem.Close() })
	} else {
		n.fwd = newForwardClient(cfg.TLS)
		n.mux, err = newMuxListener(cfg.BindAddr, cfg.AdvertiseAddr, cfg.TLS, n.serveForward)
		if err != nil {
			return nil, err
		}
		nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  &streamLayer{m: n.mux},
			MaxPool: 3,
			Timeout: 10 * time.Second,
			Logger:  logger.Named("transport"),
		})
		n.trans = nt
		n.addr = nt.LocalAddr()
		cleanup = append(cleanup, func() {
			close(n.closed) // releases forwarding handlers waiting for ready
			_ = nt.Close()
			n.mux.wait()
			n.fwd.close()
		})
	}

	rc := raft.DefaultConfig()
	rc.LocalID = n.id
	rc.Logger = logger
	setDur := func(dst *time.Duration, v time.Duration) {
		if v > 0 {
			*dst = v
		}
	}
	setDur(&rc.HeartbeatTimeout, cfg.HeartbeatTimeout)
	setDur(&rc.ElectionTimeout, cfg.ElectionTimeout)
	setDur(&rc.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)
	setDur(&rc.CommitTimeout, cfg.CommitTimeout)
	setDur(&rc.SnapshotInterval, cfg.SnapshotInterval)
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	// The state machine is durable: restoring the latest snapshot on start
	// is needed only when the snapshot is newer than the machine.
	metas, err := snaps.List()
	if err != nil {
		return nil, fmt.Errorf("raftnode: list snapshots: %w", err)
	}
	rc.NoSnapshotRestoreOnStart = len(metas) == 0 || metas[0].Index <= sm.AppliedIndex()
	if cfg.TuneRaft != nil {
		cfg.TuneRaft(rc)
	}
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("raftnode: raft config: %w", err)
	}

	hasState, err := raft.HasExistingState(cache, n.logs, snaps)
	if err != nil {
		return nil, fmt.Errorf("raftnode: inspect raft state: %w", err)
	}

	n.fsm = newFSM(sm)
	r, err := raft.NewRaft(rc, n.fsm.raftFSM(), cache, n.logs, snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("raftnode: start raft: %w", err)
	}
	n.raft = r
	n.leaders = newLeaderWatch()
	stopObserving := observeLeaders(r, n.leaders, n.closed)
	close(n.ready)
	cleanup = append(cleanup, func() { stopObserving(); _ = r.Shutdown().Error() })

	if !hasState && (cfg.TLS == nil || cfg.Bootstrap) {
		servers := []raft.Server{{Suffrage: raft.Voter, ID: n.id, Address: n.addr}}
		if cfg.TLS != nil {
			for _, p := range cfg.Peers {
				if raft.ServerID(p.ID) == n.id {
					continue
				}
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
			}
		}
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return nil, fmt.Errorf("raftnode: bootstrap: %w", err)
		}
	}
	return n, nil
}

// ID returns this node's Raft server ID.
func (n *Node[R]) ID() string { return string(n.id) }

// Addr returns this node's advertised Raft address ("local"-like in
// standalone mode).
func (n *Node[R]) Addr() string { return string(n.addr) }

// Raft exposes the underlying raft.Raft for operations not wrapped here.
func (n *Node[R]) Raft() *raft.Raft { return n.raft }

// IsLeader reports whether this node currently believes it is the leader.
func (n *Node[R]) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader's address and ID as known locally;
// both are empty if no leader is known (Raft paper, Section 5.2).
func (n *Node[R]) Leader() (addr, id string) {
	a, i := n.raft.LeaderWithID()
	return string(a), string(i)
}

// AppliedIndex returns the index of the last entry applied to the local
// state machine.
func (n *Node[R]) AppliedIndex() uint64 { return n.fsm.applied.Load() }

// Restores returns how many times the local state machine was restored
// from a snapshot since Open (diagnostics).
func (n *Node[R]) Restores() uint64 { return n.fsm.restores.Load() }

func (n *Node[R]) isClosed() bool {
	select {
	case <-n.closed:
		return true
	default:
		return false
	}
}

// waitRetry sleeps before re-routing a leader-dependent operation.
func (n *Node[R]) waitRetry(ctx context.Context) error {
	t := time.NewTimer(retryInterval)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-n.closed:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
	}
}

// errRetry marks failures after which the operation was certainly not
// performed and may be re-routed (not leader, leader unreachable).
var errRetry = errors.New("raftnode: retry")

// Apply replicates cmd through the Raft log and returns the state machine's
// result once the entry is committed and applied (Raft paper, Section 5.3).
//
// On the leader the command is appended locally. On a follower it is
// forwarded over the cluster's mTLS port to the leader (re-routing while a
// leader is being elected), unless Config.DisableForwarding is set, in which
// case ErrNotLeader is returned once a leader is known; a forwarded Apply
// returns once this node has applied the entry too, so that reads on the
// node that took a write see it (read your writes). The call waits for
// a leader until ctx ends (ErrNoLeader). When the context ends after the
// command was submitted, the error wraps ErrOutcomeUnknown.
func (n *Node[R]) Apply(ctx context.Context, cmd []byte) (R, error) {
	var zero R
	if len(cmd) > n.cfg.MaxCommandSize {
		return zero, fmt.Errorf("%w: %d > %d bytes", ErrCommandTooLarge, len(cmd), n.cfg.MaxCommandSize)
	}
	for {
		if n.isClosed() {
			return zero, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return zero, fmt.Errorf("raftnode: apply: %w", err)
		}
		var (
			res R
			err error
		)
		if n.raft.State() == raft.Leader {
			res, _, err = n.applyOnLeader(ctx, cmd)
		} else {
			addr, id := n.raft.LeaderWithID()
			switch {
			case addr == "" || n.mux == nil:
				err = errRetry
			case n.cfg.DisableForwarding:
				return zero, ErrNotLeader{LeaderAddr: string(addr), LeaderID: string(id)}
			default:
				res, err = n.forwardApply(ctx, string(addr), cmd)
			}
		}
		if !errors.Is(err, errRetry) {
			return res, err
		}
		if werr := n.waitRetry(ctx); werr != nil {
			return zero, werr
		}
	}
}

// waitFuture waits for f or ctx; it reports whether f completed.
func waitFuture(ctx context.Context, f raft.Future) (completed bool, err error) {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return true, err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func timeoutOf(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 0
}

// classify maps raft errors of a submitted operation.
func classify(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %w", errRetry, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrClosed, ErrOutcomeUnknown)
	default:
		return fmt.Errorf("raftnode: %w", err)
	}
}

// applyOnLeader appends cmd on this node, which must be the leader, and
// returns the result and the entry's index. errRetry means not applied.
func (n *Node[R]) applyOnLeader(ctx context.Context, cmd []byte) (R, uint64, error) {
	var zero R
	f := n.raft.Apply(cmd, timeoutOf(ctx))
	completed, err := waitFuture(ctx, f)
	if !completed {
		return zero, 0, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	if err != nil {
		return zero, 0, classify(err)
	}
	resp := f.Response()
	if resp == nil {
		return zero, f.Index(), nil
	}
	r, ok := resp.(R)
	if !ok {
		return zero, f.Index(), fmt.Errorf("raftnode: state machine returned %T", resp)
	}
	return r, f.Index(), nil
}

// barrierOnLeader waits until every entry committed before the call is
// applied locally, and returns the local applied index.
func (n *Node[R]) barrierOnLeader(ctx context.Context) (uint64, error) {
	f := n.raft.Barrier(timeoutOf(ctx))
	completed, err := waitFuture(ctx, f)
	if !completed {
		return 0, fmt.Errorf("raftnode: barrier: %w", err)
	}
	if err != nil {
		return 0, classify(err)
	}
	return n.fsm.applied.Load(), nil
}

// ReadBarrier makes a subsequent read of the local state machine
// linearizable: it returns once the local state machine has applied every
// command committed before the call (Raft paper, Section 8: the leader
// commits an entry of its term to confirm leadership and the commit
// index). On a follower the barrier is run by the leader over the
// forwarding channel and the follower then waits to catch up to the
// leader's applied index; with DisableForwarding it returns ErrNotLeader.
func (n *Node[R]) ReadBarrier(ctx context.Context) error {
	for {
		if n.isClosed() {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("raftnode: read barrier: %w", err)
		}
		var err error
		if n.raft.State() == raft.Leader {
			_, err = n.barrierOnLeader(ctx)
		} else {
			addr, id := n.raft.LeaderWithID()
			switch {
			case addr == "" || n.mux == nil:
				err = errRetry
			case n.cfg.DisableForwarding:
				return ErrNotLeader{LeaderAddr: string(addr), LeaderID: string(id)}
			default:
				var idx uint64
				idx, err = n.forwardBarrier(ctx, string(addr))
				if err == nil {
					return n.WaitApplied(ctx, idx)
				}
			}
		}
		if !errors.Is(err, errRetry) {
			return err
		}
		if werr := n.waitRetry(ctx); werr != nil {
			return werr
		}
	}
}

// WaitApplied blocks until the local state machine has applied the
// command at index (or a later one), or ctx ends. index should be a command
// index (as reported in results or by AppliedIndex): Raft's internal
// entries do not advance the state machine.
func (n *Node[R]) WaitApplied(ctx context.Context, index uint64) error {
	for {
		if n.fsm.applied.Load() >= index {
			return nil
		}
		ch := n.fsm.waitChan()
		if n.fsm.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-n.closed:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("raftnode: wait for index %d: %w", index, ctx.Err())
		}
	}
}

// membership runs a configuration change on the leader (Raft paper,
// Section 6; hashicorp/raft applies one server change at a time).
func (n *Node[R]) membership(ctx context.Context, op func(timeout time.Duration) raft.IndexFuture) error {
	if n.mux == nil {
		return ErrStandalone
	}
	if n.raft.State() != raft.Leader {
		addr, id := n.raft.LeaderWithID()
		return ErrNotLeader{LeaderAddr: string(addr), LeaderID: string(id)}
	}
	completed, err := waitFuture(ctx, op(timeoutOf(ctx)))
	if !completed {
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	if err != nil {
		return classify(err)
	}
	return nil
}

// AddVoter adds (or updates the address of) a voting member; it must be
// called on the leader. The new server catches up through log replication
// or snapshot installation.
func (n *Node[R]) AddVoter(ctx context.Context, id, addr string) error {
	return n.membership(ctx, func(t time.Duration) raft.IndexFuture {
		return n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, t)
	})
}

// RemoveServer removes a member; it must be called on the leader. A leader
// removing itself steps down.
func (n *Node[R]) RemoveServer(ctx context.Context, id string) error {
	return n.membership(ctx, func(t time.Duration) raft.IndexFuture {
		return n.raft.RemoveServer(raft.ServerID(id), 0, t)
	})
}

// Snapshot forces a Raft snapshot of the state machine now, followed by
// log compaction down to TrailingLogs entries (Raft paper, Section 7).
func (n *Node[R]) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("raftnode: snapshot: %w", err)
	}
	return nil
}

// ServerInfo describes one member of the current configuration (Raft
// paper, Section 6).
type ServerInfo struct {
	ID       string
	Addr     string
	Suffrage string // "Voter", "Nonvoter" or "Staging"
}

// Status is an administrative view of a node: its Raft persistent and
// volatile state (Raft paper, Figure 2) and the cluster configuration
// (Section 6).
type Status struct {
	ID    string
	Addr  string
	State string // "Follower", "Candidate", "Leader" or "Shutdown"
	Term  uint64
	// LeaderID and LeaderAddr are empty if no leader is known.
	LeaderID   string
	LeaderAddr string
	// CommitIndex is the highest entry known committed; AppliedIndex the
	// highest Raft has dispatched for application; StateMachineIndex the
	// highest command applied to the state machine.
	CommitIndex       uint64
	AppliedIndex      uint64
	StateMachineIndex uint64
	LastLogIndex      uint64
	LastSnapshotIndex uint64
	// LastContact is the last time the leader was heard from (followers);
	// zero if never.
	LastContact time.Time
	Servers     []ServerInfo
	// Raw is hashicorp/raft's Stats() map, for anything not above.
	Raw map[string]string
}

// Status returns the node's current Raft status.
func (n *Node[R]) Status() Status {
	la, li := n.raft.LeaderWithID()
	st := Status{
		ID:                string(n.id),
		Addr:              string(n.addr),
		State:             n.raft.State().String(),
		Term:              n.raft.CurrentTerm(),
		LeaderID:          string(li),
		LeaderAddr:        string(la),
		CommitIndex:       n.raft.CommitIndex(),
		AppliedIndex:      n.raft.AppliedIndex(),
		StateMachineIndex: n.fsm.applied.Load(),
		LastLogIndex:      n.raft.LastIndex(),
		LastContact:       n.raft.LastContact(),
		Raw:               n.raft.Stats(),
	}
	st.LastSnapshotIndex, _ = strconv.ParseUint(st.Raw["last_snapshot_index"], 10, 64)
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Servers = append(st.Servers, ServerInfo{ID: string(s.ID), Addr: string(s.Address), Suffrage: s.Suffrage.String()})
		}
	}
	return st
}

// Shutdown stops the node without leaving the cluster: Raft stops, the
// listener and all connections close, and the log store closes. The state
// machine is not used after Shutdown returns; closing it is the caller's
// job. Idempotent.
func (n *Node[R]) Shutdown() error {
	n.shutdownOnce.Do(func() {
		close(n.closed)
		var errs []error
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raftnode: raft shutdown: %w", err))
		}
		if c, ok := n.trans.(raft.WithClose); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("raftnode: transport close: %w", err))
			}
		}
		if n.mux != nil {
			_ = n.mux.close()
			n.mux.wait()
			n.fwd.close()
		}
		if err := n.logs.Close(); err != nil {
			errs = append(errs, err)
		}
		n.shutdownErr = errors.Join(errs...)
	})
	return n.shutdownErr
}
