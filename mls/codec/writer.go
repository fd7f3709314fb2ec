package codec

import (
	"fmt"
	"sync"
)

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

// OpaqueString writes opaque<V> holding the bytes of s; it is Opaque([]byte(s))
// without the conversion.
func (w *Writer) OpaqueString(s string) {
	w.Varint(uint64(len(s)))
	w.buf = append(w.buf, s...)
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
	var prefix [4]byte
	hdr, _ := AppendVarint(prefix[:0], uint64(n))
	w.buf = append(w.buf, hdr...)
	copy(w.buf[start+l:], w.buf[start:start+n])
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

// writerPool holds Writers whose buffers Marshal and AppendMarshal reuse,
// so that an encoding grows into a warm buffer instead of reallocating
// from empty on every call.
var writerPool = sync.Pool{New: func() any { return new(Writer) }}

// maxPooledBuffer bounds the buffers kept in writerPool: a rare huge
// encoding does not stay pinned in memory.
const maxPooledBuffer = 256 << 10

func getWriter() *Writer { return writerPool.Get().(*Writer) }

func putWriter(w *Writer) {
	if cap(w.buf) > maxPooledBuffer {
		w.buf = nil
	}
	w.buf, w.err = w.buf[:0], nil
	writerPool.Put(w)
}

// Marshal encodes m. The result is a new slice (nil for an empty
// encoding) owned by the caller.
func Marshal(m Marshaler) ([]byte, error) {
	w := getWriter()
	defer putWriter(w)
	m.MarshalMLS(w)
	if w.err != nil {
		return nil, w.err
	}
	if len(w.buf) == 0 {
		return nil, nil
	}
	return append([]byte(nil), w.buf...), nil
}

// AppendMarshal appends the encoding of m to dst and returns the extended
// slice, like the append built-in: when dst has room the encoding lands in
// place without allocating. On failure it returns dst and the error; the
// bytes of dst's array past len(dst) may then have been overwritten.
func AppendMarshal(dst []byte, m Marshaler) ([]byte, error) {
	w := getWriter()
	own := w.buf
	w.buf = dst
	m.MarshalMLS(w)
	out, err := w.buf, w.err
	w.buf = own
	putWriter(w)
	if err != nil {
		return dst, err
	}
	return out, nil
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
