package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// SubmitMessage serves POST /submitMessage/{roomId} from peer as the
// room's hub (draft-ralston-mimi-protocol-02, Section 5.4). See
// hubSubmit.
func (p *Provider) SubmitMessage(ctx context.Context, peer, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	return p.hubSubmit(ctx, source{domain: peer}, room, req)
}

// LocalSubmitMessage submits a local client's application message
// (draft-ralston-mimi-protocol-02, Sections 3.4 and 5.4): decided here when
// the room is hosted here, forwarded to the hub otherwise. As the
// submitting provider we vouch for the client; what the follower can
// check is that the client is registered here.
func (p *Provider) LocalSubmitMessage(ctx context.Context, client, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	if _, err := p.localClient(client); err != nil {
		return nil, err
	}
	ru, err := mimi.ParseURIKind(room, mimi.KindRoom)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if ru.Provider == p.domain {
		return p.hubSubmit(ctx, source{domain: p.domain, client: client}, room, req)
	}
	if err := p.followerMayRelayMessage(client, room); err != nil {
		return &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitNotAllowed}, nil
	}
	rem, err := p.remoteOrErr()
	if err != nil {
		return nil, err
	}
	resp, err := rem.SubmitMessage(ctx, ru.Provider, room, req)
	if err != nil {
		return nil, fmt.Errorf("provider: submit via hub %s: %w", ru.Provider, err)
	}
	if resp.Code == mimi.SubmitAccepted {
		if b, err := codec.Marshal(&req.AppMessage); err == nil {
			p.echoes.remember(client, b)
		}
	}
	return resp, nil
}

func submitNotAllowed() *mimi.SubmitMessageResponse {
	return &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitNotAllowed}
}

// hubSubmit decides an application message for a room hosted here
// (draft-ralston-mimi-protocol-02, Section 5.4). The message must be a
// PrivateMessage with application content for the room's group; an epoch
// older than the current one is epochTooOld (with the current epoch), a
// newer one notAllowed.
//
// The hub cannot see who sent a PrivateMessage (the sender is encrypted),
// so authorization is split: a local submission is checked directly (the
// client is a member of the group and its user a participant with
// canSendMessage); a remote provider may submit only if at least one of
// its users is a participant with canSendMessage, and by submitting it
// vouches that the sending client's user is such a participant (see the
// package documentation).
//
// Accepted messages become an ApplicationMessageAccepted event, queued for
// every provider with participants and every local member whose user is a
// participant (a removed participant's clients receive no further
// application messages, Section 5.3), in one Raft command conditioned on
// the room's epoch.
func (p *Provider) hubSubmit(ctx context.Context, src source, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	if req == nil || req.AppMessage.WireFormat != wire.WireFormatPrivateMessage || req.AppMessage.PrivateMessage == nil {
		return submitNotAllowed(), nil
	}
	hr := p.hubRoom(room)
	hr.mu.Lock()
	defer hr.mu.Unlock()
	for attempt := 0; attempt < p.attempts; attempt++ {
		resp, retry, err := p.trySubmit(ctx, hr, src, room, req)
		if !retry {
			return resp, err
		}
		if err := p.barrier(ctx); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%w: room %s is contended", ErrUnavailable, room)
}

// trySubmit makes one attempt; retry reports that a local recipient was
// deregistered meanwhile.
func (p *Provider) trySubmit(ctx context.Context, hr *hubRoom, src source, room string, req *mimi.SubmitMessageRequest) (_ *mimi.SubmitMessageResponse, retry bool, _ error) {
	pm := req.AppMessage.PrivateMessage
	rec, err := p.hostedRoom(room)
	if err != nil {
		return nil, false, err
	}
	if rec.Closed || pm.ContentType != wire.ContentApplication {
		return submitNotAllowed(), false, nil
	}
	v, err := p.view(hr, rec)
	if err != nil {
		return nil, false, err
	}
	if !bytes.Equal(pm.GroupID, v.GroupID()) {
		return submitNotAllowed(), false, nil
	}
	switch {
	case pm.Epoch < rec.Epoch:
		return &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitEpochTooOld, CurrentEpoch: rec.Epoch}, false, nil
	case pm.Epoch > rec.Epoch:
		return submitNotAllowed(), false, nil
	}
	eff, err := effectiveRoom(rec)
	if err != nil {
		return nil, false, err
	}
	sender := "mimi://" + src.domain
	if src.client != "" {
		c, err := p.localClient(src.client)
		if err != nil {
			return nil, false, err
		}
		if !contains(rec.Members, src.client) || !eff.Can(c.User, mimi.CanSendMessage) {
			return submitNotAllowed(), false, nil
		}
		sender = src.client
	} else {
		ok := false
		for _, pt := range eff.Participants {
			if providerOf(pt.User) == src.domain && eff.Can(pt.User, mimi.CanSendMessage) {
				ok = true
				break
			}
		}
		if !ok {
			return submitNotAllowed(), false, nil
		}
	}
	msg, err := codec.Marshal(&req.AppMessage)
	if err != nil {
		return nil, false, fmt.Errorf("provider: %w", err)
	}
	ts := p.nowMillis()
	ops := []projections.Op{projections.EventOp(room, ts, &eventlog.ApplicationMessageAccepted{Epoch: pm.Epoch, Message: msg, Sender: sender})}
	dests := map[string]bool{}
	participantProviders(dests, eff)
	delete(dests, p.domain)
	if len(dests) > 0 {
		ops = append(ops, projections.EventOp(room, ts, &eventlog.FanoutEnqueued{Destinations: sortedKeys(dests), Back: 1, Part: eventlog.PartMessage}))
	}
	locals := p.localMembers(rec.Members, func(c *projections.Client) bool {
		return c.Client != src.client && isParticipant(eff, c.User)
	})
	if len(locals) > 0 {
		ops = append(ops, projections.EventOp(room, ts, &eventlog.ClientEnqueued{Clients: locals, Back: uint64(len(ops)), Part: eventlog.PartMessage}))
	}
	res, err := p.apply(ctx, &projections.Command{Conditions: []projections.Condition{projections.RoomEpochIs(room, pm.Epoch)}, Ops: ops})
	if err != nil {
		return nil, false, err
	}
	var we *projections.WrongEpochError
	switch {
	case res.Err == nil:
		hr.advance(room, res.Events)
		p.kicked(res)
		return &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitAccepted, AcceptedTimestamp: ts}, false, nil
	case errors.As(res.Err, &we):
		hr.invalidate()
		if we.Current > pm.Epoch {
			return &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitEpochTooOld, CurrentEpoch: we.Current}, false, nil
		}
		return submitNotAllowed(), false, nil
	case errors.Is(res.Err, projections.ErrRoomClosed):
		return submitNotAllowed(), false, nil
	case errors.Is(res.Err, projections.ErrUnknownClient):
		return nil, true, nil
	}
	return nil, false, fmt.Errorf("provider: submit to %s: %w", room, res.Err)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
