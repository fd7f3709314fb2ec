package codec

// MaxVarint is the largest value a variable-length integer can carry:
// 2^30 - 1 (RFC 9420, Section 2.1.2).
const MaxVarint = 1<<30 - 1

// AppendVarint appends v in the minimal variable-length integer encoding of
// RFC 9420, Section 2.1.2. It reports false if v exceeds MaxVarint.
func AppendVarint(b []byte, v uint64) ([]byte, bool) {
	switch {
	case v < 1<<6:
		return append(b, byte(v)), true
	case v < 1<<14:
		return append(b, 0x40|byte(v>>8), byte(v)), true
	case v < 1<<30:
		return append(b, 0x80|byte(v>>24), byte(v>>16), byte(v>>8), byte(v)), true
	default:
		return b, false
	}
}

// VarintLen is the number of bytes AppendVarint uses for v, or 0 if v is too
// large to encode.
func VarintLen(v uint64) int {
	switch {
	case v < 1<<6:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<30:
		return 4
	default:
		return 0
	}
}

// readVarint decodes a variable-length integer from the front of b,
// returning the value and the number of bytes consumed, or an error kind.
// RFC 9420, Section 2.1.2: prefix 0b11 is invalid, and a value encoded in
// more bytes than necessary is malformed.
func readVarint(b []byte) (uint64, int, error) {
	if len(b) == 0 {
		return 0, 0, ErrTruncated
	}
	prefix := b[0] >> 6
	if prefix == 3 {
		return 0, 0, ErrInvalidVarintPrefix
	}
	n := 1 << prefix
	if len(b) < n {
		return 0, 0, ErrTruncated
	}
	v := uint64(b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	if VarintLen(v) != n {
		return 0, 0, ErrNonMinimalVarint
	}
	return v, n, nil
}
