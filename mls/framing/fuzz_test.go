package framing

import (
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// FuzzUnprotectPrivateMessage feeds arbitrary bytes as PrivateMessages to
// UnprotectPrivate against the fixed group state of the first
// message-protection.json case, seeded with that case's PrivateMessages.
// Each input is used three ways: as an encoded MLSMessage, as the
// ciphertext of a valid message, and as its encrypted sender data. It must
// never panic.
func FuzzUnprotectPrivateMessage(f *testing.F) {
	var vs []messageProtectionVector
	vectors.Load(f, "message-protection.json", &vs)
	v := &vs[0]
	s := lookupSuite(f, v.CipherSuite)
	var valid wire.MLSMessage
	if err := codec.Unmarshal(v.ApplicationPriv, "MLSMessage", &valid); err != nil || valid.PrivateMessage == nil {
		f.Fatalf("application_priv: %v", err)
	}
	for _, seed := range [][]byte{v.ProposalPriv, v.CommitPriv, v.ApplicationPriv, nil, {0}} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m wire.MLSMessage
		if codec.Unmarshal(data, "MLSMessage", &m) == nil && m.PrivateMessage != nil {
			ac, err := UnprotectPrivate(v.epoch(s), m.PrivateMessage)
			if (err == nil) != (ac != nil) {
				t.Fatalf("result %v with error %v", ac, err)
			}
		}
		pm := *valid.PrivateMessage
		pm.Ciphertext = data
		if _, err := UnprotectPrivate(v.epoch(s), &pm); err == nil && len(data) != len(valid.PrivateMessage.Ciphertext) {
			t.Fatal("forged ciphertext accepted")
		}
		pm = *valid.PrivateMessage
		pm.EncryptedSenderData = data
		_, _ = UnprotectPrivate(v.epoch(s), &pm)
	})
}

// FuzzPrivateMessageContent feeds arbitrary decrypted plaintexts to the
// PrivateMessageContent parser (RFC 9420, Section 6.3.1), which sees only
// authenticated data in practice but must still never panic.
func FuzzPrivateMessageContent(f *testing.F) {
	f.Add(byte(1), []byte{0x02, 'h', 'i', 0x01, 0x00, 0, 0})
	f.Add(byte(2), []byte{0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00})
	f.Add(byte(3), []byte{0x00, 0x00, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, ct byte, data []byte) {
		c := wire.FramedContent{ContentType: wire.ContentType(ct % 5)}
		auth, err := unmarshalPrivateContent(data, &c)
		if err != nil {
			return
		}
		// What parses must re-encode to a prefix of the input.
		b, err := marshalPrivateContent(&c, &auth, 0)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		if len(b) > len(data) || string(b) != string(data[:len(b)]) {
			t.Fatalf("re-encoding %x is not a prefix of %x", b, data)
		}
	})
}
