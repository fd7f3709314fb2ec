package admin

import (
	"context"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/raftnode"
)

// State is the replicated provider state the service inspects: rooms
// (draft-ralston-mimi-protocol-02, Sections 4.3.1 and 6.1), the event log
// and the fanout cursors (Section 5.5). *projections.Machine implements it.
type State interface {
	// Rooms returns every room ID, sorted.
	Rooms() ([]string, error)
	// Room returns a room with its latest GroupInfo and ratchet tree, or
	// an error wrapping projections.ErrNoSuchRoom.
	Room(id string) (*projections.Room, error)
	// RoomProposals returns the proposals cached for the room's epoch.
	RoomProposals(id string) ([]projections.Proposal, error)
	// Events returns up to limit events from global sequence number from.
	Events(from uint64, limit int) ([]eventlog.Event, error)
	// RoomEvents returns up to limit events of room from room sequence
	// number from.
	RoomEvents(room string, from uint64, limit int) ([]eventlog.Event, error)
	// LogHead returns the last sequence number and chain hash.
	LogHead() (eventlog.Head, error)
	// FanoutDestinations lists every fanout queue with its cursor.
	FanoutDestinations() ([]projections.Destination, error)
}

// Auditor runs the store's own integrity checks. *projections.Machine
// implements it.
type Auditor interface {
	// Audit walks the log (eventlog.Verify), rebuilds the projections from
	// it in scratchDir (which must not exist) and compares digests.
	Audit(scratchDir string) (*projections.AuditReport, error)
	// VerifyLog runs only the log integrity walk.
	VerifyLog() (*eventlog.Report, error)
}

// Cluster is the Raft node (Raft paper, Sections 5 and 6).
// *raftnode.Node[projections.Result] implements it.
type Cluster interface {
	Status() raftnode.Status
	AddVoter(ctx context.Context, id, addr string) error
	RemoveServer(ctx context.Context, id string) error
}

// AppliedWaiter wakes StreamEvents followers when commands are applied.
// *raftnode.Node[projections.Result] implements it.
type AppliedWaiter interface {
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
}

// FanoutStatusSource is what the fanout worker reports about its delivery
// attempts per destination provider (draft-ralston-mimi-protocol-02,
// Section 5.5). The provider adapts the worker to it.
type FanoutStatusSource interface {
	Status() []FanoutDestinationStatus
}

// FanoutDestinationStatus is the fanout worker's view of one destination.
// Fields the worker does not track stay zero. Enqueued and Acked, when
// non-zero, override nothing: the replicated cursor is authoritative and
// they are used only for destinations the log does not know yet.
type FanoutDestinationStatus struct {
	Destination string
	Enqueued    uint64
	Acked       uint64
	// LastError is the error of the latest failed attempt, empty after a
	// success.
	LastError           string
	LastAttempt         time.Time
	LastSuccess         time.Time
	NextRetry           time.Time
	ConsecutiveFailures uint32
}

// Backend is everything the service reads from. State is required; a nil
// Auditor makes ReplayVerify run only the signature re-verification, a nil
// Cluster makes the cluster calls fail with connect.CodeUnimplemented, a
// nil Applied makes followers poll, and a nil Fanout reports the
// replicated cursors only.
type Backend struct {
	State   State
	Auditor Auditor
	Cluster Cluster
	Applied AppliedWaiter
	Fanout  FanoutStatusSource
}

// Compile-time checks that the production types are backends as they are.
var (
	_ State         = (*projections.Machine)(nil)
	_ Auditor       = (*projections.Machine)(nil)
	_ Cluster       = (*raftnode.Node[projections.Result])(nil)
	_ AppliedWaiter = (*raftnode.Node[projections.Result])(nil)
)

// ForNode returns the Backend of a provider node: its projections.Machine
// and the raftnode.Node replicating it (nil for none), with an optional
// fanout worker status.
func ForNode(m *projections.Machine, n *raftnode.Node[projections.Result], fanout FanoutStatusSource) Backend {
	b := Backend{State: m, Auditor: m, Fanout: fanout}
	if n != nil {
		b.Cluster, b.Applied = n, n
	}
	return b
}
