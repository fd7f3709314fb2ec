package wire_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// expectDecodeErr checks that err is a *codec.DecodeError naming field (if
// field is not empty) and wrapping want.
func expectDecodeErr(t *testing.T, err error, want error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("decoding succeeded, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v does not wrap %v", err, want)
	}
	var de *codec.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v is not a *codec.DecodeError", err)
	}
	if field != "" && de.Field != field {
		t.Fatalf("error names field %q, want %q (%v)", de.Field, field, err)
	}
}

func mustMarshal(t *testing.T, m codec.Marshaler) []byte {
	t.Helper()
	b, err := codec.Marshal(m)
	if err != nil {
		t.Fatalf("encoding %T: %v", m, err)
	}
	return b
}

func build(f func(w *codec.Writer)) []byte {
	w := codec.NewWriter()
	f(w)
	b, err := w.Bytes()
	if err != nil {
		panic(err)
	}
	return b
}

func TestRoundTripSamples(t *testing.T) {
	for name, m := range sampleMessages() {
		t.Run(name, func(t *testing.T) {
			b := mustMarshal(t, m)
			got, err := wire.UnmarshalMLSMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mustMarshal(t, got), b) {
				t.Fatal("re-encoding differs")
			}
			m.Version = wire.MLS10
			if !reflect.DeepEqual(normalize(t, m), normalize(t, got)) {
				t.Fatalf("decoded value differs:\n got %+v\nwant %+v", got, m)
			}
			bb, err := got.MarshalBinary()
			if err != nil || !bytes.Equal(bb, b) {
				t.Fatalf("MarshalBinary: %v", err)
			}
			var again wire.MLSMessage
			if err := again.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// normalize re-decodes m so that nil and empty slices compare equal.
func normalize(t *testing.T, m *wire.MLSMessage) *wire.MLSMessage {
	t.Helper()
	got, err := wire.UnmarshalMLSMessage(mustMarshal(t, m))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestTopLevelDecoders(t *testing.T) {
	kp := sampleKeyPackage()
	kpb := mustMarshal(t, kp)
	if _, err := wire.UnmarshalKeyPackage(kpb); err != nil {
		t.Fatal(err)
	}
	gi := mustMarshal(t, sampleGroupInfo())
	if _, err := wire.UnmarshalGroupInfo(gi); err != nil {
		t.Fatal(err)
	}
	wb := mustMarshal(t, sampleWelcome())
	if _, err := wire.UnmarshalWelcome(wb); err != nil {
		t.Fatal(err)
	}
	tree := wire.RatchetTree{{Leaf: sampleLeaf(wire.LeafNodeSourceCommit)}, nil, {Leaf: sampleLeaf(wire.LeafNodeSourceUpdate)}, {Parent: &wire.ParentNode{EncryptionKey: fill(32, 1), ParentHash: []byte{}, UnmergedLeaves: []uint32{2}}}, {Leaf: sampleLeaf(wire.LeafNodeSourceKeyPackage)}}
	tb, err := tree.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	gotTree, err := wire.UnmarshalRatchetTree(tb)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotTree) != 5 || gotTree[1] != nil || gotTree[3].Parent == nil || gotTree[4].Leaf.Lifetime == nil {
		t.Fatalf("tree decoded wrongly: %+v", gotTree)
	}
	lb := mustMarshal(t, sampleLeaf(wire.LeafNodeSourceUpdate))
	if _, err := wire.UnmarshalLeafNode(lb); err != nil {
		t.Fatal(err)
	}
	gs := &wire.GroupSecrets{JoinerSecret: fill(32, 1), PathSecret: []byte{}, PSKs: []wire.PreSharedKeyID{{Type: wire.PSKExternal, PSKID: []byte("id"), Nonce: fill(32, 2)}}}
	gsb := mustMarshal(t, gs)
	got, err := wire.UnmarshalGroupSecrets(gsb)
	if err != nil {
		t.Fatal(err)
	}
	if got.PathSecret == nil {
		t.Fatal("present empty path_secret decoded as absent")
	}
	gs.PathSecret = nil
	got, err = wire.UnmarshalGroupSecrets(mustMarshal(t, gs))
	if err != nil || got.PathSecret != nil {
		t.Fatalf("absent path_secret: %v %v", got, err)
	}
}

// TestDecodeErrors checks each strict decoding rule with a specific
// sentinel and, where useful, the field the error names.
func TestDecodeErrors(t *testing.T) {
	kp := mustMarshal(t, sampleKeyPackage())
	kpMsg := mustMarshal(t, &wire.MLSMessage{WireFormat: wire.WireFormatKeyPackage, KeyPackage: sampleKeyPackage()})
	leaf := sampleLeaf(wire.LeafNodeSourceUpdate)

	// KeyPackage: version(2) cipher_suite(2) init_key<V> with 32 bytes.
	nonMinimal := append(append(append([]byte(nil), kp[:4]...), 0x40, 0x20), kp[5:]...)
	longLen := append(append(append([]byte(nil), kp[:4]...), 0x80, 0x10, 0, 0), kp[5:]...)

	leafWith := func(src byte) []byte {
		return build(func(w *codec.Writer) {
			w.Opaque(leaf.EncryptionKey)
			w.Opaque(leaf.SignatureKey)
			leaf.Credential.MarshalMLS(w)
			leaf.Capabilities.MarshalMLS(w)
			w.U8(src)
			w.Vector(func(*codec.Writer) {})
			w.Opaque(nil)
		})
	}
	pubMsg := func(senderType uint8, extra func(w *codec.Writer)) []byte {
		return build(func(w *codec.Writer) {
			w.U16(1)
			w.U16(uint16(wire.WireFormatPublicMessage))
			w.Opaque([]byte("g"))
			w.U64(1)
			w.U8(senderType)
			if senderType == 1 || senderType == 2 {
				w.U32(0)
			}
			w.Opaque(nil)
			w.U8(uint8(wire.ContentApplication))
			w.Opaque([]byte("hi"))
			w.Opaque(fill(8, 1)) // signature
			extra(w)
		})
	}
	proposalOf := func(pt uint16, body []byte) []byte {
		return build(func(w *codec.Writer) { w.U16(pt); w.Raw(body) })
	}

	tests := []struct {
		name   string
		decode func() error
		want   error
		field  string
	}{
		{"non-minimal varint in KeyPackage.init_key", func() error { _, err := wire.UnmarshalKeyPackage(nonMinimal); return err }, codec.ErrNonMinimalVarint, "KeyPackage.init_key"},
		{"vector length past input", func() error { _, err := wire.UnmarshalKeyPackage(longLen); return err }, codec.ErrTruncated, "KeyPackage.init_key"},
		{"truncated KeyPackage", func() error { _, err := wire.UnmarshalKeyPackage(kp[:len(kp)-1]); return err }, codec.ErrTruncated, "KeyPackage.signature"},
		{"truncated MLSMessage header", func() error { _, err := wire.UnmarshalMLSMessage([]byte{0, 1, 0}); return err }, codec.ErrTruncated, "MLSMessage.wire_format"},
		{"empty input", func() error { _, err := wire.UnmarshalMLSMessage(nil); return err }, codec.ErrTruncated, "MLSMessage.version"},
		{"trailing byte after KeyPackage", func() error { _, err := wire.UnmarshalKeyPackage(append(kp[:len(kp):len(kp)], 0)); return err }, codec.ErrTrailingData, "KeyPackage"},
		{"trailing byte after MLSMessage", func() error { _, err := wire.UnmarshalMLSMessage(append(kpMsg[:len(kpMsg):len(kpMsg)], 0)); return err }, codec.ErrTrailingData, "MLSMessage"},
		{"optional presence 2 in Commit.path", func() error { _, err := wire.UnmarshalCommit([]byte{0, 2}); return err }, codec.ErrInvalidOptional, "Commit.path"},
		{"optional presence 2 in GroupSecrets.path_secret", func() error { _, err := wire.UnmarshalGroupSecrets([]byte{0, 2, 0, 0}); return err }, codec.ErrInvalidOptional, "GroupSecrets.path_secret"},
		{"optional presence 0xff in ratchet_tree", func() error { _, err := wire.UnmarshalRatchetTree([]byte{1, 0xff}); return err }, codec.ErrInvalidOptional, "ratchet_tree.node"},
		{"wire format 0", func() error { _, err := wire.UnmarshalMLSMessage([]byte{0, 1, 0, 0}); return err }, wire.ErrUnknownWireFormat, "MLSMessage.wire_format"},
		{"wire format 6", func() error { _, err := wire.UnmarshalMLSMessage([]byte{0, 1, 0, 6, 0}); return err }, wire.ErrUnknownWireFormat, "MLSMessage.wire_format"},
		{"wire format generic sentinel", func() error { _, err := wire.UnmarshalMLSMessage([]byte{0, 1, 0xff, 0xff}); return err }, codec.ErrInvalidValue, "MLSMessage.wire_format"},
		{"version 2", func() error { _, err := wire.UnmarshalMLSMessage(append([]byte{0, 2}, kpMsg[2:]...)); return err }, wire.ErrUnsupportedVersion, "MLSMessage.version"},
		{"version 0", func() error { _, err := wire.UnmarshalMLSMessage(append([]byte{0, 0}, kpMsg[2:]...)); return err }, wire.ErrUnsupportedVersion, "MLSMessage.version"},
		{"unknown proposal type 8", func() error { _, err := wire.UnmarshalProposal(proposalOf(8, []byte{0})); return err }, wire.ErrUnknownProposalType, "Proposal.proposal_type"},
		{"reserved proposal type 0", func() error { _, err := wire.UnmarshalProposal(proposalOf(0, nil)); return err }, wire.ErrUnknownProposalType, "Proposal.proposal_type"},
		{"GREASE proposal type inside Commit", func() error {
			_, err := wire.UnmarshalCommit(build(func(w *codec.Writer) {
				w.Vector(func(w *codec.Writer) { w.U8(1); w.U16(0x0a0a); w.Opaque(nil) })
				w.U8(0)
			}))
			return err
		}, wire.ErrUnknownProposalType, "Proposal.proposal_type"},
		{"unknown credential type", func() error { _, err := wire.UnmarshalCredential([]byte{0, 3, 1, 'a'}); return err }, wire.ErrUnknownCredentialType, "Credential.credential_type"},
		{"reserved credential type in LeafNode", func() error {
			_, err := wire.UnmarshalLeafNode(build(func(w *codec.Writer) { w.Opaque(nil); w.Opaque(nil); w.U16(0); w.Opaque(nil) }))
			return err
		}, wire.ErrUnknownCredentialType, "Credential.credential_type"},
		{"sender type 0", func() error { _, err := wire.UnmarshalMLSMessage(pubMsg(0, func(*codec.Writer) {})); return err }, wire.ErrUnknownSenderType, "Sender.sender_type"},
		{"sender type 5", func() error { _, err := wire.UnmarshalMLSMessage(pubMsg(5, func(*codec.Writer) {})); return err }, wire.ErrUnknownSenderType, "Sender.sender_type"},
		{"member sender without membership tag", func() error { _, err := wire.UnmarshalMLSMessage(pubMsg(1, func(*codec.Writer) {})); return err }, codec.ErrTruncated, "PublicMessage.membership_tag"},
		{"external sender with membership tag", func() error {
			_, err := wire.UnmarshalMLSMessage(pubMsg(2, func(w *codec.Writer) { w.Opaque(fill(32, 1)) }))
			return err
		}, codec.ErrTrailingData, "MLSMessage"},
		{"new member sender with membership tag", func() error {
			_, err := wire.UnmarshalMLSMessage(pubMsg(3, func(w *codec.Writer) { w.Opaque(fill(32, 1)) }))
			return err
		}, codec.ErrTrailingData, "MLSMessage"},
		{"content type 4", func() error {
			_, err := wire.UnmarshalFramedContent(build(func(w *codec.Writer) { w.Opaque(nil); w.U64(0); w.U8(3); w.Opaque(nil); w.U8(4) }))
			return err
		}, wire.ErrUnknownContentType, "FramedContent.content_type"},
		{"private message content type 0", func() error {
			_, err := wire.UnmarshalPrivateMessage(build(func(w *codec.Writer) {
				w.Opaque(nil)
				w.U64(0)
				w.U8(0)
				w.Opaque(nil)
				w.Opaque(nil)
				w.Opaque(nil)
			}))
			return err
		}, wire.ErrUnknownContentType, "PrivateMessage.content_type"},
		{"leaf node source 0", func() error { _, err := wire.UnmarshalLeafNode(leafWith(0)); return err }, wire.ErrUnknownLeafNodeSource, "LeafNode.leaf_node_source"},
		{"leaf node source 4", func() error { _, err := wire.UnmarshalLeafNode(leafWith(4)); return err }, wire.ErrUnknownLeafNodeSource, "LeafNode.leaf_node_source"},
		{"key_package source needs a lifetime", func() error { _, err := wire.UnmarshalLeafNode(leafWith(1)); return err }, codec.ErrTruncated, "Lifetime.not_before"},
		{"commit source needs a parent_hash", func() error { _, err := wire.UnmarshalLeafNode(leafWith(3)); return err }, codec.ErrTruncated, "LeafNode.signature"},
		{"update source has no parent_hash", func() error {
			// An update leaf followed by a parent_hash of 30 zero octets:
			// the parent_hash is read as ten empty extensions of type 0,
			// the real extensions as the signature, leaving one octet.
			_, err := wire.UnmarshalLeafNode(append(leafWith(2)[:len(leafWith(2))-2], append(append([]byte{30}, make([]byte, 30)...), 0, 0)...))
			return err
		}, codec.ErrTrailingData, "LeafNode"},
		{"node type 3", func() error { _, err := wire.UnmarshalRatchetTree([]byte{2, 1, 3}); return err }, wire.ErrUnknownNodeType, "Node.node_type"},
		{"psk type 3", func() error { _, err := wire.UnmarshalPreSharedKeyID([]byte{3, 0}); return err }, wire.ErrUnknownPSKType, "PreSharedKeyID.psktype"},
		{"psk type 0", func() error { _, err := wire.UnmarshalPreSharedKeyID([]byte{0, 0}); return err }, wire.ErrUnknownPSKType, "PreSharedKeyID.psktype"},
		{"resumption usage 0", func() error {
			_, err := wire.UnmarshalPreSharedKeyID([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
			return err
		}, wire.ErrReservedPSKUsage, "PreSharedKeyID.usage"},
		{"ProposalOrRef type 0", func() error { _, err := wire.UnmarshalProposalOrRef([]byte{0, 0}); return err }, wire.ErrUnknownProposalOrRefType, "ProposalOrRef.type"},
		{"ProposalOrRef type 3", func() error { _, err := wire.UnmarshalProposalOrRef([]byte{3, 0}); return err }, wire.ErrUnknownProposalOrRefType, "ProposalOrRef.type"},
		{"invalid varint prefix", func() error { _, err := wire.UnmarshalExternalInit([]byte{0xc0, 0, 0, 0, 0, 0, 0, 0}); return err }, codec.ErrInvalidVarintPrefix, "ExternalInit.kem_output"},
		{"element overruns vector", func() error {
			// capabilities.versions<V> of 3 bytes holds one and a half uint16s.
			_, err := wire.UnmarshalCapabilities([]byte{3, 0, 1, 0, 0, 0, 0, 0})
			return err
		}, codec.ErrTruncated, "Capabilities.versions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { expectDecodeErr(t, tc.decode(), tc.want, tc.field) })
	}
}

// TestEncodeErrors checks that values the RFC 9420 encoding cannot
// represent fail to encode with ErrInvalidField instead of producing bytes
// that decode differently.
func TestEncodeErrors(t *testing.T) {
	noLifetime := sampleLeaf(wire.LeafNodeSourceKeyPackage)
	noLifetime.Lifetime = nil
	updWithLifetime := sampleLeaf(wire.LeafNodeSourceUpdate)
	updWithLifetime.Lifetime = &wire.Lifetime{}
	updWithParentHash := sampleLeaf(wire.LeafNodeSourceUpdate)
	updWithParentHash.ParentHash = []byte{1}
	commitWithLifetime := sampleLeaf(wire.LeafNodeSourceCommit)
	commitWithLifetime.Lifetime = &wire.Lifetime{}
	kpWithParentHash := sampleLeaf(wire.LeafNodeSourceKeyPackage)
	kpWithParentHash.ParentHash = []byte{1}
	badSource := sampleLeaf(wire.LeafNodeSourceUpdate)
	badSource.Source = 9

	extWithTag := samplePublicMessage(wire.SenderExternal, wire.ContentProposal)
	extWithTag.MembershipTag = []byte{1}
	appWithConfTag := samplePublicMessage(wire.SenderMember, wire.ContentApplication)
	appWithConfTag.Auth.ConfirmationTag = []byte{1}
	proposalNoBody := samplePublicMessage(wire.SenderMember, wire.ContentProposal)
	proposalNoBody.Content.Proposal = nil
	commitWithApp := samplePublicMessage(wire.SenderMember, wire.ContentCommit)
	commitWithApp.Content.ApplicationData = []byte{1}
	unknownSender := samplePublicMessage(wire.SenderMember, wire.ContentApplication)
	unknownSender.Content.Sender.Type = 0
	newMemberIndex := samplePublicMessage(wire.SenderNewMemberCommit, wire.ContentCommit)
	newMemberIndex.Content.Sender.Index = 3

	tests := []struct {
		name string
		m    codec.Marshaler
	}{
		{"key_package leaf without lifetime", noLifetime},
		{"update leaf with lifetime", updWithLifetime},
		{"update leaf with parent_hash", updWithParentHash},
		{"commit leaf with lifetime", commitWithLifetime},
		{"key_package leaf with parent_hash", kpWithParentHash},
		{"unknown leaf source", badSource},
		{"external sender with membership tag", extWithTag},
		{"application with confirmation tag", appWithConfTag},
		{"proposal content without proposal", proposalNoBody},
		{"commit content with application data", commitWithApp},
		{"reserved sender type", unknownSender},
		{"new member sender with index", newMemberIndex},
		{"proposal without body", &wire.Proposal{Type: wire.ProposalAdd}},
		{"proposal type mismatch", &wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Remove{}}},
		{"unknown credential", &wire.Credential{Type: 7}},
		{"basic credential with certificates", &wire.Credential{Type: wire.CredentialBasic, Certificates: [][]byte{{1}}}},
		{"empty node", &wire.Node{}},
		{"node with leaf and parent", &wire.Node{Leaf: sampleLeaf(wire.LeafNodeSourceUpdate), Parent: &wire.ParentNode{}}},
		{"ProposalOrRef without proposal", &wire.ProposalOrRef{Type: wire.ProposalOrRefProposal}},
		{"ProposalOrRef unknown type", &wire.ProposalOrRef{}},
		{"psk type 0", &wire.PreSharedKeyID{}},
		{"resumption usage 0", &wire.PreSharedKeyID{Type: wire.PSKResumption}},
		{"MLSMessage unknown wire format", &wire.MLSMessage{WireFormat: 9, Welcome: sampleWelcome()}},
		{"MLSMessage body mismatch", &wire.MLSMessage{WireFormat: wire.WireFormatGroupInfo, Welcome: sampleWelcome()}},
		{"MLSMessage two bodies", &wire.MLSMessage{WireFormat: wire.WireFormatWelcome, Welcome: sampleWelcome(), GroupInfo: sampleGroupInfo()}},
		{"negative padding", &wire.PrivateMessageContent{ContentType: wire.ContentApplication, PaddingLen: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := codec.Marshal(tc.m)
			if !errors.Is(err, wire.ErrInvalidField) {
				t.Fatalf("got %x, %v; want ErrInvalidField", b, err)
			}
		})
	}
	// The TBS helpers report the same errors.
	if _, err := noLifetime.TBS(nil, 0); !errors.Is(err, wire.ErrInvalidField) {
		t.Errorf("LeafNode.TBS: %v", err)
	}
	c := sampleContent(wire.SenderMember, wire.ContentApplication)
	if _, err := wire.FramedContentTBS(wire.WireFormatPublicMessage, &c, nil); !errors.Is(err, wire.ErrInvalidField) {
		t.Errorf("FramedContentTBS without context for a member: %v", err)
	}
	if _, err := wire.ConfirmedTranscriptHashInput(wire.WireFormatPublicMessage, &c, nil); !errors.Is(err, wire.ErrInvalidField) {
		t.Errorf("ConfirmedTranscriptHashInput of application content: %v", err)
	}
}

func TestFramedContentTBS(t *testing.T) {
	ctx := sampleGroupContext()
	ctxBytes := mustMarshal(t, ctx)
	for _, st := range []wire.SenderType{wire.SenderMember, wire.SenderExternal, wire.SenderNewMemberProposal, wire.SenderNewMemberCommit} {
		c := sampleContent(st, wire.ContentProposal)
		tbs, err := wire.FramedContentTBS(wire.WireFormatPrivateMessage, &c, ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := append([]byte{0, 1, 0, 2}, mustMarshal(t, &c)...)
		if st == wire.SenderMember || st == wire.SenderNewMemberCommit {
			want = append(want, ctxBytes...)
		}
		if !bytes.Equal(tbs, want) {
			t.Errorf("sender type %d: TBS mismatch", st)
		}
	}
	p := samplePublicMessage(wire.SenderMember, wire.ContentCommit)
	tbm, err := p.TBM(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tbs, _ := wire.FramedContentTBS(wire.WireFormatPublicMessage, &p.Content, ctx)
	want := build(func(w *codec.Writer) {
		w.Raw(tbs)
		w.Opaque(p.Auth.Signature)
		w.Opaque(p.Auth.ConfirmationTag)
	})
	if !bytes.Equal(tbm, want) {
		t.Error("AuthenticatedContentTBM mismatch")
	}
	in, err := wire.InterimTranscriptHashInput(fill(32, 1))
	if err != nil || !bytes.Equal(in, append([]byte{32}, fill(32, 1)...)) {
		t.Errorf("InterimTranscriptHashInput: %x %v", in, err)
	}
}

func TestLeafNodeTBS(t *testing.T) {
	for _, src := range []wire.LeafNodeSource{wire.LeafNodeSourceKeyPackage, wire.LeafNodeSourceUpdate, wire.LeafNodeSourceCommit} {
		l := sampleLeaf(src)
		full := mustMarshal(t, l)
		tbs, err := l.TBS([]byte("gid"), 5)
		if err != nil {
			t.Fatal(err)
		}
		content := full[:len(full)-codec.VarintLen(uint64(len(l.Signature)))-len(l.Signature)]
		want := content
		if src != wire.LeafNodeSourceKeyPackage {
			want = build(func(w *codec.Writer) { w.Raw(content); w.Opaque([]byte("gid")); w.U32(5) })
		}
		if !bytes.Equal(tbs, want) {
			t.Errorf("source %d: LeafNodeTBS mismatch", src)
		}
	}
	kp := sampleKeyPackage()
	full := mustMarshal(t, kp)
	tbs, err := kp.TBS()
	if err != nil || !bytes.Equal(tbs, full[:len(full)-codec.VarintLen(uint64(len(kp.Signature)))-len(kp.Signature)]) {
		t.Errorf("KeyPackageTBS mismatch: %v", err)
	}
	gi := sampleGroupInfo()
	full = mustMarshal(t, gi)
	tbs, err = gi.TBS()
	if err != nil || !bytes.Equal(tbs, full[:len(full)-codec.VarintLen(uint64(len(gi.Signature)))-len(gi.Signature)]) {
		t.Errorf("GroupInfoTBS mismatch: %v", err)
	}
}

func TestPrivateMessageContent(t *testing.T) {
	for _, ct := range []wire.ContentType{wire.ContentApplication, wire.ContentProposal, wire.ContentCommit} {
		pm := samplePublicMessage(wire.SenderMember, ct)
		for _, pad := range []int{0, 1, 100} {
			b, err := wire.MarshalPrivateMessageContent(&pm.Content, &pm.Auth, pad)
			if err != nil {
				t.Fatal(err)
			}
			got, err := wire.UnmarshalPrivateMessageContent(b, ct)
			if err != nil {
				t.Fatalf("ct %d pad %d: %v", ct, pad, err)
			}
			if got.PaddingLen != pad || !bytes.Equal(mustMarshal(t, got), b) {
				t.Fatalf("ct %d pad %d: round trip failed", ct, pad)
			}
			fc := got.FramedContent(&wire.PrivateMessage{GroupID: pm.Content.GroupID, Epoch: pm.Content.Epoch, AuthenticatedData: pm.Content.AuthenticatedData}, pm.Content.Sender)
			if !bytes.Equal(mustMarshal(t, fc), mustMarshal(t, &pm.Content)) {
				t.Fatalf("ct %d: FramedContent reconstruction differs", ct)
			}
			if pad > 0 {
				bad := append([]byte(nil), b...)
				bad[len(bad)-1] = 1
				_, err := wire.UnmarshalPrivateMessageContent(bad, ct)
				expectDecodeErr(t, err, wire.ErrNonZeroPadding, "PrivateMessageContent.padding")
			}
		}
	}
	_, err := wire.UnmarshalPrivateMessageContent([]byte{0, 0}, 0)
	expectDecodeErr(t, err, wire.ErrUnknownContentType, "PrivateMessageContent.content_type")

	sd := &wire.SenderData{LeafIndex: 3, Generation: 9, ReuseGuard: [4]byte{1, 2, 3, 4}}
	b := mustMarshal(t, sd)
	if !bytes.Equal(b, []byte{0, 0, 0, 3, 0, 0, 0, 9, 1, 2, 3, 4}) {
		t.Fatalf("SenderData encoding %x", b)
	}
	if got, err := wire.UnmarshalSenderData(b); err != nil || *got != *sd {
		t.Fatalf("SenderData round trip: %v", err)
	}
	_, err = wire.UnmarshalSenderData(b[:11])
	expectDecodeErr(t, err, codec.ErrTruncated, "SenderData.reuse_guard")

	m := &wire.PrivateMessage{GroupID: []byte("g"), Epoch: 2, ContentType: wire.ContentCommit, AuthenticatedData: []byte("x")}
	if got := mustMarshal(t, m.ContentAAD()); !bytes.Equal(got, []byte{1, 'g', 0, 0, 0, 0, 0, 0, 0, 2, 3, 1, 'x'}) {
		t.Fatalf("PrivateContentAAD %x", got)
	}
	if got := mustMarshal(t, m.SenderDataAAD()); !bytes.Equal(got, []byte{1, 'g', 0, 0, 0, 0, 0, 0, 0, 2, 3}) {
		t.Fatalf("SenderDataAAD %x", got)
	}
	if _, err := wire.UnmarshalSenderDataAAD([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 4}); !errors.Is(err, wire.ErrUnknownContentType) {
		t.Fatalf("SenderDataAAD content type 4: %v", err)
	}
}

func TestExtensions(t *testing.T) {
	tree := wire.RatchetTree{{Leaf: sampleLeaf(wire.LeafNodeSourceCommit)}}
	var exts []wire.Extension
	add := func(e wire.Extension, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		exts = append(exts, e)
	}
	add(wire.NewApplicationIDExtension([]byte("app")))
	add(wire.NewRatchetTreeExtension(tree))
	add(wire.NewRequiredCapabilitiesExtension(&wire.RequiredCapabilities{ExtensionTypes: []wire.ExtensionType{0xff00}, ProposalTypes: []wire.ProposalType{}, CredentialTypes: []wire.CredentialType{wire.CredentialX509}}))
	add(wire.NewExternalPubExtension(fill(32, 7)))
	add(wire.NewExternalSendersExtension(wire.ExternalSenders{{SignatureKey: fill(32, 8), Credential: wire.Credential{Type: wire.CredentialX509, Certificates: [][]byte{{1, 2}, {3}}}}}))

	if typ, dup := wire.DuplicateExtension(exts); dup {
		t.Fatalf("unexpected duplicate %d", typ)
	}
	if id, ok, err := wire.ApplicationID(exts); !ok || err != nil || string(id) != "app" {
		t.Fatalf("ApplicationID: %q %v %v", id, ok, err)
	}
	if exts[0].Data[0] != 3 {
		t.Fatal("application_id must be encoded as opaque<V>")
	}
	if got, ok, err := wire.RatchetTreeExtension(exts); !ok || err != nil || len(got) != 1 || got[0].Leaf == nil {
		t.Fatalf("RatchetTreeExtension: %v %v %v", got, ok, err)
	}
	if rc, ok, err := wire.RequiredCapabilitiesExtension(exts); !ok || err != nil || rc.ExtensionTypes[0] != 0xff00 || rc.CredentialTypes[0] != wire.CredentialX509 {
		t.Fatalf("RequiredCapabilitiesExtension: %+v %v %v", rc, ok, err)
	}
	if pub, ok, err := wire.ExternalPub(exts); !ok || err != nil || !bytes.Equal(pub, fill(32, 7)) {
		t.Fatalf("ExternalPub: %x %v %v", pub, ok, err)
	}
	if es, ok, err := wire.ExternalSendersExtension(exts); !ok || err != nil || len(es) != 1 || len(es[0].Credential.Certificates) != 2 {
		t.Fatalf("ExternalSendersExtension: %+v %v %v", es, ok, err)
	}

	// Absent extensions.
	if _, ok, err := wire.ExternalPub(exts[:1]); ok || err != nil {
		t.Fatalf("absent external_pub: %v %v", ok, err)
	}
	// Malformed data is an error naming the extension, with trailing data
	// rejected.
	bad := []wire.Extension{{Type: wire.ExtensionExternalPub, Data: []byte{1, 2, 3}}}
	if _, ok, err := wire.ExternalPub(bad); !ok || !errors.Is(err, codec.ErrTrailingData) {
		t.Fatalf("malformed external_pub: %v %v", ok, err)
	}
	bad = []wire.Extension{{Type: wire.ExtensionRatchetTree, Data: []byte{2, 1, 9}}}
	if _, _, err := wire.RatchetTreeExtension(bad); !errors.Is(err, wire.ErrUnknownNodeType) {
		t.Fatalf("malformed ratchet_tree: %v", err)
	}

	dup := append(exts[:2:2], wire.Extension{Type: wire.ExtensionApplicationID})
	if typ, ok := wire.DuplicateExtension(dup); !ok || typ != wire.ExtensionApplicationID {
		t.Fatalf("DuplicateExtension: %d %v", typ, ok)
	}
	// Duplicates are left to validation: a list with duplicates decodes.
	gce := &wire.GroupContextExtensions{Extensions: dup}
	if _, err := wire.UnmarshalGroupContextExtensions(mustMarshal(t, gce)); err != nil {
		t.Fatalf("duplicate extensions must decode: %v", err)
	}
}
