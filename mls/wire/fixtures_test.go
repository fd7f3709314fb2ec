package wire_test

import (
	"bytes"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func sampleCapabilities() wire.Capabilities {
	return wire.Capabilities{
		Versions:     []wire.ProtocolVersion{wire.MLS10},
		CipherSuites: []cipher.SuiteID{cipher.X25519_AES128GCM_SHA256_Ed25519, 0x0a0a},
		Extensions:   []wire.ExtensionType{0x1a1a},
		Proposals:    []wire.ProposalType{},
		Credentials:  []wire.CredentialType{wire.CredentialBasic},
	}
}

func sampleLeaf(src wire.LeafNodeSource) *wire.LeafNode {
	l := &wire.LeafNode{
		EncryptionKey: fill(32, 0xe1),
		SignatureKey:  fill(32, 0x51),
		Credential:    wire.Credential{Type: wire.CredentialBasic, Identity: []byte("alice")},
		Capabilities:  sampleCapabilities(),
		Source:        src,
		Extensions:    []wire.Extension{{Type: wire.ExtensionApplicationID, Data: []byte{3, 'a', 'p', 'p'}}},
		Signature:     fill(64, 0x5e),
	}
	switch src {
	case wire.LeafNodeSourceKeyPackage:
		l.Lifetime = &wire.Lifetime{NotBefore: 1, NotAfter: 1 << 40}
	case wire.LeafNodeSourceCommit:
		l.ParentHash = fill(32, 0x9a)
	}
	return l
}

func sampleKeyPackage() *wire.KeyPackage {
	return &wire.KeyPackage{
		Version:     wire.MLS10,
		CipherSuite: cipher.X25519_AES128GCM_SHA256_Ed25519,
		InitKey:     fill(32, 0x11),
		LeafNode:    *sampleLeaf(wire.LeafNodeSourceKeyPackage),
		Extensions:  []wire.Extension{},
		Signature:   fill(64, 0x22),
	}
}

func sampleGroupContext() *wire.GroupContext {
	return &wire.GroupContext{
		Version:                 wire.MLS10,
		CipherSuite:             cipher.X25519_AES128GCM_SHA256_Ed25519,
		GroupID:                 []byte("group"),
		Epoch:                   7,
		TreeHash:                fill(32, 0x71),
		ConfirmedTranscriptHash: fill(32, 0x72),
		Extensions:              []wire.Extension{{Type: wire.ExtensionExternalPub, Data: append([]byte{32}, fill(32, 0x73)...)}},
	}
}

func sampleCommit() *wire.Commit {
	return &wire.Commit{
		Proposals: []wire.ProposalOrRef{
			{Type: wire.ProposalOrRefReference, Reference: fill(32, 0x33)},
			{Type: wire.ProposalOrRefProposal, Proposal: &wire.Proposal{Type: wire.ProposalRemove, Body: &wire.Remove{Removed: 3}}},
			{Type: wire.ProposalOrRefProposal, Proposal: &wire.Proposal{Body: &wire.PreSharedKey{PSK: wire.PreSharedKeyID{
				Type: wire.PSKResumption, Usage: wire.ResumptionBranch, PSKGroupID: []byte("g"), PSKEpoch: 2, Nonce: fill(32, 1),
			}}}},
		},
		Path: &wire.UpdatePath{
			LeafNode: *sampleLeaf(wire.LeafNodeSourceCommit),
			Nodes: []wire.UpdatePathNode{{
				EncryptionKey:       fill(32, 0x44),
				EncryptedPathSecret: []wire.HPKECiphertext{{KEMOutput: fill(32, 0x45), Ciphertext: fill(48, 0x46)}},
			}},
		},
	}
}

func sampleContent(st wire.SenderType, ct wire.ContentType) wire.FramedContent {
	c := wire.FramedContent{
		GroupID:           []byte("group"),
		Epoch:             7,
		Sender:            wire.Sender{Type: st},
		AuthenticatedData: []byte("ad"),
		ContentType:       ct,
	}
	if st == wire.SenderMember || st == wire.SenderExternal {
		c.Sender.Index = 1
	}
	switch ct {
	case wire.ContentApplication:
		c.ApplicationData = []byte("hello")
	case wire.ContentProposal:
		c.Proposal = &wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *sampleKeyPackage()}}
	case wire.ContentCommit:
		c.Commit = sampleCommit()
	}
	return c
}

func samplePublicMessage(st wire.SenderType, ct wire.ContentType) *wire.PublicMessage {
	p := &wire.PublicMessage{
		Content: sampleContent(st, ct),
		Auth:    wire.FramedContentAuthData{Signature: fill(64, 0x5f)},
	}
	if ct == wire.ContentCommit {
		p.Auth.ConfirmationTag = fill(32, 0xc7)
	}
	if st == wire.SenderMember {
		p.MembershipTag = fill(32, 0x3e)
	}
	return p
}

func sampleGroupInfo() *wire.GroupInfo {
	return &wire.GroupInfo{
		GroupContext:    *sampleGroupContext(),
		Extensions:      []wire.Extension{{Type: wire.ExtensionRatchetTree, Data: []byte{0}}},
		ConfirmationTag: fill(32, 0xc1),
		Signer:          2,
		Signature:       fill(64, 0x5a),
	}
}

func sampleWelcome() *wire.Welcome {
	return &wire.Welcome{
		CipherSuite: cipher.X25519_AES128GCM_SHA256_Ed25519,
		Secrets: []wire.EncryptedGroupSecrets{{
			NewMember:             fill(32, 0x0e),
			EncryptedGroupSecrets: wire.HPKECiphertext{KEMOutput: fill(32, 1), Ciphertext: fill(80, 2)},
		}},
		EncryptedGroupInfo: fill(100, 3),
	}
}

func sampleMessages() map[string]*wire.MLSMessage {
	return map[string]*wire.MLSMessage{
		"public-member-commit":      {WireFormat: wire.WireFormatPublicMessage, PublicMessage: samplePublicMessage(wire.SenderMember, wire.ContentCommit)},
		"public-external-proposal":  {WireFormat: wire.WireFormatPublicMessage, PublicMessage: samplePublicMessage(wire.SenderExternal, wire.ContentProposal)},
		"public-newmember-commit":   {WireFormat: wire.WireFormatPublicMessage, PublicMessage: samplePublicMessage(wire.SenderNewMemberCommit, wire.ContentCommit)},
		"public-newmember-proposal": {WireFormat: wire.WireFormatPublicMessage, PublicMessage: samplePublicMessage(wire.SenderNewMemberProposal, wire.ContentProposal)},
		"public-member-application": {WireFormat: wire.WireFormatPublicMessage, PublicMessage: samplePublicMessage(wire.SenderMember, wire.ContentApplication)},
		"private": {WireFormat: wire.WireFormatPrivateMessage, PrivateMessage: &wire.PrivateMessage{
			GroupID: []byte("group"), Epoch: 7, ContentType: wire.ContentApplication,
			AuthenticatedData: []byte{}, EncryptedSenderData: fill(28, 4), Ciphertext: fill(60, 5),
		}},
		"welcome":     {WireFormat: wire.WireFormatWelcome, Welcome: sampleWelcome()},
		"group-info":  {WireFormat: wire.WireFormatGroupInfo, GroupInfo: sampleGroupInfo()},
		"key-package": {WireFormat: wire.WireFormatKeyPackage, KeyPackage: sampleKeyPackage()},
	}
}
