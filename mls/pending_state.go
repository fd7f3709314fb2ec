package mls

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// pendingVersion is the format version of PendingCommit.MarshalBinary.
const pendingVersion = 1

// MarshalBinary serializes a member's pending commit so that the group,
// saved with MarshalState and restored with UnmarshalState, can still
// merge it or recognize its echo after a restart (RestorePendingCommit):
// a client whose commit got no answer from the delivery service does not
// know whether it was accepted (RFC 9420, Section 14 leaves this to the
// application). The encoding, in the TLS presentation language of RFC
// 9420, Section 2.1:
//
//	struct {
//	    uint8 version = 1;
//	    uint64 epoch;                   // the epoch the commit starts
//	    MLSMessage commit;
//	    uint32 added<V>;
//	    opaque added_key_package_refs<V><V>;
//	    uint32 removed<V>;
//	    opaque proposal_refs<V><V>;
//	    opaque next_state<V>;           // MarshalState of the new epoch
//	} PendingCommitState;
//
// The Welcome and GroupInfo are not kept. THE OUTPUT IS SECRET like
// MarshalState's: it holds the new epoch's secrets. External joins
// (NewExternalJoin) and commits already merged or discarded cannot be
// serialized.
func (pc *PendingCommit) MarshalBinary() ([]byte, error) {
	if pc.external {
		return nil, errors.New("mls: an external join's pending commit is not serialized")
	}
	if pc.done || pc.next == nil {
		return nil, ErrStaleCommit
	}
	next, err := (&Group{cfg: pc.cfg, suite: pc.suite, s: pc.next}).marshalState()
	if err != nil {
		return nil, err
	}
	w := codec.NewWriter()
	w.U8(pendingVersion)
	w.U64(pc.Epoch)
	w.Raw(pc.encoded)
	leaves := func(ls []treemath.LeafIndex) {
		w.Vector(func(w *codec.Writer) {
			for _, l := range ls {
				w.U32(uint32(l))
			}
		})
	}
	refs := func(rs [][]byte) {
		w.Vector(func(w *codec.Writer) {
			for _, r := range rs {
				w.Opaque(r)
			}
		})
	}
	leaves(pc.Added)
	refs(pc.AddedKeyPackageRefs)
	leaves(pc.Removed)
	refs(pc.ProposalRefs)
	w.Opaque(next)
	clear(next)
	return w.Bytes()
}

// RestorePendingCommit makes a commit serialized with
// PendingCommit.MarshalBinary the group's pending commit again: Merge
// applies it, and Process recognizes its echo from the delivery service
// (RFC 9420, Section 12.4). The group must still be in the epoch the
// commit was made in. The restored commit's Welcome and GroupInfo are
// nil. Malformed input, or a commit of another group or epoch, fails with
// ErrStateCorrupt and changes nothing.
func (g *Group) RestorePendingCommit(data []byte) (*PendingCommit, error) {
	bad := func(err error) (*PendingCommit, error) {
		return nil, fmt.Errorf("%w: pending commit: %w", ErrStateCorrupt, err)
	}
	r := codec.NewReader(bytes.Clone(data))
	if v := r.U8("pending.version"); r.Err() == nil && v != pendingVersion {
		return bad(fmt.Errorf("format version %d", v))
	}
	pc := &PendingCommit{Epoch: r.U64("pending.epoch"), Message: new(wire.MLSMessage)}
	start := r.Offset()
	pc.Message.UnmarshalMLS(r)
	if r.Err() == nil {
		pc.encoded = bytes.Clone(data[start:r.Offset()])
	}
	leaves := func(name string) (ls []treemath.LeafIndex) {
		r.Vector(name, func(r *codec.Reader) { ls = append(ls, treemath.LeafIndex(r.U32(name))) })
		return ls
	}
	refs := func(name string) (rs [][]byte) {
		r.Vector(name, func(r *codec.Reader) { rs = append(rs, r.Opaque(name)) })
		return rs
	}
	pc.Added = leaves("pending.added")
	pc.AddedKeyPackageRefs = refs("pending.added_refs")
	pc.Removed = leaves("pending.removed")
	pc.ProposalRefs = refs("pending.proposal_refs")
	nextState := r.Opaque("pending.next_state")
	if err := r.Done("pending"); err != nil {
		return bad(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	next, err := UnmarshalState(nextState, g.cfg) // the group's receive window for the new epoch's secret tree
	clear(nextState)
	if err != nil {
		return bad(err)
	}
	s := g.s
	switch {
	case next.suite != g.suite || !bytes.Equal(next.s.ctx.GroupID, s.ctx.GroupID):
		return bad(errors.New("of another group"))
	case next.s.ctx.Epoch != s.ctx.Epoch+1 || pc.Epoch != next.s.ctx.Epoch:
		return bad(fmt.Errorf("starts epoch %d (state %d), group in epoch %d", pc.Epoch, next.s.ctx.Epoch, s.ctx.Epoch))
	case next.s.me != s.me:
		return bad(fmt.Errorf("own leaf %d, group's %d", next.s.me, s.me))
	}
	pc.g, pc.cfg, pc.suite, pc.next, pc.baseGen = g, g.cfg, g.suite, next.s, g.gen
	g.pending = pc
	return pc, nil
}
