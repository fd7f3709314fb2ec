package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// followerRoom is what this provider knows, as a follower, about a room
// hosted elsewhere: which of its users are participants and which of its
// clients joined the group (by a Welcome it routed, or an external commit
// it saw). It is derived from the room's NotifyAccepted events and their
// ClientEnqueued records in the log (see the package documentation), and
// rebuilt from them after a restart; seq is the last room sequence number
// incorporated.
//
// relay is a copy of the clients that may relay messages (joined clients
// of participants) as of the last state incorporated under mu, for
// followerMayRelayMessage while mu is held by a /notify whose command is
// being replicated.
type followerRoom struct {
	mu     sync.Mutex
	seq    uint64
	st     followerState
	loaded bool
	relay  atomic.Pointer[map[string]bool]
}

// publish copies the state's relaying clients to relay. The caller holds
// mu.
func (fr *followerRoom) publish() {
	m := make(map[string]bool, len(fr.st.joined))
	for c, u := range fr.st.joined {
		if fr.st.participants[u] {
			m[c] = true
		}
	}
	fr.relay.Store(&m)
}

type followerState struct {
	groupID      []byte            // the room's MLS group, once bound (eventlog.GroupBound)
	participants map[string]bool   // local users who are participants
	joined       map[string]string // local client -> user, members of the group
	leaving      map[string]string // clients of users removed by a pending proposal
}

func newFollowerState() followerState {
	return followerState{participants: map[string]bool{}, joined: map[string]string{}, leaving: map[string]string{}}
}

func (s *followerState) clone() followerState {
	c := newFollowerState()
	c.groupID = s.groupID
	for k, v := range s.participants {
		c.participants[k] = v
	}
	for k, v := range s.joined {
		c.joined[k] = v
	}
	for k, v := range s.leaving {
		c.leaving[k] = v
	}
	return c
}

// members returns the joined clients whose user is a participant, sorted.
func (s *followerState) members() []string {
	var out []string
	for c, u := range s.joined {
		if s.participants[u] {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// appSync applies a participant-list AppSync to the local users
// (draft-ralston-mimi-protocol-02, Section 6.1: the effect is immediate):
// a removed user's clients move to leaving until the next commit.
func (s *followerState) appSync(local func(string) bool, as *appsync.AppSync) {
	if as.ApplicationID != mimi.AppIDParticipantList || as.Type != appsync.Map {
		return
	}
	for _, k := range as.RemovedKeys {
		u := string(k)
		if !local(u) {
			continue
		}
		delete(s.participants, u)
		for c, cu := range s.joined {
			if cu == u {
				s.leaving[c] = u
				delete(s.joined, c)
			}
		}
	}
	for _, e := range as.NewOrUpdatedElements {
		if u := string(e.Name); local(u) {
			s.participants[u] = true
		}
	}
}

// step applies one FanoutMessage to the state and returns the local
// clients it is delivered to (draft-ralston-mimi-protocol-02, Section 5.5):
// a Welcome goes to the clients whose KeyPackageRefs it carries (welcome,
// client -> user), who thereby join; an application message to the
// members; a proposal or commit to the members before and after it, so
// that clients being removed see their removal.
func (s *followerState) step(local func(string) bool, fm *mimi.FanoutMessage, welcome map[string]string) []string {
	switch fm.Message.WireFormat {
	case wire.WireFormatWelcome:
		var out []string
		for c, u := range welcome {
			s.joined[c] = u
			delete(s.leaving, c)
			s.participants[u] = true
			out = append(out, c)
		}
		sort.Strings(out)
		return out
	case wire.WireFormatPrivateMessage:
		return s.members()
	case wire.WireFormatPublicMessage:
		pm := fm.Message.PublicMessage
		if pm == nil {
			return nil
		}
		set := map[string]bool{}
		for _, c := range s.members() {
			set[c] = true
		}
		for c := range s.leaving {
			set[c] = true
		}
		c := &pm.Content
		switch c.ContentType {
		case wire.ContentProposal:
			if c.Proposal != nil {
				if as, ok := c.Proposal.Body.(*wire.AppSync); ok {
					s.appSync(local, &as.AppSync)
				}
			}
		case wire.ContentCommit:
			if c.Commit != nil {
				for _, por := range c.Commit.Proposals {
					if por.Proposal == nil {
						continue
					}
					if as, ok := por.Proposal.Body.(*wire.AppSync); ok {
						s.appSync(local, &as.AppSync)
					}
				}
				if c.Sender.Type == wire.SenderNewMemberCommit && c.Commit.Path != nil {
					if id, err := identityOf(&c.Commit.Path.LeafNode.Credential); err == nil && local(id.Client) {
						s.joined[id.Client] = id.User
						s.participants[id.User] = true
					}
				}
			}
			clear(s.leaving)
		}
		for _, cl := range s.members() {
			set[cl] = true
		}
		return sortedKeys(set)
	}
	return nil
}

func (p *Provider) followerRoom(id string) *followerRoom {
	if v, ok := p.followerRooms.Load(id); ok {
		return v.(*followerRoom)
	}
	v, _ := p.followerRooms.LoadOrStore(id, &followerRoom{st: newFollowerState()})
	return v.(*followerRoom)
}

func (p *Provider) isLocal(uri string) bool { return providerOf(uri) == p.domain }

// catchUp incorporates the room's events after fr.seq: each NotifyAccepted
// body is replayed with the Welcome recipients recorded by its
// ClientEnqueued events. The caller holds fr.mu.
func (p *Provider) catchUp(fr *followerRoom, room string) error {
	if fr.loaded {
		// Usually nothing is new (this provider's own /notify commands
		// advance fr.seq): one point read instead of a range scan.
		head, err := p.m.RoomHead(room)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if head == fr.seq {
			return nil
		}
	}
	evs, err := p.m.RoomEvents(room, fr.seq+1, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	type pendingNotify struct {
		msgs  []mimi.FanoutMessage
		recip map[uint32][]string
	}
	notifies := map[uint64]*pendingNotify{}
	var order []uint64
	for i := range evs {
		ev := &evs[i]
		switch b := ev.Body.(type) {
		case *eventlog.NotifyAccepted:
			msgs, err := mimi.UnmarshalFanout(b.Body)
			if err != nil {
				p.log.Error("stored notify body does not decode", "room", room, "seq", ev.Seq, "err", err)
				continue
			}
			notifies[ev.Seq] = &pendingNotify{msgs: msgs, recip: map[uint32][]string{}}
			order = append(order, ev.Seq)
		case *eventlog.GroupBound:
			fr.st.groupID = b.GroupID
		case *eventlog.ClientEnqueued:
			if n, ok := notifies[ev.Seq-b.Back]; ok && b.Back < ev.Seq {
				n.recip[b.Index] = append(n.recip[b.Index], b.Clients...)
			}
		}
	}
	for _, seq := range order {
		n := notifies[seq]
		for i := range n.msgs {
			var welcome map[string]string
			if n.msgs[i].Message.WireFormat == wire.WireFormatWelcome {
				welcome = map[string]string{}
				for _, c := range n.recip[uint32(i)] {
					if rec, err := p.m.Client(c); err == nil {
						welcome[c] = rec.User
					}
				}
			}
			fr.st.step(p.isLocal, &n.msgs[i], welcome)
		}
	}
	if len(evs) > 0 || !fr.loaded {
		if len(evs) > 0 {
			fr.seq = evs[len(evs)-1].RoomSeq
		}
		fr.publish()
	}
	fr.loaded = true
	return nil
}

// Notify serves POST /notify/{roomId} from peer as a follower
// (draft-ralston-mimi-protocol-02, Section 5.5). body is the request body,
// one or more FanoutMessages (ErrInvalid if it does not decode). Only the
// room's hub may notify (ErrForbidden otherwise).
//
// Exactly once: each FanoutMessage is accepted once per hub and room, by
// the hash of its bytes (eventlog.NotifyHash of the room and the
// message), however the hub batches it: a body repeated byte for byte, or
// re-batched differently by a restarted hub or a new leader after an
// answer was lost, is acknowledged and only its new messages are taken.
// The check is a NotifyNotSeen condition inside the replicated state
// machine, so it survives restarts and leader changes here too.
//
// The room's MLS group is bound on first sight (eventlog.GroupBound): a
// PublicMessage or PrivateMessage of another group, or of a group bound to
// another room, makes the body invalid. Each new message is recorded as
// its own NotifyAccepted event, queued for the local clients it concerns
// (see followerState.step); a Welcome goes only to the local clients whose
// KeyPackageRefs it carries and that were claimed for this room (the
// target routes of Section 5.2), with its RatchetTreeOption. The whole
// body is one Raft command, conditioned also on the room's last room
// sequence number so that the recipients are computed from current state.
func (p *Provider) Notify(ctx context.Context, peer, room string, body []byte) error {
	ru, err := mimi.ParseURIKind(room, mimi.KindRoom)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if ru.Provider != peer || peer == p.domain {
		return fmt.Errorf("%w: %s is not the hub of %s", ErrForbidden, peer, room)
	}
	msgs, raw, err := mimi.SplitFanout(body)
	if err != nil {
		return &MalformedError{What: "FanoutMessage", Err: err}
	}
	gid, err := fanoutGroup(msgs)
	if err != nil {
		return err
	}
	hashes := make([][]byte, len(raw))
	for i := range raw {
		hashes[i] = eventlog.NotifyHash(room, raw[i])
	}
	fr := p.followerRoom(room)
	fr.mu.Lock()
	defer fr.mu.Unlock()
	// The first attempt assumes every message is new (the usual case):
	// the state machine's NotifyNotSeen conditions decide. Only after it
	// found a duplicate (a hub's re-send) is each message looked up first,
	// so that the new ones are taken and the others acknowledged.
	lookUp := false
	for attempt := 0; attempt < p.attempts; attempt++ {
		if err := p.catchUp(fr, room); err != nil {
			return err
		}
		var conds []projections.Condition
		var ops []projections.Op
		ts := p.nowMillis()
		if gid != nil {
			bind, err := p.checkGroup(fr, peer, room, gid)
			if err != nil {
				return err
			}
			if bind {
				ops = append(ops, projections.EventOp(room, ts, &eventlog.GroupBound{Hub: peer, GroupID: gid}))
			}
		}
		sim := fr.st.clone()
		var echoes [][32]byte
		memo := clientMemo{}
		taken := map[string]bool{}
		// The recipients of a PrivateMessage (the members) stay the same
		// until a message of another kind changes the membership.
		var members []string
		membersKnown := false
		for i := range msgs {
			h := hashes[i]
			if taken[string(h)] {
				continue // repeated inside the body
			}
			if lookUp {
				if seen, err := p.m.NotifySeen(peer, h); err != nil {
					return fmt.Errorf("%w: %w", ErrUnavailable, err)
				} else if seen {
					continue
				}
			}
			taken[string(h)] = true
			conds = append(conds, projections.NotifyNotSeen(peer, h))
			ops = append(ops, projections.EventOp(room, ts, &eventlog.NotifyAccepted{Hub: peer, BodyHash: h, Body: raw[i]}))
			var welcome map[string]string
			if msgs[i].Message.WireFormat == wire.WireFormatWelcome && msgs[i].Message.Welcome != nil {
				welcome = p.welcomeClients(room, msgs[i].Message.Welcome)
			}
			var recips []string
			if msgs[i].Message.WireFormat == wire.WireFormatPrivateMessage {
				if !membersKnown {
					members = p.localMembersMemo(sim.step(p.isLocal, &msgs[i], welcome), nil, memo)
					membersKnown = true
				}
				recips = members
				// An application message one of our clients sent comes
				// back without that client (only those are remembered).
				if mb, ok := fanoutMessageBytes(&msgs[i], raw[i]); ok {
					if sender, eh, echo := p.echoes.sender(mb); echo {
						echoes = append(echoes, eh)
						if slices.Contains(recips, sender) {
							recips = slices.DeleteFunc(slices.Clone(recips), func(c string) bool { return c == sender })
						}
					}
				}
			} else {
				// Handshake messages go to their sender too (see
				// LocalUpdate).
				membersKnown = false
				recips = p.localMembersMemo(sim.step(p.isLocal, &msgs[i], welcome), nil, memo)
			}
			if len(recips) == 0 {
				continue
			}
			ops = append(ops, projections.EventOp(room, ts, &eventlog.ClientEnqueued{
				Clients: recips, Back: 1, Part: eventlog.PartMessage, Index: 0,
			}))
		}
		if len(taken) == 0 {
			return nil // every message was accepted before
		}
		cmd := &projections.Command{
			Conditions: append(conds, projections.RoomSeqIs(room, fr.seq)),
			Ops:        ops,
		}
		res, err := p.apply(ctx, cmd)
		if err != nil {
			return err
		}
		switch {
		case res.Err == nil:
			fr.st = sim
			if gid != nil {
				fr.st.groupID = gid
			}
			fr.seq = res.Events[len(res.Events)-1].RoomSeq
			fr.publish()
			p.echoes.forget(echoes)
			return nil
		case errors.Is(res.Err, projections.ErrDuplicateNotify), errors.Is(res.Err, projections.ErrGroupBound),
			errors.Is(res.Err, projections.ErrRoomSeqMismatch), errors.Is(res.Err, projections.ErrUnknownClient):
			// A re-send, another node took part of it, or the state
			// moved: decide again on current state.
			if errors.Is(res.Err, projections.ErrDuplicateNotify) {
				lookUp = true
			}
			if err := p.barrier(ctx); err != nil {
				return err
			}
			continue
		}
		return fmt.Errorf("provider: notify for %s: %w", room, res.Err)
	}
	return fmt.Errorf("%w: room %s is contended", ErrUnavailable, room)
}

// fanoutGroup returns the group_id the PublicMessages and PrivateMessages
// of a /notify body name (nil if it has only Welcomes, whose group is
// encrypted). They must all name the same group (ErrInvalid otherwise):
// one room, one group (draft-ralston-mimi-protocol-02, Section 5.5).
func fanoutGroup(msgs []mimi.FanoutMessage) ([]byte, error) {
	var gid []byte
	for i := range msgs {
		var g []byte
		switch m := &msgs[i].Message; {
		case m.WireFormat == wire.WireFormatPublicMessage && m.PublicMessage != nil:
			g = m.PublicMessage.Content.GroupID
		case m.WireFormat == wire.WireFormatPrivateMessage && m.PrivateMessage != nil:
			g = m.PrivateMessage.GroupID
		default:
			continue
		}
		if len(g) == 0 {
			return nil, fmt.Errorf("%w: FanoutMessage %d has an empty group_id", ErrInvalid, i)
		}
		if gid != nil && !bytes.Equal(g, gid) {
			return nil, fmt.Errorf("%w: FanoutMessage %d is for group %x, an earlier one for %x", ErrInvalid, i, g, gid)
		}
		gid = g
	}
	return gid, nil
}

// checkGroup checks that gid is the group of room, as far as this
// follower knows (draft-ralston-mimi-protocol-02, Section 5.5), and
// reports whether the room is to be bound to it now (first sight). The
// caller holds fr.mu.
func (p *Provider) checkGroup(fr *followerRoom, hub, room string, gid []byte) (bind bool, _ error) {
	if fr.st.groupID != nil {
		if !bytes.Equal(fr.st.groupID, gid) {
			return false, fmt.Errorf("%w: %s belongs to group %x, not %x", ErrInvalid, room, fr.st.groupID, gid)
		}
		return false, nil
	}
	other, err := p.m.GroupRoom(hub, gid)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if other != "" && other != room {
		return false, fmt.Errorf("%w: group %x belongs to %s, not %s", ErrInvalid, gid, other, room)
	}
	return other == "", nil
}

// welcomeClients maps the KeyPackageRefs of a Welcome to the registered
// local clients they were claimed from for this room (client -> user).
func (p *Provider) welcomeClients(room string, w *wire.Welcome) map[string]string {
	out := map[string]string{}
	for _, s := range w.Secrets {
		tr, err := p.m.TargetRoute(s.NewMember)
		if err != nil || !p.isLocal(tr.Client) {
			continue
		}
		if tr.Room != room {
			p.log.Warn("Welcome uses a KeyPackage claimed for another room", "room", room, "claimed_for", tr.Room, "client", tr.Client)
			continue
		}
		if rec, err := p.m.Client(tr.Client); err == nil {
			out[tr.Client] = rec.User
		}
	}
	return out
}

// followerMayRelayMessage is the follower's check before forwarding a
// local client's application message: the client joined the room's group
// and its user is a participant, as far as this provider knows. While a
// /notify for the room holds the room's lock (its command being
// replicated), a client that may relay according to the state
// incorporated before that /notify is let through without waiting for it
// (the hub decides, Section 5.4); any other waits and is checked against
// the current state.
func (p *Provider) followerMayRelayMessage(client, room string) error {
	fr := p.followerRoom(room)
	if !fr.mu.TryLock() {
		if m := fr.relay.Load(); m != nil && (*m)[client] {
			return nil
		}
		fr.mu.Lock()
	}
	defer fr.mu.Unlock()
	if err := p.catchUp(fr, room); err != nil {
		return err
	}
	u, ok := fr.st.joined[client]
	if !ok || !fr.st.participants[u] {
		return fmt.Errorf("%w: %s is not a member of %s", ErrForbidden, client, room)
	}
	return nil
}
