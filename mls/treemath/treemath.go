// Package treemath implements the array representation of the left-balanced
// binary trees MLS uses (RFC 9420, Appendix C). Leaves sit at even node
// indices (leaf L at node 2L), parents at odd ones; the tree over n leaves
// (n a power of two for a full tree) has 2n-1 nodes.
package treemath

import "math/bits"

// NodeIndex is a node's position in the array representation.
type NodeIndex uint32

// LeafIndex is a leaf's position among the leaves.
type LeafIndex uint32

// None marks the absence of a node (the parent of the root, the child of a
// leaf).
const None = NodeIndex(1<<32 - 1)

// Node returns the node index of leaf l (RFC 9420, Appendix C).
func (l LeafIndex) Node() NodeIndex { return NodeIndex(2 * l) }

// IsLeaf reports whether x is a leaf.
func (x NodeIndex) IsLeaf() bool { return x&1 == 0 }

// Leaf returns the leaf index of a leaf node.
func (x NodeIndex) Leaf() LeafIndex { return LeafIndex(x >> 1) }

// Level is the height of x above the leaves: the number of trailing one
// bits (RFC 9420, Appendix C, level).
func Level(x NodeIndex) uint { return uint(bits.TrailingZeros32(^uint32(x))) }

// Width is the number of nodes of a tree over n leaves (node_width).
func Width(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// Root is the root of a tree over n leaves, n > 0 (RFC 9420, Appendix C).
func Root(n uint32) NodeIndex {
	w := Width(n)
	return NodeIndex(1<<(bits.Len32(w)-1) - 1)
}

// Left is the left child of a parent node, or None for a leaf.
func Left(x NodeIndex) NodeIndex {
	k := Level(x)
	if k == 0 {
		return None
	}
	return x ^ (1 << (k - 1))
}

// Right is the right child of a parent node, or None for a leaf. RFC 9420
// trees are full (n a power of two), so no truncation is needed.
func Right(x NodeIndex) NodeIndex {
	k := Level(x)
	if k == 0 {
		return None
	}
	return x ^ (3 << (k - 1))
}

// Parent is the parent of x in a tree over n leaves, or None for the root.
func Parent(x NodeIndex, n uint32) NodeIndex {
	if x == Root(n) {
		return None
	}
	k := Level(x)
	b := (uint32(x) >> (k + 1)) & 1
	return NodeIndex((uint32(x) | (1 << k)) ^ (b << (k + 1)))
}

// Sibling is the other child of x's parent, or None for the root.
func Sibling(x NodeIndex, n uint32) NodeIndex {
	p := Parent(x, n)
	if p == None {
		return None
	}
	if x < p {
		return Right(p)
	}
	return Left(p)
}

// DirectPath lists the parents of x up to and including the root, from the
// bottom (RFC 9420, Section 4.1.2 and Appendix C). Empty for the root.
func DirectPath(x NodeIndex, n uint32) []NodeIndex {
	var d []NodeIndex
	r := Root(n)
	for x != r {
		x = Parent(x, n)
		d = append(d, x)
	}
	return d
}

// Copath lists the siblings of x and of each node of its direct path except
// the root, from the bottom.
func Copath(x NodeIndex, n uint32) []NodeIndex {
	r := Root(n)
	var c []NodeIndex
	for x != r {
		c = append(c, Sibling(x, n))
		x = Parent(x, n)
	}
	return c
}

// CommonAncestor is the lowest node that is an ancestor of both x and y.
func CommonAncestor(x, y NodeIndex) NodeIndex {
	lx, ly := Level(x)+1, Level(y)+1
	if lx <= ly && uint32(x)>>ly == uint32(y)>>ly {
		return y
	}
	if ly <= lx && uint32(x)>>lx == uint32(y)>>lx {
		return x
	}
	xn, yn := uint32(x), uint32(y)
	k := uint(0)
	for xn != yn {
		xn >>= 1
		yn >>= 1
		k++
	}
	return NodeIndex(xn<<k | (1<<(k-1) - 1))
}

// IsAncestor reports whether a is an ancestor of (or equal to) d.
func IsAncestor(a, d NodeIndex) bool {
	return CommonAncestor(a, d) == a
}
