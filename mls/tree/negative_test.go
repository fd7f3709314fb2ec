package tree

import (
	"errors"
	"testing"
	"time"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

var ctx = &Context{GroupID: testGroupID}

// TestValidateLeafNodeNegative has one case per MUST of RFC 9420, Section
// 7.3, each with a tampered LeafNode and the specific sentinel.
func TestValidateLeafNodeNegative(t *testing.T) {
	g := newGroup(t, 4)
	g.commit(t, 0, nil)
	s := g.s
	cand := func(i int) *member { return newMember(t, s, i, true) }
	free := g.t.LeftmostBlankLeaf()
	reqCaps := func(rc *wire.RequiredCapabilities) *Context {
		e, err := wire.NewRequiredCapabilitiesExtension(rc)
		if err != nil {
			t.Fatal(err)
		}
		return &Context{GroupID: testGroupID, Extensions: []wire.Extension{e}}
	}
	// A well-formed update leaf for member 2.
	updateFor := func(l treemath.LeafIndex, encSeed int) *wire.LeafNode {
		m := g.members[l]
		ln := copyLeaf(m.leaf)
		_, pub, err := s.DeriveHPKEKey(seed("update", encSeed))
		if err != nil {
			t.Fatal(err)
		}
		ln.EncryptionKey = pub
		ln.Source = wire.LeafNodeSourceUpdate
		ln.Lifetime = nil
		ln.ParentHash = nil
		if err := ln.Sign(s, m.sigPriv, testGroupID, uint32(l)); err != nil {
			t.Fatal(err)
		}
		return ln
	}

	cases := []struct {
		name string
		ln   func() *wire.LeafNode
		use  LeafUse
		at   treemath.LeafIndex
		c    *Context
		want error
	}{
		{"valid key package leaf", func() *wire.LeafNode { return cand(10).leaf }, UseKeyPackage, free, ctx, nil},
		{"valid update", func() *wire.LeafNode { return updateFor(2, 1) }, UseUpdate, 2, ctx, nil},
		{"bad signature", func() *wire.LeafNode {
			ln := cand(10).leaf
			ln.Signature[0] ^= 1
			return ln
		}, UseKeyPackage, free, ctx, ErrLeafSignature},
		{"signature over another leaf index", func() *wire.LeafNode { return updateFor(2, 1) }, UseUpdate, 3, ctx, ErrLeafSignature},
		{"signature over another group", func() *wire.LeafNode { return updateFor(2, 1) }, UseUpdate, 2, &Context{GroupID: []byte("other")}, ErrLeafSignature},
		{"duplicate encryption key", func() *wire.LeafNode {
			m := cand(10)
			m.leaf.EncryptionKey = g.members[1].leaf.EncryptionKey
			m.resign(t, s, 0)
			return m.leaf
		}, UseKeyPackage, free, ctx, ErrDuplicateEncryptionKey},
		{"encryption key of a parent node", func() *wire.LeafNode {
			m := cand(10)
			m.leaf.EncryptionKey = g.t.ParentNode(1).EncryptionKey
			m.resign(t, s, 0)
			return m.leaf
		}, UseKeyPackage, free, ctx, ErrDuplicateEncryptionKey},
		{"duplicate signature key", func() *wire.LeafNode {
			m := cand(10)
			m.sigPriv = g.members[3].sigPriv
			m.leaf.SignatureKey = g.members[3].leaf.SignatureKey
			m.resign(t, s, 0)
			return m.leaf
		}, UseKeyPackage, free, ctx, ErrDuplicateSignatureKey},
		{"update keeps the encryption key", func() *wire.LeafNode {
			m := g.members[2]
			ln := copyLeaf(m.leaf)
			ln.Source = wire.LeafNodeSourceUpdate
			ln.Lifetime = nil
			if err := ln.Sign(s, m.sigPriv, testGroupID, 2); err != nil {
				t.Fatal(err)
			}
			return ln
		}, UseUpdate, 2, ctx, ErrEncryptionKeyNotUpdated},
		{"key package leaf used in an update", func() *wire.LeafNode { return cand(10).leaf }, UseUpdate, 2, ctx, ErrWrongLeafSource},
		{"update leaf used in a commit", func() *wire.LeafNode { return updateFor(2, 1) }, UseCommit, 2, ctx, ErrWrongLeafSource},
		{"update leaf used in a key package", func() *wire.LeafNode { return updateFor(2, 1) }, UseKeyPackage, free, ctx, ErrWrongLeafSource},
		{"lifetime expired", func() *wire.LeafNode { return cand(10).leaf }, UseKeyPackage, free,
			&Context{GroupID: testGroupID, Now: time.Unix(2001, 0)}, ErrLifetimeInvalid},
		{"lifetime not yet valid", func() *wire.LeafNode { return cand(10).leaf }, UseKeyPackage, free,
			&Context{GroupID: testGroupID, Now: time.Unix(999, 0)}, ErrLifetimeInvalid},
		{"lifetime within bounds", func() *wire.LeafNode { return cand(10).leaf }, UseKeyPackage, free,
			&Context{GroupID: testGroupID, Now: time.Unix(1500, 0)}, nil},
		{"lifetime too long", func() *wire.LeafNode { return cand(10).leaf }, UseKeyPackage, free,
			&Context{GroupID: testGroupID, MaxLifetime: 999 * time.Second}, ErrLifetimeTooLong},
		{"credential type unsupported by members", func() *wire.LeafNode {
			m := cand(10)
			m.leaf.Credential = wire.Credential{Type: wire.CredentialX509, Certificates: [][]byte{{1, 2, 3}}}
			m.leaf.Capabilities.Credentials = []wire.CredentialType{wire.CredentialBasic, wire.CredentialX509}
			m.resign(t, s, 0)
			return m.leaf
		}, UseKeyPackage, free, ctx, ErrUnsupportedCredential},
		{"credential type in use not supported by leaf", func() *wire.LeafNode {
			m := cand(10)
			m.leaf.Capabilities.Credentials = []wire.CredentialType{wire.CredentialX509}
			m.resign(t, s, 0)
			return m.leaf
		}, UseKeyPackage, free, ctx, ErrUnsupportedCredential},
		{"missing required extension", func() *wire.LeafNode { return cand(10).leaf }, UseKeyPackage, free,
			reqCaps(&wire.RequiredCapabilities{ExtensionTypes: []wire.ExtensionType{0xff00}}), ErrMissingRequiredCapability},
		{"missing required proposal", func() *wire.LeafNode { return cand(10).leaf }, UseKeyPackage, free,
			reqCaps(&wire.RequiredCapabilities{ProposalTypes: []wire.ProposalType{0xff00}}), ErrMissingRequiredCapability},
		{"missing required credential", func() *wire.LeafNode { return cand(10).leaf }, UseKeyPackage, free,
			reqCaps(&wire.RequiredCapabilities{CredentialTypes: []wire.CredentialType{wire.CredentialX509}}), ErrMissingRequiredCapability},
		{"required default types need no listing", func() *wire.LeafNode { return cand(10).leaf }, UseKeyPackage, free,
			reqCaps(&wire.RequiredCapabilities{ExtensionTypes: []wire.ExtensionType{wire.ExtensionExternalSenders}, ProposalTypes: []wire.ProposalType{wire.ProposalReInit}}), nil},
		{"malformed required_capabilities", func() *wire.LeafNode { return cand(10).leaf }, UseKeyPackage, free,
			&Context{Extensions: []wire.Extension{{Type: wire.ExtensionRequiredCapabilities, Data: []byte{5}}}}, ErrRequiredCapabilities},
		{"extension not in capabilities", func() *wire.LeafNode {
			m := cand(10)
			m.leaf.Extensions = []wire.Extension{{Type: 0xff01, Data: []byte{1}}}
			m.resign(t, s, 0)
			return m.leaf
		}, UseKeyPackage, free, ctx, ErrUnsupportedExtension},
		{"extension listed in capabilities", func() *wire.LeafNode {
			m := cand(10)
			m.leaf.Extensions = []wire.Extension{{Type: 0xff01, Data: []byte{1}}}
			m.leaf.Capabilities.Extensions = []wire.ExtensionType{0xff01}
			m.resign(t, s, 0)
			return m.leaf
		}, UseKeyPackage, free, ctx, nil},
		{"credential rejected", func() *wire.LeafNode { return cand(10).leaf }, UseKeyPackage, free,
			&Context{VerifyCredential: func(*wire.LeafNode) error { return errors.New("revoked") }}, ErrCredentialInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := g.t.ValidateLeafNode(c.ln(), c.use, c.at, c.c)
			if c.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestValidateTreeNegative tampers with valid trees and checks that the
// joiner's validation (RFC 9420, Sections 7.9.2 and 12.4.3.1) reports the
// specific violation. The tampered tree's own hash is passed so that the
// tree hash check passes, except in the tree hash case.
func TestValidateTreeNegative(t *testing.T) {
	// addOnly: 5 members, all parents blank (so leaf tampering cannot break
	// parent hashes). full: 8 members, commits by 0 and 4, then 2 adds:
	// parents with unmerged leaves.
	addOnly := newGroup(t, 5)
	full := newGroup(t, 6)
	full.commit(t, 0, nil)
	full.commit(t, 4, nil)
	full.add(t, newMember(t, full.s, 6, true))
	full.add(t, newMember(t, full.s, 7, true))
	full.commit(t, 2, nil)
	for name, g := range map[string]*group{"addOnly": addOnly, "full": full} {
		h, _ := g.t.TreeHash()
		if err := g.t.Validate(h, ctx); err != nil {
			t.Fatalf("%s: valid tree rejected: %v", name, err)
		}
	}
	// full now has leaves 0-7 and non-blank parents 1, 3, 5, 7 (by
	// leaves 0 and 2) and 9 (by leaf 4); 11 and 13 are blank.
	for _, x := range []treemath.NodeIndex{1, 3, 5, 7, 9} {
		if full.t.ParentNode(x) == nil {
			t.Fatalf("setup: node %d blank", x)
		}
	}
	s := addOnly.s

	type tcase struct {
		name string
		g    *group
		edit func(rt wire.RatchetTree)
		hash []byte // nil: use the tampered tree's own hash
		c    *Context
		want error
	}
	leafEdit := func(g *group, l treemath.LeafIndex, f func(ln *wire.LeafNode, m *member)) func(rt wire.RatchetTree) {
		return func(rt wire.RatchetTree) {
			m := g.members[l]
			ln := copyLeaf(rt[l.Node()].Leaf)
			f(ln, m)
			rt[l.Node()] = &wire.Node{Leaf: ln}
		}
	}
	resign := func(ln *wire.LeafNode, priv []byte, l treemath.LeafIndex) {
		if err := ln.Sign(s, priv, testGroupID, uint32(l)); err != nil {
			t.Fatal(err)
		}
	}
	parentEdit := func(x treemath.NodeIndex, f func(p *wire.ParentNode)) func(rt wire.RatchetTree) {
		return func(rt wire.RatchetTree) {
			p := copyParent(rt[x].Parent)
			f(p)
			rt[x] = &wire.Node{Parent: p}
		}
	}
	cases := []tcase{
		{"tree hash mismatch", addOnly, func(wire.RatchetTree) {}, []byte("not the tree hash"), ctx, ErrTreeHashMismatch},
		{"bad leaf signature", addOnly, leafEdit(addOnly, 1, func(ln *wire.LeafNode, _ *member) {
			ln.Signature = append([]byte(nil), ln.Signature...)
			ln.Signature[3] ^= 0x40
		}), nil, ctx, ErrLeafSignature},
		{"leaf content changed without re-signing", addOnly, leafEdit(addOnly, 1, func(ln *wire.LeafNode, _ *member) {
			ln.Credential.Identity = []byte("mallory")
		}), nil, ctx, ErrLeafSignature},
		{"commit leaf signed for another group", full, leafEdit(full, 2, func(ln *wire.LeafNode, m *member) {
			if err := ln.Sign(s, m.sigPriv, []byte("other group"), 2); err != nil {
				t.Fatal(err)
			}
		}), nil, ctx, ErrLeafSignature},
		{"duplicate encryption key", addOnly, leafEdit(addOnly, 2, func(ln *wire.LeafNode, m *member) {
			ln.EncryptionKey = addOnly.members[1].leaf.EncryptionKey
			resign(ln, m.sigPriv, 2)
		}), nil, ctx, ErrDuplicateEncryptionKey},
		{"duplicate signature key", addOnly, leafEdit(addOnly, 2, func(ln *wire.LeafNode, _ *member) {
			ln.SignatureKey = addOnly.members[1].leaf.SignatureKey
			resign(ln, addOnly.members[1].sigPriv, 2)
		}), nil, ctx, ErrDuplicateSignatureKey},
		{"lifetime expired", addOnly, func(wire.RatchetTree) {}, nil, &Context{GroupID: testGroupID, Now: time.Unix(5000, 0)}, ErrLifetimeInvalid},
		{"unsupported credential type", addOnly, leafEdit(addOnly, 3, func(ln *wire.LeafNode, m *member) {
			ln.Credential = wire.Credential{Type: wire.CredentialX509, Certificates: [][]byte{{0x30}}}
			ln.Capabilities.Credentials = []wire.CredentialType{wire.CredentialBasic, wire.CredentialX509}
			resign(ln, m.sigPriv, 3)
		}), nil, ctx, ErrUnsupportedCredential},
		{"missing required capability", addOnly, func(wire.RatchetTree) {}, nil, func() *Context {
			e, _ := wire.NewRequiredCapabilitiesExtension(&wire.RequiredCapabilities{ExtensionTypes: []wire.ExtensionType{0x0a0a}})
			return &Context{GroupID: testGroupID, Extensions: []wire.Extension{e}}
		}(), ErrMissingRequiredCapability},
		{"parent hash field tampered", full, parentEdit(7, func(p *wire.ParentNode) {
			p.ParentHash = []byte("bogus")
		}), nil, ctx, ErrParentHashInvalid},
		{"parent encryption key replaced", full, parentEdit(3, func(p *wire.ParentNode) {
			_, pub, _ := s.DeriveHPKEKey(seed("attacker", 0))
			p.EncryptionKey = pub
		}), nil, ctx, ErrParentHashInvalid},
		{"injected parent node", addOnly, func(rt wire.RatchetTree) {
			_, pub, _ := s.DeriveHPKEKey(seed("attacker", 1))
			rt[1] = &wire.Node{Parent: &wire.ParentNode{EncryptionKey: pub}}
		}, nil, ctx, ErrParentHashInvalid},
		{"unmerged leaf not a descendant", full, parentEdit(5, func(p *wire.ParentNode) {
			p.UnmergedLeaves = []uint32{0}
		}), nil, ctx, ErrUnmergedLeafNotDescendant},
		{"unmerged leaf out of range", full, parentEdit(5, func(p *wire.ParentNode) {
			p.UnmergedLeaves = []uint32{1 << 20}
		}), nil, ctx, ErrUnmergedLeafNotDescendant},
		{"unmerged leaves unsorted", full, parentEdit(7, func(p *wire.ParentNode) {
			p.UnmergedLeaves = []uint32{7, 6}
		}), nil, ctx, ErrUnmergedLeavesUnsorted},
		{"unmerged leaf missing at intermediate node", full, parentEdit(7, func(p *wire.ParentNode) {
			p.UnmergedLeaves = []uint32{4} // node 11 (between leaf 4 and 7) does not list it
		}), nil, ctx, ErrUnmergedLeafMissing},
		{"trailing blank leaves not truncated", addOnly, nil, nil, ctx, ErrNotTruncated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tr *Tree
			var h []byte
			if c.edit == nil {
				// A tree whose last node is a parent over blank leaves:
				// [A, P, _] padded to 2 leaves with leaf 1 blank.
				rt := wire.RatchetTree{{Leaf: c.g.members[0].leaf}, {Parent: &wire.ParentNode{EncryptionKey: []byte("p")}}}
				var err error
				if tr, err = FromRatchetTree(s, rt); err != nil {
					t.Fatal(err)
				}
				h, _ = tr.TreeHash()
			} else {
				tr, h = rebuild(t, c.g.t, c.edit)
			}
			if c.hash != nil {
				h = c.hash
			}
			if err := tr.Validate(h, c.c); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}

	// An unmerged leaf that is blank: remove leaf 6 by editing the tree
	// directly while node 7 still lists it.
	t.Run("unmerged leaf blank", func(t *testing.T) {
		g := newGroup(t, 4)
		g.commit(t, 0, nil)
		g.add(t, newMember(t, g.s, 4, true)) // tree grows; root 7 blank
		g.commit(t, 1, nil)                  // root 7 set
		g.add(t, newMember(t, g.s, 5, true)) // leaf 5 unmerged at 7
		g.add(t, newMember(t, g.s, 6, true)) // leaf 6 too (keeps 5 from being last)
		tr, h := rebuild(t, g.t, func(rt wire.RatchetTree) {
			if p := rt[7].Parent; len(p.UnmergedLeaves) != 2 || p.UnmergedLeaves[0] != 5 {
				t.Fatalf("setup: root unmerged %v", p.UnmergedLeaves)
			}
			rt[10] = nil
		})
		if err := tr.Validate(h, ctx); !errors.Is(err, ErrUnmergedLeafBlank) {
			t.Fatalf("got %v, want ErrUnmergedLeafBlank", err)
		}
	})

	// Wire level: a ratchet_tree whose last node is blank.
	t.Run("trailing blank node", func(t *testing.T) {
		rt := addOnly.t.RatchetTree()
		rt = append(rt, nil, nil)
		b, err := codec.Marshal(&rt)
		if err != nil {
			t.Fatal(err)
		}
		var dec wire.RatchetTree
		if err := codec.Unmarshal(b, "ratchet_tree", &dec); err != nil {
			t.Fatal(err)
		}
		if _, err := FromRatchetTree(s, dec); !errors.Is(err, ErrTrailingBlank) {
			t.Fatalf("got %v, want ErrTrailingBlank", err)
		}
	})
}

// TestMergeUpdatePathNegative checks the UpdatePath checks of RFC 9420,
// Sections 7.6, 7.9.2 and 12.4.2: on every failure the tree is unchanged.
func TestMergeUpdatePathNegative(t *testing.T) {
	g := newGroup(t, 6)
	g.commit(t, 0, nil)
	base := g.t.Clone()
	baseHash, _ := base.TreeHash()
	s := g.s
	sender := treemath.LeafIndex(3)
	m := g.members[sender]

	fresh := func() *wire.UpdatePath {
		tr := base.Clone()
		pp, err := tr.GenerateUpdatePath(&PathParams{Leaf: sender, SignaturePriv: m.sigPriv, GroupID: testGroupID})
		if err != nil {
			t.Fatal(err)
		}
		h, _ := tr.TreeHash()
		p, err := pp.Encrypt(g.groupContext(t, h))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	resignPath := func(p *wire.UpdatePath) {
		if err := p.LeafNode.Sign(s, m.sigPriv, testGroupID, uint32(sender)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		tamper func(p *wire.UpdatePath)
		from   treemath.LeafIndex
		want   error
	}{
		{"valid", func(*wire.UpdatePath) {}, sender, nil},
		{"bad leaf signature", func(p *wire.UpdatePath) { p.LeafNode.Signature[0] ^= 1 }, sender, ErrLeafSignature},
		{"wrong sender index", func(*wire.UpdatePath) {}, 4, ErrLeafSignature},
		{"leaf source update", func(p *wire.UpdatePath) {
			p.LeafNode.Source = wire.LeafNodeSourceUpdate
			p.LeafNode.ParentHash = nil
			resignPath(p)
		}, sender, ErrWrongLeafSource},
		{"parent hash mismatch", func(p *wire.UpdatePath) {
			p.LeafNode.ParentHash = append([]byte(nil), p.LeafNode.ParentHash...)
			p.LeafNode.ParentHash[0] ^= 1
			resignPath(p)
		}, sender, ErrParentHashMismatch},
		{"path key replaced (breaks parent hash)", func(p *wire.UpdatePath) {
			_, pub, _ := s.DeriveHPKEKey(seed("attacker", 2))
			p.Nodes[0].EncryptionKey = pub
		}, sender, ErrParentHashMismatch},
		{"path key already in the tree", func(p *wire.UpdatePath) {
			p.Nodes[0].EncryptionKey = base.ParentNode(3).EncryptionKey
		}, sender, ErrDuplicateEncryptionKey},
		{"path key repeated", func(p *wire.UpdatePath) {
			p.Nodes[1].EncryptionKey = p.Nodes[0].EncryptionKey
		}, sender, ErrDuplicateEncryptionKey},
		{"leaf key reused", func(p *wire.UpdatePath) {
			p.LeafNode.EncryptionKey = base.Leaf(sender).EncryptionKey
			resignPath(p)
		}, sender, ErrEncryptionKeyNotUpdated},
		{"leaf key of another member", func(p *wire.UpdatePath) {
			p.LeafNode.EncryptionKey = base.Leaf(1).EncryptionKey
			resignPath(p)
		}, sender, ErrDuplicateEncryptionKey},
		{"missing path node", func(p *wire.UpdatePath) { p.Nodes = p.Nodes[:len(p.Nodes)-1] }, sender, ErrPathLength},
		{"extra ciphertext", func(p *wire.UpdatePath) {
			p.Nodes[0].EncryptedPathSecret = append(p.Nodes[0].EncryptedPathSecret, p.Nodes[0].EncryptedPathSecret...)
		}, sender, ErrCiphertextCount},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := fresh()
			c.tamper(p)
			tr := base.Clone()
			_, err := tr.MergeUpdatePath(c.from, p, ctx, nil)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if h, _ := tr.TreeHash(); string(h) != string(baseHash) {
				t.Fatalf("tree changed by a failed merge")
			}
		})
	}
}

// TestDecryptNegative covers the receiver-side failures of RFC 9420,
// Section 7.5.
func TestDecryptNegative(t *testing.T) {
	g := newGroup(t, 4)
	g.commit(t, 0, nil)
	g.commit(t, 2, nil) // sets 5 and 3; node 1 stays from leaf 0's commit
	base := g.t.Clone()
	sender := treemath.LeafIndex(0)

	tr := base.Clone()
	pp, err := tr.GenerateUpdatePath(&PathParams{Leaf: sender, SignaturePriv: g.members[sender].sigPriv, GroupID: testGroupID})
	if err != nil {
		t.Fatal(err)
	}
	// Sabotage: encrypt a different secret for node 3 (the root), so leaves
	// 2 and 3 derive a key that differs from the UpdatePath's.
	i := len(pp.secrets) - 1
	pp.secrets[i] = append([]byte(nil), pp.secrets[i]...)
	pp.secrets[i][0] ^= 1
	h, _ := tr.TreeHash()
	gc := g.groupContext(t, h)
	path, err := pp.Encrypt(gc)
	if err != nil {
		t.Fatal(err)
	}
	rt := base.Clone()
	mp, err := rt.MergeUpdatePath(sender, path, ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mp.Decrypt(g.privs[2], gc); !errors.Is(err, ErrPathKeyMismatch) {
		t.Fatalf("sabotaged secret: %v, want ErrPathKeyMismatch", err)
	}
	// Leaf 1 decrypts node 1's (intact) secret, then derives a root key
	// that matches, since it derives rather than decrypts the root.
	if _, err := mp.Decrypt(g.privs[1], gc); err != nil {
		t.Fatalf("leaf 1: %v", err)
	}
	// Without the key of node 5 (it only holds its leaf) leaf 2 cannot
	// decrypt.
	bare, err := NewPrivateState(g.s, 2, g.members[2].encPriv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mp.Decrypt(bare, gc); !errors.Is(err, ErrNoDecryptionKey) {
		t.Fatalf("no key: %v, want ErrNoDecryptionKey", err)
	}
	if _, err := mp.Decrypt(g.privs[0], gc); !errors.Is(err, ErrOwnPath) {
		t.Fatalf("own path: %v, want ErrOwnPath", err)
	}
	if _, err := mp.Decrypt(g.privs[1], []byte("wrong context")); !errors.Is(err, ErrPathDecrypt) {
		t.Fatalf("wrong context: %v, want ErrPathDecrypt", err)
	}
	// A private key that does not match the tree is caught by Check.
	wrong, err := NewPrivateState(g.s, 1, g.members[2].encPriv)
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Check(base); !errors.Is(err, ErrPrivateKeyMismatch) {
		t.Fatalf("Check: %v, want ErrPrivateKeyMismatch", err)
	}
	if err := wrong.SetPathSecret(5, []byte("x")); !errors.Is(err, ErrNotOnPath) {
		t.Fatalf("SetPathSecret off path: %v, want ErrNotOnPath", err)
	}
}
