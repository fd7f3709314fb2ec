package tree

import (
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// FuzzTree decodes a ratchet_tree from hostile bytes, builds a Tree and
// runs validation and the read-only and structural operations on it. It
// must never panic. Seeded with the trees of tree-validation.json. The
// seeds are large (up to 34 leaves with signatures), so run it with a
// bounded minimization, e.g. -fuzz FuzzTree -fuzztime=30s
// -fuzzminimizetime=50x.
func FuzzTree(f *testing.F) {
	var vs []struct {
		CipherSuite uint16      `json:"cipher_suite"`
		Tree        vectors.Hex `json:"tree"`
		GroupID     vectors.Hex `json:"group_id"`
	}
	vectors.Load(f, "tree-validation.json", &vs)
	for _, v := range vs {
		f.Add(uint8(v.CipherSuite), []byte(v.Tree), []byte(v.GroupID))
	}
	f.Fuzz(func(t *testing.T, suite uint8, data, groupID []byte) {
		s, err := cipher.Lookup(cipher.SuiteID(suite%7 + 1))
		if err != nil {
			t.Fatal(err)
		}
		var rt wire.RatchetTree
		if err := codec.Unmarshal(data, "ratchet_tree", &rt); err != nil {
			return
		}
		tr, err := FromRatchetTree(s, rt)
		if err != nil {
			return
		}
		if tr.LeafCount() > 1<<12 {
			return // keep iterations fast; size limits are checked above
		}
		h, _ := tr.TreeHash()
		_ = tr.Validate(h, &Context{GroupID: groupID})
		_ = tr.VerifyParentHashes()
		for x := treemath.NodeIndex(0); uint32(x) < tr.NodeCount(); x++ {
			_ = tr.Resolution(x)
			_, _ = tr.NodeHash(x)
		}
		for l := treemath.LeafIndex(0); uint32(l) < tr.LeafCount(); l++ {
			_ = tr.FilteredDirectPath(l)
		}
		// Structural operations on clones.
		c := tr.Clone()
		for l := range tr.Leaves() {
			_ = c.RemoveLeaf(l)
			_, _ = c.TreeHash()
			break
		}
		if ln := tr.Leaf(0); ln != nil {
			c2 := tr.Clone()
			_, _ = c2.AddLeaf(ln)
			_, _ = c2.TreeHash()
			_ = c2.UpdateLeaf(0, ln)
			_, _ = c2.TreeHash()
			_ = c2.RatchetTree()
		}
	})
}
