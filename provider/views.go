package provider

import (
	"errors"
	"fmt"
	"sync"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// hubRoom is the in-memory state of a room hosted here: the secret-free
// MLS view of its group at the current epoch with the proposals cached in
// that epoch (RFC 9420, Section 12.1), and the last known room sequence
// number of the log. mu serializes the hub's decisions for the room in
// this process; the Raft conditions (RoomEpochIs, RoomSeqIs) make them
// safe across nodes.
type hubRoom struct {
	mu sync.Mutex
	// view is valid for (epoch, nprops); nil when unknown.
	view   *publicgroup.View
	epoch  uint64
	nprops uint32
	// head is the room's last room sequence number, if headKnown.
	head      uint64
	headKnown bool

	// qmu guards the queue of application messages waiting for the
	// room's group commit (hubSubmit) and draining, whether a drainer
	// goroutine is scheduled or running. It is taken with or without mu,
	// never mu while holding it.
	qmu      sync.Mutex
	queue    []*submitItem
	draining bool
}

func (p *Provider) hubRoom(id string) *hubRoom {
	if v, ok := p.hubRooms.Load(id); ok {
		return v.(*hubRoom)
	}
	v, _ := p.hubRooms.LoadOrStore(id, &hubRoom{})
	return v.(*hubRoom)
}

// invalidate forgets the cached view and head (after a lost race).
func (hr *hubRoom) invalidate() {
	hr.view = nil
	hr.headKnown = false
}

// advance moves the known head past the room events of a result when they
// follow it directly; otherwise the head becomes unknown.
func (hr *hubRoom) advance(room string, evs []eventlog.Event) {
	for i := range evs {
		ev := &evs[i]
		if ev.Room != room {
			continue
		}
		if hr.headKnown && ev.RoomSeq == hr.head+1 {
			hr.head = ev.RoomSeq
		} else {
			hr.headKnown = false
		}
	}
}

// hostedRoom returns the projections record of a room hosted here.
func (p *Provider) hostedRoom(id string) (*projections.Room, error) {
	rec, err := p.m.Room(id)
	if errors.Is(err, projections.ErrNoSuchRoom) {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchRoom, id)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if rec.Hub != p.domain {
		return nil, fmt.Errorf("%w: %s is not hosted here", ErrNoSuchRoom, id)
	}
	return rec, nil
}

// view returns the cached view of a hosted room for the record's epoch and
// proposal count, rebuilding it from the latest GroupInfo, ratchet tree and
// cached proposals when it is missing or stale (after a restart, a leader
// change or a lost race). The caller holds hr.mu.
func (p *Provider) view(hr *hubRoom, rec *projections.Room) (*publicgroup.View, error) {
	if hr.view != nil && hr.epoch == rec.Epoch && hr.nprops == rec.Proposals {
		return hr.view, nil
	}
	v, err := p.buildView(rec)
	if err != nil {
		return nil, err
	}
	hr.view, hr.epoch, hr.nprops = v, rec.Epoch, rec.Proposals
	return v, nil
}

func (p *Provider) buildView(rec *projections.Room) (*publicgroup.View, error) {
	var gi wire.GroupInfo
	if err := codec.Unmarshal(rec.GroupInfo, "GroupInfo", &gi); err != nil {
		return nil, fmt.Errorf("provider: room %s: stored GroupInfo: %w", rec.ID, err)
	}
	var rt wire.RatchetTree
	if err := codec.Unmarshal(rec.RatchetTree, "ratchet_tree", &rt); err != nil {
		return nil, fmt.Errorf("provider: room %s: stored ratchet tree: %w", rec.ID, err)
	}
	suite, err := cipher.Lookup(gi.GroupContext.CipherSuite)
	if err != nil {
		return nil, fmt.Errorf("provider: room %s: %w", rec.ID, err)
	}
	v, err := publicgroup.New(suite, &gi, rt)
	if err != nil {
		return nil, fmt.Errorf("provider: room %s: rebuilding the group view: %w", rec.ID, err)
	}
	if v.Epoch() != rec.Epoch {
		return nil, fmt.Errorf("provider: room %s: stored GroupInfo is for epoch %d, room at %d", rec.ID, v.Epoch(), rec.Epoch)
	}
	props, err := p.m.RoomProposals(rec.ID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// Cached proposals were valid when accepted; they are replayed without
	// lifetime checks (the clock is set afterwards) so that a restart
	// never loses one.
	for i, pr := range props {
		var msg wire.MLSMessage
		if err := codec.Unmarshal(pr.Message, "MLSMessage", &msg); err != nil || msg.PublicMessage == nil {
			return nil, fmt.Errorf("provider: room %s: cached proposal %d does not decode: %v", rec.ID, i, err)
		}
		if _, err := v.HandleProposal(msg.PublicMessage); err != nil {
			return nil, fmt.Errorf("provider: room %s: cached proposal %d: %w", rec.ID, i, err)
		}
	}
	v.SetClock(p.clock)
	return v, nil
}

// RoomState decodes the room state a hub keeps for a hosted room (its
// projections record): the committed state plus the effect of every
// proposal accepted in the current epoch (draft-ralston-mimi-protocol-02,
// Section 6.1: "As soon as the Hub accepts an event that changes the room
// state, its effect is applied to the room state").
func RoomState(rec *projections.Room) (*mimi.Room, error) { return effectiveRoom(rec) }

func effectiveRoom(rec *projections.Room) (*mimi.Room, error) {
	rm, err := decodeRoom(rec.Policy, rec.Participants)
	if err != nil {
		return nil, fmt.Errorf("provider: room %s: stored room state: %w", rec.ID, err)
	}
	return rm, nil
}
