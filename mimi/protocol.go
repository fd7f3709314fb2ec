package mimi

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// Protocol identifies the end-to-end protocol of a request
// (draft-ralston-mimi-protocol-02, Section 5).
type Protocol uint8

// The protocols of draft-ralston-mimi-protocol-02, Section 5.
const (
	ProtocolReserved Protocol = 0
	ProtocolMLS10    Protocol = 1
)

// ErrUnsupportedProtocol is returned when a body names a protocol other than
// mls10. Endpoints map it to their "incompatible protocol" answer.
var ErrUnsupportedProtocol = errors.New("mimi: unsupported protocol")

func readProtocol(r *codec.Reader, field string) Protocol {
	p := Protocol(r.U8(field))
	if r.Err() == nil && p != ProtocolMLS10 {
		r.Fail(field, ErrUnsupportedProtocol)
	}
	return p
}

// IdentifierURI is the IdentifierUri struct: opaque uri<V>
// (draft-ralston-mimi-protocol-02, Section 5.2). Decoding checks that it is
// a well-formed MIMI URI; callers check its kind.
func readURI(r *codec.Reader, field string) string {
	b := r.Opaque(field)
	if r.Err() != nil {
		return ""
	}
	if _, err := ParseURI(string(b)); err != nil {
		r.Fail(field, fmt.Errorf("%w: %w", codec.ErrInvalidValue, err))
		return ""
	}
	return string(b)
}

// RatchetTreeRepresentation (draft-ralston-mimi-protocol-02, Section 5.3).
type RatchetTreeRepresentation uint8

// RatchetTreeFull carries the whole ratchet tree.
const RatchetTreeFull RatchetTreeRepresentation = 1

// RatchetTreeOption (draft-ralston-mimi-protocol-02, Section 5.3). The draft
// writes its body as "Node ratchet_tree<V>"; since a ratchet tree has blank
// nodes, we encode it exactly as RFC 9420's ratchet_tree extension,
// optional<Node> ratchet_tree<V> (see docs/wire.md).
type RatchetTreeOption struct {
	Representation RatchetTreeRepresentation
	Tree           wire.RatchetTree
}

// MarshalMLS implements codec.Marshaler.
func (o *RatchetTreeOption) MarshalMLS(w *codec.Writer) {
	w.U8(uint8(o.Representation))
	if o.Representation == RatchetTreeFull {
		o.Tree.MarshalMLS(w)
	}
}

// UnmarshalMLS implements codec.Unmarshaler; only "full" is defined.
func (o *RatchetTreeOption) UnmarshalMLS(r *codec.Reader) {
	o.Representation = RatchetTreeRepresentation(r.U8("RatchetTreeOption.representation"))
	if r.Err() != nil {
		return
	}
	if o.Representation != RatchetTreeFull {
		r.Fail("RatchetTreeOption.representation", codec.ErrInvalidValue)
		return
	}
	o.Tree.UnmarshalMLS(r)
}

// maxDescription bounds the errorDescription string we accept.
const maxDescription = 4096

func readUTF8(r *codec.Reader, field string) string {
	b := r.Opaque(field)
	if r.Err() != nil {
		return ""
	}
	if len(b) > maxDescription || !utf8.Valid(b) {
		r.Fail(field, fmt.Errorf("%w: not UTF-8 or too long", codec.ErrInvalidValue))
		return ""
	}
	return string(b)
}

// Decode decodes exactly one value of a MIMI body, rejecting trailing bytes.
func Decode(b []byte, field string, u codec.Unmarshaler) error {
	return codec.Unmarshal(b, field, u)
}

// Encode encodes a MIMI body.
func Encode(m codec.Marshaler) ([]byte, error) { return codec.Marshal(m) }
