package cipher

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"

	"github.com/cloudflare/circl/ecc/goldilocks"
	"github.com/cloudflare/circl/sign/ed448"
)

// sigAlg identifies the suite signature scheme (RFC 9420, Section 17.1).
type sigAlg uint8

const (
	sigEd25519 sigAlg = iota + 1
	sigP256
	sigP384
	sigP521
	sigEd448
)

func (a sigAlg) String() string {
	switch a {
	case sigEd25519:
		return "Ed25519"
	case sigP256:
		return "ECDSA-P256-SHA256"
	case sigP384:
		return "ECDSA-P384-SHA384"
	case sigP521:
		return "ECDSA-P521-SHA512"
	case sigEd448:
		return "Ed448"
	}
	return "unknown"
}

// curve returns the NIST curve of an ECDSA scheme.
func (a sigAlg) curve() elliptic.Curve {
	switch a {
	case sigP256:
		return elliptic.P256()
	case sigP384:
		return elliptic.P384()
	default:
		return elliptic.P521()
	}
}

// digest hashes msg with the hash paired with the ECDSA curve.
func (a sigAlg) digest(msg []byte) []byte {
	switch a {
	case sigP256:
		h := sha256.Sum256(msg)
		return h[:]
	case sigP384:
		h := sha512.Sum384(msg)
		return h[:]
	default:
		h := sha512.Sum512(msg)
		return h[:]
	}
}

// GenerateSignatureKey returns a fresh signature key pair in the encodings
// of RFC 9420, Section 5.1.1 (private: Ed25519/Ed448 seed or raw ECDSA
// scalar; public: raw EdDSA key or uncompressed SEC1 point).
func (s *Suite) GenerateSignatureKey() (priv, pub []byte, err error) {
	switch s.sig {
	case sigEd25519:
		pk, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("mls cipher: generate Ed25519 key: %w", err)
		}
		return sk.Seed(), []byte(pk), nil
	case sigEd448:
		pk, sk, err := ed448.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("mls cipher: generate Ed448 key: %w", err)
		}
		return sk.Seed(), []byte(pk), nil
	default:
		k, err := ecdsa.GenerateKey(s.sig.curve(), rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("mls cipher: generate %v key: %w", s.sig, err)
		}
		if priv, err = k.Bytes(); err != nil {
			return nil, nil, fmt.Errorf("mls cipher: encode %v key: %w", s.sig, err)
		}
		if pub, err = k.PublicKey.Bytes(); err != nil {
			return nil, nil, fmt.Errorf("mls cipher: encode %v key: %w", s.sig, err)
		}
		return priv, pub, nil
	}
}

// SignaturePublicKey returns the public key (RFC 9420, Section 5.1.1
// encoding) of a signature private key; malformed keys wrap ErrBadKey.
func (s *Suite) SignaturePublicKey(priv []byte) ([]byte, error) {
	switch s.sig {
	case sigEd25519:
		if len(priv) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: Ed25519 private key is %d bytes, want %d", ErrBadKey, len(priv), ed25519.SeedSize)
		}
		return []byte(ed25519.NewKeyFromSeed(priv).Public().(ed25519.PublicKey)), nil
	case sigEd448:
		if len(priv) != ed448.SeedSize {
			return nil, fmt.Errorf("%w: Ed448 private key is %d bytes, want %d", ErrBadKey, len(priv), ed448.SeedSize)
		}
		return []byte(ed448.NewKeyFromSeed(priv).Public().(ed448.PublicKey)), nil
	default:
		k, err := s.ecdsaPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		pub, err := k.PublicKey.Bytes()
		if err != nil {
			return nil, fmt.Errorf("%w: %v public key: %v", ErrBadKey, s.sig, err)
		}
		return pub, nil
	}
}

// SignWithLabel (RFC 9420, Section 5.1.2) signs SignContent{"MLS 1.0 " +
// label, content}. Ed25519 and Ed448 (empty context) sign the encoding
// directly; ECDSA signs its hash and returns an ASN.1 DER signature.
// A malformed private key wraps ErrBadKey.
func (s *Suite) SignWithLabel(priv []byte, label string, content []byte) ([]byte, error) {
	msg, err := signContent(label, content)
	if err != nil {
		return nil, fmt.Errorf("mls cipher: SignWithLabel %q: %w", label, err)
	}
	switch s.sig {
	case sigEd25519:
		if len(priv) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: Ed25519 private key is %d bytes, want %d", ErrBadKey, len(priv), ed25519.SeedSize)
		}
		return ed25519.Sign(ed25519.NewKeyFromSeed(priv), msg), nil
	case sigEd448:
		if len(priv) != ed448.SeedSize {
			return nil, fmt.Errorf("%w: Ed448 private key is %d bytes, want %d", ErrBadKey, len(priv), ed448.SeedSize)
		}
		return ed448.Sign(ed448.NewKeyFromSeed(priv), msg, ""), nil
	default:
		k, err := s.ecdsaPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		sig, err := ecdsa.SignASN1(rand.Reader, k, s.sig.digest(msg))
		if err != nil {
			return nil, fmt.Errorf("mls cipher: SignWithLabel %q: %w", label, err)
		}
		return sig, nil
	}
}

// VerifyWithLabel (RFC 9420, Section 5.1.2) verifies a signature over
// SignContent{"MLS 1.0 " + label, content}. A signature that does not
// verify wraps ErrBadSignature; a public key that is malformed (wrong
// length, not a valid point) wraps ErrBadKey.
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	msg, err := signContent(label, content)
	if err != nil {
		return fmt.Errorf("%w: %q: %w", ErrBadSignature, label, err)
	}
	switch s.sig {
	case sigEd25519:
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 public key is %d bytes, want %d", ErrBadKey, len(pub), ed25519.PublicKeySize)
		}
		if !ed25519.Verify(ed25519.PublicKey(pub), msg, signature) {
			// Only on the failure path: tell a bad key from a bad signature.
			if !ed25519PointValid(pub) {
				return fmt.Errorf("%w: Ed25519 public key is not a curve point", ErrBadKey)
			}
			return fmt.Errorf("%w: %v signature with label %q", ErrBadSignature, s.sig, label)
		}
		return nil
	case sigEd448:
		if len(pub) != ed448.PublicKeySize {
			return fmt.Errorf("%w: Ed448 public key is %d bytes, want %d", ErrBadKey, len(pub), ed448.PublicKeySize)
		}
		if !ed448.Verify(ed448.PublicKey(pub), msg, signature, "") {
			if _, err := goldilocks.FromBytes(pub); err != nil {
				return fmt.Errorf("%w: Ed448 public key: %v", ErrBadKey, err)
			}
			return fmt.Errorf("%w: %v signature with label %q", ErrBadSignature, s.sig, label)
		}
		return nil
	default:
		k, err := ecdsa.ParseUncompressedPublicKey(s.sig.curve(), pub)
		if err != nil {
			return fmt.Errorf("%w: %v public key: %v", ErrBadKey, s.sig, err)
		}
		if !ecdsa.VerifyASN1(k, s.sig.digest(msg), signature) {
			return fmt.Errorf("%w: %v signature with label %q", ErrBadSignature, s.sig, label)
		}
		return nil
	}
}

// ValidateSignaturePublicKey checks that pub is a well-formed signature
// public key for the suite (RFC 9420, Section 5.1.1 encoding: 32-byte
// Ed25519 / 57-byte Ed448 keys that decode to curve points, uncompressed
// SEC1 points on the ECDSA curve). Failures wrap ErrBadKey. Useful for
// validating credentials and leaf nodes before any signature is checked.
func (s *Suite) ValidateSignaturePublicKey(pub []byte) error {
	switch s.sig {
	case sigEd25519:
		if len(pub) != ed25519.PublicKeySize || !ed25519PointValid(pub) {
			return fmt.Errorf("%w: invalid Ed25519 public key", ErrBadKey)
		}
	case sigEd448:
		if len(pub) != ed448.PublicKeySize {
			return fmt.Errorf("%w: Ed448 public key is %d bytes, want %d", ErrBadKey, len(pub), ed448.PublicKeySize)
		}
		if _, err := goldilocks.FromBytes(pub); err != nil {
			return fmt.Errorf("%w: Ed448 public key: %v", ErrBadKey, err)
		}
	default:
		if _, err := ecdsa.ParseUncompressedPublicKey(s.sig.curve(), pub); err != nil {
			return fmt.Errorf("%w: %v public key: %v", ErrBadKey, s.sig, err)
		}
	}
	return nil
}

// ecdsaPrivateKey parses a raw big-endian ECDSA scalar. Scalars shorter
// than the curve's size (leading zero bytes dropped, as some
// implementations and the official vectors write them) are left-padded.
func (s *Suite) ecdsaPrivateKey(priv []byte) (*ecdsa.PrivateKey, error) {
	size := (s.sig.curve().Params().BitSize + 7) / 8
	if len(priv) > 0 && len(priv) < size {
		padded := make([]byte, size)
		copy(padded[size-len(priv):], priv)
		priv = padded
	}
	k, err := ecdsa.ParseRawPrivateKey(s.sig.curve(), priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %v private key: %v", ErrBadKey, s.sig, err)
	}
	return k, nil
}
