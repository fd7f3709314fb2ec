package remote

import (
	"context"
	"errors"
	"fmt"
	"math"

	"connectrpc.com/connect"

	"github.com/openmimi/mimi/client"
	clientv1 "github.com/openmimi/mimi/gen/mimi/client/v1"
	"github.com/openmimi/mimi/gen/mimi/client/v1/clientv1connect"
	"github.com/openmimi/mimi/mimi"
)

// ErrStop, returned by a Watch callback, ends Watch without an error
// (draft-ralston-mimi-protocol-02, Section 5.5 as delivered to a client).
var ErrStop = errors.New("remote: stop watching")

// Inbox implements client.Provider (draft-ralston-mimi-protocol-02, Section
// 5.5 as delivered to a client): it reads the client's Inbox stream from
// position from, without following, up to limit entries (0: no limit) or
// until the provider has sent everything queued.
func (p *Provider) Inbox(ctx context.Context, clientURI string, from uint64, limit int) ([]client.InboxEntry, error) {
	if limit < 0 {
		return nil, errors.New("remote: inbox: negative limit")
	}
	var out []client.InboxEntry
	err := p.stream(ctx, clientURI, from, uint32(min(limit, math.MaxUint32)), false, func(e client.InboxEntry) error {
		out = append(out, e)
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Watch follows the client's inbox from position from
// (draft-ralston-mimi-protocol-02, Section 5.5): it calls fn for every
// entry, in order, as the provider delivers them, until ctx ends (nil is
// returned), fn returns an error (ErrStop ends Watch with nil, anything
// else is returned) or the stream fails. idle, if set, is called with the
// next position whenever the provider signals it has caught up (a
// heartbeat). Entries are not acknowledged: call Ack (or client.Sync, which
// reads the inbox itself).
func (p *Provider) Watch(ctx context.Context, clientURI string, from uint64, fn func(client.InboxEntry) error, idle func(next uint64)) error {
	err := p.stream(ctx, clientURI, from, 0, true, fn, idle)
	if errors.Is(err, ErrStop) || (err != nil && ctx.Err() != nil) {
		return nil
	}
	return err
}

// stream runs one Inbox call.
func (p *Provider) stream(ctx context.Context, clientURI string, from uint64, limit uint32, follow bool, fn func(client.InboxEntry) error, idle func(uint64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := request(p, clientURI, clientv1connect.ClientServiceInboxProcedure,
		&clientv1.InboxRequest{From: from, Limit: limit, Follow: follow})
	if err != nil {
		return fmt.Errorf("remote: inbox: %w", err)
	}
	st, err := p.rpc.Inbox(ctx, req)
	if err != nil {
		return callError("inbox", err)
	}
	defer st.Close()
	next := from
	for st.Receive() {
		m := st.Msg()
		e := m.GetEntry()
		if e == nil {
			if idle != nil {
				idle(m.GetNext())
			}
			continue
		}
		if e.GetSeq() < next {
			return invalidResponse("inbox", fmt.Errorf("entry %d after position %d", e.GetSeq(), next))
		}
		next = e.GetSeq() + 1
		var fm mimi.FanoutMessage
		if err := mimi.Decode(e.GetFanoutMessage(), "FanoutMessage", &fm); err != nil {
			return invalidResponse("inbox", fmt.Errorf("entry %d: %w", e.GetSeq(), err))
		}
		if err := fn(client.InboxEntry{Seq: e.GetSeq(), Room: e.GetRoom(), Message: fm}); err != nil {
			return err
		}
	}
	if err := st.Err(); err != nil {
		if connect.CodeOf(err) == connect.CodeCanceled && ctx.Err() != nil {
			return ctx.Err()
		}
		return callError("inbox", err)
	}
	return nil
}
