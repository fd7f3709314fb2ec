package framing

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/wire"
)

// testGroup is a synthetic epoch of a group of n leaves where every leaf
// signs with the same key, except that blank leaves are refused.
type testGroup struct {
	s                 *cipher.Suite
	ctx               *wire.GroupContext
	n                 uint32
	blank             map[uint32]bool
	sigPriv, sigPub   []byte
	encryptionSecret  []byte
	senderDataSecret  []byte
	membershipKey     []byte
	confirmationKey   []byte
	authenticatedData []byte
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestGroup(t testing.TB, id cipher.SuiteID, n uint32) *testGroup {
	t.Helper()
	s := lookupSuite(t, uint16(id))
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	nh := s.HashSize()
	return &testGroup{
		s: s,
		ctx: &wire.GroupContext{
			Version: wire.MLS10, CipherSuite: id, GroupID: []byte("test group"), Epoch: 7,
			TreeHash: randBytes(t, nh), ConfirmedTranscriptHash: randBytes(t, nh),
		},
		n: n, blank: map[uint32]bool{},
		sigPriv: priv, sigPub: pub,
		encryptionSecret: randBytes(t, nh), senderDataSecret: randBytes(t, nh),
		membershipKey: randBytes(t, nh), confirmationKey: randBytes(t, nh),
	}
}

// epoch returns a fresh view of the epoch (its own secret tree).
func (g *testGroup) epoch() *Epoch {
	return &Epoch{
		Suite:            g.s,
		Context:          g.ctx,
		MembershipKey:    g.membershipKey,
		SenderDataSecret: g.senderDataSecret,
		SecretTree:       keyschedule.NewSecretTree(g.s, g.encryptionSecret, g.n),
		CheckMember: func(leaf uint32) error {
			if leaf >= g.n {
				return fmt.Errorf("leaf %d out of range", leaf)
			}
			if g.blank[leaf] {
				return fmt.Errorf("leaf %d is blank", leaf)
			}
			return nil
		},
		SignatureKey: func(sender wire.Sender, _ *wire.FramedContent) ([]byte, error) {
			return g.sigPub, nil
		},
	}
}

func (g *testGroup) content(ct wire.ContentType, leaf uint32) *wire.FramedContent {
	c := &wire.FramedContent{
		GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch,
		Sender:            wire.Sender{Type: wire.SenderMember, Index: leaf},
		AuthenticatedData: []byte("aad"),
		ContentType:       ct,
	}
	switch ct {
	case wire.ContentApplication:
		c.ApplicationData = []byte("hello, group")
	case wire.ContentProposal:
		c.Proposal = &wire.Proposal{Type: wire.ProposalRemove, Body: &wire.Remove{Removed: 0}}
	case wire.ContentCommit:
		c.Commit = &wire.Commit{}
	}
	return c
}

func (g *testGroup) sign(t testing.TB, wf wire.WireFormat, c *wire.FramedContent) *wire.AuthenticatedContent {
	t.Helper()
	ac, err := Sign(g.s, wf, c, g.ctx, g.sigPriv)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	if c.ContentType == wire.ContentCommit {
		ac.Auth.ConfirmationTag = ConfirmationTag(g.s, g.confirmationKey, g.ctx.ConfirmedTranscriptHash)
	}
	return ac
}

func (g *testGroup) public(t testing.TB, c *wire.FramedContent) *wire.PublicMessage {
	t.Helper()
	m, err := ProtectPublic(g.epoch(), g.sign(t, wire.WireFormatPublicMessage, c))
	if err != nil {
		t.Fatalf("protect public: %v", err)
	}
	return m
}

func (g *testGroup) private(t testing.TB, sender *Epoch, c *wire.FramedContent) *wire.PrivateMessage {
	t.Helper()
	m, err := ProtectPrivate(sender, g.sign(t, wire.WireFormatPrivateMessage, c), nil)
	if err != nil {
		t.Fatalf("protect private: %v", err)
	}
	return m
}

func flip(b []byte, i int) []byte {
	b = append([]byte(nil), b...)
	b[i%len(b)] ^= 0x01
	return b
}

func TestPublicMessageNegative(t *testing.T) {
	g := newTestGroup(t, cipher.X25519_AES128GCM_SHA256_Ed25519, 4)
	_, otherPub, err := g.s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(m *wire.PublicMessage) []byte // returns the key to verify with
		want   error
	}{
		{"valid", func(m *wire.PublicMessage) []byte { return g.sigPub }, nil},
		{"bad membership tag", func(m *wire.PublicMessage) []byte {
			m.MembershipTag = flip(m.MembershipTag, 3)
			return g.sigPub
		}, ErrBadMembershipTag},
		{"missing membership tag", func(m *wire.PublicMessage) []byte {
			m.MembershipTag = nil
			return g.sigPub
		}, ErrBadMembershipTag},
		{"tampered content", func(m *wire.PublicMessage) []byte {
			m.Content.AuthenticatedData = []byte("other")
			return g.sigPub
		}, ErrBadMembershipTag},
		{"wrong signature key", func(m *wire.PublicMessage) []byte { return otherPub }, ErrBadSignature},
		{"bad signature", func(m *wire.PublicMessage) []byte {
			// Recompute the membership tag so that only the signature is bad.
			m.Auth.Signature = flip(m.Auth.Signature, 5)
			tbs, _ := framedContentTBS(wire.WireFormatPublicMessage, &m.Content, g.ctx)
			m.MembershipTag, _ = g.epoch().membershipTag(tbs, m.Content.ContentType, &m.Auth)
			return g.sigPub
		}, ErrBadSignature},
		{"wrong epoch", func(m *wire.PublicMessage) []byte { m.Content.Epoch++; return g.sigPub }, ErrWrongEpoch},
		{"wrong group", func(m *wire.PublicMessage) []byte { m.Content.GroupID = []byte("x"); return g.sigPub }, ErrWrongGroup},
		{"application data", func(m *wire.PublicMessage) []byte {
			m.Content.ContentType = wire.ContentApplication
			m.Content.ApplicationData = []byte("secret")
			m.Content.Proposal = nil
			return g.sigPub
		}, ErrApplicationInPublic},
		{"external sender commit", func(m *wire.PublicMessage) []byte {
			m.Content.Sender = wire.Sender{Type: wire.SenderExternal}
			m.Content.ContentType = wire.ContentCommit
			m.Content.Commit = &wire.Commit{}
			m.Auth.ConfirmationTag = []byte{1}
			return g.sigPub
		}, ErrInvalidSender},
		{"confirmation tag on proposal", func(m *wire.PublicMessage) []byte {
			m.Auth.ConfirmationTag = []byte{1}
			return g.sigPub
		}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := g.public(t, g.content(wire.ContentProposal, 2))
			key := tc.mutate(m)
			_, err := UnprotectPublic(g.epoch(), m, key)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("protect application data", func(t *testing.T) {
		ac := g.sign(t, wire.WireFormatPublicMessage, g.content(wire.ContentApplication, 1))
		if _, err := ProtectPublic(g.epoch(), ac); !errors.Is(err, ErrApplicationInPublic) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("commit without confirmation tag", func(t *testing.T) {
		ac, err := Sign(g.s, wire.WireFormatPublicMessage, g.content(wire.ContentCommit, 1), g.ctx, g.sigPriv)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ProtectPublic(g.epoch(), ac); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("signed for the other wire format", func(t *testing.T) {
		ac := g.sign(t, wire.WireFormatPrivateMessage, g.content(wire.ContentProposal, 1))
		if _, err := ProtectPublic(g.epoch(), ac); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("external proposal without membership tag", func(t *testing.T) {
		c := g.content(wire.ContentProposal, 0)
		c.Sender = wire.Sender{Type: wire.SenderExternal, Index: 0}
		m := g.public(t, c)
		if m.MembershipTag != nil {
			t.Fatal("membership tag on an external sender's message")
		}
		m = reencodePublic(t, m)
		if _, err := UnprotectPublic(&Epoch{Suite: g.s, Context: g.ctx}, m, g.sigPub); err != nil {
			t.Fatalf("external proposal: %v", err)
		}
	})
}

func TestPrivateMessageNegative(t *testing.T) {
	g := newTestGroup(t, cipher.X25519_AES128GCM_SHA256_Ed25519, 4)
	_, otherPub, err := g.s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(m *wire.PrivateMessage, e *Epoch)
		want   error
	}{
		{"valid", func(m *wire.PrivateMessage, e *Epoch) {}, nil},
		{"tampered sender data", func(m *wire.PrivateMessage, e *Epoch) {
			m.EncryptedSenderData = flip(m.EncryptedSenderData, 2)
		}, ErrDecrypt},
		{"truncated sender data", func(m *wire.PrivateMessage, e *Epoch) {
			m.EncryptedSenderData = m.EncryptedSenderData[:3]
		}, ErrDecrypt},
		{"tampered ciphertext head", func(m *wire.PrivateMessage, e *Epoch) {
			m.Ciphertext = flip(m.Ciphertext, 0) // changes the sender data key
		}, ErrDecrypt},
		{"tampered ciphertext tail", func(m *wire.PrivateMessage, e *Epoch) {
			m.Ciphertext = flip(m.Ciphertext, len(m.Ciphertext)-1)
		}, ErrDecrypt},
		{"tampered authenticated data", func(m *wire.PrivateMessage, e *Epoch) {
			m.AuthenticatedData = []byte("other")
		}, ErrDecrypt},
		{"tampered content type", func(m *wire.PrivateMessage, e *Epoch) {
			m.ContentType = wire.ContentProposal
		}, ErrDecrypt},
		{"unknown content type", func(m *wire.PrivateMessage, e *Epoch) {
			m.ContentType = 9
		}, ErrMalformed},
		{"wrong epoch", func(m *wire.PrivateMessage, e *Epoch) { m.Epoch-- }, ErrWrongEpoch},
		{"wrong group", func(m *wire.PrivateMessage, e *Epoch) { m.GroupID = []byte("other group") }, ErrWrongGroup},
		{"blank sender leaf", func(m *wire.PrivateMessage, e *Epoch) { g.blank[2] = true }, ErrInvalidSender},
		{"wrong signature key", func(m *wire.PrivateMessage, e *Epoch) {
			e.SignatureKey = func(wire.Sender, *wire.FramedContent) ([]byte, error) { return otherPub, nil }
		}, ErrBadSignature},
		{"signature key lookup fails", func(m *wire.PrivateMessage, e *Epoch) {
			e.SignatureKey = func(wire.Sender, *wire.FramedContent) ([]byte, error) { return nil, errors.New("no key") }
		}, ErrInvalidSender},
		{"wrong sender data secret", func(m *wire.PrivateMessage, e *Epoch) {
			e.SenderDataSecret = flip(e.SenderDataSecret, 0)
		}, ErrDecrypt},
		{"wrong encryption secret", func(m *wire.PrivateMessage, e *Epoch) {
			e.SecretTree = keyschedule.NewSecretTree(g.s, flip(g.encryptionSecret, 0), g.n)
		}, ErrDecrypt},
		{"missing state", func(m *wire.PrivateMessage, e *Epoch) { e.CheckMember = nil }, ErrMissingState},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer clear(g.blank)
			m := g.private(t, g.epoch(), g.content(wire.ContentApplication, 2))
			e := g.epoch()
			tc.mutate(m, e)
			ac, err := UnprotectPrivate(e, m)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if !bytes.Equal(ac.Content.ApplicationData, []byte("hello, group")) {
					t.Fatal("content mismatch")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("generation reuse", func(t *testing.T) {
		recv := g.epoch()
		m := g.private(t, g.epoch(), g.content(wire.ContentApplication, 1))
		if _, err := UnprotectPrivate(recv, m); err != nil {
			t.Fatal(err)
		}
		if _, err := UnprotectPrivate(recv, m); !errors.Is(err, keyschedule.ErrKeyConsumed) {
			t.Fatalf("replay: got %v, want ErrKeyConsumed", err)
		}
	})

	t.Run("forged content does not consume the key", func(t *testing.T) {
		recv := g.epoch()
		m := g.private(t, g.epoch(), g.content(wire.ContentApplication, 1))
		forged := *m
		forged.Ciphertext = flip(m.Ciphertext, len(m.Ciphertext)-1) // sender data still decrypts
		if _, err := UnprotectPrivate(recv, &forged); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("forged: got %v, want ErrDecrypt", err)
		}
		if _, err := UnprotectPrivate(recv, m); err != nil {
			t.Fatalf("genuine message after a forgery: %v", err)
		}
	})

	t.Run("out of order and both ratchets", func(t *testing.T) {
		send, recv := g.epoch(), g.epoch()
		var ms []*wire.PrivateMessage
		for i := 0; i < 3; i++ {
			ms = append(ms, g.private(t, send, g.content(wire.ContentApplication, 3)))
			ms = append(ms, g.private(t, send, g.content(wire.ContentProposal, 3)))
		}
		ms = append(ms, g.private(t, send, g.content(wire.ContentCommit, 3)))
		for _, i := range []int{5, 0, 6, 3, 1, 4, 2} {
			ac, err := UnprotectPrivate(recv, ms[i])
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if ac.Content.ContentType != ms[i].ContentType {
				t.Fatalf("message %d: content type %d", i, ac.Content.ContentType)
			}
		}
	})

	t.Run("non-zero padding", func(t *testing.T) {
		for _, padding := range [][]byte{{0, 0, 0}, {0, 0, 1}, {0x80}} {
			send := g.epoch()
			c := g.content(wire.ContentApplication, 1)
			ac := g.sign(t, wire.WireFormatPrivateMessage, c)
			pt, err := marshalPrivateContent(c, &ac.Auth, 0)
			if err != nil {
				t.Fatal(err)
			}
			m, err := send.sealPrivate(c, append(pt, padding...), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = UnprotectPrivate(g.epoch(), m)
			zero := !bytes.ContainsFunc(padding, func(r rune) bool { return r != 0 })
			if zero && err != nil {
				t.Fatalf("zero padding %x: %v", padding, err)
			}
			if !zero && !errors.Is(err, ErrNonZeroPadding) {
				t.Fatalf("padding %x: got %v, want ErrNonZeroPadding", padding, err)
			}
		}
	})

	t.Run("garbage content", func(t *testing.T) {
		send := g.epoch()
		c := g.content(wire.ContentProposal, 1)
		m, err := send.sealPrivate(c, []byte{0xff, 0xff, 0x00}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnprotectPrivate(g.epoch(), m); !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v, want ErrMalformed", err)
		}
	})

	t.Run("sender out of range", func(t *testing.T) {
		// A sender that the secret tree does not know cannot send.
		c := g.content(wire.ContentApplication, g.n)
		if _, err := ProtectPrivate(g.epoch(), g.sign(t, wire.WireFormatPrivateMessage, c), nil); err == nil {
			t.Fatal("protect from leaf out of range succeeded")
		}
	})

	t.Run("non-member sender", func(t *testing.T) {
		c := g.content(wire.ContentProposal, 0)
		c.Sender = wire.Sender{Type: wire.SenderExternal}
		ac := g.sign(t, wire.WireFormatPrivateMessage, c)
		if _, err := ProtectPrivate(g.epoch(), ac, nil); !errors.Is(err, ErrInvalidSender) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("padding sizes", func(t *testing.T) {
		for _, pad := range []int{0, 1, 2, 16, 100, 1024} {
			send, recv := g.epoch(), g.epoch()
			ac := g.sign(t, wire.WireFormatPrivateMessage, g.content(wire.ContentApplication, 0))
			m, err := ProtectPrivate(send, ac, &PrivateOptions{PadTo: pad})
			if err != nil {
				t.Fatal(err)
			}
			overhead := len(m.Ciphertext) - len(marshalPrivateContentMust(t, ac))
			if pad > 1 && (len(m.Ciphertext)-aeadTagSize(g.s))%pad != 0 {
				t.Fatalf("pad %d: ciphertext %d bytes (overhead %d)", pad, len(m.Ciphertext), overhead)
			}
			if _, err := UnprotectPrivate(recv, m); err != nil {
				t.Fatalf("pad %d: %v", pad, err)
			}
		}
	})
}

func marshalPrivateContentMust(t *testing.T, ac *wire.AuthenticatedContent) []byte {
	t.Helper()
	b, err := marshalPrivateContent(&ac.Content, &ac.Auth, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// aeadTagSize is the AEAD tag size of the suites (all use 16-byte tags).
func aeadTagSize(*cipher.Suite) int { return 16 }

func TestSignVerify(t *testing.T) {
	g := newTestGroup(t, cipher.P256_AES128GCM_SHA256_P256, 2)
	c := g.content(wire.ContentProposal, 1)
	ac := g.sign(t, wire.WireFormatPublicMessage, c)
	if err := Verify(g.s, ac, g.ctx, g.sigPub); err != nil {
		t.Fatal(err)
	}
	// The signature covers the wire format and the GroupContext.
	ac2 := *ac
	ac2.WireFormat = wire.WireFormatPrivateMessage
	if err := Verify(g.s, &ac2, g.ctx, g.sigPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other wire format: %v", err)
	}
	ctx2 := *g.ctx
	ctx2.TreeHash = flip(ctx2.TreeHash, 0)
	if err := Verify(g.s, ac, &ctx2, g.sigPub); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other context: %v", err)
	}
	if err := Verify(g.s, ac, nil, g.sigPub); !errors.Is(err, ErrMissingState) {
		t.Fatalf("member sender without context: %v", err)
	}
	if _, err := Sign(g.s, wire.WireFormatWelcome, c, g.ctx, g.sigPriv); !errors.Is(err, ErrMalformed) {
		t.Fatalf("welcome wire format: %v", err)
	}
	bad := *c
	bad.Proposal = nil
	if _, err := Sign(g.s, wire.WireFormatPublicMessage, &bad, g.ctx, g.sigPriv); !errors.Is(err, ErrMalformed) {
		t.Fatalf("proposal without body: %v", err)
	}
	np := g.content(wire.ContentProposal, 0)
	np.Sender = wire.Sender{Type: wire.SenderNewMemberProposal}
	if _, err := Sign(g.s, wire.WireFormatPublicMessage, np, nil, g.sigPriv); !errors.Is(err, ErrInvalidSender) {
		t.Fatalf("new_member_proposal with a Remove: %v", err)
	}
}

func TestWelcomeNegative(t *testing.T) {
	var vs []welcomeVector
	vectors.Load(t, "welcome.json", &vs)
	v := &vs[0]
	s, kp, ref, w, ow := v.open(t)
	_ = kp

	t.Run("no secrets for our key package", func(t *testing.T) {
		if _, err := OpenWelcome(s, w, flip(ref, 0), v.InitPriv, nil); !errors.Is(err, ErrNoMatchingSecrets) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("wrong init key", func(t *testing.T) {
		priv, _, err := s.GenerateHPKEKey()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := OpenWelcome(s, w, ref, priv, nil); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("tampered encrypted group info", func(t *testing.T) {
		w2 := *w
		w2.EncryptedGroupInfo = flip(w.EncryptedGroupInfo, 7)
		// The group info is the HPKE context, so the secrets fail first.
		if _, err := OpenWelcome(s, &w2, ref, v.InitPriv, nil); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("suite mismatch", func(t *testing.T) {
		other := lookupSuite(t, uint16(cipher.P256_AES128GCM_SHA256_P256))
		if s.ID() == other.ID() {
			other = lookupSuite(t, uint16(cipher.X25519_AES128GCM_SHA256_Ed25519))
		}
		if _, err := OpenWelcome(other, w, ref, v.InitPriv, nil); !errors.Is(err, ErrSuiteMismatch) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("tampered confirmation tag", func(t *testing.T) {
		gi := *ow.GroupInfo
		gi.ConfirmationTag = flip(gi.ConfirmationTag, 1)
		if _, _, err := JoinEpoch(s, &gi, ow.GroupSecrets.JoinerSecret, ow.PSKSecret); !errors.Is(err, ErrBadConfirmationTag) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("wrong joiner secret", func(t *testing.T) {
		if _, err := DecryptGroupInfo(s, w, flip(ow.GroupSecrets.JoinerSecret, 0), nil); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("bad GroupInfo signature", func(t *testing.T) {
		_, pub, err := s.GenerateSignatureKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyGroupInfo(s, ow.GroupInfo, pub); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("got %v", err)
		}
		gi := *ow.GroupInfo
		gi.Signer++
		if err := VerifyGroupInfo(s, &gi, v.SignerPub); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("tampered signer: got %v", err)
		}
	})
	t.Run("missing PSK", func(t *testing.T) {
		gib := codec.MustMarshal(ow.GroupInfo)
		psks := []wire.PreSharedKeyID{{Type: wire.PSKExternal, PSKID: []byte("psk"), Nonce: make([]byte, s.HashSize())}}
		secret := []byte("external psk secret")
		pskSecret, err := PSKSecret(s, psks, func(*wire.PreSharedKeyID) ([]byte, error) { return secret, nil })
		if err != nil {
			t.Fatal(err)
		}
		ws, err := WelcomeSecret(s, ow.GroupSecrets.JoinerSecret, pskSecret)
		if err != nil {
			t.Fatal(err)
		}
		w2, err := SealWelcome(s, gib, ow.GroupSecrets.JoinerSecret, ws, psks, []WelcomeRecipient{{KeyPackage: kp}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := OpenWelcome(s, w2, ref, v.InitPriv, nil); !errors.Is(err, ErrMissingPSK) {
			t.Fatalf("no lookup: got %v", err)
		}
		ow2, err := OpenWelcome(s, w2, ref, v.InitPriv, func(id *wire.PreSharedKeyID) ([]byte, error) {
			if !bytes.Equal(id.PSKID, []byte("psk")) {
				return nil, errors.New("unknown psk")
			}
			return secret, nil
		})
		if err != nil {
			t.Fatalf("with PSK: %v", err)
		}
		if !bytes.Equal(codec.MustMarshal(ow2.GroupInfo), gib) {
			t.Fatal("GroupInfo mismatch")
		}
	})
}
