package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/projections"
)

// MachineStore is the production Store: the fanout queues of a
// projections.Machine (draft-ralston-mimi-protocol-02, Section 5.5).
type MachineStore struct {
	m *projections.Machine
}

// NewMachineStore returns a Store reading m.
func NewMachineStore(m *projections.Machine) *MachineStore { return &MachineStore{m: m} }

// Destinations implements Store (draft-ralston-mimi-protocol-02, Section 5.5).
func (s *MachineStore) Destinations() ([]projections.Destination, error) {
	return s.m.FanoutDestinations()
}

// Cursor implements Store (draft-ralston-mimi-protocol-02, Section 5.5).
func (s *MachineStore) Cursor(dest string) (projections.Cursor, error) { return s.m.FanoutCursor(dest) }

// Pending implements Store (draft-ralston-mimi-protocol-02, Section 5.5).
func (s *MachineStore) Pending(dest string, limit int) ([]projections.Delivery, error) {
	return s.m.FanoutPending(dest, limit)
}

// Payload implements Store. A Welcome (eventlog.PartWelcome of a
// CommitAccepted event) comes with the ratchet tree of the epoch its commit
// created, the CommitAccepted event's RatchetTree, which the Welcome's
// FanoutMessage carries in its RatchetTreeOption
// (draft-ralston-mimi-protocol-02, Section 5.5).
func (s *MachineStore) Payload(d projections.Delivery) (Payload, error) {
	r, err := s.m.Resolve(d)
	if err != nil {
		return Payload{}, err
	}
	if d.Part == eventlog.PartWelcome && r.RatchetTree == nil {
		return Payload{}, fmt.Errorf("%w: Welcome delivery refers to a %s event", ErrPermanent, r.Source)
	}
	return Payload{Message: r.Message, RatchetTree: r.RatchetTree}, nil
}

// Applier replicates a projections command through Raft and returns its
// result; *raftnode.Node[projections.Result] implements it. NewRaftAcker
// uses it to append FanoutDelivered (draft-ralston-mimi-protocol-02,
// Section 5.5).
type Applier interface {
	Apply(ctx context.Context, cmd []byte) (projections.Result, error)
}

// RaftAcker is the production Acker: it appends an eventlog.FanoutDelivered
// event through Raft (draft-ralston-mimi-protocol-02, Section 5.5), so
// every replica's cursor advances and a new leader resumes after it.
type RaftAcker struct {
	node Applier
	now  func() time.Time
}

// NewRaftAcker returns an Acker applying commands through node.
func NewRaftAcker(node Applier) *RaftAcker { return &RaftAcker{node: node, now: time.Now} }

// Ack implements Acker. An acknowledgement the cursor has already reached
// (projections.ErrStaleAck: another leader acknowledged the same range)
// counts as success.
func (a *RaftAcker) Ack(ctx context.Context, dest string, upTo uint64) error {
	cmd, err := projections.EncodeCommand(&projections.Command{Ops: []projections.Op{
		projections.EventOp("", uint64(a.now().UnixMilli()), &eventlog.FanoutDelivered{Destination: dest, UpTo: upTo}),
	}})
	if err != nil {
		return err
	}
	res, err := a.node.Apply(ctx, cmd)
	if err != nil {
		return fmt.Errorf("fanout: replicate FanoutDelivered(%s, %d): %w", dest, upTo, err)
	}
	if res.Err != nil && !errors.Is(res.Err, projections.ErrStaleAck) {
		return fmt.Errorf("fanout: FanoutDelivered(%s, %d) rejected: %w", dest, upTo, res.Err)
	}
	return nil
}

// Poster sends a MIMI POST (draft-ralston-mimi-protocol-02, Sections 4.1
// and 5); *transport.Client implements it.
type Poster interface {
	Post(ctx context.Context, target string, ep transport.Endpoint, id mimi.URI, body []byte) (*transport.Response, error)
}

// TransportSender is the production Sender: POST /notify/{roomId} over
// the provider-to-provider transport (draft-ralston-mimi-protocol-02,
// Sections 4.1 and 5.5).
type TransportSender struct {
	c Poster
}

// NewTransportSender returns a Sender posting with c.
func NewTransportSender(c Poster) *TransportSender { return &TransportSender{c: c} }

// Send implements Sender. The room must be a room URI (mimi://hub/r/id)
// and dest a provider domain whose directory lists endpoints on it;
// otherwise it fails with ErrPermanent.
func (s *TransportSender) Send(ctx context.Context, dest, room string, body []byte) (SendResult, error) {
	id, err := mimi.ParseURIKind(room, mimi.KindRoom)
	if err != nil {
		return SendResult{}, fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	resp, err := s.c.Post(ctx, dest, transport.Notify, id, body)
	if errors.Is(err, transport.ErrBadTarget) || errors.Is(err, transport.ErrForeignEndpoint) {
		// A destination that is not a provider domain, or whose
		// directory points elsewhere: retrying soon will not help.
		return SendResult{}, fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	if err != nil {
		return SendResult{}, err
	}
	return SendResult{StatusCode: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}, nil
}
