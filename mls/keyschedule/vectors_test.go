package keyschedule_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/treemath"
)

type keyScheduleVector struct {
	CipherSuite       uint16      `json:"cipher_suite"`
	GroupID           vectors.Hex `json:"group_id"`
	InitialInitSecret vectors.Hex `json:"initial_init_secret"`
	Epochs            []struct {
		TreeHash                vectors.Hex `json:"tree_hash"`
		CommitSecret            vectors.Hex `json:"commit_secret"`
		PSKSecret               vectors.Hex `json:"psk_secret"`
		ConfirmedTranscriptHash vectors.Hex `json:"confirmed_transcript_hash"`
		GroupContext            vectors.Hex `json:"group_context"`
		JoinerSecret            vectors.Hex `json:"joiner_secret"`
		WelcomeSecret           vectors.Hex `json:"welcome_secret"`
		InitSecret              vectors.Hex `json:"init_secret"`
		SenderDataSecret        vectors.Hex `json:"sender_data_secret"`
		EncryptionSecret        vectors.Hex `json:"encryption_secret"`
		ExporterSecret          vectors.Hex `json:"exporter_secret"`
		EpochAuthenticator      vectors.Hex `json:"epoch_authenticator"`
		ExternalSecret          vectors.Hex `json:"external_secret"`
		ConfirmationKey         vectors.Hex `json:"confirmation_key"`
		MembershipKey           vectors.Hex `json:"membership_key"`
		ResumptionPSK           vectors.Hex `json:"resumption_psk"`
		ExternalPub             vectors.Hex `json:"external_pub"`
		Exporter                struct {
			Label   string      `json:"label"`
			Context vectors.Hex `json:"context"`
			Length  int         `json:"length"`
			Secret  vectors.Hex `json:"secret"`
		} `json:"exporter"`
	} `json:"epochs"`
}

// encodeGroupContext encodes GroupContext (RFC 9420, Section 8.1) with
// version mls10 and no extensions.
func encodeGroupContext(t *testing.T, suite uint16, groupID []byte, epoch uint64, treeHash, cth []byte) []byte {
	t.Helper()
	w := codec.NewWriter()
	w.U16(1) // mls10
	w.U16(suite)
	w.Opaque(groupID)
	w.U64(epoch)
	w.Opaque(treeHash)
	w.Opaque(cth)
	w.Vector(func(*codec.Writer) {})
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func lookup(t testing.TB, id uint16) *cipher.Suite {
	t.Helper()
	s, err := cipher.Lookup(cipher.SuiteID(id))
	if err != nil {
		t.Fatalf("suite %d: %v", id, err)
	}
	return s
}

func checkBytes(t *testing.T, name string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %x\nwant %x", name, got, want)
	}
}

func TestVectorsKeySchedule(t *testing.T) {
	var cases []keyScheduleVector
	vectors.Load(t, "key-schedule.json", &cases)
	tally := vectors.NewTally("vectors", "key-schedule.json")
	for _, c := range cases {
		initSecret := []byte(c.InitialInitSecret)
		for i, ep := range c.Epochs {
			prevInit := initSecret
			initSecret = ep.InitSecret // chain with the vector's value so epochs fail independently
			tally.Run(t, fmt.Sprintf("cs%d/epoch%d", c.CipherSuite, i), func(t *testing.T) {
				s := lookup(t, c.CipherSuite)
				gc := encodeGroupContext(t, c.CipherSuite, c.GroupID, uint64(i), ep.TreeHash, ep.ConfirmedTranscriptHash)
				checkBytes(t, "group_context", gc, ep.GroupContext)

				e, err := keyschedule.Derive(s, prevInit, ep.CommitSecret, ep.PSKSecret, gc)
				if err != nil {
					t.Fatalf("Derive: %v", err)
				}
				for _, f := range []struct {
					name      string
					got, want []byte
				}{
					{"joiner_secret", e.JoinerSecret, ep.JoinerSecret},
					{"welcome_secret", e.WelcomeSecret, ep.WelcomeSecret},
					{"init_secret", e.InitSecret, ep.InitSecret},
					{"sender_data_secret", e.SenderDataSecret, ep.SenderDataSecret},
					{"encryption_secret", e.EncryptionSecret, ep.EncryptionSecret},
					{"exporter_secret", e.ExporterSecret, ep.ExporterSecret},
					{"epoch_authenticator", e.EpochAuthenticator, ep.EpochAuthenticator},
					{"external_secret", e.ExternalSecret, ep.ExternalSecret},
					{"confirmation_key", e.ConfirmationKey, ep.ConfirmationKey},
					{"membership_key", e.MembershipKey, ep.MembershipKey},
					{"resumption_psk", e.ResumptionPSK, ep.ResumptionPSK},
				} {
					checkBytes(t, f.name, f.got, f.want)
				}

				// A joiner reaches the same epoch from joiner_secret.
				j, err := keyschedule.FromJoiner(s, ep.JoinerSecret, ep.PSKSecret, gc)
				if err != nil {
					t.Fatalf("FromJoiner: %v", err)
				}
				checkBytes(t, "FromJoiner epoch_secret", j.EpochSecret, e.EpochSecret)
				checkBytes(t, "FromJoiner init_secret", j.InitSecret, ep.InitSecret)
				checkBytes(t, "FromJoiner epoch_authenticator", j.EpochAuthenticator, ep.EpochAuthenticator)

				exp, err := e.Export(s, ep.Exporter.Label, ep.Exporter.Context, ep.Exporter.Length)
				if err != nil {
					t.Fatalf("Export: %v", err)
				}
				checkBytes(t, "exporter.secret", exp, ep.Exporter.Secret)

				_, pub, err := keyschedule.ExternalKeyPair(s, ep.ExternalSecret)
				if err != nil {
					t.Fatalf("ExternalKeyPair: %v", err)
				}
				checkBytes(t, "external_pub", pub, ep.ExternalPub)
			})
		}
	}
	tally.Report(t)
}

type pskVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	PSKs        []struct {
		PSKID    vectors.Hex `json:"psk_id"`
		PSK      vectors.Hex `json:"psk"`
		PSKNonce vectors.Hex `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret vectors.Hex `json:"psk_secret"`
}

// encodeExternalPSKID encodes PreSharedKeyID{psktype = external(1), psk_id,
// psk_nonce} (RFC 9420, Section 8.4).
func encodeExternalPSKID(t *testing.T, id, nonce []byte) []byte {
	t.Helper()
	w := codec.NewWriter()
	w.U8(1)
	w.Opaque(id)
	w.Opaque(nonce)
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectorsPSKSecret(t *testing.T) {
	var cases []pskVector
	vectors.Load(t, "psk_secret.json", &cases)
	tally := vectors.NewTally("vectors", "psk_secret.json")
	for i, c := range cases {
		tally.Run(t, fmt.Sprintf("cs%d/%d/psks%d", c.CipherSuite, i, len(c.PSKs)), func(t *testing.T) {
			s := lookup(t, c.CipherSuite)
			in := make([]keyschedule.PSKInput, len(c.PSKs))
			for j, p := range c.PSKs {
				in[j] = keyschedule.PSKInput{ID: encodeExternalPSKID(t, p.PSKID, p.PSKNonce), Secret: p.PSK}
			}
			got, err := keyschedule.PSKSecret(s, in)
			if err != nil {
				t.Fatalf("PSKSecret: %v", err)
			}
			checkBytes(t, "psk_secret", got, c.PSKSecret)
		})
	}
	tally.Report(t)
}

type secretTreeVector struct {
	CipherSuite uint16 `json:"cipher_suite"`
	SenderData  struct {
		SenderDataSecret vectors.Hex `json:"sender_data_secret"`
		Ciphertext       vectors.Hex `json:"ciphertext"`
		Key              vectors.Hex `json:"key"`
		Nonce            vectors.Hex `json:"nonce"`
	} `json:"sender_data"`
	EncryptionSecret vectors.Hex `json:"encryption_secret"`
	Leaves           [][]struct {
		Generation       uint32      `json:"generation"`
		HandshakeKey     vectors.Hex `json:"handshake_key"`
		HandshakeNonce   vectors.Hex `json:"handshake_nonce"`
		ApplicationKey   vectors.Hex `json:"application_key"`
		ApplicationNonce vectors.Hex `json:"application_nonce"`
	} `json:"leaves"`
}

func TestVectorsSecretTree(t *testing.T) {
	var cases []secretTreeVector
	vectors.Load(t, "secret-tree.json", &cases)
	tally := vectors.NewTally("vectors", "secret-tree.json")
	for i, c := range cases {
		tally.Run(t, fmt.Sprintf("cs%d/%d/leaves%d", c.CipherSuite, i, len(c.Leaves)), func(t *testing.T) {
			s := lookup(t, c.CipherSuite)
			sd := c.SenderData
			key, nonce, err := keyschedule.SenderDataKeyNonce(s, sd.SenderDataSecret, sd.Ciphertext)
			if err != nil {
				t.Fatalf("SenderDataKeyNonce: %v", err)
			}
			checkBytes(t, "sender_data key", key, sd.Key)
			checkBytes(t, "sender_data nonce", nonce, sd.Nonce)

			n := uint32(len(c.Leaves))
			// Receiving: generations fetched with Get, leaves in order.
			recv := keyschedule.NewSecretTree(s, c.EncryptionSecret, n)
			// Receiving again, leaves in reverse order (lazy derivation must
			// not depend on the order leaves are first used).
			rev := keyschedule.NewSecretTree(s, c.EncryptionSecret, n)
			// Sending: generations reached by calling Next.
			send := keyschedule.NewSecretTree(s, c.EncryptionSecret, n)

			for l := range c.Leaves {
				rl := len(c.Leaves) - 1 - l
				for _, g := range c.Leaves[rl] {
					for _, typ := range []keyschedule.RatchetType{keyschedule.Handshake, keyschedule.Application} {
						k, nn, err := rev.Get(treemath.LeafIndex(rl), typ, g.Generation)
						if err != nil {
							t.Fatalf("reverse Get(%d, %v, %d): %v", rl, typ, g.Generation, err)
						}
						wantK, wantN := g.HandshakeKey, g.HandshakeNonce
						if typ == keyschedule.Application {
							wantK, wantN = g.ApplicationKey, g.ApplicationNonce
						}
						checkBytes(t, fmt.Sprintf("reverse leaf %d %v key %d", rl, typ, g.Generation), k, wantK)
						checkBytes(t, fmt.Sprintf("reverse leaf %d %v nonce %d", rl, typ, g.Generation), nn, wantN)
					}
				}
			}

			for l, gens := range c.Leaves {
				leaf := treemath.LeafIndex(l)
				for _, g := range gens {
					for _, typ := range []keyschedule.RatchetType{keyschedule.Handshake, keyschedule.Application} {
						wantK, wantN := g.HandshakeKey, g.HandshakeNonce
						if typ == keyschedule.Application {
							wantK, wantN = g.ApplicationKey, g.ApplicationNonce
						}
						name := fmt.Sprintf("leaf %d %v generation %d", l, typ, g.Generation)

						k, nn, err := recv.Get(leaf, typ, g.Generation)
						if err != nil {
							t.Fatalf("Get %s: %v", name, err)
						}
						checkBytes(t, name+" key (Get)", k, wantK)
						checkBytes(t, name+" nonce (Get)", nn, wantN)

						var gen uint32
						for {
							gen, k, nn, err = send.Next(leaf, typ)
							if err != nil {
								t.Fatalf("Next %s: %v", name, err)
							}
							if gen >= g.Generation {
								break
							}
						}
						if gen != g.Generation {
							t.Fatalf("Next %s: reached generation %d", name, gen)
						}
						checkBytes(t, name+" key (Next)", k, wantK)
						checkBytes(t, name+" nonce (Next)", nn, wantN)
					}
				}
			}
		})
	}
	tally.Report(t)
}
