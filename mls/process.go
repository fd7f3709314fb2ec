package mls

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// processCommit validates and applies an authenticated Commit of the
// current epoch (RFC 9420, Section 12.4.2; Section 12.4.3.2 for external
// commits) and returns the new state without installing it. s is not
// modified.
func (g *Group) processCommit(s *groupState, ac *wire.AuthenticatedContent) (*CommitResult, *groupState, error) {
	suite := g.suite
	c := &ac.Content
	commit := c.Commit
	sender := c.Sender
	external := sender.Type == wire.SenderNewMemberCommit
	switch sender.Type {
	case wire.SenderMember:
		if sender.Index == uint32(s.me) {
			return nil, nil, ErrOwnCommit
		}
	case wire.SenderNewMemberCommit:
		if commit.Path == nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInvalidExternalCommit, ErrPathRequired)
		}
	default:
		return nil, nil, fmt.Errorf("%w: sender type %d cannot commit", ErrUnknownSender, sender.Type)
	}

	// Resolve the proposals (RFC 9420, Section 12.4).
	res := &CommitResult{Committer: sender, External: external}
	props := make([]sourcedProposal, 0, len(commit.Proposals))
	for i, por := range commit.Proposals {
		switch por.Type {
		case wire.ProposalOrRefProposal:
			if por.Proposal == nil {
				return nil, nil, fmt.Errorf("%w: proposal %d is empty", ErrInvalidMessage, i)
			}
			props = append(props, sourcedProposal{Proposal: por.Proposal, Sender: sender})
		case wire.ProposalOrRefReference:
			var found *cachedProposal
			for _, cp := range s.proposals {
				if bytes.Equal(cp.ref, por.Reference) {
					found = cp
					break
				}
			}
			if found == nil {
				return nil, nil, fmt.Errorf("%w: proposal %d, reference %x", ErrUnknownProposal, i, por.Reference)
			}
			props = append(props, sourcedProposal{Proposal: found.proposal, Sender: found.sender, Ref: found.ref})
		default:
			return nil, nil, fmt.Errorf("%w: ProposalOrRef type %d", ErrInvalidMessage, por.Type)
		}
	}
	now := g.cfg.now()
	var pathLeaf *wire.LeafNode
	if commit.Path != nil {
		pathLeaf = &commit.Path.LeafNode
	}
	ar, err := applyProposals(g.cfg.commitParams(&applyParams{
		Suite: suite, Tree: s.tree, Context: s.ctx, Committer: sender,
		Proposals: props, HasPath: commit.Path != nil,
	}, pathLeaf))
	if err != nil {
		return nil, nil, err
	}
	if ar.PathRequired && commit.Path == nil {
		return nil, nil, fmt.Errorf("%w", ErrPathRequired)
	}
	for _, sp := range props {
		res.Proposals = append(res.Proposals, PendingProposal{Ref: sp.Ref, Proposal: sp.Proposal, Sender: sp.Sender})
	}
	res.Added, res.AddedKeyPackages, res.Removed, res.Updated = ar.Added, ar.AddedKeyPackages, ar.Removed, ar.Updated
	res.PSKs, res.ReInit, res.AppSyncs = ar.PSKs, ar.ReInit, ar.AppSyncs
	res.Epoch = s.ctx.Epoch + 1

	// A commit that removes us: it is authentic (signature and membership
	// tag were checked), but we cannot follow into the new epoch.
	if slices.Contains(ar.Removed, s.me) {
		res.SelfRemoved = true
		res.Epoch = s.ctx.Epoch + 1
		next := *s
		next.removed = true
		return res, &next, nil
	}

	nt := ar.Tree
	committer := treemath.LeafIndex(sender.Index)
	if external {
		if ar.ExternalInit == nil {
			return nil, nil, fmt.Errorf("%w: no ExternalInit proposal", ErrInvalidExternalCommit)
		}
		if committer, err = nt.FreeLeaf(); err != nil {
			return nil, nil, err
		}
	}
	res.CommitterLeaf = committer

	// Our private state after the proposals: a committed Update of ours
	// installs its key (RFC 9420, Section 12.1.2).
	next := &groupState{me: s.me, sigPriv: s.sigPriv, leafPriv: s.leafPriv, reinit: ar.ReInit}
	np := s.priv.Clone()
	for _, sp := range props {
		if sp.Proposal.Type != wire.ProposalUpdate || sp.Sender.Type != wire.SenderMember || sp.Sender.Index != uint32(s.me) {
			continue
		}
		up := sp.Proposal.Body.(*wire.Update)
		ou := s.updateKeys[string(up.LeafNode.EncryptionKey)]
		if ou == nil {
			return nil, nil, fmt.Errorf("%w: committed Update of our leaf that we did not create", ErrInvalidMessage)
		}
		if err := np.SetLeafKey(ou.encPriv); err != nil {
			return nil, nil, err
		}
		next.leafPriv, next.sigPriv = ou.encPriv, ou.sigPriv
	}
	np.Prune(nt)

	ctx := &wire.GroupContext{
		Version:                 s.ctx.Version,
		CipherSuite:             s.ctx.CipherSuite,
		GroupID:                 s.ctx.GroupID,
		Epoch:                   s.ctx.Epoch + 1,
		ConfirmedTranscriptHash: s.ctx.ConfirmedTranscriptHash,
		Extensions:              ar.Extensions,
	}
	var commitSecret []byte
	pathSecrets := keptPathSecrets(s.pathSecrets, np)
	if commit.Path != nil {
		if !external && g.cfg.SameClient != nil {
			old := s.tree.Leaf(committer)
			if old != nil && !g.cfg.SameClient(old, &commit.Path.LeafNode) {
				return nil, nil, fmt.Errorf("%w: UpdatePath leaf credential does not match leaf %d", ErrInvalidMessage, committer)
			}
		}
		mp, err := nt.MergeUpdatePath(committer, commit.Path, &tree.Context{
			GroupID: ctx.GroupID, Extensions: ctx.Extensions, Now: now,
			MaxLifetime: g.cfg.MaxLifetime, VerifyCredential: g.cfg.VerifyCredential,
		}, ar.Added)
		if err != nil {
			return nil, nil, err
		}
		if ctx.TreeHash, err = nt.TreeHash(); err != nil {
			return nil, nil, err
		}
		gc, err := encodedContext(ctx)
		if err != nil {
			return nil, nil, err
		}
		dp, err := mp.Decrypt(np, gc)
		if err != nil {
			return nil, nil, err
		}
		np = dp.Private
		commitSecret = dp.CommitSecret
		pathSecrets = keptPathSecrets(pathSecrets, np)
		ps := dp.PathSecret
		fdp := mp.FilteredDirectPath()
		for i := slices.Index(fdp, dp.Node); i >= 0 && i < len(fdp); i++ {
			pathSecrets[fdp[i]] = ps
			if ps, err = suite.DeriveSecret(ps, "path"); err != nil {
				return nil, nil, err
			}
		}
	} else if ctx.TreeHash, err = nt.TreeHash(); err != nil {
		return nil, nil, err
	}
	if err := np.Check(nt); err != nil {
		return nil, nil, err
	}

	confirmed, err := framing.ConfirmedTranscriptHash(suite, s.interim, ac)
	if err != nil {
		return nil, nil, err
	}
	ctx.ConfirmedTranscriptHash = confirmed

	initSecret := s.secrets.InitSecret
	if external {
		priv, _, err := keyschedule.ExternalKeyPair(suite, s.secrets.ExternalSecret)
		if err != nil {
			return nil, nil, err
		}
		if initSecret, err = externalInitReceive(suite, priv, ar.ExternalInit.KEMOutput); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInvalidExternalCommit, err)
		}
	}
	pskSecret, err := g.pskSecret(s, ar.PSKs)
	if err != nil {
		return nil, nil, err
	}
	gc, err := encodedContext(ctx)
	if err != nil {
		return nil, nil, err
	}
	es, err := keyschedule.Derive(suite, initSecret, commitSecret, pskSecret, gc)
	if err != nil {
		return nil, nil, err
	}
	defer es.Erase()
	if err := framing.VerifyConfirmationTag(suite, es.ConfirmationKey, confirmed, ac.Auth.ConfirmationTag); err != nil {
		return nil, nil, err
	}
	interim, err := framing.InterimTranscriptHash(suite, confirmed, ac.Auth.ConfirmationTag)
	if err != nil {
		return nil, nil, err
	}
	next.ctx = ctx
	next.tree = nt
	next.priv = np
	next.pathSecrets = pathSecrets
	next.secrets = keepSecrets(es)
	next.interim = interim
	next.confTag = bytes.Clone(ac.Auth.ConfirmationTag)
	next.keys = newEpochKeys(suite, es.EncryptionSecret, nt.LeafCount(), &g.cfg)
	return res, next, nil
}
