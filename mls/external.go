package mls

import (
	"bytes"
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// ExternalJoinOptions customize JoinExternal (RFC 9420, Section 12.4.3.2).
type ExternalJoinOptions struct {
	// RatchetTree is the group's tree when the GroupInfo has no
	// ratchet_tree extension (RFC 9420, Section 12.4.3.3).
	RatchetTree wire.RatchetTree
	// Leaf customizes the joiner's LeafNode (Leaf.Signer is ignored).
	Leaf LeafOptions
	// RemoveLeaf, when set, resyncs: the commit also removes this leaf,
	// an old appearance of the joiner (RFC 9420, Section 12.4.3.2).
	RemoveLeaf *treemath.LeafIndex
	// PSKs are injected with PreSharedKey proposals.
	PSKs []wire.PreSharedKeyID
	// GroupInfoRatchetTree puts the ratchet_tree extension into the new
	// GroupInfo.
	GroupInfoRatchetTree bool
	// AuthenticatedData of the commit.
	AuthenticatedData []byte
	// Config is the new group's policy.
	Config Config
}

// JoinExternal creates an external Commit that adds the signer to the
// group described by groupInfo (an MLSMessage of wire format
// mls_group_info with the external_pub extension), per RFC 9420, Section
// 12.4.3.2: it validates the GroupInfo and the tree (as a Welcome joiner
// does), derives init_secret from external_pub (Section 8.3), and commits
// an ExternalInit (plus an optional Remove of our old leaf and PSKs) with
// an UpdatePath from the leftmost free leaf. The returned PendingCommit's
// Message goes to the group; after Merge, PendingCommit.Group is the new
// member's group.
func JoinExternal(groupInfo *wire.MLSMessage, signer Signer, opts *ExternalJoinOptions) (*PendingCommit, error) {
	g, in, err := prepareExternal(groupInfo, signer, opts)
	if err != nil {
		return nil, err
	}
	return g.buildCommit(g.s, in)
}

// prepareExternal validates the GroupInfo and prepares the external
// commit's inputs (everything but building the commit).
func prepareExternal(groupInfo *wire.MLSMessage, signer Signer, opts *ExternalJoinOptions) (*Group, *commitInput, error) {
	if groupInfo == nil || groupInfo.WireFormat != wire.WireFormatGroupInfo || groupInfo.GroupInfo == nil {
		return nil, nil, fmt.Errorf("%w: not a GroupInfo", ErrInvalidArgument)
	}
	if opts == nil {
		opts = &ExternalJoinOptions{}
	}
	gi := groupInfo.GroupInfo
	cfg := opts.Config
	s, err := cipher.Lookup(gi.GroupContext.CipherSuite)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrGroupInfoInvalid, err)
	}
	ctx := cloneContext(&gi.GroupContext)
	if ctx.Version != wire.MLS10 {
		return nil, nil, fmt.Errorf("%w: version %d", ErrGroupInfoInvalid, ctx.Version)
	}
	t, err := groupInfoTree(s, gi, opts.RatchetTree)
	if err != nil {
		return nil, nil, err
	}
	if err := verifyGroupInfo(s, gi, t); err != nil {
		return nil, nil, err
	}
	if err := t.Validate(ctx.TreeHash, &tree.Context{
		GroupID: ctx.GroupID, Extensions: ctx.Extensions, MaxLifetime: cfg.MaxLifetime, VerifyCredential: cfg.VerifyCredential,
	}); err != nil {
		return nil, nil, fmt.Errorf("%w: ratchet tree: %w", ErrGroupInfoInvalid, err)
	}
	pub, found, err := wire.ExternalPub(gi.Extensions)
	if err != nil || !found {
		return nil, nil, fmt.Errorf("%w: %w: no usable external_pub (%v)", ErrGroupInfoInvalid, ErrInvalidExternalCommit, err)
	}
	kemOutput, initSecret, err := externalInitSend(s, pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrGroupInfoInvalid, err)
	}
	tmpl, err := newLeafNode(s, &signer, &opts.Leaf)
	if err != nil {
		return nil, nil, err
	}
	if err := checkGroupExtensions(ctx.Extensions, &tmpl.Capabilities); err != nil {
		return nil, nil, err
	}
	props := []*wire.Proposal{{Type: wire.ProposalExternalInit, Body: &wire.ExternalInit{KEMOutput: kemOutput}}}
	if opts.RemoveLeaf != nil {
		if t.Leaf(*opts.RemoveLeaf) == nil {
			return nil, nil, fmt.Errorf("%w: leaf %d to remove is blank", ErrInvalidArgument, *opts.RemoveLeaf)
		}
		props = append(props, &wire.Proposal{Type: wire.ProposalRemove, Body: &wire.Remove{Removed: uint32(*opts.RemoveLeaf)}})
	}
	for _, id := range opts.PSKs {
		props = append(props, &wire.Proposal{Type: wire.ProposalPreSharedKey, Body: &wire.PreSharedKey{PSK: id}})
	}
	interim, err := framing.InterimTranscriptHash(s, ctx.ConfirmedTranscriptHash, gi.ConfirmationTag)
	if err != nil {
		return nil, nil, err
	}
	base := &groupState{ctx: ctx, tree: t, interim: interim, sigPriv: signer.SignaturePriv}
	g := &Group{cfg: cfg, suite: s, s: base}
	sender := wire.Sender{Type: wire.SenderNewMemberCommit}
	in := &commitInput{
		sender: sender, sigPriv: bytes.Clone(signer.SignaturePriv), initSecret: initSecret, external: true,
		leafTmpl: tmpl, leafSig: bytes.Clone(signer.SignaturePriv),
		opts: &CommitOptions{GroupInfoRatchetTree: opts.GroupInfoRatchetTree, Send: SendOptions{AuthenticatedData: opts.AuthenticatedData}},
	}
	for _, p := range props {
		in.proposals = append(in.proposals, sourcedProposal{Proposal: p, Sender: sender})
		in.ors = append(in.ors, wire.ProposalOrRef{Type: wire.ProposalOrRefProposal, Proposal: p})
	}
	return g, in, nil
}

// NewExternalProposal builds a proposal from an external sender, the entry
// senderIndex of the group's external_senders extension, signed with that
// sender's key and sent as a PublicMessage (RFC 9420, Sections 6.2 and
// 12.1.8). Only Add, Remove, PreSharedKey, ReInit and
// GroupContextExtensions (and extension types that allow it) may be sent
// this way.
func NewExternalProposal(suite cipher.SuiteID, groupID []byte, epoch uint64, senderIndex uint32, sigPriv []byte, p *wire.Proposal, authenticatedData []byte) (*wire.MLSMessage, error) {
	return newOutsiderProposal(suite, groupID, epoch, wire.Sender{Type: wire.SenderExternal, Index: senderIndex}, sigPriv, p, authenticatedData)
}

// NewJoinProposal builds the Add proposal by which the owner of kp asks to
// join (sender type new_member_proposal, RFC 9420, Sections 6 and 12.1.8),
// signed with kp's signature key and sent as a PublicMessage.
func NewJoinProposal(kp *KeyPackageBundle, groupID []byte, epoch uint64, authenticatedData []byte) (*wire.MLSMessage, error) {
	if kp == nil || kp.KeyPackage == nil {
		return nil, fmt.Errorf("%w: nil key package bundle", ErrInvalidArgument)
	}
	p := &wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp.KeyPackage}}
	return newOutsiderProposal(kp.KeyPackage.CipherSuite, groupID, epoch, wire.Sender{Type: wire.SenderNewMemberProposal}, kp.SignaturePriv, p, authenticatedData)
}

func newOutsiderProposal(suite cipher.SuiteID, groupID []byte, epoch uint64, sender wire.Sender, sigPriv []byte, p *wire.Proposal, ad []byte) (*wire.MLSMessage, error) {
	s, err := cipher.Lookup(suite)
	if err != nil {
		return nil, err
	}
	if p == nil || p.Body == nil {
		return nil, fmt.Errorf("%w: nil proposal", ErrInvalidArgument)
	}
	content := &wire.FramedContent{
		GroupID: bytes.Clone(groupID), Epoch: epoch, Sender: sender,
		AuthenticatedData: bytes.Clone(ad), ContentType: wire.ContentProposal, Proposal: p,
	}
	ac, err := framing.Sign(s, wire.WireFormatPublicMessage, content, nil, sigPriv)
	if err != nil {
		return nil, err
	}
	pm, err := framing.ProtectPublic(&framing.Epoch{Suite: s}, ac)
	if err != nil {
		return nil, err
	}
	return &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: pm}, nil
}
