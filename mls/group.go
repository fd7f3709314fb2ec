// Package mls is the member side of RFC 9420 (Messaging Layer Security) as
// a MIMI client runs it: group creation (Section 11), KeyPackages (Section
// 10), proposals and commits (Section 12), joining by Welcome and by
// external commit (Sections 12.4.3.1 and 12.4.3.2), PrivateMessage
// application data (Sections 6.3 and 15), exporters and epoch
// authenticators (Sections 8.5 and 8.7), resumption PSKs, ReInit and
// branching (Sections 8.6, 11.2 and 11.3), plus the SelfRemove proposal of
// draft-ietf-mls-extensions and the AppSync proposal and application_states
// extension of draft-ralston-mimi-protocol-02.
//
// The building blocks live in sibling packages: wire formats (mls/wire),
// cryptography (mls/cipher), the key schedule and secret tree
// (mls/keyschedule), the ratchet tree and TreeKEM (mls/tree), message
// protection (mls/framing) and proposal-list validation and application
// (mls/commit, shared with the server-side public view). This package
// keeps the state of one member in one group and sequences those steps.
//
// # State changes are atomic
//
// Processing a Commit computes the whole next epoch on copies and swaps it
// in only when every check passed; on error the Group is unchanged
// (MarshalState returns the same bytes). Creating a Commit does not change
// the epoch either: it returns a PendingCommit that is applied with Merge
// once the delivery service accepted it (MIMI's hub may answer wrongEpoch),
// or dropped with Discard.
//
// A Group is safe for concurrent use; its methods serialize on a mutex.
package mls

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// Group is one member's state in one MLS group (RFC 9420, Section 8 and
// 12): the current epoch's GroupContext, ratchet tree, private keys and
// secrets, the proposals received in this epoch, and a few past epochs for
// late application messages.
type Group struct {
	mu      sync.Mutex
	cfg     Config
	suite   *cipher.Suite
	s       *groupState
	gen     uint64         // bumped on every epoch change; PendingCommits check it
	pending *PendingCommit // most recent unmerged commit of ours, to recognize its echo
}

// groupState is everything that changes with the epoch. Processing a
// Commit builds a new groupState and swaps it in.
type groupState struct {
	ctx     *wire.GroupContext
	tree    *tree.Tree
	me      treemath.LeafIndex
	sigPriv []byte

	// Private TreeKEM state: the own leaf's HPKE private key and the path
	// secrets of the parent nodes whose keys are held (kept so that the
	// state can be serialized; see MarshalState). priv is derived from them.
	leafPriv    []byte
	pathSecrets map[treemath.NodeIndex][]byte
	priv        *tree.PrivateState

	secrets *keyschedule.EpochSecrets // joiner/welcome/epoch/encryption secrets dropped
	interim []byte                    // interim_transcript_hash
	confTag []byte                    // confirmation_tag of the commit that started the epoch
	keys    *epochKeys                // secret tree

	proposals  []*cachedProposal
	updateKeys map[string]*ownUpdate // our Update proposals, by new encryption key

	past       []*pastEpoch      // oldest first
	resumption []resumptionEntry // oldest first, current epoch last

	reinit  *wire.ReInit // a committed ReInit ended this group (RFC 9420, Section 11.2)
	removed bool         // a commit removed us; the state is that of the last epoch we were in
}

// cachedProposal is a proposal received by reference in this epoch (RFC
// 9420, Section 12.4).
type cachedProposal struct {
	ref      []byte
	proposal *wire.Proposal
	sender   wire.Sender
}

// pastEpoch is what is kept of an old epoch to decrypt late application
// messages (RFC 9420, Section 15.3).
type pastEpoch struct {
	epoch      uint64
	ended      time.Time // when the group left the epoch (Config.PastEpochTime)
	ctx        *wire.GroupContext
	senderData []byte
	keys       *epochKeys
	tree       *tree.Tree        // in memory: the epoch's tree (shared, never modified)
	sigKeys    map[uint32][]byte // after UnmarshalState: member signature keys
}

// resumptionEntry is the resumption_psk of one epoch (RFC 9420, Section 8.6).
type resumptionEntry struct {
	epoch uint64
	psk   []byte
}

// expirePast deletes the past epochs that Config.PastEpochTime no longer
// keeps (RFC 9420, Section 15.3: old epochs' secrets are deleted once
// late messages are no longer expected).
func (g *Group) expirePast() {
	s := g.s
	if kept := g.cfg.keepPast(s.past, g.cfg.now()); len(kept) < len(s.past) {
		s.past = slices.Clone(kept)
	}
}

func (p *pastEpoch) signatureKey(leaf uint32) []byte {
	if p.tree != nil {
		if ln := p.tree.Leaf(treemath.LeafIndex(leaf)); ln != nil {
			return ln.SignatureKey
		}
		return nil
	}
	return p.sigKeys[leaf]
}

// Member is one member of the group (RFC 9420, Section 7.2): its leaf
// index, credential and signature key, and the whole LeafNode (shared with
// the group's tree: do not modify).
type Member struct {
	Leaf         treemath.LeafIndex
	Credential   wire.Credential
	SignatureKey []byte
	LeafNode     *wire.LeafNode
}

// cloneContext deep-copies a GroupContext.
func cloneContext(c *wire.GroupContext) *wire.GroupContext {
	return &wire.GroupContext{
		Version:                 c.Version,
		CipherSuite:             c.CipherSuite,
		GroupID:                 bytes.Clone(c.GroupID),
		Epoch:                   c.Epoch,
		TreeHash:                bytes.Clone(c.TreeHash),
		ConfirmedTranscriptHash: bytes.Clone(c.ConfirmedTranscriptHash),
		Extensions:              cloneExtensions(c.Extensions),
	}
}

// keepSecrets returns the epoch secrets a member needs after the epoch
// started: joiner, welcome, epoch and encryption secrets are dropped (the
// latter lives in the secret tree), per RFC 9420, Section 9.2.
func keepSecrets(e *keyschedule.EpochSecrets) *keyschedule.EpochSecrets {
	c := bytes.Clone
	return &keyschedule.EpochSecrets{
		SenderDataSecret:   c(e.SenderDataSecret),
		ExporterSecret:     c(e.ExporterSecret),
		ExternalSecret:     c(e.ExternalSecret),
		ConfirmationKey:    c(e.ConfirmationKey),
		MembershipKey:      c(e.MembershipKey),
		ResumptionPSK:      c(e.ResumptionPSK),
		EpochAuthenticator: c(e.EpochAuthenticator),
		InitSecret:         c(e.InitSecret),
	}
}

// encodedContext returns the TLS encoding of ctx.
func encodedContext(ctx *wire.GroupContext) ([]byte, error) {
	b, err := ctx.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("mls: encoding GroupContext: %w", err)
	}
	return b, nil
}

// framingEpoch is the view of the current epoch that mls/framing needs.
func (g *Group) framingEpoch(s *groupState) *framing.Epoch {
	return &framing.Epoch{
		Suite:            g.suite,
		Context:          s.ctx,
		MembershipKey:    s.secrets.MembershipKey,
		SenderDataSecret: s.secrets.SenderDataSecret,
		SecretTree:       s.keys.tree,
		CheckMember: func(leaf uint32) error {
			if s.tree.Leaf(treemath.LeafIndex(leaf)) == nil {
				return fmt.Errorf("%w: leaf %d is blank or outside the tree", ErrUnknownSender, leaf)
			}
			// Our own sending ratchet must never be advanced by a received
			// message (another member could do so to make us reuse keys).
			if leaf == uint32(s.me) {
				return fmt.Errorf("%w: PrivateMessage claims our own leaf %d", ErrUnknownSender, leaf)
			}
			return nil
		},
		SignatureKey: func(sender wire.Sender, _ *wire.FramedContent) ([]byte, error) {
			if sender.Type != wire.SenderMember {
				return nil, fmt.Errorf("%w: sender type %d in a PrivateMessage", ErrUnknownSender, sender.Type)
			}
			ln := s.tree.Leaf(treemath.LeafIndex(sender.Index))
			if ln == nil {
				return nil, fmt.Errorf("%w: leaf %d", ErrUnknownSender, sender.Index)
			}
			return ln.SignatureKey, nil
		},
	}
}

// pastFramingEpoch is the framing view of a kept past epoch (PrivateMessage
// application data only).
func (g *Group) pastFramingEpoch(p *pastEpoch, me treemath.LeafIndex) *framing.Epoch {
	return &framing.Epoch{
		Suite:            g.suite,
		Context:          p.ctx,
		SenderDataSecret: p.senderData,
		SecretTree:       p.keys.tree,
		CheckMember: func(leaf uint32) error {
			if leaf == uint32(me) {
				return fmt.Errorf("%w: PrivateMessage claims our own leaf %d", ErrUnknownSender, leaf)
			}
			if p.signatureKey(leaf) == nil {
				return fmt.Errorf("%w: leaf %d was not a member in epoch %d", ErrUnknownSender, leaf, p.epoch)
			}
			return nil
		},
		SignatureKey: func(sender wire.Sender, _ *wire.FramedContent) ([]byte, error) {
			k := p.signatureKey(sender.Index)
			if sender.Type != wire.SenderMember || k == nil {
				return nil, fmt.Errorf("%w: sender %d/%d in epoch %d", ErrUnknownSender, sender.Type, sender.Index, p.epoch)
			}
			return k, nil
		},
	}
}

// checkActive reports ErrInactive (or ErrRemoved) for a group that can no
// longer send or process handshake messages.
func (s *groupState) checkActive() error {
	switch {
	case s.removed:
		return ErrRemoved
	case s.reinit != nil:
		return fmt.Errorf("%w: the group was reinitialized", ErrInactive)
	}
	return nil
}

// ---- Accessors --------------------------------------------------------

// CipherSuite returns the group's cipher suite (RFC 9420, Section 8.1).
func (g *Group) CipherSuite() cipher.SuiteID { return g.suite.ID() }

// GroupID returns the group_id (RFC 9420, Section 8.1).
func (g *Group) GroupID() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return bytes.Clone(g.s.ctx.GroupID)
}

// Epoch returns the current epoch number (RFC 9420, Section 8.1).
func (g *Group) Epoch() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.s.ctx.Epoch
}

// GroupContext returns a copy of the current GroupContext (RFC 9420,
// Section 8.1).
func (g *Group) GroupContext() *wire.GroupContext {
	g.mu.Lock()
	defer g.mu.Unlock()
	return cloneContext(g.s.ctx)
}

// Extensions returns a copy of the GroupContext extensions (RFC 9420,
// Section 13).
func (g *Group) Extensions() []wire.Extension {
	g.mu.Lock()
	defer g.mu.Unlock()
	return cloneExtensions(g.s.ctx.Extensions)
}

// ApplicationStates returns the application_states GroupContext extension
// (draft-ralston-mimi-protocol-02, Section 7), empty when absent.
func (g *Group) ApplicationStates() (*appsync.States, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, _, err := wire.ApplicationStatesExtension(g.s.ctx.Extensions)
	return st, err
}

// LeafIndex returns this member's leaf index (RFC 9420, Section 4.1).
func (g *Group) LeafIndex() treemath.LeafIndex {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.s.me
}

// Members returns the roster: every non-blank leaf in index order (RFC
// 9420, Section 7.2).
func (g *Group) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Member
	for l, ln := range g.s.tree.Leaves() {
		out = append(out, Member{Leaf: l, Credential: ln.Credential, SignatureKey: ln.SignatureKey, LeafNode: ln})
	}
	return out
}

// Member returns the member at leaf l, if that leaf is not blank.
func (g *Group) Member(l treemath.LeafIndex) (Member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ln := g.s.tree.Leaf(l)
	if ln == nil {
		return Member{}, false
	}
	return Member{Leaf: l, Credential: ln.Credential, SignatureKey: ln.SignatureKey, LeafNode: ln}, true
}

// MemberCount returns the number of members (RFC 9420, Section 4.1.1).
func (g *Group) MemberCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.s.tree.MemberCount()
}

// RatchetTree returns the public ratchet tree in the form of the
// ratchet_tree extension (RFC 9420, Section 12.4.3.3), e.g. to hand to a
// joiner out of band. The nodes are shared: do not modify them.
func (g *Group) RatchetTree() wire.RatchetTree {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.s.tree.RatchetTree()
}

// EpochAuthenticator returns the current epoch_authenticator (RFC 9420,
// Section 8.7).
func (g *Group) EpochAuthenticator() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return bytes.Clone(g.s.secrets.EpochAuthenticator)
}

// Export is the MLS-Exporter of the current epoch (RFC 9420, Section 8.5).
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return keyschedule.Export(g.suite, g.s.secrets.ExporterSecret, label, context, length)
}

// ResumptionPSK returns the resumption_psk of a kept epoch of this group
// (RFC 9420, Section 8.6).
func (g *Group) ResumptionPSK(epoch uint64) ([]byte, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.s.resumption {
		if r.epoch == epoch {
			return bytes.Clone(r.psk), true
		}
	}
	return nil, false
}

// Active reports whether the group can still be used: false after this
// member was removed or a ReInit was committed (RFC 9420, Section 12.4.2).
func (g *Group) Active() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.s.checkActive() == nil
}

// ReInit returns the committed ReInit proposal that ended this group (RFC
// 9420, Section 11.2), or nil.
func (g *Group) ReInit() *wire.ReInit {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.s.reinit
}

// PendingProposal is a proposal cached by reference in the current epoch
// (RFC 9420, Section 12.4).
type PendingProposal struct {
	Ref      []byte
	Proposal *wire.Proposal
	Sender   wire.Sender
}

// PendingProposals lists the proposals received (or sent) by reference in
// the current epoch, in arrival order. They are shared: do not modify.
func (g *Group) PendingProposals() []PendingProposal {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]PendingProposal, len(g.s.proposals))
	for i, p := range g.s.proposals {
		out[i] = PendingProposal{Ref: bytes.Clone(p.ref), Proposal: p.proposal, Sender: p.sender}
	}
	return out
}

// Config returns the group's configuration.
func (g *Group) Config() Config {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg
}

// SetConfig replaces the group's configuration (policy and callbacks; the
// secret tree window applies from the next epoch).
func (g *Group) SetConfig(cfg Config) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfg = cfg
}
