package framing

import (
	"crypto/subtle"
	"fmt"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// membershipTag computes MAC(membership_key, AuthenticatedContentTBM) for
// the encoded FramedContentTBS tbs and auth (RFC 9420, Section 6.2).
func (e *Epoch) membershipTag(tbs []byte, ct wire.ContentType, auth *wire.FramedContentAuthData) ([]byte, error) {
	if e.MembershipKey == nil {
		return nil, fmt.Errorf("%w: no membership key", ErrMissingState)
	}
	w := codec.NewWriter()
	w.Raw(tbs)
	auth.EncodeMLS(w, ct)
	tbm, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls framing: encoding AuthenticatedContentTBM: %w", err)
	}
	return e.Suite.MAC(e.MembershipKey, tbm), nil
}

// ProtectPublic encodes a signed AuthenticatedContent as a PublicMessage
// (RFC 9420, Section 6.2), adding membership_tag = MAC(membership_key,
// AuthenticatedContentTBM) for member senders. ac must have been signed for
// wire format mls_public_message (see Sign) and, for a commit, carry its
// confirmation_tag. Application data is refused with
// ErrApplicationInPublic. e needs Suite, and Context and MembershipKey for
// member senders.
func ProtectPublic(e *Epoch, ac *wire.AuthenticatedContent) (*wire.PublicMessage, error) {
	if e == nil || e.Suite == nil || ac == nil {
		return nil, fmt.Errorf("%w: nil epoch, suite or content", ErrMissingState)
	}
	if ac.WireFormat != wire.WireFormatPublicMessage {
		return nil, fmt.Errorf("%w: content signed for wire format %d, not PublicMessage", ErrMalformed, ac.WireFormat)
	}
	if ac.Content.ContentType == wire.ContentApplication {
		return nil, ErrApplicationInPublic
	}
	if err := checkContent(&ac.Content); err != nil {
		return nil, err
	}
	if err := checkAuth(ac.Content.ContentType, &ac.Auth); err != nil {
		return nil, err
	}
	m := &wire.PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if ac.Content.Sender.Type == wire.SenderMember {
		tbs, err := framedContentTBS(wire.WireFormatPublicMessage, &ac.Content, e.Context)
		if err != nil {
			return nil, err
		}
		if m.MembershipTag, err = e.membershipTag(tbs, ac.Content.ContentType, &ac.Auth); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// UnprotectPublic verifies a PublicMessage and returns its
// AuthenticatedContent (RFC 9420, Section 6.2). It rejects a message for
// another group or epoch than e.Context (ErrWrongGroup, ErrWrongEpoch),
// application data (ErrApplicationInPublic), senders not allowed for the
// content (ErrInvalidSender), a missing or wrong membership_tag for member
// senders (ErrBadMembershipTag, compared in constant time), and a signature
// that does not verify under sigPub (ErrBadSignature). sigPub is the
// sender's signature public key, which the caller looks up from
// m.Content.Sender (RFC 9420, Section 6.1). The confirmation_tag of a commit
// is left to the caller (VerifyConfirmationTag).
func UnprotectPublic(e *Epoch, m *wire.PublicMessage, sigPub []byte) (*wire.AuthenticatedContent, error) {
	if e == nil || e.Suite == nil || m == nil {
		return nil, fmt.Errorf("%w: nil epoch, suite or message", ErrMissingState)
	}
	c := &m.Content
	if err := e.checkGroupEpoch(c.GroupID, c.Epoch); err != nil {
		return nil, err
	}
	if c.ContentType == wire.ContentApplication {
		return nil, ErrApplicationInPublic
	}
	if err := checkContent(c); err != nil {
		return nil, err
	}
	if err := checkAuth(c.ContentType, &m.Auth); err != nil {
		return nil, err
	}
	tbs, err := framedContentTBS(wire.WireFormatPublicMessage, c, e.Context)
	if err != nil {
		return nil, err
	}
	if c.Sender.Type == wire.SenderMember {
		want, err := e.membershipTag(tbs, c.ContentType, &m.Auth)
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare(want, m.MembershipTag) != 1 {
			return nil, ErrBadMembershipTag
		}
	} else if m.MembershipTag != nil {
		return nil, fmt.Errorf("%w: membership_tag from a non-member sender", ErrMalformed)
	}
	if err := e.Suite.VerifyWithLabel(sigPub, signLabel, tbs, m.Auth.Signature); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return &wire.AuthenticatedContent{
		WireFormat: wire.WireFormatPublicMessage,
		Content:    m.Content,
		Auth:       m.Auth,
	}, nil
}
