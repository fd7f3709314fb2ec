package framing

import (
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

// signLabel is the SignWithLabel label of FramedContentTBS (RFC 9420,
// Section 6.1).
const signLabel = wire.LabelFramedContentTBS

// checkContent validates the FramedContent fields framing relies on: a known
// content type with its body present, and a sender type allowed to send
// that content (RFC 9420, Section 6.1).
func checkContent(c *wire.FramedContent) error {
	switch c.ContentType {
	case wire.ContentApplication:
	case wire.ContentProposal:
		if c.Proposal == nil {
			return fmt.Errorf("%w: proposal content without a proposal", ErrMalformed)
		}
	case wire.ContentCommit:
		if c.Commit == nil {
			return fmt.Errorf("%w: commit content without a commit", ErrMalformed)
		}
	default:
		return fmt.Errorf("%w: content type %d", ErrMalformed, c.ContentType)
	}
	switch c.Sender.Type {
	case wire.SenderMember:
	case wire.SenderExternal:
		if c.ContentType != wire.ContentProposal {
			return fmt.Errorf("%w: external sender with content type %d", ErrInvalidSender, c.ContentType)
		}
	case wire.SenderNewMemberCommit:
		if c.ContentType != wire.ContentCommit {
			return fmt.Errorf("%w: new_member_commit sender with content type %d", ErrInvalidSender, c.ContentType)
		}
	case wire.SenderNewMemberProposal:
		if c.ContentType != wire.ContentProposal || c.Proposal.Type != wire.ProposalAdd {
			return fmt.Errorf("%w: new_member_proposal sender must send an Add proposal", ErrInvalidSender)
		}
	default:
		return fmt.Errorf("%w: sender type %d", ErrInvalidSender, c.Sender.Type)
	}
	return nil
}

// checkAuth checks that a confirmation_tag is present exactly for commits
// (RFC 9420, Section 6.1).
func checkAuth(ct wire.ContentType, auth *wire.FramedContentAuthData) error {
	if ct == wire.ContentCommit && auth.ConfirmationTag == nil {
		return fmt.Errorf("%w: commit without confirmation_tag", ErrMalformed)
	}
	if ct != wire.ContentCommit && auth.ConfirmationTag != nil {
		return fmt.Errorf("%w: confirmation_tag on a non-commit", ErrMalformed)
	}
	return nil
}

// contextFor returns ctx when the sender type puts the GroupContext into
// FramedContentTBS (member and new_member_commit, RFC 9420, Section 6.1),
// else nil. A needed but missing ctx is an error.
func contextFor(c *wire.FramedContent, ctx *wire.GroupContext) (*wire.GroupContext, error) {
	switch c.Sender.Type {
	case wire.SenderMember, wire.SenderNewMemberCommit:
		if ctx == nil {
			return nil, fmt.Errorf("%w: GroupContext needed for sender type %d", ErrMissingState, c.Sender.Type)
		}
		return ctx, nil
	}
	return nil, nil
}

// framedContentTBS encodes FramedContentTBS (RFC 9420, Section 6.1).
func framedContentTBS(wf wire.WireFormat, c *wire.FramedContent, ctx *wire.GroupContext) ([]byte, error) {
	ctx, err := contextFor(c, ctx)
	if err != nil {
		return nil, err
	}
	tbs, err := wire.FramedContentTBS(wf, c, ctx)
	if err != nil {
		return nil, fmt.Errorf("mls framing: encoding FramedContentTBS: %w", err)
	}
	return tbs, nil
}

// Sign builds the AuthenticatedContent for content sent with wire format wf
// and signs it: signature = SignWithLabel(sigPriv, "FramedContentTBS",
// FramedContentTBS) (RFC 9420, Section 6.1). ctx is the GroupContext of
// the current epoch; it is required for member and new_member_commit
// senders and ignored otherwise. For commits the caller sets
// Auth.ConfirmationTag afterwards (it depends on the signature through the
// confirmed transcript hash, Section 8.2).
func Sign(s *cipher.Suite, wf wire.WireFormat, content *wire.FramedContent, ctx *wire.GroupContext, sigPriv []byte) (*wire.AuthenticatedContent, error) {
	if s == nil || content == nil {
		return nil, fmt.Errorf("%w: nil suite or content", ErrMissingState)
	}
	if wf != wire.WireFormatPublicMessage && wf != wire.WireFormatPrivateMessage {
		return nil, fmt.Errorf("%w: wire format %d cannot carry FramedContent", ErrMalformed, wf)
	}
	if err := checkContent(content); err != nil {
		return nil, err
	}
	tbs, err := framedContentTBS(wf, content, ctx)
	if err != nil {
		return nil, err
	}
	sig, err := s.SignWithLabel(sigPriv, signLabel, tbs)
	if err != nil {
		return nil, fmt.Errorf("mls framing: signing FramedContentTBS: %w", err)
	}
	return &wire.AuthenticatedContent{
		WireFormat: wf,
		Content:    *content,
		Auth:       wire.FramedContentAuthData{Signature: sig},
	}, nil
}

// Verify checks the signature of ac against the signature public key
// sigPub (RFC 9420, Section 6.1). ctx is the GroupContext of the message's
// epoch, required for member and new_member_commit senders. The
// confirmation_tag of a commit is not checked here: it needs the next
// epoch's confirmation_key (see VerifyConfirmationTag). Failures wrap
// ErrBadSignature.
func Verify(s *cipher.Suite, ac *wire.AuthenticatedContent, ctx *wire.GroupContext, sigPub []byte) error {
	if s == nil || ac == nil {
		return fmt.Errorf("%w: nil suite or content", ErrMissingState)
	}
	if err := checkContent(&ac.Content); err != nil {
		return err
	}
	tbs, err := framedContentTBS(ac.WireFormat, &ac.Content, ctx)
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(sigPub, signLabel, tbs, ac.Auth.Signature); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return nil
}
