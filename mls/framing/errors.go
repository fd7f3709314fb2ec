package framing

import "errors"

// Errors callers branch on. Returned errors wrap one of these (and, where
// relevant, the underlying cipher, codec or keyschedule error) with context.
var (
	// ErrBadMembershipTag: a PublicMessage membership_tag does not verify
	// (RFC 9420, Section 6.2).
	ErrBadMembershipTag = errors.New("mls framing: bad membership tag")
	// ErrBadSignature: the FramedContentAuthData signature does not verify
	// (RFC 9420, Section 6.1). Wraps cipher.ErrBadSignature too.
	ErrBadSignature = errors.New("mls framing: bad signature")
	// ErrBadConfirmationTag: a confirmation_tag does not verify (RFC 9420,
	// Sections 6.1 and 8.2).
	ErrBadConfirmationTag = errors.New("mls framing: bad confirmation tag")
	// ErrWrongGroup: the message's group_id is not the group's (RFC 9420,
	// Section 6).
	ErrWrongGroup = errors.New("mls framing: message for another group")
	// ErrWrongEpoch: the message's epoch is not the epoch being used
	// (RFC 9420, Section 6).
	ErrWrongEpoch = errors.New("mls framing: message for another epoch")
	// ErrApplicationInPublic: application data in a PublicMessage
	// (RFC 9420, Sections 6 and 6.2: application messages MUST use
	// PrivateMessage).
	ErrApplicationInPublic = errors.New("mls framing: application data in a PublicMessage")
	// ErrInvalidSender: a sender type or index not allowed for this wire
	// format or content (RFC 9420, Sections 6, 6.1 and 6.3.2).
	ErrInvalidSender = errors.New("mls framing: invalid sender")
	// ErrMalformed: a structurally invalid message, such as a missing or
	// unexpected confirmation_tag or membership_tag, an unknown content
	// type, or a PrivateMessageContent that does not decode (RFC 9420,
	// Section 6).
	ErrMalformed = errors.New("mls framing: malformed message")
	// ErrNonZeroPadding: PrivateMessageContent padding with a non-zero byte
	// (RFC 9420, Section 6.3.1).
	ErrNonZeroPadding = errors.New("mls framing: non-zero padding")
	// ErrDecrypt: sender data or content decryption failed (RFC 9420,
	// Sections 6.3.1 and 6.3.2). Wraps cipher.ErrDecrypt too.
	ErrDecrypt = errors.New("mls framing: decryption failed")
	// ErrNoMatchingSecrets: a Welcome holds no EncryptedGroupSecrets for
	// our KeyPackageRef (RFC 9420, Section 12.4.3.1).
	ErrNoMatchingSecrets = errors.New("mls framing: welcome has no secrets for our key package")
	// ErrSuiteMismatch: a Welcome or GroupInfo cipher suite does not match
	// the one in use (RFC 9420, Section 12.4.3.1).
	ErrSuiteMismatch = errors.New("mls framing: cipher suite mismatch")
	// ErrMissingPSK: a Welcome requires a PSK that the caller cannot supply
	// (RFC 9420, Section 12.4.3.1).
	ErrMissingPSK = errors.New("mls framing: missing pre-shared key")
	// ErrMissingState: the Epoch lacks a field the operation needs (a
	// programming error on the caller's side, reported instead of a panic).
	ErrMissingState = errors.New("mls framing: epoch state incomplete")
)
