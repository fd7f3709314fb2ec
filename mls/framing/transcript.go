package framing

import (
	"crypto/subtle"
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

// ConfirmedTranscriptHash computes confirmed_transcript_hash =
// Hash(interim_transcript_hash_before || ConfirmedTranscriptHashInput) for
// the commit in ac (RFC 9420, Section 8.2). interimBefore is the previous
// epoch's interim transcript hash (empty for epoch 0).
func ConfirmedTranscriptHash(s *cipher.Suite, interimBefore []byte, ac *wire.AuthenticatedContent) ([]byte, error) {
	if s == nil || ac == nil {
		return nil, fmt.Errorf("%w: nil suite or content", ErrMissingState)
	}
	if ac.Content.ContentType != wire.ContentCommit || ac.Content.Commit == nil {
		return nil, fmt.Errorf("%w: transcript hash input is not a commit", ErrMalformed)
	}
	in, err := wire.ConfirmedTranscriptHashInput(ac.WireFormat, &ac.Content, ac.Auth.Signature)
	if err != nil {
		return nil, fmt.Errorf("mls framing: encoding ConfirmedTranscriptHashInput: %w", err)
	}
	buf := make([]byte, 0, len(interimBefore)+len(in))
	buf = append(append(buf, interimBefore...), in...)
	return s.Hash(buf), nil
}

// InterimTranscriptHash computes interim_transcript_hash =
// Hash(confirmed_transcript_hash || InterimTranscriptHashInput) with
// InterimTranscriptHashInput{confirmation_tag} (RFC 9420, Section 8.2).
func InterimTranscriptHash(s *cipher.Suite, confirmed, confirmationTag []byte) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil suite", ErrMissingState)
	}
	in, err := wire.InterimTranscriptHashInput(confirmationTag)
	if err != nil {
		return nil, fmt.Errorf("mls framing: encoding InterimTranscriptHashInput: %w", err)
	}
	buf := make([]byte, 0, len(confirmed)+len(in))
	buf = append(append(buf, confirmed...), in...)
	return s.Hash(buf), nil
}

// TranscriptHashes advances both transcript hashes over the commit in ac,
// whose Auth.ConfirmationTag must be set (RFC 9420, Section 8.2).
func TranscriptHashes(s *cipher.Suite, interimBefore []byte, ac *wire.AuthenticatedContent) (confirmed, interim []byte, err error) {
	if confirmed, err = ConfirmedTranscriptHash(s, interimBefore, ac); err != nil {
		return nil, nil, err
	}
	if ac.Auth.ConfirmationTag == nil {
		return nil, nil, fmt.Errorf("%w: commit without confirmation_tag", ErrMalformed)
	}
	if interim, err = InterimTranscriptHash(s, confirmed, ac.Auth.ConfirmationTag); err != nil {
		return nil, nil, err
	}
	return confirmed, interim, nil
}

// ConfirmationTag computes confirmation_tag = MAC(confirmation_key,
// confirmed_transcript_hash) (RFC 9420, Sections 6.1 and 8.2).
func ConfirmationTag(s *cipher.Suite, confirmationKey, confirmed []byte) []byte {
	return s.MAC(confirmationKey, confirmed)
}

// VerifyConfirmationTag checks tag against MAC(confirmation_key,
// confirmed_transcript_hash) in constant time (RFC 9420, Sections 6.1 and
// 8.2); a mismatch returns ErrBadConfirmationTag.
func VerifyConfirmationTag(s *cipher.Suite, confirmationKey, confirmed, tag []byte) error {
	if s == nil {
		return fmt.Errorf("%w: nil suite", ErrMissingState)
	}
	if subtle.ConstantTimeCompare(s.MAC(confirmationKey, confirmed), tag) != 1 {
		return ErrBadConfirmationTag
	}
	return nil
}
