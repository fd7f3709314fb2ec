package chaos

import (
	"fmt"
	"slices"

	"github.com/openmimi/mimi/eventlog"
	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/wire"
)

// markLeaving sets LogEntry.Leaving on the proposal entries decoded from
// evs (entries, from logEntries): for a participant-list AppSync that
// removes users (a leave, draft-ralston-mimi-protocol-02, Section 3.5),
// the member clients of those users, read from the room's ratchet tree in
// the proposal's epoch (that of the room's RoomCreated or last
// CommitAccepted event).
func markLeaving(evs []*adminv1.Event, entries []LogEntry) error {
	bySeq := map[uint64]*LogEntry{}
	for i := range entries {
		bySeq[entries[i].Seq] = &entries[i]
	}
	trees := map[string][]byte{}
	for _, ae := range evs {
		e := bySeq[ae.GetSeq()]
		if e == nil || (e.Kind != KindCreated && e.Kind != KindCommit && e.Kind != KindProposal) {
			continue
		}
		ev, err := eventlog.Decode(ae.GetRaw())
		if err != nil {
			return fmt.Errorf("chaos: decoding event %d: %w", ae.GetSeq(), err)
		}
		switch b := ev.Body.(type) {
		case *eventlog.RoomCreated:
			trees[e.Room] = b.RatchetTree
		case *eventlog.CommitAccepted:
			trees[e.Room] = b.RatchetTree
		case *eventlog.ProposalAccepted:
			users := removedUsers(e.Message)
			if len(users) == 0 {
				continue
			}
			tree, err := wire.UnmarshalRatchetTree(trees[e.Room])
			if err != nil {
				return fmt.Errorf("chaos: the ratchet tree of %s at event %d: %w", e.Room, ae.GetSeq(), err)
			}
			for _, n := range tree {
				if n == nil || n.Leaf == nil {
					continue
				}
				if id, err := mimi.IdentityFromCredential(&n.Leaf.Credential); err == nil && slices.Contains(users, id.User) {
					e.Leaving = append(e.Leaving, id.Client)
				}
			}
			slices.Sort(e.Leaving)
		}
	}
	return nil
}

// removedUsers returns the users a proposal's participant-list AppSync
// removes (draft-ralston-mimi-protocol-02, Section 4.3.2), if it is one.
func removedUsers(msg []byte) []string {
	m, err := wire.UnmarshalMLSMessage(msg)
	if err != nil || m.PublicMessage == nil || m.PublicMessage.Content.Proposal == nil {
		return nil
	}
	as, ok := m.PublicMessage.Content.Proposal.Body.(*wire.AppSync)
	if !ok || as.ApplicationID != mimi.AppIDParticipantList || as.Type != appsync.Map {
		return nil
	}
	var out []string
	for _, k := range as.RemovedKeys {
		out = append(out, string(k))
	}
	return out
}
