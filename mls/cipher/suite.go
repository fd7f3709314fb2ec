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

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
)

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

// String returns the RFC 9420 Section 17.1 name of the suite, or a
// numeric form for unknown codepoints.
func (id SuiteID) String() string {
	switch id {
	case X25519_AES128GCM_SHA256_Ed25519:
		return "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
	case P256_AES128GCM_SHA256_P256:
		return "MLS_128_DHKEMP256_AES128GCM_SHA256_P256"
	case X25519_CHACHA20POLY1305_SHA256_Ed25519:
		return "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519"
	case X448_AES256GCM_SHA512_Ed448:
		return "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448"
	case P521_AES256GCM_SHA512_P521:
		return "MLS_256_DHKEMP521_AES256GCM_SHA512_P521"
	case X448_CHACHA20POLY1305_SHA512_Ed448:
		return "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448"
	case P384_AES256GCM_SHA384_P384:
		return "MLS_256_DHKEMP384_AES256GCM_SHA384_P384"
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(id))
}

// Errors callers branch on (RFC 9420, Section 5: failed signature
// verification, decryption or key parsing).
var (
	ErrUnsupportedSuite = errors.New("mls cipher: unsupported cipher suite")
	ErrBadSignature     = errors.New("mls cipher: signature verification failed")
	ErrDecrypt          = errors.New("mls cipher: decryption failed")
	ErrBadKey           = errors.New("mls cipher: malformed key")
)

// Suite is one MLS cipher suite (RFC 9420, Section 17.1). Values are immutable and safe for
// concurrent use; obtain them with Lookup.
type Suite struct {
	id SuiteID

	nh      int                      // hash / KDF output size
	newHash func() hash.Hash         // hash constructor (shared, never reallocated)
	sum     func(data []byte) []byte // one-shot hash

	aead aeadAlg
	sig  sigAlg
	kem  kemAlg
	hpke hpkeImpl
}

// suites holds the shared immutable Suite values, built once at init.
var suites = func() map[SuiteID]*Suite {
	sha256Sum := func(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
	sha384Sum := func(b []byte) []byte { h := sha512.Sum384(b); return h[:] }
	sha512Sum := func(b []byte) []byte { h := sha512.Sum512(b); return h[:] }
	m := map[SuiteID]*Suite{
		X25519_AES128GCM_SHA256_Ed25519: {nh: 32, newHash: sha256.New, sum: sha256Sum,
			aead: aeadAES128GCM, sig: sigEd25519, kem: kemX25519},
		P256_AES128GCM_SHA256_P256: {nh: 32, newHash: sha256.New, sum: sha256Sum,
			aead: aeadAES128GCM, sig: sigP256, kem: kemP256},
		X25519_CHACHA20POLY1305_SHA256_Ed25519: {nh: 32, newHash: sha256.New, sum: sha256Sum,
			aead: aeadChaCha20Poly1305, sig: sigEd25519, kem: kemX25519},
		X448_AES256GCM_SHA512_Ed448: {nh: 64, newHash: sha512.New, sum: sha512Sum,
			aead: aeadAES256GCM, sig: sigEd448, kem: kemX448},
		P521_AES256GCM_SHA512_P521: {nh: 64, newHash: sha512.New, sum: sha512Sum,
			aead: aeadAES256GCM, sig: sigP521, kem: kemP521},
		X448_CHACHA20POLY1305_SHA512_Ed448: {nh: 64, newHash: sha512.New, sum: sha512Sum,
			aead: aeadChaCha20Poly1305, sig: sigEd448, kem: kemX448},
		P384_AES256GCM_SHA384_P384: {nh: 48, newHash: sha512.New384, sum: sha384Sum,
			aead: aeadAES256GCM, sig: sigP384, kem: kemP384},
	}
	for id, s := range m {
		s.id = id
		s.hpke = newHPKE(s.kem, s.aead)
	}
	return m
}()

// Lookup returns the suite for id, or ErrUnsupportedSuite
// (RFC 9420, Section 17.1). The returned value is shared and immutable.
func Lookup(id SuiteID) (*Suite, error) {
	s, ok := suites[id]
	if !ok {
		return nil, fmt.Errorf("%w: 0x%04x", ErrUnsupportedSuite, uint16(id))
	}
	return s, nil
}

// ID returns the suite's codepoint (RFC 9420, Section 17.1).
func (s *Suite) ID() SuiteID { return s.id }

// HashSize is Nh, the output size of the suite's hash (and KDF.Nh)
// (RFC 9420, Section 17.1; RFC 9180, Section 7.2).
func (s *Suite) HashSize() int { return s.nh }

// AEADKeySize is the AEAD's key length Nk (RFC 9180, Section 7.3).
func (s *Suite) AEADKeySize() int { return s.aead.keySize() }

// AEADNonceSize is the AEAD's nonce length Nn (RFC 9180, Section 7.3).
func (s *Suite) AEADNonceSize() int { return aeadNonceSize }

// Hash returns the suite hash of data (RFC 9420, Section 5.2).
func (s *Suite) Hash(data []byte) []byte { return s.sum(data) }

// RefHash (RFC 9420, Section 5.2) hashes RefHashInput{label, value}.
func (s *Suite) RefHash(label string, value []byte) []byte {
	return s.sum(refHashInput(label, value))
}

// KeyPackageRef (RFC 9420, Section 5.2) of an encoded KeyPackage.
func (s *Suite) KeyPackageRef(keyPackage []byte) []byte {
	return s.RefHash("MLS 1.0 KeyPackage Reference", keyPackage)
}

// ProposalRef (RFC 9420, Section 5.2) of an encoded AuthenticatedContent.
func (s *Suite) ProposalRef(authenticatedContent []byte) []byte {
	return s.RefHash("MLS 1.0 Proposal Reference", authenticatedContent)
}
