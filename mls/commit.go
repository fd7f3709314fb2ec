package mls

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// CommitOptions customize Commit (RFC 9420, Section 12.4.2).
type CommitOptions struct {
	// Proposals are committed by value, after the cached proposals.
	Proposals []*wire.Proposal
	// SkipPending commits only Proposals: the proposals cached in this
	// epoch are not included by reference. By default every cached
	// proposal is included (RFC 9420, Section 12.4: the committer SHOULD
	// include all valid proposals), except our own Updates (a committer
	// cannot commit its own Update, Section 12.2) and proposals that make
	// the list invalid.
	SkipPending bool
	// NoPath omits the UpdatePath when the proposals allow it (RFC 9420,
	// Section 12.4: only Add, PreSharedKey and ReInit do). By default a
	// path is always included, for post-compromise security.
	NoPath bool
	// Leaf adjusts our new LeafNode in the UpdatePath (capabilities,
	// extensions, and with Leaf.Signer a new credential and signature key).
	Leaf *LeafOptions
	// WelcomeRatchetTree puts the ratchet_tree extension into the Welcome's
	// GroupInfo (RFC 9420, Section 12.4.3.3); without it the joiners need
	// the tree out of band (MIMI hubs serve it).
	WelcomeRatchetTree bool
	// GroupInfoRatchetTree puts the ratchet_tree extension into the
	// returned GroupInfo.
	GroupInfoRatchetTree bool
	// Send sets the authenticated data and PublicMessage/PrivateMessage
	// encoding of the commit.
	Send SendOptions
}

// PendingCommit is a Commit created by this member (or an external
// joiner) that is not applied yet (RFC 9420, Section 12.4.2). Deliver
// Message (and Welcome to the new members), then call Merge once the
// delivery service accepted it, or Discard if it was rejected (for
// example with MIMI's wrongEpoch, after which the other commit is
// processed normally).
type PendingCommit struct {
	// Message is the Commit, a PublicMessage or PrivateMessage MLSMessage.
	Message *wire.MLSMessage
	// Welcome is the Welcome MLSMessage for the added members, nil when the
	// commit adds nobody.
	Welcome *wire.MLSMessage
	// GroupInfo is the signed GroupInfo of the new epoch (an MLSMessage of
	// wire format group_info) with the external_pub extension and, per
	// CommitOptions.GroupInfoRatchetTree, the ratchet_tree extension.
	GroupInfo *wire.MLSMessage
	// Epoch is the epoch the commit starts.
	Epoch uint64
	// Added are the leaves of the added members, in proposal order, and
	// AddedKeyPackageRefs their KeyPackageRefs (to route the Welcome).
	Added               []treemath.LeafIndex
	AddedKeyPackageRefs [][]byte
	// Removed are the leaves removed by Remove and SelfRemove proposals.
	Removed []treemath.LeafIndex
	// ProposalRefs are the references of the cached proposals the commit
	// includes.
	ProposalRefs [][]byte

	g        *Group // nil for an external join until Merge
	cfg      Config
	suite    *cipher.Suite
	baseGen  uint64
	next     *groupState
	encoded  []byte // Message encoding, to recognize the echo
	done     bool
	merged   bool
	external bool
}

// commitInput is what buildCommit needs beyond the base state.
type commitInput struct {
	sender     wire.Sender
	sigPriv    []byte // signs the FramedContent (old key for members)
	proposals  []sourcedProposal
	ors        []wire.ProposalOrRef
	opts       *CommitOptions
	initSecret []byte
	external   bool
	leafTmpl   *wire.LeafNode // external joiner's leaf template
	leafSig    []byte         // signs the new leaf (new key if changed)
	extraPSKs  []wire.PreSharedKeyID
}

// Commit creates a Commit of the cached proposals (by reference) and
// opts.Proposals (by value), with an UpdatePath unless opts.NoPath allows
// omitting it, following RFC 9420, Section 12.4.2; the Welcome for added
// members (Section 12.4.3.1); and the new epoch's GroupInfo with
// external_pub (Section 12.4.3.2). The group's state does not change until
// PendingCommit.Merge.
func (g *Group) Commit(opts *CommitOptions) (*PendingCommit, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.s
	if err := s.checkActive(); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &CommitOptions{}
	}
	me := wire.Sender{Type: wire.SenderMember, Index: uint32(s.me)}
	var cached []*cachedProposal
	if !opts.SkipPending {
		for _, c := range s.proposals {
			if c.proposal.Type == wire.ProposalUpdate && c.sender == me {
				continue // our own Update: the path replaces it
			}
			if psk, ok := c.proposal.Body.(*wire.PreSharedKey); ok {
				if _, err := lookupPSK(&g.cfg, s, &psk.PSK); err != nil {
					continue // a PSK we cannot resolve (RFC 9420, Section 12.4.2)
				}
			}
			cached = append(cached, c)
		}
	}
	for {
		in := &commitInput{sender: me, sigPriv: s.sigPriv, opts: opts, initSecret: s.secrets.InitSecret}
		for _, c := range cached {
			in.proposals = append(in.proposals, sourcedProposal{Proposal: c.proposal, Sender: c.sender, Ref: c.ref})
			in.ors = append(in.ors, wire.ProposalOrRef{Type: wire.ProposalOrRefReference, Reference: c.ref})
		}
		for _, p := range opts.Proposals {
			if p == nil || p.Body == nil {
				return nil, fmt.Errorf("%w: nil proposal", ErrInvalidArgument)
			}
			in.proposals = append(in.proposals, sourcedProposal{Proposal: p, Sender: me})
			in.ors = append(in.ors, wire.ProposalOrRef{Type: wire.ProposalOrRefProposal, Proposal: p})
		}
		pc, err := g.buildCommit(s, in)
		if err == nil {
			g.pending = pc
			return pc, nil
		}
		// Drop an invalid cached proposal and retry (RFC 9420, Section
		// 12.4: include the valid ones "as long as this results in a valid
		// proposal list").
		if i, ok := proposalErrorIndex(err); ok && i >= 0 && i < len(cached) {
			cached = slices.Delete(cached, i, i+1)
			continue
		}
		return nil, err
	}
}

// buildCommit runs the committer's side of RFC 9420, Section 12.4.2 on top
// of base without modifying it (except for the handshake ratchet when the
// commit is a PrivateMessage).
func (g *Group) buildCommit(base *groupState, in *commitInput) (*PendingCommit, error) {
	s := g.suite
	opts := in.opts
	res, err := applyProposals(g.cfg.commitParams(&applyParams{
		Suite: s, Tree: base.tree, Context: base.ctx, Committer: in.sender,
		Proposals: in.proposals, HasPath: true,
	}, in.leafTmpl))
	if err != nil {
		return nil, err
	}
	hasPath := !opts.NoPath || res.PathRequired || in.external
	nt := res.Tree
	leaf := base.me
	if in.external {
		if leaf, err = nt.FreeLeaf(); err != nil {
			return nil, err
		}
	}
	ctx := &wire.GroupContext{
		Version:                 base.ctx.Version,
		CipherSuite:             base.ctx.CipherSuite,
		GroupID:                 base.ctx.GroupID,
		Epoch:                   base.ctx.Epoch + 1,
		ConfirmedTranscriptHash: base.ctx.ConfirmedTranscriptHash,
		Extensions:              res.Extensions,
	}
	next := &groupState{me: leaf, sigPriv: base.sigPriv, reinit: res.ReInit}
	var pp *tree.PendingPath
	var path *wire.UpdatePath
	var commitSecret []byte
	if hasPath {
		tmpl, leafSig := in.leafTmpl, in.leafSig
		if !in.external {
			if tmpl, leafSig, err = g.leafTemplate(base, opts.Leaf); err != nil {
				return nil, err
			}
		}
		pp, err = nt.GenerateUpdatePath(&tree.PathParams{
			Leaf: leaf, LeafNode: tmpl, SignaturePriv: leafSig, GroupID: ctx.GroupID, NewLeaves: res.Added,
		})
		if err != nil {
			return nil, err
		}
		if ctx.TreeHash, err = nt.TreeHash(); err != nil {
			return nil, err
		}
		gc, err := encodedContext(ctx)
		if err != nil {
			return nil, err
		}
		if path, err = pp.Encrypt(gc); err != nil {
			return nil, err
		}
		commitSecret = pp.CommitSecret()
		next.sigPriv = leafSig
		next.priv = pp.PrivateState()
		next.leafPriv = next.priv.PrivateKey(leaf.Node())
		next.pathSecrets = map[treemath.NodeIndex][]byte{}
		for _, x := range pp.FilteredDirectPath() {
			next.pathSecrets[x] = pp.PathSecret(x)
		}
	} else {
		if ctx.TreeHash, err = nt.TreeHash(); err != nil {
			return nil, err
		}
		next.priv = base.priv.Clone()
		next.priv.Prune(nt)
		next.leafPriv = base.leafPriv
		next.pathSecrets = keptPathSecrets(base.pathSecrets, next.priv)
	}

	content := &wire.FramedContent{
		GroupID:           base.ctx.GroupID,
		Epoch:             base.ctx.Epoch,
		Sender:            in.sender,
		AuthenticatedData: bytes.Clone(opts.Send.AuthenticatedData),
		ContentType:       wire.ContentCommit,
		Commit:            &wire.Commit{Proposals: in.ors, Path: path},
	}
	wf := wire.WireFormatPublicMessage
	if opts.Send.Private && !in.external {
		wf = wire.WireFormatPrivateMessage
	}
	ac, err := framing.Sign(s, wf, content, base.ctx, in.sigPriv)
	if err != nil {
		return nil, err
	}
	confirmed, err := framing.ConfirmedTranscriptHash(s, base.interim, ac)
	if err != nil {
		return nil, err
	}
	ctx.ConfirmedTranscriptHash = confirmed
	psks := append(slices.Clone(in.extraPSKs), res.PSKs...)
	pskSecret, err := g.pskSecret(base, psks)
	if err != nil {
		return nil, err
	}
	gc, err := encodedContext(ctx)
	if err != nil {
		return nil, err
	}
	es, err := keyschedule.Derive(s, in.initSecret, commitSecret, pskSecret, gc)
	if err != nil {
		return nil, err
	}
	defer es.Erase()
	tag := framing.ConfirmationTag(s, es.ConfirmationKey, confirmed)
	ac.Auth.ConfirmationTag = tag
	interim, err := framing.InterimTranscriptHash(s, confirmed, tag)
	if err != nil {
		return nil, err
	}

	var msg *wire.MLSMessage
	if in.external {
		pm, err := framing.ProtectPublic(&framing.Epoch{Suite: s, Context: base.ctx}, ac)
		if err != nil {
			return nil, err
		}
		msg = &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: pm}
	} else if msg, err = g.protect(base, ac); err != nil {
		return nil, err
	}
	encoded, err := msg.MarshalBinary()
	if err != nil {
		return nil, err
	}

	next.ctx = ctx
	next.tree = nt
	next.secrets = keepSecrets(es)
	next.interim = interim
	next.confTag = tag
	next.keys = newEpochKeys(s, es.EncryptionSecret, nt.LeafCount(), &g.cfg)

	pc := &PendingCommit{
		Message: msg, Epoch: ctx.Epoch, Added: res.Added, Removed: res.Removed,
		g: g, cfg: g.cfg, suite: s, baseGen: g.gen, next: next, encoded: encoded, external: in.external,
	}
	for _, sp := range in.proposals {
		if sp.Ref != nil {
			pc.ProposalRefs = append(pc.ProposalRefs, sp.Ref)
		}
	}
	if pc.GroupInfo, err = g.groupInfo(next, opts.GroupInfoRatchetTree); err != nil {
		return nil, err
	}
	if len(res.Added) > 0 {
		welcomeGI := pc.GroupInfo.GroupInfo
		if opts.WelcomeRatchetTree != opts.GroupInfoRatchetTree {
			m, err := g.groupInfo(next, opts.WelcomeRatchetTree)
			if err != nil {
				return nil, err
			}
			welcomeGI = m.GroupInfo
		}
		gib, err := welcomeGI.MarshalBinary()
		if err != nil {
			return nil, err
		}
		rcpts := make([]framing.WelcomeRecipient, len(res.Added))
		for i, l := range res.Added {
			kp := res.AddedKeyPackages[i]
			rcpts[i].KeyPackage = kp
			if pp != nil {
				if rcpts[i].PathSecret, _, err = pp.PathSecretFor(l); err != nil {
					return nil, err
				}
			}
			ref, err := kp.Ref(s)
			if err != nil {
				return nil, err
			}
			pc.AddedKeyPackageRefs = append(pc.AddedKeyPackageRefs, ref)
		}
		w, err := framing.SealWelcome(s, gib, es.JoinerSecret, es.WelcomeSecret, psks, rcpts)
		if err != nil {
			return nil, err
		}
		pc.Welcome = &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatWelcome, Welcome: w}
	}
	return pc, nil
}

// keptPathSecrets returns the path secrets of the nodes whose keys priv
// still holds.
func keptPathSecrets(in map[treemath.NodeIndex][]byte, priv *tree.PrivateState) map[treemath.NodeIndex][]byte {
	out := make(map[treemath.NodeIndex][]byte, len(in))
	for _, x := range priv.Nodes() {
		if ps, ok := in[x]; ok {
			out[x] = ps
		}
	}
	return out
}

// groupInfo builds and signs the GroupInfo of state st (RFC 9420, Section
// 12.4.3) with the external_pub extension (Section 12.4.3.2) and, if
// withTree, the ratchet_tree extension (Section 12.4.3.3).
func (g *Group) groupInfo(st *groupState, withTree bool) (*wire.MLSMessage, error) {
	_, pub, err := keyschedule.ExternalKeyPair(g.suite, st.secrets.ExternalSecret)
	if err != nil {
		return nil, err
	}
	ep, err := wire.NewExternalPubExtension(pub)
	if err != nil {
		return nil, err
	}
	exts := []wire.Extension{ep}
	if withTree {
		rt, err := wire.NewRatchetTreeExtension(st.tree.RatchetTree())
		if err != nil {
			return nil, err
		}
		exts = append(exts, rt)
	}
	gi := &wire.GroupInfo{
		GroupContext:    *st.ctx,
		Extensions:      exts,
		ConfirmationTag: st.confTag,
		Signer:          uint32(st.me),
	}
	if err := gi.Sign(g.suite, st.sigPriv); err != nil {
		return nil, fmt.Errorf("mls: signing GroupInfo: %w", err)
	}
	return &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatGroupInfo, GroupInfo: gi}, nil
}

// GroupInfo returns a signed GroupInfo for the current epoch (RFC 9420,
// Section 12.4.3) with external_pub and, if withTree, the ratchet_tree
// extension, for external joiners.
func (g *Group) GroupInfo(withTree bool) (*wire.MLSMessage, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.s.checkActive(); err != nil {
		return nil, err
	}
	return g.groupInfo(g.s, withTree)
}

// Merge applies the commit: the group moves to the new epoch (RFC 9420,
// Section 12.4.2). It fails with ErrStaleCommit when the group changed
// epoch since the commit was created, or after Discard or a previous
// Merge. For an external join, Merge creates the Group (see Group).
func (pc *PendingCommit) Merge() error {
	if pc.external {
		if pc.done {
			return ErrStaleCommit
		}
		pc.done, pc.merged = true, true
		pc.g = &Group{cfg: pc.cfg, suite: pc.suite, s: pc.next}
		pc.g.s.resumption = []resumptionEntry{{epoch: pc.next.ctx.Epoch, psk: pc.next.secrets.ResumptionPSK}}
		return nil
	}
	g := pc.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if pc.done || g.gen != pc.baseGen {
		return ErrStaleCommit
	}
	pc.done, pc.merged = true, true
	g.advance(pc.next)
	return nil
}

// Merged reports whether the commit was merged: by Merge, or by Process
// recognizing its echo from the delivery service.
func (pc *PendingCommit) Merged() bool {
	if pc.g != nil && !pc.external {
		pc.g.mu.Lock()
		defer pc.g.mu.Unlock()
	}
	return pc.merged
}

// Discard drops the commit (for example after the delivery service
// rejected it); the group stays in its current epoch. Later Merge calls
// fail.
func (pc *PendingCommit) Discard() {
	if pc.g != nil && !pc.external {
		pc.g.mu.Lock()
		defer pc.g.mu.Unlock()
		if pc.g.pending == pc {
			pc.g.pending = nil
		}
	}
	pc.done = true
	pc.next = nil
}

// Group returns the group the commit belongs to; for an external join,
// the new group, available after Merge (nil before).
func (pc *PendingCommit) Group() *Group {
	if pc.external && !pc.done {
		return nil
	}
	return pc.g
}

// advance makes next the current state: the old epoch joins the kept past
// epochs, the resumption PSK history is extended, and pending commits
// become stale (RFC 9420, Sections 8.6, 12.4.2 and 15.3).
func (g *Group) advance(next *groupState) {
	old := g.s
	now := g.cfg.now()
	past := append(slices.Clone(old.past), &pastEpoch{
		epoch: old.ctx.Epoch, ended: now, ctx: old.ctx, senderData: old.secrets.SenderDataSecret, keys: old.keys, tree: old.tree,
	})
	next.past = slices.Clone(g.cfg.keepPast(past, now))
	res := append(slices.Clone(old.resumption), resumptionEntry{epoch: next.ctx.Epoch, psk: next.secrets.ResumptionPSK})
	if n := g.cfg.resumptionPSKs(); len(res) > n {
		res = slices.Clone(res[len(res)-n:])
	}
	next.resumption = res
	g.s = next
	g.gen++
	g.pending = nil
}

// RatchetTree returns the ratchet tree of the epoch the commit starts, for
// delivery out of band (MIMI's RatchetTreeOption) alongside a GroupInfo
// without the ratchet_tree extension.
func (pc *PendingCommit) RatchetTree() wire.RatchetTree {
	if pc.next == nil || pc.next.tree == nil {
		return nil
	}
	return pc.next.tree.RatchetTree()
}
