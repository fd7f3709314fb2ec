package cipher

import "github.com/openmimi/mimi/mls/codec"

// labelPrefix is prepended to every label (RFC 9420, Section 5.1.2, 5.1.3, 8).
const labelPrefix = "MLS 1.0 "

// writeLabel writes opaque label<V> = "MLS 1.0 " + label without building
// the concatenated string.
func writeLabel(w *codec.Writer, label string) {
	w.Varint(uint64(len(labelPrefix) + len(label)))
	w.Raw([]byte(labelPrefix))
	w.Raw([]byte(label))
}

// kdfLabel encodes KDFLabel (RFC 9420, Section 8):
//
//	struct { uint16 length; opaque label<V>; opaque context<V>; } KDFLabel;
func kdfLabel(length uint16, label string, context []byte) ([]byte, error) {
	w := codec.NewWriter()
	w.U16(length)
	writeLabel(w, label)
	w.Opaque(context)
	return w.Bytes()
}

// signContent encodes SignContent (RFC 9420, Section 5.1.2):
//
//	struct { opaque label<V>; opaque content<V>; } SignContent;
func signContent(label string, content []byte) ([]byte, error) {
	w := codec.NewWriter()
	writeLabel(w, label)
	w.Opaque(content)
	return w.Bytes()
}

// encryptContext encodes EncryptContext (RFC 9420, Section 5.1.3):
//
//	struct { opaque label<V>; opaque context<V>; } EncryptContext;
func encryptContext(label string, context []byte) ([]byte, error) {
	return signContent(label, context) // identical layout
}

// refHashInput encodes RefHashInput (RFC 9420, Section 5.2):
//
//	struct { opaque label<V>; opaque value<V>; } RefHashInput;
//
// The label is used verbatim (callers pass the full "MLS 1.0 ..." label).
// A value too long for a varint cannot occur for in-memory byte slices
// below 2^30 bytes; if it does, the (unencodable) length is dropped and the
// hash is computed over what was written, which can never collide with a
// valid reference.
func refHashInput(label string, value []byte) []byte {
	w := codec.NewWriter()
	w.Opaque([]byte(label))
	w.Opaque(value)
	b, err := w.Bytes()
	if err != nil {
		// Unreachable for values < 2^30 bytes; still never panic.
		return append([]byte{0xff}, value...)
	}
	return b
}
