package tree

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// bruteEnc scans the tree for nodes holding encryption key k.
func bruteEnc(t *Tree, k []byte) []treemath.NodeIndex {
	var out []treemath.NodeIndex
	for x := treemath.NodeIndex(0); uint32(x) < t.NodeCount(); x++ {
		if t.Node(x) != nil && bytes.Equal(t.EncryptionKey(x), k) {
			out = append(out, x)
		}
	}
	return out
}

func bruteSig(t *Tree, k []byte) []treemath.LeafIndex {
	var out []treemath.LeafIndex
	for l, ln := range t.Leaves() {
		if bytes.Equal(ln.SignatureKey, k) {
			out = append(out, l)
		}
	}
	return out
}

func bruteCred(t *Tree, except treemath.LeafIndex) credStats {
	cs := credStats{use: map[wire.CredentialType]int{}, supp: map[wire.CredentialType]int{}}
	for l, ln := range t.Leaves() {
		if l != except {
			cs.add(ln, 1)
		}
	}
	return cs
}

func nonZero(m map[wire.CredentialType]int) map[wire.CredentialType]int {
	out := map[wire.CredentialType]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func exportBytes(tb testing.TB, t *Tree) []byte {
	tb.Helper()
	rt := t.RatchetTree()
	b, err := codec.Marshal(&rt)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestKeyIndexAndCopyOnWrite runs random operations on a family of clones
// and checks, after each, that the key index answers like a brute-force
// scan and that no earlier clone was affected (chunked copy-on-write).
func TestKeyIndexAndCopyOnWrite(t *testing.T) {
	s := suite1(t)
	rng := rand.New(rand.NewPCG(1, 2))
	cur := New(s)
	members := map[int]*member{}
	next := 0
	addMember := func(tr *Tree) {
		m := newMember(t, s, next, true)
		if next%7 == 3 {
			// Some members use and support x509 too.
			m.leaf.Capabilities.Credentials = []wire.CredentialType{wire.CredentialBasic, wire.CredentialX509, wire.CredentialX509}
			m.leaf.Credential = wire.Credential{Type: wire.CredentialX509, Certificates: [][]byte{{byte(next)}}}
		}
		members[next] = m
		next++
		if _, err := tr.AddLeaf(m.leaf); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		addMember(cur)
	}
	memberOf := func(ln *wire.LeafNode) *member {
		var id int
		if ln.Credential.Type == wire.CredentialBasic {
			fmt.Sscanf(string(ln.Credential.Identity), "member-%d", &id)
		} else {
			id = int(ln.Credential.Certificates[0][0])
			for members[id] == nil || !bytes.Equal(members[id].leaf.SignatureKey, ln.SignatureKey) {
				id += 256
			}
		}
		return members[id]
	}
	type snap struct {
		tr   *Tree
		enc  []byte
		hash []byte
	}
	var snaps []snap
	for step := 0; step < 150; step++ {
		leaves := slices.Collect(func(yield func(treemath.LeafIndex) bool) {
			for l := range cur.Leaves() {
				if !yield(l) {
					return
				}
			}
		})
		l := leaves[rng.IntN(len(leaves))]
		switch op := rng.IntN(6); op {
		case 0: // clone, remembering the original
			h, _ := cur.TreeHash()
			snaps = append(snaps, snap{cur, exportBytes(t, cur), h})
			cur = cur.Clone()
		case 1:
			addMember(cur)
		case 2:
			if len(leaves) > 2 {
				if err := cur.RemoveLeaf(l); err != nil {
					t.Fatal(err)
				}
			}
		case 3:
			ln := copyLeaf(cur.Leaf(l))
			ln.EncryptionKey = seed("upd", step)
			if err := cur.UpdateLeaf(l, ln); err != nil {
				t.Fatal(err)
			}
		default:
			m := memberOf(cur.Leaf(l))
			if _, err := cur.GenerateUpdatePath(&PathParams{Leaf: l, SignaturePriv: m.sigPriv, GroupID: testGroupID, LeafSecret: seed("ls", step)}); err != nil {
				t.Fatal(err)
			}
		}
		// Index queries against brute force.
		for _, l := range leaves[:min(5, len(leaves))] {
			ln := cur.Leaf(l)
			if ln == nil {
				continue
			}
			got := cur.encHolders(ln.EncryptionKey)
			slices.Sort(got)
			if want := bruteEnc(cur, ln.EncryptionKey); !slices.Equal(got, want) {
				t.Fatalf("step %d: encHolders = %v, want %v", step, got, want)
			}
			gotS := cur.sigHolders(ln.SignatureKey)
			slices.Sort(gotS)
			if want := bruteSig(cur, ln.SignatureKey); !slices.Equal(gotS, want) {
				t.Fatalf("step %d: sigHolders = %v, want %v", step, gotS, want)
			}
			cs, want := cur.credentialStats(l), bruteCred(cur, l)
			if cs.leaves != want.leaves || !maps.Equal(nonZero(cs.use), nonZero(want.use)) || !maps.Equal(nonZero(cs.supp), nonZero(want.supp)) {
				t.Fatalf("step %d: credential stats %+v, want %+v", step, cs, want)
			}
		}
		for x := treemath.NodeIndex(1); uint32(x) < cur.NodeCount(); x += 2 {
			if p := cur.ParentNode(x); p != nil {
				if got := cur.encHolders(p.EncryptionKey); len(got) != 1 || got[0] != x {
					t.Fatalf("step %d: parent %d key holders %v", step, x, got)
				}
			}
		}
		if got := cur.encHolders([]byte("absent")); len(got) != 0 {
			t.Fatalf("absent key found at %v", got)
		}
	}
	if len(snaps) < 10 {
		t.Fatalf("only %d clones taken", len(snaps))
	}
	for i, sn := range snaps {
		if got := exportBytes(t, sn.tr); !bytes.Equal(got, sn.enc) {
			t.Fatalf("clone %d: tree changed after cloning", i)
		}
		h, _ := sn.tr.TreeHash()
		if !bytes.Equal(h, sn.hash) {
			t.Fatalf("clone %d: tree hash changed after cloning", i)
		}
		fresh, _ := rebuild(t, sn.tr, func(wire.RatchetTree) {})
		if h2, _ := fresh.TreeHash(); !bytes.Equal(h2, sn.hash) {
			t.Fatalf("clone %d: cached hash differs from a fresh one", i)
		}
	}
}
