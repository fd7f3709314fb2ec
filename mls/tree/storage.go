package tree

import (
	"bytes"
	"slices"
	"sync/atomic"

	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// Node storage: the array representation (RFC 9420, Appendix C) split into
// fixed-size chunks that are shared between clones and copied on first
// write (copy-on-write keyed by an owner id). Clone therefore copies one
// pointer per chunkSize nodes, and a commit that touches one direct path
// copies about log2(n) - chunkBits + 1 chunks.

const (
	chunkBits = 6
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// chunk holds chunkSize consecutive nodes and their cached tree hashes.
// Entries at or beyond the tree width are always nil.
type chunk struct {
	owner  uint64
	nodes  [chunkSize]*wire.Node
	hashes [chunkSize][]byte
}

var treeIDs atomic.Uint64

func newOwnerID() uint64 { return treeIDs.Add(1) }

// node returns node x (nil if blank); x must be below the width.
func (t *Tree) node(x treemath.NodeIndex) *wire.Node {
	return t.chunks[x>>chunkBits].nodes[x&chunkMask]
}

// cachedHash returns the cached tree hash of x, nil if stale.
func (t *Tree) cachedHash(x treemath.NodeIndex) []byte {
	return t.chunks[x>>chunkBits].hashes[x&chunkMask]
}

// writable returns x's chunk, copying it first if another tree shares it.
func (t *Tree) writable(x treemath.NodeIndex) *chunk {
	i := x >> chunkBits
	c := t.chunks[i]
	if c.owner != t.id {
		nc := *c
		nc.owner = t.id
		t.chunks[i] = &nc
		c = &nc
	}
	return c
}

func (t *Tree) putNode(x treemath.NodeIndex, nd *wire.Node) { t.writable(x).nodes[x&chunkMask] = nd }

func (t *Tree) putHash(x treemath.NodeIndex, h []byte) { t.writable(x).hashes[x&chunkMask] = h }

// resize sets the width to w nodes, adding blank nodes or dropping the
// nodes (and cached hashes) beyond w.
func (t *Tree) resize(w uint32) {
	need := int((uint64(w) + chunkSize - 1) >> chunkBits)
	if w < t.width {
		for x := w; x < t.width && x>>chunkBits < uint32(need); x++ {
			c := t.writable(treemath.NodeIndex(x))
			c.nodes[x&chunkMask] = nil
			c.hashes[x&chunkMask] = nil
		}
		clear(t.chunks[need:])
		t.chunks = t.chunks[:need]
	}
	for len(t.chunks) < need {
		t.chunks = append(t.chunks, &chunk{owner: t.id})
	}
	t.width = w
}

// Key index: which nodes hold a given encryption key, which leaves a
// given signature key, and credential type statistics, for the uniqueness
// and credential checks of RFC 9420, Sections 7.3 and 12.4.2. It is an
// immutable snapshot shared between clones plus, per tree, the set of nodes
// changed since the snapshot; queries combine both, so they cost
// O(matches + changes) instead of a scan of the tree. The snapshot is
// rebuilt when the change set grows past a fraction of the tree.

type keyIndex struct {
	nodes    []*wire.Node // node pointers when the snapshot was taken
	enc      map[string][]treemath.NodeIndex
	sig      map[string][]treemath.LeafIndex
	credUse  map[wire.CredentialType]int // leaves with each credential type
	credSupp map[wire.CredentialType]int // leaves listing each type in capabilities
	leaves   int
}

// credStats are credential statistics over a set of leaves.
type credStats struct {
	use, supp map[wire.CredentialType]int
	leaves    int
}

func (c *credStats) add(ln *wire.LeafNode, sign int) {
	if ln == nil {
		return
	}
	c.leaves += sign
	c.use[ln.Credential.Type] += sign
	creds := ln.Capabilities.Credentials
	if len(creds) > 1 {
		creds = slices.Clone(creds)
		slices.Sort(creds)
		creds = slices.Compact(creds)
	}
	for _, ct := range creds {
		c.supp[ct] += sign
	}
}

func leafOf(nd *wire.Node) *wire.LeafNode {
	if nd == nil {
		return nil
	}
	return nd.Leaf
}

func nodeEncryptionKey(nd *wire.Node) []byte {
	switch {
	case nd == nil:
		return nil
	case nd.Leaf != nil:
		return nd.Leaf.EncryptionKey
	case nd.Parent != nil:
		return nd.Parent.EncryptionKey
	}
	return nil
}

// markChanged records a node change for the key index.
func (t *Tree) markChanged(x treemath.NodeIndex) {
	if t.idx == nil {
		return
	}
	if t.changed == nil {
		t.changed = map[treemath.NodeIndex]struct{}{}
	}
	t.changed[x] = struct{}{}
}

// ensureIndex builds the key index snapshot if there is none or the change
// set has grown large.
func (t *Tree) ensureIndex() {
	if t.idx != nil && len(t.changed) <= 32+int(t.width/16) {
		return
	}
	idx := &keyIndex{
		nodes:    make([]*wire.Node, t.width),
		enc:      make(map[string][]treemath.NodeIndex),
		sig:      make(map[string][]treemath.LeafIndex),
		credUse:  map[wire.CredentialType]int{},
		credSupp: map[wire.CredentialType]int{},
	}
	cs := credStats{use: idx.credUse, supp: idx.credSupp}
	for x := treemath.NodeIndex(0); uint32(x) < t.width; x++ {
		nd := t.node(x)
		idx.nodes[x] = nd
		if nd == nil {
			continue
		}
		k := string(nodeEncryptionKey(nd))
		idx.enc[k] = append(idx.enc[k], x)
		if nd.Leaf != nil {
			s := string(nd.Leaf.SignatureKey)
			idx.sig[s] = append(idx.sig[s], x.Leaf())
			cs.add(nd.Leaf, 1)
		}
	}
	idx.leaves = cs.leaves
	t.idx, t.changed = idx, nil
}

// snapshotNode returns node x as of the index snapshot.
func (t *Tree) snapshotNode(x treemath.NodeIndex) *wire.Node {
	if uint64(x) < uint64(len(t.idx.nodes)) {
		return t.idx.nodes[x]
	}
	return nil
}

// encHolders returns the nodes that hold encryption key k, in no order.
func (t *Tree) encHolders(k []byte) []treemath.NodeIndex {
	t.ensureIndex()
	var out []treemath.NodeIndex
	for _, x := range t.idx.enc[string(k)] {
		if _, ch := t.changed[x]; !ch && uint32(x) < t.width {
			out = append(out, x)
		}
	}
	for x := range t.changed {
		if uint32(x) < t.width && bytes.Equal(nodeEncryptionKey(t.node(x)), k) && t.node(x) != nil {
			out = append(out, x)
		}
	}
	return out
}

// sigHolders returns the leaves whose signature key is k, in no order.
func (t *Tree) sigHolders(k []byte) []treemath.LeafIndex {
	t.ensureIndex()
	var out []treemath.LeafIndex
	for _, l := range t.idx.sig[string(k)] {
		if _, ch := t.changed[l.Node()]; !ch && uint32(l) < t.n {
			out = append(out, l)
		}
	}
	for x := range t.changed {
		if x.IsLeaf() && uint32(x) < t.width {
			if ln := leafOf(t.node(x)); ln != nil && bytes.Equal(ln.SignatureKey, k) {
				out = append(out, x.Leaf())
			}
		}
	}
	return out
}

// credentialStats returns the credential statistics of the non-blank
// leaves other than except.
func (t *Tree) credentialStats(except treemath.LeafIndex) credStats {
	t.ensureIndex()
	cs := credStats{use: map[wire.CredentialType]int{}, supp: map[wire.CredentialType]int{}, leaves: t.idx.leaves}
	for k, v := range t.idx.credUse {
		cs.use[k] = v
	}
	for k, v := range t.idx.credSupp {
		cs.supp[k] = v
	}
	for x := range t.changed {
		if !x.IsLeaf() {
			continue
		}
		cs.add(leafOf(t.snapshotNode(x)), -1)
		if uint32(x) < t.width {
			cs.add(leafOf(t.node(x)), 1)
		}
	}
	cs.add(t.Leaf(except), -1)
	return cs
}
