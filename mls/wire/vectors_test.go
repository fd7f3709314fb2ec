package wire_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

type messagesVector struct {
	MLSWelcome                     vectors.Hex `json:"mls_welcome"`
	MLSGroupInfo                   vectors.Hex `json:"mls_group_info"`
	MLSKeyPackage                  vectors.Hex `json:"mls_key_package"`
	RatchetTree                    vectors.Hex `json:"ratchet_tree"`
	GroupSecrets                   vectors.Hex `json:"group_secrets"`
	AddProposal                    vectors.Hex `json:"add_proposal"`
	UpdateProposal                 vectors.Hex `json:"update_proposal"`
	RemoveProposal                 vectors.Hex `json:"remove_proposal"`
	PreSharedKeyProposal           vectors.Hex `json:"pre_shared_key_proposal"`
	ReInitProposal                 vectors.Hex `json:"re_init_proposal"`
	ExternalInitProposal           vectors.Hex `json:"external_init_proposal"`
	GroupContextExtensionsProposal vectors.Hex `json:"group_context_extensions_proposal"`
	Commit                         vectors.Hex `json:"commit"`
	PublicMessageApplication       vectors.Hex `json:"public_message_application"`
	PublicMessageProposal          vectors.Hex `json:"public_message_proposal"`
	PublicMessageCommit            vectors.Hex `json:"public_message_commit"`
	PrivateMessage                 vectors.Hex `json:"private_message"`
}

// roundTrip decodes b into a fresh value from mk, strictly, and checks that
// it re-encodes to exactly b. It returns the decoded value.
func roundTrip[T codec.Unmarshaler](t *testing.T, name string, b []byte, mk func() T) T {
	t.Helper()
	v := mk()
	if err := codec.Unmarshal(b, name, v); err != nil {
		t.Fatalf("%s: decode: %v", name, err)
	}
	m, ok := any(v).(codec.Marshaler)
	if !ok {
		t.Fatalf("%s: %T is not a Marshaler", name, v)
	}
	out, err := codec.Marshal(m)
	if err != nil {
		t.Fatalf("%s: re-encode: %v", name, err)
	}
	if !bytes.Equal(out, b) {
		t.Fatalf("%s: re-encoding differs:\n got %x\nwant %x", name, out, b)
	}
	return v
}

func checkMLSMessage(t *testing.T, name string, b []byte, wf wire.WireFormat) *wire.MLSMessage {
	t.Helper()
	m := roundTrip(t, name, b, func() *wire.MLSMessage { return new(wire.MLSMessage) })
	if m.WireFormat != wf {
		t.Fatalf("%s: wire format %d, want %d", name, m.WireFormat, wf)
	}
	return m
}

func TestVectorsMessages(t *testing.T) {
	var vs []messagesVector
	vectors.Load(t, "messages.json", &vs)
	tally := vectors.NewTally("vectors", "messages.json")
	for i, v := range vs {
		tally.Run(t, fmt.Sprint(i), func(t *testing.T) {
			checkMLSMessage(t, "mls_welcome", v.MLSWelcome, wire.WireFormatWelcome)
			checkMLSMessage(t, "mls_group_info", v.MLSGroupInfo, wire.WireFormatGroupInfo)
			kp := checkMLSMessage(t, "mls_key_package", v.MLSKeyPackage, wire.WireFormatKeyPackage)
			if kp.KeyPackage.LeafNode.Source != wire.LeafNodeSourceKeyPackage {
				t.Errorf("key package leaf source %d", kp.KeyPackage.LeafNode.Source)
			}
			roundTrip(t, "ratchet_tree", v.RatchetTree, func() *wire.RatchetTree { return new(wire.RatchetTree) })
			roundTrip(t, "group_secrets", v.GroupSecrets, func() *wire.GroupSecrets { return new(wire.GroupSecrets) })
			roundTrip(t, "add_proposal", v.AddProposal, func() *wire.Add { return new(wire.Add) })
			roundTrip(t, "update_proposal", v.UpdateProposal, func() *wire.Update { return new(wire.Update) })
			roundTrip(t, "remove_proposal", v.RemoveProposal, func() *wire.Remove { return new(wire.Remove) })
			roundTrip(t, "pre_shared_key_proposal", v.PreSharedKeyProposal, func() *wire.PreSharedKey { return new(wire.PreSharedKey) })
			roundTrip(t, "re_init_proposal", v.ReInitProposal, func() *wire.ReInit { return new(wire.ReInit) })
			roundTrip(t, "external_init_proposal", v.ExternalInitProposal, func() *wire.ExternalInit { return new(wire.ExternalInit) })
			roundTrip(t, "group_context_extensions_proposal", v.GroupContextExtensionsProposal, func() *wire.GroupContextExtensions { return new(wire.GroupContextExtensions) })
			roundTrip(t, "commit", v.Commit, func() *wire.Commit { return new(wire.Commit) })
			for _, c := range []struct {
				name string
				b    []byte
				ct   wire.ContentType
			}{
				{"public_message_application", v.PublicMessageApplication, wire.ContentApplication},
				{"public_message_proposal", v.PublicMessageProposal, wire.ContentProposal},
				{"public_message_commit", v.PublicMessageCommit, wire.ContentCommit},
			} {
				m := checkMLSMessage(t, c.name, c.b, wire.WireFormatPublicMessage)
				if got := m.PublicMessage.Content.ContentType; got != c.ct {
					t.Errorf("%s: content type %d, want %d", c.name, got, c.ct)
				}
				// The AuthenticatedContent view must encode too.
				if _, err := codec.Marshal(m.PublicMessage.AuthenticatedContent()); err != nil {
					t.Errorf("%s: AuthenticatedContent: %v", c.name, err)
				}
			}
			checkMLSMessage(t, "private_message", v.PrivateMessage, wire.WireFormatPrivateMessage)
		})
	}
	tally.Report(t)
}

type deserializationVector struct {
	Header vectors.Hex `json:"vlbytes_header"`
	Length uint64      `json:"length"`
}

func TestVectorsDeserialization(t *testing.T) {
	var vs []deserializationVector
	vectors.Load(t, "deserialization.json", &vs)
	tally := vectors.NewTally("vectors", "deserialization.json")
	for i, v := range vs {
		tally.Run(t, fmt.Sprint(i), func(t *testing.T) {
			r := codec.NewReader(v.Header)
			n := r.Varint("vlbytes_header")
			if err := r.Done("vlbytes_header"); err != nil {
				t.Fatalf("decode %x: %v", v.Header, err)
			}
			if n != v.Length {
				t.Fatalf("decode %x: got %d, want %d", v.Header, n, v.Length)
			}
			// Minimal encoding must reproduce the header, and an opaque
			// with this header must decode from a body of that length.
			enc, ok := codec.AppendVarint(nil, n)
			if !ok || !bytes.Equal(enc, v.Header) {
				t.Fatalf("re-encode %d: got %x, want %x", n, enc, v.Header)
			}
			if n <= 1<<16 {
				body := append(append([]byte(nil), v.Header...), make([]byte, n)...)
				r := codec.NewReader(body)
				if got := r.Opaque("opaque"); len(got) != int(n) || r.Done("opaque") != nil {
					t.Fatalf("opaque with header %x: len %d, err %v", v.Header, len(got), r.Err())
				}
			}
		})
	}
	tally.Report(t)
}
