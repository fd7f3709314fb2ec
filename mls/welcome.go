package mls

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// JoinOptions customize JoinFromWelcome (RFC 9420, Section 12.4.3.1).
type JoinOptions struct {
	// RatchetTree is the group's tree when the Welcome's GroupInfo has no
	// ratchet_tree extension (RFC 9420, Section 12.4.3.3; MIMI hands it
	// out of band). Ignored when the extension is present.
	RatchetTree wire.RatchetTree
	// Config is the new group's policy. Its ExternalPSK and ResumptionPSK
	// callbacks resolve the PSKs named in GroupSecrets.
	Config Config
	// PreviousGroup is the group a ReInit or branch Welcome refers to by a
	// resumption PSK with usage reinit or branch (RFC 9420, Sections 11.2,
	// 11.3 and 12.4.3.1). Its resumption PSKs are used and the new group is
	// checked against it; such Welcomes are rejected without it.
	PreviousGroup *Group
}

// JoinFromWelcome joins a group from a Welcome message (an MLSMessage of
// wire format mls_welcome) for the KeyPackage in kp, performing every
// check of RFC 9420, Section 12.4.3.1: it decrypts the GroupSecrets and
// GroupInfo, resolves the PSKs, verifies the GroupInfo signature with the
// signer's leaf, validates the whole ratchet tree (tree hash, parent
// hashes, every leaf, unmerged leaves, key uniqueness), finds our leaf,
// checks that we support the GroupContext extensions, installs the path
// secret, derives the epoch and verifies the confirmation tag, and for
// reinit/branch PSKs applies the rules of Sections 11.2 and 11.3.
//
// The application must still check that the group_id is not one of its
// other groups' (Section 12.4.3.1).
func JoinFromWelcome(msg *wire.MLSMessage, kp *KeyPackageBundle, opts *JoinOptions) (*Group, error) {
	if msg == nil || msg.WireFormat != wire.WireFormatWelcome || msg.Welcome == nil {
		return nil, fmt.Errorf("%w: not a Welcome", ErrInvalidMessage)
	}
	if kp == nil || kp.KeyPackage == nil {
		return nil, fmt.Errorf("%w: nil key package bundle", ErrInvalidArgument)
	}
	if opts == nil {
		opts = &JoinOptions{}
	}
	w := msg.Welcome
	cfg := opts.Config
	s, err := cipher.Lookup(w.CipherSuite)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWelcomeInvalid, err)
	}
	if kp.KeyPackage.CipherSuite != w.CipherSuite {
		return nil, fmt.Errorf("%w: %w: key package suite %d, welcome suite %d", ErrWelcomeInvalid, framing.ErrSuiteMismatch, kp.KeyPackage.CipherSuite, w.CipherSuite)
	}
	ref, err := kp.KeyPackage.Ref(s)
	if err != nil {
		return nil, err
	}
	kp = kp.normalized(s)
	var prev *groupState
	if opts.PreviousGroup != nil {
		opts.PreviousGroup.mu.Lock()
		prev = opts.PreviousGroup.s
		opts.PreviousGroup.mu.Unlock()
	}
	ow, err := framing.OpenWelcome(s, w, ref, kp.InitPriv, func(id *wire.PreSharedKeyID) ([]byte, error) {
		return lookupPSK(&cfg, prev, id)
	})
	if err != nil {
		if errors.Is(err, framing.ErrMissingPSK) {
			return nil, fmt.Errorf("%w: %w", ErrMissingPSK, err)
		}
		return nil, err
	}
	gi := ow.GroupInfo
	t, err := groupInfoTree(s, gi, opts.RatchetTree)
	if err != nil {
		return nil, err
	}
	ctx := cloneContext(&gi.GroupContext)
	if ctx.Version != wire.MLS10 {
		return nil, fmt.Errorf("%w: version %d", ErrWelcomeInvalid, ctx.Version)
	}
	if err := verifyGroupInfo(s, gi, t); err != nil {
		return nil, err
	}
	var now time.Time
	if cfg.CheckTreeLifetimes {
		now = cfg.now()
	}
	if err := t.Validate(ctx.TreeHash, &tree.Context{
		GroupID: ctx.GroupID, Extensions: ctx.Extensions, Now: now,
		MaxLifetime: cfg.MaxLifetime, VerifyCredential: cfg.VerifyCredential,
	}); err != nil {
		return nil, fmt.Errorf("%w: ratchet tree: %w", ErrWelcomeInvalid, err)
	}
	want, err := kp.KeyPackage.LeafNode.MarshalBinary()
	if err != nil {
		return nil, err
	}
	me, ok := t.FindLeaf(func(_ treemath.LeafIndex, ln *wire.LeafNode) bool {
		if !bytes.Equal(ln.EncryptionKey, kp.KeyPackage.LeafNode.EncryptionKey) {
			return false
		}
		b, err := ln.MarshalBinary()
		return err == nil && bytes.Equal(b, want)
	})
	if !ok {
		return nil, fmt.Errorf("%w: our KeyPackage's leaf is not in the tree", ErrWelcomeInvalid)
	}
	if err := checkGroupExtensions(ctx.Extensions, &kp.KeyPackage.LeafNode.Capabilities); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWelcomeInvalid, err)
	}
	priv, err := tree.NewPrivateState(s, me, kp.EncryptionPriv)
	if err != nil {
		return nil, err
	}
	pathSecrets := map[treemath.NodeIndex][]byte{}
	if ps := ow.GroupSecrets.PathSecret; ps != nil {
		x := treemath.CommonAncestor(me.Node(), treemath.LeafIndex(gi.Signer).Node())
		if err := priv.ImportPathSecret(t, x, ps); err != nil {
			return nil, fmt.Errorf("%w: path secret: %w", ErrWelcomeInvalid, err)
		}
		for _, y := range append([]treemath.NodeIndex{x}, treemath.DirectPath(x, t.LeafCount())...) {
			if t.Node(y) == nil {
				continue
			}
			pathSecrets[y] = ps
			if ps, err = s.DeriveSecret(ps, "path"); err != nil {
				return nil, err
			}
		}
	}
	if err := priv.Check(t); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWelcomeInvalid, err)
	}
	es, interim, err := framing.JoinEpoch(s, gi, ow.GroupSecrets.JoinerSecret, ow.PSKSecret)
	if err != nil {
		return nil, err
	}
	defer es.Erase()
	if err := checkResumptionWelcome(&cfg, ow.GroupSecrets.PSKs, ctx, t, prev); err != nil {
		return nil, err
	}
	st := &groupState{
		ctx:         ctx,
		tree:        t,
		me:          me,
		sigPriv:     bytes.Clone(kp.SignaturePriv),
		leafPriv:    bytes.Clone(kp.EncryptionPriv),
		pathSecrets: pathSecrets,
		priv:        priv,
		secrets:     keepSecrets(es),
		interim:     interim,
		confTag:     bytes.Clone(gi.ConfirmationTag),
		keys:        newEpochKeys(s, es.EncryptionSecret, t.LeafCount(), &cfg),
	}
	st.resumption = []resumptionEntry{{epoch: ctx.Epoch, psk: st.secrets.ResumptionPSK}}
	return &Group{cfg: cfg, suite: s, s: st}, nil
}

// groupInfoTree builds the ratchet tree from the GroupInfo's ratchet_tree
// extension or, failing that, from the tree supplied out of band (RFC 9420,
// Section 12.4.3.3).
func groupInfoTree(s *cipher.Suite, gi *wire.GroupInfo, oob wire.RatchetTree) (*tree.Tree, error) {
	rt, found, err := wire.RatchetTreeExtension(gi.Extensions)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGroupInfoInvalid, err)
	}
	if !found {
		if oob == nil {
			return nil, ErrNoRatchetTree
		}
		rt = oob
	}
	t, err := tree.FromRatchetTree(s, rt)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGroupInfoInvalid, err)
	}
	return t, nil
}

// verifyGroupInfo checks the GroupInfo signature with the key of the
// signer's leaf, which must not be blank (RFC 9420, Sections 12.4.3 and
// 12.4.3.1), and rejects duplicate GroupContext extensions.
func verifyGroupInfo(s *cipher.Suite, gi *wire.GroupInfo, t *tree.Tree) error {
	signer := t.Leaf(treemath.LeafIndex(gi.Signer))
	if signer == nil {
		return fmt.Errorf("%w: signer leaf %d is blank", ErrGroupInfoInvalid, gi.Signer)
	}
	if err := framing.VerifyGroupInfo(s, gi, signer.SignatureKey); err != nil {
		return fmt.Errorf("%w: %w", ErrGroupInfoInvalid, err)
	}
	if typ, dup := wire.DuplicateExtension(gi.GroupContext.Extensions); dup {
		return fmt.Errorf("%w: duplicate GroupContext extension %d", ErrGroupInfoInvalid, typ)
	}
	return nil
}

// checkResumptionWelcome applies the rules for Welcomes carrying a
// resumption PSK with usage reinit or branch (RFC 9420, Sections 11.2,
// 11.3 and 12.4.3.1).
func checkResumptionWelcome(cfg *Config, psks []wire.PreSharedKeyID, ctx *wire.GroupContext, t *tree.Tree, prev *groupState) error {
	var special *wire.PreSharedKeyID
	for i := range psks {
		p := &psks[i]
		if p.Type == wire.PSKResumption && (p.Usage == wire.ResumptionReInit || p.Usage == wire.ResumptionBranch) {
			if special != nil {
				return fmt.Errorf("%w: more than one reinit/branch PSK", ErrWelcomeInvalid)
			}
			special = p
		}
	}
	if special == nil {
		return nil
	}
	if ctx.Epoch != 1 {
		return fmt.Errorf("%w: reinit/branch welcome for epoch %d, want 1", ErrWelcomeInvalid, ctx.Epoch)
	}
	if prev == nil || !bytes.Equal(prev.ctx.GroupID, special.PSKGroupID) {
		return fmt.Errorf("%w: reinit/branch welcome needs the referenced group (JoinOptions.PreviousGroup)", ErrWelcomeInvalid)
	}
	// Every member of one group must appear in the other.
	covered := func(big, small *tree.Tree) bool {
		for _, ln := range small.Leaves() {
			if _, ok := big.FindLeaf(func(_ treemath.LeafIndex, o *wire.LeafNode) bool {
				return cfg.sameClient(o, ln)
			}); !ok {
				return false
			}
		}
		return true
	}
	if special.Usage == wire.ResumptionReInit {
		ri := prev.reinit
		if ri == nil || special.PSKEpoch != prev.ctx.Epoch {
			return fmt.Errorf("%w: the referenced group's last commit has no ReInit", ErrWelcomeInvalid)
		}
		if !bytes.Equal(ri.GroupID, ctx.GroupID) || ri.Version != ctx.Version || ri.CipherSuite != ctx.CipherSuite ||
			!extensionsEqual(ri.Extensions, ctx.Extensions) {
			return fmt.Errorf("%w: group does not match the ReInit proposal", ErrWelcomeInvalid)
		}
		if !covered(t, prev.tree) {
			return fmt.Errorf("%w: a member of the old group is missing from the reinitialized group", ErrWelcomeInvalid)
		}
		return nil
	}
	if prev.ctx.Version != ctx.Version || prev.ctx.CipherSuite != ctx.CipherSuite {
		return fmt.Errorf("%w: branch changes version or cipher suite", ErrWelcomeInvalid)
	}
	if !covered(prev.tree, t) {
		return fmt.Errorf("%w: a member of the branch is not in the original group", ErrWelcomeInvalid)
	}
	return nil
}

// extensionsEqual compares extension lists exactly.
func extensionsEqual(a, b []wire.Extension) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || !bytes.Equal(a[i].Data, b[i].Data) {
			return false
		}
	}
	return true
}
