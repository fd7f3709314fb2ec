package mls

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"slices"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// CreateOptions customize CreateGroup (RFC 9420, Section 11).
type CreateOptions struct {
	// Leaf customizes the creator's LeafNode (Leaf.Signer is ignored).
	Leaf LeafOptions
	// Extensions are the initial GroupContext extensions, for example
	// external_senders, required_capabilities and application_states.
	Extensions []wire.Extension
	// Config is the group's policy.
	Config Config
}

// CreateGroup creates a one-member group with the creator's leaf, epoch 0,
// an empty confirmed transcript hash and a fresh random epoch secret, then
// computes the confirmation tag over the empty transcript and the interim
// transcript hash (RFC 9420, Section 11). groupID should be unique, for
// example Nh random bytes (see NewGroupID).
func CreateGroup(suite cipher.SuiteID, groupID []byte, signer Signer, opts *CreateOptions) (*Group, error) {
	s, err := cipher.Lookup(suite)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &CreateOptions{}
	}
	if len(groupID) == 0 {
		return nil, fmt.Errorf("%w: empty group ID", ErrInvalidArgument)
	}
	cfg := opts.Config
	ln, err := newLeafNode(s, &signer, &opts.Leaf)
	if err != nil {
		return nil, err
	}
	encPriv, encPub, err := s.GenerateHPKEKey()
	if err != nil {
		return nil, err
	}
	ln.EncryptionKey = encPub
	ln.Source = wire.LeafNodeSourceKeyPackage
	ln.Lifetime = leafLifetime(opts.Leaf.Lifetime, cfg.now())
	if err := ln.Sign(s, signer.SignaturePriv, nil, 0); err != nil {
		return nil, fmt.Errorf("mls: signing leaf node: %w", err)
	}
	exts := cloneExtensions(opts.Extensions)
	if err := checkGroupExtensions(exts, &ln.Capabilities); err != nil {
		return nil, err
	}
	t := tree.New(s)
	if err := t.ValidateLeafNode(ln, tree.UseKeyPackage, 0, &tree.Context{
		GroupID: groupID, Extensions: exts, Now: cfg.now(), MaxLifetime: cfg.MaxLifetime, VerifyCredential: cfg.VerifyCredential,
	}); err != nil {
		return nil, err
	}
	me, err := t.AddLeaf(ln)
	if err != nil {
		return nil, err
	}
	th, err := t.TreeHash()
	if err != nil {
		return nil, err
	}
	ctx := &wire.GroupContext{
		Version:                 wire.MLS10,
		CipherSuite:             suite,
		GroupID:                 bytes.Clone(groupID),
		Epoch:                   0,
		TreeHash:                th,
		ConfirmedTranscriptHash: []byte{},
		Extensions:              exts,
	}
	gc, err := encodedContext(ctx)
	if err != nil {
		return nil, err
	}
	// A random joiner secret gives a random epoch secret (Section 11: "a
	// fresh random value of size KDF.Nh").
	joiner, err := randomBytes(cfg.Rand, s.HashSize())
	if err != nil {
		return nil, err
	}
	es, err := keyschedule.FromJoiner(s, joiner, nil, gc)
	if err != nil {
		return nil, err
	}
	tag := framing.ConfirmationTag(s, es.ConfirmationKey, ctx.ConfirmedTranscriptHash)
	interim, err := framing.InterimTranscriptHash(s, ctx.ConfirmedTranscriptHash, tag)
	if err != nil {
		return nil, err
	}
	priv, err := tree.NewPrivateState(s, me, encPriv)
	if err != nil {
		return nil, err
	}
	st := &groupState{
		ctx:         ctx,
		tree:        t,
		me:          me,
		sigPriv:     bytes.Clone(signer.SignaturePriv),
		leafPriv:    encPriv,
		pathSecrets: map[treemath.NodeIndex][]byte{},
		priv:        priv,
		secrets:     keepSecrets(es),
		interim:     interim,
		confTag:     tag,
		keys:        newEpochKeys(s, es.EncryptionSecret, t.LeafCount(), &cfg),
		resumption:  nil,
	}
	st.resumption = []resumptionEntry{{epoch: 0, psk: st.secrets.ResumptionPSK}}
	es.Erase()
	return &Group{cfg: cfg, suite: s, s: st}, nil
}

// NewGroupID returns n random bytes for use as a group ID (RFC 9420,
// Section 11 recommends KDF.Nh random bytes).
func NewGroupID(n int) ([]byte, error) {
	return randomBytes(nil, n)
}

// randomBytes reads n bytes from r (crypto/rand when nil).
func randomBytes(r io.Reader, n int) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("mls: reading randomness: %w", err)
	}
	return b, nil
}

// defaultExtension reports whether e is an extension type every client
// supports (RFC 9420, Section 7.2: the types of Section 17.3).
func defaultExtension(e wire.ExtensionType) bool { return e >= 1 && e <= 5 }

// checkGroupExtensions rejects duplicate GroupContext extensions (RFC 9420,
// Section 13) and extensions the given capabilities do not support (RFC
// 9420, Section 12.4.3: GroupContext extensions MUST be supported by a
// joiner; Section 12.1.7 for the proposer).
func checkGroupExtensions(exts []wire.Extension, caps *wire.Capabilities) error {
	if t, dup := wire.DuplicateExtension(exts); dup {
		return fmt.Errorf("%w: duplicate GroupContext extension %d", ErrInvalidArgument, t)
	}
	for _, e := range exts {
		if !defaultExtension(e.Type) && !slices.Contains(caps.Extensions, e.Type) {
			return fmt.Errorf("%w: GroupContext extension %d not in our capabilities", ErrInvalidArgument, e.Type)
		}
	}
	return nil
}
