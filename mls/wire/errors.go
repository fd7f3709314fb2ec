package wire

import (
	"errors"
	"fmt"

	"github.com/openmimi/mimi/mls/codec"
)

// Decoding failures specific to MLS wire objects. Each wraps
// codec.ErrInvalidValue, so callers may branch either on the specific
// sentinel or on the generic codec one. Decoders report them inside a
// *codec.DecodeError naming the field (for example "Proposal.proposal_type").
var (
	// ErrUnknownProposalType: a Proposal carries a proposal_type this package
	// cannot decode. Proposal bodies are not length-prefixed (RFC 9420,
	// Section 12.1), so the rest of the enclosing object is undecodable.
	ErrUnknownProposalType = fmt.Errorf("mls wire: unknown proposal type: %w", codec.ErrInvalidValue)
	// ErrUnknownCredentialType: a Credential whose credential_type selects an
	// unknown body (RFC 9420, Section 5.3).
	ErrUnknownCredentialType = fmt.Errorf("mls wire: unknown credential type: %w", codec.ErrInvalidValue)
	// ErrUnknownWireFormat: an MLSMessage whose wire_format is reserved or
	// unknown (RFC 9420, Section 6), or a reserved wire format elsewhere.
	ErrUnknownWireFormat = fmt.Errorf("mls wire: unknown wire format: %w", codec.ErrInvalidValue)
	// ErrUnknownSenderType: a reserved or unknown SenderType (RFC 9420,
	// Section 6).
	ErrUnknownSenderType = fmt.Errorf("mls wire: unknown sender type: %w", codec.ErrInvalidValue)
	// ErrUnknownContentType: a reserved or unknown ContentType (RFC 9420,
	// Section 6).
	ErrUnknownContentType = fmt.Errorf("mls wire: unknown content type: %w", codec.ErrInvalidValue)
	// ErrUnknownLeafNodeSource: a reserved or unknown LeafNodeSource
	// (RFC 9420, Section 7.2).
	ErrUnknownLeafNodeSource = fmt.Errorf("mls wire: unknown leaf node source: %w", codec.ErrInvalidValue)
	// ErrUnknownNodeType: a reserved or unknown NodeType (RFC 9420,
	// Section 7.8).
	ErrUnknownNodeType = fmt.Errorf("mls wire: unknown node type: %w", codec.ErrInvalidValue)
	// ErrUnknownPSKType: a reserved or unknown PSKType (RFC 9420,
	// Section 8.4).
	ErrUnknownPSKType = fmt.Errorf("mls wire: unknown PSK type: %w", codec.ErrInvalidValue)
	// ErrReservedPSKUsage: a ResumptionPSKUsage of reserved(0) (RFC 9420,
	// Section 8.4).
	ErrReservedPSKUsage = fmt.Errorf("mls wire: reserved resumption PSK usage: %w", codec.ErrInvalidValue)
	// ErrUnknownProposalOrRefType: a reserved or unknown ProposalOrRefType
	// (RFC 9420, Section 12.4).
	ErrUnknownProposalOrRefType = fmt.Errorf("mls wire: unknown ProposalOrRef type: %w", codec.ErrInvalidValue)
	// ErrUnsupportedVersion: an MLSMessage whose version is not mls10. The
	// decoder rejects such messages rather than guessing at the layout of
	// an unknown version (RFC 9420, Section 6: a receiver rejects messages
	// of an unsupported version).
	ErrUnsupportedVersion = fmt.Errorf("mls wire: unsupported protocol version: %w", codec.ErrInvalidValue)
	// ErrNonZeroPadding: the padding of a PrivateMessageContent contains a
	// non-zero octet (RFC 9420, Section 6.3.1).
	ErrNonZeroPadding = fmt.Errorf("mls wire: non-zero padding: %w", codec.ErrInvalidValue)
)

// ErrInvalidField is returned when encoding a value whose fields are
// inconsistent with its selectors, so that the RFC 9420 encoding cannot
// represent it: for example a LeafNode with source key_package and no
// Lifetime, a Proposal whose Body is nil, or a PublicMessage from an
// external sender with a MembershipTag.
var ErrInvalidField = errors.New("mls wire: field inconsistent with its selector")

// Errors from the signing and verification helpers.
var (
	// ErrKeyPackageInvalid: a KeyPackage fails a check of RFC 9420,
	// Section 10.1 other than its signature (the signature failure wraps
	// cipher.ErrBadSignature).
	ErrKeyPackageInvalid = errors.New("mls wire: invalid KeyPackage")
	// ErrSuiteMismatch: the cipher suite passed to a helper differs from the
	// one the object names (RFC 9420, Sections 5.2 and 10.1).
	ErrSuiteMismatch = errors.New("mls wire: cipher suite mismatch")
)

// fail records an encoding error naming field on w.
func fail(w *codec.Writer, field, format string, args ...any) {
	w.Fail(fmt.Errorf("mls wire: encoding %s: %s: %w", field, fmt.Sprintf(format, args...), ErrInvalidField))
}

// badEnum records a decoding failure for an enum value v of field.
func badEnum(r *codec.Reader, field string, sentinel error, v uint64) {
	r.Fail(field, fmt.Errorf("%w (%d)", sentinel, v))
}
