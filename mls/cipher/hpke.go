package cipher

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha512"
	"fmt"

	"github.com/cloudflare/circl/dh/x448"
	circlhpke "github.com/cloudflare/circl/hpke"
)

// kemAlg identifies the suite HPKE KEM (RFC 9180, Section 7.1).
type kemAlg uint16

const (
	kemP256   kemAlg = 0x0010
	kemP384   kemAlg = 0x0011
	kemP521   kemAlg = 0x0012
	kemX25519 kemAlg = 0x0020
	kemX448   kemAlg = 0x0021
)

// hpkeImpl is the suite's HPKE base mode (RFC 9180) over serialized keys.
type hpkeImpl interface {
	generate() (priv, pub []byte, err error)
	derive(ikm []byte) (priv, pub []byte, err error)
	publicKey(priv []byte) ([]byte, error)
	validatePublic(pub []byte) error
	seal(pub, info, aad, plaintext []byte) (enc, ct []byte, err error)
	open(priv, enc, info, aad, ct []byte) ([]byte, error)
	exportSend(pub, info []byte, exporterContext string, length int) (enc, secret []byte, err error)
	exportReceive(priv, enc, info []byte, exporterContext string, length int) ([]byte, error)
}

// newHPKE builds the HPKE implementation of a suite: crypto/hpke for the
// DHKEMs it provides, and a circl-based one for DHKEM(X448, HKDF-SHA512).
func newHPKE(k kemAlg, a aeadAlg) hpkeImpl {
	if k == kemX448 {
		ca := circlhpke.AEAD_AES256GCM
		if a == aeadChaCha20Poly1305 {
			ca = circlhpke.AEAD_ChaCha20Poly1305
		}
		return x448HPKE{suite: circlhpke.NewSuite(circlhpke.KEM_X448_HKDF_SHA512, circlhpke.KDF_HKDF_SHA512, ca)}
	}
	var h stdHPKE
	switch k {
	case kemX25519:
		h.kem, h.kdf = hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256()
	case kemP256:
		h.kem, h.kdf, h.scalarSize = hpke.DHKEM(ecdh.P256()), hpke.HKDFSHA256(), 32
	case kemP384:
		h.kem, h.kdf, h.scalarSize = hpke.DHKEM(ecdh.P384()), hpke.HKDFSHA384(), 48
	case kemP521:
		h.kem, h.kdf, h.scalarSize = hpke.DHKEM(ecdh.P521()), hpke.HKDFSHA512(), 66
	}
	switch a {
	case aeadAES128GCM:
		h.aead = hpke.AES128GCM()
	case aeadAES256GCM:
		h.aead = hpke.AES256GCM()
	case aeadChaCha20Poly1305:
		h.aead = hpke.ChaCha20Poly1305()
	}
	return h
}

// stdHPKE is HPKE from the standard library (X25519, P-256, P-384, P-521).
type stdHPKE struct {
	kem  hpke.KEM
	kdf  hpke.KDF
	aead hpke.AEAD
	// scalarSize is the NIST curve's private scalar length; 0 for X25519.
	scalarSize int
}

// privateKey deserializes a private key. A NIST-curve scalar shorter than
// the curve size (leading zero bytes dropped, as the official vectors
// sometimes write P-521 keys) is left-padded first.
func (h stdHPKE) privateKey(priv []byte) (hpke.PrivateKey, error) {
	if h.scalarSize > 0 && len(priv) > 0 && len(priv) < h.scalarSize {
		padded := make([]byte, h.scalarSize)
		copy(padded[h.scalarSize-len(priv):], priv)
		priv = padded
	}
	return h.kem.NewPrivateKey(priv)
}

func (h stdHPKE) pair(k hpke.PrivateKey) (priv, pub []byte, err error) {
	priv, err = k.Bytes()
	if err != nil {
		return nil, nil, err
	}
	return priv, k.PublicKey().Bytes(), nil
}

func (h stdHPKE) generate() (priv, pub []byte, err error) {
	k, err := h.kem.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	return h.pair(k)
}

func (h stdHPKE) derive(ikm []byte) (priv, pub []byte, err error) {
	k, err := h.kem.DeriveKeyPair(ikm)
	if err != nil {
		return nil, nil, err
	}
	return h.pair(k)
}

func (h stdHPKE) publicKey(priv []byte) ([]byte, error) {
	k, err := h.privateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE private key: %v", ErrBadKey, err)
	}
	return k.PublicKey().Bytes(), nil
}

func (h stdHPKE) validatePublic(pub []byte) error {
	if _, err := h.kem.NewPublicKey(pub); err != nil {
		return fmt.Errorf("%w: HPKE public key: %v", ErrBadKey, err)
	}
	return nil
}

func (h stdHPKE) seal(pub, info, aad, plaintext []byte) (enc, ct []byte, err error) {
	enc, snd, err := h.sender(pub, info)
	if err != nil {
		return nil, nil, err
	}
	ct, err = snd.Seal(aad, plaintext)
	if err != nil {
		return nil, nil, err
	}
	return enc, ct, nil
}

// recipient sets up a base-mode recipient context (RFC 9180, Section 5.1).
func (h stdHPKE) recipient(priv, enc, info []byte) (*hpke.Recipient, error) {
	sk, err := h.privateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: HPKE private key: %v", ErrDecrypt, ErrBadKey, err)
	}
	rcp, err := hpke.NewRecipient(enc, sk, h.kdf, h.aead, info)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE decapsulation: %v", ErrDecrypt, err)
	}
	return rcp, nil
}

// sender sets up a base-mode sender context (RFC 9180, Section 5.1).
func (h stdHPKE) sender(pub, info []byte) ([]byte, *hpke.Sender, error) {
	pk, err := h.kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: HPKE public key: %v", ErrBadKey, err)
	}
	enc, snd, err := hpke.NewSender(pk, h.kdf, h.aead, info)
	if err != nil {
		// Encapsulation fails only for keys such as low-order X25519 points.
		return nil, nil, fmt.Errorf("%w: HPKE encapsulation: %v", ErrBadKey, err)
	}
	return enc, snd, nil
}

func (h stdHPKE) open(priv, enc, info, aad, ct []byte) ([]byte, error) {
	rcp, err := h.recipient(priv, enc, info)
	if err != nil {
		return nil, err
	}
	pt, err := rcp.Open(aad, ct)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE open: %v", ErrDecrypt, err)
	}
	return pt, nil
}

func (h stdHPKE) exportSend(pub, info []byte, exporterContext string, length int) (enc, secret []byte, err error) {
	enc, snd, err := h.sender(pub, info)
	if err != nil {
		return nil, nil, err
	}
	secret, err = snd.Export(exporterContext, length)
	return enc, secret, err
}

func (h stdHPKE) exportReceive(priv, enc, info []byte, exporterContext string, length int) ([]byte, error) {
	rcp, err := h.recipient(priv, enc, info)
	if err != nil {
		return nil, err
	}
	return rcp.Export(exporterContext, length)
}

// x448HPKE is DHKEM(X448, HKDF-SHA512) HPKE (RFC 9180, Section 7.1), which
// crypto/hpke lacks. Encapsulation and the key schedule use circl's hpke;
// DeriveKeyPair is done here because circl's accepts only 56-byte ikm.
type x448HPKE struct {
	suite circlhpke.Suite
}

// x448KEMSuiteID is suite_id = "KEM" || I2OSP(0x0021, 2) (RFC 9180, 4.1).
var x448KEMSuiteID = []byte{'K', 'E', 'M', 0x00, 0x21}

// clampX448 applies the RFC 7748 decodeScalar448 clamping that RFC 9180,
// Section 7.1.2 requires of SerializePrivateKey.
func clampX448(k []byte) {
	k[0] &= 252
	k[x448.Size-1] |= 128
}

func x448Pair(sk []byte) (priv, pub []byte) {
	var s, p x448.Key
	copy(s[:], sk)
	clampX448(s[:])
	x448.KeyGen(&p, &s)
	return append([]byte(nil), s[:]...), append([]byte(nil), p[:]...)
}

func (x x448HPKE) generate() (priv, pub []byte, err error) {
	var s x448.Key
	if _, err := rand.Read(s[:]); err != nil {
		return nil, nil, err
	}
	priv, pub = x448Pair(s[:])
	return priv, pub, nil
}

// derive is DeriveKeyPair for X448 (RFC 9180, Section 7.1.3):
//
//	dkp_prk = LabeledExtract("", "dkp_prk", ikm)
//	sk = LabeledExpand(dkp_prk, "sk", "", Nsk)
func (x x448HPKE) derive(ikm []byte) (priv, pub []byte, err error) {
	m := hmac.New(sha512.New, nil) // Extract with empty salt
	m.Write([]byte("HPKE-v1"))
	m.Write(x448KEMSuiteID)
	m.Write([]byte("dkp_prk"))
	m.Write(ikm)
	prk := m.Sum(nil)

	// Nsk = 56 < Nh = 64, so HKDF-Expand is a single HMAC block:
	// T(1) = HMAC(prk, labeled_info || 0x01).
	m = hmac.New(sha512.New, prk)
	m.Write([]byte{0, x448.Size}) // I2OSP(L, 2)
	m.Write([]byte("HPKE-v1"))
	m.Write(x448KEMSuiteID)
	m.Write([]byte("sk"))
	m.Write([]byte{1})
	sk := m.Sum(nil)[:x448.Size]
	priv, pub = x448Pair(sk)
	return priv, pub, nil
}

func (x x448HPKE) publicKey(priv []byte) ([]byte, error) {
	if len(priv) != x448.Size {
		return nil, fmt.Errorf("%w: X448 private key is %d bytes, want %d", ErrBadKey, len(priv), x448.Size)
	}
	_, pub := x448Pair(priv)
	return pub, nil
}

func (x x448HPKE) validatePublic(pub []byte) error {
	if len(pub) != x448.Size {
		return fmt.Errorf("%w: X448 public key is %d bytes, want %d", ErrBadKey, len(pub), x448.Size)
	}
	return nil
}

// sealer sets up a base-mode sender context to pub (RFC 9180, Section 5.1).
func (x x448HPKE) sealer(pub, info []byte) ([]byte, circlhpke.Sealer, error) {
	if err := x.validatePublic(pub); err != nil {
		return nil, nil, err
	}
	pk, err := circlhpke.KEM_X448_HKDF_SHA512.Scheme().UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: X448 public key: %v", ErrBadKey, err)
	}
	snd, err := x.suite.NewSender(pk, info)
	if err != nil {
		return nil, nil, err
	}
	enc, sealer, err := snd.Setup(rand.Reader)
	if err != nil {
		// Encapsulation fails only for low-order points.
		return nil, nil, fmt.Errorf("%w: HPKE encapsulation: %v", ErrBadKey, err)
	}
	return enc, sealer, nil
}

// opener sets up a base-mode recipient context (RFC 9180, Section 5.1).
func (x x448HPKE) opener(priv, enc, info []byte) (circlhpke.Opener, error) {
	if len(priv) != x448.Size {
		return nil, fmt.Errorf("%w: %w: X448 private key is %d bytes, want %d", ErrDecrypt, ErrBadKey, len(priv), x448.Size)
	}
	if len(enc) != x448.Size {
		return nil, fmt.Errorf("%w: X448 kem_output is %d bytes, want %d", ErrDecrypt, len(enc), x448.Size)
	}
	sk, err := circlhpke.KEM_X448_HKDF_SHA512.Scheme().UnmarshalBinaryPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: X448 private key: %v", ErrDecrypt, ErrBadKey, err)
	}
	rcv, err := x.suite.NewReceiver(sk, info)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	opener, err := rcv.Setup(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE decapsulation: %v", ErrDecrypt, err)
	}
	return opener, nil
}

func (x x448HPKE) seal(pub, info, aad, plaintext []byte) (enc, ct []byte, err error) {
	enc, sealer, err := x.sealer(pub, info)
	if err != nil {
		return nil, nil, err
	}
	ct, err = sealer.Seal(plaintext, aad)
	if err != nil {
		return nil, nil, err
	}
	return enc, ct, nil
}

func (x x448HPKE) open(priv, enc, info, aad, ct []byte) ([]byte, error) {
	opener, err := x.opener(priv, enc, info)
	if err != nil {
		return nil, err
	}
	pt, err := opener.Open(ct, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE open: %v", ErrDecrypt, err)
	}
	return pt, nil
}

func (x x448HPKE) exportSend(pub, info []byte, exporterContext string, length int) (enc, secret []byte, err error) {
	enc, sealer, err := x.sealer(pub, info)
	if err != nil {
		return nil, nil, err
	}
	return enc, sealer.Export([]byte(exporterContext), uint(length)), nil
}

func (x x448HPKE) exportReceive(priv, enc, info []byte, exporterContext string, length int) ([]byte, error) {
	opener, err := x.opener(priv, enc, info)
	if err != nil {
		return nil, err
	}
	return opener.Export([]byte(exporterContext), uint(length)), nil
}

// HPKEExportSend sets up an HPKE base-mode sender context to pub with the
// given info and returns the encapsulated key and Export(exporterContext,
// length) (RFC 9180, Sections 5.1 and 5.3). MLS external commits use it to
// derive init_secret from external_pub (RFC 9420, Section 8.3).
func (s *Suite) HPKEExportSend(pub, info []byte, exporterContext string, length int) (kemOutput, secret []byte, err error) {
	kemOutput, secret, err = s.hpke.exportSend(pub, info, exporterContext, length)
	if err != nil {
		return nil, nil, fmt.Errorf("mls cipher: HPKE export: %w", err)
	}
	return kemOutput, secret, nil
}

// HPKEExportReceive is the receiver side of HPKEExportSend: it sets up a
// recipient context from kemOutput and returns the same exported secret.
// Failures wrap ErrDecrypt.
func (s *Suite) HPKEExportReceive(priv, kemOutput, info []byte, exporterContext string, length int) ([]byte, error) {
	secret, err := s.hpke.exportReceive(priv, kemOutput, info, exporterContext, length)
	if err != nil {
		return nil, fmt.Errorf("mls cipher: HPKE export: %w", err)
	}
	return secret, nil
}

// GenerateHPKEKey returns a fresh HPKE key pair, serialized per RFC 9180,
// Section 7.1.1/7.1.2.
func (s *Suite) GenerateHPKEKey() (priv, pub []byte, err error) {
	priv, pub, err = s.hpke.generate()
	if err != nil {
		return nil, nil, fmt.Errorf("mls cipher: generate HPKE key: %w", err)
	}
	return priv, pub, nil
}

// DeriveHPKEKey is the KEM's DeriveKeyPair(ikm) (RFC 9180, Section 7.1.3).
// The private key is returned as SerializePrivateKey output (clamped for
// X25519/X448 as RFC 9180, Section 7.1.2 requires).
func (s *Suite) DeriveHPKEKey(ikm []byte) (priv, pub []byte, err error) {
	priv, pub, err = s.hpke.derive(ikm)
	if err != nil {
		return nil, nil, fmt.Errorf("mls cipher: derive HPKE key: %w", err)
	}
	return priv, pub, nil
}

// HPKEPublicKey returns the public key of an HPKE private key (RFC 9180,
// Section 7.1.2 serialization); malformed keys wrap ErrBadKey.
func (s *Suite) HPKEPublicKey(priv []byte) ([]byte, error) {
	return s.hpke.publicKey(priv)
}

// ValidateHPKEPublicKey checks that pub deserializes as a public key of the
// suite's KEM (RFC 9180, Section 7.1.1: right length, and for NIST curves an
// uncompressed point on the curve); failures wrap ErrBadKey. Useful for
// validating leaf and key package encryption keys (RFC 9420, Section 7.3).
func (s *Suite) ValidateHPKEPublicKey(pub []byte) error {
	return s.hpke.validatePublic(pub)
}

// HPKESeal is single-shot HPKE base-mode SealBase (RFC 9180, Section 6.1).
// A malformed public key wraps ErrBadKey.
func (s *Suite) HPKESeal(pub, info, aad, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	kemOutput, ciphertext, err = s.hpke.seal(pub, info, aad, plaintext)
	if err != nil {
		return nil, nil, fmt.Errorf("mls cipher: HPKE seal: %w", err)
	}
	return kemOutput, ciphertext, nil
}

// HPKEOpen is single-shot OpenBase (RFC 9180, Section 6.1); failures wrap
// ErrDecrypt (and also ErrBadKey when the private key is malformed).
func (s *Suite) HPKEOpen(priv, kemOutput, info, aad, ciphertext []byte) ([]byte, error) {
	return s.hpke.open(priv, kemOutput, info, aad, ciphertext)
}

// EncryptWithLabel (RFC 9420, Section 5.1.3): SealBase with info =
// EncryptContext{"MLS 1.0 " + label, context} and empty aad.
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	info, err := encryptContext(label, context)
	if err != nil {
		return nil, nil, fmt.Errorf("mls cipher: EncryptWithLabel %q: %w", label, err)
	}
	kemOutput, ciphertext, err = s.hpke.seal(pub, info, nil, plaintext)
	if err != nil {
		return nil, nil, fmt.Errorf("mls cipher: EncryptWithLabel %q: %w", label, err)
	}
	return kemOutput, ciphertext, nil
}

// DecryptWithLabel is the inverse of EncryptWithLabel (RFC 9420,
// Section 5.1.3); failures wrap ErrDecrypt.
func (s *Suite) DecryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	info, err := encryptContext(label, context)
	if err != nil {
		return nil, fmt.Errorf("%w: DecryptWithLabel %q: %w", ErrDecrypt, label, err)
	}
	return s.hpke.open(priv, kemOutput, info, nil, ciphertext)
}
