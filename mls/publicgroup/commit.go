package publicgroup

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"math"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// AddedMember is a member added by a Commit (RFC 9420, Section 12.1.1).
type AddedMember struct {
	Leaf          treemath.LeafIndex
	KeyPackageRef []byte // for routing the Welcome (RFC 9420, Section 12.4.3.1)
	Credential    wire.Credential
	SignatureKey  []byte
}

// RemovedMember is a member removed by a Remove or SelfRemove proposal
// (RFC 9420, Section 12.1.3; draft-ietf-mls-extensions).
type RemovedMember struct {
	Leaf         treemath.LeafIndex
	Credential   wire.Credential
	SignatureKey []byte
}

// CommitResult is a verified, valid Commit and the state it leads to (RFC
// 9420, Section 12.4.2). It does not change the view until passed to
// Accept. All fields are read-only.
type CommitResult struct {
	// Epoch is the new epoch.
	Epoch uint64
	// Committer is the Commit's sender; CommitterLeaf its leaf in the new
	// tree (for an external Commit, the joiner's new leaf).
	Committer     wire.Sender
	CommitterLeaf treemath.LeafIndex
	// External reports an external Commit (RFC 9420, Section 12.4.3.2).
	External bool
	// Added are the members added by Add proposals, in proposal order.
	Added []AddedMember
	// Removed are the members removed, in the order they were removed
	// (SelfRemoves, then Removes).
	Removed []RemovedMember
	// Updated are the leaves replaced by Update proposals.
	Updated []treemath.LeafIndex
	// ProposalRefs are the references the Commit included (in order).
	ProposalRefs [][]byte
	// AppSyncs are the AppSync proposals applied, in commit order
	// (draft-ralston-mimi-protocol-02, Section 7).
	AppSyncs []*wire.AppSync
	// ApplicationStates is the new content of application_states.
	ApplicationStates *appsync.States
	// PSKs are the PreSharedKeyIDs of the Commit (RFC 9420, Section 8.4).
	PSKs []wire.PreSharedKeyID
	// ReInit is set when the Commit reinitializes the group; the group
	// must not be used afterwards (RFC 9420, Section 12.4.2).
	ReInit *wire.ReInit
	// GroupContext is the new GroupContext.
	GroupContext *wire.GroupContext
	// ConfirmationTag is the Commit's confirmation_tag (not verifiable by
	// a server).
	ConfirmationTag []byte
	// InterimTranscriptHash is the new interim transcript hash (RFC 9420,
	// Section 8.2).
	InterimTranscriptHash []byte
	// Content is the Commit's verified AuthenticatedContent.
	Content *wire.AuthenticatedContent

	base    *View
	baseGen uint64
	next    *View
}

// View returns the view of the new epoch (a copy: accepting the result is
// what changes the original view).
func (r *CommitResult) View() *View { return r.next.Clone() }

// HandleCommit verifies a Commit PublicMessage (VerifyPublicMessage; the
// sender a member or new_member_commit, whose key is the UpdatePath
// LeafNode's), resolves the proposals it references from those received in
// this epoch (ErrUnknownProposalRef inside a *commit.ProposalError),
// validates and applies the proposal list (commit.Apply: RFC 9420,
// Sections 12.2, 12.3, 12.4.2 and 12.4.3.2), merges the UpdatePath into the
// new tree without decrypting it (tree.MergeUpdatePath: leaf node
// validation with source commit, fresh keys, path length and ciphertext
// counts, parent hashes), and computes the new GroupContext (epoch + 1, new
// tree hash, confirmed transcript hash over the Commit's
// AuthenticatedContent, new extensions) and interim transcript hash (RFC
// 9420, Section 8.2). The view is never changed: the caller calls Accept
// with the result to move to the new epoch.
func (v *View) HandleCommit(msg *wire.PublicMessage) (*CommitResult, error) {
	ac, err := v.VerifyPublicMessage(msg)
	if err != nil {
		return nil, err
	}
	c := &ac.Content
	if c.ContentType != wire.ContentCommit {
		return nil, ErrNotCommit
	}
	if c.Sender.Type != wire.SenderMember && c.Sender.Type != wire.SenderNewMemberCommit {
		return nil, fmt.Errorf("%w: commit from sender type %d", ErrInvalidSender, c.Sender.Type)
	}
	if v.ctx.Epoch == math.MaxUint64 {
		return nil, ErrEpochExhausted
	}
	cm := c.Commit
	external := c.Sender.Type == wire.SenderNewMemberCommit

	// Resolve the proposals (RFC 9420, Section 12.4).
	props := make([]commit.SourcedProposal, len(cm.Proposals))
	var refs [][]byte
	for i, por := range cm.Proposals {
		switch por.Type {
		case wire.ProposalOrRefProposal:
			if por.Proposal == nil {
				return nil, &commit.ProposalError{Index: i, Err: fmt.Errorf("%w: empty ProposalOrRef", commit.ErrMalformedProposal)}
			}
			props[i] = commit.SourcedProposal{Proposal: por.Proposal, Sender: c.Sender}
		case wire.ProposalOrRefReference:
			cp := v.proposal(por.Reference)
			if cp == nil {
				return nil, &commit.ProposalError{Index: i, Ref: bytes.Clone(por.Reference), Err: ErrUnknownProposalRef}
			}
			props[i] = commit.SourcedProposal{Proposal: cp.msg.Content.Proposal, Sender: cp.msg.Content.Sender, Ref: cp.ref}
			refs = append(refs, cp.ref)
		default:
			return nil, &commit.ProposalError{Index: i, Err: fmt.Errorf("%w: ProposalOrRef type %d", commit.ErrMalformedProposal, por.Type)}
		}
	}
	var pathLeaf *wire.LeafNode
	if cm.Path != nil {
		pathLeaf = &cm.Path.LeafNode
	}
	res, err := commit.Apply(&commit.Params{
		Suite:     v.suite,
		Tree:      v.tree,
		Context:   v.ctx,
		Committer: c.Sender,
		Proposals: props,
		HasPath:   cm.Path != nil,
		Now:       v.time(),
		PathLeaf:  pathLeaf,
	})
	if err != nil {
		return nil, err
	}

	// The UpdatePath (RFC 9420, Section 12.4.2).
	t := res.Tree
	committerLeaf := treemath.LeafIndex(c.Sender.Index)
	if external {
		if committerLeaf, err = t.FreeLeaf(); err != nil {
			return nil, fmt.Errorf("%w: placing the joiner: %w", ErrInvalidPath, err)
		}
	}
	if cm.Path != nil {
		tc := &tree.Context{GroupID: v.ctx.GroupID, Extensions: res.Extensions}
		if _, err := t.MergeUpdatePath(committerLeaf, cm.Path, tc, res.Added); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidPath, err)
		}
	}
	if t.Leaf(committerLeaf) == nil {
		// Only reachable for a member committer whose leaf is gone, which
		// commit.Apply rules out; kept as a guard.
		return nil, fmt.Errorf("%w: committer leaf %d is blank", ErrInvalidSender, committerLeaf)
	}

	// The new GroupContext and transcript hashes (RFC 9420, Section 8.2).
	th, err := t.TreeHash()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPath, err)
	}
	confirmed, interim, err := framing.TranscriptHashes(v.suite, v.interim, ac)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedMessage, err)
	}
	ctx := &wire.GroupContext{
		Version:                 v.ctx.Version,
		CipherSuite:             v.ctx.CipherSuite,
		GroupID:                 bytes.Clone(v.ctx.GroupID),
		Epoch:                   v.ctx.Epoch + 1,
		TreeHash:                bytes.Clone(th),
		ConfirmedTranscriptHash: confirmed,
		Extensions:              res.Extensions,
	}
	next := &View{
		suite:           v.suite,
		ctx:             ctx,
		tree:            t,
		interim:         interim,
		confirmationTag: bytes.Clone(ac.Auth.ConfirmationTag),
		now:             v.now,
	}
	if err := next.parseExtensions(); err != nil {
		return nil, fmt.Errorf("%w: new GroupContext extensions: %w", commit.ErrInvalidExtensions, err)
	}

	r := &CommitResult{
		Epoch:                 ctx.Epoch,
		Committer:             c.Sender,
		CommitterLeaf:         committerLeaf,
		External:              external,
		Updated:               res.Updated,
		ProposalRefs:          refs,
		AppSyncs:              res.AppSyncs,
		ApplicationStates:     next.states.Clone(),
		PSKs:                  res.PSKs,
		ReInit:                res.ReInit,
		GroupContext:          ctx,
		ConfirmationTag:       next.confirmationTag,
		InterimTranscriptHash: interim,
		Content:               ac,
		base:                  v,
		baseGen:               v.gen,
		next:                  next,
	}
	kprefs, err := res.KeyPackageRefs(v.suite)
	if err != nil {
		return nil, err
	}
	for i, l := range res.Added {
		ln := &res.AddedKeyPackages[i].LeafNode
		r.Added = append(r.Added, AddedMember{Leaf: l, KeyPackageRef: kprefs[i], Credential: ln.Credential, SignatureKey: ln.SignatureKey})
	}
	for i, l := range res.Removed {
		ln := res.RemovedLeaves[i]
		r.Removed = append(r.Removed, RemovedMember{Leaf: l, Credential: ln.Credential, SignatureKey: ln.SignatureKey})
	}
	return r, nil
}

// Accept moves the view to the epoch of r, which must have been computed by
// HandleCommit on this view in its current epoch (ErrStaleResult
// otherwise, e.g. when another result was accepted in between). Proposals
// cached after r was computed do not affect it and are dropped with the
// rest of the cache: the proposal cache is emptied (RFC 9420, Section 12.1: proposals are valid
// for one epoch).
func (v *View) Accept(r *CommitResult) error {
	if r == nil || r.base != v || r.baseGen != v.gen || r.next == nil {
		return ErrStaleResult
	}
	n := r.next.Clone()
	n.gen = v.gen + 1
	n.proposals = nil
	*v = *n
	r.base = nil // a result is accepted once
	return nil
}

// CheckGroupInfo checks a GroupInfo that the committer supplies for the
// epoch r leads to (RFC 9420, Section 12.4.3): its GroupContext encodes to
// the same bytes as r's, its confirmation_tag equals the Commit's, its
// signer is a member of the new tree whose key verifies the signature,
// and a ratchet_tree extension, if present, equals the new tree. Failures
// wrap ErrGroupInfoMismatch.
func (r *CommitResult) CheckGroupInfo(gi *wire.GroupInfo) error {
	return r.next.CheckGroupInfo(gi)
}

// CheckGroupInfo checks a GroupInfo for the view's current epoch, as
// CommitResult.CheckGroupInfo does: same GroupContext bytes, the
// confirmation_tag of the Commit that started the epoch, a valid signature
// by a member, and a matching ratchet_tree extension if present.
func (v *View) CheckGroupInfo(gi *wire.GroupInfo) error {
	if gi == nil {
		return fmt.Errorf("%w: nil GroupInfo", ErrGroupInfoMismatch)
	}
	want, err := codec.Marshal(v.ctx)
	if err != nil {
		return err
	}
	got, err := codec.Marshal(&gi.GroupContext)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrGroupInfoMismatch, err)
	}
	if !bytes.Equal(want, got) {
		return fmt.Errorf("%w: GroupContext differs (epoch %d, ours %d)", ErrGroupInfoMismatch, gi.GroupContext.Epoch, v.ctx.Epoch)
	}
	if subtle.ConstantTimeCompare(gi.ConfirmationTag, v.confirmationTag) != 1 {
		return fmt.Errorf("%w: confirmation_tag differs", ErrGroupInfoMismatch)
	}
	signer := v.tree.Leaf(treemath.LeafIndex(gi.Signer))
	if signer == nil {
		return fmt.Errorf("%w: signer leaf %d is not a member", ErrGroupInfoMismatch, gi.Signer)
	}
	if err := framing.VerifyGroupInfo(v.suite, gi, signer.SignatureKey); err != nil {
		return fmt.Errorf("%w: %w", ErrGroupInfoMismatch, err)
	}
	if t, dup := wire.DuplicateExtension(gi.Extensions); dup {
		return fmt.Errorf("%w: GroupInfo extension %d twice", ErrGroupInfoMismatch, t)
	}
	rt, found, err := wire.RatchetTreeExtension(gi.Extensions)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrGroupInfoMismatch, err)
	}
	if found {
		ours := v.tree.RatchetTree()
		a, err := codec.Marshal(&ours)
		if err != nil {
			return err
		}
		b, err := codec.Marshal(&rt)
		if err != nil || !bytes.Equal(a, b) {
			return fmt.Errorf("%w: ratchet_tree extension differs from the tree", ErrGroupInfoMismatch)
		}
	}
	return nil
}
