package wire_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

func TestSignAndVerify(t *testing.T) {
	s, err := cipher.Lookup(cipher.X25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	badSig := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, cipher.ErrBadSignature) {
			t.Fatalf("got %v, want ErrBadSignature", err)
		}
	}

	t.Run("LeafNode", func(t *testing.T) {
		for _, src := range []wire.LeafNodeSource{wire.LeafNodeSourceKeyPackage, wire.LeafNodeSourceUpdate, wire.LeafNodeSourceCommit} {
			l := sampleLeaf(src)
			l.SignatureKey = pub
			if err := l.Sign(s, priv, []byte("g"), 3); err != nil {
				t.Fatal(err)
			}
			if err := l.VerifySignature(s, []byte("g"), 3); err != nil {
				t.Fatalf("source %d: %v", src, err)
			}
			if src == wire.LeafNodeSourceKeyPackage {
				// group_id and leaf_index are not covered.
				if err := l.VerifySignature(s, nil, 9); err != nil {
					t.Fatal(err)
				}
				continue
			}
			badSig(t, l.VerifySignature(s, []byte("h"), 3))
			badSig(t, l.VerifySignature(s, []byte("g"), 4))
		}
	})

	newKP := func(t *testing.T) *wire.KeyPackage {
		kp := sampleKeyPackage()
		kp.LeafNode.SignatureKey = pub
		if err := kp.LeafNode.Sign(s, priv, nil, 0); err != nil {
			t.Fatal(err)
		}
		if err := kp.Sign(s, priv); err != nil {
			t.Fatal(err)
		}
		return kp
	}
	t.Run("KeyPackage", func(t *testing.T) {
		kp := newKP(t)
		if err := kp.Verify(s); err != nil {
			t.Fatal(err)
		}
		// Survives a round trip through MLSMessage.
		b := mustMarshal(t, &wire.MLSMessage{WireFormat: wire.WireFormatKeyPackage, KeyPackage: kp})
		m, err := wire.UnmarshalMLSMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.KeyPackage.Verify(s); err != nil {
			t.Fatal(err)
		}
		ref, err := kp.Ref(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ref, s.KeyPackageRef(mustMarshal(t, kp))) || len(ref) != s.HashSize() {
			t.Fatal("Ref mismatch")
		}

		checks := []struct {
			name   string
			mutate func(kp *wire.KeyPackage)
			want   error
		}{
			{"version", func(kp *wire.KeyPackage) { kp.Version = 2 }, wire.ErrKeyPackageInvalid},
			{"suite", func(kp *wire.KeyPackage) { kp.CipherSuite = cipher.P256_AES128GCM_SHA256_P256 }, wire.ErrSuiteMismatch},
			{"leaf source", func(kp *wire.KeyPackage) {
				kp.LeafNode.Source = wire.LeafNodeSourceUpdate
				kp.LeafNode.Lifetime = nil
			}, wire.ErrKeyPackageInvalid},
			{"init key equals encryption key", func(kp *wire.KeyPackage) { kp.InitKey = kp.LeafNode.EncryptionKey }, wire.ErrKeyPackageInvalid},
			{"KeyPackage signature", func(kp *wire.KeyPackage) { kp.Extensions = []wire.Extension{{Type: 9}} }, cipher.ErrBadSignature},
			{"LeafNode signature", func(kp *wire.KeyPackage) { kp.LeafNode.Signature[0] ^= 1 }, cipher.ErrBadSignature},
			{"wrong signature key", func(kp *wire.KeyPackage) { kp.LeafNode.SignatureKey = otherPub }, cipher.ErrBadSignature},
		}
		for _, c := range checks {
			kp := newKP(t)
			c.mutate(kp)
			if err := kp.Verify(s); !errors.Is(err, c.want) {
				t.Errorf("%s: got %v, want %v", c.name, err, c.want)
			}
		}
		other := newKP(t)
		other.CipherSuite = cipher.P256_AES128GCM_SHA256_P256
		if _, err := other.Ref(s); !errors.Is(err, wire.ErrSuiteMismatch) {
			t.Errorf("Ref with wrong suite: %v", err)
		}
	})

	t.Run("GroupInfo", func(t *testing.T) {
		gi := sampleGroupInfo()
		if err := gi.Sign(s, priv); err != nil {
			t.Fatal(err)
		}
		if err := gi.VerifySignature(s, pub); err != nil {
			t.Fatal(err)
		}
		badSig(t, gi.VerifySignature(s, otherPub))
		gi.Signer++
		badSig(t, gi.VerifySignature(s, pub))
	})

	t.Run("AuthenticatedContent", func(t *testing.T) {
		ctx := sampleGroupContext()
		for _, st := range []wire.SenderType{wire.SenderMember, wire.SenderExternal, wire.SenderNewMemberProposal} {
			ac := &wire.AuthenticatedContent{WireFormat: wire.WireFormatPublicMessage, Content: sampleContent(st, wire.ContentProposal)}
			if err := ac.Sign(s, priv, ctx); err != nil {
				t.Fatal(err)
			}
			if err := ac.VerifySignature(s, pub, ctx); err != nil {
				t.Fatal(err)
			}
			ctx2 := *ctx
			ctx2.Epoch++
			err := ac.VerifySignature(s, pub, &ctx2)
			if st == wire.SenderMember {
				badSig(t, err)
			} else if err != nil {
				t.Fatalf("sender %d: context must not be covered: %v", st, err)
			}
			ac.WireFormat = wire.WireFormatPrivateMessage
			badSig(t, ac.VerifySignature(s, pub, ctx))
			ac.WireFormat = wire.WireFormatPublicMessage

			ref, err := ac.ProposalRef(s)
			if err != nil {
				t.Fatal(err)
			}
			b := mustMarshal(t, ac)
			if !bytes.Equal(ref, s.ProposalRef(b)) {
				t.Fatal("ProposalRef mismatch")
			}
			got, err := wire.UnmarshalAuthenticatedContent(b)
			if err != nil || !bytes.Equal(mustMarshal(t, got), b) {
				t.Fatalf("AuthenticatedContent round trip: %v", err)
			}
		}
		app := &wire.AuthenticatedContent{WireFormat: wire.WireFormatPrivateMessage, Content: sampleContent(wire.SenderMember, wire.ContentApplication)}
		if _, err := app.ProposalRef(s); !errors.Is(err, wire.ErrInvalidField) {
			t.Fatalf("ProposalRef of application content: %v", err)
		}
		b := mustMarshal(t, app)
		b[1] = 0 // wire_format 0
		_, err := wire.UnmarshalAuthenticatedContent(b)
		expectDecodeErr(t, err, wire.ErrUnknownWireFormat, "AuthenticatedContent.wire_format")
	})
}
