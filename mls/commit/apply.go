package commit

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// indexed is a proposal body with its position in the Commit.
type indexed[T any] struct {
	i    int
	body T
}

// Apply validates a Commit's proposal list and applies it to a clone of the
// tree and to the GroupContext extensions (RFC 9420, Sections 12.2, 12.3
// and 12.4.2; 12.4.3.2 for external Commits; draft-ietf-mls-extensions for
// SelfRemove; draft-ralston-mimi-protocol-02, Section 7 for AppSync).
//
// Checks, each failing with its own sentinel inside a *ProposalError
// naming the proposal (commit-level failures without one proposal to
// blame, such as a missing path for an empty list, are returned bare):
//
//   - every proposal: well formed; its sender allowed (members are
//     non-blank leaves, external senders listed and sending an "Ext"
//     type, new_member_proposal only Add, proposals by value from the
//     committer); a non-default type supported by every member that will
//     process the Commit;
//   - Add: KeyPackage valid (Section 10.1, version and suite of the
//     group), leaf node valid in the tree (Section 7.3, against the new
//     extensions), the group's extensions supported, no two Adds for one
//     client, no Add of a client still in the group;
//   - Update: by reference, from a member other than the committer, leaf
//     node valid with source update; at most one Update/Remove/SelfRemove
//     per leaf;
//   - Remove: a non-blank leaf in range, not the committer, not a leaf
//     that also SelfRemoves;
//   - PreSharedKey: psk_nonce of length Nh, resumption usage application,
//     no PSK twice;
//   - ReInit: alone, version not lower; ExternalInit: only in an external
//     Commit; GroupContextExtensions: at most one, well formed, supported
//     by every member after the Commit (required_capabilities included);
//   - SelfRemove: by reference, from a member, at most one per member;
//   - AppSync: not with GroupContextExtensions, at most one per
//     applicationId, applies cleanly in commit order;
//   - external Commit (Committer.Type new_member_commit): exactly one
//     ExternalInit, otherwise only Remove (at most one, of an old
//     appearance of the joiner: Params.PathLeaf) and PreSharedKey by value
//     and SelfRemove by reference;
//   - an UpdatePath when the list is empty, holds a path-requiring type
//     (PathRequired) or the Commit is external.
//
// Application order (Section 12.3): GroupContextExtensions, Updates,
// SelfRemoves, Removes, Adds; AppSyncs then update application_states in
// commit order. Params are never modified; on error nothing is returned.
func Apply(p *Params) (*Result, error) {
	if p == nil || p.Suite == nil || p.Tree == nil || p.Context == nil {
		return nil, fmt.Errorf("%w: nil suite, tree or context", ErrInvalidParams)
	}
	if p.Context.CipherSuite != p.Suite.ID() {
		return nil, fmt.Errorf("%w: suite %v, GroupContext %v", ErrInvalidParams, p.Suite.ID(), p.Context.CipherSuite)
	}
	a := &applier{p: p, t: p.Tree}
	return a.run()
}

// applier carries the state of one Apply.
type applier struct {
	p        *Params
	t        *tree.Tree // the original tree (read only)
	external bool
	res      *Result

	gce          *indexed[*wire.GroupContextExtensions]
	updates      []indexed[*wire.Update]
	selfRemoves  []indexed[treemath.LeafIndex]
	removes      []indexed[*wire.Remove]
	adds         []indexed[*wire.Add]
	appSyncs     []indexed[*wire.AppSync]
	externalInit []int
}

// perr wraps err for proposal i.
func (a *applier) perr(i int, err error) error {
	return &ProposalError{Index: i, Ref: bytes.Clone(a.p.Proposals[i].Ref), Err: err}
}

func (a *applier) sameClient(x, y *wire.LeafNode) bool {
	if a.p.SameClient != nil {
		return a.p.SameClient(x, y)
	}
	return sameSignatureKey(x, y)
}

func (a *applier) run() (*Result, error) {
	p := a.p
	switch p.Committer.Type {
	case wire.SenderMember:
		if uint64(p.Committer.Index) >= uint64(a.t.LeafCount()) || a.t.Leaf(treemath.LeafIndex(p.Committer.Index)) == nil {
			return nil, fmt.Errorf("%w: leaf %d", ErrInvalidCommitter, p.Committer.Index)
		}
	case wire.SenderNewMemberCommit:
		a.external = true
	default:
		return nil, fmt.Errorf("%w: sender type %d", ErrInvalidCommitter, p.Committer.Type)
	}
	if err := checkExtensions(p.Context.Extensions); err != nil {
		return nil, err
	}
	a.res = &Result{}
	if err := a.classify(); err != nil {
		return nil, err
	}
	if err := a.checkList(); err != nil {
		return nil, err
	}
	if err := a.apply(); err != nil {
		return nil, err
	}
	return a.res, nil
}

// classify runs the per-proposal checks that need no tree changes and
// sorts the proposals by type.
func (a *applier) classify() error {
	p, res := a.p, a.res
	pskSeen := map[string]bool{}
	// Leaves targeted by Update, Remove and SelfRemove.
	target := map[treemath.LeafIndex]int{}
	selfRemoved := map[treemath.LeafIndex]bool{}
	for i := range p.Proposals {
		sp := &p.Proposals[i]
		if err := checkShape(sp.Proposal); err != nil {
			return a.perr(i, err)
		}
		pt := sp.Proposal.Type
		byValue := sp.Ref == nil
		if byValue {
			if sp.Sender != p.Committer {
				return a.perr(i, fmt.Errorf("%w: proposal by value from %v, committer %v", ErrInvalidSender, sp.Sender, p.Committer))
			}
			if pt == wire.ProposalSelfRemove {
				return a.perr(i, ErrSelfRemoveByValue)
			}
			if pt == wire.ProposalUpdate {
				return a.perr(i, ErrUpdateByValue)
			}
		} else {
			if sp.Sender.Type == wire.SenderNewMemberCommit {
				return a.perr(i, fmt.Errorf("%w: proposal by reference from a new_member_commit sender", ErrInvalidSender))
			}
			if err := checkSender(a.t, p.Context, sp.Sender, pt); err != nil {
				return a.perr(i, err)
			}
		}
		if a.external {
			switch {
			case !byValue && pt != wire.ProposalSelfRemove:
				return a.perr(i, fmt.Errorf("%w: type %d", ErrExternalCommitByReference, pt))
			case pt != wire.ProposalExternalInit && pt != wire.ProposalRemove &&
				pt != wire.ProposalPreSharedKey && pt != wire.ProposalSelfRemove:
				return a.perr(i, fmt.Errorf("%w: type %d", ErrExternalCommitProposalType, pt))
			}
		}
		if !a.external && pt == wire.ProposalExternalInit {
			return a.perr(i, ErrExternalInitNotAllowed)
		}
		switch b := sp.Proposal.Body.(type) {
		case *wire.Add:
			a.adds = append(a.adds, indexed[*wire.Add]{i, b})
		case *wire.Update:
			l := treemath.LeafIndex(sp.Sender.Index)
			if p.Committer.Type == wire.SenderMember && sp.Sender.Index == p.Committer.Index {
				return a.perr(i, ErrUpdateByCommitter)
			}
			if _, dup := target[l]; dup {
				return a.perr(i, fmt.Errorf("%w: leaf %d", ErrDuplicateUpdateRemove, l))
			}
			target[l] = i
			a.updates = append(a.updates, indexed[*wire.Update]{i, b})
		case *wire.Remove:
			l := treemath.LeafIndex(b.Removed)
			if uint64(b.Removed) >= uint64(a.t.LeafCount()) {
				return a.perr(i, fmt.Errorf("%w: leaf %d of %d", ErrRemoveOutOfRange, b.Removed, a.t.LeafCount()))
			}
			if a.t.Leaf(l) == nil {
				return a.perr(i, fmt.Errorf("%w: leaf %d", ErrRemoveBlankLeaf, l))
			}
			if p.Committer.Type == wire.SenderMember && b.Removed == p.Committer.Index {
				return a.perr(i, fmt.Errorf("%w: leaf %d", ErrRemoveCommitter, l))
			}
			a.removes = append(a.removes, indexed[*wire.Remove]{i, b})
		case *wire.PreSharedKey:
			if err := checkPSK(p.Suite, &b.PSK); err != nil {
				return a.perr(i, err)
			}
			k := pskKey(&b.PSK)
			if pskSeen[k] {
				return a.perr(i, ErrDuplicatePSK)
			}
			pskSeen[k] = true
			res.PSKs = append(res.PSKs, clonePSK(&b.PSK))
		case *wire.ReInit:
			if b.Version < p.Context.Version {
				return a.perr(i, fmt.Errorf("%w: %d < %d", ErrReInitVersion, b.Version, p.Context.Version))
			}
			res.ReInit = b
		case *wire.ExternalInit:
			a.externalInit = append(a.externalInit, i)
			res.ExternalInit = b
		case *wire.GroupContextExtensions:
			if a.gce != nil {
				return a.perr(i, ErrMultipleGCE)
			}
			if err := checkExtensions(b.Extensions); err != nil {
				return a.perr(i, err)
			}
			a.gce = &indexed[*wire.GroupContextExtensions]{i, b}
		case *wire.SelfRemove:
			l := treemath.LeafIndex(sp.Sender.Index)
			if selfRemoved[l] {
				return a.perr(i, fmt.Errorf("%w: leaf %d", ErrDuplicateSelfRemove, l))
			}
			if p.Committer.Type == wire.SenderMember && sp.Sender.Index == p.Committer.Index {
				return a.perr(i, fmt.Errorf("%w: SelfRemove of the committer", ErrRemoveCommitter))
			}
			if _, dup := target[l]; dup {
				return a.perr(i, fmt.Errorf("%w: leaf %d", ErrDuplicateUpdateRemove, l))
			}
			target[l] = i
			selfRemoved[l] = true
			a.selfRemoves = append(a.selfRemoves, indexed[treemath.LeafIndex]{i, l})
		case *wire.AppSync:
			a.appSyncs = append(a.appSyncs, indexed[*wire.AppSync]{i, b})
			res.AppSyncs = append(res.AppSyncs, b)
		default:
			return a.perr(i, fmt.Errorf("%w: unknown body %T", ErrMalformedProposal, b))
		}
	}
	// Removes after Updates and SelfRemoves, so that the more specific
	// SelfRemove rule wins over the duplicate rule.
	for _, r := range a.removes {
		l := treemath.LeafIndex(r.body.Removed)
		if selfRemoved[l] {
			return a.perr(r.i, fmt.Errorf("%w: leaf %d", ErrRemoveSelfRemoved, l))
		}
		if _, dup := target[l]; dup {
			return a.perr(r.i, fmt.Errorf("%w: leaf %d", ErrDuplicateUpdateRemove, l))
		}
		target[l] = r.i
	}
	return nil
}

// checkList applies the rules about the list as a whole.
func (a *applier) checkList() error {
	p, res := a.p, a.res
	n := len(p.Proposals)
	if res.ReInit != nil && n > 1 {
		for i := range p.Proposals {
			if p.Proposals[i].Proposal.Type == wire.ProposalReInit {
				return a.perr(i, fmt.Errorf("%w: %d proposals", ErrReInitNotAlone, n))
			}
		}
	}
	if a.external {
		if len(a.externalInit) == 0 {
			return ErrExternalInitCount
		}
		if len(a.externalInit) > 1 {
			return a.perr(a.externalInit[1], fmt.Errorf("%w: %d", ErrExternalInitCount, len(a.externalInit)))
		}
		if len(a.removes) > 1 {
			return a.perr(a.removes[1].i, fmt.Errorf("%w: %d Removes", ErrExternalCommitRemove, len(a.removes)))
		}
		if len(a.removes) == 1 {
			r := a.removes[0]
			if p.PathLeaf == nil {
				return ErrMissingPathLeaf
			}
			old := a.t.Leaf(treemath.LeafIndex(r.body.Removed))
			ok := false
			if p.SameClient != nil {
				ok = p.SameClient(old, p.PathLeaf)
			} else {
				ok = credentialsEqual(&old.Credential, &p.PathLeaf.Credential)
			}
			if !ok {
				return a.perr(r.i, fmt.Errorf("%w: leaf %d is not the joiner", ErrExternalCommitRemove, r.body.Removed))
			}
		}
	}
	// AppSync list rules (draft-ralston-mimi-protocol-02, Section 7).
	if len(a.appSyncs) > 0 && a.gce != nil {
		return a.perr(a.appSyncs[0].i, fmt.Errorf("%w: %w", ErrAppSyncWithGCE, appsync.ErrAppSyncWithGCE))
	}
	seenApp := map[uint32]bool{}
	for _, s := range a.appSyncs {
		if seenApp[s.body.ApplicationID] {
			return a.perr(s.i, fmt.Errorf("%w: applicationId %d: %w", ErrDuplicateAppSync, s.body.ApplicationID, appsync.ErrDuplicateAppID))
		}
		seenApp[s.body.ApplicationID] = true
	}
	// Non-default proposal types must be supported by every member that
	// will process the Commit (RFC 9420, Sections 12.2 and 13.3).
	removed := map[treemath.LeafIndex]bool{}
	for _, s := range a.selfRemoves {
		removed[s.body] = true
	}
	for _, r := range a.removes {
		removed[treemath.LeafIndex(r.body.Removed)] = true
	}
	checked := map[wire.ProposalType]bool{}
	for i := range p.Proposals {
		pt := p.Proposals[i].Proposal.Type
		if defaultProposal(pt) || checked[pt] {
			continue
		}
		checked[pt] = true
		for l, ln := range a.t.Leaves() {
			if !removed[l] && !slices.Contains(ln.Capabilities.Proposals, pt) {
				return a.perr(i, fmt.Errorf("%w: type %d, leaf %d", ErrUnsupportedProposalType, pt, l))
			}
		}
	}
	// UpdatePath (RFC 9420, Sections 12.4 and 12.4.3.2).
	res.PathRequired = n == 0 || a.external
	first := -1
	for i := range p.Proposals {
		if PathRequired(p.Proposals[i].Proposal.Type) {
			res.PathRequired = true
			first = i
			break
		}
	}
	if res.PathRequired && !p.HasPath {
		if first >= 0 {
			return a.perr(first, fmt.Errorf("%w: proposal type %d", ErrPathRequired, p.Proposals[first].Proposal.Type))
		}
		return ErrPathRequired
	}
	return nil
}

// apply applies the proposals to a clone of the tree in the order of RFC
// 9420, Section 12.3, validating what depends on the evolving tree.
func (a *applier) apply() error {
	p, res := a.p, a.res
	t := a.t.Clone()
	exts := cloneExtensions(p.Context.Extensions)
	if a.gce != nil {
		exts = cloneExtensions(a.gce.body.Extensions)
	}
	tc := &tree.Context{GroupID: p.Context.GroupID, Extensions: exts, VerifyCredential: p.VerifyCredential}

	// Updates (any order; commit order here).
	for _, u := range a.updates {
		l := treemath.LeafIndex(p.Proposals[u.i].Sender.Index)
		ln := &u.body.LeafNode
		if err := t.ValidateLeafNode(ln, tree.UseUpdate, l, tc); err != nil {
			return a.perr(u.i, fmt.Errorf("%w: %w", ErrInvalidLeafNode, err))
		}
		if err := t.UpdateLeaf(l, ln); err != nil {
			return a.perr(u.i, fmt.Errorf("%w: %w", ErrInvalidLeafNode, err))
		}
		res.Updated = append(res.Updated, l)
	}
	// SelfRemoves, then Removes (draft-ietf-mls-extensions).
	remove := func(i int, l treemath.LeafIndex) error {
		res.RemovedLeaves = append(res.RemovedLeaves, a.t.Leaf(l))
		if err := t.RemoveLeaf(l); err != nil {
			return a.perr(i, fmt.Errorf("%w: %w", ErrRemoveBlankLeaf, err))
		}
		res.Removed = append(res.Removed, l)
		return nil
	}
	for _, s := range a.selfRemoves {
		if err := remove(s.i, s.body); err != nil {
			return err
		}
	}
	for _, r := range a.removes {
		if err := remove(r.i, treemath.LeafIndex(r.body.Removed)); err != nil {
			return err
		}
	}
	// Adds, in commit order.
	for k, ad := range a.adds {
		kp := &ad.body.KeyPackage
		ln := &kp.LeafNode
		if err := checkKeyPackage(p.Suite, p.Context, kp); err != nil {
			return a.perr(ad.i, err)
		}
		for _, prev := range a.adds[:k] {
			if a.sameClient(&prev.body.KeyPackage.LeafNode, ln) {
				return a.perr(ad.i, fmt.Errorf("%w: same client as proposal %d", ErrDuplicateAdd, prev.i))
			}
		}
		for l, m := range t.Leaves() {
			if a.addedBefore(l, k) {
				continue
			}
			if a.sameClient(m, ln) {
				return a.perr(ad.i, fmt.Errorf("%w: leaf %d", ErrAddExistingClient, l))
			}
		}
		if et, ok := supportsExtensions(&ln.Capabilities, exts); !ok {
			return a.perr(ad.i, fmt.Errorf("%w: extension type %d", ErrUnsupportedGroupExtension, et))
		}
		at := t.LeftmostBlankLeaf()
		addCtx := *tc
		addCtx.Now = p.Now
		if err := t.ValidateLeafNode(ln, tree.UseKeyPackage, at, &addCtx); err != nil {
			return a.perr(ad.i, fmt.Errorf("%w: %w", ErrInvalidLeafNode, err))
		}
		l, err := t.AddLeaf(ln)
		if err != nil {
			return a.perr(ad.i, fmt.Errorf("%w: %w", ErrInvalidLeafNode, err))
		}
		res.Added = append(res.Added, l)
		res.AddedKeyPackages = append(res.AddedKeyPackages, kp)
	}
	// The new extensions must suit every member after the Commit (RFC
	// 9420, Sections 11.1 and 12.1.7).
	if a.gce != nil {
		if err := checkMembersSupport(t, exts); err != nil {
			return a.perr(a.gce.i, err)
		}
	}
	// AppSyncs (draft-ralston-mimi-protocol-02, Section 7).
	st, _, err := wire.ApplicationStatesExtension(exts)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidExtensions, err)
	}
	if len(a.appSyncs) > 0 {
		for _, s := range a.appSyncs {
			// One at a time, to blame the failing proposal.
			if st, err = st.ApplyAll([]*appsync.AppSync{&s.body.AppSync}); err != nil {
				return a.perr(s.i, fmt.Errorf("%w: %w", ErrAppSyncFailed, err))
			}
		}
		e, err := wire.NewApplicationStatesExtension(st)
		if err != nil {
			return a.perr(a.appSyncs[0].i, fmt.Errorf("%w: encoding application_states: %w", ErrAppSyncFailed, err))
		}
		exts = setExtension(exts, e)
	}
	res.Tree = t
	res.Extensions = exts
	res.ApplicationStates = st
	return nil
}

// addedBefore reports whether leaf l was filled by one of the first k Adds
// of this Commit (those are checked by the duplicate-Add rule instead).
func (a *applier) addedBefore(l treemath.LeafIndex, k int) bool {
	return slices.Contains(a.res.Added[:k], l)
}

// clonePSK deep-copies a PreSharedKeyID.
func clonePSK(p *wire.PreSharedKeyID) wire.PreSharedKeyID {
	c := *p
	c.PSKID = bytes.Clone(p.PSKID)
	c.PSKGroupID = bytes.Clone(p.PSKGroupID)
	c.Nonce = bytes.Clone(p.Nonce)
	return c
}
