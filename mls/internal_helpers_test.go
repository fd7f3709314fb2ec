package mls

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

const testSuite = cipher.X25519_AES128GCM_SHA256_Ed25519

func iSigner(t testing.TB, suite cipher.SuiteID, name string) Signer {
	t.Helper()
	s, _ := cipher.Lookup(suite)
	priv, _, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	return Signer{Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte(name)}, SignaturePriv: priv}
}

// iGroup creates a group of n members (member 0 created it and added the
// others in one commit) with configuration cfg.
func iGroup(t testing.TB, n int, cfg Config, exts ...wire.Extension) []*Group {
	t.Helper()
	g0, err := CreateGroup(testSuite, []byte("negative test group"), iSigner(t, testSuite, "m0"), &CreateOptions{Config: cfg, Extensions: exts})
	if err != nil {
		t.Fatal(err)
	}
	gs := []*Group{g0}
	if n == 1 {
		return gs
	}
	var props []*wire.Proposal
	var kps []*KeyPackageBundle
	for i := 1; i < n; i++ {
		s := iSigner(t, testSuite, fmt.Sprintf("m%d", i))
		kp, err := NewKeyPackage(testSuite, s.Credential, s.SignaturePriv, nil)
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
		props = append(props, addProposal(kp.KeyPackage))
	}
	pc, err := g0.Commit(&CommitOptions{Proposals: props, WelcomeRatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	for _, kp := range kps {
		g, err := JoinFromWelcome(pc.Welcome, kp, &JoinOptions{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	return gs
}

func addProposal(kp *wire.KeyPackage) *wire.Proposal {
	return &wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp}}
}

func removeProposal(l treemath.LeafIndex) *wire.Proposal {
	return &wire.Proposal{Type: wire.ProposalRemove, Body: &wire.Remove{Removed: uint32(l)}}
}

// deliver processes msg at every group but skip, failing on error.
func deliver(t testing.TB, gs []*Group, skip int, msg *wire.MLSMessage) {
	t.Helper()
	for i, g := range gs {
		if i == skip || g == nil {
			continue
		}
		if _, err := g.Process(msg); err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
}

// sameEpoch asserts every group shares the epoch authenticator.
func sameEpoch(t testing.TB, gs []*Group) {
	t.Helper()
	for i, g := range gs[1:] {
		if g == nil {
			continue
		}
		if !bytes.Equal(g.EpochAuthenticator(), gs[0].EpochAuthenticator()) {
			t.Fatalf("member %d disagrees on the epoch authenticator", i+1)
		}
	}
}

// naiveApply applies a proposal list WITHOUT validating it, ignoring
// operations the tree refuses. Tests swap it in for commit.Apply on the
// sending side to forge invalid commits.
func naiveApply(p *commit.Params) (*commit.Result, error) {
	r := &commit.Result{Tree: p.Tree.Clone(), Extensions: p.Context.Extensions}
	var updates, removes, adds []commit.SourcedProposal
	for _, sp := range p.Proposals {
		switch b := sp.Proposal.Body.(type) {
		case *wire.GroupContextExtensions:
			r.Extensions = b.Extensions
		case *wire.Update:
			updates = append(updates, sp)
		case *wire.Remove, *wire.SelfRemove:
			removes = append(removes, sp)
		case *wire.Add:
			adds = append(adds, sp)
		case *wire.PreSharedKey:
			r.PSKs = append(r.PSKs, b.PSK)
		case *wire.ReInit:
			r.ReInit = b
		case *wire.ExternalInit:
			r.ExternalInit = b
		}
	}
	for _, sp := range updates {
		_ = r.Tree.UpdateLeaf(treemath.LeafIndex(sp.Sender.Index), &sp.Proposal.Body.(*wire.Update).LeafNode)
	}
	for _, sp := range removes {
		l := treemath.LeafIndex(sp.Sender.Index)
		if rm, ok := sp.Proposal.Body.(*wire.Remove); ok {
			l = treemath.LeafIndex(rm.Removed)
		}
		if r.Tree.RemoveLeaf(l) == nil {
			r.Removed = append(r.Removed, l)
		}
	}
	for _, sp := range adds {
		kp := &sp.Proposal.Body.(*wire.Add).KeyPackage
		l, err := r.Tree.AddLeaf(&kp.LeafNode)
		if err != nil {
			return nil, err
		}
		r.Added = append(r.Added, l)
		r.AddedKeyPackages = append(r.AddedKeyPackages, kp)
	}
	return r, nil
}

// forge builds a commit from g with exactly the given proposals (by value)
// and references (by reference, taken from g's cache or made up), bypassing
// proposal-list validation on the sending side.
func forge(t testing.TB, g *Group, byValue []*wire.Proposal, refs [][]byte, opts *CommitOptions) *PendingCommit {
	t.Helper()
	if opts == nil {
		opts = &CommitOptions{}
	}
	old := applyProposals
	applyProposals = naiveApply
	defer func() { applyProposals = old }()
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.s
	me := wire.Sender{Type: wire.SenderMember, Index: uint32(s.me)}
	in := &commitInput{sender: me, sigPriv: s.sigPriv, opts: opts, initSecret: s.secrets.InitSecret}
	for _, ref := range refs {
		sp := commit.SourcedProposal{Ref: ref, Sender: me, Proposal: &wire.Proposal{Type: wire.ProposalGroupContextExtensions,
			Body: &wire.GroupContextExtensions{Extensions: s.ctx.Extensions}}}
		for _, c := range s.proposals {
			if bytes.Equal(c.ref, ref) {
				sp = commit.SourcedProposal{Ref: ref, Proposal: c.proposal, Sender: c.sender}
			}
		}
		in.proposals = append(in.proposals, sp)
		in.ors = append(in.ors, wire.ProposalOrRef{Type: wire.ProposalOrRefReference, Reference: ref})
	}
	for _, p := range byValue {
		in.proposals = append(in.proposals, commit.SourcedProposal{Proposal: p, Sender: me})
		in.ors = append(in.ors, wire.ProposalOrRef{Type: wire.ProposalOrRefProposal, Proposal: p})
	}
	pc, err := g.buildCommit(s, in)
	if err != nil {
		t.Fatalf("forging commit: %v", err)
	}
	return pc
}
