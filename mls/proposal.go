package mls

import (
	"bytes"
	"fmt"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// SendOptions customize an outgoing proposal, commit or application
// message (RFC 9420, Section 6).
type SendOptions struct {
	// AuthenticatedData is the FramedContent authenticated_data.
	AuthenticatedData []byte
	// Private encodes a proposal or commit as PrivateMessage instead of
	// PublicMessage (RFC 9420, Section 6.3). Application messages are
	// always PrivateMessages. MIMI hubs need PublicMessage handshakes.
	Private bool
}

// SentProposal is a proposal this member sent (RFC 9420, Section 12.1):
// the message to deliver, its ProposalRef (Section 5.2) and the proposal.
// The proposal is also cached, so a later Commit (ours or another
// member's) can include it by reference.
type SentProposal struct {
	Message  *wire.MLSMessage
	Ref      []byte
	Proposal *wire.Proposal
}

// ownUpdate holds the private keys of an Update proposal of ours, used if
// it is committed (RFC 9420, Section 12.1.2).
type ownUpdate struct {
	encPriv []byte
	sigPriv []byte
}

// Propose sends an arbitrary proposal by reference (RFC 9420, Section
// 12.1), after checking it against the current epoch (sender rules and the
// proposal's own validity, mls/commit ValidateProposal). The typed
// Propose* helpers build the common proposals.
func (g *Group) Propose(p *wire.Proposal, opts *SendOptions) (*SentProposal, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.propose(p, opts)
}

func (g *Group) propose(p *wire.Proposal, opts *SendOptions) (*SentProposal, error) {
	s := g.s
	if err := s.checkActive(); err != nil {
		return nil, err
	}
	if p == nil || p.Body == nil {
		return nil, fmt.Errorf("%w: nil proposal", ErrInvalidArgument)
	}
	if opts == nil {
		opts = &SendOptions{}
	}
	sender := wire.Sender{Type: wire.SenderMember, Index: uint32(s.me)}
	if err := validateProposal(g.suite, s.tree, s.ctx, sender, p, g.cfg.now()); err != nil {
		return nil, err
	}
	content := &wire.FramedContent{
		GroupID:           s.ctx.GroupID,
		Epoch:             s.ctx.Epoch,
		Sender:            sender,
		AuthenticatedData: bytes.Clone(opts.AuthenticatedData),
		ContentType:       wire.ContentProposal,
		Proposal:          p,
	}
	ac, msg, err := g.protectHandshake(s, content, opts.Private)
	if err != nil {
		return nil, err
	}
	ref, err := ac.ProposalRef(g.suite)
	if err != nil {
		return nil, err
	}
	g.cacheProposal(s, ref, p, sender)
	return &SentProposal{Message: msg, Ref: ref, Proposal: p}, nil
}

// protectHandshake signs content (with the current GroupContext) and
// encodes it as a PublicMessage or PrivateMessage (RFC 9420, Sections 6.1
// to 6.3). For a commit, finish is called with the signed content to set
// the confirmation tag before protection.
func (g *Group) protectHandshake(s *groupState, content *wire.FramedContent, private bool, finish ...func(*wire.AuthenticatedContent) error) (*wire.AuthenticatedContent, *wire.MLSMessage, error) {
	wf := wire.WireFormatPublicMessage
	if private {
		wf = wire.WireFormatPrivateMessage
	}
	ac, err := framing.Sign(g.suite, wf, content, s.ctx, s.sigPriv)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range finish {
		if err := f(ac); err != nil {
			return nil, nil, err
		}
	}
	msg, err := g.protect(s, ac)
	if err != nil {
		return nil, nil, err
	}
	return ac, msg, nil
}

// protect encodes a signed AuthenticatedContent with the current epoch's
// keys (RFC 9420, Sections 6.2 and 6.3).
func (g *Group) protect(s *groupState, ac *wire.AuthenticatedContent) (*wire.MLSMessage, error) {
	e := g.framingEpoch(s)
	if ac.WireFormat == wire.WireFormatPublicMessage {
		pm, err := framing.ProtectPublic(e, ac)
		if err != nil {
			return nil, err
		}
		return &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: pm}, nil
	}
	pm, err := framing.ProtectPrivate(e, ac, &framing.PrivateOptions{PadTo: g.cfg.PadTo, Rand: g.cfg.Rand})
	if err != nil {
		return nil, err
	}
	// ProtectPrivate used the next generation of our ratchet; read it back
	// from the sender data for the persisted secret tree.
	gen, err := g.senderGeneration(s.secrets.SenderDataSecret, pm)
	if err != nil {
		return nil, err
	}
	s.keys.noteUsed(uint32(s.me), ratchetType(ac.Content.ContentType), gen)
	return &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPrivateMessage, PrivateMessage: pm}, nil
}

// cacheProposal adds a proposal to the epoch's cache unless its reference
// is already there.
func (g *Group) cacheProposal(s *groupState, ref []byte, p *wire.Proposal, sender wire.Sender) {
	for _, c := range s.proposals {
		if bytes.Equal(c.ref, ref) {
			return
		}
	}
	s.proposals = append(s.proposals, &cachedProposal{ref: ref, proposal: p, sender: sender})
}

// ProposeAdd proposes adding the owner of kp (RFC 9420, Section 12.1.1).
func (g *Group) ProposeAdd(kp *wire.KeyPackage, opts *SendOptions) (*SentProposal, error) {
	if kp == nil {
		return nil, fmt.Errorf("%w: nil key package", ErrInvalidArgument)
	}
	return g.Propose(&wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp}}, opts)
}

// ProposeUpdate proposes replacing this member's LeafNode with one holding
// a fresh encryption key (RFC 9420, Section 12.1.2). leaf may change the
// capabilities and extensions, and with leaf.Signer the credential and
// signature key (the new key is used from the epoch in which the Update is
// committed). A committer cannot commit its own Update; another member has
// to (our own Commit provides the same through its UpdatePath).
func (g *Group) ProposeUpdate(leaf *LeafOptions, opts *SendOptions) (*SentProposal, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.s
	if err := s.checkActive(); err != nil {
		return nil, err
	}
	ln, sigPriv, err := g.leafTemplate(s, leaf)
	if err != nil {
		return nil, err
	}
	encPriv, encPub, err := g.suite.GenerateHPKEKey()
	if err != nil {
		return nil, err
	}
	ln.EncryptionKey = encPub
	ln.Source = wire.LeafNodeSourceUpdate
	ln.Lifetime = nil
	ln.ParentHash = nil
	if err := ln.Sign(g.suite, sigPriv, s.ctx.GroupID, uint32(s.me)); err != nil {
		return nil, fmt.Errorf("mls: signing update leaf: %w", err)
	}
	sp, err := g.propose(&wire.Proposal{Type: wire.ProposalUpdate, Body: &wire.Update{LeafNode: *ln}}, opts)
	if err != nil {
		return nil, err
	}
	if s.updateKeys == nil {
		s.updateKeys = map[string]*ownUpdate{}
	}
	s.updateKeys[string(encPub)] = &ownUpdate{encPriv: encPriv, sigPriv: sigPriv}
	return sp, nil
}

// leafTemplate returns a copy of our current LeafNode adjusted by o (for
// Update proposals and UpdatePaths), and the signature private key that
// signs it.
func (g *Group) leafTemplate(s *groupState, o *LeafOptions) (*wire.LeafNode, []byte, error) {
	cur := s.tree.Leaf(s.me)
	if cur == nil {
		return nil, nil, fmt.Errorf("%w: our leaf %d is blank", ErrInactive, s.me)
	}
	ln := *cur
	ln.Credential = cloneCredential(&cur.Credential)
	ln.Capabilities = cloneCapabilities(&cur.Capabilities)
	ln.Extensions = cloneExtensions(cur.Extensions)
	sigPriv := s.sigPriv
	if o != nil {
		if o.Capabilities != nil {
			ln.Capabilities = cloneCapabilities(o.Capabilities)
		}
		if o.Extensions != nil {
			ln.Extensions = cloneExtensions(o.Extensions)
		}
		if o.Signer != nil {
			pub, err := g.suite.SignaturePublicKey(o.Signer.SignaturePriv)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: signature private key: %w", ErrInvalidArgument, err)
			}
			ln.SignatureKey = pub
			ln.Credential = cloneCredential(&o.Signer.Credential)
			sigPriv = bytes.Clone(o.Signer.SignaturePriv)
		}
	}
	return &ln, sigPriv, nil
}

// ProposeRemove proposes removing the member at leaf (RFC 9420, Section
// 12.1.3).
func (g *Group) ProposeRemove(leaf treemath.LeafIndex, opts *SendOptions) (*SentProposal, error) {
	return g.Propose(&wire.Proposal{Type: wire.ProposalRemove, Body: &wire.Remove{Removed: uint32(leaf)}}, opts)
}

// NewExternalPSKID returns a PreSharedKeyID for an external PSK with a
// fresh psk_nonce of Nh bytes (RFC 9420, Section 8.4).
func NewExternalPSKID(suite cipher.SuiteID, pskID []byte) (wire.PreSharedKeyID, error) {
	s, err := cipher.Lookup(suite)
	if err != nil {
		return wire.PreSharedKeyID{}, err
	}
	nonce, err := randomBytes(nil, s.HashSize())
	if err != nil {
		return wire.PreSharedKeyID{}, err
	}
	return wire.PreSharedKeyID{Type: wire.PSKExternal, PSKID: bytes.Clone(pskID), Nonce: nonce}, nil
}

// NewResumptionPSKID returns a PreSharedKeyID for the resumption_psk of
// groupID at epoch with the given usage and a fresh psk_nonce of Nh bytes
// (RFC 9420, Sections 8.4 and 8.6).
func NewResumptionPSKID(suite cipher.SuiteID, usage wire.ResumptionPSKUsage, groupID []byte, epoch uint64) (wire.PreSharedKeyID, error) {
	s, err := cipher.Lookup(suite)
	if err != nil {
		return wire.PreSharedKeyID{}, err
	}
	nonce, err := randomBytes(nil, s.HashSize())
	if err != nil {
		return wire.PreSharedKeyID{}, err
	}
	return wire.PreSharedKeyID{Type: wire.PSKResumption, Usage: usage, PSKGroupID: bytes.Clone(groupID), PSKEpoch: epoch, Nonce: nonce}, nil
}

// ProposeExternalPSK proposes injecting the external PSK pskID (RFC 9420,
// Section 12.1.4); Config.ExternalPSK must know it.
func (g *Group) ProposeExternalPSK(pskID []byte, opts *SendOptions) (*SentProposal, error) {
	id, err := NewExternalPSKID(g.suite.ID(), pskID)
	if err != nil {
		return nil, err
	}
	return g.Propose(&wire.Proposal{Type: wire.ProposalPreSharedKey, Body: &wire.PreSharedKey{PSK: id}}, opts)
}

// ProposeResumptionPSK proposes injecting the resumption_psk of this
// group's epoch (usage application; RFC 9420, Sections 8.6 and 12.1.4).
func (g *Group) ProposeResumptionPSK(epoch uint64, opts *SendOptions) (*SentProposal, error) {
	id, err := NewResumptionPSKID(g.suite.ID(), wire.ResumptionApplication, g.GroupID(), epoch)
	if err != nil {
		return nil, err
	}
	return g.Propose(&wire.Proposal{Type: wire.ProposalPreSharedKey, Body: &wire.PreSharedKey{PSK: id}}, opts)
}

// ProposeReInit proposes reinitializing the group with new parameters
// (RFC 9420, Sections 11.2 and 12.1.5).
func (g *Group) ProposeReInit(ri *wire.ReInit, opts *SendOptions) (*SentProposal, error) {
	if ri == nil {
		return nil, fmt.Errorf("%w: nil ReInit", ErrInvalidArgument)
	}
	c := *ri
	c.GroupID = bytes.Clone(ri.GroupID)
	c.Extensions = cloneExtensions(ri.Extensions)
	return g.Propose(&wire.Proposal{Type: wire.ProposalReInit, Body: &c}, opts)
}

// ProposeGroupContextExtensions proposes replacing the GroupContext
// extensions (RFC 9420, Section 12.1.7).
func (g *Group) ProposeGroupContextExtensions(exts []wire.Extension, opts *SendOptions) (*SentProposal, error) {
	return g.Propose(&wire.Proposal{Type: wire.ProposalGroupContextExtensions,
		Body: &wire.GroupContextExtensions{Extensions: cloneExtensions(exts)}}, opts)
}

// ProposeSelfRemove proposes this member's own removal
// (draft-ietf-mls-extensions, SelfRemove). Another member commits it.
func (g *Group) ProposeSelfRemove(opts *SendOptions) (*SentProposal, error) {
	return g.Propose(&wire.Proposal{Type: wire.ProposalSelfRemove, Body: &wire.SelfRemove{}}, opts)
}

// ProposeAppSync proposes a change to the application_states extension
// (draft-ralston-mimi-protocol-02, Section 7).
func (g *Group) ProposeAppSync(a *appsync.AppSync, opts *SendOptions) (*SentProposal, error) {
	if a == nil {
		return nil, fmt.Errorf("%w: nil AppSync", ErrInvalidArgument)
	}
	return g.Propose(&wire.Proposal{Type: wire.ProposalAppSync, Body: &wire.AppSync{AppSync: *a}}, opts)
}
