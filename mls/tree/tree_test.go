package tree

import (
	"bytes"
	"errors"
	"math/bits"
	"slices"
	"testing"

	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

func TestAddExtendRemoveTruncate(t *testing.T) {
	g := newGroup(t, 1)
	if g.t.LeafCount() != 1 || g.t.NodeCount() != 1 {
		t.Fatalf("one member: %d leaves %d nodes", g.t.LeafCount(), g.t.NodeCount())
	}
	// Leaf counts while adding: 1, 2, 4, 4, 8, ...
	wantLeaves := []uint32{1, 2, 4, 4, 8, 8, 8, 8, 16}
	for i := 1; i < len(wantLeaves); i++ {
		l := g.add(t, newMember(t, g.s, i, true))
		if l != treemath.LeafIndex(i) {
			t.Fatalf("member %d placed at %d", i, l)
		}
		if g.t.LeafCount() != wantLeaves[i] {
			t.Fatalf("after %d adds: %d leaves, want %d", i+1, g.t.LeafCount(), wantLeaves[i])
		}
	}
	// Remove 3: leftmost blank leaf is reused by the next add.
	if err := g.t.RemoveLeaf(3); err != nil {
		t.Fatal(err)
	}
	if g.t.LeftmostBlankLeaf() != 3 {
		t.Fatalf("leftmost blank = %d", g.t.LeftmostBlankLeaf())
	}
	if err := g.t.RemoveLeaf(3); !errors.Is(err, ErrBlankLeaf) {
		t.Fatalf("removing a blank leaf: %v", err)
	}
	if err := g.t.RemoveLeaf(99); !errors.Is(err, ErrLeafIndex) {
		t.Fatalf("removing out of range: %v", err)
	}
	// Remove leaf 8 (the only one in the right half): 16 -> 8 leaves.
	if err := g.t.RemoveLeaf(8); err != nil {
		t.Fatal(err)
	}
	if g.t.LeafCount() != 8 {
		t.Fatalf("after removing leaf 8: %d leaves", g.t.LeafCount())
	}
	// Remove 7, 6, 5, 4: truncation to 4 only when the right half empties.
	for _, l := range []treemath.LeafIndex{7, 6, 5} {
		if err := g.t.RemoveLeaf(l); err != nil {
			t.Fatal(err)
		}
		if g.t.LeafCount() != 8 {
			t.Fatalf("after removing %d: %d leaves", l, g.t.LeafCount())
		}
	}
	if err := g.t.RemoveLeaf(4); err != nil {
		t.Fatal(err)
	}
	// Leaves 0,1,2 remain (3 blank): 4 leaves.
	if g.t.LeafCount() != 4 {
		t.Fatalf("after removing 4: %d leaves", g.t.LeafCount())
	}
	if err := g.t.Validate(nil, &Context{GroupID: testGroupID}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// The export omits trailing blanks and round-trips.
	rt := g.t.RatchetTree()
	if len(rt) != 5 || rt[len(rt)-1] == nil {
		t.Fatalf("export has %d nodes", len(rt))
	}
	back, err := FromRatchetTree(g.s, rt)
	if err != nil {
		t.Fatal(err)
	}
	h1, _ := g.t.TreeHash()
	h2, _ := back.TreeHash()
	if !bytes.Equal(h1, h2) || back.LeafCount() != 4 {
		t.Fatalf("round trip differs")
	}
}

func TestUnmergedLeavesAndResolution(t *testing.T) {
	g := newGroup(t, 4)
	g.commit(t, 0, nil) // parents 1 and 3 set; 5 stays blank (copath of 0 under 3 is 5 -> resolution {2,3})
	if g.t.ParentNode(1) == nil || g.t.ParentNode(3) == nil || g.t.ParentNode(5) != nil {
		t.Fatalf("unexpected parents after commit")
	}
	// Adding two members (tree grows to 8 leaves): leaf 4's direct path is
	// 5, 3, 7; node 3 is non-blank so it records leaf 4, then leaf 5.
	l4 := g.add(t, newMember(t, g.s, 4, true))
	l5 := g.add(t, newMember(t, g.s, 5, true))
	if l4 != 4 || l5 != 5 || g.t.LeafCount() != 8 {
		t.Fatalf("adds at %d,%d, %d leaves", l4, l5, g.t.LeafCount())
	}
	// Node 3 is not on leaves 4/5's path (they are under 11 and 7), so
	// nothing changes there; node 7 (new root) is blank.
	if p := g.t.ParentNode(3); len(p.UnmergedLeaves) != 0 {
		t.Fatalf("node 3 unmerged = %v", p.UnmergedLeaves)
	}
	// Member 4 commits: direct path 9, 11, 7, but 11's copath child 13 is
	// all blank, so only 9 and 7 are set. Adding 6 then records it at 7.
	g.commit(t, 4, nil)
	if g.t.ParentNode(9) == nil || g.t.ParentNode(11) != nil || g.t.ParentNode(7) == nil {
		t.Fatalf("unexpected parents after commit by 4")
	}
	l6 := g.add(t, newMember(t, g.s, 6, true))
	if l6 != 6 {
		t.Fatalf("add at %d", l6)
	}
	if p := g.t.ParentNode(7); p == nil || !slices.Equal(p.UnmergedLeaves, []uint32{6}) {
		t.Fatalf("node 7 unmerged = %v", p)
	}
	// Resolutions: 11 (blank) = res(9) + res(13) = [9, 12]; 7 = [7, 12];
	// 13 (blank parent over 12, 14) = [12]; 14 (blank leaf) = [].
	for x, want := range map[treemath.NodeIndex][]treemath.NodeIndex{11: {9, 12}, 7: {7, 12}, 13: {12}, 14: nil} {
		if got := g.t.Resolution(x); !slices.Equal(got, want) {
			t.Fatalf("resolution(%d) = %v, want %v", x, got, want)
		}
	}
	if got := g.t.Resolution(7, 6); !slices.Equal(got, []treemath.NodeIndex{7}) {
		t.Fatalf("resolution(7) without leaf 6 = %v", got)
	}
	// Filtered direct path of leaf 6: direct path 13, 11, 7; copath 14
	// (blank), 9, 3: 13 is filtered out.
	if got := g.t.FilteredDirectPath(6); !slices.Equal(got, []treemath.NodeIndex{11, 7}) {
		t.Fatalf("filtered direct path of 6 = %v", got)
	}
	if err := g.t.Validate(nil, &Context{GroupID: testGroupID}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// Leaf 6 commits, which merges it; the new member 7 is excluded.
	l7 := g.add(t, newMember(t, g.s, 7, true))
	_, pp := g.commit(t, 6, []treemath.LeafIndex{l7})
	if err := g.t.Validate(nil, &Context{GroupID: testGroupID}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	for l, p := range g.privs {
		if l == l7 {
			continue
		}
		if err := p.Check(g.t); err != nil {
			t.Fatalf("leaf %d private state: %v", l, err)
		}
	}
	// The joiner at 7 gets the path secret of the common ancestor (13).
	secret, x, err := pp.PathSecretFor(l7)
	if err != nil || x != 13 {
		t.Fatalf("PathSecretFor: %v (node %d)", err, x)
	}
	if err := g.privs[l7].ImportPathSecret(g.t, x, secret); err != nil {
		t.Fatalf("ImportPathSecret: %v", err)
	}
	if err := g.privs[l7].Check(g.t); err != nil {
		t.Fatalf("joiner private state: %v", err)
	}
	if got := g.privs[l7].Nodes(); !slices.Equal(got, []treemath.NodeIndex{7, 11, 13, 14}) {
		t.Fatalf("joiner holds keys for %v", got)
	}
	// A wrong path secret is rejected.
	bad := g.privs[l7].Clone()
	if err := bad.ImportPathSecret(g.t, x, []byte("wrong secret wrong secret wrong!")); !errors.Is(err, ErrPathKeyMismatch) {
		t.Fatalf("ImportPathSecret with a wrong secret: %v", err)
	}
	// Member 0 (under 3, not touched) can now process a commit by 7.
	g.commit(t, l7, nil)
	if err := g.t.Validate(nil, &Context{GroupID: testGroupID}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestCloneIndependence(t *testing.T) {
	g := newGroup(t, 5)
	g.commit(t, 0, nil)
	h0, _ := g.t.TreeHash()
	c := g.t.Clone()
	if err := c.RemoveLeaf(4); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddLeaf(newMember(t, g.s, 9, true).leaf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GenerateUpdatePath(&PathParams{Leaf: 1, SignaturePriv: g.members[1].sigPriv, GroupID: testGroupID}); err != nil {
		t.Fatal(err)
	}
	hc, _ := c.TreeHash()
	h1, _ := g.t.TreeHash()
	if !bytes.Equal(h0, h1) || bytes.Equal(h0, hc) {
		t.Fatalf("clone not independent")
	}
	fresh, _ := rebuild(t, g.t, func(wire.RatchetTree) {})
	h2, _ := fresh.TreeHash()
	if !bytes.Equal(h2, h0) {
		t.Fatalf("original tree changed")
	}
}

// TestHashCache checks the O(log n) claim: after one leaf changes, exactly
// the leaf and its ancestors are rehashed.
func TestHashCache(t *testing.T) {
	s := suite1(t)
	tr := New(s)
	const n = 1000
	var leaves []*member
	for i := 0; i < n; i++ {
		m := newMember(t, s, i, false)
		leaves = append(leaves, m)
		if _, err := tr.AddLeaf(m.leaf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.TreeHash(); err != nil {
		t.Fatal(err)
	}
	if tr.hashOps != int(tr.NodeCount()) {
		t.Fatalf("from scratch: %d hashes for %d nodes", tr.hashOps, tr.NodeCount())
	}
	before := tr.hashOps
	if _, err := tr.TreeHash(); err != nil || tr.hashOps != before {
		t.Fatalf("cached hash recomputed (%d ops)", tr.hashOps-before)
	}
	ln := copyLeaf(leaves[500].leaf)
	ln.Source = wire.LeafNodeSourceUpdate
	ln.Lifetime = nil
	ln.EncryptionKey = []byte("another key")
	if err := tr.UpdateLeaf(500, ln); err != nil {
		t.Fatal(err)
	}
	before = tr.hashOps
	h, err := tr.TreeHash()
	if err != nil {
		t.Fatal(err)
	}
	depth := bits.Len32(tr.LeafCount()) - 1 // 10 for 1024 leaves
	if got := tr.hashOps - before; got != depth+1 {
		t.Fatalf("one leaf change: %d hashes, want %d", got, depth+1)
	}
	// And the cached result is right.
	fresh, _ := rebuild(t, tr, func(wire.RatchetTree) {})
	h2, _ := fresh.TreeHash()
	if !bytes.Equal(h, h2) {
		t.Fatalf("incremental hash differs from fresh hash")
	}
	// A clone shares the cache.
	c := tr.Clone()
	before = c.hashOps
	if _, err := c.TreeHash(); err != nil || c.hashOps != before {
		t.Fatalf("clone rehashed")
	}
}

func TestExternalJoin(t *testing.T) {
	g := newGroup(t, 3)
	g.commit(t, 1, nil)
	joiner := newMember(t, g.s, 42, true)
	base := g.t.Clone()

	// The joiner's side: its own copy of the tree.
	jt := base.Clone()
	l, err := jt.FreeLeaf()
	if err != nil || l != 3 {
		t.Fatalf("FreeLeaf = %d, %v", l, err)
	}
	pp, err := jt.GenerateUpdatePath(&PathParams{Leaf: l, LeafNode: joiner.leaf, SignaturePriv: joiner.sigPriv, GroupID: testGroupID})
	if err != nil {
		t.Fatalf("GenerateUpdatePath: %v", err)
	}
	h, _ := jt.TreeHash()
	gc := g.groupContext(t, h)
	path, err := pp.Encrypt(gc)
	if err != nil {
		t.Fatal(err)
	}
	// A member's side.
	mt := base.Clone()
	l2, _ := mt.FreeLeaf()
	mp, err := mt.MergeUpdatePath(l2, path, &Context{GroupID: testGroupID}, nil)
	if err != nil {
		t.Fatalf("MergeUpdatePath: %v", err)
	}
	if h2, _ := mt.TreeHash(); !bytes.Equal(h, h2) {
		t.Fatalf("tree hashes differ")
	}
	for m := treemath.LeafIndex(0); m < 3; m++ {
		d, err := mp.Decrypt(g.privs[m], gc)
		if err != nil {
			t.Fatalf("leaf %d: %v", m, err)
		}
		if !bytes.Equal(d.CommitSecret, pp.CommitSecret()) {
			t.Fatalf("leaf %d: commit secret differs", m)
		}
	}
	if err := mt.Validate(h, &Context{GroupID: testGroupID}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestPruneAfterRemove(t *testing.T) {
	g := newGroup(t, 4)
	g.commit(t, 0, nil)
	p := g.privs[1].Clone()
	if got := p.Nodes(); !slices.Equal(got, []treemath.NodeIndex{1, 2, 3}) {
		t.Fatalf("leaf 1 holds %v", got)
	}
	if err := g.t.RemoveLeaf(0); err != nil {
		t.Fatal(err)
	}
	p.Prune(g.t)
	if got := p.Nodes(); !slices.Equal(got, []treemath.NodeIndex{2}) {
		t.Fatalf("after removing leaf 0, leaf 1 holds %v", got)
	}
	if err := p.Check(g.t); err != nil {
		t.Fatal(err)
	}
}

func TestFromRatchetTreeStructure(t *testing.T) {
	s := suite1(t)
	leaf := &wire.Node{Leaf: newMember(t, s, 0, true).leaf}
	parent := &wire.Node{Parent: &wire.ParentNode{EncryptionKey: []byte("k")}}
	cases := []struct {
		name string
		rt   wire.RatchetTree
		want error
	}{
		{"empty", nil, ErrMalformedTree},
		{"trailing blank", wire.RatchetTree{leaf, nil, nil}, ErrTrailingBlank},
		{"parent at even index", wire.RatchetTree{parent}, ErrMalformedTree},
		{"leaf at odd index", wire.RatchetTree{leaf, leaf}, ErrMalformedTree},
		{"empty node", wire.RatchetTree{{}}, ErrMalformedTree},
		{"both set", wire.RatchetTree{{Leaf: leaf.Leaf, Parent: parent.Parent}}, ErrMalformedTree},
	}
	for _, c := range cases {
		if _, err := FromRatchetTree(s, c.rt); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Padding: 6 nodes -> 7 (4 leaves).
	tr, err := FromRatchetTree(s, wire.RatchetTree{leaf, nil, nil, nil, nil, parent})
	if err != nil || tr.LeafCount() != 4 || tr.NodeCount() != 7 {
		t.Fatalf("padding: %v, %d leaves", err, tr.LeafCount())
	}
}

// TestGroupCreation: the creator adds 30 members and commits with a path in
// one Commit (RFC 9420, Section 11): no path secret is encrypted (every
// copath resolution consists of new members only); each joiner gets its
// path secret from the Welcome and derives the keys above it.
func TestGroupCreation(t *testing.T) {
	g := newGroup(t, 1)
	var added []treemath.LeafIndex
	for i := 1; i <= 30; i++ {
		added = append(added, g.add(t, newMember(t, g.s, i, true)))
	}
	path, pp := g.commit(t, 0, added)
	for _, n := range path.Nodes {
		if len(n.EncryptedPathSecret) != 0 {
			t.Fatalf("ciphertexts sent to new members")
		}
	}
	if len(path.Nodes) != 5 {
		t.Fatalf("path has %d nodes, want 5", len(path.Nodes))
	}
	for _, l := range added {
		secret, x, err := pp.PathSecretFor(l)
		if err != nil {
			t.Fatalf("leaf %d: %v", l, err)
		}
		if err := g.privs[l].ImportPathSecret(g.t, x, secret); err != nil {
			t.Fatalf("leaf %d: %v", l, err)
		}
		if err := g.privs[l].Check(g.t); err != nil {
			t.Fatalf("leaf %d: %v", l, err)
		}
		// The root key is shared by everyone.
		if !bytes.Equal(g.privs[l].PrivateKey(g.t.Root()), pp.PrivateState().PrivateKey(g.t.Root())) {
			t.Fatalf("leaf %d: root key differs", l)
		}
	}
	h, _ := g.t.TreeHash()
	if err := g.t.Validate(h, &Context{GroupID: testGroupID}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// Now a member deep in the tree commits and everyone decrypts.
	g.commit(t, 17, nil)
	if err := g.t.Validate(nil, &Context{GroupID: testGroupID}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}
