package keyschedule

import (
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
)

// labelDerivedPSK is the ExpandWithLabel label of RFC 9420, Section 8.4.
const labelDerivedPSK = "derived psk"

// PSKInput is one pre-shared key injected into the key schedule (RFC 9420,
// Section 8.4): ID is the TLS encoding of its PreSharedKeyID and Secret the
// PSK value (psk_[i]; for a resumption PSK, the resumption_psk of the
// referenced epoch).
type PSKInput struct {
	ID     []byte // encoded PreSharedKeyID
	Secret []byte // psk_[i]
}

// MaxPSKs is the largest number of PSKs PSKSecret accepts: PSKLabel.count
// is a uint16 (RFC 9420, Section 8.4).
const MaxPSKs = 0xffff

// PSKLabel returns the encoding of
//
//	struct { PreSharedKeyID id; uint16 index; uint16 count; } PSKLabel;
//
// (RFC 9420, Section 8.4), where encodedID is the already-encoded
// PreSharedKeyID.
func PSKLabel(encodedID []byte, index, count uint16) []byte {
	w := codec.NewWriter()
	w.Raw(encodedID)
	w.U16(index)
	w.U16(count)
	b, _ := w.Bytes() // Raw and U16 cannot fail
	return b
}

// PSKSecret computes psk_secret from the PSKs in the order listed in the
// Commit or GroupSecrets (RFC 9420, Section 8.4):
//
//	psk_extracted_[i] = Extract(0, psk_[i])
//	psk_input_[i]     = ExpandWithLabel(psk_extracted_[i], "derived psk", PSKLabel, Nh)
//	psk_secret_[0]    = 0
//	psk_secret_[i]    = Extract(psk_input_[i-1], psk_secret_[i-1])
//
// where 0 is the all-zero string of length Nh. With no PSKs the result is
// that all-zero string. Each ID must be non-empty; more than MaxPSKs PSKs
// is an error.
func PSKSecret(s *cipher.Suite, psks []PSKInput) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("keyschedule: psk secret: nil cipher suite: %w", ErrInvalidInput)
	}
	if len(psks) > MaxPSKs {
		return nil, fmt.Errorf("keyschedule: psk secret: %d PSKs exceed %d: %w", len(psks), MaxPSKs, ErrInvalidInput)
	}
	nh := s.HashSize()
	zeroes := make([]byte, nh)
	secret := make([]byte, nh)
	count := uint16(len(psks))
	for i, p := range psks {
		if len(p.ID) == 0 {
			return nil, fmt.Errorf("keyschedule: psk secret: PSK %d has an empty PreSharedKeyID: %w", i, ErrInvalidInput)
		}
		extracted := s.Extract(zeroes, p.Secret)
		input, err := s.ExpandWithLabel(extracted, labelDerivedPSK, PSKLabel(p.ID, uint16(i), count), nh)
		zero(extracted)
		if err != nil {
			return nil, fmt.Errorf("keyschedule: psk secret: deriving psk_input[%d]: %w", i, err)
		}
		next := s.Extract(input, secret)
		zero(input)
		zero(secret)
		secret = next
	}
	return secret, nil
}
