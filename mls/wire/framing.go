package wire

import (
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
)

// MarshalMLS encodes a Sender (RFC 9420, Section 6).
func (s *Sender) MarshalMLS(w *codec.Writer) {
	w.U8(uint8(s.Type))
	switch s.Type {
	case SenderMember, SenderExternal:
		w.U32(s.Index)
	case SenderNewMemberProposal, SenderNewMemberCommit:
		if s.Index != 0 {
			fail(w, "Sender", "index set for a new-member sender")
		}
	default:
		fail(w, "Sender.sender_type", "unknown type %d", s.Type)
	}
}

// UnmarshalMLS decodes a Sender (RFC 9420, Section 6). Reserved or unknown
// sender types fail with ErrUnknownSenderType.
func (s *Sender) UnmarshalMLS(r *codec.Reader) {
	*s = Sender{Type: SenderType(r.U8("Sender.sender_type"))}
	if r.Err() != nil {
		return
	}
	switch s.Type {
	case SenderMember:
		s.Index = r.U32("Sender.leaf_index")
	case SenderExternal:
		s.Index = r.U32("Sender.sender_index")
	case SenderNewMemberProposal, SenderNewMemberCommit:
	default:
		badEnum(r, "Sender.sender_type", ErrUnknownSenderType, uint64(s.Type))
	}
}

// marshalBody writes the content_type select shared by FramedContent and
// PrivateMessageContent.
func marshalContentBody(w *codec.Writer, field string, ct ContentType, app []byte, p *Proposal, c *Commit) {
	switch ct {
	case ContentApplication:
		if p != nil || c != nil {
			fail(w, field, "application content with a Proposal or Commit")
			return
		}
		w.Opaque(app)
	case ContentProposal:
		if p == nil || c != nil || len(app) > 0 {
			fail(w, field, "proposal content needs exactly a Proposal")
			return
		}
		p.MarshalMLS(w)
	case ContentCommit:
		if c == nil || p != nil || len(app) > 0 {
			fail(w, field, "commit content needs exactly a Commit")
			return
		}
		c.MarshalMLS(w)
	default:
		fail(w, field+".content_type", "unknown type %d", ct)
	}
}

func unmarshalContentBody(r *codec.Reader, field string, ct ContentType) (app []byte, p *Proposal, c *Commit) {
	switch ct {
	case ContentApplication:
		app = r.Opaque(field + ".application_data")
	case ContentProposal:
		p = new(Proposal)
		p.UnmarshalMLS(r)
	case ContentCommit:
		c = new(Commit)
		c.UnmarshalMLS(r)
	default:
		badEnum(r, field+".content_type", ErrUnknownContentType, uint64(ct))
	}
	return
}

// MarshalMLS encodes a FramedContent (RFC 9420, Section 6).
func (f *FramedContent) MarshalMLS(w *codec.Writer) {
	w.Opaque(f.GroupID)
	w.U64(f.Epoch)
	f.Sender.MarshalMLS(w)
	w.Opaque(f.AuthenticatedData)
	w.U8(uint8(f.ContentType))
	marshalContentBody(w, "FramedContent", f.ContentType, f.ApplicationData, f.Proposal, f.Commit)
}

// UnmarshalMLS decodes a FramedContent (RFC 9420, Section 6). Reserved or
// unknown content types fail with ErrUnknownContentType.
func (f *FramedContent) UnmarshalMLS(r *codec.Reader) {
	*f = FramedContent{
		GroupID: r.Opaque("FramedContent.group_id"),
		Epoch:   r.U64("FramedContent.epoch"),
	}
	f.Sender.UnmarshalMLS(r)
	f.AuthenticatedData = r.Opaque("FramedContent.authenticated_data")
	f.ContentType = ContentType(r.U8("FramedContent.content_type"))
	if r.Err() != nil {
		return
	}
	f.ApplicationData, f.Proposal, f.Commit = unmarshalContentBody(r, "FramedContent", f.ContentType)
}

// EncodeMLS encodes FramedContentAuthData (RFC 9420, Section 6.1) for
// content type ct: the confirmation_tag is written only for commits (and
// must be nil otherwise).
func (a *FramedContentAuthData) EncodeMLS(w *codec.Writer, ct ContentType) {
	w.Opaque(a.Signature)
	switch ct {
	case ContentCommit:
		w.Opaque(a.ConfirmationTag)
	case ContentApplication, ContentProposal:
		if a.ConfirmationTag != nil {
			fail(w, "FramedContentAuthData.confirmation_tag", "set for content type %d", ct)
		}
	default:
		fail(w, "FramedContentAuthData", "unknown content type %d", ct)
	}
}

// DecodeMLS decodes FramedContentAuthData (RFC 9420, Section 6.1) for
// content type ct; the confirmation_tag is read only for commits.
func (a *FramedContentAuthData) DecodeMLS(r *codec.Reader, ct ContentType) {
	*a = FramedContentAuthData{Signature: r.Opaque("FramedContentAuthData.signature")}
	switch ct {
	case ContentCommit:
		a.ConfirmationTag = r.Opaque("FramedContentAuthData.confirmation_tag")
	case ContentApplication, ContentProposal:
	default:
		badEnum(r, "FramedContentAuthData", ErrUnknownContentType, uint64(ct))
	}
}

// MarshalMLS encodes an AuthenticatedContent (RFC 9420, Section 6.1).
func (a *AuthenticatedContent) MarshalMLS(w *codec.Writer) {
	w.U16(uint16(a.WireFormat))
	a.Content.MarshalMLS(w)
	a.Auth.EncodeMLS(w, a.Content.ContentType)
}

// UnmarshalMLS decodes an AuthenticatedContent (RFC 9420, Section 6.1). A
// reserved wire_format 0 fails with ErrUnknownWireFormat.
func (a *AuthenticatedContent) UnmarshalMLS(r *codec.Reader) {
	*a = AuthenticatedContent{WireFormat: WireFormat(r.U16("AuthenticatedContent.wire_format"))}
	if r.Err() == nil && a.WireFormat == 0 {
		badEnum(r, "AuthenticatedContent.wire_format", ErrUnknownWireFormat, 0)
		return
	}
	a.Content.UnmarshalMLS(r)
	if r.Err() != nil {
		return
	}
	a.Auth.DecodeMLS(r, a.Content.ContentType)
}

// ProposalRef returns the ProposalRef of a (RFC 9420, Section 5.2): RefHash
// over the encoded AuthenticatedContent, which must carry a proposal.
func (a *AuthenticatedContent) ProposalRef(s *cipher.Suite) ([]byte, error) {
	if a.Content.ContentType != ContentProposal {
		return nil, fmt.Errorf("mls wire: ProposalRef of content type %d: %w", a.Content.ContentType, ErrInvalidField)
	}
	b, err := codec.Marshal(a)
	if err != nil {
		return nil, err
	}
	return s.ProposalRef(b), nil
}

// FramedContentTBS returns the encoded FramedContentTBS (RFC 9420,
// Section 6.1): version mls10, wf, the content and, for member and
// new_member_commit senders, ctx (which must then be non-nil).
func FramedContentTBS(wf WireFormat, c *FramedContent, ctx *GroupContext) ([]byte, error) {
	w := codec.NewWriter()
	marshalTBS(w, wf, c, ctx)
	return w.Bytes()
}

func marshalTBS(w *codec.Writer, wf WireFormat, c *FramedContent, ctx *GroupContext) {
	w.U16(uint16(MLS10))
	w.U16(uint16(wf))
	c.MarshalMLS(w)
	switch c.Sender.Type {
	case SenderMember, SenderNewMemberCommit:
		if ctx == nil {
			fail(w, "FramedContentTBS.context", "GroupContext required for sender type %d", c.Sender.Type)
			return
		}
		ctx.MarshalMLS(w)
	}
}

// TBS returns the FramedContentTBS that a's signature covers (RFC 9420,
// Section 6.1); see FramedContentTBS.
func (a *AuthenticatedContent) TBS(ctx *GroupContext) ([]byte, error) {
	return FramedContentTBS(a.WireFormat, &a.Content, ctx)
}

// Sign sets a.Auth.Signature to SignWithLabel(priv, "FramedContentTBS",
// FramedContentTBS) (RFC 9420, Section 6.1).
func (a *AuthenticatedContent) Sign(s *cipher.Suite, priv []byte, ctx *GroupContext) error {
	tbs, err := a.TBS(ctx)
	if err != nil {
		return err
	}
	sig, err := s.SignWithLabel(priv, LabelFramedContentTBS, tbs)
	if err != nil {
		return fmt.Errorf("mls wire: signing FramedContent: %w", err)
	}
	a.Auth.Signature = sig
	return nil
}

// VerifySignature verifies a.Auth.Signature with the sender's signature key
// pub (RFC 9420, Section 6.1). Failures wrap cipher.ErrBadSignature.
func (a *AuthenticatedContent) VerifySignature(s *cipher.Suite, pub []byte, ctx *GroupContext) error {
	tbs, err := a.TBS(ctx)
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(pub, LabelFramedContentTBS, tbs, a.Auth.Signature); err != nil {
		return fmt.Errorf("mls wire: FramedContent signature: %w", err)
	}
	return nil
}

// AuthenticatedContentTBM returns the encoded AuthenticatedContentTBM
// (RFC 9420, Section 6.2) of a PublicMessage, the input of the
// membership_tag MAC: FramedContentTBS with wire format
// mls_public_message, then auth.
func AuthenticatedContentTBM(c *FramedContent, auth *FramedContentAuthData, ctx *GroupContext) ([]byte, error) {
	w := codec.NewWriter()
	marshalTBS(w, WireFormatPublicMessage, c, ctx)
	auth.EncodeMLS(w, c.ContentType)
	return w.Bytes()
}

// ConfirmedTranscriptHashInput returns the encoded
// ConfirmedTranscriptHashInput (RFC 9420, Section 8.2) for a commit.
func ConfirmedTranscriptHashInput(wf WireFormat, c *FramedContent, signature []byte) ([]byte, error) {
	if c.ContentType != ContentCommit {
		return nil, fmt.Errorf("mls wire: ConfirmedTranscriptHashInput of content type %d: %w", c.ContentType, ErrInvalidField)
	}
	w := codec.NewWriter()
	w.U16(uint16(wf))
	c.MarshalMLS(w)
	w.Opaque(signature)
	return w.Bytes()
}

// InterimTranscriptHashInput returns the encoded InterimTranscriptHashInput
// (RFC 9420, Section 8.2).
func InterimTranscriptHashInput(confirmationTag []byte) ([]byte, error) {
	w := codec.NewWriter()
	w.Opaque(confirmationTag)
	return w.Bytes()
}

// MarshalMLS encodes a PublicMessage (RFC 9420, Section 6.2). The
// membership_tag is written exactly when the sender is a member; a
// MembershipTag on a non-member message makes the Writer fail.
func (p *PublicMessage) MarshalMLS(w *codec.Writer) {
	p.Content.MarshalMLS(w)
	p.Auth.EncodeMLS(w, p.Content.ContentType)
	if p.Content.Sender.Type == SenderMember {
		w.Opaque(p.MembershipTag)
	} else if p.MembershipTag != nil {
		fail(w, "PublicMessage.membership_tag", "set for sender type %d", p.Content.Sender.Type)
	}
}

// UnmarshalMLS decodes a PublicMessage (RFC 9420, Section 6.2). The
// membership_tag is read exactly when the sender is a member.
func (p *PublicMessage) UnmarshalMLS(r *codec.Reader) {
	*p = PublicMessage{}
	p.Content.UnmarshalMLS(r)
	if r.Err() != nil {
		return
	}
	p.Auth.DecodeMLS(r, p.Content.ContentType)
	if p.Content.Sender.Type == SenderMember {
		p.MembershipTag = r.Opaque("PublicMessage.membership_tag")
	}
}

// AuthenticatedContent returns the AuthenticatedContent a PublicMessage
// carries (RFC 9420, Section 6.2). It shares p's byte slices.
func (p *PublicMessage) AuthenticatedContent() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: p.Content, Auth: p.Auth}
}

// TBM returns AuthenticatedContentTBM for p (RFC 9420, Section 6.2).
func (p *PublicMessage) TBM(ctx *GroupContext) ([]byte, error) {
	return AuthenticatedContentTBM(&p.Content, &p.Auth, ctx)
}

func checkContentType(r *codec.Reader, field string, ct ContentType) {
	switch ct {
	case ContentApplication, ContentProposal, ContentCommit:
	default:
		badEnum(r, field, ErrUnknownContentType, uint64(ct))
	}
}

// MarshalMLS encodes a PrivateMessage (RFC 9420, Section 6.3).
func (p *PrivateMessage) MarshalMLS(w *codec.Writer) {
	w.Opaque(p.GroupID)
	w.U64(p.Epoch)
	w.U8(uint8(p.ContentType))
	w.Opaque(p.AuthenticatedData)
	w.Opaque(p.EncryptedSenderData)
	w.Opaque(p.Ciphertext)
}

// UnmarshalMLS decodes a PrivateMessage (RFC 9420, Section 6.3). Reserved or
// unknown content types fail with ErrUnknownContentType, since the
// ciphertext could not be interpreted.
func (p *PrivateMessage) UnmarshalMLS(r *codec.Reader) {
	*p = PrivateMessage{
		GroupID:     r.Opaque("PrivateMessage.group_id"),
		Epoch:       r.U64("PrivateMessage.epoch"),
		ContentType: ContentType(r.U8("PrivateMessage.content_type")),
	}
	if r.Err() != nil {
		return
	}
	checkContentType(r, "PrivateMessage.content_type", p.ContentType)
	p.AuthenticatedData = r.Opaque("PrivateMessage.authenticated_data")
	p.EncryptedSenderData = r.Opaque("PrivateMessage.encrypted_sender_data")
	p.Ciphertext = r.Opaque("PrivateMessage.ciphertext")
}

// PrivateMessageContent (RFC 9420, Section 6.3.1) is the plaintext of
// PrivateMessage.ciphertext: the content selected by the PrivateMessage's
// content_type, the auth data and PaddingLen zero octets.
type PrivateMessageContent struct {
	ContentType     ContentType
	ApplicationData []byte
	Proposal        *Proposal
	Commit          *Commit
	Auth            FramedContentAuthData
	PaddingLen      int
}

// MarshalMLS encodes a PrivateMessageContent (RFC 9420, Section 6.3.1),
// with PaddingLen zero octets of padding.
func (p *PrivateMessageContent) MarshalMLS(w *codec.Writer) {
	marshalContentBody(w, "PrivateMessageContent", p.ContentType, p.ApplicationData, p.Proposal, p.Commit)
	p.Auth.EncodeMLS(w, p.ContentType)
	if p.PaddingLen < 0 {
		fail(w, "PrivateMessageContent.padding", "negative length %d", p.PaddingLen)
		return
	}
	w.Raw(make([]byte, p.PaddingLen))
}

// decode reads a PrivateMessageContent of content type ct, consuming the
// rest of r as padding.
func (p *PrivateMessageContent) decode(r *codec.Reader, ct ContentType) {
	*p = PrivateMessageContent{ContentType: ct}
	p.ApplicationData, p.Proposal, p.Commit = unmarshalContentBody(r, "PrivateMessageContent", ct)
	if r.Err() != nil {
		return
	}
	p.Auth.DecodeMLS(r, ct)
	pad := r.Raw("PrivateMessageContent.padding", r.Len())
	for _, b := range pad {
		if b != 0 {
			r.Fail("PrivateMessageContent.padding", ErrNonZeroPadding)
			return
		}
	}
	p.PaddingLen = len(pad)
}

// FramedContent returns the FramedContent that p and the header fields of
// its PrivateMessage describe, with sender s (RFC 9420, Section 6.3.2).
func (p *PrivateMessageContent) FramedContent(m *PrivateMessage, s Sender) *FramedContent {
	return &FramedContent{
		GroupID:           m.GroupID,
		Epoch:             m.Epoch,
		Sender:            s,
		AuthenticatedData: m.AuthenticatedData,
		ContentType:       p.ContentType,
		ApplicationData:   p.ApplicationData,
		Proposal:          p.Proposal,
		Commit:            p.Commit,
	}
}

// MarshalPrivateMessageContent encodes the PrivateMessageContent (RFC 9420,
// Section 6.3.1) for content c and auth, followed by padding zero octets.
func MarshalPrivateMessageContent(c *FramedContent, auth *FramedContentAuthData, padding int) ([]byte, error) {
	p := PrivateMessageContent{
		ContentType:     c.ContentType,
		ApplicationData: c.ApplicationData,
		Proposal:        c.Proposal,
		Commit:          c.Commit,
		Auth:            *auth,
		PaddingLen:      padding,
	}
	return codec.Marshal(&p)
}

// UnmarshalPrivateMessageContent decodes a PrivateMessageContent (RFC 9420,
// Section 6.3.1) whose content type ct comes from the PrivateMessage. The
// octets after auth are padding and must all be zero (ErrNonZeroPadding).
func UnmarshalPrivateMessageContent(b []byte, ct ContentType) (*PrivateMessageContent, error) {
	var p PrivateMessageContent
	r := codec.NewReader(b)
	p.decode(r, ct)
	if err := r.Done("PrivateMessageContent"); err != nil {
		return nil, err
	}
	return &p, nil
}

// PrivateContentAAD (RFC 9420, Section 6.3.1) is the AAD of the content
// encryption.
type PrivateContentAAD struct {
	GroupID           []byte
	Epoch             uint64
	ContentType       ContentType
	AuthenticatedData []byte
}

// MarshalMLS encodes a PrivateContentAAD (RFC 9420, Section 6.3.1).
func (a *PrivateContentAAD) MarshalMLS(w *codec.Writer) {
	w.Opaque(a.GroupID)
	w.U64(a.Epoch)
	w.U8(uint8(a.ContentType))
	w.Opaque(a.AuthenticatedData)
}

// UnmarshalMLS decodes a PrivateContentAAD (RFC 9420, Section 6.3.1).
func (a *PrivateContentAAD) UnmarshalMLS(r *codec.Reader) {
	*a = PrivateContentAAD{
		GroupID:     r.Opaque("PrivateContentAAD.group_id"),
		Epoch:       r.U64("PrivateContentAAD.epoch"),
		ContentType: ContentType(r.U8("PrivateContentAAD.content_type")),
	}
	if r.Err() != nil {
		return
	}
	checkContentType(r, "PrivateContentAAD.content_type", a.ContentType)
	a.AuthenticatedData = r.Opaque("PrivateContentAAD.authenticated_data")
}

// ContentAAD returns the PrivateContentAAD of m (RFC 9420, Section 6.3.1).
func (m *PrivateMessage) ContentAAD() *PrivateContentAAD {
	return &PrivateContentAAD{GroupID: m.GroupID, Epoch: m.Epoch, ContentType: m.ContentType, AuthenticatedData: m.AuthenticatedData}
}

// SenderDataAAD returns the SenderDataAAD of m (RFC 9420, Section 6.3.2).
func (m *PrivateMessage) SenderDataAAD() *SenderDataAAD {
	return &SenderDataAAD{GroupID: m.GroupID, Epoch: m.Epoch, ContentType: m.ContentType}
}

// SenderData (RFC 9420, Section 6.3.2) is the plaintext of
// PrivateMessage.encrypted_sender_data.
type SenderData struct {
	LeafIndex  uint32
	Generation uint32
	ReuseGuard [4]byte
}

// MarshalMLS encodes a SenderData (RFC 9420, Section 6.3.2).
func (s *SenderData) MarshalMLS(w *codec.Writer) {
	w.U32(s.LeafIndex)
	w.U32(s.Generation)
	w.Raw(s.ReuseGuard[:])
}

// UnmarshalMLS decodes a SenderData (RFC 9420, Section 6.3.2).
func (s *SenderData) UnmarshalMLS(r *codec.Reader) {
	*s = SenderData{
		LeafIndex:  r.U32("SenderData.leaf_index"),
		Generation: r.U32("SenderData.generation"),
	}
	copy(s.ReuseGuard[:], r.Raw("SenderData.reuse_guard", 4))
}

// SenderDataAAD (RFC 9420, Section 6.3.2) is the AAD of the sender data
// encryption.
type SenderDataAAD struct {
	GroupID     []byte
	Epoch       uint64
	ContentType ContentType
}

// MarshalMLS encodes a SenderDataAAD (RFC 9420, Section 6.3.2).
func (a *SenderDataAAD) MarshalMLS(w *codec.Writer) {
	w.Opaque(a.GroupID)
	w.U64(a.Epoch)
	w.U8(uint8(a.ContentType))
}

// UnmarshalMLS decodes a SenderDataAAD (RFC 9420, Section 6.3.2).
func (a *SenderDataAAD) UnmarshalMLS(r *codec.Reader) {
	*a = SenderDataAAD{
		GroupID:     r.Opaque("SenderDataAAD.group_id"),
		Epoch:       r.U64("SenderDataAAD.epoch"),
		ContentType: ContentType(r.U8("SenderDataAAD.content_type")),
	}
	if r.Err() == nil {
		checkContentType(r, "SenderDataAAD.content_type", a.ContentType)
	}
}
