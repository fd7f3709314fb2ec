// Package tree implements the MLS ratchet tree and TreeKEM (RFC 9420,
// Sections 4 and 7): the public tree of leaf and parent nodes with its
// structural operations (add, update, remove, extension and truncation),
// resolutions and filtered direct paths, cached tree hashes, parent hashes,
// leaf node and whole-tree validation, and the generation and processing
// of UpdatePaths together with the member's private TreeKEM state.
//
// # Ownership and immutability
//
// A Tree stores *wire.Node values and never modifies a node in place: every
// change replaces the node with a new one. Nodes handed to the Tree (by
// FromRatchetTree, AddLeaf, UpdateLeaf, ...) become the Tree's and must not
// be modified by the caller afterwards; nodes returned by accessors and by
// RatchetTree are shared with the Tree and must be treated as read-only.
// This is what makes Clone cheap: a clone shares every node and cached
// hash with the original, in copy-on-write chunks.
//
// A Tree is not safe for concurrent use: even TreeHash and Clone update
// internal caches. Give each goroutine its own clone (made serially).
package tree

import (
	"fmt"
	"iter"
	"maps"
	"slices"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// MaxLeaves bounds the number of leaves (blank or not) a Tree may have.
// The array representation (RFC 9420, Appendix C) indexes nodes with
// uint32; this keeps every node index well inside that range.
const MaxLeaves = 1 << 30

// Tree is the public ratchet tree of a group (RFC 9420, Section 7): a
// perfect binary tree of 2^d leaves in the array representation of RFC
// 9420, Appendix C, where node x is nil when blank. Each node's tree hash
// (RFC 9420, Section 7.8) is cached and invalidated only along the path to
// the root when a node changes.
type Tree struct {
	suite  *cipher.Suite
	n      uint32   // number of leaves: 0 or a power of two
	width  uint32   // number of nodes: treemath.Width(n)
	id     uint64   // owner id for copy-on-write of chunks
	chunks []*chunk // nodes and cached hashes (storage.go)

	idx     *keyIndex                       // shared key index snapshot, or nil
	changed map[treemath.NodeIndex]struct{} // nodes changed since idx

	// hashOps counts tree hash computations (for tests of the cache).
	hashOps int
}

// New returns an empty tree (no leaves) for suite s. The first AddLeaf
// creates a one-leaf tree (RFC 9420, Section 11: a group starts with its
// creator alone).
func New(s *cipher.Suite) *Tree { return &Tree{suite: s, id: newOwnerID()} }

// FromRatchetTree builds a Tree from the content of a ratchet_tree
// extension (RFC 9420, Section 12.4.3.3). It checks the structure only:
// the vector is non-empty and at most MaxLeaves leaves wide, its last entry
// is non-blank (ErrTrailingBlank), leaves sit at even and parents at odd
// positions and each Node has exactly one of Leaf and Parent
// (ErrMalformedTree). The tree is then extended with blank nodes to the
// next full size. Semantic checks (hashes, signatures, unmerged leaves)
// are Validate's job. The Tree keeps the node pointers; see the package
// documentation on ownership.
func FromRatchetTree(s *cipher.Suite, rt wire.RatchetTree) (*Tree, error) {
	if len(rt) == 0 {
		return nil, fmt.Errorf("%w: empty ratchet tree", ErrMalformedTree)
	}
	if uint64(len(rt)) > uint64(treemath.Width(MaxLeaves)) {
		return nil, fmt.Errorf("%w: %d nodes", ErrMalformedTree, len(rt))
	}
	if rt[len(rt)-1] == nil {
		return nil, ErrTrailingBlank
	}
	for i, nd := range rt {
		if nd == nil {
			continue
		}
		if (nd.Leaf == nil) == (nd.Parent == nil) {
			return nil, fmt.Errorf("%w: node %d has neither or both of leaf and parent", ErrMalformedTree, i)
		}
		if isLeaf := i%2 == 0; isLeaf != (nd.Leaf != nil) {
			return nil, fmt.Errorf("%w: node %d has the wrong node type", ErrMalformedTree, i)
		}
	}
	n := uint32(1)
	for treemath.Width(n) < uint32(len(rt)) {
		n *= 2
	}
	t := New(s)
	t.n = n
	t.resize(treemath.Width(n))
	for i, nd := range rt {
		if nd != nil {
			t.putNode(treemath.NodeIndex(i), nd)
		}
	}
	return t, nil
}

// Suite returns the tree's cipher suite (RFC 9420, Section 5.1).
func (t *Tree) Suite() *cipher.Suite { return t.suite }

// Clone returns an independent copy of t, for applying a Commit to a
// provisional tree (RFC 9420, Sections 12.4.2 and 12.4.3) and discarding
// it on failure. Nodes, cached hashes and the key index are shared and
// copied on write in chunks of 64 nodes, so a clone costs one pointer per
// 64 nodes (plus, on the first Clone of a tree, an O(n) build of the key
// index that later clones share). Clone updates bookkeeping in t too, so
// like every other method it must not run concurrently with other uses
// of t.
func (t *Tree) Clone() *Tree {
	if t.n > 0 {
		t.ensureIndex()
	}
	// Both trees get fresh owner ids, so both copy shared chunks on write.
	t.id = newOwnerID()
	c := &Tree{suite: t.suite, n: t.n, width: t.width, id: newOwnerID(), chunks: slices.Clone(t.chunks), idx: t.idx}
	if len(t.changed) > 0 {
		c.changed = maps.Clone(t.changed)
	}
	return c
}

// LeafCount is the number of leaves, blank or not: 0 or a power of two
// (RFC 9420, Section 4.1).
func (t *Tree) LeafCount() uint32 { return t.n }

// NodeCount is the number of nodes, 2*LeafCount()-1 or 0 (RFC 9420,
// Section 4.1.1 and Appendix C).
func (t *Tree) NodeCount() uint32 { return t.width }

// Root is the root node index (RFC 9420, Appendix C); treemath.None for an
// empty tree.
func (t *Tree) Root() treemath.NodeIndex {
	if t.n == 0 {
		return treemath.None
	}
	return treemath.Root(t.n)
}

// Node returns node x (RFC 9420, Section 7.8), or nil when it is blank or
// outside the tree. The
// result is shared with the tree: do not modify it.
func (t *Tree) Node(x treemath.NodeIndex) *wire.Node {
	if uint64(x) >= uint64(t.width) {
		return nil
	}
	return t.node(x)
}

// Leaf returns the LeafNode (RFC 9420, Section 7.2) at leaf l, or nil
// when blank or out of range.
// The result is shared with the tree: do not modify it.
func (t *Tree) Leaf(l treemath.LeafIndex) *wire.LeafNode {
	if uint64(l) >= uint64(t.n) {
		return nil
	}
	return leafOf(t.node(l.Node()))
}

// ParentNode returns the ParentNode (RFC 9420, Section 7.1) at node x, or nil when x is blank, a
// leaf, or out of range. The result is shared with the tree.
func (t *Tree) ParentNode(x treemath.NodeIndex) *wire.ParentNode {
	if nd := t.Node(x); nd != nil {
		return nd.Parent
	}
	return nil
}

// encryptionKey returns the encryption key of node x, or nil if blank.
func (t *Tree) encryptionKey(x treemath.NodeIndex) []byte { return nodeEncryptionKey(t.Node(x)) }

// EncryptionKey returns the HPKE public key of node x, or nil if x is
// blank (RFC 9420, Section 4.1.1).
func (t *Tree) EncryptionKey(x treemath.NodeIndex) []byte { return t.encryptionKey(x) }

// Leaves iterates over the non-blank leaves in index order (RFC 9420,
// Section 4.1.1). The LeafNodes are shared with the tree.
func (t *Tree) Leaves() iter.Seq2[treemath.LeafIndex, *wire.LeafNode] {
	return func(yield func(treemath.LeafIndex, *wire.LeafNode) bool) {
		for l := treemath.LeafIndex(0); uint32(l) < t.n; l++ {
			if ln := leafOf(t.node(l.Node())); ln != nil {
				if !yield(l, ln) {
					return
				}
			}
		}
	}
}

// MemberCount is the number of non-blank leaves, the group's members
// (RFC 9420, Section 4.1.1).
func (t *Tree) MemberCount() int {
	c := 0
	for range t.Leaves() {
		c++
	}
	return c
}

// FindLeaf returns the first non-blank leaf (RFC 9420, Section 7.2) for
// which match is true.
func (t *Tree) FindLeaf(match func(treemath.LeafIndex, *wire.LeafNode) bool) (treemath.LeafIndex, bool) {
	for l, ln := range t.Leaves() {
		if match(l, ln) {
			return l, true
		}
	}
	return 0, false
}

// RatchetTree exports the tree as the content of a ratchet_tree extension
// (RFC 9420, Section 12.4.3.3): nodes in array order with trailing blank
// nodes omitted. The nodes are shared with the tree.
func (t *Tree) RatchetTree() wire.RatchetTree {
	end := t.width
	for end > 0 && t.node(treemath.NodeIndex(end-1)) == nil {
		end--
	}
	rt := make(wire.RatchetTree, end)
	for x := range rt {
		rt[x] = t.node(treemath.NodeIndex(x))
	}
	return rt
}

// set replaces node x and invalidates the cached hashes from x to the root.
func (t *Tree) set(x treemath.NodeIndex, nd *wire.Node) {
	t.putNode(x, nd)
	t.markChanged(x)
	t.invalidate(x)
}

// invalidate marks the hashes of x and its ancestors stale. A stale node
// has only stale ancestors, so the walk stops at the first stale one.
func (t *Tree) invalidate(x treemath.NodeIndex) {
	for x != treemath.None && t.cachedHash(x) != nil {
		t.putHash(x, nil)
		x = treemath.Parent(x, t.n)
	}
}

// blankDirectPath blanks the parents on the direct path of leaf l (RFC
// 9420, Sections 7.4, 12.1.2 and 12.1.3).
func (t *Tree) blankDirectPath(l treemath.LeafIndex) {
	for _, x := range treemath.DirectPath(l.Node(), t.n) {
		if t.node(x) != nil {
			t.set(x, nil)
		}
	}
}

// LeftmostBlankLeaf returns the leftmost blank leaf, or LeafCount() when
// every leaf is occupied (RFC 9420, Section 12.1.1).
func (t *Tree) LeftmostBlankLeaf() treemath.LeafIndex {
	l := treemath.LeafIndex(0)
	for uint32(l) < t.n && t.node(l.Node()) != nil {
		l++
	}
	return l
}

// extend doubles the tree: the old tree becomes the left subtree of a new
// blank root and the right subtree is all blank (RFC 9420, Section 7.7).
// Existing node indices and their cached hashes stay valid.
func (t *Tree) extend() error {
	nn := uint32(1)
	if t.n > 0 {
		if t.n >= MaxLeaves {
			return ErrTreeFull
		}
		nn = 2 * t.n
	}
	t.resize(treemath.Width(nn))
	t.n = nn
	return nil
}

// FreeLeaf returns the leftmost blank leaf, extending the tree to the right
// when there is none (RFC 9420, Sections 12.1.1 and 12.4.2: where an Add or
// an external joiner is placed). The leaf stays blank.
func (t *Tree) FreeLeaf() (treemath.LeafIndex, error) {
	l := t.LeftmostBlankLeaf()
	if uint32(l) >= t.n {
		if err := t.extend(); err != nil {
			return 0, err
		}
	}
	return l, nil
}

// AddLeaf places ln in the leftmost blank leaf, extending the tree if there
// is none, and adds the new leaf to the unmerged_leaves of every non-blank
// parent on its direct path (RFC 9420, Section 12.1.1). It returns the new
// leaf's index. The tree keeps ln.
func (t *Tree) AddLeaf(ln *wire.LeafNode) (treemath.LeafIndex, error) {
	if ln == nil {
		return 0, fmt.Errorf("%w: nil leaf node", ErrMalformedTree)
	}
	l, err := t.FreeLeaf()
	if err != nil {
		return 0, err
	}
	for _, x := range treemath.DirectPath(l.Node(), t.n) {
		p := t.ParentNode(x)
		if p == nil {
			continue
		}
		np := *p
		np.UnmergedLeaves = insertSorted(p.UnmergedLeaves, uint32(l))
		t.set(x, &wire.Node{Parent: &np})
	}
	t.set(l.Node(), &wire.Node{Leaf: ln})
	return l, nil
}

// insertSorted returns a new slice with v inserted into the sorted list s.
func insertSorted(s []uint32, v uint32) []uint32 {
	i, found := slices.BinarySearch(s, v)
	out := make([]uint32, 0, len(s)+1)
	out = append(out, s[:i]...)
	if !found {
		out = append(out, v)
	}
	return append(out, s[i:]...)
}

// UpdateLeaf replaces the LeafNode of the non-blank leaf l with ln and
// blanks the intermediate nodes on l's direct path (RFC 9420, Section
// 12.1.2). Validation of ln (ValidateLeafNode with UseUpdate) is the
// caller's. The tree keeps ln.
func (t *Tree) UpdateLeaf(l treemath.LeafIndex, ln *wire.LeafNode) error {
	if ln == nil {
		return fmt.Errorf("%w: nil leaf node", ErrMalformedTree)
	}
	if uint64(l) >= uint64(t.n) {
		return fmt.Errorf("%w: leaf %d of %d", ErrLeafIndex, l, t.n)
	}
	if t.Leaf(l) == nil {
		return fmt.Errorf("%w: update of leaf %d", ErrBlankLeaf, l)
	}
	t.blankDirectPath(l)
	t.set(l.Node(), &wire.Node{Leaf: ln})
	return nil
}

// RemoveLeaf blanks the non-blank leaf l and its direct path, then
// truncates the tree (RFC 9420, Section 12.1.3).
func (t *Tree) RemoveLeaf(l treemath.LeafIndex) error {
	if uint64(l) >= uint64(t.n) {
		return fmt.Errorf("%w: leaf %d of %d", ErrLeafIndex, l, t.n)
	}
	if t.Leaf(l) == nil {
		return fmt.Errorf("%w: removal of leaf %d", ErrBlankLeaf, l)
	}
	t.blankDirectPath(l)
	t.set(l.Node(), nil)
	t.truncate()
	return nil
}

// truncate removes the right subtree of the root, repeatedly, while it
// contains no non-blank leaf (RFC 9420, Sections 7.7 and 12.1.3): with L
// the rightmost non-blank leaf the tree ends with 2^d leaves, d the
// smallest value with 2^d > L. A tree with no member keeps one blank leaf.
func (t *Tree) truncate() {
	if t.n <= 1 {
		return
	}
	last := int64(t.n) - 1
	for last >= 0 && t.node(treemath.LeafIndex(last).Node()) == nil {
		last--
	}
	nn := uint32(1)
	for int64(nn) <= last {
		nn *= 2
	}
	if nn == t.n {
		return
	}
	t.resize(treemath.Width(nn))
	t.n = nn
	// The key index snapshot may name dropped nodes: rebuild it lazily.
	t.idx, t.changed = nil, nil
}

// DirectPath is the direct path of leaf l, from its parent to the root
// (RFC 9420, Section 4.1.2).
func (t *Tree) DirectPath(l treemath.LeafIndex) []treemath.NodeIndex {
	if uint64(l) >= uint64(t.n) {
		return nil
	}
	return treemath.DirectPath(l.Node(), t.n)
}

// Copath is the copath of leaf l, from its sibling upwards (RFC 9420,
// Section 4.1.2).
func (t *Tree) Copath(l treemath.LeafIndex) []treemath.NodeIndex {
	if uint64(l) >= uint64(t.n) {
		return nil
	}
	return treemath.Copath(l.Node(), t.n)
}

// FilteredDirectPath is the direct path of leaf l without the nodes whose
// child on l's copath has an empty resolution (RFC 9420, Section 4.1.2).
func (t *Tree) FilteredDirectPath(l treemath.LeafIndex) []treemath.NodeIndex {
	fdp, _ := t.filteredPath(l)
	return fdp
}

// filteredPath returns the filtered direct path of l and, for each of its
// nodes, the child on l's copath.
func (t *Tree) filteredPath(l treemath.LeafIndex) (fdp, copath []treemath.NodeIndex) {
	if uint64(l) >= uint64(t.n) {
		return nil, nil
	}
	dp := treemath.DirectPath(l.Node(), t.n)
	cp := treemath.Copath(l.Node(), t.n)
	for i, x := range dp {
		if t.subtreeNonBlank(cp[i]) {
			fdp = append(fdp, x)
			copath = append(copath, cp[i])
		}
	}
	return fdp, copath
}

// subtreeNonBlank reports whether the subtree under x holds a non-blank
// node, that is whether x's resolution is non-empty.
func (t *Tree) subtreeNonBlank(x treemath.NodeIndex) bool {
	if uint64(x) >= uint64(t.width) {
		return false
	}
	if t.node(x) != nil {
		return true
	}
	if x.IsLeaf() {
		return false
	}
	return t.subtreeNonBlank(treemath.Left(x)) || t.subtreeNonBlank(treemath.Right(x))
}

// Resolution is the resolution of node x (RFC 9420, Section 4.1.1): x
// itself followed by its unmerged leaves if x is non-blank, nothing for a
// blank leaf, and the resolutions of the children of a blank parent, left
// first. Leaves listed in exclude (for example the members added by the
// Commit being processed, RFC 9420 Section 7.6) are left out, whether they
// appear as leaves or as unmerged leaves.
func (t *Tree) Resolution(x treemath.NodeIndex, exclude ...treemath.LeafIndex) []treemath.NodeIndex {
	return t.resolution(x, newLeafSet(exclude), nil)
}

// leafSet is a sorted set of leaf indices.
type leafSet []treemath.LeafIndex

func newLeafSet(ls []treemath.LeafIndex) leafSet {
	if len(ls) == 0 {
		return nil
	}
	s := slices.Clone(ls)
	slices.Sort(s)
	return slices.Compact(s)
}

func (s leafSet) contains(l treemath.LeafIndex) bool {
	_, found := slices.BinarySearch(s, l)
	return found
}

func (t *Tree) resolution(x treemath.NodeIndex, exclude leafSet, out []treemath.NodeIndex) []treemath.NodeIndex {
	if uint64(x) >= uint64(t.width) {
		return out
	}
	nd := t.node(x)
	switch {
	case nd == nil && x.IsLeaf():
		return out
	case nd == nil:
		out = t.resolution(treemath.Left(x), exclude, out)
		return t.resolution(treemath.Right(x), exclude, out)
	case nd.Leaf != nil:
		if !exclude.contains(x.Leaf()) {
			out = append(out, x)
		}
		return out
	default:
		out = append(out, x)
		for _, u := range nd.Parent.UnmergedLeaves {
			// Entries outside the tree (invalid, see Validate) are skipped.
			if uint64(u) < uint64(t.n) && !exclude.contains(treemath.LeafIndex(u)) {
				out = append(out, treemath.LeafIndex(u).Node())
			}
		}
		return out
	}
}

// inSubtree reports whether node d lies in the subtree headed by x.
func inSubtree(x, d treemath.NodeIndex) bool {
	k := treemath.Level(x)
	span := uint64(1)<<k - 1
	return uint64(d)+span >= uint64(x) && uint64(d) <= uint64(x)+span
}
