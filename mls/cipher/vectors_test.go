package cipher_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/cipher"
)

type cryptoBasics struct {
	CipherSuite uint16 `json:"cipher_suite"`
	RefHash     struct {
		Label string      `json:"label"`
		Value vectors.Hex `json:"value"`
		Out   vectors.Hex `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  vectors.Hex `json:"secret"`
		Label   string      `json:"label"`
		Context vectors.Hex `json:"context"`
		Length  int         `json:"length"`
		Out     vectors.Hex `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret vectors.Hex `json:"secret"`
		Label  string      `json:"label"`
		Out    vectors.Hex `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     vectors.Hex `json:"secret"`
		Label      string      `json:"label"`
		Generation uint32      `json:"generation"`
		Length     int         `json:"length"`
		Out        vectors.Hex `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      vectors.Hex `json:"priv"`
		Pub       vectors.Hex `json:"pub"`
		Content   vectors.Hex `json:"content"`
		Label     string      `json:"label"`
		Signature vectors.Hex `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       vectors.Hex `json:"priv"`
		Pub        vectors.Hex `json:"pub"`
		Label      string      `json:"label"`
		Context    vectors.Hex `json:"context"`
		Plaintext  vectors.Hex `json:"plaintext"`
		KEMOutput  vectors.Hex `json:"kem_output"`
		Ciphertext vectors.Hex `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

// TestVectorsCryptoBasics runs every entry of crypto-basics.json for every
// suite, one tallied case per (suite, entry).
func TestVectorsCryptoBasics(t *testing.T) {
	var tcs []cryptoBasics
	vectors.Load(t, "crypto-basics.json", &tcs)
	tally := vectors.NewTally("vectors", "crypto-basics.json")
	defer tally.Report(t)
	for _, tc := range tcs {
		s, err := cipher.Lookup(cipher.SuiteID(tc.CipherSuite))
		if err != nil {
			tally.Run(t, vectors.CaseName(tc.CipherSuite, 0), func(t *testing.T) { t.Fatal(err) })
			continue
		}
		prefix := fmt.Sprintf("cs%d/", tc.CipherSuite)

		tally.Run(t, prefix+"ref_hash", func(t *testing.T) {
			v := tc.RefHash
			if got := s.RefHash(v.Label, v.Value); !bytes.Equal(got, v.Out) {
				t.Fatalf("RefHash = %x, want %x", got, v.Out)
			}
		})
		tally.Run(t, prefix+"expand_with_label", func(t *testing.T) {
			v := tc.ExpandWithLabel
			got, err := s.ExpandWithLabel(v.Secret, v.Label, v.Context, v.Length)
			if err != nil || !bytes.Equal(got, v.Out) {
				t.Fatalf("ExpandWithLabel = %x, %v; want %x", got, err, v.Out)
			}
		})
		tally.Run(t, prefix+"derive_secret", func(t *testing.T) {
			v := tc.DeriveSecret
			got, err := s.DeriveSecret(v.Secret, v.Label)
			if err != nil || !bytes.Equal(got, v.Out) {
				t.Fatalf("DeriveSecret = %x, %v; want %x", got, err, v.Out)
			}
		})
		tally.Run(t, prefix+"derive_tree_secret", func(t *testing.T) {
			v := tc.DeriveTreeSecret
			got, err := s.DeriveTreeSecret(v.Secret, v.Label, v.Generation, v.Length)
			if err != nil || !bytes.Equal(got, v.Out) {
				t.Fatalf("DeriveTreeSecret = %x, %v; want %x", got, err, v.Out)
			}
		})
		tally.Run(t, prefix+"sign_with_label", func(t *testing.T) {
			v := tc.SignWithLabel
			pub, err := s.SignaturePublicKey(v.Priv)
			if err != nil || !bytes.Equal(pub, v.Pub) {
				t.Fatalf("SignaturePublicKey = %x, %v; want %x", pub, err, v.Pub)
			}
			if err := s.VerifyWithLabel(v.Pub, v.Label, v.Content, v.Signature); err != nil {
				t.Fatalf("verify vector signature: %v", err)
			}
			sig, err := s.SignWithLabel(v.Priv, v.Label, v.Content)
			if err != nil {
				t.Fatalf("SignWithLabel: %v", err)
			}
			if err := s.VerifyWithLabel(v.Pub, v.Label, v.Content, sig); err != nil {
				t.Fatalf("verify own signature: %v", err)
			}
		})
		tally.Run(t, prefix+"encrypt_with_label", func(t *testing.T) {
			v := tc.EncryptWithLabel
			pub, err := s.HPKEPublicKey(v.Priv)
			if err != nil || !bytes.Equal(pub, v.Pub) {
				t.Fatalf("HPKEPublicKey = %x, %v; want %x", pub, err, v.Pub)
			}
			pt, err := s.DecryptWithLabel(v.Priv, v.Label, v.Context, v.KEMOutput, v.Ciphertext)
			if err != nil || !bytes.Equal(pt, v.Plaintext) {
				t.Fatalf("decrypt vector ciphertext = %x, %v; want %x", pt, err, v.Plaintext)
			}
			kem, ct, err := s.EncryptWithLabel(v.Pub, v.Label, v.Context, v.Plaintext)
			if err != nil {
				t.Fatalf("EncryptWithLabel: %v", err)
			}
			pt, err = s.DecryptWithLabel(v.Priv, v.Label, v.Context, kem, ct)
			if err != nil || !bytes.Equal(pt, v.Plaintext) {
				t.Fatalf("decrypt own ciphertext = %x, %v; want %x", pt, err, v.Plaintext)
			}
		})
	}
}

// TestVectorsKeyScheduleExternalPub checks DeriveHPKEKey against the
// external_pub values of key-schedule.json (external_pub is the public key
// of DeriveKeyPair(external_secret), RFC 9420, Section 8.3), for every
// epoch of every suite. The rest of key-schedule.json is run by
// mls/keyschedule.
func TestVectorsKeyScheduleExternalPub(t *testing.T) {
	var tcs []struct {
		CipherSuite uint16 `json:"cipher_suite"`
		Epochs      []struct {
			ExternalSecret vectors.Hex `json:"external_secret"`
			ExternalPub    vectors.Hex `json:"external_pub"`
		} `json:"epochs"`
	}
	vectors.Load(t, "key-schedule.json", &tcs)
	tally := vectors.NewTally("external-pub", "key-schedule.json")
	defer tally.Report(t)
	for _, tc := range tcs {
		tally.Run(t, fmt.Sprintf("cs%d", tc.CipherSuite), func(t *testing.T) {
			s, err := cipher.Lookup(cipher.SuiteID(tc.CipherSuite))
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range tc.Epochs {
				priv, pub, err := s.DeriveHPKEKey(e.ExternalSecret)
				if err != nil || !bytes.Equal(pub, e.ExternalPub) {
					t.Fatalf("epoch %d: DeriveHPKEKey pub = %x, %v; want %x", i, pub, err, e.ExternalPub)
				}
				if p, err := s.HPKEPublicKey(priv); err != nil || !bytes.Equal(p, pub) {
					t.Fatalf("epoch %d: HPKEPublicKey(derived priv) = %x, %v", i, p, err)
				}
			}
		})
	}
}

// FuzzVerifyDecrypt feeds hostile signatures, keys and HPKE ciphertexts,
// seeded from crypto-basics.json, to VerifyWithLabel and DecryptWithLabel:
// they must never panic.
func FuzzVerifyDecrypt(f *testing.F) {
	var tcs []cryptoBasics
	vectors.Load(f, "crypto-basics.json", &tcs)
	for _, tc := range tcs {
		v, e := tc.SignWithLabel, tc.EncryptWithLabel
		f.Add(tc.CipherSuite, []byte(v.Pub), []byte(v.Content), []byte(v.Signature), []byte(e.Priv), []byte(e.KEMOutput), []byte(e.Ciphertext))
	}
	f.Fuzz(func(t *testing.T, suite uint16, pub, content, sig, priv, kem, ct []byte) {
		s, err := cipher.Lookup(cipher.SuiteID(suite))
		if err != nil {
			return
		}
		_ = s.VerifyWithLabel(pub, "SignWithLabel", content, sig)
		_, _ = s.DecryptWithLabel(priv, "EncryptWithLabel", nil, kem, ct)
		_ = s.ValidateSignaturePublicKey(pub)
		_ = s.ValidateHPKEPublicKey(pub)
	})
}
