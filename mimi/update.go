package mimi

import (
	"fmt"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// UpdateRequest (draft-ralston-mimi-protocol-02, Section 5.3). The room's
// protocol is mls10, so the body starts directly with a PublicMessage
// carrying a proposal or a commit. For a commit, GroupInfo and
// RatchetTreeOption are required and Welcome is optional; for a proposal,
// MoreProposals lists further PublicMessage proposals.
type UpdateRequest struct {
	ProposalOrCommit  wire.PublicMessage
	Welcome           *wire.Welcome
	GroupInfo         *wire.GroupInfo
	RatchetTreeOption *RatchetTreeOption
	MoreProposals     []wire.PublicMessage
}

// IsCommit reports whether the request carries a commit.
func (m *UpdateRequest) IsCommit() bool {
	return m.ProposalOrCommit.Content.ContentType == wire.ContentCommit
}

// MarshalMLS implements codec.Marshaler.
func (m *UpdateRequest) MarshalMLS(w *codec.Writer) {
	m.ProposalOrCommit.MarshalMLS(w)
	switch m.ProposalOrCommit.Content.ContentType {
	case wire.ContentCommit:
		if m.GroupInfo == nil || m.RatchetTreeOption == nil {
			w.Fail(fmt.Errorf("mimi: UpdateRequest commit without GroupInfo or RatchetTreeOption"))
			return
		}
		w.Optional(m.Welcome != nil, func(w *codec.Writer) { m.Welcome.MarshalMLS(w) })
		m.GroupInfo.MarshalMLS(w)
		m.RatchetTreeOption.MarshalMLS(w)
	case wire.ContentProposal:
		w.Vector(func(w *codec.Writer) {
			for i := range m.MoreProposals {
				m.MoreProposals[i].MarshalMLS(w)
			}
		})
	default:
		w.Fail(fmt.Errorf("mimi: UpdateRequest carries content type %d, want proposal or commit", m.ProposalOrCommit.Content.ContentType))
	}
}

// UnmarshalMLS implements codec.Unmarshaler. Application content is
// rejected, as are additional proposals that are not proposals.
func (m *UpdateRequest) UnmarshalMLS(r *codec.Reader) {
	*m = UpdateRequest{}
	m.ProposalOrCommit.UnmarshalMLS(r)
	if r.Err() != nil {
		return
	}
	switch m.ProposalOrCommit.Content.ContentType {
	case wire.ContentCommit:
		r.Optional("UpdateRequest.welcome", func(r *codec.Reader) {
			m.Welcome = new(wire.Welcome)
			m.Welcome.UnmarshalMLS(r)
		})
		m.GroupInfo = new(wire.GroupInfo)
		m.GroupInfo.UnmarshalMLS(r)
		m.RatchetTreeOption = new(RatchetTreeOption)
		m.RatchetTreeOption.UnmarshalMLS(r)
	case wire.ContentProposal:
		r.Vector("UpdateRequest.moreProposals", func(r *codec.Reader) {
			var p wire.PublicMessage
			p.UnmarshalMLS(r)
			if r.Err() == nil && p.Content.ContentType != wire.ContentProposal {
				r.Fail("UpdateRequest.moreProposals", fmt.Errorf("%w: not a proposal", codec.ErrInvalidValue))
			}
			m.MoreProposals = append(m.MoreProposals, p)
		})
	default:
		r.Fail("UpdateRequest.proposalOrCommit.content_type", fmt.Errorf("%w: application data in an update", codec.ErrInvalidValue))
	}
}

// UpdateResponseCode (draft-ralston-mimi-protocol-02, Section 5.3).
type UpdateResponseCode uint8

// Update response codes (draft-ralston-mimi-protocol-02, Section 5.3).
const (
	UpdateSuccess         UpdateResponseCode = 0
	UpdateWrongEpoch      UpdateResponseCode = 1
	UpdateNotAllowed      UpdateResponseCode = 2
	UpdateInvalidProposal UpdateResponseCode = 3
)

// UpdateRoomResponse (draft-ralston-mimi-protocol-02, Section 5.3). The
// draft's "string errorDescription" is encoded as opaque<V> holding UTF-8.
type UpdateRoomResponse struct {
	Code              UpdateResponseCode
	ErrorDescription  string
	AcceptedTimestamp uint64   // success: milliseconds since the Unix epoch
	CurrentEpoch      uint64   // wrongEpoch
	InvalidProposals  [][]byte // invalidProposal: ProposalRefs
}

// MarshalMLS implements codec.Marshaler.
func (m *UpdateRoomResponse) MarshalMLS(w *codec.Writer) {
	w.U8(uint8(m.Code))
	w.Opaque([]byte(m.ErrorDescription))
	switch m.Code {
	case UpdateSuccess:
		w.U64(m.AcceptedTimestamp)
	case UpdateWrongEpoch:
		w.U64(m.CurrentEpoch)
	case UpdateInvalidProposal:
		w.Vector(func(w *codec.Writer) {
			for _, ref := range m.InvalidProposals {
				w.Opaque(ref)
			}
		})
	}
}

// UnmarshalMLS implements codec.Unmarshaler.
func (m *UpdateRoomResponse) UnmarshalMLS(r *codec.Reader) {
	*m = UpdateRoomResponse{}
	m.Code = UpdateResponseCode(r.U8("UpdateRoomResponse.responseCode"))
	m.ErrorDescription = readUTF8(r, "UpdateRoomResponse.errorDescription")
	switch m.Code {
	case UpdateSuccess:
		m.AcceptedTimestamp = r.U64("UpdateRoomResponse.acceptedTimestamp")
	case UpdateWrongEpoch:
		m.CurrentEpoch = r.U64("UpdateRoomResponse.currentEpoch")
	case UpdateNotAllowed:
	case UpdateInvalidProposal:
		r.Vector("UpdateRoomResponse.invalidProposals", func(r *codec.Reader) {
			m.InvalidProposals = append(m.InvalidProposals, r.Opaque("UpdateRoomResponse.invalidProposals"))
		})
	default:
		r.Fail("UpdateRoomResponse.responseCode", codec.ErrInvalidValue)
	}
}
