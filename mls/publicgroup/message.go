package publicgroup

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// VerifyPublicMessage authenticates a handshake PublicMessage against the
// current epoch (RFC 9420, Sections 6, 6.1 and 6.2) and returns its
// AuthenticatedContent:
//
//   - group_id and epoch are the view's (ErrWrongGroup, ErrWrongEpoch);
//   - the content is a proposal or a commit, with a confirmation_tag
//     exactly for commits and a membership_tag exactly for member senders,
//     each of KDF.Nh octets (ErrMalformedMessage);
//   - the sender may send it (ErrInvalidSender): a member leaf that is
//     non-blank (ErrUnknownSender), an entry of external_senders for
//     proposals (ErrUnknownExternalSender), new_member_proposal for an
//     Add, new_member_commit for a Commit with an UpdatePath;
//   - the signature verifies under the sender's key: the member leaf's,
//     the external sender's, the Add's LeafNode's for new_member_proposal
//     and the UpdatePath LeafNode's for new_member_commit
//     (ErrBadSignature).
//
// The membership_tag of member messages cannot be verified without the
// epoch's membership_key, which a server does not have: it is only
// required to be present (and absent for other senders). Members verify it.
func (v *View) VerifyPublicMessage(msg *wire.PublicMessage) (*wire.AuthenticatedContent, error) {
	if msg == nil {
		return nil, fmt.Errorf("%w: nil message", ErrMalformedMessage)
	}
	c := &msg.Content
	if !bytes.Equal(c.GroupID, v.ctx.GroupID) {
		return nil, ErrWrongGroup
	}
	if c.Epoch != v.ctx.Epoch {
		return nil, fmt.Errorf("%w: message epoch %d, current %d", ErrWrongEpoch, c.Epoch, v.ctx.Epoch)
	}
	switch c.ContentType {
	case wire.ContentProposal:
		if c.Proposal == nil || msg.Auth.ConfirmationTag != nil {
			return nil, fmt.Errorf("%w: proposal without body or with confirmation_tag", ErrMalformedMessage)
		}
	case wire.ContentCommit:
		if c.Commit == nil || msg.Auth.ConfirmationTag == nil {
			return nil, fmt.Errorf("%w: commit without body or confirmation_tag", ErrMalformedMessage)
		}
	default:
		return nil, fmt.Errorf("%w: content type %d in a handshake PublicMessage", ErrMalformedMessage, c.ContentType)
	}
	if (c.Sender.Type == wire.SenderMember) != (msg.MembershipTag != nil) {
		return nil, fmt.Errorf("%w: membership_tag presence does not match sender type %d", ErrMalformedMessage, c.Sender.Type)
	}
	// Both tags are MAC outputs of KDF.Nh octets (RFC 9420, Sections 6.1,
	// 6.2 and 8.2).
	nh := v.suite.HashSize()
	if (msg.MembershipTag != nil && len(msg.MembershipTag) != nh) || (msg.Auth.ConfirmationTag != nil && len(msg.Auth.ConfirmationTag) != nh) {
		return nil, fmt.Errorf("%w: MAC tag length is not %d", ErrMalformedMessage, nh)
	}
	key, err := v.signatureKey(c)
	if err != nil {
		return nil, err
	}
	ac := msg.AuthenticatedContent()
	if err := framing.Verify(v.suite, ac, v.ctx, key); err != nil {
		if errors.Is(err, framing.ErrInvalidSender) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidSender, err)
		}
		if errors.Is(err, framing.ErrMalformed) {
			return nil, fmt.Errorf("%w: %w", ErrMalformedMessage, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return ac, nil
}

// signatureKey finds the key the sender of c signs with (RFC 9420,
// Sections 6.1 and 12.4.3.2) and checks the sender may send c.
func (v *View) signatureKey(c *wire.FramedContent) ([]byte, error) {
	s := c.Sender
	switch s.Type {
	case wire.SenderMember:
		ln := v.tree.Leaf(treemath.LeafIndex(s.Index))
		if ln == nil {
			return nil, fmt.Errorf("%w: leaf %d", ErrUnknownSender, s.Index)
		}
		return ln.SignatureKey, nil
	case wire.SenderExternal:
		if c.ContentType != wire.ContentProposal {
			return nil, fmt.Errorf("%w: external sender with content type %d", ErrInvalidSender, c.ContentType)
		}
		if uint64(s.Index) >= uint64(len(v.extSenders)) {
			return nil, fmt.Errorf("%w: index %d of %d", ErrUnknownExternalSender, s.Index, len(v.extSenders))
		}
		return v.extSenders[s.Index].SignatureKey, nil
	case wire.SenderNewMemberProposal:
		if c.ContentType != wire.ContentProposal {
			return nil, fmt.Errorf("%w: new_member_proposal with content type %d", ErrInvalidSender, c.ContentType)
		}
		add, ok := c.Proposal.Body.(*wire.Add)
		if !ok || c.Proposal.Type != wire.ProposalAdd {
			return nil, fmt.Errorf("%w: new_member_proposal with proposal type %d: %w", ErrInvalidSender, c.Proposal.Type, commit.ErrNewMemberProposalType)
		}
		return add.KeyPackage.LeafNode.SignatureKey, nil
	case wire.SenderNewMemberCommit:
		if c.ContentType != wire.ContentCommit {
			return nil, fmt.Errorf("%w: new_member_commit with content type %d", ErrInvalidSender, c.ContentType)
		}
		if c.Commit.Path == nil {
			return nil, fmt.Errorf("%w: external Commit without UpdatePath: %w", ErrMalformedMessage, commit.ErrPathRequired)
		}
		return c.Commit.Path.LeafNode.SignatureKey, nil
	}
	return nil, fmt.Errorf("%w: sender type %d", ErrInvalidSender, s.Type)
}

// HandleProposal verifies a proposal PublicMessage (VerifyPublicMessage),
// validates the proposal against the current tree and GroupContext
// (commit.ValidateProposal: sender-type rules of RFC 9420, Section 12.1.8
// and the proposal's own validity, Section 12.1), caches it for Commits of
// this epoch and returns its ProposalRef (RFC 9420, Section 5.2). A
// proposal already cached is accepted again without change. On error the
// view is unchanged.
func (v *View) HandleProposal(msg *wire.PublicMessage) ([]byte, error) {
	ac, err := v.VerifyPublicMessage(msg)
	if err != nil {
		return nil, err
	}
	if ac.Content.ContentType != wire.ContentProposal {
		return nil, ErrNotProposal
	}
	if err := commit.ValidateProposal(v.suite, v.tree, v.ctx, ac.Content.Sender, ac.Content.Proposal, v.time()); err != nil {
		return nil, err
	}
	ref, err := ac.ProposalRef(v.suite)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedMessage, err)
	}
	if v.proposal(ref) != nil {
		return ref, nil
	}
	cp, err := clonePublicMessage(msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedMessage, err)
	}
	v.proposals = append(v.proposals, &cachedProposal{ref: ref, msg: cp})
	return ref, nil
}

// ProposalRef returns the ProposalRef (RFC 9420, Section 5.2) of a proposal
// PublicMessage.
func ProposalRef(s *cipher.Suite, msg *wire.PublicMessage) ([]byte, error) {
	if msg == nil {
		return nil, fmt.Errorf("%w: nil message", ErrMalformedMessage)
	}
	return msg.AuthenticatedContent().ProposalRef(s)
}

// SignExternalProposal builds the PublicMessage of a proposal from the
// external sender at sender_index senderIndex of the group's
// external_senders extension (RFC 9420, Sections 6, 6.1 and 12.1.8): sender
// type external, signed with sigPriv over FramedContentTBS (which holds no
// GroupContext for external senders), and no membership_tag. ctx is
// optional; when given, its group_id and epoch must equal groupID and
// epoch. Only proposal types an external sender may send are accepted
// (commit.ExternalSenderAllowed: Add, Remove, PreSharedKey, ReInit,
// GroupContextExtensions, AppSync).
func SignExternalProposal(suite *cipher.Suite, groupID []byte, epoch uint64, senderIndex uint32, proposal *wire.Proposal, ctx *wire.GroupContext, sigPriv []byte) (*wire.PublicMessage, error) {
	if suite == nil || proposal == nil || proposal.Body == nil {
		return nil, fmt.Errorf("%w: nil suite or proposal", ErrMalformedMessage)
	}
	if proposal.Type == 0 {
		p := *proposal
		p.Type = p.Body.ProposalType()
		proposal = &p
	}
	if !commit.ExternalSenderAllowed(proposal.Type) {
		return nil, fmt.Errorf("%w: proposal type %d: %w", ErrInvalidSender, proposal.Type, commit.ErrExternalSenderProposalType)
	}
	if ctx != nil && (!bytes.Equal(ctx.GroupID, groupID) || ctx.Epoch != epoch) {
		return nil, fmt.Errorf("%w: GroupContext is for another group or epoch", ErrWrongEpoch)
	}
	content := &wire.FramedContent{
		GroupID:     bytes.Clone(groupID),
		Epoch:       epoch,
		Sender:      wire.Sender{Type: wire.SenderExternal, Index: senderIndex},
		ContentType: wire.ContentProposal,
		Proposal:    proposal,
	}
	ac, err := framing.Sign(suite, wire.WireFormatPublicMessage, content, ctx, sigPriv)
	if err != nil {
		return nil, err
	}
	return &wire.PublicMessage{Content: ac.Content, Auth: ac.Auth}, nil
}
