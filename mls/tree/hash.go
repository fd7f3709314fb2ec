package tree

import (
	"fmt"
	"slices"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// TreeHash returns the tree hash of the root (RFC 9420, Section 7.8), the
// value of GroupContext.tree_hash. Only stale nodes are rehashed: after a
// change to one leaf and its direct path this costs O(log n) hashes.
func (t *Tree) TreeHash() ([]byte, error) {
	if t.n == 0 {
		return nil, fmt.Errorf("%w: tree hash of an empty tree", ErrMalformedTree)
	}
	return t.NodeHash(treemath.Root(t.n))
}

// NodeHash returns the tree hash of the subtree headed by x (RFC 9420,
// Section 7.8). The result is shared with the cache: do not modify it.
func (t *Tree) NodeHash(x treemath.NodeIndex) ([]byte, error) {
	if uint64(x) >= uint64(t.width) {
		return nil, fmt.Errorf("%w: node %d of %d", ErrLeafIndex, x, t.width)
	}
	return t.hash(x)
}

// hash computes (or returns the cached) tree hash of node x.
func (t *Tree) hash(x treemath.NodeIndex) ([]byte, error) {
	if h := t.cachedHash(x); h != nil {
		return h, nil
	}
	var (
		h   []byte
		err error
	)
	if x.IsLeaf() {
		h, err = t.leafHash(x.Leaf(), leafOf(t.node(x)))
	} else {
		var left, right []byte
		if left, err = t.hash(treemath.Left(x)); err != nil {
			return nil, err
		}
		if right, err = t.hash(treemath.Right(x)); err != nil {
			return nil, err
		}
		var p *wire.ParentNode
		if nd := t.node(x); nd != nil {
			p = nd.Parent
		}
		h, err = t.parentHashNode(p, left, right)
	}
	if err != nil {
		return nil, fmt.Errorf("mls tree: hashing node %d: %w", x, err)
	}
	t.putHash(x, h)
	return h, nil
}

// Node types of TreeHashInput (RFC 9420, Section 7.8).
const (
	nodeTypeLeaf   = 1
	nodeTypeParent = 2
)

// leafHash hashes TreeHashInput{leaf, LeafNodeHashInput{l, ln}} (RFC 9420,
// Section 7.8); ln nil is a blank leaf.
func (t *Tree) leafHash(l treemath.LeafIndex, ln *wire.LeafNode) ([]byte, error) {
	t.hashOps++
	w := codec.NewWriter()
	w.U8(nodeTypeLeaf)
	w.U32(uint32(l))
	w.Optional(ln != nil, func(w *codec.Writer) { ln.MarshalMLS(w) })
	b, err := w.Bytes()
	if err != nil {
		return nil, err
	}
	return t.suite.Hash(b), nil
}

// parentHashNode hashes TreeHashInput{parent, ParentNodeHashInput{p, left,
// right}} (RFC 9420, Section 7.8); p nil is a blank parent.
func (t *Tree) parentHashNode(p *wire.ParentNode, left, right []byte) ([]byte, error) {
	t.hashOps++
	w := codec.NewWriter()
	w.U8(nodeTypeParent)
	w.Optional(p != nil, func(w *codec.Writer) { p.MarshalMLS(w) })
	w.Opaque(left)
	w.Opaque(right)
	b, err := w.Bytes()
	if err != nil {
		return nil, err
	}
	return t.suite.Hash(b), nil
}

// parentHash computes the parent hash of a node with encryption key key
// and parent_hash field parentHashField, given the original tree hash of
// its copath child: the hash of ParentHashInput (RFC 9420, Section 7.9).
func (t *Tree) parentHash(key, parentHashField, siblingHash []byte) ([]byte, error) {
	w := codec.NewWriter()
	w.Opaque(key)
	w.Opaque(parentHashField)
	w.Opaque(siblingHash)
	b, err := w.Bytes()
	if err != nil {
		return nil, err
	}
	return t.suite.Hash(b), nil
}

// OriginalSiblingTreeHash is the tree hash of the subtree under s in the
// tree modified as RFC 9420, Section 7.9 describes for a parent whose
// unmerged_leaves are unmerged: each of those leaves is blanked and removed
// from the unmerged_leaves of every parent node. Cached hashes are reused
// for every subtree that contains none of those leaves, so the cost is
// proportional to the number of nodes above them.
func (t *Tree) OriginalSiblingTreeHash(s treemath.NodeIndex, unmerged []uint32) ([]byte, error) {
	if uint64(s) >= uint64(t.width) {
		return nil, fmt.Errorf("%w: node %d of %d", ErrLeafIndex, s, t.width)
	}
	return t.originalHash(s, unmerged)
}

// originalHash implements OriginalSiblingTreeHash; excl need not be
// sorted.
func (t *Tree) originalHash(x treemath.NodeIndex, excl []uint32) ([]byte, error) {
	if len(excl) == 0 {
		return t.hash(x)
	}
	sorted := slices.Clone(excl)
	slices.Sort(sorted)
	return t.originalHashSorted(x, sorted)
}

// leafRange returns the first and last leaf index under node x.
func leafRange(x treemath.NodeIndex) (lo, hi uint64) {
	k := treemath.Level(x)
	lo = (uint64(x) + 1 - uint64(1)<<k) / 2
	return lo, lo + uint64(1)<<k - 1
}

func (t *Tree) originalHashSorted(x treemath.NodeIndex, excl []uint32) ([]byte, error) {
	lo, hi := leafRange(x)
	i, _ := slices.BinarySearch(excl, uint32(min(lo, uint64(^uint32(0)))))
	if i == len(excl) || uint64(excl[i]) > hi {
		// No excluded leaf below x: the current hash is the original one.
		return t.hash(x)
	}
	if x.IsLeaf() {
		// x is itself an excluded leaf: hash it blank.
		return t.leafHash(x.Leaf(), nil)
	}
	left, err := t.originalHashSorted(treemath.Left(x), excl)
	if err != nil {
		return nil, err
	}
	right, err := t.originalHashSorted(treemath.Right(x), excl)
	if err != nil {
		return nil, err
	}
	p := t.ParentNode(x)
	if p != nil {
		np := *p
		np.UnmergedLeaves = slices.DeleteFunc(slices.Clone(p.UnmergedLeaves), func(u uint32) bool {
			_, found := slices.BinarySearch(excl, u)
			return found
		})
		p = &np
	}
	return t.parentHashNode(p, left, right)
}
