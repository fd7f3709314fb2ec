package mls

import (
	"bytes"
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

// SuccessorOptions customize ReInitGroup and Branch.
type SuccessorOptions struct {
	// Leaf customizes the creator's leaf in the new group.
	Leaf LeafOptions
	// Config is the new group's policy (its ExternalPSK and ResumptionPSK
	// callbacks are kept; the old group's resumption PSK is supplied here).
	Config Config
	// WelcomeRatchetTree puts the ratchet_tree extension into the Welcome.
	WelcomeRatchetTree bool
}

// ReInitGroup creates the group that replaces this one after a committed
// ReInit (RFC 9420, Section 11.2): a new group with the ReInit's group_id,
// version, cipher suite and extensions, created by signer (whose key must
// be for the new suite), and a PendingCommit adding keyPackages (the other
// members' KeyPackages for the new suite) whose Welcome carries the
// resumption PSK (usage reinit) of this group's current epoch, the epoch
// the ReInit commit started. The new group is at epoch 1 once the commit
// is merged; joiners pass this group as JoinOptions.PreviousGroup.
func (g *Group) ReInitGroup(signer Signer, keyPackages []*wire.KeyPackage, opts *SuccessorOptions) (*Group, *PendingCommit, error) {
	g.mu.Lock()
	ri := g.s.reinit
	oldID, epoch := bytes.Clone(g.s.ctx.GroupID), g.s.ctx.Epoch
	var psk []byte
	for _, r := range g.s.resumption {
		if r.epoch == epoch {
			psk = r.psk
		}
	}
	g.mu.Unlock()
	if ri == nil {
		return nil, nil, fmt.Errorf("%w: no ReInit was committed", ErrInvalidArgument)
	}
	if ri.Version != wire.MLS10 {
		return nil, nil, fmt.Errorf("%w: ReInit to version %d", ErrInvalidArgument, ri.Version)
	}
	return successor(ri.CipherSuite, ri.GroupID, ri.Extensions, wire.ResumptionReInit, oldID, epoch, psk, signer, keyPackages, opts)
}

// Branch creates a subgroup of this group (RFC 9420, Section 11.3): a new
// group newGroupID with the same version, cipher suite and extensions,
// created by signer, and a PendingCommit adding keyPackages (fresh
// KeyPackages of the members to include) whose Welcome carries this
// epoch's resumption PSK with usage branch. Joiners pass this group as
// JoinOptions.PreviousGroup.
func (g *Group) Branch(newGroupID []byte, signer Signer, keyPackages []*wire.KeyPackage, opts *SuccessorOptions) (*Group, *PendingCommit, error) {
	g.mu.Lock()
	s := g.s
	if err := s.checkActive(); err != nil {
		g.mu.Unlock()
		return nil, nil, err
	}
	oldID, epoch, exts := bytes.Clone(s.ctx.GroupID), s.ctx.Epoch, cloneExtensions(s.ctx.Extensions)
	psk := bytes.Clone(s.secrets.ResumptionPSK)
	g.mu.Unlock()
	return successor(g.suite.ID(), newGroupID, exts, wire.ResumptionBranch, oldID, epoch, psk, signer, keyPackages, opts)
}

// successor creates a new group and its first commit with a resumption PSK
// of the old group in the key schedule and the Welcome (RFC 9420,
// Sections 11.2 and 11.3). The PSK is not a PreSharedKey proposal (those
// are invalid with usage reinit or branch, Section 12.2); nobody but the
// creator processes this first commit.
func successor(suite cipher.SuiteID, groupID []byte, exts []wire.Extension, usage wire.ResumptionPSKUsage,
	oldID []byte, epoch uint64, psk []byte, signer Signer, keyPackages []*wire.KeyPackage, opts *SuccessorOptions) (*Group, *PendingCommit, error) {
	if opts == nil {
		opts = &SuccessorOptions{}
	}
	if psk == nil {
		return nil, nil, fmt.Errorf("%w: resumption PSK of epoch %d not kept", ErrMissingPSK, epoch)
	}
	ng, err := CreateGroup(suite, groupID, signer, &CreateOptions{Leaf: opts.Leaf, Extensions: exts, Config: opts.Config})
	if err != nil {
		return nil, nil, err
	}
	id, err := NewResumptionPSKID(suite, usage, oldID, epoch)
	if err != nil {
		return nil, nil, err
	}
	ng.mu.Lock()
	defer ng.mu.Unlock()
	user := ng.cfg
	ng.cfg.ResumptionPSK = func(gid []byte, e uint64) ([]byte, error) {
		if bytes.Equal(gid, oldID) && e == epoch {
			return psk, nil
		}
		if user.ResumptionPSK != nil {
			return user.ResumptionPSK(gid, e)
		}
		return nil, fmt.Errorf("%w: resumption PSK of group %x epoch %d", ErrMissingPSK, gid, e)
	}
	defer func() { ng.cfg = user }()
	s := ng.s
	me := wire.Sender{Type: wire.SenderMember, Index: uint32(s.me)}
	in := &commitInput{
		sender: me, sigPriv: s.sigPriv, initSecret: s.secrets.InitSecret, extraPSKs: []wire.PreSharedKeyID{id},
		opts: &CommitOptions{WelcomeRatchetTree: opts.WelcomeRatchetTree},
	}
	for _, kp := range keyPackages {
		if kp == nil {
			return nil, nil, fmt.Errorf("%w: nil key package", ErrInvalidArgument)
		}
		p := &wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp}}
		in.proposals = append(in.proposals, sourcedProposal{Proposal: p, Sender: me})
		in.ors = append(in.ors, wire.ProposalOrRef{Type: wire.ProposalOrRefProposal, Proposal: p})
	}
	pc, err := ng.buildCommit(s, in)
	if err != nil {
		return nil, nil, err
	}
	ng.pending = pc
	return ng, pc, nil
}
