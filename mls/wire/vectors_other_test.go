package wire_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

func newMsg() *wire.MLSMessage        { return new(wire.MLSMessage) }
func newTree() *wire.RatchetTree      { return new(wire.RatchetTree) }
func newProposal() *wire.Proposal     { return new(wire.Proposal) }
func newUpdatePath() *wire.UpdatePath { return new(wire.UpdatePath) }

// TestVectorsWelcomeObjects re-encodes the objects of welcome.json and checks
// the KeyPackage with KeyPackage.Verify (RFC 9420, Section 10.1).
func TestVectorsWelcomeObjects(t *testing.T) {
	var vs []struct {
		CipherSuite uint16      `json:"cipher_suite"`
		KeyPackage  vectors.Hex `json:"key_package"`
		Welcome     vectors.Hex `json:"welcome"`
	}
	vectors.Load(t, "welcome.json", &vs)
	tally := vectors.NewTally("wire-decode", "welcome.json")
	for i, v := range vs {
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			kp := checkMLSMessage(t, "key_package", v.KeyPackage, wire.WireFormatKeyPackage).KeyPackage
			w := checkMLSMessage(t, "welcome", v.Welcome, wire.WireFormatWelcome).Welcome
			s, err := cipher.Lookup(cipher.SuiteID(v.CipherSuite))
			if err != nil {
				t.Fatal(err)
			}
			if err := kp.Verify(s); err != nil {
				t.Fatalf("KeyPackage.Verify: %v", err)
			}
			ref, err := kp.Ref(s)
			if err != nil {
				t.Fatal(err)
			}
			if w.Find(ref) == nil {
				t.Fatalf("welcome has no entry for KeyPackageRef %x", ref)
			}
			// Tampering breaks the signature.
			kp.InitKey[0] ^= 1
			if err := kp.Verify(s); err == nil {
				t.Fatal("Verify accepted a modified KeyPackage")
			}
		})
	}
	tally.Report(t)
}

// TestVectorsTreeValidationObjects re-encodes every tree of
// tree-validation.json and verifies every leaf signature (LeafNodeTBS).
func TestVectorsTreeValidationObjects(t *testing.T) {
	var vs []struct {
		CipherSuite uint16      `json:"cipher_suite"`
		Tree        vectors.Hex `json:"tree"`
		GroupID     vectors.Hex `json:"group_id"`
	}
	vectors.Load(t, "tree-validation.json", &vs)
	tally := vectors.NewTally("wire-decode", "tree-validation.json")
	for i, v := range vs {
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			tree := *roundTrip(t, "tree", v.Tree, newTree)
			s, err := cipher.Lookup(cipher.SuiteID(v.CipherSuite))
			if err != nil {
				t.Fatal(err)
			}
			for j, n := range tree {
				if n == nil {
					continue
				}
				if (j%2 == 0) != (n.Leaf != nil) {
					t.Fatalf("node %d: leaf/parent at wrong position", j)
				}
				if n.Leaf != nil {
					if err := n.Leaf.VerifySignature(s, v.GroupID, uint32(j/2)); err != nil {
						t.Fatalf("leaf %d: %v", j/2, err)
					}
				}
			}
		})
	}
	tally.Report(t)
}

// TestVectorsTreeKEMObjects re-encodes the trees and UpdatePaths of
// treekem.json and verifies the UpdatePath leaf signatures.
func TestVectorsTreeKEMObjects(t *testing.T) {
	var vs []struct {
		CipherSuite uint16      `json:"cipher_suite"`
		GroupID     vectors.Hex `json:"group_id"`
		RatchetTree vectors.Hex `json:"ratchet_tree"`
		UpdatePaths []struct {
			Sender     uint32      `json:"sender"`
			UpdatePath vectors.Hex `json:"update_path"`
		} `json:"update_paths"`
	}
	vectors.Load(t, "treekem.json", &vs)
	tally := vectors.NewTally("wire-decode", "treekem.json")
	for i, v := range vs {
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			roundTrip(t, "ratchet_tree", v.RatchetTree, newTree)
			s, err := cipher.Lookup(cipher.SuiteID(v.CipherSuite))
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range v.UpdatePaths {
				p := roundTrip(t, "update_path", u.UpdatePath, newUpdatePath)
				if p.LeafNode.Source != wire.LeafNodeSourceCommit {
					t.Fatalf("update path leaf source %d", p.LeafNode.Source)
				}
				if err := p.LeafNode.VerifySignature(s, v.GroupID, u.Sender); err != nil {
					t.Fatalf("sender %d: %v", u.Sender, err)
				}
			}
		})
	}
	tally.Report(t)
}

// TestVectorsTreeOperationsObjects re-encodes tree-operations.json.
func TestVectorsTreeOperationsObjects(t *testing.T) {
	var vs []struct {
		CipherSuite uint16      `json:"cipher_suite"`
		Proposal    vectors.Hex `json:"proposal"`
		TreeBefore  vectors.Hex `json:"tree_before"`
		TreeAfter   vectors.Hex `json:"tree_after"`
	}
	vectors.Load(t, "tree-operations.json", &vs)
	tally := vectors.NewTally("wire-decode", "tree-operations.json")
	for i, v := range vs {
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			roundTrip(t, "proposal", v.Proposal, newProposal)
			roundTrip(t, "tree_before", v.TreeBefore, newTree)
			roundTrip(t, "tree_after", v.TreeAfter, newTree)
		})
	}
	tally.Report(t)
}

type passiveVector struct {
	CipherSuite uint16      `json:"cipher_suite"`
	KeyPackage  vectors.Hex `json:"key_package"`
	Welcome     vectors.Hex `json:"welcome"`
	RatchetTree vectors.Hex `json:"ratchet_tree"`
	Epochs      []struct {
		Proposals []vectors.Hex `json:"proposals"`
		Commit    vectors.Hex   `json:"commit"`
	} `json:"epochs"`
}

// TestVectorsPassiveClientObjects re-encodes every message of the
// passive-client-*.json files.
func TestVectorsPassiveClientObjects(t *testing.T) {
	for _, file := range []string{"passive-client-welcome.json", "passive-client-handling-commit.json", "passive-client-random.json"} {
		var vs []passiveVector
		vectors.Load(t, file, &vs)
		tally := vectors.NewTally("wire-decode", file+"")
		for i, v := range vs {
			tally.Run(t, file+"/"+vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
				checkMLSMessage(t, "key_package", v.KeyPackage, wire.WireFormatKeyPackage)
				checkMLSMessage(t, "welcome", v.Welcome, wire.WireFormatWelcome)
				if v.RatchetTree != nil {
					roundTrip(t, "ratchet_tree", v.RatchetTree, newTree)
				}
				for e, ep := range v.Epochs {
					for j, p := range ep.Proposals {
						roundTrip(t, fmt.Sprintf("epoch %d proposal %d", e, j), p, newMsg)
					}
					roundTrip(t, fmt.Sprintf("epoch %d commit", e), ep.Commit, newMsg)
				}
			})
		}
		tally.Report(t)
	}
}

// TestVectorsMessageProtectionObjects re-encodes message-protection.json and
// checks the embedded proposal and commit against the public messages.
func TestVectorsMessageProtectionObjects(t *testing.T) {
	var vs []struct {
		CipherSuite             uint16      `json:"cipher_suite"`
		GroupID                 vectors.Hex `json:"group_id"`
		Epoch                   uint64      `json:"epoch"`
		TreeHash                vectors.Hex `json:"tree_hash"`
		ConfirmedTranscriptHash vectors.Hex `json:"confirmed_transcript_hash"`
		SignaturePub            vectors.Hex `json:"signature_pub"`
		MembershipKey           vectors.Hex `json:"membership_key"`
		Proposal                vectors.Hex `json:"proposal"`
		ProposalPriv            vectors.Hex `json:"proposal_priv"`
		ProposalPub             vectors.Hex `json:"proposal_pub"`
		Commit                  vectors.Hex `json:"commit"`
		CommitPriv              vectors.Hex `json:"commit_priv"`
		CommitPub               vectors.Hex `json:"commit_pub"`
		ApplicationPriv         vectors.Hex `json:"application_priv"`
	}
	vectors.Load(t, "message-protection.json", &vs)
	tally := vectors.NewTally("wire-decode", "message-protection.json")
	for i, v := range vs {
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			p := roundTrip(t, "proposal", v.Proposal, newProposal)
			c := roundTrip(t, "commit", v.Commit, func() *wire.Commit { return new(wire.Commit) })
			pp := checkMLSMessage(t, "proposal_pub", v.ProposalPub, wire.WireFormatPublicMessage)
			cp := checkMLSMessage(t, "commit_pub", v.CommitPub, wire.WireFormatPublicMessage)
			checkMLSMessage(t, "proposal_priv", v.ProposalPriv, wire.WireFormatPrivateMessage)
			checkMLSMessage(t, "commit_priv", v.CommitPriv, wire.WireFormatPrivateMessage)
			checkMLSMessage(t, "application_priv", v.ApplicationPriv, wire.WireFormatPrivateMessage)
			if !bytes.Equal(codec.MustMarshal(pp.PublicMessage.Content.Proposal), codec.MustMarshal(p)) {
				t.Error("proposal_pub does not carry proposal")
			}
			if !bytes.Equal(codec.MustMarshal(cp.PublicMessage.Content.Commit), codec.MustMarshal(c)) {
				t.Error("commit_pub does not carry commit")
			}
			// Signature (FramedContentTBS) and membership tag
			// (AuthenticatedContentTBM) of both public messages.
			s, err := cipher.Lookup(cipher.SuiteID(v.CipherSuite))
			if err != nil {
				t.Fatal(err)
			}
			ctx := &wire.GroupContext{
				Version: wire.MLS10, CipherSuite: cipher.SuiteID(v.CipherSuite), GroupID: v.GroupID,
				Epoch: v.Epoch, TreeHash: v.TreeHash, ConfirmedTranscriptHash: v.ConfirmedTranscriptHash,
			}
			for _, m := range []*wire.PublicMessage{pp.PublicMessage, cp.PublicMessage} {
				if err := m.AuthenticatedContent().VerifySignature(s, v.SignaturePub, ctx); err != nil {
					t.Errorf("content type %d: %v", m.Content.ContentType, err)
				}
				tbm, err := m.TBM(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if tag := s.MAC(v.MembershipKey, tbm); !bytes.Equal(tag, m.MembershipTag) {
					t.Errorf("content type %d: membership tag %x, want %x", m.Content.ContentType, tag, m.MembershipTag)
				}
			}
		})
	}
	tally.Report(t)
}

func suiteHash(t *testing.T, id uint16) hash.Hash {
	switch id {
	case 1, 2, 3:
		return sha256.New()
	case 7:
		return sha512.New384()
	case 4, 5, 6:
		return sha512.New()
	}
	t.Fatalf("unknown suite %d", id)
	return nil
}

// TestVectorsTranscriptHashInputs checks ConfirmedTranscriptHashInput and
// InterimTranscriptHashInput (RFC 9420, Section 8.2) against
// transcript-hashes.json, hashing with the standard library.
func TestVectorsTranscriptHashInputs(t *testing.T) {
	var vs []struct {
		CipherSuite                  uint16      `json:"cipher_suite"`
		AuthenticatedContent         vectors.Hex `json:"authenticated_content"`
		InterimTranscriptHashBefore  vectors.Hex `json:"interim_transcript_hash_before"`
		ConfirmedTranscriptHashAfter vectors.Hex `json:"confirmed_transcript_hash_after"`
		InterimTranscriptHashAfter   vectors.Hex `json:"interim_transcript_hash_after"`
	}
	vectors.Load(t, "transcript-hashes.json", &vs)
	tally := vectors.NewTally("wire-decode", "transcript-hashes.json")
	for i, v := range vs {
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			ac := roundTrip(t, "authenticated_content", v.AuthenticatedContent, func() *wire.AuthenticatedContent {
				return new(wire.AuthenticatedContent)
			})
			in, err := wire.ConfirmedTranscriptHashInput(ac.WireFormat, &ac.Content, ac.Auth.Signature)
			if err != nil {
				t.Fatal(err)
			}
			h := suiteHash(t, v.CipherSuite)
			h.Write(v.InterimTranscriptHashBefore)
			h.Write(in)
			confirmed := h.Sum(nil)
			if !bytes.Equal(confirmed, v.ConfirmedTranscriptHashAfter) {
				t.Fatalf("confirmed transcript hash %x, want %x", confirmed, v.ConfirmedTranscriptHashAfter)
			}
			in2, err := wire.InterimTranscriptHashInput(ac.Auth.ConfirmationTag)
			if err != nil {
				t.Fatal(err)
			}
			h.Reset()
			h.Write(confirmed)
			h.Write(in2)
			if got := h.Sum(nil); !bytes.Equal(got, v.InterimTranscriptHashAfter) {
				t.Fatalf("interim transcript hash %x, want %x", got, v.InterimTranscriptHashAfter)
			}
		})
	}
	tally.Report(t)
}
