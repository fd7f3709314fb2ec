package mls

import (
	"bytes"
	"fmt"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// Processed is the outcome of processing an incoming message (RFC 9420,
// Sections 6, 12.1 and 12.4.2).
type Processed struct {
	// ContentType says which of ApplicationData, Proposal and Commit is set.
	ContentType wire.ContentType
	// Sender is the message's sender; Epoch the epoch it was sent in.
	Sender wire.Sender
	Epoch  uint64
	// AuthenticatedData is the FramedContent authenticated_data.
	AuthenticatedData []byte
	// ApplicationData is the plaintext of an application message.
	ApplicationData []byte
	// Proposal and ProposalRef describe a proposal now cached by reference.
	Proposal    *wire.Proposal
	ProposalRef []byte
	// Commit describes an applied commit.
	Commit *CommitResult
}

// CommitResult describes a commit that was applied (RFC 9420, Section
// 12.4.2).
type CommitResult struct {
	// Epoch is the new epoch.
	Epoch uint64
	// Committer is the commit's sender and CommitterLeaf its leaf in the
	// new epoch (for an external commit, the joiner's new leaf).
	Committer     wire.Sender
	CommitterLeaf treemath.LeafIndex
	// External is set for an external commit (RFC 9420, Section 12.4.3.2).
	External bool
	// Proposals are the committed proposals in commit order, with the
	// proposer and, for those included by reference, the ProposalRef.
	Proposals []PendingProposal
	// Added, Removed and Updated list the affected leaves. Added are in
	// proposal order, with their KeyPackages.
	Added            []treemath.LeafIndex
	AddedKeyPackages []*wire.KeyPackage
	Removed          []treemath.LeafIndex
	Updated          []treemath.LeafIndex
	// PSKs are the injected pre-shared keys, in order.
	PSKs []wire.PreSharedKeyID
	// ReInit is set when the commit reinitializes the group (RFC 9420,
	// Section 11.2); the group is then inactive.
	ReInit *wire.ReInit
	// AppSyncs are the committed AppSync proposals.
	AppSyncs []*wire.AppSync
	// SelfRemoved is set when the commit removed this member: the group is
	// inactive and stays in the last epoch we belonged to (RFC 9420,
	// Section 12.4.2).
	SelfRemoved bool
	// OwnCommit is set when the message was our own pending commit, which
	// was merged.
	OwnCommit bool
}

// Process processes an incoming MLSMessage for this group (RFC 9420,
// Sections 6, 12.1, 12.4.2 and 15): a PublicMessage proposal or commit
// from a member, an external sender listed in external_senders (Section
// 12.1.8), a new member (new_member_proposal, new_member_commit), or a
// PrivateMessage application message, proposal or commit. Proposals are
// validated and cached by reference; commits are fully validated and
// applied atomically (on error the group is unchanged). Application
// messages of kept past epochs are decrypted too. Welcome, GroupInfo and
// KeyPackage messages are refused (use JoinFromWelcome / JoinExternal).
func (g *Group) Process(msg *wire.MLSMessage) (*Processed, error) {
	if msg == nil {
		return nil, fmt.Errorf("%w: nil message", ErrInvalidMessage)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if msg.Version != wire.MLS10 {
		return nil, fmt.Errorf("%w: version %d", ErrInvalidMessage, msg.Version)
	}
	// Our own pending commit coming back from the delivery service.
	if pc := g.pending; pc != nil && !pc.done && pc.baseGen == g.gen {
		if b, err := msg.MarshalBinary(); err == nil && bytes.Equal(b, pc.encoded) {
			return g.ownCommitEcho(pc)
		}
	}
	switch {
	case msg.WireFormat == wire.WireFormatPublicMessage && msg.PublicMessage != nil:
		return g.processPublic(msg)
	case msg.WireFormat == wire.WireFormatPrivateMessage && msg.PrivateMessage != nil:
		return g.processPrivate(msg.PrivateMessage)
	}
	return nil, fmt.Errorf("%w: wire format %d is not a group message", ErrInvalidMessage, msg.WireFormat)
}

// processPublic handles a PublicMessage (RFC 9420, Section 6.2).
func (g *Group) processPublic(msg *wire.MLSMessage) (*Processed, error) {
	s := g.s
	pm := msg.PublicMessage
	c := &pm.Content
	if !bytes.Equal(c.GroupID, s.ctx.GroupID) {
		return nil, ErrWrongGroup
	}
	if c.Epoch != s.ctx.Epoch {
		return nil, fmt.Errorf("%w: message epoch %d, current %d", ErrWrongEpoch, c.Epoch, s.ctx.Epoch)
	}
	if err := s.checkActive(); err != nil {
		return nil, err
	}
	// A commit from our leaf that is not our pending commit (RFC 9420,
	// Section 7.5: we could not decrypt our own path).
	if c.ContentType == wire.ContentCommit && c.Sender.Type == wire.SenderMember && c.Sender.Index == uint32(s.me) {
		return nil, ErrOwnCommit
	}
	sigPub, err := g.senderKey(s, c)
	if err != nil {
		return nil, err
	}
	ac, err := framing.UnprotectPublic(g.framingEpoch(s), pm, sigPub)
	if err != nil {
		return nil, err
	}
	return g.dispatch(s, ac)
}

// ownCommitEcho merges our pending commit pc, whose message just came back
// from the delivery service.
func (g *Group) ownCommitEcho(pc *PendingCommit) (*Processed, error) {
	s := g.s
	ac := pc.Message
	var sender wire.Sender
	var ad []byte
	if ac.PublicMessage != nil {
		sender, ad = ac.PublicMessage.Content.Sender, ac.PublicMessage.Content.AuthenticatedData
	} else {
		sender, ad = wire.Sender{Type: wire.SenderMember, Index: uint32(s.me)}, ac.PrivateMessage.AuthenticatedData
	}
	pc.done, pc.merged = true, true
	g.advance(pc.next)
	return &Processed{
		ContentType: wire.ContentCommit, Sender: sender, Epoch: s.ctx.Epoch, AuthenticatedData: ad,
		Commit: &CommitResult{
			Epoch: pc.Epoch, Committer: sender, CommitterLeaf: s.me,
			Added: pc.Added, Removed: pc.Removed, OwnCommit: true,
		},
	}, nil
}

// senderKey returns the signature key the sender of a PublicMessage must
// have signed with (RFC 9420, Sections 6.1 and 12.1.8).
func (g *Group) senderKey(s *groupState, c *wire.FramedContent) ([]byte, error) {
	switch c.Sender.Type {
	case wire.SenderMember:
		ln := s.tree.Leaf(treemath.LeafIndex(c.Sender.Index))
		if ln == nil {
			return nil, fmt.Errorf("%w: leaf %d is blank or outside the tree", ErrUnknownSender, c.Sender.Index)
		}
		return ln.SignatureKey, nil
	case wire.SenderExternal:
		if c.ContentType != wire.ContentProposal {
			return nil, fmt.Errorf("%w: external sender with content type %d", ErrUnknownSender, c.ContentType)
		}
		senders, found, err := wire.ExternalSendersExtension(s.ctx.Extensions)
		if err != nil {
			return nil, fmt.Errorf("%w: external_senders: %w", ErrUnknownSender, err)
		}
		if !found || uint64(c.Sender.Index) >= uint64(len(senders)) {
			return nil, fmt.Errorf("%w: external sender %d not in external_senders", ErrUnknownSender, c.Sender.Index)
		}
		return senders[c.Sender.Index].SignatureKey, nil
	case wire.SenderNewMemberProposal:
		if c.ContentType != wire.ContentProposal || c.Proposal == nil || c.Proposal.Type != wire.ProposalAdd {
			return nil, fmt.Errorf("%w: new_member_proposal must send an Add", ErrUnknownSender)
		}
		add, ok := c.Proposal.Body.(*wire.Add)
		if !ok {
			return nil, fmt.Errorf("%w: malformed Add", ErrInvalidMessage)
		}
		return add.KeyPackage.LeafNode.SignatureKey, nil
	case wire.SenderNewMemberCommit:
		if c.ContentType != wire.ContentCommit || c.Commit == nil {
			return nil, fmt.Errorf("%w: new_member_commit must send a Commit", ErrUnknownSender)
		}
		if c.Commit.Path == nil {
			return nil, fmt.Errorf("%w: %w: external commit without path", ErrInvalidExternalCommit, ErrPathRequired)
		}
		return c.Commit.Path.LeafNode.SignatureKey, nil
	}
	return nil, fmt.Errorf("%w: sender type %d", ErrUnknownSender, c.Sender.Type)
}

// processPrivate handles a PrivateMessage (RFC 9420, Section 6.3) of the
// current epoch, or an application message of a kept past epoch (Section
// 15.3).
func (g *Group) processPrivate(m *wire.PrivateMessage) (*Processed, error) {
	s := g.s
	if !bytes.Equal(m.GroupID, s.ctx.GroupID) {
		return nil, ErrWrongGroup
	}
	if m.Epoch == s.ctx.Epoch {
		if m.ContentType != wire.ContentApplication {
			if err := s.checkActive(); err != nil {
				return nil, err
			}
		}
		ac, err := framing.UnprotectPrivate(g.framingEpoch(s), m)
		if err != nil {
			return nil, err
		}
		gen, err := g.senderGeneration(s.secrets.SenderDataSecret, m)
		if err != nil {
			return nil, err
		}
		p, err := g.dispatch(s, ac)
		if err != nil {
			return nil, err
		}
		// The message was accepted: record the consumed key in the epoch we
		// decrypted it in (s, which may now be a past epoch).
		s.keys.noteUsed(ac.Content.Sender.Index, ratchetType(m.ContentType), gen)
		return p, nil
	}
	if m.ContentType != wire.ContentApplication {
		return nil, fmt.Errorf("%w: handshake message for epoch %d, current %d", ErrWrongEpoch, m.Epoch, s.ctx.Epoch)
	}
	g.expirePast()
	for _, p := range s.past {
		if p.epoch != m.Epoch {
			continue
		}
		ac, err := framing.UnprotectPrivate(g.pastFramingEpoch(p, s.me), m)
		if err != nil {
			return nil, err
		}
		gen, err := g.senderGeneration(p.senderData, m)
		if err != nil {
			return nil, err
		}
		p.keys.noteUsed(ac.Content.Sender.Index, keyschedule.Application, gen)
		return &Processed{
			ContentType: wire.ContentApplication, Sender: ac.Content.Sender, Epoch: m.Epoch,
			AuthenticatedData: ac.Content.AuthenticatedData, ApplicationData: ac.Content.ApplicationData,
		}, nil
	}
	return nil, fmt.Errorf("%w: application message for epoch %d, current %d, not kept", ErrWrongEpoch, m.Epoch, s.ctx.Epoch)
}

func ratchetType(ct wire.ContentType) keyschedule.RatchetType {
	if ct == wire.ContentApplication {
		return keyschedule.Application
	}
	return keyschedule.Handshake
}

// senderGeneration decrypts the sender data of an already authenticated
// PrivateMessage to learn the generation it used (RFC 9420, Section
// 6.3.2); framing does not report it and the persisted secret tree
// (epochKeys.noteUsed) needs it.
func (g *Group) senderGeneration(senderDataSecret []byte, m *wire.PrivateMessage) (uint32, error) {
	key, nonce, err := keyschedule.SenderDataKeyNonce(g.suite, senderDataSecret, m.Ciphertext)
	if err != nil {
		return 0, err
	}
	aad, err := codec.Marshal(m.SenderDataAAD())
	if err != nil {
		return 0, err
	}
	pt, err := g.suite.Open(key, nonce, aad, m.EncryptedSenderData)
	if err != nil {
		return 0, fmt.Errorf("%w: sender data: %w", framing.ErrDecrypt, err)
	}
	var sd wire.SenderData
	if err := codec.Unmarshal(pt, "SenderData", &sd); err != nil {
		return 0, fmt.Errorf("%w: %w", framing.ErrMalformed, err)
	}
	return sd.Generation, nil
}

// dispatch handles authenticated content of the current epoch.
func (g *Group) dispatch(s *groupState, ac *wire.AuthenticatedContent) (*Processed, error) {
	c := &ac.Content
	p := &Processed{ContentType: c.ContentType, Sender: c.Sender, Epoch: c.Epoch, AuthenticatedData: c.AuthenticatedData}
	switch c.ContentType {
	case wire.ContentApplication:
		if ac.WireFormat != wire.WireFormatPrivateMessage {
			return nil, framing.ErrApplicationInPublic
		}
		p.ApplicationData = c.ApplicationData
		return p, nil
	case wire.ContentProposal:
		ref, err := ac.ProposalRef(g.suite)
		if err != nil {
			return nil, err
		}
		p.Proposal, p.ProposalRef = c.Proposal, ref
		for _, cp := range s.proposals {
			if bytes.Equal(cp.ref, ref) {
				return p, nil // already cached (for example our own, echoed)
			}
		}
		if err := validateProposal(g.suite, s.tree, s.ctx, c.Sender, c.Proposal, g.cfg.now()); err != nil {
			return nil, err
		}
		g.cacheProposal(s, ref, c.Proposal, c.Sender)
		return p, nil
	case wire.ContentCommit:
		res, next, err := g.processCommit(s, ac)
		if err != nil {
			return nil, err
		}
		if res.SelfRemoved {
			g.s = next
			g.gen++
			g.pending = nil
		} else {
			g.advance(next)
		}
		p.Commit = res
		return p, nil
	}
	return nil, fmt.Errorf("%w: content type %d", ErrInvalidMessage, c.ContentType)
}

// ProtectApplication encrypts application data as a PrivateMessage of the
// current epoch (RFC 9420, Sections 6.3 and 15). It fails with
// ErrPendingProposals while proposals are cached (Section 12.4), unless
// Config.AllowAppDataWithPendingProposals.
func (g *Group) ProtectApplication(data []byte, opts *SendOptions) (*wire.MLSMessage, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.s
	if err := s.checkActive(); err != nil {
		return nil, err
	}
	if len(s.proposals) > 0 && !g.cfg.AllowAppDataWithPendingProposals {
		return nil, fmt.Errorf("%w: %d pending", ErrPendingProposals, len(s.proposals))
	}
	var ad []byte
	if opts != nil {
		ad = bytes.Clone(opts.AuthenticatedData)
	}
	content := &wire.FramedContent{
		GroupID:           s.ctx.GroupID,
		Epoch:             s.ctx.Epoch,
		Sender:            wire.Sender{Type: wire.SenderMember, Index: uint32(s.me)},
		AuthenticatedData: ad,
		ContentType:       wire.ContentApplication,
		ApplicationData:   bytes.Clone(data),
	}
	ac, err := framing.Sign(g.suite, wire.WireFormatPrivateMessage, content, s.ctx, s.sigPriv)
	if err != nil {
		return nil, err
	}
	return g.protect(s, ac)
}
