package codec

// Reader decodes from a byte slice. The first failure is sticky: later reads
// return zero values and Err returns that failure.
type Reader struct {
	buf  []byte
	off  int // offset into buf
	base int // offset of buf within the outermost input, for errors
	err  error
}

// NewReader returns a Reader over b. The Reader never modifies b; opaque
// values it returns are copies.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Err returns the first decoding error, or nil.
func (r *Reader) Err() error { return r.err }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.buf) - r.off }

// Empty reports whether all input has been consumed (or decoding failed).
func (r *Reader) Empty() bool { return r.err != nil || r.off == len(r.buf) }

// Offset returns the current offset within the outermost input.
func (r *Reader) Offset() int { return r.base + r.off }

// Fail records a failure while decoding field, if none is recorded yet.
// Decoders use it to reject values the specification forbids, with cause
// usually ErrInvalidValue.
func (r *Reader) Fail(field string, cause error) {
	if r.err == nil {
		r.err = &DecodeError{Field: field, Offset: r.base + r.off, Err: cause}
	}
}

// Done fails with ErrTrailingData if unread input remains, and returns Err.
func (r *Reader) Done(field string) error {
	if r.err == nil && r.off != len(r.buf) {
		r.Fail(field, ErrTrailingData)
	}
	return r.err
}

func (r *Reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.buf)-r.off < n {
		r.Fail(field, ErrTruncated)
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}

// U8 reads a uint8.
func (r *Reader) U8(field string) uint8 {
	b := r.take(field, 1)
	if b == nil {
		return 0
	}
	return b[0]
}

// U16 reads a big-endian uint16.
func (r *Reader) U16(field string) uint16 {
	b := r.take(field, 2)
	if b == nil {
		return 0
	}
	return uint16(b[0])<<8 | uint16(b[1])
}

// U32 reads a big-endian uint32.
func (r *Reader) U32(field string) uint32 {
	b := r.take(field, 4)
	if b == nil {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// U64 reads a big-endian uint64.
func (r *Reader) U64(field string) uint64 {
	b := r.take(field, 8)
	if b == nil {
		return 0
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// Bool reads a boolean octet, failing on values other than 0 and 1.
func (r *Reader) Bool(field string) bool {
	v := r.U8(field)
	if v > 1 {
		r.Fail(field, ErrInvalidValue)
		return false
	}
	return v == 1
}

// Varint reads a minimal variable-length integer (RFC 9420, Section 2.1.2).
func (r *Reader) Varint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n, err := readVarint(r.buf[r.off:])
	if err != nil {
		r.Fail(field, err)
		return 0
	}
	r.off += n
	return v
}

// Raw reads n bytes with no length prefix, returning a copy.
func (r *Reader) Raw(field string, n int) []byte {
	b := r.take(field, n)
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// Opaque reads opaque<V>, returning a copy of the content (never nil on
// success, so that an empty value and a failed read can be told apart by Err).
func (r *Reader) Opaque(field string) []byte {
	n := r.Varint(field)
	b := r.take(field, int(n))
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// OpaqueString reads opaque<V> and returns its content as a string: it is
// string(Opaque(field)) with one copy instead of two. It returns "" on
// failure; tell that from an empty value with Err.
func (r *Reader) OpaqueString(field string) string {
	n := r.Varint(field)
	return string(r.take(field, int(n)))
}

// Vector reads a vector<V>: the varint length, then repeatedly calls elem on
// a sub-reader limited to that many bytes until it is consumed. An element
// that reads past the vector's end fails with ErrTruncated.
func (r *Reader) Vector(field string, elem func(r *Reader)) {
	n := r.Varint(field)
	start := r.off
	b := r.take(field, int(n))
	if b == nil {
		return
	}
	// r itself serves as the sub-reader, limited to the vector's bytes
	// (its error is sticky across both), and is restored afterwards.
	buf, off, base := r.buf, r.off, r.base
	r.buf, r.off, r.base = b, 0, base+start
	for r.err == nil && r.off < len(r.buf) {
		before := r.off
		elem(r)
		if r.err == nil && r.off == before {
			// An element that consumes nothing would loop forever.
			r.Fail(field, ErrInvalidValue)
		}
	}
	r.buf, r.off, r.base = buf, off, base
}

// Optional reads optional<T>'s presence octet and, if present, calls body.
// It reports whether the value was present.
func (r *Reader) Optional(field string, body func(r *Reader)) bool {
	switch r.U8(field) {
	case 0:
		return false
	case 1:
		if r.err != nil {
			return false
		}
		body(r)
		return r.err == nil
	default:
		r.Fail(field, ErrInvalidOptional)
		return false
	}
}

// Unmarshaler is implemented by values decodable from the MLS wire encoding.
type Unmarshaler interface {
	UnmarshalMLS(r *Reader)
}

// Unmarshal decodes exactly one value from b into u, failing on trailing
// bytes. field names the value in errors.
func Unmarshal(b []byte, field string, u Unmarshaler) error {
	r := NewReader(b)
	u.UnmarshalMLS(r)
	return r.Done(field)
}
