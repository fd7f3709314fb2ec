package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/publicgroup"
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
	hub, err := p.localRoomHub(client, room)
	if err != nil {
		return nil, err
	}
	if hub == p.domain {
		return p.hubSubmit(ctx, source{domain: p.domain, client: client}, room, req)
	}
	if err := p.followerMayRelayMessage(client, room); err != nil {
		return &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitNotAllowed}, nil
	}
	rem, err := p.remoteOrErr()
	if err != nil {
		return nil, err
	}
	resp, err := rem.SubmitMessage(ctx, hub, room, req)
	if err != nil {
		return nil, fmt.Errorf("provider: submit via hub %s: %w", hub, err)
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

func submitEpochTooOld(current uint64) *mimi.SubmitMessageResponse {
	return &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitEpochTooOld, CurrentEpoch: current}
}

// Bounds of one group commit of application messages (see hubSubmit): at
// most maxSubmitBatch messages and, beyond the first, maxSubmitBatchBytes
// of encoded messages per Raft command.
const (
	maxSubmitBatch      = 64
	maxSubmitBatchBytes = 1 << 20
)

// submitItem is one application message waiting in its room's queue for
// the hub's decision (draft-ralston-mimi-protocol-02, Section 5.4).
type submitItem struct {
	ctx context.Context
	src source
	req *mimi.SubmitMessageRequest
	msg []byte // the encoded MLSMessage
	// done receives the answer exactly once (buffered).
	done     chan submitOutcome
	answered atomic.Bool
	// abandoned: the submitter stopped waiting before the item was taken
	// into a command; it is then dropped unanswered.
	abandoned atomic.Bool
	// twins are later items of the same batch with the same message
	// bytes: they get this item's answer (the message is accepted once).
	twins []*submitItem
}

type submitOutcome struct {
	resp *mimi.SubmitMessageResponse
	err  error
}

// answer delivers the item's answer; only the first answer counts.
func (it *submitItem) answer(resp *mimi.SubmitMessageResponse, err error) {
	if it.answered.CompareAndSwap(false, true) {
		it.done <- submitOutcome{resp: resp, err: err}
		for _, tw := range it.twins {
			tw.answer(resp, err)
		}
	}
}

// unanswered returns the items not answered yet.
func unanswered(items []*submitItem) []*submitItem {
	var out []*submitItem
	for _, it := range items {
		if !it.answered.Load() {
			out = append(out, it)
		}
	}
	return out
}

// enqueueSubmit appends it to the room's queue and starts the room's
// drainer unless one is running.
func (p *Provider) enqueueSubmit(hr *hubRoom, room string, it *submitItem) {
	hr.qmu.Lock()
	hr.queue = append(hr.queue, it)
	start := !hr.draining
	hr.draining = true
	hr.qmu.Unlock()
	if start {
		go p.drainSubmits(hr, room)
	}
}

// takeSubmits removes and returns the oldest queued items, at most max
// (0: no bound besides the batch limits), within the batch limits. When
// the queue is empty and last is set, the drainer is marked stopped.
func (hr *hubRoom) takeSubmits(max int, last bool) []*submitItem {
	hr.qmu.Lock()
	defer hr.qmu.Unlock()
	n, size := 0, 0
	for n < len(hr.queue) && n < maxSubmitBatch && (max <= 0 || n < max) {
		sz := len(hr.queue[n].msg)
		if n > 0 && size+sz > maxSubmitBatchBytes {
			break
		}
		size += sz
		n++
	}
	if n == 0 {
		if last {
			hr.draining = false
		}
		return nil
	}
	batch := make([]*submitItem, n)
	copy(batch, hr.queue)
	rest := copy(hr.queue, hr.queue[n:])
	clear(hr.queue[rest:])
	hr.queue = hr.queue[:rest]
	return batch
}

// drainSubmits is a room's drainer: while messages are queued it takes
// them, as many as are queued when the previous command was applied (up
// to the batch limits), and decides them under the room's lock, one Raft
// command per batch.
func (p *Provider) drainSubmits(hr *hubRoom, room string) {
	for {
		hr.mu.Lock()
		batch := hr.takeSubmits(0, true)
		if batch == nil {
			hr.mu.Unlock()
			return
		}
		p.submitBatch(hr, room, batch)
		hr.mu.Unlock()
	}
}

// flushSubmits decides the messages queued for the room now, before the
// caller (holding hr.mu) changes the room: handshake messages stay
// ordered with application messages as they arrived.
func (p *Provider) flushSubmits(hr *hubRoom, room string) {
	hr.qmu.Lock()
	n := len(hr.queue)
	hr.qmu.Unlock()
	for n > 0 {
		batch := hr.takeSubmits(n, false)
		if batch == nil {
			return
		}
		n -= len(batch)
		p.submitBatch(hr, room, batch)
	}
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
// application messages, Section 5.3), in a Raft command conditioned on
// the room's epoch and on the number of proposals cached in it
// (RoomProposalsAre): a proposal accepted meanwhile through another node
// of the hub's cluster may have removed a participant (Section 6.1), so
// the batch is then decided again.
//
// Group commit: the messages submitted for one room are queued and
// decided in arrival order by the room's drainer, which takes whatever is
// queued when the previous command was applied (up to maxSubmitBatch
// messages and maxSubmitBatchBytes) and validates each message on its own;
// the valid ones are accepted together in one Raft command, so the two
// syncs of a command (Raft log, state machine) are shared by the batch.
// Each request gets its own answer: acceptance with the hub timestamp
// once the command is durably in the replicated log, or its own refusal.
// If the command as a whole is refused by an unexpected error, each of its
// messages is retried in a command of its own. Updates of the room
// (hubUpdate) hold the same lock and first decide the messages queued
// before them.
func (p *Provider) hubSubmit(ctx context.Context, src source, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	if req == nil || req.AppMessage.WireFormat != wire.WireFormatPrivateMessage || req.AppMessage.PrivateMessage == nil {
		return submitNotAllowed(), nil
	}
	if _, known := p.hubRooms.Load(room); !known {
		// Keep hostile peers from creating queues for arbitrary rooms.
		if _, err := p.hostedRoom(room); err != nil {
			return nil, err
		}
	}
	msg, err := codec.Marshal(&req.AppMessage)
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	it := &submitItem{ctx: ctx, src: src, req: req, msg: msg, done: make(chan submitOutcome, 1)}
	p.enqueueSubmit(p.hubRoom(room), room, it)
	select {
	case o := <-it.done:
		return o.resp, o.err
	case <-ctx.Done():
		it.abandoned.Store(true)
		// Answered meanwhile? Then that is the answer.
		select {
		case o := <-it.done:
			return o.resp, o.err
		default:
		}
		// If it was already taken into a command, its fate is unknown,
		// as for any write whose caller stopped waiting.
		return nil, fmt.Errorf("%w: submit to %s: %w", ErrUnavailable, room, ctx.Err())
	}
}

// batchContext returns the context a batch's command is applied with: it
// ends when every submitter in the batch stopped waiting.
func batchContext(items []*submitItem) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var live atomic.Int64
	live.Store(int64(len(items)))
	stops := make([]func() bool, 0, len(items))
	for _, it := range items {
		stops = append(stops, context.AfterFunc(it.ctx, func() {
			if live.Add(-1) == 0 {
				cancel()
			}
		}))
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// plannedSubmit is a validated message and its events.
type plannedSubmit struct {
	it  *submitItem
	ops []projections.Op
}

// submitBatch decides a batch of queued messages of one room in arrival
// order. The caller holds hr.mu. Every item is answered.
func (p *Provider) submitBatch(hr *hubRoom, room string, items []*submitItem) {
	live := items[:0:0]
	for _, it := range items {
		if !it.abandoned.Load() {
			live = append(live, it)
		}
	}
	items = live
	for attempt := 0; len(items) > 0 && attempt < p.attempts; attempt++ {
		retry, err := p.trySubmitBatch(hr, room, items)
		if err != nil {
			for _, it := range items {
				it.answer(nil, err)
			}
			return
		}
		items = unanswered(retry)
		if len(items) > 0 {
			ctx, done := batchContext(items)
			err := p.barrier(ctx)
			done()
			if err != nil {
				for _, it := range items {
					it.answer(nil, err)
				}
				return
			}
		}
	}
	for _, it := range items {
		it.answer(nil, fmt.Errorf("%w: room %s is contended", ErrUnavailable, room))
	}
}

// trySubmitBatch makes one attempt at a batch: it answers every item it
// decides and returns those to retry after a read barrier (a local
// recipient was deregistered meanwhile). An error is the answer for every
// item not answered yet.
func (p *Provider) trySubmitBatch(hr *hubRoom, room string, items []*submitItem) (retry []*submitItem, _ error) {
	rec, err := p.hostedRoom(room)
	if err != nil {
		return nil, err
	}
	var (
		v    *publicgroup.View
		eff  *mimi.Room
		plan []plannedSubmit
	)
	ts := p.nowMillis()
	// What every message of the batch shares: the destinations and the
	// local members who are participants.
	var dests []string
	var locals []string
	first := map[[sha256.Size]byte]*submitItem{}
	// A message accepted before is answered without a Raft command; under
	// load (batches of several) that lookup is left to the state machine,
	// whose ErrDuplicateMessage sends the batch back one by one, and a
	// single message is looked up here first. A message of a past epoch
	// is always looked up: it may be a resend of one accepted before the
	// epoch moved on, which gets its first acceptance, not epochTooOld.
	lookUp := len(items) == 1
	for _, it := range items {
		pm := it.req.AppMessage.PrivateMessage
		if rec.Closed || pm.ContentType != wire.ContentApplication {
			it.answer(submitNotAllowed(), nil)
			continue
		}
		// The same bytes again (a provider retrying after a lost answer)
		// are not accepted twice: they get the first acceptance.
		h := sha256.Sum256(it.msg)
		if f, ok := first[h]; ok {
			f.twins = append(f.twins, it)
			continue
		}
		if lookUp || pm.Epoch < rec.Epoch {
			if resp, err := p.acceptedBefore(room, pm.Epoch, h[:]); err != nil || resp != nil {
				it.answer(resp, err)
				continue
			}
		}
		first[h] = it
		if v == nil {
			if v, err = p.view(hr, rec); err != nil {
				return nil, err
			}
			if eff, err = effectiveRoom(rec); err != nil {
				return nil, err
			}
			set := map[string]bool{}
			participantProviders(set, eff)
			delete(set, p.domain)
			dests = sortedKeys(set)
			locals = p.localMembers(rec.Members, func(c *projections.Client) bool { return isParticipant(eff, c.User) })
		}
		resp, ops, err := p.planSubmit(room, rec, v, eff, dests, locals, it, ts)
		if err != nil || resp != nil {
			it.answer(resp, err)
			continue
		}
		plan = append(plan, plannedSubmit{it: it, ops: ops})
	}
	if len(plan) == 0 {
		return nil, nil
	}
	var ops []projections.Op
	batch := make([]*submitItem, len(plan))
	for i, ps := range plan {
		ops = append(ops, ps.ops...)
		batch[i] = ps.it
	}
	ctx, done := batchContext(batch)
	// The recipients were chosen from the participants after the
	// proposals cached so far (Section 6.1): a proposal accepted meanwhile
	// through another node of the hub's cluster (a leave) sends the batch
	// back to be decided again.
	res, err := p.apply(ctx, &projections.Command{Conditions: []projections.Condition{projections.RoomProposalsAre(room, rec.Epoch, rec.Proposals)}, Ops: ops})
	done()
	if err != nil {
		return batch, err
	}
	var we *projections.WrongEpochError
	switch {
	case res.Err == nil:
		hr.advance(room, res.Events)
		p.kicked(res)
		for _, it := range batch {
			it.answer(&mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitAccepted, AcceptedTimestamp: ts}, nil)
		}
		return nil, nil
	case errors.As(res.Err, &we):
		// Every message of the batch is of the epoch the condition
		// named, so each gets the answer it would get alone: a resend of
		// a message accepted before the commit gets that acceptance.
		hr.invalidate()
		for _, it := range batch {
			if epoch := it.req.AppMessage.PrivateMessage.Epoch; we.Current > epoch {
				h := sha256.Sum256(it.msg)
				if resp, err := p.acceptedBefore(room, epoch, h[:]); err != nil || resp != nil {
					it.answer(resp, err)
					continue
				}
				it.answer(submitEpochTooOld(we.Current), nil)
			} else {
				it.answer(submitNotAllowed(), nil)
			}
		}
		return nil, nil
	case errors.Is(res.Err, projections.ErrRoomClosed):
		for _, it := range batch {
			it.answer(submitNotAllowed(), nil)
		}
		return nil, nil
	case errors.Is(res.Err, projections.ErrUnknownClient), errors.Is(res.Err, projections.ErrProposalsChanged):
		hr.invalidate()
		return batch, nil
	case errors.Is(res.Err, projections.ErrDuplicateMessage) && len(batch) == 1:
		// Accepted meanwhile through another node of the hub's cluster:
		// once this node has applied it, answer with that acceptance.
		bctx, bdone := batchContext(batch)
		err := p.barrier(bctx)
		bdone()
		if err != nil {
			return batch, err
		}
		it := batch[0]
		h := sha256.Sum256(it.msg)
		resp, err := p.acceptedBefore(room, it.req.AppMessage.PrivateMessage.Epoch, h[:])
		if err == nil && resp == nil {
			err = fmt.Errorf("provider: submit to %s: %w, but no acceptance is recorded", room, res.Err)
		}
		it.answer(resp, err)
		return nil, nil
	case len(batch) > 1:
		// Something about one message: decide each alone, so that it
		// fails alone.
		level := slog.LevelWarn
		if errors.Is(res.Err, projections.ErrDuplicateMessage) {
			level = slog.LevelDebug // a resend, expected now and then
		}
		p.log.Log(context.Background(), level, "a batch of application messages was refused; deciding them one by one", "room", room, "messages", len(batch), "err", res.Err)
		for _, it := range batch {
			p.submitBatch(hr, room, []*submitItem{it})
		}
		return nil, nil
	}
	return batch, fmt.Errorf("provider: submit to %s: %w", room, res.Err)
}

// acceptedBefore returns the answer to a message the room already
// accepted in epoch (by the SHA-256 hash of its encoded MLSMessage): the
// acceptance with the first timestamp (draft-ralston-mimi-protocol-02,
// Section 5.4), or nil if it was not accepted.
func (p *Provider) acceptedBefore(room string, epoch uint64, hash []byte) (*mimi.SubmitMessageResponse, error) {
	rec, found, err := p.m.AcceptedMessage(room, epoch, hash)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !found {
		return nil, nil
	}
	return &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitAccepted, AcceptedTimestamp: rec.Timestamp}, nil
}

// planSubmit validates one message against the room (record, view and
// effective room state) and returns either the answer refusing it (or an
// error) or the events accepting it: ApplicationMessageAccepted, its
// fanout to dests and its delivery to the local participants in locals
// other than the sending client.
func (p *Provider) planSubmit(room string, rec *projections.Room, v *publicgroup.View, eff *mimi.Room, dests, locals []string,
	it *submitItem, ts uint64) (*mimi.SubmitMessageResponse, []projections.Op, error) {
	pm := it.req.AppMessage.PrivateMessage
	if !bytes.Equal(pm.GroupID, v.GroupID()) {
		return submitNotAllowed(), nil, nil
	}
	switch {
	case pm.Epoch < rec.Epoch:
		return submitEpochTooOld(rec.Epoch), nil, nil
	case pm.Epoch > rec.Epoch:
		return submitNotAllowed(), nil, nil
	}
	src := it.src
	sender := "mimi://" + src.domain
	if src.client != "" {
		c, err := p.localClient(src.client)
		if err != nil {
			return nil, nil, err
		}
		if !contains(rec.Members, src.client) || !eff.Can(c.User, mimi.CanSendMessage) {
			return submitNotAllowed(), nil, nil
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
			return submitNotAllowed(), nil, nil
		}
	}
	ops := []projections.Op{projections.EventOp(room, ts, &eventlog.ApplicationMessageAccepted{Epoch: pm.Epoch, Message: it.msg, Sender: sender})}
	if len(dests) > 0 {
		ops = append(ops, projections.EventOp(room, ts, &eventlog.FanoutEnqueued{Destinations: dests, Back: 1, Part: eventlog.PartMessage}))
	}
	recips := locals
	if src.client != "" && slices.Contains(locals, src.client) {
		recips = slices.DeleteFunc(slices.Clone(locals), func(c string) bool { return c == src.client })
	}
	if len(recips) > 0 {
		ops = append(ops, projections.EventOp(room, ts, &eventlog.ClientEnqueued{Clients: recips, Back: uint64(len(ops)), Part: eventlog.PartMessage}))
	}
	return nil, ops, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
