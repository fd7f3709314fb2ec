package tree

import "errors"

// Structural errors: the ratchet tree itself cannot be represented or is
// not in the shape RFC 9420 requires.
var (
	// ErrMalformedTree: a ratchet_tree vector that is empty, too large, has a
	// leaf at an odd position or a parent at an even one, or a Node with
	// neither or both of Leaf and Parent set (RFC 9420, Sections 7.8 and
	// 12.4.3.3).
	ErrMalformedTree = errors.New("mls tree: malformed ratchet tree")
	// ErrTrailingBlank: the last entry of a ratchet_tree vector is blank
	// (RFC 9420, Section 12.4.3.3: "The receiver MUST check that the last
	// node in ratchet_tree is non-blank").
	ErrTrailingBlank = errors.New("mls tree: ratchet tree ends with a blank node")
	// ErrNotTruncated: the right subtree of the root holds no non-blank leaf,
	// so the tree is larger than the truncation rule of RFC 9420, Sections
	// 7.7 and 12.1.3 allows.
	ErrNotTruncated = errors.New("mls tree: right subtree of the root is blank (tree not truncated)")
	// ErrLeafIndex: a leaf (or node) index outside the tree (RFC 9420,
	// Section 4.1).
	ErrLeafIndex = errors.New("mls tree: leaf index out of range")
	// ErrBlankLeaf: an operation needs a non-blank leaf (Update, Remove,
	// decryption by a member) but the leaf is blank (RFC 9420, Section 12.1).
	ErrBlankLeaf = errors.New("mls tree: leaf is blank")
	// ErrTreeFull: the tree cannot be extended (RFC 9420, Section 7.7)
	// beyond MaxLeaves leaves.
	ErrTreeFull = errors.New("mls tree: tree too large")
)

// Tree validation errors (RFC 9420, Sections 7.9.2 and 12.4.3.1). Each
// violated MUST maps to its own sentinel; returned errors wrap them with
// the node or leaf concerned.
var (
	// ErrTreeHashMismatch: the root tree hash differs from the GroupContext
	// tree_hash (RFC 9420, Sections 7.8 and 12.4.3.1).
	ErrTreeHashMismatch = errors.New("mls tree: tree hash mismatch")
	// ErrParentHashInvalid: a non-blank parent node is not parent-hash valid
	// (no unique descendant chains to it; RFC 9420, Section 7.9.2).
	ErrParentHashInvalid = errors.New("mls tree: parent node is not parent-hash valid")
	// ErrParentHashMismatch: the parent_hash of the leaf in an UpdatePath
	// differs from the recomputed value (RFC 9420, Sections 7.9.2, 12.4.2).
	ErrParentHashMismatch = errors.New("mls tree: leaf parent_hash mismatch")
	// ErrUnmergedLeavesUnsorted: a parent's unmerged_leaves is not strictly
	// increasing (RFC 9420, Section 7.1).
	ErrUnmergedLeavesUnsorted = errors.New("mls tree: unmerged_leaves not sorted")
	// ErrUnmergedLeafNotDescendant: an unmerged_leaves entry is not a leaf
	// below the parent node (RFC 9420, Section 12.4.3.1).
	ErrUnmergedLeafNotDescendant = errors.New("mls tree: unmerged leaf is not a descendant of the parent")
	// ErrUnmergedLeafBlank: an unmerged_leaves entry names a blank leaf (RFC
	// 9420, Section 12.4.3.1).
	ErrUnmergedLeafBlank = errors.New("mls tree: unmerged leaf is blank")
	// ErrUnmergedLeafMissing: a non-blank node between an unmerged leaf and
	// the parent listing it does not list the leaf too (RFC 9420, Section
	// 12.4.3.1).
	ErrUnmergedLeafMissing = errors.New("mls tree: intermediate node lacks unmerged leaf")
)

// Leaf node validation errors (RFC 9420, Section 7.3).
var (
	// ErrLeafSignature: the LeafNode signature does not verify under its
	// signature_key (RFC 9420, Sections 7.2 and 7.3); wraps the cipher error.
	ErrLeafSignature = errors.New("mls tree: bad leaf node signature")
	// ErrCredentialInvalid: the application's credential check
	// (Context.VerifyCredential, RFC 9420 Section 5.3.1) rejected the leaf.
	ErrCredentialInvalid = errors.New("mls tree: credential rejected")
	// ErrWrongLeafSource: leaf_node_source does not fit where the LeafNode
	// appears (RFC 9420, Section 7.3) (key_package in a KeyPackage, update in an Update, commit in an
	// UpdatePath).
	ErrWrongLeafSource = errors.New("mls tree: wrong leaf_node_source for context")
	// ErrEncryptionKeyNotUpdated: an Update or Commit leaf keeps the
	// encryption_key of the leaf it replaces (RFC 9420, Sections 7.3, 12.4.2).
	ErrEncryptionKeyNotUpdated = errors.New("mls tree: encryption key not updated")
	// ErrDuplicateEncryptionKey: an encryption key appears in more than one
	// node (RFC 9420, Sections 7.3, 12.4.2 and 12.4.3.1).
	ErrDuplicateEncryptionKey = errors.New("mls tree: duplicate encryption key")
	// ErrDuplicateSignatureKey: a signature key is used by more than one
	// member (RFC 9420, Section 7.3).
	ErrDuplicateSignatureKey = errors.New("mls tree: duplicate signature key")
	// ErrLifetimeInvalid: the current time is outside the leaf's lifetime, or
	// a key_package leaf lacks one (RFC 9420, Section 7.3).
	ErrLifetimeInvalid = errors.New("mls tree: leaf lifetime invalid at this time")
	// ErrLifetimeTooLong: the leaf's total lifetime exceeds the
	// application's maximum (RFC 9420, Section 7.2).
	ErrLifetimeTooLong = errors.New("mls tree: leaf lifetime too long")
	// ErrUnsupportedCredential: the leaf's credential type is not supported
	// by every member, or the leaf does not support every credential type in
	// use, including its own (RFC 9420, Sections 7.2 and 7.3).
	ErrUnsupportedCredential = errors.New("mls tree: credential type not supported")
	// ErrMissingRequiredCapability: the leaf does not list an extension,
	// proposal or credential type of the group's required_capabilities (RFC
	// 9420, Sections 7.3 and 11.1).
	ErrMissingRequiredCapability = errors.New("mls tree: leaf lacks a required capability")
	// ErrUnsupportedExtension: the leaf carries a non-default extension not
	// listed in its own capabilities (RFC 9420, Sections 7.2 and 7.3).
	ErrUnsupportedExtension = errors.New("mls tree: leaf extension not in its capabilities")
	// ErrRequiredCapabilities: the group's required_capabilities extension
	// cannot be decoded (RFC 9420, Section 11.1).
	ErrRequiredCapabilities = errors.New("mls tree: malformed required_capabilities extension")
)

// TreeKEM errors (RFC 9420, Sections 7.4 to 7.6 and 12.4.2).
var (
	// ErrPathLength: the UpdatePath has a different number of nodes than the
	// sender's filtered direct path (RFC 9420, Section 7.6).
	ErrPathLength = errors.New("mls tree: UpdatePath length does not match filtered direct path")
	// ErrCiphertextCount: an UpdatePathNode has a different number of
	// encrypted path secrets than the copath node's resolution, excluding
	// new leaves (RFC 9420, Section 7.6).
	ErrCiphertextCount = errors.New("mls tree: wrong number of encrypted path secrets")
	// ErrPathKeyMismatch: a public key derived from a decrypted path secret
	// differs from the one in the UpdatePath or tree (RFC 9420, Sections 7.5
	// and 12.4.3.1).
	ErrPathKeyMismatch = errors.New("mls tree: derived public key does not match")
	// ErrNoDecryptionKey: the receiver holds no private key for any node the
	// path secret was encrypted to (RFC 9420, Section 7.5).
	ErrNoDecryptionKey = errors.New("mls tree: no private key to decrypt the path secret")
	// ErrPathDecrypt: decrypting the path secret failed (RFC 9420, Section
	// 7.6); wraps cipher.ErrDecrypt.
	ErrPathDecrypt = errors.New("mls tree: path secret decryption failed")
	// ErrOwnPath: a member tried to decrypt its own UpdatePath, or a new
	// member (which receives its path secret in a Welcome, RFC 9420 Section
	// 12.4.3.1) tried to decrypt one (RFC 9420, Section 7.5).
	ErrOwnPath = errors.New("mls tree: cannot decrypt this UpdatePath from this leaf")
	// ErrPrivateKeyMismatch: private state does not match the public tree:
	// a key whose public part differs from the node's, or a key for a node
	// not on the member's direct path (RFC 9420, Section 4.2 tree invariant).
	ErrPrivateKeyMismatch = errors.New("mls tree: private key does not match the tree")
	// ErrNotOnPath: a node or leaf is not where the operation needs it (RFC
	// 9420, Sections 4.1.2 and 7.5; for example a path secret for a node not above the member's leaf, or a new
	// member not below the committer's filtered direct path).
	ErrNotOnPath = errors.New("mls tree: node not on the expected path")
)
