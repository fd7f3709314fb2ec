package wire

import (
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
)

// MarshalMLS encodes an Add (RFC 9420, Section 12.1.1).
func (p *Add) MarshalMLS(w *codec.Writer) { p.KeyPackage.MarshalMLS(w) }

// UnmarshalMLS decodes an Add (RFC 9420, Section 12.1.1).
func (p *Add) UnmarshalMLS(r *codec.Reader) { p.KeyPackage.UnmarshalMLS(r) }

// MarshalMLS encodes an Update (RFC 9420, Section 12.1.2).
func (p *Update) MarshalMLS(w *codec.Writer) { p.LeafNode.MarshalMLS(w) }

// UnmarshalMLS decodes an Update (RFC 9420, Section 12.1.2).
func (p *Update) UnmarshalMLS(r *codec.Reader) { p.LeafNode.UnmarshalMLS(r) }

// MarshalMLS encodes a Remove (RFC 9420, Section 12.1.3).
func (p *Remove) MarshalMLS(w *codec.Writer) { w.U32(p.Removed) }

// UnmarshalMLS decodes a Remove (RFC 9420, Section 12.1.3).
func (p *Remove) UnmarshalMLS(r *codec.Reader) { p.Removed = r.U32("Remove.removed") }

// MarshalMLS encodes a PreSharedKey proposal (RFC 9420, Section 12.1.4).
func (p *PreSharedKey) MarshalMLS(w *codec.Writer) { p.PSK.MarshalMLS(w) }

// UnmarshalMLS decodes a PreSharedKey proposal (RFC 9420, Section 12.1.4).
func (p *PreSharedKey) UnmarshalMLS(r *codec.Reader) { p.PSK.UnmarshalMLS(r) }

// MarshalMLS encodes a ReInit (RFC 9420, Section 12.1.5).
func (p *ReInit) MarshalMLS(w *codec.Writer) {
	w.Opaque(p.GroupID)
	w.U16(uint16(p.Version))
	w.U16(uint16(p.CipherSuite))
	writeExtensions(w, p.Extensions)
}

// UnmarshalMLS decodes a ReInit (RFC 9420, Section 12.1.5).
func (p *ReInit) UnmarshalMLS(r *codec.Reader) {
	*p = ReInit{
		GroupID:     r.Opaque("ReInit.group_id"),
		Version:     ProtocolVersion(r.U16("ReInit.version")),
		CipherSuite: cipher.SuiteID(r.U16("ReInit.cipher_suite")),
		Extensions:  readExtensions(r, "ReInit.extensions"),
	}
}

// MarshalMLS encodes an ExternalInit (RFC 9420, Section 12.1.6).
func (p *ExternalInit) MarshalMLS(w *codec.Writer) { w.Opaque(p.KEMOutput) }

// UnmarshalMLS decodes an ExternalInit (RFC 9420, Section 12.1.6).
func (p *ExternalInit) UnmarshalMLS(r *codec.Reader) {
	p.KEMOutput = r.Opaque("ExternalInit.kem_output")
}

// MarshalMLS encodes a GroupContextExtensions (RFC 9420, Section 12.1.7).
func (p *GroupContextExtensions) MarshalMLS(w *codec.Writer) { writeExtensions(w, p.Extensions) }

// UnmarshalMLS decodes a GroupContextExtensions (RFC 9420, Section 12.1.7).
func (p *GroupContextExtensions) UnmarshalMLS(r *codec.Reader) {
	p.Extensions = readExtensions(r, "GroupContextExtensions.extensions")
}

// CodableProposal is a proposal body with its own wire encoding.
type CodableProposal interface {
	ProposalBody
	codec.Marshaler
	codec.Unmarshaler
}

// newProposalBody returns an empty body for t, or nil if t is unknown.
// Besides RFC 9420's types it knows SelfRemove (draft-ietf-mls-extensions)
// and AppSync (draft-ralston-mimi-protocol-02, Section 7).
func newProposalBody(t ProposalType) CodableProposal {
	switch t {
	case ProposalAdd:
		return new(Add)
	case ProposalUpdate:
		return new(Update)
	case ProposalRemove:
		return new(Remove)
	case ProposalPreSharedKey:
		return new(PreSharedKey)
	case ProposalReInit:
		return new(ReInit)
	case ProposalExternalInit:
		return new(ExternalInit)
	case ProposalGroupContextExtensions:
		return new(GroupContextExtensions)
	case ProposalSelfRemove:
		return new(SelfRemove)
	case ProposalAppSync:
		return new(AppSync)
	}
	return nil
}

// knownProposalType reports whether t has a decoder.
func knownProposalType(t ProposalType) bool { return newProposalBody(t) != nil }

// MarshalMLS encodes a Proposal (RFC 9420, Section 12.1). Body must be one
// of this package's body types; Type may be left zero, in which case the
// body's type is used, otherwise it must match the body.
func (p *Proposal) MarshalMLS(w *codec.Writer) {
	if p.Body == nil {
		fail(w, "Proposal", "nil body")
		return
	}
	t := p.Body.ProposalType()
	if p.Type != 0 && p.Type != t {
		fail(w, "Proposal.proposal_type", "type %d but body of type %d", p.Type, t)
		return
	}
	m, ok := p.Body.(codec.Marshaler)
	if !ok || !knownProposalType(t) {
		fail(w, "Proposal", "body type %T has no encoding", p.Body)
		return
	}
	w.U16(uint16(t))
	m.MarshalMLS(w)
}

// UnmarshalMLS decodes a Proposal (RFC 9420, Section 12.1). An unknown
// proposal_type fails with ErrUnknownProposalType: proposal bodies are not
// length-prefixed, so the remainder cannot be parsed.
func (p *Proposal) UnmarshalMLS(r *codec.Reader) {
	*p = Proposal{Type: ProposalType(r.U16("Proposal.proposal_type"))}
	if r.Err() != nil {
		return
	}
	body := newProposalBody(p.Type)
	if body == nil {
		badEnum(r, "Proposal.proposal_type", ErrUnknownProposalType, uint64(p.Type))
		return
	}
	body.UnmarshalMLS(r)
	p.Body = body
}

// MarshalMLS encodes a ProposalOrRef (RFC 9420, Section 12.4).
func (p *ProposalOrRef) MarshalMLS(w *codec.Writer) {
	w.U8(uint8(p.Type))
	switch p.Type {
	case ProposalOrRefProposal:
		if p.Proposal == nil || len(p.Reference) > 0 {
			fail(w, "ProposalOrRef", "type proposal needs Proposal and no Reference")
			return
		}
		p.Proposal.MarshalMLS(w)
	case ProposalOrRefReference:
		if p.Proposal != nil {
			fail(w, "ProposalOrRef", "type reference with a Proposal")
			return
		}
		w.Opaque(p.Reference)
	default:
		fail(w, "ProposalOrRef.type", "unknown type %d", p.Type)
	}
}

// UnmarshalMLS decodes a ProposalOrRef (RFC 9420, Section 12.4). Reserved or
// unknown types fail with ErrUnknownProposalOrRefType.
func (p *ProposalOrRef) UnmarshalMLS(r *codec.Reader) {
	*p = ProposalOrRef{Type: ProposalOrRefType(r.U8("ProposalOrRef.type"))}
	if r.Err() != nil {
		return
	}
	switch p.Type {
	case ProposalOrRefProposal:
		p.Proposal = new(Proposal)
		p.Proposal.UnmarshalMLS(r)
	case ProposalOrRefReference:
		p.Reference = r.Opaque("ProposalOrRef.reference")
	default:
		badEnum(r, "ProposalOrRef.type", ErrUnknownProposalOrRefType, uint64(p.Type))
	}
}

// MarshalMLS encodes a Commit (RFC 9420, Section 12.4).
func (c *Commit) MarshalMLS(w *codec.Writer) {
	writeVec(w, c.Proposals, func(w *codec.Writer, p *ProposalOrRef) { p.MarshalMLS(w) })
	w.Optional(c.Path != nil, func(w *codec.Writer) { c.Path.MarshalMLS(w) })
}

// UnmarshalMLS decodes a Commit (RFC 9420, Section 12.4).
func (c *Commit) UnmarshalMLS(r *codec.Reader) {
	*c = Commit{
		Proposals: readVec(r, "Commit.proposals", func(r *codec.Reader) (p ProposalOrRef) {
			p.UnmarshalMLS(r)
			return
		}),
	}
	r.Optional("Commit.path", func(r *codec.Reader) {
		c.Path = new(UpdatePath)
		c.Path.UnmarshalMLS(r)
	})
}
