package tree

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// Context carries the group-level inputs of leaf node and tree validation
// (RFC 9420, Sections 7.3 and 12.4.3.1).
type Context struct {
	// GroupID is the group_id signed into LeafNodeTBS for leaves of source
	// update and commit (RFC 9420, Section 7.2).
	GroupID []byte
	// Extensions are the GroupContext extensions; a required_capabilities
	// extension among them is enforced (RFC 9420, Sections 7.3 and 11.1).
	Extensions []wire.Extension
	// Now, when non-zero, is checked against the lifetime of key_package
	// leaves (RFC 9420, Section 7.3). Zero skips the check.
	Now time.Time
	// MaxLifetime, when non-zero, is the longest acceptable not_after -
	// not_before of a key_package leaf (RFC 9420, Section 7.2).
	MaxLifetime time.Duration
	// VerifyCredential, when set, validates a leaf's credential and its
	// binding to the signature key (RFC 9420, Section 5.3.1). Its error is
	// wrapped with ErrCredentialInvalid.
	VerifyCredential func(ln *wire.LeafNode) error
}

// LeafUse says where a LeafNode being validated appears, which fixes the
// leaf_node_source it must have (RFC 9420, Section 7.3).
type LeafUse uint8

// Places a LeafNode appears in (RFC 9420, Section 7.3).
const (
	// UseKeyPackage: in a KeyPackage (RFC 9420, Section 10), e.g. of an
	// Add; source key_package.
	UseKeyPackage LeafUse = iota + 1
	// UseUpdate: in an Update proposal; source update, and a new
	// encryption_key.
	UseUpdate
	// UseCommit: in the UpdatePath of a Commit; source commit, and a new
	// encryption_key.
	UseCommit
	// UseTree: already in a ratchet tree being validated; any source.
	UseTree
)

// ValidateLeafNode checks ln in the context of this tree as RFC 9420,
// Section 7.3 requires, for a leaf that will occupy (or already occupies)
// leaf at: the leaf_node_source against use (ErrWrongLeafSource), a fresh
// encryption key for updates and commits (ErrEncryptionKeyNotUpdated), the
// credential via c.VerifyCredential (ErrCredentialInvalid), the signature
// with c.GroupID and at for sources update and commit (ErrLeafSignature),
// the group's required_capabilities (ErrMissingRequiredCapability),
// credential type support in both directions (ErrUnsupportedCredential),
// the lifetime when c.Now or c.MaxLifetime is set (ErrLifetimeInvalid,
// ErrLifetimeTooLong), the leaf's extensions against its capabilities
// (ErrUnsupportedExtension), and uniqueness of signature_key among the
// other leaves and of encryption_key among the other nodes
// (ErrDuplicateSignatureKey, ErrDuplicateEncryptionKey). The current
// content of leaf at, which ln replaces, is excluded from the comparisons
// except for the fresh-key rule; at may be a blank leaf or LeafCount() for
// a leaf about to be added. The lifetime is compared with c.Now only for
// UseKeyPackage and UseTree (update and commit leaves carry none).
func (t *Tree) ValidateLeafNode(ln *wire.LeafNode, use LeafUse, at treemath.LeafIndex, c *Context) error {
	if c == nil {
		c = &Context{}
	}
	if ln == nil {
		return fmt.Errorf("%w: nil leaf node", ErrMalformedTree)
	}
	req, err := requiredCapabilities(c.Extensions)
	if err != nil {
		return err
	}
	// Credential types in use by the other members, and the types all of
	// them support (from the key index: no scan of the tree).
	cs := t.credentialStats(at)
	if cs.supp[ln.Credential.Type] != cs.leaves {
		return fmt.Errorf("%w: type %d not supported by %d of %d other members", ErrUnsupportedCredential,
			ln.Credential.Type, cs.leaves-cs.supp[ln.Credential.Type], cs.leaves)
	}
	inUse := map[wire.CredentialType]bool{ln.Credential.Type: true}
	for ct, n := range cs.use {
		if n > 0 {
			inUse[ct] = true
		}
	}
	if err := t.checkLeaf(ln, use, at, c, req, inUse, nil); err != nil {
		return err
	}
	// Uniqueness (RFC 9420, Section 7.3).
	for _, l := range t.sigHolders(ln.SignatureKey) {
		if l != at {
			return fmt.Errorf("%w: also used by leaf %d", ErrDuplicateSignatureKey, l)
		}
	}
	for _, x := range t.encHolders(ln.EncryptionKey) {
		if x != at.Node() {
			return fmt.Errorf("%w: also in node %d", ErrDuplicateEncryptionKey, x)
		}
	}
	return nil
}

// checkLeaf runs the per-leaf checks of RFC 9420, Section 7.3 except key
// uniqueness. inUse holds every credential type in use in the group
// (including ln's).
// sigDone, when non-nil, is the already computed result of the leaf's
// signature check (Validate verifies all leaves' signatures in parallel).
func (t *Tree) checkLeaf(ln *wire.LeafNode, use LeafUse, at treemath.LeafIndex, c *Context, req *wire.RequiredCapabilities, inUse map[wire.CredentialType]bool, sigDone *error) error {
	// leaf_node_source.
	want := map[LeafUse]wire.LeafNodeSource{
		UseKeyPackage: wire.LeafNodeSourceKeyPackage,
		UseUpdate:     wire.LeafNodeSourceUpdate,
		UseCommit:     wire.LeafNodeSourceCommit,
	}
	switch ln.Source {
	case wire.LeafNodeSourceKeyPackage, wire.LeafNodeSourceUpdate, wire.LeafNodeSourceCommit:
	default:
		return fmt.Errorf("%w: unknown source %d", ErrWrongLeafSource, ln.Source)
	}
	if w, ok := want[use]; ok && ln.Source != w {
		return fmt.Errorf("%w: source %d where %d is required", ErrWrongLeafSource, ln.Source, w)
	} else if !ok && use != UseTree {
		return fmt.Errorf("%w: unknown use %d", ErrWrongLeafSource, use)
	}
	if use == UseUpdate || use == UseCommit {
		if cur := t.Leaf(at); cur != nil && bytes.Equal(cur.EncryptionKey, ln.EncryptionKey) {
			return fmt.Errorf("%w: leaf %d", ErrEncryptionKeyNotUpdated, at)
		}
	}
	// Credential (RFC 9420, Section 5.3.1).
	if c.VerifyCredential != nil {
		if err := c.VerifyCredential(ln); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrCredentialInvalid, at, err)
		}
	}
	// Signature.
	var sigErr error
	if sigDone != nil {
		sigErr = *sigDone
	} else {
		sigErr = ln.VerifySignature(t.suite, c.GroupID, uint32(at))
	}
	if sigErr != nil {
		return fmt.Errorf("%w: leaf %d: %w", ErrLeafSignature, at, sigErr)
	}
	// Group parameters: required capabilities. (Version and cipher suite
	// support are KeyPackage checks, RFC 9420 Section 10.1; the official
	// vectors hold trees whose leaves do not list the group's suite.)
	caps := &ln.Capabilities
	if req != nil {
		for _, e := range req.ExtensionTypes {
			if !defaultExtension(e) && !slices.Contains(caps.Extensions, e) {
				return fmt.Errorf("%w: extension %d (leaf %d)", ErrMissingRequiredCapability, e, at)
			}
		}
		for _, p := range req.ProposalTypes {
			if !defaultProposal(p) && !slices.Contains(caps.Proposals, p) {
				return fmt.Errorf("%w: proposal %d (leaf %d)", ErrMissingRequiredCapability, p, at)
			}
		}
		for _, ct := range req.CredentialTypes {
			if !slices.Contains(caps.Credentials, ct) {
				return fmt.Errorf("%w: credential %d (leaf %d)", ErrMissingRequiredCapability, ct, at)
			}
		}
	}
	// Credential types: ln supports every type in use, its own included.
	for ct := range inUse {
		if !slices.Contains(caps.Credentials, ct) {
			return fmt.Errorf("%w: leaf %d does not support type %d", ErrUnsupportedCredential, at, ct)
		}
	}
	// Lifetime.
	if ln.Source == wire.LeafNodeSourceKeyPackage {
		lt := ln.Lifetime
		if lt == nil {
			return fmt.Errorf("%w: leaf %d has no lifetime", ErrLifetimeInvalid, at)
		}
		if c.MaxLifetime > 0 && (lt.NotAfter < lt.NotBefore || lt.NotAfter-lt.NotBefore > uint64(c.MaxLifetime/time.Second)) {
			return fmt.Errorf("%w: leaf %d", ErrLifetimeTooLong, at)
		}
		if !c.Now.IsZero() && (use == UseKeyPackage || use == UseTree) {
			now := c.Now.Unix()
			if now < 0 || uint64(now) < lt.NotBefore || uint64(now) > lt.NotAfter {
				return fmt.Errorf("%w: leaf %d valid [%d, %d], now %d", ErrLifetimeInvalid, at, lt.NotBefore, lt.NotAfter, now)
			}
		}
	}
	// Extensions must be listed in the capabilities (non-default ones).
	capExts := caps.Extensions
	if len(ln.Extensions) > 4 && len(capExts) > 4 {
		capExts = slices.Clone(capExts)
		slices.Sort(capExts)
	}
	for _, e := range ln.Extensions {
		if defaultExtension(e.Type) {
			continue
		}
		found := false
		if len(capExts) > 4 && len(ln.Extensions) > 4 {
			_, found = slices.BinarySearch(capExts, e.Type)
		} else {
			found = slices.Contains(capExts, e.Type)
		}
		if !found {
			return fmt.Errorf("%w: extension %d (leaf %d)", ErrUnsupportedExtension, e.Type, at)
		}
	}
	return nil
}

// defaultExtension reports whether e is one of the extension types every
// client supports (RFC 9420, Section 7.2).
func defaultExtension(e wire.ExtensionType) bool { return e >= 1 && e <= 5 }

// defaultProposal reports whether p is one of the default proposal types
// (RFC 9420, Section 7.2).
func defaultProposal(p wire.ProposalType) bool { return p >= 1 && p <= 7 }

// requiredCapabilities finds and decodes the required_capabilities
// extension among exts (nil if absent).
func requiredCapabilities(exts []wire.Extension) (*wire.RequiredCapabilities, error) {
	rc, _, err := wire.RequiredCapabilitiesExtension(exts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRequiredCapabilities, err)
	}
	return rc, nil
}

// Validate verifies the whole tree as a joiner does (RFC 9420, Section
// 12.4.3.1): the tree is truncated (ErrNotTruncated); the root tree hash
// equals treeHash (ErrTreeHashMismatch; skipped when treeHash is nil); the
// unmerged_leaves of every parent are sorted, name non-blank descendant
// leaves, and are listed by every non-blank node in between; every leaf
// passes the checks of RFC 9420, Section 7.3 (as ValidateLeafNode with
// UseTree); encryption keys are unique across all nodes and signature keys
// across all leaves; and every non-blank parent node is parent-hash valid
// (VerifyParentHashes). The first violation is returned, wrapping the
// sentinel of the violated rule.
func (t *Tree) Validate(treeHash []byte, c *Context) error {
	if c == nil {
		c = &Context{}
	}
	if t.n == 0 {
		return fmt.Errorf("%w: empty tree", ErrMalformedTree)
	}
	if t.n > 1 && !t.subtreeNonBlankLeaf(treemath.Right(treemath.Root(t.n))) {
		return ErrNotTruncated
	}
	if treeHash != nil {
		h, err := t.TreeHash()
		if err != nil {
			return err
		}
		if !bytes.Equal(h, treeHash) {
			return fmt.Errorf("%w: computed %x, expected %x", ErrTreeHashMismatch, h, treeHash)
		}
	}
	if err := t.checkUnmerged(); err != nil {
		return err
	}
	req, err := requiredCapabilities(c.Extensions)
	if err != nil {
		return err
	}
	inUse := map[wire.CredentialType]bool{}
	for _, ln := range t.Leaves() {
		inUse[ln.Credential.Type] = true
	}
	sigErrs := t.verifyLeafSignatures(c.GroupID)
	sigKeys := map[string]treemath.LeafIndex{}
	for l, ln := range t.Leaves() {
		if err := t.checkLeaf(ln, UseTree, l, c, req, inUse, &sigErrs[l]); err != nil {
			return err
		}
		if prev, dup := sigKeys[string(ln.SignatureKey)]; dup {
			return fmt.Errorf("%w: leaves %d and %d", ErrDuplicateSignatureKey, prev, l)
		}
		sigKeys[string(ln.SignatureKey)] = l
	}
	encKeys := map[string]treemath.NodeIndex{}
	for i := treemath.NodeIndex(0); uint32(i) < t.width; i++ {
		nd := t.node(i)
		if nd == nil {
			continue
		}
		k := string(nodeEncryptionKey(nd))
		if prev, dup := encKeys[k]; dup {
			return fmt.Errorf("%w: nodes %d and %d", ErrDuplicateEncryptionKey, prev, i)
		}
		encKeys[k] = i
	}
	return t.VerifyParentHashes()
}

// verifyLeafSignatures checks every non-blank leaf's signature, spread
// over the available CPUs (signature checks dominate a joiner's validation
// of a large tree), and returns each leaf's result by leaf index. Reading
// the tree concurrently is safe: VerifySignature touches no cache.
func (t *Tree) verifyLeafSignatures(groupID []byte) []error {
	errs := make([]error, t.n)
	workers := min(runtime.GOMAXPROCS(0), int(t.n)/64+1)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := uint32(w); l < t.n; l += uint32(workers) {
				if ln := t.Leaf(treemath.LeafIndex(l)); ln != nil {
					errs[l] = ln.VerifySignature(t.suite, groupID, l)
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// subtreeNonBlankLeaf reports whether a leaf under x is non-blank.
func (t *Tree) subtreeNonBlankLeaf(x treemath.NodeIndex) bool {
	lo, hi := leafRange(x)
	for l := lo; l <= hi && l < uint64(t.n); l++ {
		if t.node(treemath.NodeIndex(2*l)) != nil {
			return true
		}
	}
	return false
}

// checkUnmerged verifies the unmerged_leaves rules of RFC 9420, Sections
// 7.1 and 12.4.3.1.
func (t *Tree) checkUnmerged() error {
	for i := 1; i < int(t.width); i += 2 {
		if p := t.ParentNode(treemath.NodeIndex(i)); p != nil {
			for j := 1; j < len(p.UnmergedLeaves); j++ {
				if p.UnmergedLeaves[j-1] >= p.UnmergedLeaves[j] {
					return fmt.Errorf("%w: node %d", ErrUnmergedLeavesUnsorted, i)
				}
			}
		}
	}
	for i := 1; i < int(t.width); i += 2 {
		x := treemath.NodeIndex(i)
		p := t.ParentNode(x)
		if p == nil {
			continue
		}
		for _, u := range p.UnmergedLeaves {
			if uint64(u) >= uint64(t.n) || !inSubtree(x, treemath.LeafIndex(u).Node()) {
				return fmt.Errorf("%w: leaf %d under node %d", ErrUnmergedLeafNotDescendant, u, x)
			}
			if t.Leaf(treemath.LeafIndex(u)) == nil {
				return fmt.Errorf("%w: leaf %d under node %d", ErrUnmergedLeafBlank, u, x)
			}
			for _, y := range treemath.DirectPath(treemath.LeafIndex(u).Node(), t.n) {
				if y == x {
					break
				}
				if q := t.ParentNode(y); q != nil {
					if _, found := slices.BinarySearch(q.UnmergedLeaves, u); !found {
						return fmt.Errorf("%w: leaf %d at node %d (listed by node %d)", ErrUnmergedLeafMissing, u, y, x)
					}
				}
			}
		}
	}
	return nil
}

// VerifyParentHashes checks that every non-blank parent node is
// parent-hash valid (RFC 9420, Section 7.9.2), top down: for each
// non-blank parent P there must be exactly one node D such that, with C
// the child of P above D and S the other child, D is in the resolution of
// C, D's parent_hash equals the parent hash of P with original sibling
// tree hash of S, and P's unmerged leaves under C are exactly the
// resolution of C without D. Since D is itself checked (if a parent) the
// chains end at leaves. Failures wrap ErrParentHashInvalid. The
// unmerged_leaves rules of RFC 9420, Section 12.4.3.1 are checked first
// (failing with their own sentinels): on a consistent tree the whole
// verification costs O(n log^2 n) hashes at most, whereas hostile
// unmerged lists could otherwise force O(n^2).
func (t *Tree) VerifyParentHashes() error {
	if err := t.checkUnmerged(); err != nil {
		return err
	}
	for i := 1; i < int(t.width); i += 2 {
		x := treemath.NodeIndex(i)
		p := t.ParentNode(x)
		if p == nil {
			continue
		}
		found := 0
		for _, side := range [2][2]treemath.NodeIndex{{treemath.Left(x), treemath.Right(x)}, {treemath.Right(x), treemath.Left(x)}} {
			cNode, sNode := side[0], side[1]
			sib, err := t.originalHash(sNode, p.UnmergedLeaves)
			if err != nil {
				return err
			}
			ph, err := t.parentHash(p.EncryptionKey, p.ParentHash, sib)
			if err != nil {
				return err
			}
			res := t.resolution(cNode, nil, nil)
			// P's unmerged leaves under C, as node indices.
			var unmergedC []treemath.NodeIndex
			for _, u := range p.UnmergedLeaves {
				if uint64(u) < uint64(t.n) && inSubtree(cNode, treemath.LeafIndex(u).Node()) {
					unmergedC = append(unmergedC, treemath.LeafIndex(u).Node())
				}
			}
			for _, d := range res {
				if !bytes.Equal(t.parentHashField(d), ph) {
					continue
				}
				rest := slices.DeleteFunc(slices.Clone(res), func(y treemath.NodeIndex) bool { return y == d })
				if sameSet(rest, unmergedC) {
					found++
				}
			}
		}
		if found != 1 {
			return fmt.Errorf("%w: node %d (%d valid descendants)", ErrParentHashInvalid, x, found)
		}
	}
	return nil
}

// parentHashField returns the parent_hash of node x: a parent's field, a
// commit leaf's field, nil otherwise.
func (t *Tree) parentHashField(x treemath.NodeIndex) []byte {
	nd := t.Node(x)
	switch {
	case nd == nil:
		return nil
	case nd.Parent != nil:
		return nd.Parent.ParentHash
	case nd.Leaf != nil && nd.Leaf.Source == wire.LeafNodeSourceCommit:
		return nd.Leaf.ParentHash
	}
	return nil
}

// sameSet reports whether a and b hold the same node indices.
func sameSet(a, b []treemath.NodeIndex) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
