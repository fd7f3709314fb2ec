package keyschedule

import "errors"

// Errors callers branch on. All errors returned by this package that stem
// from these conditions wrap one of these values (test with errors.Is).
var (
	// ErrInvalidInput reports a malformed argument: a nil suite, an empty
	// secret where one is required, an out-of-range length or count.
	ErrInvalidInput = errors.New("mls keyschedule: invalid input")

	// ErrLeafOutOfRange reports a leaf index not below the secret tree's
	// leaf count (RFC 9420, Section 9).
	ErrLeafOutOfRange = errors.New("mls keyschedule: leaf index out of range")

	// ErrInvalidRatchetType reports a RatchetType other than Handshake or
	// Application.
	ErrInvalidRatchetType = errors.New("mls keyschedule: invalid ratchet type")

	// ErrKeyConsumed reports a request for a key and nonce that were
	// already handed out (consumed) and therefore deleted (RFC 9420,
	// Section 9.2).
	ErrKeyConsumed = errors.New("mls keyschedule: key already consumed")

	// ErrGenerationTooFar reports a generation further ahead of the
	// ratchet than SecretTree.MaxForwardDistance allows.
	ErrGenerationTooFar = errors.New("mls keyschedule: generation too far ahead")

	// ErrGenerationExpired reports a generation behind the ratchet whose key
	// is no longer available: it was never stored or was evicted because
	// more than SecretTree.MaxSkippedKeys skipped keys were pending (it may
	// also have been consumed before being evicted from the bookkeeping).
	ErrGenerationExpired = errors.New("mls keyschedule: generation expired (key not retained)")

	// ErrGenerationExhausted reports a ratchet that has reached the last
	// uint32 generation and cannot advance further.
	ErrGenerationExhausted = errors.New("mls keyschedule: ratchet generations exhausted")
)
