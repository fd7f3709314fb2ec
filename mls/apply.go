package mls

import (
	"errors"

	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/wire"
)

// Proposal-list validation and application (RFC 9420, Sections 12.2 to
// 12.4; SelfRemove and AppSync) are package mls/commit's, shared with the
// server-side public view; these names keep the call sites short.
type (
	sourcedProposal = commit.SourcedProposal
	applyParams     = commit.Params
)

var (
	applyProposals   = commit.Apply
	validateProposal = commit.ValidateProposal
)

// proposalErrorIndex returns the index of the offending proposal carried by
// a proposal-list error (commit.ProposalError), if any.
func proposalErrorIndex(err error) (int, bool) {
	var pe *commit.ProposalError
	if errors.As(err, &pe) {
		return pe.Index, true
	}
	return 0, false
}

// commitParams fills the policy fields of commit.Params from the config.
func (c *Config) commitParams(p *applyParams, pathLeaf *wire.LeafNode) *applyParams {
	p.Now = c.now()
	p.PathLeaf = pathLeaf
	p.SameClient = c.SameClient
	p.VerifyCredential = c.VerifyCredential
	return p
}
