package tree_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// decodeTree decodes an encoded ratchet_tree and builds a Tree.
func decodeTree(t testing.TB, s *cipher.Suite, b []byte) *tree.Tree {
	t.Helper()
	var rt wire.RatchetTree
	if err := codec.Unmarshal(b, "ratchet_tree", &rt); err != nil {
		t.Fatalf("decoding ratchet tree: %v", err)
	}
	tr, err := tree.FromRatchetTree(s, rt)
	if err != nil {
		t.Fatalf("FromRatchetTree: %v", err)
	}
	return tr
}

func encodeTree(t testing.TB, tr *tree.Tree) []byte {
	t.Helper()
	rt := tr.RatchetTree()
	b, err := codec.Marshal(&rt)
	if err != nil {
		t.Fatalf("encoding ratchet tree: %v", err)
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

func treeHash(t testing.TB, tr *tree.Tree) []byte {
	t.Helper()
	h, err := tr.TreeHash()
	if err != nil {
		t.Fatalf("TreeHash: %v", err)
	}
	return h
}

type treeOpsVector struct {
	CipherSuite    uint16      `json:"cipher_suite"`
	TreeBefore     vectors.Hex `json:"tree_before"`
	Proposal       vectors.Hex `json:"proposal"`
	ProposalSender uint32      `json:"proposal_sender"`
	TreeHashBefore vectors.Hex `json:"tree_hash_before"`
	TreeAfter      vectors.Hex `json:"tree_after"`
	TreeHashAfter  vectors.Hex `json:"tree_hash_after"`
}

func TestVectorsTreeOperations(t *testing.T) {
	var vs []treeOpsVector
	vectors.Load(t, "tree-operations.json", &vs)
	tally := vectors.NewTally("vectors", "tree-operations.json")
	for i, v := range vs {
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			s := lookup(t, v.CipherSuite)
			tr := decodeTree(t, s, v.TreeBefore)
			if h := treeHash(t, tr); !bytes.Equal(h, v.TreeHashBefore) {
				t.Fatalf("tree hash before = %x, want %x", h, v.TreeHashBefore)
			}
			var p wire.Proposal
			if err := codec.Unmarshal(v.Proposal, "Proposal", &p); err != nil {
				t.Fatalf("decoding proposal: %v", err)
			}
			var err error
			switch b := p.Body.(type) {
			case *wire.Add:
				_, err = tr.AddLeaf(&b.KeyPackage.LeafNode)
			case *wire.Update:
				err = tr.UpdateLeaf(treemath.LeafIndex(v.ProposalSender), &b.LeafNode)
			case *wire.Remove:
				err = tr.RemoveLeaf(treemath.LeafIndex(b.Removed))
			default:
				t.Fatalf("unexpected proposal type %d", p.Type)
			}
			if err != nil {
				t.Fatalf("applying %d: %v", p.Type, err)
			}
			if got := encodeTree(t, tr); !bytes.Equal(got, v.TreeAfter) {
				t.Fatalf("tree after mismatch (proposal type %d)\n got %x\nwant %x", p.Type, got, []byte(v.TreeAfter))
			}
			if h := treeHash(t, tr); !bytes.Equal(h, v.TreeHashAfter) {
				t.Fatalf("tree hash after = %x, want %x", h, v.TreeHashAfter)
			}
			// The incrementally maintained hash equals a from-scratch one.
			if h := treeHash(t, decodeTree(t, s, v.TreeAfter)); !bytes.Equal(h, v.TreeHashAfter) {
				t.Fatalf("fresh tree hash after = %x, want %x", h, v.TreeHashAfter)
			}
		})
	}
	tally.Report(t)
}

type treeValidationVector struct {
	CipherSuite uint16        `json:"cipher_suite"`
	Tree        vectors.Hex   `json:"tree"`
	GroupID     vectors.Hex   `json:"group_id"`
	Resolutions [][]uint32    `json:"resolutions"`
	TreeHashes  []vectors.Hex `json:"tree_hashes"`
}

func TestVectorsTreeValidation(t *testing.T) {
	var vs []treeValidationVector
	vectors.Load(t, "tree-validation.json", &vs)
	tally := vectors.NewTally("vectors", "tree-validation.json")
	for i, v := range vs {
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			s := lookup(t, v.CipherSuite)
			tr := decodeTree(t, s, v.Tree)
			if int(tr.NodeCount()) != len(v.Resolutions) || len(v.TreeHashes) != len(v.Resolutions) {
				t.Fatalf("node count %d, vector has %d resolutions and %d hashes", tr.NodeCount(), len(v.Resolutions), len(v.TreeHashes))
			}
			for x := range v.Resolutions {
				res := tr.Resolution(treemath.NodeIndex(x))
				want := v.Resolutions[x]
				if len(res) != len(want) {
					t.Fatalf("resolution(%d) = %v, want %v", x, res, want)
				}
				for k := range res {
					if uint32(res[k]) != want[k] {
						t.Fatalf("resolution(%d) = %v, want %v", x, res, want)
					}
				}
				h, err := tr.NodeHash(treemath.NodeIndex(x))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(h, v.TreeHashes[x]) {
					t.Fatalf("tree hash(%d) = %x, want %x", x, h, v.TreeHashes[x])
				}
			}
			if err := tr.VerifyParentHashes(); err != nil {
				t.Fatalf("parent hashes: %v", err)
			}
			// The full joiner validation of RFC 9420, Section 12.4.3.1,
			// including every leaf signature with group_id as context.
			root := v.TreeHashes[treemath.Root(tr.LeafCount())]
			if err := tr.Validate(root, &tree.Context{GroupID: v.GroupID}); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			// Round trip.
			if got := encodeTree(t, tr); !bytes.Equal(got, v.Tree) {
				t.Fatalf("re-encoded tree differs")
			}
		})
	}
	tally.Report(t)
}

type treeKEMVector struct {
	CipherSuite             uint16      `json:"cipher_suite"`
	GroupID                 vectors.Hex `json:"group_id"`
	Epoch                   uint64      `json:"epoch"`
	ConfirmedTranscriptHash vectors.Hex `json:"confirmed_transcript_hash"`
	RatchetTree             vectors.Hex `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32      `json:"index"`
		EncryptionPriv vectors.Hex `json:"encryption_priv"`
		SignaturePriv  vectors.Hex `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32      `json:"node"`
			PathSecret vectors.Hex `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32        `json:"sender"`
		UpdatePath    vectors.Hex   `json:"update_path"`
		PathSecrets   []vectors.Hex `json:"path_secrets"`
		CommitSecret  vectors.Hex   `json:"commit_secret"`
		TreeHashAfter vectors.Hex   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

// groupContext encodes the provisional GroupContext of the TreeKEM vectors.
func (v *treeKEMVector) groupContext(t testing.TB, treeHash []byte) []byte {
	t.Helper()
	gc := &wire.GroupContext{
		Version:                 wire.MLS10,
		CipherSuite:             cipher.SuiteID(v.CipherSuite),
		GroupID:                 v.GroupID,
		Epoch:                   v.Epoch,
		TreeHash:                treeHash,
		ConfirmedTranscriptHash: v.ConfirmedTranscriptHash,
	}
	b, err := codec.Marshal(gc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectorsTreeKEM(t *testing.T) {
	var vs []treeKEMVector
	vectors.Load(t, "treekem.json", &vs)
	tally := vectors.NewTally("vectors", "treekem.json")
	for i := range vs {
		v := &vs[i]
		tally.Run(t, vectors.CaseName(v.CipherSuite, i), func(t *testing.T) {
			runTreeKEM(t, v)
		})
	}
	tally.Report(t)
}

func runTreeKEM(t *testing.T, v *treeKEMVector) {
	s := lookup(t, v.CipherSuite)
	base := decodeTree(t, s, v.RatchetTree)
	ctx := &tree.Context{GroupID: v.GroupID}
	if err := base.Validate(nil, ctx); err != nil {
		t.Fatalf("Validate: %v", err)
	}

	privs := map[treemath.LeafIndex]*tree.PrivateState{}
	sigPrivs := map[treemath.LeafIndex][]byte{}
	for _, lp := range v.LeavesPrivate {
		l := treemath.LeafIndex(lp.Index)
		p, err := tree.NewPrivateState(s, l, lp.EncryptionPriv)
		if err != nil {
			t.Fatalf("leaf %d: %v", l, err)
		}
		for _, ps := range lp.PathSecrets {
			if err := p.SetPathSecret(treemath.NodeIndex(ps.Node), ps.PathSecret); err != nil {
				t.Fatalf("leaf %d node %d: %v", l, ps.Node, err)
			}
		}
		if err := p.Check(base); err != nil {
			t.Fatalf("private state of leaf %d inconsistent: %v", l, err)
		}
		privs[l] = p
		sigPrivs[l] = lp.SignaturePriv
	}
	for l := range base.Leaves() {
		if privs[l] == nil {
			t.Fatalf("no private state for non-blank leaf %d", l)
		}
	}

	for k, up := range v.UpdatePaths {
		sender := treemath.LeafIndex(up.Sender)
		t.Run(fmt.Sprintf("path%d-from%d", k, sender), func(t *testing.T) {
			path, err := wire.UnmarshalUpdatePath(up.UpdatePath)
			if err != nil {
				t.Fatalf("decoding UpdatePath: %v", err)
			}
			tr := base.Clone()
			mp, err := tr.MergeUpdatePath(sender, path, ctx, nil)
			if err != nil {
				t.Fatalf("MergeUpdatePath: %v", err)
			}
			if h := treeHash(t, tr); !bytes.Equal(h, up.TreeHashAfter) {
				t.Fatalf("tree hash after = %x, want %x", h, up.TreeHashAfter)
			}
			if err := tr.VerifyParentHashes(); err != nil {
				t.Fatalf("parent hashes after merge: %v", err)
			}
			gc := v.groupContext(t, up.TreeHashAfter)
			for l, p := range privs {
				if l == sender {
					continue
				}
				d, err := mp.Decrypt(p, gc)
				if err != nil {
					t.Fatalf("leaf %d: Decrypt: %v", l, err)
				}
				if !bytes.Equal(d.PathSecret, up.PathSecrets[l]) {
					t.Fatalf("leaf %d: path secret %x, want %x", l, d.PathSecret, up.PathSecrets[l])
				}
				if !bytes.Equal(d.CommitSecret, up.CommitSecret) {
					t.Fatalf("leaf %d: commit secret %x, want %x", l, d.CommitSecret, up.CommitSecret)
				}
				if err := d.Private.Check(tr); err != nil {
					t.Fatalf("leaf %d: new private state: %v", l, err)
				}
			}
			// The base tree is untouched by operations on the clone.
			if h := treeHash(t, base); bytes.Equal(h, up.TreeHashAfter) {
				t.Fatalf("base tree changed by a clone")
			}

			// Our own UpdatePath from the same sender, processed by all.
			gen := base.Clone()
			pp, err := gen.GenerateUpdatePath(&tree.PathParams{Leaf: sender, SignaturePriv: sigPrivs[sender], GroupID: v.GroupID})
			if err != nil {
				t.Fatalf("GenerateUpdatePath: %v", err)
			}
			genHash := treeHash(t, gen)
			gc2 := v.groupContext(t, genHash)
			newPath, err := pp.Encrypt(gc2)
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			if k == 0 {
				if err := gen.Validate(genHash, ctx); err != nil {
					t.Fatalf("tree after own path invalid: %v", err)
				}
			} else if err := gen.VerifyParentHashes(); err != nil {
				t.Fatalf("tree after own path: %v", err)
			}
			if err := pp.PrivateState().Check(gen); err != nil {
				t.Fatalf("committer private state: %v", err)
			}
			// Through the wire encoding; the merge is public, so one merged
			// tree serves every receiver.
			enc, err := codec.Marshal(newPath)
			if err != nil {
				t.Fatal(err)
			}
			decoded, err := wire.UnmarshalUpdatePath(enc)
			if err != nil {
				t.Fatal(err)
			}
			rt := base.Clone()
			m, err := rt.MergeUpdatePath(sender, decoded, ctx, nil)
			if err != nil {
				t.Fatalf("merging own path: %v", err)
			}
			if h := treeHash(t, rt); !bytes.Equal(h, genHash) {
				t.Fatalf("tree hash %x, committer has %x", h, genHash)
			}
			wrongCtxTried := false
			for l, p := range privs {
				if l == sender {
					continue
				}
				d, err := m.Decrypt(p, gc2)
				if err != nil {
					t.Fatalf("leaf %d: decrypting own path: %v", l, err)
				}
				if !bytes.Equal(d.CommitSecret, pp.CommitSecret()) {
					t.Fatalf("leaf %d: commit secret %x, committer has %x", l, d.CommitSecret, pp.CommitSecret())
				}
				if !bytes.Equal(d.PathSecret, pp.PathSecret(d.Node)) {
					t.Fatalf("leaf %d: path secret mismatch at node %d", l, d.Node)
				}
				if err := d.Private.Check(rt); err != nil {
					t.Fatalf("leaf %d: new private state: %v", l, err)
				}
				if !wrongCtxTried {
					// The wrong group context fails to decrypt.
					wrongCtxTried = true
					if _, err := m.Decrypt(p, gc); !errors.Is(err, tree.ErrPathDecrypt) {
						t.Fatalf("leaf %d: decrypt with wrong context: %v, want ErrPathDecrypt", l, err)
					}
				}
			}
		})
	}
}
