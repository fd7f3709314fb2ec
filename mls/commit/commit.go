// Package commit implements the processing of a Commit's proposal list that
// is common to group members and to servers that follow a group's public
// state: proposal validity (RFC 9420, Section 12.1), proposal list
// validation (Section 12.2, and 12.4.3.2 for external Commits), the sender
// rules of Sections 6 and 12.1.8 with the "Ext" column of Section 17.4,
// when an UpdatePath is required (Section 12.4), and applying the list to
// the ratchet tree and GroupContext extensions in the order of Section
// 12.3. It also covers the SelfRemove proposal of draft-ietf-mls-extensions
// and the AppSync proposal and application_states extension of
// draft-ralston-mimi-protocol-02, Section 7.
//
// The package is pure: it holds no secrets, performs no I/O and never
// modifies its inputs. Left to the caller: placing an external joiner and
// merging the UpdatePath (tree.Tree.FreeLeaf, MergeUpdatePath on
// Result.Tree), checking that the PSKs are available, the key schedule,
// the transcript hashes and the confirmation tag (packages tree,
// keyschedule, framing), and application policy beyond the hooks in
// Params (SameClient, VerifyCredential).
package commit

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// SourcedProposal is a proposal as it appears in a Commit, resolved (RFC
// 9420, Section 12.4: ProposalOrRef).
type SourcedProposal struct {
	// Proposal is the proposal itself.
	Proposal *wire.Proposal
	// Sender is who proposed it: the committer for proposals by value,
	// the sender of the proposal message for proposals by reference.
	Sender wire.Sender
	// Ref is the ProposalRef when included by reference, nil when by
	// value.
	Ref []byte
}

// Params are the inputs of Apply (RFC 9420, Sections 12.2 to 12.4).
type Params struct {
	// Suite is the group's cipher suite.
	Suite *cipher.Suite
	// Tree is the current public ratchet tree. Apply works on a clone and
	// never modifies its content (tree.Tree.Clone does update the tree's
	// internal bookkeeping, so Apply must not run concurrently with other
	// uses of the same Tree).
	Tree *tree.Tree
	// Context is the current GroupContext (not modified).
	Context *wire.GroupContext
	// Committer is the Commit's sender: SenderMember (with its leaf
	// index) or SenderNewMemberCommit for an external Commit.
	Committer wire.Sender
	// Proposals are the Commit's proposals, in commit order.
	Proposals []SourcedProposal
	// HasPath says whether the Commit carries an UpdatePath.
	HasPath bool
	// Now is the time for LeafNode lifetime checks of Adds; the zero time
	// skips them (RFC 9420, Section 7.3 makes the check on receipt
	// RECOMMENDED only).
	Now time.Time

	// PathLeaf is the LeafNode of the Commit's UpdatePath. It is needed
	// for an external Commit holding a Remove, to check that the joiner
	// removes an old appearance of itself (RFC 9420, Section 12.2);
	// otherwise it may be nil.
	PathLeaf *wire.LeafNode
	// SameClient, when set, decides whether two leaves represent the same
	// client "according to the application" (RFC 9420, Section 12.2): it
	// is used for duplicate Adds, Adds of existing members, and the
	// Remove of an external Commit. By default two leaves are the same
	// client when their signature keys are equal, and the Remove of an
	// external Commit must remove a leaf whose credential equals the
	// UpdatePath leaf's.
	SameClient func(a, b *wire.LeafNode) bool
	// VerifyCredential, when set, validates the credential of every new
	// LeafNode (Adds and Updates; RFC 9420, Section 5.3.1).
	VerifyCredential func(ln *wire.LeafNode) error
}

// Result is the outcome of a valid proposal list (RFC 9420, Sections 12.3
// and 12.4.2).
type Result struct {
	// Tree is a clone of Params.Tree with the GroupContextExtensions,
	// Update, SelfRemove, Remove and Add proposals applied in that order
	// (RFC 9420, Section 12.3). The UpdatePath is NOT applied, and an
	// external joiner is not yet placed (see tree.Tree.FreeLeaf and
	// MergeUpdatePath).
	Tree *tree.Tree
	// Extensions are the new GroupContext extensions: the
	// GroupContextExtensions proposal's if any, then with the AppSyncs
	// applied to application_states (replaced in place, or appended at the
	// end of the list when the extension was absent).
	Extensions []wire.Extension
	// Added is the leaf index of each Add, in proposal order.
	Added []treemath.LeafIndex
	// AddedKeyPackages are the Adds' KeyPackages, in the order of Added.
	AddedKeyPackages []*wire.KeyPackage
	// Removed are the leaves removed by SelfRemove and Remove proposals,
	// in the order they were applied (SelfRemoves first, then Removes,
	// each in commit order).
	Removed []treemath.LeafIndex
	// RemovedLeaves are the LeafNodes that Removed held before the Commit
	// (same order).
	RemovedLeaves []*wire.LeafNode
	// Updated are the leaves replaced by Update proposals, in commit
	// order.
	Updated []treemath.LeafIndex
	// PSKs are the PreSharedKeyIDs of the PreSharedKey proposals, in
	// commit order (RFC 9420, Section 8.4).
	PSKs []wire.PreSharedKeyID
	// ReInit is the ReInit proposal, if any.
	ReInit *wire.ReInit
	// ExternalInit is the ExternalInit proposal of an external Commit.
	ExternalInit *wire.ExternalInit
	// AppSyncs are the AppSync proposals, in commit order.
	AppSyncs []*wire.AppSync
	// ApplicationStates are the application states after the AppSyncs
	// (the content of the application_states extension in Extensions; an
	// empty value when the group has none).
	ApplicationStates *appsync.States
	// PathRequired reports whether the proposal list requires an
	// UpdatePath (RFC 9420, Section 12.4).
	PathRequired bool
}

// KeyPackageRefs returns the KeyPackageRef (RFC 9420, Section 5.2) of each
// Add in r, in the order of r.Added, for routing Welcome messages.
func (r *Result) KeyPackageRefs(s *cipher.Suite) ([][]byte, error) {
	refs := make([][]byte, 0, len(r.AddedKeyPackages))
	for i, kp := range r.AddedKeyPackages {
		ref, err := kp.Ref(s)
		if err != nil {
			return nil, fmt.Errorf("mls commit: KeyPackageRef of Add %d: %w", i, err)
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// defaultProposal reports whether t is one of the proposal types of RFC
// 9420 that every client implements (Section 7.2 and 17.4).
func defaultProposal(t wire.ProposalType) bool { return t >= 1 && t <= 7 }

// defaultExtension reports whether t is one of the default extension
// types of RFC 9420 (Section 7.2 and 17.3).
func defaultExtension(t wire.ExtensionType) bool { return t >= 1 && t <= 5 }

// PathRequired reports whether a proposal of type t requires an
// UpdatePath in the Commit covering it (RFC 9420, Sections 12.4 and 17.4:
// Update, Remove, ExternalInit, GroupContextExtensions;
// draft-ietf-mls-extensions: SelfRemove; AppSync does not,
// draft-ralston-mimi-protocol-02, Section 7). Unknown types require one.
func PathRequired(t wire.ProposalType) bool {
	switch t {
	case wire.ProposalAdd, wire.ProposalPreSharedKey, wire.ProposalReInit, wire.ProposalAppSync:
		return false
	}
	return true
}

// ExternalSenderAllowed reports whether an external sender may send a
// proposal of type t (RFC 9420, Sections 12.1.8 and 17.4 "Ext" column;
// AppSync: draft-ralston-mimi-protocol-02, Section 7; SelfRemove:
// draft-ietf-mls-extensions, not allowed).
func ExternalSenderAllowed(t wire.ProposalType) bool {
	switch t {
	case wire.ProposalAdd, wire.ProposalRemove, wire.ProposalPreSharedKey, wire.ProposalReInit,
		wire.ProposalGroupContextExtensions, wire.ProposalAppSync:
		return true
	}
	return false
}

// checkShape rejects a proposal without a body or whose Type differs from
// its body's (RFC 9420, Section 12.1).
func checkShape(p *wire.Proposal) error {
	if p == nil || p.Body == nil {
		return fmt.Errorf("%w: no body", ErrMalformedProposal)
	}
	if p.Type != p.Body.ProposalType() {
		return fmt.Errorf("%w: type %d with a body of type %d", ErrMalformedProposal, p.Type, p.Body.ProposalType())
	}
	return nil
}

// checkSender applies the sender rules for a proposal sent in its own
// message (RFC 9420, Sections 6 and 12.1.8): a member sender must be a
// non-blank leaf, an external sender an entry of external_senders sending
// an allowed type, a new_member_proposal sender only Add.
func checkSender(t *tree.Tree, ctx *wire.GroupContext, sender wire.Sender, pt wire.ProposalType) error {
	switch sender.Type {
	case wire.SenderMember:
		if uint64(sender.Index) >= uint64(t.LeafCount()) || t.Leaf(treemath.LeafIndex(sender.Index)) == nil {
			return fmt.Errorf("%w: leaf %d", ErrUnknownSender, sender.Index)
		}
	case wire.SenderExternal:
		if pt == wire.ProposalSelfRemove {
			return fmt.Errorf("%w: from external sender %d", ErrSelfRemoveSender, sender.Index)
		}
		if !ExternalSenderAllowed(pt) {
			return fmt.Errorf("%w: type %d", ErrExternalSenderProposalType, pt)
		}
		senders, found, err := wire.ExternalSendersExtension(ctx.Extensions)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidExtensions, err)
		}
		if !found || uint64(sender.Index) >= uint64(len(senders)) {
			return fmt.Errorf("%w: index %d of %d", ErrUnknownExternalSender, sender.Index, len(senders))
		}
	case wire.SenderNewMemberProposal:
		if pt != wire.ProposalAdd {
			return fmt.Errorf("%w: type %d", ErrNewMemberProposalType, pt)
		}
	default:
		return fmt.Errorf("%w: sender type %d", ErrInvalidSender, sender.Type)
	}
	if pt == wire.ProposalSelfRemove && sender.Type != wire.SenderMember {
		return fmt.Errorf("%w: sender type %d", ErrSelfRemoveSender, sender.Type)
	}
	if pt == wire.ProposalUpdate && sender.Type != wire.SenderMember {
		return fmt.Errorf("%w: Update from sender type %d", ErrInvalidSender, sender.Type)
	}
	return nil
}

// checkPSK checks a PreSharedKey proposal (RFC 9420, Sections 8.4 and
// 12.1.4).
func checkPSK(s *cipher.Suite, psk *wire.PreSharedKeyID) error {
	if len(psk.Nonce) != s.HashSize() {
		return fmt.Errorf("%w: %d bytes, Nh is %d", ErrPSKNonceLength, len(psk.Nonce), s.HashSize())
	}
	if psk.Type == wire.PSKResumption && psk.Usage != wire.ResumptionApplication {
		return fmt.Errorf("%w: usage %d", ErrPSKUsage, psk.Usage)
	}
	return nil
}

// pskKey identifies the PSK a PreSharedKeyID names, without its nonce, for
// the duplicate rule of RFC 9420, Section 12.2.
func pskKey(psk *wire.PreSharedKeyID) string {
	w := codec.NewWriter()
	w.U8(uint8(psk.Type))
	if psk.Type == wire.PSKExternal {
		w.Opaque(psk.PSKID)
	} else {
		w.Opaque(psk.PSKGroupID)
		w.U64(psk.PSKEpoch)
	}
	b, _ := w.Bytes()
	return string(b)
}

// checkExtensions checks an extension list for the GroupContext (RFC
// 9420, Section 13.4): no type twice, and the known GroupContext
// extensions decode.
func checkExtensions(exts []wire.Extension) error {
	if t, dup := wire.DuplicateExtension(exts); dup {
		return fmt.Errorf("%w: extension type %d twice", ErrInvalidExtensions, t)
	}
	if _, _, err := wire.RequiredCapabilitiesExtension(exts); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidExtensions, err)
	}
	if _, _, err := wire.ExternalSendersExtension(exts); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidExtensions, err)
	}
	if _, _, err := wire.ApplicationStatesExtension(exts); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidExtensions, err)
	}
	return nil
}

// supportsExtensions reports the first non-default extension type of exts
// that caps does not list (RFC 9420, Section 13.4).
func supportsExtensions(caps *wire.Capabilities, exts []wire.Extension) (wire.ExtensionType, bool) {
	for _, e := range exts {
		if !defaultExtension(e.Type) && !slices.Contains(caps.Extensions, e.Type) {
			return e.Type, false
		}
	}
	return 0, true
}

// supportsRequired checks caps against a required_capabilities extension
// (RFC 9420, Section 11.1).
func supportsRequired(caps *wire.Capabilities, rc *wire.RequiredCapabilities) error {
	if rc == nil {
		return nil
	}
	for _, e := range rc.ExtensionTypes {
		if !defaultExtension(e) && !slices.Contains(caps.Extensions, e) {
			return fmt.Errorf("extension type %d", e)
		}
	}
	for _, p := range rc.ProposalTypes {
		if !defaultProposal(p) && !slices.Contains(caps.Proposals, p) {
			return fmt.Errorf("proposal type %d", p)
		}
	}
	for _, c := range rc.CredentialTypes {
		if !slices.Contains(caps.Credentials, c) {
			return fmt.Errorf("credential type %d", c)
		}
	}
	return nil
}

// checkMembersSupport checks that every member of t satisfies a new
// GroupContext extension list (RFC 9420, Sections 11.1, 12.1.7 and 13.4).
func checkMembersSupport(t *tree.Tree, exts []wire.Extension) error {
	rc, _, err := wire.RequiredCapabilitiesExtension(exts)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidExtensions, err)
	}
	for l, ln := range t.Leaves() {
		if et, ok := supportsExtensions(&ln.Capabilities, exts); !ok {
			return fmt.Errorf("%w: leaf %d lacks extension type %d", ErrGCEUnsupportedExtension, l, et)
		}
		if err := supportsRequired(&ln.Capabilities, rc); err != nil {
			return fmt.Errorf("%w: leaf %d lacks %w", ErrGCERequiredCapabilities, l, err)
		}
	}
	return nil
}

// checkKeyPackage runs the KeyPackage checks of RFC 9420, Section 10.1.
func checkKeyPackage(s *cipher.Suite, ctx *wire.GroupContext, kp *wire.KeyPackage) error {
	if kp.Version != ctx.Version {
		return fmt.Errorf("%w: version %d, group %d", ErrInvalidKeyPackage, kp.Version, ctx.Version)
	}
	if kp.CipherSuite != ctx.CipherSuite {
		return fmt.Errorf("%w: suite %#04x, group %#04x", ErrInvalidKeyPackage, uint16(kp.CipherSuite), uint16(ctx.CipherSuite))
	}
	if err := kp.Verify(s); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	return nil
}

// credentialsEqual reports whether two credentials are identical.
func credentialsEqual(a, b *wire.Credential) bool {
	if a.Type != b.Type || !bytes.Equal(a.Identity, b.Identity) || len(a.Certificates) != len(b.Certificates) {
		return false
	}
	for i := range a.Certificates {
		if !bytes.Equal(a.Certificates[i], b.Certificates[i]) {
			return false
		}
	}
	return true
}

// sameSignatureKey is the default SameClient.
func sameSignatureKey(a, b *wire.LeafNode) bool { return bytes.Equal(a.SignatureKey, b.SignatureKey) }

// cloneExtensions deep-copies an extension list.
func cloneExtensions(exts []wire.Extension) []wire.Extension {
	out := make([]wire.Extension, len(exts))
	for i, e := range exts {
		out[i] = wire.Extension{Type: e.Type, Data: bytes.Clone(e.Data)}
	}
	return out
}

// setExtension replaces the extension of e's type in exts, or appends e.
func setExtension(exts []wire.Extension, e wire.Extension) []wire.Extension {
	for i := range exts {
		if exts[i].Type == e.Type {
			exts[i] = e
			return exts
		}
	}
	return append(exts, e)
}

// ValidateProposal checks one proposal received in its own message, before
// any Commit (RFC 9420, Section 12.1): the sender rules (Sections 6 and
// 12.1.8, including that an external sender is listed in external_senders
// and that the type is allowed for it), the proposal's own validity against
// the current tree and GroupContext, and that every member supports a
// non-default proposal type (Section 13.3). Rules that depend on the rest
// of a Commit (duplicates, Adds of existing clients that the Commit may
// remove, ReInit alone, AppSync with GroupContextExtensions, the
// committer's own Update) are Apply's. ExternalInit is never valid on its
// own (Section 12.1.6). now is for the lifetime of an Add's leaf (zero
// skips). Errors are *ProposalError with Index 0 and a nil Ref.
func ValidateProposal(s *cipher.Suite, t *tree.Tree, ctx *wire.GroupContext, sender wire.Sender, p *wire.Proposal, now time.Time) error {
	if s == nil || t == nil || ctx == nil {
		return fmt.Errorf("%w: nil suite, tree or context", ErrInvalidParams)
	}
	if err := validateProposal(s, t, ctx, sender, p, now); err != nil {
		return &ProposalError{Index: 0, Err: err}
	}
	return nil
}

func validateProposal(s *cipher.Suite, t *tree.Tree, ctx *wire.GroupContext, sender wire.Sender, p *wire.Proposal, now time.Time) error {
	if err := checkShape(p); err != nil {
		return err
	}
	if err := checkSender(t, ctx, sender, p.Type); err != nil {
		return err
	}
	if !defaultProposal(p.Type) {
		for l, ln := range t.Leaves() {
			if !slices.Contains(ln.Capabilities.Proposals, p.Type) {
				return fmt.Errorf("%w: type %d, leaf %d", ErrUnsupportedProposalType, p.Type, l)
			}
		}
	}
	tc := &tree.Context{GroupID: ctx.GroupID, Extensions: ctx.Extensions, Now: now}
	switch b := p.Body.(type) {
	case *wire.Add:
		if err := checkKeyPackage(s, ctx, &b.KeyPackage); err != nil {
			return err
		}
		if et, ok := supportsExtensions(&b.KeyPackage.LeafNode.Capabilities, ctx.Extensions); !ok {
			return fmt.Errorf("%w: extension type %d", ErrUnsupportedGroupExtension, et)
		}
		// A member with the same signature key may be removed by the
		// Commit that will carry this Add (RFC 9420, Section 12.2), so
		// validate against the tree without it.
		vt := t
		ln := &b.KeyPackage.LeafNode
		for l, m := range t.Leaves() {
			if bytes.Equal(m.SignatureKey, ln.SignatureKey) {
				if vt == t {
					vt = t.Clone()
				}
				if err := vt.RemoveLeaf(l); err != nil {
					return fmt.Errorf("%w: %w", ErrInvalidLeafNode, err)
				}
			}
		}
		if err := vt.ValidateLeafNode(ln, tree.UseKeyPackage, vt.LeftmostBlankLeaf(), tc); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidLeafNode, err)
		}
	case *wire.Update:
		if err := t.ValidateLeafNode(&b.LeafNode, tree.UseUpdate, treemath.LeafIndex(sender.Index), tc); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidLeafNode, err)
		}
	case *wire.Remove:
		if uint64(b.Removed) >= uint64(t.LeafCount()) {
			return fmt.Errorf("%w: leaf %d of %d", ErrRemoveOutOfRange, b.Removed, t.LeafCount())
		}
		if t.Leaf(treemath.LeafIndex(b.Removed)) == nil {
			return fmt.Errorf("%w: leaf %d", ErrRemoveBlankLeaf, b.Removed)
		}
	case *wire.PreSharedKey:
		return checkPSK(s, &b.PSK)
	case *wire.ReInit:
		if b.Version < ctx.Version {
			return fmt.Errorf("%w: %d < %d", ErrReInitVersion, b.Version, ctx.Version)
		}
	case *wire.ExternalInit:
		return fmt.Errorf("%w: as a proposal message", ErrExternalInitNotAllowed)
	case *wire.GroupContextExtensions:
		if err := checkExtensions(b.Extensions); err != nil {
			return err
		}
		return checkMembersSupport(t, b.Extensions)
	case *wire.SelfRemove:
		// Sender rules (member only) were checked above.
	case *wire.AppSync:
		st, _, err := wire.ApplicationStatesExtension(ctx.Extensions)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidExtensions, err)
		}
		if _, err := st.ApplyAll([]*appsync.AppSync{&b.AppSync}); err != nil {
			return fmt.Errorf("%w: %w", ErrAppSyncFailed, err)
		}
	default:
		return fmt.Errorf("%w: unknown body %T", ErrMalformedProposal, p.Body)
	}
	return nil
}
