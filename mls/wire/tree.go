package wire

import (
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
)

// NodeType (RFC 9420, Section 7.8) tags a Node as a leaf or a parent.
type NodeType uint8

// Node types (RFC 9420, Section 7.8).
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// Signature labels (RFC 9420, Sections 5.1.2, 6.1, 7.2, 10 and 12.4.3).
const (
	LabelLeafNodeTBS      = "LeafNodeTBS"
	LabelKeyPackageTBS    = "KeyPackageTBS"
	LabelGroupInfoTBS     = "GroupInfoTBS"
	LabelFramedContentTBS = "FramedContentTBS"
)

// marshalContent writes the LeafNode fields shared by LeafNode and
// LeafNodeTBS: everything up to and including extensions.
func (l *LeafNode) marshalContent(w *codec.Writer) {
	w.Opaque(l.EncryptionKey)
	w.Opaque(l.SignatureKey)
	l.Credential.MarshalMLS(w)
	l.Capabilities.MarshalMLS(w)
	w.U8(uint8(l.Source))
	switch l.Source {
	case LeafNodeSourceKeyPackage:
		if l.Lifetime == nil {
			fail(w, "LeafNode.lifetime", "missing for source key_package")
			return
		}
		if len(l.ParentHash) > 0 {
			fail(w, "LeafNode.parent_hash", "set for source key_package")
		}
		l.Lifetime.MarshalMLS(w)
	case LeafNodeSourceUpdate:
		if l.Lifetime != nil || len(l.ParentHash) > 0 {
			fail(w, "LeafNode", "lifetime or parent_hash set for source update")
		}
	case LeafNodeSourceCommit:
		if l.Lifetime != nil {
			fail(w, "LeafNode.lifetime", "set for source commit")
		}
		w.Opaque(l.ParentHash)
	default:
		fail(w, "LeafNode.leaf_node_source", "unknown source %d", l.Source)
	}
	writeExtensions(w, l.Extensions)
}

// MarshalMLS encodes a LeafNode (RFC 9420, Section 7.2). The Writer fails
// with ErrInvalidField if Lifetime/ParentHash disagree with Source.
func (l *LeafNode) MarshalMLS(w *codec.Writer) {
	l.marshalContent(w)
	w.Opaque(l.Signature)
}

// UnmarshalMLS decodes a LeafNode (RFC 9420, Section 7.2). A reserved or
// unknown leaf_node_source fails with ErrUnknownLeafNodeSource.
func (l *LeafNode) UnmarshalMLS(r *codec.Reader) {
	*l = LeafNode{
		EncryptionKey: r.Opaque("LeafNode.encryption_key"),
		SignatureKey:  r.Opaque("LeafNode.signature_key"),
	}
	l.Credential.UnmarshalMLS(r)
	l.Capabilities.UnmarshalMLS(r)
	l.Source = LeafNodeSource(r.U8("LeafNode.leaf_node_source"))
	if r.Err() != nil {
		return
	}
	switch l.Source {
	case LeafNodeSourceKeyPackage:
		l.Lifetime = new(Lifetime)
		l.Lifetime.UnmarshalMLS(r)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		l.ParentHash = r.Opaque("LeafNode.parent_hash")
	default:
		badEnum(r, "LeafNode.leaf_node_source", ErrUnknownLeafNodeSource, uint64(l.Source))
		return
	}
	l.Extensions = readExtensions(r, "LeafNode.extensions")
	l.Signature = r.Opaque("LeafNode.signature")
}

// TBS returns the encoded LeafNodeTBS (RFC 9420, Section 7.2). groupID and
// leaf are included only for sources update and commit.
func (l *LeafNode) TBS(groupID []byte, leaf uint32) ([]byte, error) {
	w := codec.NewWriter()
	l.marshalContent(w)
	switch l.Source {
	case LeafNodeSourceUpdate, LeafNodeSourceCommit:
		w.Opaque(groupID)
		w.U32(leaf)
	}
	return w.Bytes()
}

// Sign sets Signature to SignWithLabel(priv, "LeafNodeTBS", LeafNodeTBS)
// (RFC 9420, Section 7.2).
func (l *LeafNode) Sign(s *cipher.Suite, priv, groupID []byte, leaf uint32) error {
	tbs, err := l.TBS(groupID, leaf)
	if err != nil {
		return err
	}
	sig, err := s.SignWithLabel(priv, LabelLeafNodeTBS, tbs)
	if err != nil {
		return fmt.Errorf("mls wire: signing LeafNode: %w", err)
	}
	l.Signature = sig
	return nil
}

// VerifySignature verifies Signature with SignatureKey over LeafNodeTBS
// (RFC 9420, Section 7.3). Failures wrap cipher.ErrBadSignature.
func (l *LeafNode) VerifySignature(s *cipher.Suite, groupID []byte, leaf uint32) error {
	tbs, err := l.TBS(groupID, leaf)
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(l.SignatureKey, LabelLeafNodeTBS, tbs, l.Signature); err != nil {
		return fmt.Errorf("mls wire: LeafNode signature: %w", err)
	}
	return nil
}

// MarshalMLS encodes a ParentNode (RFC 9420, Section 7.1).
func (p *ParentNode) MarshalMLS(w *codec.Writer) {
	w.Opaque(p.EncryptionKey)
	w.Opaque(p.ParentHash)
	writeVec(w, p.UnmergedLeaves, func(w *codec.Writer, v *uint32) { w.U32(*v) })
}

// UnmarshalMLS decodes a ParentNode (RFC 9420, Section 7.1). The ordering
// of unmerged_leaves is left to tree validation.
func (p *ParentNode) UnmarshalMLS(r *codec.Reader) {
	*p = ParentNode{
		EncryptionKey: r.Opaque("ParentNode.encryption_key"),
		ParentHash:    r.Opaque("ParentNode.parent_hash"),
		UnmergedLeaves: readVec(r, "ParentNode.unmerged_leaves", func(r *codec.Reader) uint32 {
			return r.U32("ParentNode.unmerged_leaves")
		}),
	}
}

// MarshalMLS encodes a Node (RFC 9420, Section 7.8). Exactly one of Leaf and
// Parent must be set.
func (n *Node) MarshalMLS(w *codec.Writer) {
	switch {
	case n.Leaf != nil && n.Parent == nil:
		w.U8(uint8(NodeTypeLeaf))
		n.Leaf.MarshalMLS(w)
	case n.Parent != nil && n.Leaf == nil:
		w.U8(uint8(NodeTypeParent))
		n.Parent.MarshalMLS(w)
	default:
		fail(w, "Node", "exactly one of Leaf and Parent must be set")
	}
}

// UnmarshalMLS decodes a Node (RFC 9420, Section 7.8).
func (n *Node) UnmarshalMLS(r *codec.Reader) {
	*n = Node{}
	t := NodeType(r.U8("Node.node_type"))
	if r.Err() != nil {
		return
	}
	switch t {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		n.Leaf.UnmarshalMLS(r)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		n.Parent.UnmarshalMLS(r)
	default:
		badEnum(r, "Node.node_type", ErrUnknownNodeType, uint64(t))
	}
}

// RatchetTree is the content of the ratchet_tree extension (RFC 9420,
// Section 12.4.3.3): optional<Node> ratchet_tree<V>, in array order. A nil
// entry is a blank node. Structural rules (for example no trailing blank
// node, leaves at even indices) are checked by tree validation, not here.
type RatchetTree []*Node

// MarshalMLS encodes a RatchetTree (RFC 9420, Section 12.4.3.3).
func (t *RatchetTree) MarshalMLS(w *codec.Writer) {
	writeVec(w, *t, func(w *codec.Writer, n **Node) {
		w.Optional(*n != nil, func(w *codec.Writer) { (*n).MarshalMLS(w) })
	})
}

// UnmarshalMLS decodes a RatchetTree (RFC 9420, Section 12.4.3.3).
func (t *RatchetTree) UnmarshalMLS(r *codec.Reader) {
	*t = readVec(r, "ratchet_tree", func(r *codec.Reader) *Node {
		var n *Node
		r.Optional("ratchet_tree.node", func(r *codec.Reader) {
			n = new(Node)
			n.UnmarshalMLS(r)
		})
		return n
	})
}

// MarshalMLS encodes an UpdatePathNode (RFC 9420, Section 7.6).
func (n *UpdatePathNode) MarshalMLS(w *codec.Writer) {
	w.Opaque(n.EncryptionKey)
	writeVec(w, n.EncryptedPathSecret, func(w *codec.Writer, c *HPKECiphertext) { c.MarshalMLS(w) })
}

// UnmarshalMLS decodes an UpdatePathNode (RFC 9420, Section 7.6).
func (n *UpdatePathNode) UnmarshalMLS(r *codec.Reader) {
	*n = UpdatePathNode{
		EncryptionKey: r.Opaque("UpdatePathNode.encryption_key"),
		EncryptedPathSecret: readVec(r, "UpdatePathNode.encrypted_path_secret", func(r *codec.Reader) (c HPKECiphertext) {
			c.UnmarshalMLS(r)
			return
		}),
	}
}

// MarshalMLS encodes an UpdatePath (RFC 9420, Section 7.6).
func (p *UpdatePath) MarshalMLS(w *codec.Writer) {
	p.LeafNode.MarshalMLS(w)
	writeVec(w, p.Nodes, func(w *codec.Writer, n *UpdatePathNode) { n.MarshalMLS(w) })
}

// UnmarshalMLS decodes an UpdatePath (RFC 9420, Section 7.6). The leaf
// node's source (which must be commit) is checked by validation.
func (p *UpdatePath) UnmarshalMLS(r *codec.Reader) {
	*p = UpdatePath{}
	p.LeafNode.UnmarshalMLS(r)
	p.Nodes = readVec(r, "UpdatePath.nodes", func(r *codec.Reader) (n UpdatePathNode) {
		n.UnmarshalMLS(r)
		return
	})
}
