package tree

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/treemath"
)

// nodeKey is an HPKE key pair of one node.
type nodeKey struct{ priv, pub []byte }

// PrivateState is a member's private view of the ratchet tree (RFC 9420,
// Section 4.2): its leaf index and the HPKE private keys it knows, namely
// its leaf's and those of nodes on its direct path. Methods that change
// the state return a new value or mutate only the receiver; use Clone to
// keep a copy before trying a commit.
type PrivateState struct {
	suite *cipher.Suite
	leaf  treemath.LeafIndex
	keys  map[treemath.NodeIndex]nodeKey
}

// NewPrivateState returns the private state of the member at leaf, holding
// only its leaf encryption private key (RFC 9420, Section 4.2).
func NewPrivateState(s *cipher.Suite, leaf treemath.LeafIndex, encryptionPriv []byte) (*PrivateState, error) {
	p := &PrivateState{suite: s, leaf: leaf, keys: map[treemath.NodeIndex]nodeKey{}}
	if err := p.SetLeafKey(encryptionPriv); err != nil {
		return nil, err
	}
	return p, nil
}

// Leaf is the member's leaf index (RFC 9420, Section 4.2).
func (p *PrivateState) Leaf() treemath.LeafIndex { return p.leaf }

// Clone returns an independent copy of the private state (RFC 9420,
// Section 4.2); the key bytes are shared, they are never modified.
func (p *PrivateState) Clone() *PrivateState {
	return &PrivateState{suite: p.suite, leaf: p.leaf, keys: maps.Clone(p.keys)}
}

// Nodes lists the nodes whose private key is held (RFC 9420, Section
// 4.2), in increasing order.
func (p *PrivateState) Nodes() []treemath.NodeIndex {
	return slices.Sorted(maps.Keys(p.keys))
}

// PrivateKey returns the HPKE private key of node x (RFC 9420, Section
// 4.2), or nil if it is not held. The result must not be modified.
func (p *PrivateState) PrivateKey(x treemath.NodeIndex) []byte { return p.keys[x].priv }

// PublicKey returns the public key of the private key held for x, or nil
// (RFC 9420, Section 4.2).
func (p *PrivateState) PublicKey(x treemath.NodeIndex) []byte { return p.keys[x].pub }

// SetLeafKey replaces the leaf's encryption private key, e.g. when an
// Update proposal of this member is committed (RFC 9420, Section 12.1.2).
func (p *PrivateState) SetLeafKey(encryptionPriv []byte) error {
	pub, err := p.suite.HPKEPublicKey(encryptionPriv)
	if err != nil {
		return fmt.Errorf("mls tree: leaf private key: %w", err)
	}
	p.keys[p.leaf.Node()] = nodeKey{priv: encryptionPriv, pub: pub}
	return nil
}

// SetPathSecret derives node x's key pair from pathSecret (node_secret =
// DeriveSecret(path_secret, "node"), then DeriveKeyPair; RFC 9420, Section
// 7.4) and stores it. x must be on the member's direct path.
func (p *PrivateState) SetPathSecret(x treemath.NodeIndex, pathSecret []byte) error {
	if x.IsLeaf() || !inSubtree(x, p.leaf.Node()) {
		return fmt.Errorf("%w: node %d is not above leaf %d", ErrNotOnPath, x, p.leaf)
	}
	k, err := nodeKeyFromPathSecret(p.suite, pathSecret)
	if err != nil {
		return err
	}
	p.keys[x] = k
	return nil
}

// ImportPathSecret installs the path secret received in a Welcome (RFC
// 9420, Section 12.4.3.1): pathSecret belongs to node x (the lowest common
// ancestor of this member and the committer); the secrets of the non-blank
// nodes above x are derived in turn with DeriveSecret(., "path") - those
// nodes are the rest of the committer's filtered direct path - and every
// derived public key must equal the one in t (ErrPathKeyMismatch).
func (p *PrivateState) ImportPathSecret(t *Tree, x treemath.NodeIndex, pathSecret []byte) error {
	if uint64(x) >= uint64(t.width) || x.IsLeaf() || !inSubtree(x, p.leaf.Node()) {
		return fmt.Errorf("%w: node %d is not above leaf %d", ErrNotOnPath, x, p.leaf)
	}
	if t.Node(x) == nil {
		return fmt.Errorf("%w: node %d is blank", ErrNotOnPath, x)
	}
	path := append([]treemath.NodeIndex{x}, treemath.DirectPath(x, t.n)...)
	ps := pathSecret
	keys := map[treemath.NodeIndex]nodeKey{}
	for _, y := range path {
		if t.Node(y) == nil {
			continue
		}
		k, err := nodeKeyFromPathSecret(p.suite, ps)
		if err != nil {
			return err
		}
		if !bytes.Equal(k.pub, t.encryptionKey(y)) {
			return fmt.Errorf("%w: node %d", ErrPathKeyMismatch, y)
		}
		keys[y] = k
		if ps, err = p.suite.DeriveSecret(ps, "path"); err != nil {
			return err
		}
	}
	maps.Copy(p.keys, keys)
	return nil
}

// Prune deletes every key that no longer matches t: for nodes that are
// now blank, outside the tree, or hold a different public key (RFC 9420,
// Section 7.4: outdated key pairs are deleted). Call it after applying
// proposals that blank nodes (Update, Remove) or truncate the tree.
func (p *PrivateState) Prune(t *Tree) {
	for x, k := range p.keys {
		if !bytes.Equal(t.encryptionKey(x), k.pub) {
			delete(p.keys, x)
		}
	}
}

// Check verifies that the private state is consistent with t (RFC 9420,
// Section 4.2 and the TreeKEM test vectors): the leaf key is held, and
// every key held is for the leaf or a node on its direct path that is
// non-blank in t and holds the matching public key.
func (p *PrivateState) Check(t *Tree) error {
	if _, ok := p.keys[p.leaf.Node()]; !ok {
		return fmt.Errorf("%w: no key for leaf %d", ErrPrivateKeyMismatch, p.leaf)
	}
	for x, k := range p.keys {
		if !inSubtree(x, p.leaf.Node()) {
			return fmt.Errorf("%w: node %d is not on the direct path of leaf %d", ErrPrivateKeyMismatch, x, p.leaf)
		}
		pub := t.encryptionKey(x)
		if pub == nil {
			return fmt.Errorf("%w: node %d is blank", ErrPrivateKeyMismatch, x)
		}
		if !bytes.Equal(pub, k.pub) {
			return fmt.Errorf("%w: node %d", ErrPrivateKeyMismatch, x)
		}
	}
	return nil
}

// nodeKeyFromPathSecret derives node_secret = DeriveSecret(path_secret,
// "node") and the key pair DeriveKeyPair(node_secret) (RFC 9420, Section
// 7.4).
func nodeKeyFromPathSecret(s *cipher.Suite, pathSecret []byte) (nodeKey, error) {
	ns, err := s.DeriveSecret(pathSecret, "node")
	if err != nil {
		return nodeKey{}, err
	}
	priv, pub, err := s.DeriveHPKEKey(ns)
	if err != nil {
		return nodeKey{}, fmt.Errorf("mls tree: deriving node key: %w", err)
	}
	return nodeKey{priv: priv, pub: pub}, nil
}
