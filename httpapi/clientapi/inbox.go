package clientapi

import (
	"context"
	"time"

	"connectrpc.com/connect"

	clientv1 "github.com/openmimi/mimi/gen/mimi/client/v1"
)

// Inbox implements ClientService.Inbox: the client's unacknowledged inbox
// entries from a position, in order (draft-ralston-mimi-protocol-02,
// Section 5.5 as delivered to a client), and with follow the new ones as
// they arrive, with heartbeats (see the package documentation).
func (s *Service) Inbox(ctx context.Context, req *connect.Request[clientv1.InboxRequest], stream *connect.ServerStream[clientv1.InboxResponse]) error {
	c, err := s.authenticate(req.Spec(), req.Header(), req.Msg)
	if err != nil {
		return err
	}
	next := req.Msg.GetFrom()
	limit := uint64(req.Msg.GetLimit())
	follow := req.Msg.GetFollow()
	var sent uint64
	var lastSend time.Time // zero: nothing sent yet
	burst := false         // entries sent since the last heartbeat
	for {
		// Read the applied index before the inbox, so that a delivery
		// after the read is always followed by a wake-up.
		var applied uint64
		if s.cfg.Applied != nil {
			applied = s.cfg.Applied.AppliedIndex()
		}
		page := inboxPage
		if limit != 0 {
			page = int(min(uint64(page), limit-sent))
		}
		es, err := s.p.Inbox(c.Client, next, page)
		if err != nil {
			return s.providerError("inbox", err)
		}
		for i := range es {
			e := &es[i]
			if e.N < next {
				continue
			}
			b, err := s.encoded("inbox", &e.Message)
			if err != nil {
				return err
			}
			next = e.N + 1
			if err := stream.Send(&clientv1.InboxResponse{
				Entry: &clientv1.InboxEntry{Seq: e.N, Room: e.Room, FanoutMessage: b},
				Next:  next,
			}); err != nil {
				return err
			}
			lastSend, burst = time.Now(), true
			sent++
			if limit != 0 && sent >= limit {
				return nil
			}
		}
		if len(es) == page {
			continue
		}
		if !follow {
			return nil
		}
		if burst || lastSend.IsZero() || time.Since(lastSend) >= s.cfg.HeartbeatInterval {
			if err := stream.Send(&clientv1.InboxResponse{Next: next}); err != nil {
				return err
			}
			lastSend, burst = time.Now(), false
		}
		due := s.cfg.HeartbeatInterval - time.Since(lastSend)
		if err := s.wait(ctx, applied, max(min(s.cfg.PollInterval, due), time.Millisecond)); err != nil {
			return nil // the client went away or the service closed
		}
	}
}

// wait blocks until a command after applied is applied or d passes; it
// returns an error when the caller's context or the service ended.
func (s *Service) wait(parent context.Context, applied uint64, d time.Duration) error {
	ctx, cancel := context.WithTimeout(parent, d)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	if s.cfg.Applied == nil || s.cfg.Applied.WaitApplied(ctx, applied+1) != nil {
		// No waiter, or it failed (shut down): poll.
		<-ctx.Done()
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if err := parent.Err(); err != nil {
		return err
	}
	return nil
}
