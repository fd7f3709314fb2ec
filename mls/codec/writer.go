package codec

import "fmt"

// Writer accumulates an encoding. Its only failure mode is a vector longer
// than MaxVarint; that error is sticky and reported by Err and Bytes.
type Writer struct {
	buf []byte
	err error
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer { return &Writer{} }

// Bytes returns the encoding, or an error if any write failed.
func (w *Writer) Bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

// Err returns the first write error.
func (w *Writer) Err() error { return w.err }

// Len returns the number of bytes written so far.
func (w *Writer) Len() int { return len(w.buf) }

// Fail records err as the writer's error if none is set yet.
func (w *Writer) Fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// U8 writes a uint8.
func (w *Writer) U8(v uint8) { w.buf = append(w.buf, v) }

// U16 writes a big-endian uint16.
func (w *Writer) U16(v uint16) { w.buf = append(w.buf, byte(v>>8), byte(v)) }

// U32 writes a big-endian uint32.
func (w *Writer) U32(v uint32) {
	w.buf = append(w.buf, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// U64 writes a big-endian uint64.
func (w *Writer) U64(v uint64) {
	w.buf = append(w.buf, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// Bool writes a boolean as one octet, 0 or 1.
func (w *Writer) Bool(v bool) {
	if v {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// Varint writes a minimal variable-length integer (RFC 9420, Section 2.1.2).
func (w *Writer) Varint(v uint64) {
	b, ok := AppendVarint(w.buf, v)
	if !ok {
		w.Fail(fmt.Errorf("mls codec: varint %d: %w", v, ErrTooLarge))
		return
	}
	w.buf = b
}

// Raw writes b with no length prefix (a fixed-size opaque field).
func (w *Writer) Raw(b []byte) { w.buf = append(w.buf, b...) }

// Opaque writes opaque<V>: a varint length followed by b.
func (w *Writer) Opaque(b []byte) {
	w.Varint(uint64(len(b)))
	w.buf = append(w.buf, b...)
}

// Vector writes a vector<V> whose elements body writes: the encoded length
// of everything body writes, then those bytes.
func (w *Writer) Vector(body func(w *Writer)) {
	start := len(w.buf)
	body(w)
	n := len(w.buf) - start
	l := VarintLen(uint64(n))
	if l == 0 {
		w.Fail(fmt.Errorf("mls codec: vector of %d bytes: %w", n, ErrTooLarge))
		return
	}
	// Shift the body right to make room for the length prefix.
	w.buf = append(w.buf, make([]byte, l)...)
	copy(w.buf[start+l:], w.buf[start:start+n])
	hdr, _ := AppendVarint(nil, uint64(n))
	copy(w.buf[start:], hdr)
}

// Optional writes optional<T>: 0, or 1 followed by what body writes.
func (w *Writer) Optional(present bool, body func(w *Writer)) {
	if !present {
		w.U8(0)
		return
	}
	w.U8(1)
	body(w)
}

// Marshaler is implemented by values with an MLS wire encoding.
type Marshaler interface {
	MarshalMLS(w *Writer)
}

// Marshal encodes m.
func Marshal(m Marshaler) ([]byte, error) {
	w := NewWriter()
	m.MarshalMLS(w)
	return w.Bytes()
}

// MustMarshal encodes m, panicking if the encoding fails. Use it only for
// values whose size is bounded well below 2^30 bytes by construction.
func MustMarshal(m Marshaler) []byte {
	b, err := Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}
