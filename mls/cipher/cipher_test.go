package cipher_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
)

var allSuites = []cipher.SuiteID{
	cipher.X25519_AES128GCM_SHA256_Ed25519,
	cipher.P256_AES128GCM_SHA256_P256,
	cipher.X25519_CHACHA20POLY1305_SHA256_Ed25519,
	cipher.X448_AES256GCM_SHA512_Ed448,
	cipher.P521_AES256GCM_SHA512_P521,
	cipher.X448_CHACHA20POLY1305_SHA512_Ed448,
	cipher.P384_AES256GCM_SHA384_P384,
}

func mustSuite(t testing.TB, id cipher.SuiteID) *cipher.Suite {
	t.Helper()
	s, err := cipher.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// flip returns a copy of b with bit 0 of byte i inverted.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func TestLookup(t *testing.T) {
	tests := []struct {
		id                          cipher.SuiteID
		nh, nk, nn, sigPub, hpkePub int
	}{
		{cipher.X25519_AES128GCM_SHA256_Ed25519, 32, 16, 12, 32, 32},
		{cipher.P256_AES128GCM_SHA256_P256, 32, 16, 12, 65, 65},
		{cipher.X25519_CHACHA20POLY1305_SHA256_Ed25519, 32, 32, 12, 32, 32},
		{cipher.X448_AES256GCM_SHA512_Ed448, 64, 32, 12, 57, 56},
		{cipher.P521_AES256GCM_SHA512_P521, 64, 32, 12, 133, 133},
		{cipher.X448_CHACHA20POLY1305_SHA512_Ed448, 64, 32, 12, 57, 56},
		{cipher.P384_AES256GCM_SHA384_P384, 48, 32, 12, 97, 97},
	}
	for _, tc := range tests {
		t.Run(tc.id.String(), func(t *testing.T) {
			s := mustSuite(t, tc.id)
			if s2 := mustSuite(t, tc.id); s2 != s {
				t.Error("Lookup does not return a shared value")
			}
			if s.ID() != tc.id || s.HashSize() != tc.nh || s.AEADKeySize() != tc.nk || s.AEADNonceSize() != tc.nn {
				t.Errorf("sizes: id=%v Nh=%d Nk=%d Nn=%d", s.ID(), s.HashSize(), s.AEADKeySize(), s.AEADNonceSize())
			}
			if got := len(s.Hash(nil)); got != tc.nh {
				t.Errorf("len(Hash) = %d", got)
			}
			if got := len(s.MAC([]byte("k"), nil)); got != tc.nh {
				t.Errorf("len(MAC) = %d", got)
			}
			_, pub, err := s.GenerateSignatureKey()
			if err != nil || len(pub) != tc.sigPub {
				t.Errorf("signature public key: %d bytes, %v", len(pub), err)
			}
			_, pub, err = s.GenerateHPKEKey()
			if err != nil || len(pub) != tc.hpkePub {
				t.Errorf("HPKE public key: %d bytes, %v", len(pub), err)
			}
		})
	}
	for _, id := range []cipher.SuiteID{0, 8, 0xf0f0, 0xffff} {
		if s, err := cipher.Lookup(id); s != nil || !errors.Is(err, cipher.ErrUnsupportedSuite) {
			t.Errorf("Lookup(%v) = %v, %v; want ErrUnsupportedSuite", id, s, err)
		}
	}
}

// TestHKDF checks Extract/Expand against RFC 5869, Appendix A.1 and A.3.
func TestHKDF(t *testing.T) {
	s := mustSuite(t, cipher.X25519_AES128GCM_SHA256_Ed25519)
	tests := []struct{ ikm, salt, info, prk, okm string }{
		{
			"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
			"077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
			"3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
		},
		{
			"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
			"19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
			"8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
		},
	}
	for i, tc := range tests {
		prk := s.Extract(unhex(t, tc.salt), unhex(t, tc.ikm))
		if !bytes.Equal(prk, unhex(t, tc.prk)) {
			t.Errorf("%d: PRK = %x", i, prk)
		}
		okm, err := s.Expand(prk, unhex(t, tc.info), 42)
		if err != nil || !bytes.Equal(okm, unhex(t, tc.okm)) {
			t.Errorf("%d: OKM = %x, %v", i, okm, err)
		}
	}
	for _, id := range allSuites {
		s := mustSuite(t, id)
		if out, err := s.Expand(make([]byte, s.HashSize()), nil, 255*s.HashSize()); err != nil || len(out) != 255*s.HashSize() {
			t.Errorf("%v: Expand(255*Nh) = %d bytes, %v", id, len(out), err)
		}
		if _, err := s.Expand(make([]byte, s.HashSize()), nil, 255*s.HashSize()+1); err == nil {
			t.Errorf("%v: Expand(255*Nh+1) succeeded", id)
		}
		if _, err := s.Expand(nil, nil, -1); err == nil {
			t.Errorf("%v: Expand(-1) succeeded", id)
		}
		if _, err := s.ExpandWithLabel(nil, "x", nil, 0x10000); err == nil {
			t.Errorf("%v: ExpandWithLabel(65536) succeeded", id)
		}
		if out, err := s.ExpandWithLabel(nil, "x", nil, 0); err != nil || len(out) != 0 {
			t.Errorf("%v: ExpandWithLabel(0) = %x, %v", id, out, err)
		}
		a, _ := s.DeriveTreeSecret([]byte("secret"), "key", 1, 16)
		b, _ := s.DeriveTreeSecret([]byte("secret"), "key", 2, 16)
		if bytes.Equal(a, b) {
			t.Errorf("%v: DeriveTreeSecret ignores generation", id)
		}
	}
}

func TestRefs(t *testing.T) {
	for _, id := range allSuites {
		s := mustSuite(t, id)
		v := []byte("value")
		if !bytes.Equal(s.KeyPackageRef(v), s.RefHash("MLS 1.0 KeyPackage Reference", v)) {
			t.Errorf("%v: KeyPackageRef", id)
		}
		if !bytes.Equal(s.ProposalRef(v), s.RefHash("MLS 1.0 Proposal Reference", v)) {
			t.Errorf("%v: ProposalRef", id)
		}
		if bytes.Equal(s.KeyPackageRef(v), s.ProposalRef(v)) {
			t.Errorf("%v: KeyPackageRef == ProposalRef", id)
		}
		// RefHashInput = opaque label<V> || opaque value<V>.
		want := s.Hash(append(append([]byte{3}, "abc"...), append([]byte{1}, 'v')...))
		if got := s.RefHash("abc", []byte("v")); !bytes.Equal(got, want) {
			t.Errorf("%v: RefHash encoding", id)
		}
	}
}

func TestAEAD(t *testing.T) {
	for _, id := range allSuites {
		t.Run(id.String(), func(t *testing.T) {
			s := mustSuite(t, id)
			key := bytes.Repeat([]byte{7}, s.AEADKeySize())
			nonce := bytes.Repeat([]byte{9}, s.AEADNonceSize())
			aad, pt := []byte("aad"), []byte("plaintext")
			ct, err := s.Seal(key, nonce, aad, pt)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.Open(key, nonce, aad, ct); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Open = %q, %v", got, err)
			}
			bad := []struct {
				name               string
				key, nonce, aad, c []byte
			}{
				{"tampered ciphertext", key, nonce, aad, flip(ct, 0)},
				{"tampered tag", key, nonce, aad, flip(ct, len(ct)-1)},
				{"wrong aad", key, nonce, []byte("aae"), ct},
				{"wrong key", flip(key, 3), nonce, aad, ct},
				{"wrong nonce", key, flip(nonce, 0), aad, ct},
				{"short ciphertext", key, nonce, aad, ct[:10]},
				{"empty ciphertext", key, nonce, aad, nil},
				{"short key", key[:8], nonce, aad, ct},
				{"long nonce", key, append(nonce, 0), aad, ct},
			}
			for _, b := range bad {
				if _, err := s.Open(b.key, b.nonce, b.aad, b.c); !errors.Is(err, cipher.ErrDecrypt) {
					t.Errorf("%s: Open error %v, want ErrDecrypt", b.name, err)
				}
			}
			if _, err := s.Seal(key[:5], nonce, nil, pt); !errors.Is(err, cipher.ErrBadKey) {
				t.Errorf("Seal with short key: %v", err)
			}
			if _, err := s.Seal(key, nonce[:4], nil, pt); err == nil {
				t.Error("Seal with short nonce succeeded")
			}
		})
	}
}

// badSignaturePublicKeys returns malformed public keys for a suite.
func badSignaturePublicKeys(t *testing.T, s *cipher.Suite, pub []byte) map[string][]byte {
	m := map[string][]byte{
		"empty":     nil,
		"truncated": pub[:len(pub)-1],
		"extended":  append(bytes.Clone(pub), 0),
	}
	switch len(pub) {
	case 32: // Ed25519: y = 2 is not the y-coordinate of a curve point.
		p := make([]byte, 32)
		p[0] = 2
		m["not on curve"] = p
		p = make([]byte, 32)
		p[0], p[31] = 1, 0x80 // x = 0 with the sign bit set
		m["negative zero x"] = p
	case 57: // Ed448: likewise y = 2, and a non-canonical all-ones encoding.
		p := make([]byte, 57)
		p[0] = 2
		m["not on curve"] = p
		m["non-canonical"] = bytes.Repeat([]byte{0xff}, 57)
	default: // ECDSA
		m["not on curve"] = flip(pub, len(pub)-1)
		c := bytes.Clone(pub)
		c[0] = 2
		m["compressed tag"] = c[:1+(len(pub)-1)/2]
		c = bytes.Clone(pub)
		c[0] = 5
		m["bad tag"] = c
		m["infinity"] = []byte{0}
	}
	return m
}

func TestSignatureNegative(t *testing.T) {
	for _, id := range allSuites {
		t.Run(id.String(), func(t *testing.T) {
			s := mustSuite(t, id)
			priv, pub, err := s.GenerateSignatureKey()
			if err != nil {
				t.Fatal(err)
			}
			if p, err := s.SignaturePublicKey(priv); err != nil || !bytes.Equal(p, pub) {
				t.Fatalf("SignaturePublicKey = %x, %v", p, err)
			}
			if err := s.ValidateSignaturePublicKey(pub); err != nil {
				t.Fatalf("ValidateSignaturePublicKey(valid) = %v", err)
			}
			content := []byte("content")
			sig, err := s.SignWithLabel(priv, "Label", content)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.VerifyWithLabel(pub, "Label", content, sig); err != nil {
				t.Fatal(err)
			}
			_, otherPub, _ := s.GenerateSignatureKey()
			for name, c := range map[string]struct {
				pub, content, sig []byte
				label             string
			}{
				"tampered signature": {pub, content, flip(sig, len(sig)/2), "Label"},
				"tampered last byte": {pub, content, flip(sig, len(sig)-1), "Label"},
				"truncated":          {pub, content, sig[:len(sig)-1], "Label"},
				"empty signature":    {pub, content, nil, "Label"},
				"extended":           {pub, content, append(bytes.Clone(sig), 0), "Label"},
				"wrong label":        {pub, content, sig, "Labe1"},
				"empty label":        {pub, content, sig, ""},
				"wrong content":      {pub, []byte("Content"), sig, "Label"},
				"other key":          {otherPub, content, sig, "Label"},
			} {
				if err := s.VerifyWithLabel(c.pub, c.label, c.content, c.sig); !errors.Is(err, cipher.ErrBadSignature) {
					t.Errorf("%s: %v, want ErrBadSignature", name, err)
				}
			}
			for name, bad := range badSignaturePublicKeys(t, s, pub) {
				if err := s.VerifyWithLabel(bad, "Label", content, sig); !errors.Is(err, cipher.ErrBadKey) {
					t.Errorf("verify with %s public key: %v, want ErrBadKey", name, err)
				}
				if err := s.ValidateSignaturePublicKey(bad); !errors.Is(err, cipher.ErrBadKey) {
					t.Errorf("validate %s public key: %v, want ErrBadKey", name, err)
				}
			}
			badPrivs := map[string][]byte{
				"empty":    nil,
				"extended": append(bytes.Clone(priv), 0),
			}
			if len(pub) > 57 { // ECDSA: zero and out-of-range scalars
				badPrivs["zero"] = make([]byte, len(priv))
				badPrivs["above order"] = bytes.Repeat([]byte{0xff}, len(priv))
				// A short scalar is the same value with its leading zero
				// bytes dropped, and signs like the padded one.
				short := bytes.Clone(priv)
				short[0] = 0
				padded, err1 := s.SignaturePublicKey(short)
				trimmed, err2 := s.SignaturePublicKey(short[1:])
				if err1 != nil || err2 != nil || !bytes.Equal(padded, trimmed) {
					t.Errorf("short ECDSA scalar: %v %v", err1, err2)
				}
			} else {
				badPrivs["truncated"] = priv[:len(priv)-1]
			}
			for name, bad := range badPrivs {
				if _, err := s.SignWithLabel(bad, "Label", content); !errors.Is(err, cipher.ErrBadKey) {
					t.Errorf("sign with %s private key: %v, want ErrBadKey", name, err)
				}
				if _, err := s.SignaturePublicKey(bad); !errors.Is(err, cipher.ErrBadKey) {
					t.Errorf("public key of %s private key: %v, want ErrBadKey", name, err)
				}
			}
		})
	}
}

func TestHPKE(t *testing.T) {
	for _, id := range allSuites {
		t.Run(id.String(), func(t *testing.T) {
			s := mustSuite(t, id)
			priv, pub, err := s.GenerateHPKEKey()
			if err != nil {
				t.Fatal(err)
			}
			if p, err := s.HPKEPublicKey(priv); err != nil || !bytes.Equal(p, pub) {
				t.Fatalf("HPKEPublicKey = %x, %v", p, err)
			}
			if err := s.ValidateHPKEPublicKey(pub); err != nil {
				t.Fatal(err)
			}
			ctx, pt := []byte("context"), []byte("secret message")
			kem, ct, err := s.EncryptWithLabel(pub, "Label", ctx, pt)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.DecryptWithLabel(priv, "Label", ctx, kem, ct); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("DecryptWithLabel = %q, %v", got, err)
			}
			otherPriv, _, _ := s.GenerateHPKEKey()
			for name, c := range map[string]struct {
				priv, ctx, kem, ct []byte
				label              string
			}{
				"wrong key":          {otherPriv, ctx, kem, ct, "Label"},
				"wrong label":        {priv, ctx, kem, ct, "Labe1"},
				"wrong context":      {priv, []byte("contexu"), kem, ct, "Label"},
				"tampered ct":        {priv, ctx, kem, flip(ct, 0), "Label"},
				"tampered tag":       {priv, ctx, kem, flip(ct, len(ct)-1), "Label"},
				"truncated ct":       {priv, ctx, kem, ct[:len(ct)-1], "Label"},
				"empty ct":           {priv, ctx, kem, nil, "Label"},
				"tampered kem":       {priv, ctx, flip(kem, len(kem)-1), ct, "Label"},
				"truncated kem":      {priv, ctx, kem[:len(kem)-1], ct, "Label"},
				"empty kem":          {priv, ctx, nil, ct, "Label"},
				"zero kem":           {priv, ctx, make([]byte, len(kem)), ct, "Label"},
				"empty priv":         {nil, ctx, kem, ct, "Label"},
				"truncated priv":     {priv[:len(priv)-1], ctx, kem, ct, "Label"},
				"all-ones priv":      {bytes.Repeat([]byte{0xff}, len(priv)), ctx, kem, ct, "Label"},
				"kem and ct swapped": {priv, ctx, ct, kem, "Label"},
			} {
				if _, err := s.DecryptWithLabel(c.priv, c.label, c.ctx, c.kem, c.ct); !errors.Is(err, cipher.ErrDecrypt) {
					t.Errorf("%s: %v, want ErrDecrypt", name, err)
				}
			}
			badHPKEPrivs := [][]byte{nil, append(bytes.Clone(priv), 0)}
			if len(pub) == 32 || len(pub) == 56 {
				// X25519/X448 keys have one length; NIST scalars may be
				// written without leading zeros, so a short one is a
				// different, valid key.
				badHPKEPrivs = append(badHPKEPrivs, priv[:len(priv)-1])
			}
			for _, bad := range badHPKEPrivs {
				if _, err := s.HPKEPublicKey(bad); !errors.Is(err, cipher.ErrBadKey) {
					t.Errorf("HPKEPublicKey(%d bytes): %v, want ErrBadKey", len(bad), err)
				}
				if _, err := s.DecryptWithLabel(bad, "Label", ctx, kem, ct); !errors.Is(err, cipher.ErrBadKey) {
					t.Errorf("DecryptWithLabel(%d-byte priv): %v, want ErrBadKey", len(bad), err)
				}
			}
			badPubs := map[string][]byte{
				"empty":     nil,
				"truncated": pub[:len(pub)-1],
				"extended":  append(bytes.Clone(pub), 0),
			}
			if len(pub) > 56 { // NIST curves
				badPubs["not on curve"] = flip(pub, len(pub)-1)
				badPubs["infinity"] = []byte{0}
			} else { // X25519/X448: the zero point has low order
				badPubs["low order"] = make([]byte, len(pub))
			}
			for name, bad := range badPubs {
				if _, _, err := s.EncryptWithLabel(bad, "Label", ctx, pt); !errors.Is(err, cipher.ErrBadKey) {
					t.Errorf("EncryptWithLabel to %s key: %v, want ErrBadKey", name, err)
				}
				if name != "low order" {
					if err := s.ValidateHPKEPublicKey(bad); !errors.Is(err, cipher.ErrBadKey) {
						t.Errorf("ValidateHPKEPublicKey(%s): %v, want ErrBadKey", name, err)
					}
				}
			}

			// Raw HPKE with aad.
			kem, ct, err = s.HPKESeal(pub, []byte("info"), []byte("aad"), pt)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.HPKEOpen(priv, kem, []byte("info"), []byte("aad"), ct); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("HPKEOpen = %q, %v", got, err)
			}
			if _, err := s.HPKEOpen(priv, kem, []byte("info"), []byte("aae"), ct); !errors.Is(err, cipher.ErrDecrypt) {
				t.Errorf("HPKEOpen wrong aad: %v", err)
			}
			if _, err := s.HPKEOpen(priv, kem, []byte("infp"), []byte("aad"), ct); !errors.Is(err, cipher.ErrDecrypt) {
				t.Errorf("HPKEOpen wrong info: %v", err)
			}
			// EncryptWithLabel uses EncryptContext as info and empty aad.
			kem, ct, _ = s.EncryptWithLabel(pub, "L", []byte("c"), pt)
			info := append(append([]byte{9}, "MLS 1.0 L"...), 1, 'c')
			if got, err := s.HPKEOpen(priv, kem, info, nil, ct); err != nil || !bytes.Equal(got, pt) {
				t.Errorf("EncryptWithLabel info encoding: %q, %v", got, err)
			}
		})
	}
}

func TestDeriveHPKEKey(t *testing.T) {
	for _, id := range allSuites {
		s := mustSuite(t, id)
		for _, n := range []int{0, 1, 32, 56, 64, 100} {
			ikm := bytes.Repeat([]byte{byte(n)}, n)
			priv, pub, err := s.DeriveHPKEKey(ikm)
			if err != nil {
				t.Fatalf("%v: DeriveHPKEKey(%d bytes): %v", id, n, err)
			}
			priv2, pub2, _ := s.DeriveHPKEKey(ikm)
			if !bytes.Equal(priv, priv2) || !bytes.Equal(pub, pub2) {
				t.Errorf("%v: DeriveHPKEKey not deterministic", id)
			}
			if p, err := s.HPKEPublicKey(priv); err != nil || !bytes.Equal(p, pub) {
				t.Errorf("%v: HPKEPublicKey(derived) = %x, %v; want %x", id, p, err, pub)
			}
			kem, ct, err := s.EncryptWithLabel(pub, "x", nil, []byte("m"))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.DecryptWithLabel(priv, "x", nil, kem, ct); err != nil || string(got) != "m" {
				t.Errorf("%v: round trip with derived key: %q, %v", id, got, err)
			}
		}
	}
}

// TestHostileInputs feeds short and garbage inputs to every entry point:
// nothing may panic.
func TestHostileInputs(t *testing.T) {
	inputs := [][]byte{nil, {}, {0}, {0xff}, bytes.Repeat([]byte{0xff}, 200), make([]byte, 133), make([]byte, 65)}
	for _, id := range allSuites {
		s := mustSuite(t, id)
		for _, a := range inputs {
			for _, b := range inputs {
				name := fmt.Sprintf("%v/%d/%d", id, len(a), len(b))
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Errorf("%s: panic %v", name, r)
						}
					}()
					s.Open(a, b, a, b)
					s.Seal(a, b, a, b)
					s.SignWithLabel(a, "l", b)
					s.VerifyWithLabel(a, "l", b, b)
					s.SignaturePublicKey(a)
					s.ValidateSignaturePublicKey(a)
					s.HPKEPublicKey(a)
					s.ValidateHPKEPublicKey(a)
					s.EncryptWithLabel(a, "l", b, b)
					s.DecryptWithLabel(a, "l", b, b, a)
					s.HPKEOpen(a, b, a, b, a)
					s.HPKESeal(a, b, a, b)
					s.DeriveHPKEKey(a)
					s.ExpandWithLabel(a, "l", b, len(b))
				}()
			}
		}
	}
}

func TestHPKEExport(t *testing.T) {
	for id := cipher.SuiteID(1); id <= 7; id++ {
		s, err := cipher.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub, err := s.GenerateHPKEKey()
		if err != nil {
			t.Fatal(err)
		}
		enc, secret, err := s.HPKEExportSend(pub, nil, "MLS 1.0 external init secret", s.HashSize())
		if err != nil || len(secret) != s.HashSize() {
			t.Fatalf("%v: send: %v", id, err)
		}
		got, err := s.HPKEExportReceive(priv, enc, nil, "MLS 1.0 external init secret", s.HashSize())
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("%v: receive: %v", id, err)
		}
		other, err := s.HPKEExportReceive(priv, enc, nil, "another context", s.HashSize())
		if err != nil || bytes.Equal(other, secret) {
			t.Fatalf("%v: exporter context ignored: %v", id, err)
		}
		if _, err := s.HPKEExportReceive(nil, enc, nil, "x", 8); !errors.Is(err, cipher.ErrDecrypt) {
			t.Fatalf("%v: bad key: %v", id, err)
		}
	}
}
