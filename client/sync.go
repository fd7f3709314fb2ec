package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

func hashOf(b []byte) [32]byte { return sha256.Sum256(b) }

// Sync pulls the client's inbox from its provider and processes every
// message in order (draft-ralston-mimi-protocol-02, Section 5.5): a Welcome
// with its RatchetTreeOption joins a room (RFC 9420, Section 12.4.3.1, with
// the tree supplied out of band); proposals, commits and application
// messages are processed by the room's group (RFC 9420, Sections 12.1,
// 12.4.2 and 15). Processed entries are acknowledged (after
// Options.Checkpoint, if set). It returns the events produced since the
// last call, including those of syncs done inside other operations.
//
// A message that cannot be processed is skipped and reported as an
// EventError; echoes of the client's own accepted messages and handshake
// messages of past epochs are dropped silently (Section 5.5: clients must
// be prepared to receive their own messages again).
func (c *Client) Sync(ctx context.Context) ([]Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.syncLocked(ctx)
	evs := c.events
	c.events = nil
	return evs, err
}

// maxSyncRounds bounds the inbox pages one sync processes; the rest waits
// for the next call.
const maxSyncRounds = 64

func (c *Client) syncLocked(ctx context.Context) error {
	for range maxSyncRounds {
		entries, err := c.p.Inbox(ctx, c.id.Client, c.inboxNext, c.opts.InboxBatch)
		if err != nil {
			return fmt.Errorf("client: reading the inbox: %w", err)
		}
		var last uint64
		handled := false
		for i := range entries {
			e := &entries[i]
			if e.Seq < c.inboxNext || e.Seq == math.MaxUint64 {
				continue // already processed (a provider that repeats itself), or unusable
			}
			c.handle(e)
			c.inboxNext = e.Seq + 1
			last, handled = e.Seq, true
		}
		if !handled {
			return nil
		}
		if c.opts.Checkpoint != nil {
			st, err := c.saveLocked()
			if err != nil {
				return err
			}
			if err := c.opts.Checkpoint(ctx, st); err != nil {
				return fmt.Errorf("client: checkpoint: %w", err)
			}
		}
		if err := c.p.Ack(ctx, c.id.Client, last); err != nil {
			return fmt.Errorf("client: acknowledging the inbox: %w", err)
		}
		if len(entries) < c.opts.InboxBatch {
			return nil
		}
	}
	return nil
}

func (c *Client) emit(ev Event) { c.events = append(c.events, ev) }

func (c *Client) fail(e *InboxEntry, err error) {
	c.emit(Event{Type: EventError, Room: e.Room, Seq: e.Seq, Timestamp: e.Message.Timestamp, Err: err})
}

// handle processes one inbox entry.
func (c *Client) handle(e *InboxEntry) {
	msg := &e.Message.Message
	switch msg.WireFormat {
	case wire.WireFormatWelcome:
		if msg.Welcome == nil {
			c.fail(e, errors.New("client: Welcome without body"))
			return
		}
		c.handleWelcome(e)
	case wire.WireFormatPublicMessage, wire.WireFormatPrivateMessage:
		c.handleGroupMessage(e)
	default:
		c.fail(e, fmt.Errorf("client: unexpected wire format %d in the inbox", msg.WireFormat))
	}
}

// handleWelcome joins a room from a Welcome (RFC 9420, Section 12.4.3.1;
// draft-ralston-mimi-protocol-02, Sections 3.2 and 5.5).
func (c *Client) handleWelcome(e *InboxEntry) {
	w := e.Message.Message.Welcome
	var (
		bundle *mls.KeyPackageBundle
		ref    string
	)
	for _, s := range w.Secrets {
		if b := c.bundles[string(s.NewMember)]; b != nil {
			bundle, ref = b, string(s.NewMember)
			break
		}
	}
	if bundle == nil {
		c.fail(e, ErrUnknownKeyPackage)
		return
	}
	var tree wire.RatchetTree
	if o := e.Message.RatchetTreeOption; o != nil && o.Representation == mimi.RatchetTreeFull {
		tree = o.Tree
	}
	g, err := mls.JoinFromWelcome(&e.Message.Message, bundle, &mls.JoinOptions{RatchetTree: tree, Config: c.mlsConfig()})
	if err != nil {
		c.fail(e, fmt.Errorf("client: joining from the Welcome: %w", err))
		return
	}
	rm, err := roomState(g)
	if err != nil {
		c.fail(e, fmt.Errorf("client: the joined group holds no valid room: %w", err))
		return
	}
	id := rm.Policy.RoomID
	if e.Room != "" && e.Room != id {
		c.fail(e, fmt.Errorf("%w: Welcome delivered for room %s joins room %s", ErrInvalidResponse, e.Room, id))
		return
	}
	if c.rooms[id] != nil {
		c.fail(e, fmt.Errorf("%w: %s", ErrRoomExists, id))
		return
	}
	if err := c.checkGroupID(g.GroupID(), id); err != nil {
		c.fail(e, err)
		return
	}
	delete(c.bundles, ref) // a KeyPackage is used once (RFC 9420, Section 16.8)
	c.rooms[id] = &room{id: id, g: g}
	c.emit(Event{Type: EventJoined, Room: id, Seq: e.Seq, Timestamp: e.Message.Timestamp, Epoch: g.Epoch()})
}

// handleGroupMessage processes a proposal, commit or application message
// of a room.
func (c *Client) handleGroupMessage(e *InboxEntry) {
	msg := &e.Message.Message
	enc, err := codec.Marshal(msg)
	if err != nil {
		c.fail(e, fmt.Errorf("client: encoding the message: %w", err))
		return
	}
	r := c.rooms[e.Room]
	if p := c.joins[e.Room]; r == nil && p != nil && bytes.Equal(enc, p.enc) {
		// The echo of our external commit whose answer was lost: the hub
		// accepted it (JoinNewDevice).
		delete(c.joins, e.Room)
		if err := c.joinedExternally(e.Room, p.pc); err != nil {
			c.fail(e, err)
			return
		}
		c.emit(Event{Type: EventJoined, Room: e.Room, Seq: e.Seq, Timestamp: e.Message.Timestamp, Epoch: c.rooms[e.Room].g.Epoch()})
		return
	}
	if r == nil {
		c.fail(e, fmt.Errorf("%w: %s", ErrUnknownRoom, e.Room))
		return
	}
	if r.isEcho(enc) {
		return
	}
	var (
		epoch     uint64
		handshake bool
	)
	if pm := msg.PublicMessage; pm != nil {
		epoch, handshake = pm.Content.Epoch, pm.Content.ContentType != wire.ContentApplication
	} else if pm := msg.PrivateMessage; pm != nil {
		epoch, handshake = pm.Epoch, pm.ContentType != wire.ContentApplication
	} else {
		c.fail(e, errors.New("client: message without body"))
		return
	}
	if handshake && epoch < r.g.Epoch() {
		return // a late duplicate of a handshake message of a past epoch
	}
	before, err := roomState(r.g)
	if err != nil {
		c.fail(e, err)
		return
	}
	beforeStates, err := r.g.ApplicationStates()
	if err != nil {
		c.fail(e, err)
		return
	}
	beforeMembers, err := members(r.g)
	if err != nil {
		c.fail(e, err)
		return
	}
	p, err := r.g.Process(msg)
	if err != nil {
		c.fail(e, fmt.Errorf("client: processing a message of %s: %w", r.id, err))
		return
	}
	base := Event{Room: r.id, Seq: e.Seq, Timestamp: e.Message.Timestamp, Epoch: r.g.Epoch()}
	switch {
	case p.ContentType == wire.ContentApplication:
		ev := base
		ev.Type, ev.Data = EventMessage, p.ApplicationData
		ev.Sender, ev.FromHub = senderOf(p.Sender, beforeMembers)
		c.emit(ev)
	case p.ContentType == wire.ContentProposal && p.Proposal != nil:
		ev := base
		ev.Type, ev.Proposal = EventProposal, p.Proposal
		ev.Sender, ev.FromHub = senderOf(p.Sender, beforeMembers)
		if add, ok := p.Proposal.Body.(*wire.Add); ok && p.Sender.Type == wire.SenderNewMemberProposal {
			ev.Sender, _ = mimi.IdentityFromCredential(&add.KeyPackage.LeafNode.Credential)
		}
		if as, ok := p.Proposal.Body.(*wire.AppSync); ok && as.ApplicationID == mimi.AppIDParticipantList {
			if cs, err := mimi.ChangeSetFromAppSync(before, &as.AppSync); err == nil {
				ev.Changes = cs
			}
		}
		c.emit(ev)
	case p.ContentType == wire.ContentCommit && p.Commit != nil:
		c.commitEvents(r, base, p.Commit, before, beforeStates, beforeMembers)
	}
}

// senderOf resolves a message's sender to its MIMI identity: a member
// (by its leaf in the epoch the message was processed in), or the hub as
// external sender (draft-ralston-mimi-protocol-02, Section 6.4).
func senderOf(s wire.Sender, ms []member) (*mimi.ClientIdentity, bool) {
	switch s.Type {
	case wire.SenderMember:
		for _, m := range ms {
			if m.leaf == s.Index {
				id := m.id
				return &id, false
			}
		}
	case wire.SenderExternal:
		return nil, true
	}
	return nil, false
}

// commitEvents reports what a processed commit changed: the participant
// list, the policy, the members, and our own removal (after which the room
// is forgotten).
func (c *Client) commitEvents(r *room, base Event, res *mls.CommitResult, before *mimi.Room, beforeStates *appsync.States, beforeMembers []member) {
	base.Sender, base.FromHub = c.committerOf(r.g, res, beforeMembers)
	var (
		after *mimi.Room
		err   error
	)
	if res.SelfRemoved {
		// The group stays in the last epoch we were in; compute the room
		// the commit leads to from the committed AppSyncs.
		syncs := make([]*appsync.AppSync, 0, len(res.AppSyncs))
		for _, a := range res.AppSyncs {
			syncs = append(syncs, &a.AppSync)
		}
		var st *appsync.States
		if st, err = beforeStates.ApplyAll(syncs); err == nil {
			after, err = mimi.RoomFromStates(st)
		}
	} else {
		after, err = roomState(r.g)
	}
	if err != nil {
		ev := base
		ev.Type, ev.Err = EventError, fmt.Errorf("client: room state after the commit: %w", err)
		c.emit(ev)
	} else {
		if cs := diffParticipants(before, after); !cs.Empty() {
			ev := base
			ev.Type, ev.Changes = EventParticipants, cs
			c.emit(ev)
		}
		if !samePolicy(&before.Policy, &after.Policy) {
			ev := base
			pol := after.Policy
			ev.Type, ev.Policy = EventPolicy, &pol
			c.emit(ev)
		}
	}
	if res.SelfRemoved {
		ev := base
		ev.Type = EventRemoved
		c.emit(ev)
		delete(c.rooms, r.id)
		return
	}
	if r.leaving {
		// The hub must have included our leave proposals (Section 3.5);
		// since we are still here, it did not: the leave is void.
		r.leaving = false
		ev := base
		ev.Type, ev.Err = EventLeaveVoid, fmt.Errorf("%w: a commit to %s did not include our leave proposals; leave again", ErrLeaving, r.id)
		c.emit(ev)
	}
	afterMembers, err := members(r.g)
	if err != nil {
		ev := base
		ev.Type, ev.Err = EventError, err
		c.emit(ev)
		return
	}
	added, removed := diffMembers(beforeMembers, afterMembers)
	if len(added) > 0 || len(removed) > 0 {
		ev := base
		ev.Type, ev.Added, ev.Removed = EventMembers, added, removed
		c.emit(ev)
	}
}

// committerOf resolves a commit's sender (RFC 9420, Section 12.4.2): a
// member, or the new member of an external commit.
func (c *Client) committerOf(g *mls.Group, res *mls.CommitResult, beforeMembers []member) (*mimi.ClientIdentity, bool) {
	switch res.Committer.Type {
	case wire.SenderMember:
		return senderOf(res.Committer, beforeMembers)
	case wire.SenderNewMemberCommit:
		if m, ok := g.Member(res.CommitterLeaf); ok {
			if id, err := mimi.IdentityFromCredential(&m.Credential); err == nil {
				return id, false
			}
		}
	}
	return nil, false
}

// diffParticipants returns the change set that turns a into b.
func diffParticipants(a, b *mimi.Room) *mimi.ChangeSet {
	cs := &mimi.ChangeSet{}
	for _, p := range b.Participants {
		role, ok := a.Participant(p.User)
		switch {
		case !ok:
			cs.Add = append(cs.Add, p)
		case role != p.Role:
			cs.SetRole = append(cs.SetRole, p)
		}
	}
	for _, p := range a.Participants {
		if _, ok := b.Participant(p.User); !ok {
			cs.Remove = append(cs.Remove, p.User)
		}
	}
	return cs
}

func samePolicy(a, b *mimi.Policy) bool {
	ab, err1 := codec.Marshal(a)
	bb, err2 := codec.Marshal(b)
	return err1 == nil && err2 == nil && string(ab) == string(bb)
}

// diffMembers returns the client URIs added and removed between two
// member lists.
func diffMembers(a, b []member) (added, removed []string) {
	in := func(ms []member, client string) bool {
		for _, m := range ms {
			if m.id.Client == client {
				return true
			}
		}
		return false
	}
	for _, m := range b {
		if !in(a, m.id.Client) {
			added = append(added, m.id.Client)
		}
	}
	for _, m := range a {
		if !in(b, m.id.Client) {
			removed = append(removed, m.id.Client)
		}
	}
	return added, removed
}
