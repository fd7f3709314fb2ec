package mimi

import (
	"fmt"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// SubmitMessageRequest (draft-ralston-mimi-protocol-02, Section 5.4): an
// MLSMessage that must be a PrivateMessage.
type SubmitMessageRequest struct {
	Protocol   Protocol
	AppMessage wire.MLSMessage
}

// MarshalMLS implements codec.Marshaler.
func (m *SubmitMessageRequest) MarshalMLS(w *codec.Writer) {
	w.U8(uint8(m.Protocol))
	m.AppMessage.MarshalMLS(w)
}

// UnmarshalMLS implements codec.Unmarshaler; a wire format other than
// PrivateMessage is rejected.
func (m *SubmitMessageRequest) UnmarshalMLS(r *codec.Reader) {
	m.Protocol = readProtocol(r, "SubmitMessageRequest.protocol")
	m.AppMessage = wire.MLSMessage{}
	m.AppMessage.UnmarshalMLS(r)
	if r.Err() == nil && m.AppMessage.WireFormat != wire.WireFormatPrivateMessage {
		r.Fail("SubmitMessageRequest.appMessage.wire_format", fmt.Errorf("%w: want mls_private_message", codec.ErrInvalidValue))
	}
}

// SubmitResponseCode (draft-ralston-mimi-protocol-02, Section 5.4). The
// draft's select names the first value "success"; its enum calls it
// "accepted". They are the same value, 0.
type SubmitResponseCode uint8

// Submit response codes (draft-ralston-mimi-protocol-02, Section 5.4).
const (
	SubmitAccepted    SubmitResponseCode = 0
	SubmitNotAllowed  SubmitResponseCode = 1
	SubmitEpochTooOld SubmitResponseCode = 2
)

// SubmitMessageResponse (draft-ralston-mimi-protocol-02, Section 5.4).
type SubmitMessageResponse struct {
	Protocol          Protocol
	Code              SubmitResponseCode
	AcceptedTimestamp uint64 // accepted: milliseconds since the Unix epoch
	CurrentEpoch      uint64 // epochTooOld
}

// MarshalMLS implements codec.Marshaler.
func (m *SubmitMessageResponse) MarshalMLS(w *codec.Writer) {
	w.U8(uint8(m.Protocol))
	w.U8(uint8(m.Code))
	switch m.Code {
	case SubmitAccepted:
		w.U64(m.AcceptedTimestamp)
	case SubmitEpochTooOld:
		w.U64(m.CurrentEpoch)
	}
}

// UnmarshalMLS implements codec.Unmarshaler.
func (m *SubmitMessageResponse) UnmarshalMLS(r *codec.Reader) {
	*m = SubmitMessageResponse{}
	m.Protocol = readProtocol(r, "SubmitMessageResponse.protocol")
	m.Code = SubmitResponseCode(r.U8("SubmitMessageResponse.statusCode"))
	switch m.Code {
	case SubmitAccepted:
		m.AcceptedTimestamp = r.U64("SubmitMessageResponse.acceptedTimestamp")
	case SubmitNotAllowed:
	case SubmitEpochTooOld:
		m.CurrentEpoch = r.U64("SubmitMessageResponse.currentEpoch")
	default:
		r.Fail("SubmitMessageResponse.statusCode", codec.ErrInvalidValue)
	}
}
