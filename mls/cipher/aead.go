package cipher

import (
	"crypto/aes"
	gocipher "crypto/cipher"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// aeadAlg identifies the suite AEAD (RFC 9180, Section 7.3).
type aeadAlg uint16

const (
	aeadAES128GCM        aeadAlg = 0x0001
	aeadAES256GCM        aeadAlg = 0x0002
	aeadChaCha20Poly1305 aeadAlg = 0x0003
)

// aeadNonceSize is Nn, 12 bytes for every AEAD of RFC 9420.
const aeadNonceSize = 12

func (a aeadAlg) keySize() int {
	switch a {
	case aeadAES128GCM:
		return 16
	default:
		return 32
	}
}

// new instantiates the AEAD for key, checking its length.
func (a aeadAlg) new(key []byte) (gocipher.AEAD, error) {
	if len(key) != a.keySize() {
		return nil, fmt.Errorf("%w: AEAD key is %d bytes, want %d", ErrBadKey, len(key), a.keySize())
	}
	switch a {
	case aeadChaCha20Poly1305:
		return chacha20poly1305.New(key)
	default:
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
		}
		return gocipher.NewGCM(b)
	}
}

// Seal encrypts with the suite AEAD (RFC 9420, Section 17.1). The key must
// be Nk and the nonce Nn bytes long; a wrong key length wraps ErrBadKey.
func (s *Suite) Seal(key, nonce, aad, plaintext []byte) ([]byte, error) {
	a, err := s.aead.new(key)
	if err != nil {
		return nil, fmt.Errorf("mls cipher: seal: %w", err)
	}
	if len(nonce) != aeadNonceSize {
		return nil, fmt.Errorf("mls cipher: seal: nonce is %d bytes, want %d", len(nonce), aeadNonceSize)
	}
	return a.Seal(nil, nonce, plaintext, aad), nil
}

// Open decrypts with the suite AEAD (RFC 9420, Section 17.1); failures,
// including wrong key or nonce lengths, wrap ErrDecrypt.
func (s *Suite) Open(key, nonce, aad, ciphertext []byte) ([]byte, error) {
	a, err := s.aead.new(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	if len(nonce) != aeadNonceSize {
		return nil, fmt.Errorf("%w: nonce is %d bytes, want %d", ErrDecrypt, len(nonce), aeadNonceSize)
	}
	if len(ciphertext) < a.Overhead() {
		return nil, fmt.Errorf("%w: ciphertext shorter than the AEAD tag", ErrDecrypt)
	}
	pt, err := a.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	return pt, nil
}
