// Package cipher implements the MLS cipher suites (RFC 9420, Section 17.1)
// and the labeled cryptographic operations built on them (RFC 9420,
// Section 5): ExpandWithLabel, DeriveSecret, DeriveTreeSecret, RefHash,
// SignWithLabel/VerifyWithLabel and EncryptWithLabel/DecryptWithLabel.
//
// Keys cross the API as bytes in their wire form: HPKE keys as RFC 9180
// SerializePublicKey/SerializePrivateKey output, signature public keys as
// in RFC 9420 Section 5.1.1 (raw Ed25519/Ed448 keys, uncompressed ECDSA
// points) and signature private keys as Ed25519/Ed448 seeds or raw ECDSA
// scalars, the forms the official test vectors use.
package cipher

import "errors"

// SuiteID is the CipherSuite codepoint (RFC 9420, Section 17.1).
type SuiteID uint16

// The cipher suites of RFC 9420, Section 17.1.
const (
	X25519_AES128GCM_SHA256_Ed25519        SuiteID = 0x0001
	P256_AES128GCM_SHA256_P256             SuiteID = 0x0002
	X25519_CHACHA20POLY1305_SHA256_Ed25519 SuiteID = 0x0003
	X448_AES256GCM_SHA512_Ed448            SuiteID = 0x0004
	P521_AES256GCM_SHA512_P521             SuiteID = 0x0005
	X448_CHACHA20POLY1305_SHA512_Ed448     SuiteID = 0x0006
	P384_AES256GCM_SHA384_P384             SuiteID = 0x0007
)

// Errors callers branch on.
var (
	ErrUnsupportedSuite = errors.New("mls cipher: unsupported cipher suite")
	ErrBadSignature     = errors.New("mls cipher: signature verification failed")
	ErrDecrypt          = errors.New("mls cipher: decryption failed")
	ErrBadKey           = errors.New("mls cipher: malformed key")
)

// Suite is one MLS cipher suite. Values are immutable and safe for
// concurrent use; obtain them with Lookup.
type Suite struct {
	id SuiteID
	// implementation fields are private
}

// Lookup returns the suite for id, or ErrUnsupportedSuite.
func Lookup(id SuiteID) (*Suite, error) { panic("unimplemented") }

// ID returns the suite's codepoint.
func (s *Suite) ID() SuiteID { return s.id }

// HashSize is Nh, the output size of the suite's hash (and KDF.Nh).
func (s *Suite) HashSize() int { panic("unimplemented") }

// AEADKeySize is the AEAD's key length Nk.
func (s *Suite) AEADKeySize() int { panic("unimplemented") }

// AEADNonceSize is the AEAD's nonce length Nn.
func (s *Suite) AEADNonceSize() int { panic("unimplemented") }

// Hash returns the suite hash of data.
func (s *Suite) Hash(data []byte) []byte { panic("unimplemented") }

// MAC returns HMAC(key, data) with the suite hash (RFC 9420, Section 5.2).
func (s *Suite) MAC(key, data []byte) []byte { panic("unimplemented") }

// Extract is HKDF-Extract(salt, ikm).
func (s *Suite) Extract(salt, ikm []byte) []byte { panic("unimplemented") }

// Expand is HKDF-Expand(prk, info, length).
func (s *Suite) Expand(prk, info []byte, length int) ([]byte, error) { panic("unimplemented") }

// ExpandWithLabel (RFC 9420, Section 8): Expand with KDFLabel{length,
// "MLS 1.0 " + label, context}.
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	panic("unimplemented")
}

// DeriveSecret (RFC 9420, Section 8) is ExpandWithLabel(secret, label, "", Nh).
func (s *Suite) DeriveSecret(secret []byte, label string) ([]byte, error) { panic("unimplemented") }

// DeriveTreeSecret (RFC 9420, Section 9) is ExpandWithLabel(secret, label,
// uint32 generation, length).
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	panic("unimplemented")
}

// Seal encrypts with the suite AEAD.
func (s *Suite) Seal(key, nonce, aad, plaintext []byte) ([]byte, error) { panic("unimplemented") }

// Open decrypts with the suite AEAD; failures wrap ErrDecrypt.
func (s *Suite) Open(key, nonce, aad, ciphertext []byte) ([]byte, error) { panic("unimplemented") }

// RefHash (RFC 9420, Section 5.2) hashes RefHashInput{label, value}.
func (s *Suite) RefHash(label string, value []byte) []byte { panic("unimplemented") }

// KeyPackageRef (RFC 9420, Section 5.2) of an encoded KeyPackage.
func (s *Suite) KeyPackageRef(keyPackage []byte) []byte { panic("unimplemented") }

// ProposalRef (RFC 9420, Section 5.2) of an encoded AuthenticatedContent.
func (s *Suite) ProposalRef(authenticatedContent []byte) []byte { panic("unimplemented") }

// GenerateSignatureKey returns a fresh signature key pair.
func (s *Suite) GenerateSignatureKey() (priv, pub []byte, err error) { panic("unimplemented") }

// SignaturePublicKey returns the public key of a signature private key.
func (s *Suite) SignaturePublicKey(priv []byte) ([]byte, error) { panic("unimplemented") }

// SignWithLabel (RFC 9420, Section 5.1.2) signs SignContent{"MLS 1.0 " +
// label, content}.
func (s *Suite) SignWithLabel(priv []byte, label string, content []byte) ([]byte, error) {
	panic("unimplemented")
}

// VerifyWithLabel (RFC 9420, Section 5.1.2); failures wrap ErrBadSignature.
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	panic("unimplemented")
}

// GenerateHPKEKey returns a fresh HPKE key pair.
func (s *Suite) GenerateHPKEKey() (priv, pub []byte, err error) { panic("unimplemented") }

// DeriveHPKEKey is the KEM's DeriveKeyPair(ikm) (RFC 9180, Section 7.1.3).
func (s *Suite) DeriveHPKEKey(ikm []byte) (priv, pub []byte, err error) { panic("unimplemented") }

// HPKEPublicKey returns the public key of an HPKE private key.
func (s *Suite) HPKEPublicKey(priv []byte) ([]byte, error) { panic("unimplemented") }

// HPKESeal is single-shot HPKE base-mode SealBase (RFC 9180, Section 6.1).
func (s *Suite) HPKESeal(pub, info, aad, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	panic("unimplemented")
}

// HPKEOpen is single-shot OpenBase; failures wrap ErrDecrypt.
func (s *Suite) HPKEOpen(priv, kemOutput, info, aad, ciphertext []byte) ([]byte, error) {
	panic("unimplemented")
}

// EncryptWithLabel (RFC 9420, Section 5.1.3): SealBase with info =
// EncryptContext{"MLS 1.0 " + label, context} and empty aad.
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	panic("unimplemented")
}

// DecryptWithLabel is the inverse of EncryptWithLabel.
func (s *Suite) DecryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	panic("unimplemented")
}
