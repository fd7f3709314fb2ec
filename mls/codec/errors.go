package codec

import (
	"errors"
	"fmt"
)

// Sentinel causes of decoding failures. A *DecodeError wraps exactly one of
// them, so callers can branch with errors.Is.
var (
	// ErrTruncated: the input ended inside a field or a vector's declared
	// length runs past the input.
	ErrTruncated = errors.New("truncated input")
	// ErrInvalidVarintPrefix: a variable-length integer starts with 0b11.
	ErrInvalidVarintPrefix = errors.New("invalid variable-length integer prefix")
	// ErrNonMinimalVarint: a variable-length integer uses more bytes than
	// needed (RFC 9420, Section 2.1.2).
	ErrNonMinimalVarint = errors.New("non-minimal variable-length integer")
	// ErrTrailingData: bytes remain after the value, or after the last
	// element of a vector.
	ErrTrailingData = errors.New("trailing data")
	// ErrInvalidOptional: an optional<T> presence octet other than 0 or 1.
	ErrInvalidOptional = errors.New("invalid optional presence byte")
	// ErrInvalidValue: a value outside the set the specification allows,
	// such as an unknown enum value where the RFC forbids it.
	ErrInvalidValue = errors.New("invalid value")
	// ErrTooLarge: a value too large to encode (a vector over 2^30-1 bytes).
	ErrTooLarge = errors.New("value too large to encode")
)

// DecodeError reports where decoding failed: the field being decoded, the
// byte offset into the outermost input, and the cause.
type DecodeError struct {
	Field  string
	Offset int
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("mls codec: %s at offset %d: %v", e.Field, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }
