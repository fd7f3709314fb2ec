// Package eventlog is the hub's replayable event log: every state change of
// a MIMI provider (draft-ralston-mimi-protocol-02, Sections 4-6: client and
// KeyPackage publication, claims, room creation, accepted proposals,
// commits and application messages, notify receipts, fanout and client
// delivery) is a typed, versioned Event appended to an ordered log inside a
// Pebble DB. The log is the source of truth; package projections derives
// all queryable state from it and can rebuild that state from the log alone.
//
// # Encoding
//
// Events are encoded deterministically in the TLS presentation language
// with MLS variable-length integers (RFC 9420, Section 2.1) using
// mls/codec: an explicit schema version, the type, the room (possibly
// empty), a timestamp chosen by the proposer (milliseconds since the UNIX
// epoch; nothing here reads a clock), and the body as opaque<V>. Decoding
// is strict (minimal varints, no trailing bytes), so a decoded event
// re-encodes to the same bytes.
//
// # Key layout
//
// All keys start with "e/". Integers are 8-byte big-endian so that key
// order is numeric order; variable-length strings are escaped with
// AppendKeyComponent (0x00 -> 0x00 0xff, terminated by 0x00 0x01), which is
// prefix-free and order-preserving.
//
//	e/g/<seq>             record: hash[32] || seq u64 || roomSeq u64 || Event
//	e/i/<room><roomSeq>   seq u64 (per-room index)
//	e/h/<room>            last roomSeq u64 of the room
//	e/H                   head: last seq u64 || its chain hash[32]
//
// # Invariants
//
//   - Sequence numbers are contiguous from 1; room sequence numbers are
//     contiguous from 1 within each room. Events with an empty room have
//     roomSeq 0 and no index entry.
//   - The log is append-only: the only writer is Appender.Append, which
//     writes sequence head+1 and never deletes or overwrites a record;
//     Appender.Flush writes the heads once per batch.
//   - Each record's chain hash is SHA-256(previous record's chain hash ||
//     seq || roomSeq || Event), with 32 zero bytes before record 1. The
//     head stores the last hash, so a flipped byte, a removed, moved or
//     reordered record, or a truncated tail is detected by Verify, which
//     reports the exact sequence numbers involved.
//   - The record, its index entry and both heads are written in the same
//     Pebble batch as the caller's projection updates, so they are
//     atomically consistent.
package eventlog
