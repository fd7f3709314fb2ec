// Package publicgroup maintains the public view of an MLS group that a
// server (the MIMI hub, draft-ralston-mimi-protocol-02 Sections 5 and 6)
// can follow without any member secret: the GroupContext, the ratchet tree
// and so the roster, the interim transcript hash, the application_states and
// external_senders extensions, and the proposals received by reference in
// the current epoch (RFC 9420, Sections 6, 7, 8.2, 12 and 13).
//
// The view verifies every handshake PublicMessage it is given (group, epoch,
// sender, signature), validates proposals and Commits with package commit,
// applies UpdatePaths publicly (parent hashes, leaf validation, no
// decryption) and computes the next GroupContext and transcript hashes.
// What a server cannot check: the membership_tag of member PublicMessages
// (it needs the epoch's membership_key), the confirmation_tag of Commits
// (it needs the confirmation_key), the encrypted path secrets, and
// PrivateMessages at all. A Commit sent as a PrivateMessage cannot be
// followed. A member's view is therefore authoritative where the two
// differ; the server view is what the hub uses to route, to enforce policy
// and to serve GroupInfo and the tree to joiners.
//
// HandleCommit never changes the view: it returns a *CommitResult holding
// the next state, which the caller Accepts (replacing the view) or drops.
//
// A View is not safe for concurrent use (the tree updates internal caches
// even on reads); give each goroutine its own Clone.
package publicgroup

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// View is the public state of one MLS group at one epoch (RFC 9420,
// Sections 8.1, 8.2 and 12).
type View struct {
	suite           *cipher.Suite
	ctx             *wire.GroupContext
	tree            *tree.Tree
	interim         []byte
	confirmationTag []byte
	states          *appsync.States
	extSenders      wire.ExternalSenders
	proposals       []*cachedProposal
	now             func() time.Time
	// gen changes whenever the state a CommitResult was computed from
	// changes (accepted commits).
	gen uint64
}

// cachedProposal is a verified proposal PublicMessage and its ProposalRef.
type cachedProposal struct {
	ref []byte
	msg *wire.PublicMessage
}

// Member is one non-blank leaf of the ratchet tree (RFC 9420, Sections
// 4.1.1 and 7.2): a member of the group. The slices are shared with the
// view and must not be modified.
type Member struct {
	Leaf         treemath.LeafIndex
	Credential   wire.Credential
	SignatureKey []byte
	// EncryptionKey is the leaf's HPKE public key.
	EncryptionKey []byte
}

// PendingProposal is a proposal received by reference in the current epoch
// (RFC 9420, Section 12.1: cached "in such a way that it can be retrieved
// by hash" for a later Commit).
type PendingProposal struct {
	// Ref is the ProposalRef (RFC 9420, Section 5.2).
	Ref []byte
	// Sender is the proposal's sender.
	Sender wire.Sender
	// Proposal is the proposal itself.
	Proposal *wire.Proposal
	// Message is the PublicMessage it arrived in (for example to hand
	// pending SelfRemove proposals to external joiners,
	// draft-ietf-mls-extensions).
	Message *wire.PublicMessage
}

// New builds the view of a group from a GroupInfo and its ratchet tree
// (RFC 9420, Sections 12.4.3 and 12.4.3.1): the tree must be valid for the
// GroupContext (tree.Validate with its tree_hash: parent hashes, unmerged
// leaves, every leaf node, key uniqueness), the GroupInfo signature must
// verify under the signer leaf's signature key, and the GroupContext
// extensions must decode. rt may be nil when the GroupInfo carries a
// ratchet_tree extension. The interim transcript hash is derived from the
// GroupInfo's confirmation_tag (RFC 9420, Section 8.2). The view copies its
// inputs.
func New(suite *cipher.Suite, gi *wire.GroupInfo, rt wire.RatchetTree) (*View, error) {
	if suite == nil || gi == nil {
		return nil, fmt.Errorf("%w: nil suite or GroupInfo", ErrInvalidGroupInfo)
	}
	gi, err := cloneGroupInfo(gi)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	if rt == nil {
		ext, found, err := wire.RatchetTreeExtension(gi.Extensions)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
		}
		if !found {
			return nil, fmt.Errorf("%w: no ratchet tree given and no ratchet_tree extension", ErrInvalidGroupInfo)
		}
		rt = ext
	}
	v, err := newView(suite, &gi.GroupContext, rt, gi.ConfirmationTag)
	if err != nil {
		return nil, err
	}
	signer := v.tree.Leaf(treemath.LeafIndex(gi.Signer))
	if signer == nil {
		return nil, fmt.Errorf("%w: signer leaf %d is blank or outside the tree", ErrInvalidGroupInfo, gi.Signer)
	}
	if err := framing.VerifyGroupInfo(suite, gi, signer.SignatureKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	return v, nil
}

// NewFromState builds the view of a group from its GroupContext, ratchet
// tree and the confirmation_tag of the epoch (for a group the server
// creates or observes from epoch 0, where the creator computed the tag over
// the empty confirmed transcript hash; RFC 9420, Sections 8.2 and 11). The
// tree is validated as in New.
func NewFromState(suite *cipher.Suite, ctx *wire.GroupContext, rt wire.RatchetTree, confirmationTag []byte) (*View, error) {
	if suite == nil || ctx == nil {
		return nil, fmt.Errorf("%w: nil suite or GroupContext", ErrInvalidGroupInfo)
	}
	c, err := cloneContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	return newView(suite, c, rt, bytes.Clone(confirmationTag))
}

// newView validates and installs ctx (owned) and a copy of rt.
func newView(suite *cipher.Suite, ctx *wire.GroupContext, rt wire.RatchetTree, tag []byte) (*View, error) {
	if ctx.CipherSuite != suite.ID() {
		return nil, fmt.Errorf("%w: suite %v, expected %v", ErrInvalidGroupInfo, ctx.CipherSuite, suite.ID())
	}
	if ctx.Version != wire.MLS10 {
		return nil, fmt.Errorf("%w: version %d", ErrInvalidGroupInfo, ctx.Version)
	}
	b, err := codec.Marshal(&rt)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding ratchet tree: %w", ErrInvalidTree, err)
	}
	var own wire.RatchetTree
	if err := codec.Unmarshal(b, "ratchet_tree", &own); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	t, err := tree.FromRatchetTree(suite, own)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	v := &View{suite: suite, ctx: ctx, tree: t, confirmationTag: tag}
	if err := v.parseExtensions(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	if err := t.Validate(ctx.TreeHash, &tree.Context{GroupID: ctx.GroupID, Extensions: ctx.Extensions}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	if v.interim, err = framing.InterimTranscriptHash(suite, ctx.ConfirmedTranscriptHash, tag); err != nil {
		return nil, err
	}
	return v, nil
}

// parseExtensions decodes the GroupContext extensions the view tracks
// (RFC 9420, Sections 12.1.8.1 and 13.4; draft-ralston-mimi-protocol-02,
// Section 7).
func (v *View) parseExtensions() error {
	exts := v.ctx.Extensions
	if t, dup := wire.DuplicateExtension(exts); dup {
		return fmt.Errorf("extension type %d twice", t)
	}
	if _, _, err := wire.RequiredCapabilitiesExtension(exts); err != nil {
		return err
	}
	senders, _, err := wire.ExternalSendersExtension(exts)
	if err != nil {
		return err
	}
	states, _, err := wire.ApplicationStatesExtension(exts)
	if err != nil {
		return err
	}
	v.extSenders, v.states = senders, states
	return nil
}

// SetClock sets the clock used for the lifetime of the LeafNodes of Add
// proposals (RFC 9420, Section 7.3); nil (the default) skips that check.
// The clock is not part of the serialized view.
func (v *View) SetClock(now func() time.Time) { v.now = now }

func (v *View) time() time.Time {
	if v.now == nil {
		return time.Time{}
	}
	return v.now()
}

// Suite is the group's cipher suite (RFC 9420, Section 5.1).
func (v *View) Suite() *cipher.Suite { return v.suite }

// Epoch is the current epoch (RFC 9420, Section 8.1).
func (v *View) Epoch() uint64 { return v.ctx.Epoch }

// GroupID is the group_id (RFC 9420, Section 8.1). The result must not be
// modified.
func (v *View) GroupID() []byte { return v.ctx.GroupID }

// GroupContext returns a copy of the current GroupContext (RFC 9420,
// Section 8.1).
func (v *View) GroupContext() *wire.GroupContext {
	c, _ := cloneContext(v.ctx)
	return c
}

// InterimTranscriptHash is the current interim transcript hash (RFC 9420,
// Section 8.2). The result must not be modified.
func (v *View) InterimTranscriptHash() []byte { return v.interim }

// ConfirmationTag is the confirmation_tag of the Commit that started the
// current epoch (or of the GroupInfo the view was built from), which an
// external joiner needs (RFC 9420, Section 12.4.3.2). The result must not
// be modified.
func (v *View) ConfirmationTag() []byte { return v.confirmationTag }

// TreeHash returns the tree hash of the current tree (RFC 9420, Section
// 7.8), equal to GroupContext().TreeHash.
func (v *View) TreeHash() []byte { return v.ctx.TreeHash }

// RatchetTree exports the tree as the content of a ratchet_tree extension
// (RFC 9420, Section 12.4.3.3). The nodes are shared with the view and
// must not be modified.
func (v *View) RatchetTree() wire.RatchetTree { return v.tree.RatchetTree() }

// Members lists the members, in leaf order (RFC 9420, Section 4.1.1).
func (v *View) Members() []Member {
	var out []Member
	for l, ln := range v.tree.Leaves() {
		out = append(out, Member{Leaf: l, Credential: ln.Credential, SignatureKey: ln.SignatureKey, EncryptionKey: ln.EncryptionKey})
	}
	return out
}

// Member returns the member at leaf l, or false when the leaf is blank or
// outside the tree.
func (v *View) Member(l treemath.LeafIndex) (Member, bool) {
	ln := v.tree.Leaf(l)
	if ln == nil {
		return Member{}, false
	}
	return Member{Leaf: l, Credential: ln.Credential, SignatureKey: ln.SignatureKey, EncryptionKey: ln.EncryptionKey}, true
}

// ApplicationStates returns a copy of the application_states extension's
// content (draft-ralston-mimi-protocol-02, Section 7); empty when absent.
func (v *View) ApplicationStates() *appsync.States { return v.states.Clone() }

// ExternalSenders returns the external_senders extension's entries (RFC
// 9420, Section 12.1.8.1); nil when absent. The entries' slices are shared
// with the view.
func (v *View) ExternalSenders() wire.ExternalSenders { return slices.Clone(v.extSenders) }

// PendingProposals lists the proposals received in the current epoch, in
// arrival order (RFC 9420, Section 12.1). The proposals and messages are
// shared with the view and must not be modified.
func (v *View) PendingProposals() []PendingProposal {
	out := make([]PendingProposal, 0, len(v.proposals))
	for _, p := range v.proposals {
		out = append(out, PendingProposal{Ref: p.ref, Sender: p.msg.Content.Sender, Proposal: p.msg.Content.Proposal, Message: p.msg})
	}
	return out
}

// HasProposal reports whether the view caches the proposal with reference
// ref in the current epoch (RFC 9420, Section 12.4: proposals by
// reference).
func (v *View) HasProposal(ref []byte) bool { return v.proposal(ref) != nil }

// proposal returns the cached proposal with reference ref.
func (v *View) proposal(ref []byte) *cachedProposal {
	for _, p := range v.proposals {
		if bytes.Equal(p.ref, ref) {
			return p
		}
	}
	return nil
}

// Clone returns an independent copy of the view (sharing immutable nodes
// and messages).
func (v *View) Clone() *View {
	c := *v
	c.tree = v.tree.Clone()
	c.ctx, _ = cloneContext(v.ctx)
	c.states = v.states.Clone()
	c.extSenders = slices.Clone(v.extSenders)
	c.proposals = slices.Clone(v.proposals)
	return &c
}

// cloneContext deep-copies a GroupContext through its encoding.
func cloneContext(ctx *wire.GroupContext) (*wire.GroupContext, error) {
	b, err := codec.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	var c wire.GroupContext
	if err := codec.Unmarshal(b, "GroupContext", &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// cloneGroupInfo deep-copies a GroupInfo through its encoding.
func cloneGroupInfo(gi *wire.GroupInfo) (*wire.GroupInfo, error) {
	b, err := codec.Marshal(gi)
	if err != nil {
		return nil, err
	}
	var c wire.GroupInfo
	if err := codec.Unmarshal(b, "GroupInfo", &c); err != nil {
		return nil, err
	}
	return &c, nil
}
