package mimi_test

import (
	"bytes"
	"testing"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// slowFanout is the general path: decode the stored MLSMessage, then
// encode the FanoutMessage with MarshalFanout (draft-ralston-mimi-protocol-02,
// Section 5.5).
func slowFanout(ts uint64, msg []byte) ([]byte, bool) {
	var m wire.MLSMessage
	if err := codec.Unmarshal(msg, "MLSMessage", &m); err != nil || m.WireFormat != wire.WireFormatPrivateMessage {
		return nil, false
	}
	b, err := mimi.MarshalFanout([]mimi.FanoutMessage{{Timestamp: ts, Message: m}})
	if err != nil {
		return nil, false
	}
	return b, true
}

func privateMLSMessage(t testing.TB, gid, aad, esd, ct []byte, ctype wire.ContentType) []byte {
	t.Helper()
	b, err := codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPrivateMessage, PrivateMessage: &wire.PrivateMessage{
		GroupID: gid, Epoch: 0x0102030405060708, ContentType: ctype, AuthenticatedData: aad, EncryptedSenderData: esd, Ciphertext: ct,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAppendFanoutPrivateMessageIdentical checks the fast path gives the
// bytes of MarshalFanout, across the varint length boundaries (RFC 9420,
// Section 2.1.2) and every content type.
func TestAppendFanoutPrivateMessageIdentical(t *testing.T) {
	sizes := []int{0, 1, 63, 64, 1024, 16383, 16384, 70000}
	for _, n := range sizes {
		for _, ctype := range []wire.ContentType{wire.ContentApplication, wire.ContentProposal, wire.ContentCommit} {
			msg := privateMLSMessage(t, bytes.Repeat([]byte{7}, n%100), bytes.Repeat([]byte{1}, n%70), bytes.Repeat([]byte{2}, 28), bytes.Repeat([]byte{3}, n), ctype)
			want, ok := slowFanout(1700000000123, msg)
			if !ok {
				t.Fatalf("size %d: general path failed", n)
			}
			prefix := []byte("prefix")
			got, ok := mimi.AppendFanoutPrivateMessage(bytes.Clone(prefix), 1700000000123, msg)
			if !ok {
				t.Fatalf("size %d type %d: fast path refused a canonical PrivateMessage", n, ctype)
			}
			if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], want) {
				t.Fatalf("size %d type %d: fast path differs from MarshalFanout", n, ctype)
			}
		}
	}
}

// TestAppendFanoutPrivateMessageRefuses checks inputs the fast path must
// leave to the general path: not exactly one canonical PrivateMessage.
func TestAppendFanoutPrivateMessageRefuses(t *testing.T) {
	good := privateMLSMessage(t, []byte("group"), nil, []byte("esd"), []byte("ciphertext"), wire.ContentApplication)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	// Offsets in good: version 0-1, wire_format 2-3, group_id length 4,
	// group_id 5-9, epoch 10-17, content_type 18, aad length 19.
	cases := map[string][]byte{
		"empty":              nil,
		"short":              good[:3],
		"version":            mod(func(b []byte) []byte { b[1] = 2; return b }),
		"public wire format": mod(func(b []byte) []byte { b[3] = byte(wire.WireFormatPublicMessage); return b }),
		"welcome":            mod(func(b []byte) []byte { b[3] = byte(wire.WireFormatWelcome); return b }),
		"content type 0":     mod(func(b []byte) []byte { b[18] = 0; return b }),
		"content type 4":     mod(func(b []byte) []byte { b[18] = 4; return b }),
		"trailing byte":      append(bytes.Clone(good), 0),
		"truncated":          good[:len(good)-1],
		"non-minimal varint": append(append(bytes.Clone(good[:19]), 0x40, 0x00), good[20:]...),
		"varint prefix 3":    mod(func(b []byte) []byte { b[4] = 0xc0; return b }),
		"length too long":    mod(func(b []byte) []byte { b[4] = 60; return b }),
		"no epoch":           good[:12],
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			dst := []byte("x")
			got, ok := mimi.AppendFanoutPrivateMessage(dst, 5, msg)
			if ok || !bytes.Equal(got, dst) {
				t.Fatalf("fast path accepted %x", msg)
			}
			if _, slowOK := slowFanout(5, msg); slowOK {
				t.Fatalf("the general path accepts %x, the fast path must too", msg)
			}
		})
	}
}

// FuzzAppendFanoutPrivateMessage checks that the fast path accepts exactly
// the inputs that decode as a PrivateMessage MLSMessage and re-encode to
// the same bytes, and then gives MarshalFanout's bytes.
func FuzzAppendFanoutPrivateMessage(f *testing.F) {
	f.Add(privateMLSMessage(f, []byte("g"), nil, []byte("e"), []byte("c"), wire.ContentApplication))
	f.Add(privateMLSMessage(f, nil, []byte("aad"), nil, bytes.Repeat([]byte{9}, 100), wire.ContentCommit))
	f.Add([]byte{0, 1, 0, 2, 0x40, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, ok := mimi.AppendFanoutPrivateMessage(nil, 42, msg)
		want, slowOK := slowFanout(42, msg)
		canonical := slowOK && bytes.Equal(want[8:], msg)
		if ok != canonical {
			t.Fatalf("fast path ok=%v, general path canonical=%v for %x", ok, canonical, msg)
		}
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("fast path %x, MarshalFanout %x", got, want)
		}
	})
}
