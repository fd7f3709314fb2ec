package tree

import (
	"fmt"
	"github.com/openmimi/mimi/internal/mlstest"
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

var testGroupID = []byte("test group")

func suite1(tb testing.TB) *cipher.Suite { return mlstest.Suite(tb) }

// seed derives deterministic key material for member i.
var seed = mlstest.Seed

// member is a test client: keys and its key_package LeafNode.
type member struct {
	id      int
	sigPriv []byte
	encPriv []byte
	leaf    *wire.LeafNode
}

func defaultCaps() wire.Capabilities {
	return wire.Capabilities{
		Versions:     []wire.ProtocolVersion{wire.MLS10},
		CipherSuites: []cipher.SuiteID{cipher.X25519_AES128GCM_SHA256_Ed25519},
		Credentials:  []wire.CredentialType{wire.CredentialBasic},
	}
}

// newMember makes member i with deterministic keys and a signed
// key_package leaf. Signing can be skipped (sign=false) for benchmark
// trees whose leaves are never verified.
func newMember(tb testing.TB, s *cipher.Suite, i int, sign bool) *member {
	tb.Helper()
	m := &member{id: i, sigPriv: seed("sig", i)}
	sigPub, err := s.SignaturePublicKey(m.sigPriv)
	if err != nil {
		tb.Fatal(err)
	}
	encPriv, encPub, err := s.DeriveHPKEKey(seed("enc", i))
	if err != nil {
		tb.Fatal(err)
	}
	m.encPriv = encPriv
	m.leaf = &wire.LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  sigPub,
		Credential:    wire.Credential{Type: wire.CredentialBasic, Identity: fmt.Appendf(nil, "member-%d", i)},
		Capabilities:  defaultCaps(),
		Source:        wire.LeafNodeSourceKeyPackage,
		Lifetime:      &wire.Lifetime{NotBefore: 1000, NotAfter: 2000},
	}
	if sign {
		m.resign(tb, s, 0)
	}
	return m
}

// resign re-signs m.leaf (after a change) for leaf index at.
func (m *member) resign(tb testing.TB, s *cipher.Suite, at treemath.LeafIndex) {
	tb.Helper()
	if err := m.leaf.Sign(s, m.sigPriv, testGroupID, uint32(at)); err != nil {
		tb.Fatal(err)
	}
}

// group is a test group: a tree plus every member's private state.
type group struct {
	s       *cipher.Suite
	t       *Tree
	members map[treemath.LeafIndex]*member
	privs   map[treemath.LeafIndex]*PrivateState
	epoch   uint64
}

// newGroup adds n members with AddLeaf only (all parents blank).
func newGroup(tb testing.TB, n int) *group {
	tb.Helper()
	s := suite1(tb)
	g := &group{s: s, t: New(s), members: map[treemath.LeafIndex]*member{}, privs: map[treemath.LeafIndex]*PrivateState{}}
	for i := 0; i < n; i++ {
		g.add(tb, newMember(tb, s, i, true))
	}
	return g
}

func (g *group) add(tb testing.TB, m *member) treemath.LeafIndex {
	tb.Helper()
	l, err := g.t.AddLeaf(m.leaf)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := NewPrivateState(g.s, l, m.encPriv)
	if err != nil {
		tb.Fatal(err)
	}
	g.members[l], g.privs[l] = m, p
	return l
}

func (g *group) groupContext(tb testing.TB, treeHash []byte) []byte {
	tb.Helper()
	b, err := codec.Marshal(&wire.GroupContext{
		Version: wire.MLS10, CipherSuite: g.s.ID(), GroupID: testGroupID,
		Epoch: g.epoch, TreeHash: treeHash,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// commit has member from send a full UpdatePath; every other member
// processes it on its own clone. The group's tree becomes the committer's.
func (g *group) commit(tb testing.TB, from treemath.LeafIndex, newLeaves []treemath.LeafIndex) (*wire.UpdatePath, *PendingPath) {
	tb.Helper()
	before := g.t.Clone()
	pp, err := g.t.GenerateUpdatePath(&PathParams{Leaf: from, SignaturePriv: g.members[from].sigPriv, GroupID: testGroupID, NewLeaves: newLeaves})
	if err != nil {
		tb.Fatalf("GenerateUpdatePath: %v", err)
	}
	h, err := g.t.TreeHash()
	if err != nil {
		tb.Fatal(err)
	}
	gc := g.groupContext(tb, h)
	path, err := pp.Encrypt(gc)
	if err != nil {
		tb.Fatalf("Encrypt: %v", err)
	}
	rt := before.Clone()
	mp, err := rt.MergeUpdatePath(from, path, &Context{GroupID: testGroupID}, newLeaves)
	if err != nil {
		tb.Fatalf("MergeUpdatePath: %v", err)
	}
	if h2, _ := rt.TreeHash(); string(h2) != string(h) {
		tb.Fatalf("receiver tree hash differs")
	}
	for l, p := range g.privs {
		if l == from || containsLeaf(newLeaves, l) {
			continue
		}
		d, err := mp.Decrypt(p, gc)
		if err != nil {
			tb.Fatalf("leaf %d: Decrypt: %v", l, err)
		}
		if string(d.CommitSecret) != string(pp.CommitSecret()) {
			tb.Fatalf("leaf %d: commit secret mismatch", l)
		}
		g.privs[l] = d.Private
	}
	g.privs[from] = pp.PrivateState()
	g.members[from].leaf = pp.LeafNode()
	g.epoch++
	return path, pp
}

func containsLeaf(ls []treemath.LeafIndex, l treemath.LeafIndex) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

// rebuild exports t and re-imports it (for tampering tests).
func rebuild(tb testing.TB, t *Tree, edit func(rt wire.RatchetTree)) (*Tree, []byte) {
	tb.Helper()
	rt := t.RatchetTree()
	edit(rt)
	nt, err := FromRatchetTree(t.suite, rt)
	if err != nil {
		tb.Fatalf("FromRatchetTree: %v", err)
	}
	h, err := nt.TreeHash()
	if err != nil {
		tb.Fatal(err)
	}
	return nt, h
}

// copyLeaf returns a modifiable copy of a leaf node.
func copyLeaf(ln *wire.LeafNode) *wire.LeafNode {
	c := *ln
	return &c
}

// copyParent returns a modifiable copy of a parent node.
func copyParent(p *wire.ParentNode) *wire.ParentNode {
	c := *p
	c.UnmergedLeaves = append([]uint32(nil), p.UnmergedLeaves...)
	return &c
}
