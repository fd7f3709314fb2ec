package framing

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/wire"
)

type messageProtectionVector struct {
	CipherSuite             uint16      `json:"cipher_suite"`
	GroupID                 vectors.Hex `json:"group_id"`
	Epoch                   uint64      `json:"epoch"`
	TreeHash                vectors.Hex `json:"tree_hash"`
	ConfirmedTranscriptHash vectors.Hex `json:"confirmed_transcript_hash"`
	SignaturePriv           vectors.Hex `json:"signature_priv"`
	SignaturePub            vectors.Hex `json:"signature_pub"`
	EncryptionSecret        vectors.Hex `json:"encryption_secret"`
	SenderDataSecret        vectors.Hex `json:"sender_data_secret"`
	MembershipKey           vectors.Hex `json:"membership_key"`
	Proposal                vectors.Hex `json:"proposal"`
	ProposalPub             vectors.Hex `json:"proposal_pub"`
	ProposalPriv            vectors.Hex `json:"proposal_priv"`
	Commit                  vectors.Hex `json:"commit"`
	CommitPub               vectors.Hex `json:"commit_pub"`
	CommitPriv              vectors.Hex `json:"commit_priv"`
	Application             vectors.Hex `json:"application"`
	ApplicationPriv         vectors.Hex `json:"application_priv"`
}

func lookupSuite(t testing.TB, id uint16) *cipher.Suite {
	t.Helper()
	s, err := cipher.Lookup(cipher.SuiteID(id))
	if err != nil {
		t.Fatalf("suite %d: %v", id, err)
	}
	return s
}

// decodeMessage decodes an MLSMessage and checks its wire format.
func decodeMessage(t *testing.T, b []byte, wf wire.WireFormat) *wire.MLSMessage {
	t.Helper()
	var m wire.MLSMessage
	if err := codec.Unmarshal(b, "MLSMessage", &m); err != nil {
		t.Fatalf("decoding MLSMessage: %v", err)
	}
	if m.WireFormat != wf {
		t.Fatalf("wire format %d, want %d", m.WireFormat, wf)
	}
	return &m
}

// reencode sends a message through the wire encoding and back.
func reencodePublic(t *testing.T, m *wire.PublicMessage) *wire.PublicMessage {
	t.Helper()
	b, err := codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: m})
	if err != nil {
		t.Fatalf("encoding PublicMessage: %v", err)
	}
	return decodeMessage(t, b, wire.WireFormatPublicMessage).PublicMessage
}

func reencodePrivate(t *testing.T, m *wire.PrivateMessage) *wire.PrivateMessage {
	t.Helper()
	b, err := codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPrivateMessage, PrivateMessage: m})
	if err != nil {
		t.Fatalf("encoding PrivateMessage: %v", err)
	}
	return decodeMessage(t, b, wire.WireFormatPrivateMessage).PrivateMessage
}

// vectorEpoch builds the receiving or sending state of a message-protection
// vector: a fresh secret tree of 2 members, with leaf 1 the sender.
func (v *messageProtectionVector) epoch(s *cipher.Suite) *Epoch {
	ctx := &wire.GroupContext{
		Version:                 wire.MLS10,
		CipherSuite:             cipher.SuiteID(v.CipherSuite),
		GroupID:                 v.GroupID,
		Epoch:                   v.Epoch,
		TreeHash:                v.TreeHash,
		ConfirmedTranscriptHash: v.ConfirmedTranscriptHash,
	}
	pub := []byte(v.SignaturePub)
	return &Epoch{
		Suite:            s,
		Context:          ctx,
		MembershipKey:    v.MembershipKey,
		SenderDataSecret: v.SenderDataSecret,
		SecretTree:       keyschedule.NewSecretTree(s, v.EncryptionSecret, 2),
		CheckMember: func(leaf uint32) error {
			if leaf >= 2 {
				return fmt.Errorf("leaf %d out of range", leaf)
			}
			return nil
		},
		SignatureKey: func(sender wire.Sender, _ *wire.FramedContent) ([]byte, error) {
			if sender.Type != wire.SenderMember || sender.Index != 1 {
				return nil, fmt.Errorf("unexpected sender %+v", sender)
			}
			return pub, nil
		},
	}
}

// contentBytes returns the encoding of the raw proposal, commit or
// application data in c, for comparison with the vector.
func contentBytes(t *testing.T, c *wire.FramedContent) []byte {
	t.Helper()
	switch c.ContentType {
	case wire.ContentApplication:
		return c.ApplicationData
	case wire.ContentProposal:
		return codec.MustMarshal(c.Proposal)
	case wire.ContentCommit:
		return codec.MustMarshal(c.Commit)
	}
	t.Fatalf("content type %d", c.ContentType)
	return nil
}

func TestVectorsMessageProtection(t *testing.T) {
	var vs []messageProtectionVector
	vectors.Load(t, "message-protection.json", &vs)
	tally := vectors.NewTally("vectors", "message-protection.json")
	for i := range vs {
		v := &vs[i]
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			s := lookupSuite(t, v.CipherSuite)
			sigPriv := v.SignaturePriv
			var prop wire.Proposal
			if err := codec.Unmarshal(v.Proposal, "Proposal", &prop); err != nil {
				t.Fatalf("proposal: %v", err)
			}
			var commit wire.Commit
			if err := codec.Unmarshal(v.Commit, "Commit", &commit); err != nil {
				t.Fatalf("commit: %v", err)
			}
			cases := []struct {
				name     string
				raw      []byte
				pub      []byte
				priv     []byte
				template wire.FramedContent
			}{
				{"proposal", v.Proposal, v.ProposalPub, v.ProposalPriv,
					wire.FramedContent{ContentType: wire.ContentProposal, Proposal: &prop}},
				{"commit", v.Commit, v.CommitPub, v.CommitPriv,
					wire.FramedContent{ContentType: wire.ContentCommit, Commit: &commit}},
				{"application", v.Application, nil, v.ApplicationPriv,
					wire.FramedContent{ContentType: wire.ContentApplication, ApplicationData: v.Application}},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					content := tc.template
					content.GroupID = v.GroupID
					content.Epoch = v.Epoch
					content.Sender = wire.Sender{Type: wire.SenderMember, Index: 1}
					content.AuthenticatedData = []byte("authenticated data " + tc.name)

					// The given PublicMessage verifies and yields the raw value.
					if tc.pub != nil {
						e := v.epoch(s)
						m := decodeMessage(t, tc.pub, wire.WireFormatPublicMessage)
						ac, err := UnprotectPublic(e, m.PublicMessage, v.SignaturePub)
						if err != nil {
							t.Fatalf("unprotect %s_pub: %v", tc.name, err)
						}
						if got := contentBytes(t, &ac.Content); !bytes.Equal(got, tc.raw) {
							t.Fatalf("%s_pub content mismatch", tc.name)
						}
					}

					// Our own PublicMessage verifies; application data is refused.
					{
						e := v.epoch(s)
						ac, err := Sign(s, wire.WireFormatPublicMessage, &content, e.Context, sigPriv)
						if err != nil {
							t.Fatalf("sign: %v", err)
						}
						if content.ContentType == wire.ContentCommit {
							ac.Auth.ConfirmationTag = ConfirmationTag(s, v.MembershipKey, v.ConfirmedTranscriptHash)
						}
						pm, err := ProtectPublic(e, ac)
						if content.ContentType == wire.ContentApplication {
							if !errors.Is(err, ErrApplicationInPublic) {
								t.Fatalf("protecting application data as PublicMessage: got %v, want ErrApplicationInPublic", err)
							}
						} else {
							if err != nil {
								t.Fatalf("protect public: %v", err)
							}
							got, err := UnprotectPublic(e, reencodePublic(t, pm), v.SignaturePub)
							if err != nil {
								t.Fatalf("unprotect own public: %v", err)
							}
							if !bytes.Equal(contentBytes(t, &got.Content), tc.raw) {
								t.Fatal("own public content mismatch")
							}
						}
					}

					// The given PrivateMessage decrypts and verifies.
					{
						e := v.epoch(s)
						m := decodeMessage(t, tc.priv, wire.WireFormatPrivateMessage)
						ac, err := UnprotectPrivate(e, m.PrivateMessage)
						if err != nil {
							t.Fatalf("unprotect %s_priv: %v", tc.name, err)
						}
						if got := contentBytes(t, &ac.Content); !bytes.Equal(got, tc.raw) {
							t.Fatalf("%s_priv content mismatch", tc.name)
						}
						if ac.Content.Sender != (wire.Sender{Type: wire.SenderMember, Index: 1}) {
							t.Fatalf("%s_priv sender %+v", tc.name, ac.Content.Sender)
						}
					}

					// Our own PrivateMessage round-trips (separate sender and
					// receiver secret trees), with and without padding.
					for _, pad := range []int{0, 64} {
						sender, receiver := v.epoch(s), v.epoch(s)
						ac, err := Sign(s, wire.WireFormatPrivateMessage, &content, sender.Context, sigPriv)
						if err != nil {
							t.Fatalf("sign: %v", err)
						}
						if content.ContentType == wire.ContentCommit {
							ac.Auth.ConfirmationTag = ConfirmationTag(s, v.MembershipKey, v.ConfirmedTranscriptHash)
						}
						pm, err := ProtectPrivate(sender, ac, &PrivateOptions{PadTo: pad})
						if err != nil {
							t.Fatalf("protect private: %v", err)
						}
						got, err := UnprotectPrivate(receiver, reencodePrivate(t, pm))
						if err != nil {
							t.Fatalf("unprotect own private (pad %d): %v", pad, err)
						}
						if !bytes.Equal(contentBytes(t, &got.Content), tc.raw) ||
							!bytes.Equal(got.Content.AuthenticatedData, content.AuthenticatedData) ||
							!bytes.Equal(got.Auth.ConfirmationTag, ac.Auth.ConfirmationTag) {
							t.Fatalf("own private content mismatch (pad %d)", pad)
						}
					}
				})
			}
		})
	}
	tally.Report(t)
}

type transcriptVector struct {
	CipherSuite                  uint16      `json:"cipher_suite"`
	ConfirmationKey              vectors.Hex `json:"confirmation_key"`
	AuthenticatedContent         vectors.Hex `json:"authenticated_content"`
	InterimTranscriptHashBefore  vectors.Hex `json:"interim_transcript_hash_before"`
	ConfirmedTranscriptHashAfter vectors.Hex `json:"confirmed_transcript_hash_after"`
	InterimTranscriptHashAfter   vectors.Hex `json:"interim_transcript_hash_after"`
}

func TestVectorsTranscriptHashes(t *testing.T) {
	var vs []transcriptVector
	vectors.Load(t, "transcript-hashes.json", &vs)
	tally := vectors.NewTally("vectors", "transcript-hashes.json")
	for i := range vs {
		v := &vs[i]
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			s := lookupSuite(t, v.CipherSuite)
			var ac wire.AuthenticatedContent
			if err := codec.Unmarshal(v.AuthenticatedContent, "AuthenticatedContent", &ac); err != nil {
				t.Fatalf("authenticated_content: %v", err)
			}
			if ac.Content.ContentType != wire.ContentCommit {
				t.Fatalf("content type %d, want commit", ac.Content.ContentType)
			}
			if err := VerifyConfirmationTag(s, v.ConfirmationKey, v.ConfirmedTranscriptHashAfter, ac.Auth.ConfirmationTag); err != nil {
				t.Fatalf("confirmation tag: %v", err)
			}
			confirmed, interim, err := TranscriptHashes(s, v.InterimTranscriptHashBefore, &ac)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(confirmed, v.ConfirmedTranscriptHashAfter) {
				t.Errorf("confirmed_transcript_hash_after mismatch")
			}
			if !bytes.Equal(interim, v.InterimTranscriptHashAfter) {
				t.Errorf("interim_transcript_hash_after mismatch")
			}
			// A tampered confirmation tag is rejected.
			bad := append([]byte(nil), ac.Auth.ConfirmationTag...)
			bad[0] ^= 1
			if err := VerifyConfirmationTag(s, v.ConfirmationKey, v.ConfirmedTranscriptHashAfter, bad); !errors.Is(err, ErrBadConfirmationTag) {
				t.Errorf("tampered confirmation tag: got %v", err)
			}
		})
	}
	tally.Report(t)
}

type welcomeVector struct {
	CipherSuite uint16      `json:"cipher_suite"`
	InitPriv    vectors.Hex `json:"init_priv"`
	SignerPub   vectors.Hex `json:"signer_pub"`
	KeyPackage  vectors.Hex `json:"key_package"`
	Welcome     vectors.Hex `json:"welcome"`
}

// open runs the welcome.json verification and returns the pieces for
// further tests.
func (v *welcomeVector) open(t *testing.T) (*cipher.Suite, *wire.KeyPackage, []byte, *wire.Welcome, *OpenedWelcome) {
	t.Helper()
	s := lookupSuite(t, v.CipherSuite)
	kp := decodeMessage(t, v.KeyPackage, wire.WireFormatKeyPackage).KeyPackage
	ref, err := kp.Ref(s)
	if err != nil {
		t.Fatalf("KeyPackageRef: %v", err)
	}
	w := decodeMessage(t, v.Welcome, wire.WireFormatWelcome).Welcome
	ow, err := OpenWelcome(s, w, ref, v.InitPriv, nil)
	if err != nil {
		t.Fatalf("OpenWelcome: %v", err)
	}
	if err := VerifyGroupInfo(s, ow.GroupInfo, v.SignerPub); err != nil {
		t.Fatalf("GroupInfo signature: %v", err)
	}
	if _, _, err := JoinEpoch(s, ow.GroupInfo, ow.GroupSecrets.JoinerSecret, ow.PSKSecret); err != nil {
		t.Fatalf("JoinEpoch: %v", err)
	}
	return s, kp, ref, w, ow
}

func TestVectorsWelcome(t *testing.T) {
	var vs []welcomeVector
	vectors.Load(t, "welcome.json", &vs)
	tally := vectors.NewTally("vectors", "welcome.json")
	for i := range vs {
		v := &vs[i]
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			s, kp, ref, _, ow := v.open(t)

			// Seal the same GroupInfo and secrets again and open our Welcome.
			gib, err := codec.Marshal(ow.GroupInfo)
			if err != nil {
				t.Fatal(err)
			}
			js := ow.GroupSecrets.JoinerSecret
			ws, err := WelcomeSecret(s, js, ow.PSKSecret)
			if err != nil {
				t.Fatal(err)
			}
			w2, err := SealWelcome(s, gib, js, ws, ow.GroupSecrets.PSKs,
				[]WelcomeRecipient{{KeyPackage: kp, PathSecret: ow.GroupSecrets.PathSecret}})
			if err != nil {
				t.Fatalf("SealWelcome: %v", err)
			}
			w2b, err := codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatWelcome, Welcome: w2})
			if err != nil {
				t.Fatal(err)
			}
			w2 = decodeMessage(t, w2b, wire.WireFormatWelcome).Welcome
			ow2, err := OpenWelcome(s, w2, ref, v.InitPriv, nil)
			if err != nil {
				t.Fatalf("OpenWelcome(own): %v", err)
			}
			if !bytes.Equal(codec.MustMarshal(ow2.GroupInfo), gib) ||
				!bytes.Equal(codec.MustMarshal(ow2.GroupSecrets), codec.MustMarshal(ow.GroupSecrets)) {
				t.Fatal("own Welcome content mismatch")
			}
			if err := VerifyGroupInfo(s, ow2.GroupInfo, v.SignerPub); err != nil {
				t.Fatalf("own GroupInfo signature: %v", err)
			}
		})
	}
	tally.Report(t)
}
