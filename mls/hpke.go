package mls

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"fmt"

	circlhpke "github.com/cloudflare/circl/hpke"

	"github.com/openmimi/mimi/mls/cipher"
)

// The HPKE export interface (RFC 9180, Section 5.3) that external
// initialization needs (RFC 9420, Section 8.3) is not offered by
// mls/cipher, so it is implemented here on the same libraries, with the
// suite's KEM, KDF and AEAD (the AEAD id enters the HPKE key schedule).

// labelExternalInit is the HPKE exporter context of RFC 9420, Section 8.3.
const labelExternalInit = "MLS 1.0 external init secret"

// hpkeParams maps a cipher suite to its HPKE algorithms (RFC 9420, Section
// 17.1); x448 selects circl for DHKEM(X448).
func hpkeParams(id cipher.SuiteID) (kem hpke.KEM, kdf hpke.KDF, aead hpke.AEAD, x448 *circlhpke.Suite, err error) {
	switch id {
	case cipher.X25519_AES128GCM_SHA256_Ed25519:
		return hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.AES128GCM(), nil, nil
	case cipher.P256_AES128GCM_SHA256_P256:
		return hpke.DHKEM(ecdh.P256()), hpke.HKDFSHA256(), hpke.AES128GCM(), nil, nil
	case cipher.X25519_CHACHA20POLY1305_SHA256_Ed25519:
		return hpke.DHKEM(ecdh.X25519()), hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), nil, nil
	case cipher.P521_AES256GCM_SHA512_P521:
		return hpke.DHKEM(ecdh.P521()), hpke.HKDFSHA512(), hpke.AES256GCM(), nil, nil
	case cipher.P384_AES256GCM_SHA384_P384:
		return hpke.DHKEM(ecdh.P384()), hpke.HKDFSHA384(), hpke.AES256GCM(), nil, nil
	case cipher.X448_AES256GCM_SHA512_Ed448:
		s := circlhpke.NewSuite(circlhpke.KEM_X448_HKDF_SHA512, circlhpke.KDF_HKDF_SHA512, circlhpke.AEAD_AES256GCM)
		return nil, nil, nil, &s, nil
	case cipher.X448_CHACHA20POLY1305_SHA512_Ed448:
		s := circlhpke.NewSuite(circlhpke.KEM_X448_HKDF_SHA512, circlhpke.KDF_HKDF_SHA512, circlhpke.AEAD_ChaCha20Poly1305)
		return nil, nil, nil, &s, nil
	}
	return nil, nil, nil, nil, fmt.Errorf("%w: 0x%04x", cipher.ErrUnsupportedSuite, uint16(id))
}

// externalInitSend runs SetupBaseS(external_pub, "") and exports
// init_secret (RFC 9420, Section 8.3).
func externalInitSend(s *cipher.Suite, externalPub []byte) (kemOutput, initSecret []byte, err error) {
	kem, kdf, aead, x448, err := hpkeParams(s.ID())
	if err != nil {
		return nil, nil, err
	}
	if x448 != nil {
		pk, err := circlhpke.KEM_X448_HKDF_SHA512.Scheme().UnmarshalBinaryPublicKey(externalPub)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: external_pub: %v", cipher.ErrBadKey, err)
		}
		snd, err := x448.NewSender(pk, nil)
		if err != nil {
			return nil, nil, err
		}
		enc, sealer, err := snd.Setup(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: encapsulation: %v", cipher.ErrBadKey, err)
		}
		return enc, sealer.Export([]byte(labelExternalInit), uint(s.HashSize())), nil
	}
	pk, err := kem.NewPublicKey(externalPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: external_pub: %v", cipher.ErrBadKey, err)
	}
	enc, snd, err := hpke.NewSender(pk, kdf, aead, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: encapsulation: %v", cipher.ErrBadKey, err)
	}
	sec, err := snd.Export(labelExternalInit, s.HashSize())
	if err != nil {
		return nil, nil, err
	}
	return enc, sec, nil
}

// externalInitReceive runs SetupBaseR(kem_output, external_priv, "") and
// exports init_secret (RFC 9420, Section 8.3).
func externalInitReceive(s *cipher.Suite, externalPriv, kemOutput []byte) ([]byte, error) {
	kem, kdf, aead, x448, err := hpkeParams(s.ID())
	if err != nil {
		return nil, err
	}
	if x448 != nil {
		sk, err := circlhpke.KEM_X448_HKDF_SHA512.Scheme().UnmarshalBinaryPrivateKey(externalPriv)
		if err != nil {
			return nil, fmt.Errorf("%w: external_priv: %v", cipher.ErrBadKey, err)
		}
		rcv, err := x448.NewReceiver(sk, nil)
		if err != nil {
			return nil, err
		}
		opener, err := rcv.Setup(kemOutput)
		if err != nil {
			return nil, fmt.Errorf("%w: decapsulation: %v", cipher.ErrDecrypt, err)
		}
		return opener.Export([]byte(labelExternalInit), uint(s.HashSize())), nil
	}
	sk, err := kem.NewPrivateKey(externalPriv)
	if err != nil {
		return nil, fmt.Errorf("%w: external_priv: %v", cipher.ErrBadKey, err)
	}
	rcp, err := hpke.NewRecipient(kemOutput, sk, kdf, aead, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: decapsulation: %v", cipher.ErrDecrypt, err)
	}
	return rcp.Export(labelExternalInit, s.HashSize())
}
