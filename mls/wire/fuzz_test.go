package wire_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// loadSeedMessages reads messages.json for fuzz seeds, returning nil when
// the vectors are not available (fuzzing then starts from the built-in
// samples only).
func loadSeedMessages(f *testing.F) []messagesVector {
	f.Helper()
	dir := os.Getenv(vectors.EnvDir)
	if dir == "" {
		root, err := vectors.RepoRoot()
		if err != nil {
			return nil
		}
		dir = filepath.Join(root, "..", "shared", "mls-test-vectors")
	}
	b, err := os.ReadFile(filepath.Join(dir, "messages.json"))
	if err != nil {
		return nil
	}
	var vs []messagesVector
	if err := json.Unmarshal(b, &vs); err != nil {
		f.Fatalf("messages.json: %v", err)
	}
	return vs
}

// body strips the MLSMessage version and wire_format header.
func body(b []byte) []byte {
	if len(b) < 4 {
		return nil
	}
	return b[4:]
}

// fuzzRoundTrip is the property every fuzz target checks: decoding never
// panics, and whatever decodes re-encodes to exactly the input.
func fuzzRoundTrip[T codec.Unmarshaler](t *testing.T, b []byte, mk func() T) {
	v := mk()
	if err := codec.Unmarshal(b, "fuzz", v); err != nil {
		return
	}
	out, err := codec.Marshal(any(v).(codec.Marshaler))
	if err != nil {
		t.Fatalf("decoded value does not re-encode: %v\ninput %x", err, b)
	}
	if !bytes.Equal(out, b) {
		t.Fatalf("re-encoding differs\n  in %x\n out %x", b, out)
	}
}

func FuzzMLSMessage(f *testing.F) {
	for _, v := range loadSeedMessages(f) {
		for _, b := range [][]byte{v.MLSWelcome, v.MLSGroupInfo, v.MLSKeyPackage, v.PublicMessageApplication, v.PublicMessageProposal, v.PublicMessageCommit, v.PrivateMessage} {
			f.Add([]byte(b))
		}
	}
	for _, m := range sampleMessages() {
		f.Add(codec.MustMarshal(m))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, func() *wire.MLSMessage { return new(wire.MLSMessage) })
		// The same bytes as the inner objects that have no header.
		fuzzRoundTrip(t, b, func() *wire.Commit { return new(wire.Commit) })
		fuzzRoundTrip(t, b, func() *wire.Proposal { return new(wire.Proposal) })
		fuzzRoundTrip(t, b, func() *wire.AuthenticatedContent { return new(wire.AuthenticatedContent) })
		for _, ct := range []wire.ContentType{wire.ContentApplication, wire.ContentProposal, wire.ContentCommit} {
			if p, err := wire.UnmarshalPrivateMessageContent(b, ct); err == nil {
				if out, err := codec.Marshal(p); err != nil || !bytes.Equal(out, b) {
					t.Fatalf("PrivateMessageContent(%d) re-encoding differs: %v", ct, err)
				}
			}
		}
	})
}

func FuzzKeyPackage(f *testing.F) {
	for _, v := range loadSeedMessages(f) {
		f.Add(body(v.MLSKeyPackage))
		f.Add([]byte(v.AddProposal))
	}
	f.Add(codec.MustMarshal(sampleKeyPackage()))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, func() *wire.KeyPackage { return new(wire.KeyPackage) })
		fuzzRoundTrip(t, b, func() *wire.LeafNode { return new(wire.LeafNode) })
	})
}

func FuzzWelcome(f *testing.F) {
	for _, v := range loadSeedMessages(f) {
		f.Add(body(v.MLSWelcome))
		f.Add([]byte(v.GroupSecrets))
	}
	f.Add(codec.MustMarshal(sampleWelcome()))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, func() *wire.Welcome { return new(wire.Welcome) })
		fuzzRoundTrip(t, b, func() *wire.GroupSecrets { return new(wire.GroupSecrets) })
	})
}

func FuzzGroupInfo(f *testing.F) {
	for _, v := range loadSeedMessages(f) {
		f.Add(body(v.MLSGroupInfo))
	}
	f.Add(codec.MustMarshal(sampleGroupInfo()))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, func() *wire.GroupInfo { return new(wire.GroupInfo) })
		fuzzRoundTrip(t, b, func() *wire.GroupContext { return new(wire.GroupContext) })
	})
}

func FuzzRatchetTree(f *testing.F) {
	for _, v := range loadSeedMessages(f) {
		f.Add([]byte(v.RatchetTree))
	}
	tree := wire.RatchetTree{{Leaf: sampleLeaf(wire.LeafNodeSourceCommit)}, nil, {Leaf: sampleLeaf(wire.LeafNodeSourceKeyPackage)}}
	f.Add(codec.MustMarshal(&tree))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, func() *wire.RatchetTree { return new(wire.RatchetTree) })
		fuzzRoundTrip(t, b, func() *wire.ExternalSenders { return new(wire.ExternalSenders) })
	})
}

// FuzzCredential covers the credentials decoded on their own: a client's
// RegisterClient call carries one (httpapi/clientapi), and a provider's
// HubSender answer an ExternalSender (client/remote). Seeded with the
// credentials of the KeyPackages of messages.json.
func FuzzCredential(f *testing.F) {
	for _, v := range loadSeedMessages(f) {
		m, err := wire.UnmarshalMLSMessage(v.MLSKeyPackage)
		if err != nil || m.KeyPackage == nil {
			f.Fatalf("messages.json key package: %v", err)
		}
		ln := &m.KeyPackage.LeafNode
		f.Add(codec.MustMarshal(&ln.Credential))
		f.Add(codec.MustMarshal(&wire.ExternalSender{SignatureKey: ln.SignatureKey, Credential: ln.Credential}))
	}
	f.Add(codec.MustMarshal(&wire.Credential{Type: wire.CredentialX509, Certificates: [][]byte{{1}, {2, 3}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzRoundTrip(t, b, func() *wire.Credential { return new(wire.Credential) })
		fuzzRoundTrip(t, b, func() *wire.ExternalSender { return new(wire.ExternalSender) })
	})
}
