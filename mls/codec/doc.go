// Package codec implements the TLS presentation language as profiled by
// MLS (RFC 9420, Section 2.1): big-endian fixed-width integers, opaque
// byte strings and vectors prefixed by a minimal variable-length integer
// (RFC 9420, Section 2.1.2), and optional values.
//
// Encoding appends to a Writer. Decoding reads from a Reader whose error is
// sticky: after the first failure every further read returns a zero value
// and Err reports the first failure, naming the field being decoded. This
// keeps decoders for nested structures short while never panicking on
// hostile input.
//
// The codec knows nothing of transport or storage.
package codec
