package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/openmimi/mimi/eventlog"
	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/gen/mimi/admin/v1/adminv1connect"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/raftnode"
)

// Errors of the service's configuration.
var (
	// ErrNoState: ServiceConfig.Backend.State is nil.
	ErrNoState = errors.New("admin: no state backend")
)

// Defaults of ServiceConfig.
const (
	DefaultPollInterval      = 500 * time.Millisecond
	DefaultHeartbeatInterval = 15 * time.Second
	DefaultRoomsLimit        = 1000
	// eventsPage is how many events StreamEvents reads per store call.
	eventsPage = 256
)

// ServiceConfig configures a Service.
type ServiceConfig struct {
	Backend Backend
	// Now is the clock for GroupInfo ages (default time.Now).
	Now func() time.Time
	// PollInterval bounds how long a following StreamEvents waits before
	// re-reading the log without a wake-up (default DefaultPollInterval).
	PollInterval time.Duration
	// HeartbeatInterval is how long a following StreamEvents stays silent
	// before it sends a heartbeat (default DefaultHeartbeatInterval).
	HeartbeatInterval time.Duration
	// ScratchDir is where ReplayVerify creates its temporary store
	// (default os.TempDir()). The store is removed afterwards.
	ScratchDir string
	// Logger receives the audit trail of mutating calls (default: discard).
	Logger *slog.Logger
}

// Service implements adminv1connect.AdminServiceHandler over a Backend.
// Serve it with NewServer, which adds authentication.
type Service struct {
	b       Backend
	now     func() time.Time
	poll    time.Duration
	beat    time.Duration
	scratch string
	log     *slog.Logger

	verifyMu sync.Mutex // one ReplayVerify at a time

	// ctx ends when the service is closed, which ends following streams.
	ctx    context.Context
	cancel context.CancelFunc
}

var _ adminv1connect.AdminServiceHandler = (*Service)(nil)

// NewService returns the admin service over cfg.Backend.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Backend.State == nil {
		return nil, ErrNoState
	}
	s := &Service{b: cfg.Backend, now: cfg.Now, poll: cfg.PollInterval, beat: cfg.HeartbeatInterval, scratch: cfg.ScratchDir, log: cfg.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.poll <= 0 {
		s.poll = DefaultPollInterval
	}
	if s.beat <= 0 {
		s.beat = DefaultHeartbeatInterval
	}
	if s.scratch == "" {
		s.scratch = os.TempDir()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Close ends every following StreamEvents call; later calls still work
// but do not follow.
func (s *Service) Close() { s.cancel() }

// internalError wraps a backend failure. Store errors reach only
// authenticated administrators, so their text is kept.
func internalError(op string, err error) error {
	return connect.NewError(connect.CodeInternal, fmt.Errorf("%s: %w", op, err))
}

// millis converts a log timestamp (milliseconds since the UNIX epoch) to a
// protobuf Timestamp; 0 is unset.
func millis(ms uint64) *timestamppb.Timestamp {
	if ms == 0 {
		return nil
	}
	return timestamppb.New(time.UnixMilli(int64(ms)))
}

func timeOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// ListRooms implements AdminService.ListRooms.
func (s *Service) ListRooms(ctx context.Context, req *connect.Request[adminv1.ListRoomsRequest]) (*connect.Response[adminv1.ListRoomsResponse], error) {
	ids, err := s.b.State.Rooms()
	if err != nil {
		return nil, internalError("list rooms", err)
	}
	limit := int(req.Msg.GetLimit())
	if limit <= 0 || limit > DefaultRoomsLimit {
		limit = DefaultRoomsLimit
	}
	out := &adminv1.ListRoomsResponse{}
	for _, id := range ids {
		if req.Msg.GetAfter() != "" && id <= req.Msg.GetAfter() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, connect.NewError(connect.CodeCanceled, err)
		}
		if len(out.Rooms) == limit {
			out.NextAfter = out.Rooms[len(out.Rooms)-1].Id
			break
		}
		r, err := s.b.State.Room(id)
		if err != nil {
			return nil, internalError("room "+id, err)
		}
		out.Rooms = append(out.Rooms, &adminv1.RoomSummary{
			Id: r.ID, Hub: r.Hub, Epoch: r.Epoch, MemberClients: uint32(len(r.Members)),
			CachedProposals: r.Proposals, Closed: r.Closed,
			CreatedAt: millis(r.CreatedAt), LastCommitAt: millis(r.LastCommitAt),
		})
	}
	return connect.NewResponse(out), nil
}

// GetRoom implements AdminService.GetRoom.
func (s *Service) GetRoom(_ context.Context, req *connect.Request[adminv1.GetRoomRequest]) (*connect.Response[adminv1.GetRoomResponse], error) {
	id := req.Msg.GetRoom()
	if id == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("room is required"))
	}
	r, err := s.b.State.Room(id)
	if errors.Is(err, projections.ErrNoSuchRoom) {
		return nil, connect.NewError(connect.CodeNotFound, err)
	}
	if err != nil {
		return nil, internalError("room", err)
	}
	props, err := s.b.State.RoomProposals(id)
	if err != nil {
		return nil, internalError("room proposals", err)
	}
	return connect.NewResponse(&adminv1.GetRoomResponse{Room: describeRoom(r, props, s.now(), req.Msg.GetIncludeRaw())}), nil
}

// FanoutStatus implements AdminService.FanoutStatus.
func (s *Service) FanoutStatus(context.Context, *connect.Request[adminv1.FanoutStatusRequest]) (*connect.Response[adminv1.FanoutStatusResponse], error) {
	dests, err := s.b.State.FanoutDestinations()
	if err != nil {
		return nil, internalError("fanout destinations", err)
	}
	var worker []FanoutDestinationStatus
	if s.b.Fanout != nil {
		worker = s.b.Fanout.Status()
	}
	return connect.NewResponse(mergeFanout(dests, worker, s.b.Fanout != nil)), nil
}

// mergeFanout joins the replicated cursors with the worker's view, sorted
// by destination.
func mergeFanout(dests []projections.Destination, worker []FanoutDestinationStatus, attached bool) *adminv1.FanoutStatusResponse {
	out := &adminv1.FanoutStatusResponse{WorkerAttached: attached}
	byName := map[string]*adminv1.FanoutDestination{}
	for _, d := range dests {
		fd := &adminv1.FanoutDestination{Destination: d.Destination, Enqueued: d.Cursor.Enqueued, Acked: d.Cursor.Acked, Backlog: d.Cursor.Pending()}
		byName[d.Destination] = fd
		out.Destinations = append(out.Destinations, fd)
	}
	for _, w := range worker {
		fd, ok := byName[w.Destination]
		if !ok {
			fd = &adminv1.FanoutDestination{Destination: w.Destination, Enqueued: w.Enqueued, Acked: w.Acked}
			if w.Enqueued > w.Acked {
				fd.Backlog = w.Enqueued - w.Acked
			}
			byName[w.Destination] = fd
			out.Destinations = append(out.Destinations, fd)
		}
		fd.LastError = w.LastError
		fd.LastAttempt = timeOrNil(w.LastAttempt)
		fd.LastSuccess = timeOrNil(w.LastSuccess)
		fd.NextRetry = timeOrNil(w.NextRetry)
		fd.ConsecutiveFailures = w.ConsecutiveFailures
	}
	sortBy(out.Destinations, func(d *adminv1.FanoutDestination) string { return d.Destination })
	return out
}

// ClusterStatus implements AdminService.ClusterStatus.
func (s *Service) ClusterStatus(context.Context, *connect.Request[adminv1.ClusterStatusRequest]) (*connect.Response[adminv1.ClusterStatusResponse], error) {
	if s.b.Cluster == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("no Raft node attached"))
	}
	return connect.NewResponse(&adminv1.ClusterStatusResponse{Status: clusterStatus(s.b.Cluster.Status())}), nil
}

// AddNode implements AdminService.AddNode.
func (s *Service) AddNode(ctx context.Context, req *connect.Request[adminv1.AddNodeRequest]) (*connect.Response[adminv1.AddNodeResponse], error) {
	if s.b.Cluster == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("no Raft node attached"))
	}
	id, addr := req.Msg.GetId(), req.Msg.GetAddr()
	if id == "" || addr == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("id and addr are required"))
	}
	err := s.b.Cluster.AddVoter(ctx, id, addr)
	s.log.Info("admin: add node", "id", id, "addr", addr, "peer", req.Peer().Addr, "err", err)
	if err != nil {
		return nil, clusterError("add node", err)
	}
	return connect.NewResponse(&adminv1.AddNodeResponse{Status: clusterStatus(s.b.Cluster.Status())}), nil
}

// RemoveNode implements AdminService.RemoveNode.
func (s *Service) RemoveNode(ctx context.Context, req *connect.Request[adminv1.RemoveNodeRequest]) (*connect.Response[adminv1.RemoveNodeResponse], error) {
	if s.b.Cluster == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("no Raft node attached"))
	}
	id := req.Msg.GetId()
	if id == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("id is required"))
	}
	err := s.b.Cluster.RemoveServer(ctx, id)
	s.log.Info("admin: remove node", "id", id, "peer", req.Peer().Addr, "err", err)
	if err != nil {
		return nil, clusterError("remove node", err)
	}
	return connect.NewResponse(&adminv1.RemoveNodeResponse{Status: clusterStatus(s.b.Cluster.Status())}), nil
}

// clusterError maps raftnode errors to Connect codes.
func clusterError(op string, err error) error {
	var nl raftnode.ErrNotLeader
	switch {
	case errors.As(err, &nl):
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s: not the leader (leader %q at %q): %w", op, nl.LeaderID, nl.LeaderAddr, err))
	case errors.Is(err, raftnode.ErrStandalone):
		return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s: %w", op, err))
	case errors.Is(err, raftnode.ErrNoLeader), errors.Is(err, raftnode.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s: %w", op, err))
	case errors.Is(err, raftnode.ErrOutcomeUnknown), errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("%s: %w", op, err))
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, fmt.Errorf("%s: %w", op, err))
	}
	return connect.NewError(connect.CodeInternal, fmt.Errorf("%s: %w", op, err))
}

func clusterStatus(st raftnode.Status) *adminv1.ClusterStatus {
	out := &adminv1.ClusterStatus{
		Id: st.ID, Addr: st.Addr, State: st.State, Term: st.Term,
		LeaderId: st.LeaderID, LeaderAddr: st.LeaderAddr,
		CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, StateMachineIndex: st.StateMachineIndex,
		LastLogIndex: st.LastLogIndex, LastSnapshotIndex: st.LastSnapshotIndex,
		LastContact: timeOrNil(st.LastContact),
	}
	for _, sv := range st.Servers {
		out.Nodes = append(out.Nodes, &adminv1.ClusterNode{Id: sv.ID, Addr: sv.Addr, Suffrage: sv.Suffrage, Leader: sv.ID != "" && sv.ID == st.LeaderID})
	}
	return out
}

// StreamEvents implements AdminService.StreamEvents. A following stream
// sends a heartbeat (a response without an event) as soon as it has
// nothing to send, so that the client's call returns once the stream is
// open, and again after each HeartbeatInterval of silence.
func (s *Service) StreamEvents(ctx context.Context, req *connect.Request[adminv1.StreamEventsRequest], stream *connect.ServerStream[adminv1.StreamEventsResponse]) error {
	m := req.Msg
	from := max(m.GetFromSeq(), 1)
	room := m.GetRoom()
	var roomFrom uint64 = 1 // next room sequence number to read
	var sent uint64
	var lastSend time.Time // zero: nothing sent yet
	for {
		// Read the applied index before the log, so that an append after
		// the read is always followed by a wake-up.
		var applied uint64
		if s.b.Applied != nil {
			applied = s.b.Applied.AppliedIndex()
		}
		var evs []eventlog.Event
		var err error
		if room != "" {
			evs, err = s.b.State.RoomEvents(room, roomFrom, eventsPage)
		} else {
			evs, err = s.b.State.Events(from, eventsPage)
		}
		if err != nil {
			return internalError("read events", err)
		}
		for i := range evs {
			ev := &evs[i]
			if room != "" {
				roomFrom = ev.RoomSeq + 1
				if ev.Seq < from {
					continue
				}
			}
			from = ev.Seq + 1
			out, err := eventMessage(ev, m.GetIncludeRaw())
			if err != nil {
				return internalError("encode event", err)
			}
			if err := stream.Send(&adminv1.StreamEventsResponse{Event: out, HeadSeq: ev.Seq}); err != nil {
				return err
			}
			lastSend = time.Now()
			sent++
			if m.GetLimit() != 0 && sent >= m.GetLimit() {
				return nil
			}
		}
		if len(evs) == eventsPage {
			continue
		}
		if !m.GetFollow() {
			return nil
		}
		if lastSend.IsZero() || time.Since(lastSend) >= s.beat {
			head, err := s.b.State.LogHead()
			if err != nil {
				return internalError("read log head", err)
			}
			if err := stream.Send(&adminv1.StreamEventsResponse{HeadSeq: head.Seq}); err != nil {
				return err
			}
			lastSend = time.Now()
		}
		if err := s.wait(ctx, applied); err != nil {
			return nil // the client went away or the service closed
		}
	}
}

// wait blocks until a command after applied is applied or the poll
// interval passes; it returns an error when the caller's context or the
// service ended.
func (s *Service) wait(parent context.Context, applied uint64) error {
	ctx, cancel := context.WithTimeout(parent, s.poll)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	if s.b.Applied == nil || errors.Is(s.b.Applied.WaitApplied(ctx, applied+1), raftnode.ErrClosed) {
		// No node, or it shut down: poll.
		<-ctx.Done()
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	return parent.Err()
}

// eventMessage converts a log event.
func eventMessage(ev *eventlog.Event, raw bool) (*adminv1.Event, error) {
	out := &adminv1.Event{
		Seq: ev.Seq, RoomSeq: ev.RoomSeq, Type: ev.Type().String(), TypeCode: uint32(ev.Type()),
		Timestamp: millis(ev.Timestamp), Room: ev.Room, Summary: Summarize(ev),
	}
	if raw {
		b, err := eventlog.Encode(ev)
		if err != nil {
			return nil, err
		}
		out.Raw = b
	}
	return out, nil
}

// durationOf converts a duration, clamping negatives to zero.
func durationOf(d time.Duration) *durationpb.Duration {
	return durationpb.New(max(d, 0))
}
