package wire

import "github.com/openmimi/mimi/mls/codec"

// MarshalMLS encodes an MLSMessage (RFC 9420, Section 6). Exactly the body
// selected by WireFormat must be set. A zero Version is written as mls10.
func (m *MLSMessage) MarshalMLS(w *codec.Writer) {
	v := m.Version
	if v == 0 {
		v = MLS10
	}
	w.U16(uint16(v))
	w.U16(uint16(m.WireFormat))
	set := 0
	for _, p := range []bool{m.PublicMessage != nil, m.PrivateMessage != nil, m.Welcome != nil, m.GroupInfo != nil, m.KeyPackage != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		fail(w, "MLSMessage", "%d bodies set, want 1", set)
		return
	}
	var body codec.Marshaler
	switch m.WireFormat {
	case WireFormatPublicMessage:
		if m.PublicMessage != nil {
			body = m.PublicMessage
		}
	case WireFormatPrivateMessage:
		if m.PrivateMessage != nil {
			body = m.PrivateMessage
		}
	case WireFormatWelcome:
		if m.Welcome != nil {
			body = m.Welcome
		}
	case WireFormatGroupInfo:
		if m.GroupInfo != nil {
			body = m.GroupInfo
		}
	case WireFormatKeyPackage:
		if m.KeyPackage != nil {
			body = m.KeyPackage
		}
	default:
		fail(w, "MLSMessage.wire_format", "unknown wire format %d", m.WireFormat)
		return
	}
	if body == nil {
		fail(w, "MLSMessage", "body for wire format %d not set", m.WireFormat)
		return
	}
	body.MarshalMLS(w)
}

// UnmarshalMLS decodes an MLSMessage (RFC 9420, Section 6). A version other
// than mls10 fails with ErrUnsupportedVersion (the layout of other versions
// is unknown, and RFC 9420 requires receivers to reject them); a reserved or
// unknown wire_format fails with ErrUnknownWireFormat.
func (m *MLSMessage) UnmarshalMLS(r *codec.Reader) {
	*m = MLSMessage{Version: ProtocolVersion(r.U16("MLSMessage.version"))}
	if r.Err() == nil && m.Version != MLS10 {
		badEnum(r, "MLSMessage.version", ErrUnsupportedVersion, uint64(m.Version))
		return
	}
	m.WireFormat = WireFormat(r.U16("MLSMessage.wire_format"))
	if r.Err() != nil {
		return
	}
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = new(PublicMessage)
		m.PublicMessage.UnmarshalMLS(r)
	case WireFormatPrivateMessage:
		m.PrivateMessage = new(PrivateMessage)
		m.PrivateMessage.UnmarshalMLS(r)
	case WireFormatWelcome:
		m.Welcome = new(Welcome)
		m.Welcome.UnmarshalMLS(r)
	case WireFormatGroupInfo:
		m.GroupInfo = new(GroupInfo)
		m.GroupInfo.UnmarshalMLS(r)
	case WireFormatKeyPackage:
		m.KeyPackage = new(KeyPackage)
		m.KeyPackage.UnmarshalMLS(r)
	default:
		badEnum(r, "MLSMessage.wire_format", ErrUnknownWireFormat, uint64(m.WireFormat))
	}
}
