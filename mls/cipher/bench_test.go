package cipher_test

import (
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
)

var benchSuites = []cipher.SuiteID{
	cipher.X25519_AES128GCM_SHA256_Ed25519,
	cipher.P256_AES128GCM_SHA256_P256,
	cipher.X448_AES256GCM_SHA512_Ed448,
}

func BenchmarkSignWithLabel(b *testing.B) {
	for _, id := range benchSuites {
		b.Run(id.String(), func(b *testing.B) {
			s := mustSuite(b, id)
			priv, _, _ := s.GenerateSignatureKey()
			content := make([]byte, 256)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.SignWithLabel(priv, "LeafNodeTBS", content); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyWithLabel(b *testing.B) {
	for _, id := range benchSuites {
		b.Run(id.String(), func(b *testing.B) {
			s := mustSuite(b, id)
			priv, pub, _ := s.GenerateSignatureKey()
			content := make([]byte, 256)
			sig, _ := s.SignWithLabel(priv, "LeafNodeTBS", content)
			b.ReportAllocs()
			for b.Loop() {
				if err := s.VerifyWithLabel(pub, "LeafNodeTBS", content, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncryptWithLabel(b *testing.B) {
	for _, id := range benchSuites {
		b.Run(id.String(), func(b *testing.B) {
			s := mustSuite(b, id)
			_, pub, _ := s.GenerateHPKEKey()
			ctx, pt := make([]byte, 64), make([]byte, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.EncryptWithLabel(pub, "UpdatePathNode", ctx, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecryptWithLabel(b *testing.B) {
	for _, id := range benchSuites {
		b.Run(id.String(), func(b *testing.B) {
			s := mustSuite(b, id)
			priv, pub, _ := s.GenerateHPKEKey()
			ctx, pt := make([]byte, 64), make([]byte, 64)
			kem, ct, _ := s.EncryptWithLabel(pub, "UpdatePathNode", ctx, pt)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", ctx, kem, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkExpandWithLabel(b *testing.B) {
	s := mustSuite(b, cipher.X25519_AES128GCM_SHA256_Ed25519)
	secret := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.DeriveTreeSecret(secret, "secret", 7, 32); err != nil {
			b.Fatal(err)
		}
	}
}
