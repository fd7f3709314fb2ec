package mimi

import (
	"encoding/binary"

	"github.com/openmimi/mimi/mls/wire"
)

// AppendFanoutPrivateMessage appends to dst the FanoutMessage
// (draft-ralston-mimi-protocol-02, Section 5.5) made of timestamp and the
// encoded MLSMessage msg, without decoding and re-encoding msg: a
// FanoutMessage whose message is a PrivateMessage is the uint64 timestamp
// followed by the MLSMessage's bytes (no RatchetTreeOption follows, since
// the message is not a Welcome).
//
// It applies only when msg is exactly one canonical MLSMessage (RFC 9420,
// Section 6) carrying a PrivateMessage (Section 6.3): version mls10,
// wire_format mls_private_message, a known content_type, minimal varint
// lengths and no trailing bytes, so that decoding msg and encoding it again
// with MarshalFanout gives the same bytes. It checks this with a walk over
// the length prefixes that copies nothing; when msg is anything else it
// returns dst unchanged and false, and the caller must take the general
// path (decode, then MarshalFanout), which reports the precise error.
func AppendFanoutPrivateMessage(dst []byte, timestamp uint64, msg []byte) ([]byte, bool) {
	if !isCanonicalPrivateMessage(msg) {
		return dst, false
	}
	dst = binary.BigEndian.AppendUint64(dst, timestamp)
	return append(dst, msg...), true
}

// isCanonicalPrivateMessage reports whether b is exactly one MLSMessage
// holding a PrivateMessage as wire.MLSMessage.UnmarshalMLS accepts it
// (RFC 9420, Sections 6 and 6.3):
//
//	uint16 version = mls10; uint16 wire_format = mls_private_message;
//	opaque group_id<V>; uint64 epoch; ContentType content_type;
//	opaque authenticated_data<V>; opaque encrypted_sender_data<V>;
//	opaque ciphertext<V>;
func isCanonicalPrivateMessage(b []byte) bool {
	if len(b) < 4 ||
		wire.ProtocolVersion(binary.BigEndian.Uint16(b)) != wire.MLS10 ||
		wire.WireFormat(binary.BigEndian.Uint16(b[2:])) != wire.WireFormatPrivateMessage {
		return false
	}
	b = b[4:]
	var ok bool
	if b, ok = skipOpaque(b); !ok { // group_id
		return false
	}
	if len(b) < 9 {
		return false
	}
	switch wire.ContentType(b[8]) { // after the epoch
	case wire.ContentApplication, wire.ContentProposal, wire.ContentCommit:
	default:
		return false
	}
	b = b[9:]
	for range 3 { // authenticated_data, encrypted_sender_data, ciphertext
		if b, ok = skipOpaque(b); !ok {
			return false
		}
	}
	return len(b) == 0
}

// skipOpaque skips one opaque<V> (RFC 9420, Section 2.1.2: a variable-size
// length of 1, 2 or 4 bytes, minimally encoded) and returns what follows.
func skipOpaque(b []byte) ([]byte, bool) {
	if len(b) == 0 {
		return nil, false
	}
	var n, l uint64
	switch b[0] >> 6 {
	case 0:
		n, l = uint64(b[0]), 1
	case 1:
		if len(b) < 2 {
			return nil, false
		}
		n, l = uint64(binary.BigEndian.Uint16(b)&0x3fff), 2
		if n < 1<<6 {
			return nil, false
		}
	case 2:
		if len(b) < 4 {
			return nil, false
		}
		n, l = uint64(binary.BigEndian.Uint32(b)&0x3fffffff), 4
		if n < 1<<14 {
			return nil, false
		}
	default:
		return nil, false
	}
	b = b[l:]
	if uint64(len(b)) < n {
		return nil, false
	}
	return b[n:], true
}
