package tree

import (
	"fmt"
	"sync"
	"testing"

	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// benchGroup is a large group in a realistic steady state, built once per
// size:
//
//   - n members with deterministic keys (leaf i's keys are derived from
//     SHA-256 seeds of i) and signed key_package leaves, added with AddLeaf
//     into a tree of 2^ceil(log2 n) leaves (leaves n.. are blank);
//   - then every even leaf commits in turn (GenerateUpdatePath, not
//     encrypted), which populates every parent node that has a member
//     below it with a genuine key and parent hash, so the tree is fully
//     parent-hash valid and every resolution on a copath has one node;
//   - the private states of receivers 1 and n-10 are tracked through the
//     commits from the committers' path secrets.
type benchGroup struct {
	g     *group
	privs map[treemath.LeafIndex]*PrivateState
}

var (
	benchMu     sync.Mutex
	benchGroups = map[int]*benchGroup{}
)

func getBenchGroup(b *testing.B, n int) *benchGroup {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if bg := benchGroups[n]; bg != nil {
		return bg
	}
	s := suite1(b)
	g := &group{s: s, t: New(s), members: map[treemath.LeafIndex]*member{}, privs: map[treemath.LeafIndex]*PrivateState{}}
	for i := 0; i < n; i++ {
		m := newMember(b, s, i, true)
		l, err := g.t.AddLeaf(m.leaf)
		if err != nil {
			b.Fatal(err)
		}
		g.members[l] = m
	}
	bg := &benchGroup{g: g, privs: map[treemath.LeafIndex]*PrivateState{}}
	for _, r := range []treemath.LeafIndex{1, treemath.LeafIndex(n - 10)} {
		p, err := NewPrivateState(s, r, g.members[r].encPriv)
		if err != nil {
			b.Fatal(err)
		}
		bg.privs[r] = p
	}
	for c := 0; c < n; c += 2 {
		from := treemath.LeafIndex(c)
		pp, err := g.t.GenerateUpdatePath(&PathParams{
			Leaf: from, SignaturePriv: g.members[from].sigPriv, GroupID: testGroupID,
			LeafSecret: seed("leaf secret", c),
		})
		if err != nil {
			b.Fatal(err)
		}
		g.members[from].leaf = pp.LeafNode()
		for r, p := range bg.privs {
			if r == from {
				bg.privs[r] = pp.PrivateState()
				continue
			}
			p.Prune(g.t)
			for _, x := range pp.fdp {
				if inSubtree(x, r.Node()) {
					if err := p.SetPathSecret(x, pp.PathSecret(x)); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	}
	if _, err := g.t.TreeHash(); err != nil {
		b.Fatal(err)
	}
	for r, p := range bg.privs {
		if err := p.Check(g.t); err != nil {
			b.Fatalf("tracked receiver %d: %v", r, err)
		}
	}
	benchGroups[n] = bg
	return bg
}

// BenchmarkTreeHash: the root tree hash of a 10,000-member tree computed
// from scratch (a freshly imported tree, empty cache), and after one leaf
// changes (UpdateLeaf: the leaf and its direct path are rehashed).
func BenchmarkTreeHash(b *testing.B) {
	const n = 10000
	bg := getBenchGroup(b, n)
	rt := bg.g.t.RatchetTree()
	b.Run(fmt.Sprintf("scratch/members=%d", n), func(b *testing.B) {
		ops := 0
		for b.Loop() {
			tr, err := FromRatchetTree(bg.g.s, rt)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tr.TreeHash(); err != nil {
				b.Fatal(err)
			}
			ops = tr.hashOps
		}
		b.ReportMetric(float64(ops), "hashes/op")
	})
	b.Run(fmt.Sprintf("one-leaf-change/members=%d", n), func(b *testing.B) {
		tr := bg.g.t.Clone()
		if _, err := tr.TreeHash(); err != nil {
			b.Fatal(err)
		}
		const l = 4321
		a := copyLeaf(tr.Leaf(l))
		a.Source, a.Lifetime, a.ParentHash = wire.LeafNodeSourceUpdate, nil, nil
		c := copyLeaf(a)
		c.EncryptionKey = []byte("another encryption key")
		lns := []*wire.LeafNode{a, c}
		start := tr.hashOps
		i := 0
		for b.Loop() {
			if err := tr.UpdateLeaf(l, lns[i%2]); err != nil {
				b.Fatal(err)
			}
			i++
			if _, err := tr.TreeHash(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(tr.hashOps-start)/float64(i), "hashes/op")
	})
}

// BenchmarkClone: copying a 10,000-member tree (what a group state machine
// pays to try a commit).
func BenchmarkClone(b *testing.B) {
	bg := getBenchGroup(b, 10000)
	for b.Loop() {
		_ = bg.g.t.Clone()
	}
}

// BenchmarkUpdatePath measures, on cipher suite 1 with 1,000 and 10,000
// members: "generate" = Clone + GenerateUpdatePath + TreeHash + Encrypt by
// leaf 0 (14 path nodes with one ciphertext each for 10,000 members);
// "process" = Clone + MergeUpdatePath (incl. leaf validation and parent
// hash check) + TreeHash + Decrypt, for the receiver nearest the sender
// (leaf 1: decrypts at the lowest node, then derives every key up to the
// root) and a far receiver (in the other half: decrypts the root secret).
func BenchmarkUpdatePath(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		far := treemath.LeafIndex(n - 10)
		bg := getBenchGroup(b, n)
		g := bg.g
		sender := treemath.LeafIndex(0)
		params := &PathParams{Leaf: sender, SignaturePriv: g.members[sender].sigPriv, GroupID: testGroupID}
		b.Run(fmt.Sprintf("generate/members=%d", n), func(b *testing.B) {
			for b.Loop() {
				tr := g.t.Clone()
				pp, err := tr.GenerateUpdatePath(params)
				if err != nil {
					b.Fatal(err)
				}
				h, err := tr.TreeHash()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := pp.Encrypt(g.groupContext(b, h)); err != nil {
					b.Fatal(err)
				}
			}
		})
		// One UpdatePath to process.
		tr := g.t.Clone()
		pp, err := tr.GenerateUpdatePath(params)
		if err != nil {
			b.Fatal(err)
		}
		h, _ := tr.TreeHash()
		gc := g.groupContext(b, h)
		path, err := pp.Encrypt(gc)
		if err != nil {
			b.Fatal(err)
		}
		for _, rc := range []struct {
			name string
			leaf treemath.LeafIndex
		}{{"near", 1}, {"far", far}} {
			b.Run(fmt.Sprintf("process-%s/members=%d", rc.name, n), func(b *testing.B) {
				for b.Loop() {
					rt := g.t.Clone()
					mp, err := rt.MergeUpdatePath(sender, path, &Context{GroupID: testGroupID}, nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := rt.TreeHash(); err != nil {
						b.Fatal(err)
					}
					d, err := mp.Decrypt(bg.privs[rc.leaf], gc)
					if err != nil {
						b.Fatal(err)
					}
					if string(d.CommitSecret) != string(pp.CommitSecret()) {
						b.Fatal("commit secret mismatch")
					}
				}
			})
		}
	}
}

// BenchmarkValidate: the joiner's full validation (RFC 9420, Section
// 12.4.3.1) of the 1,000- and 10,000-member trees: every signature, key
// uniqueness, unmerged leaves and all parent hashes.
func BenchmarkValidate(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		bg := getBenchGroup(b, n)
		h, _ := bg.g.t.TreeHash()
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := bg.g.t.Validate(h, &Context{GroupID: testGroupID}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
