package mls

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// stateVersion is the format version of MarshalState output. Version 2
// stores each epoch's secret tree as keyschedule.SecretTree.MarshalBinary
// output instead of version 1's encryption_secret and ratchet logs;
// version 1 states are refused with ErrStateCorrupt. Version 3 adds when
// the group left each past epoch (Config.PastEpochTime); version 2 states
// are read with that time unknown, as if long ago.
const stateVersion = 3

// MarshalState serializes the group's state so that it can be persisted
// and restored with UnmarshalState. The encoding is deterministic (the
// same state always gives the same bytes) and uses the TLS presentation
// language of RFC 9420, Section 2.1.
//
// THE OUTPUT IS SECRET: it contains the signature private key, the
// TreeKEM private keys (as the leaf's HPKE private key and the path
// secrets of the parent nodes held), the epoch secrets (init_secret,
// exporter, sender data, membership, resumption, ...) and, for the current
// epoch and each kept past epoch, what remains of the secret tree under
// the deletion schedule of RFC 9420, Section 9.2: the node secrets not yet
// expanded, each used sender's current ratchet secrets and the keys of
// skipped generations still retained for out-of-order delivery. It holds
// neither the encryption_secret of an epoch whose tree was used nor any
// key that was consumed by an accepted message, so a stolen copy cannot
// decrypt messages already received or sent, but it can decrypt every
// later message of the stored epochs (and read everything the other
// secrets protect): keep Config.PastEpochs and PastEpochTime small and
// encrypt the storage.
//
// A message that Process rejects leaves MarshalState unchanged, even if
// it decrypted: its key stays in the persisted state (the in-memory tree
// has consumed it).
//
// A pending commit (PendingCommit) and the Config are not part of the
// state. Past epochs that Config.PastEpochTime no longer keeps are
// deleted first.
func (g *Group) MarshalState() ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.marshalState()
}

func (g *Group) marshalState() ([]byte, error) {
	g.expirePast()
	s := g.s
	w := codec.NewWriter()
	w.U8(stateVersion)
	w.U16(uint16(g.suite.ID()))
	s.ctx.MarshalMLS(w)
	rt := s.tree.RatchetTree()
	rt.MarshalMLS(w)
	w.U32(uint32(s.me))
	w.Opaque(s.sigPriv)
	w.Opaque(s.leafPriv)
	nodes := slices.Sorted(maps.Keys(s.pathSecrets))
	w.Vector(func(w *codec.Writer) {
		for _, x := range nodes {
			w.U32(uint32(x))
			w.Opaque(s.pathSecrets[x])
		}
	})
	for _, b := range secretFields(s.secrets) {
		w.Opaque(*b)
	}
	w.Opaque(s.interim)
	w.Opaque(s.confTag)
	marshalKeys(w, s.keys)
	w.Vector(func(w *codec.Writer) {
		for _, p := range s.proposals {
			w.Opaque(p.ref)
			p.sender.MarshalMLS(w)
			p.proposal.MarshalMLS(w)
		}
	})
	pubs := slices.Sorted(maps.Keys(s.updateKeys))
	w.Vector(func(w *codec.Writer) {
		for _, pub := range pubs {
			u := s.updateKeys[pub]
			w.Opaque([]byte(pub))
			w.Opaque(u.encPriv)
			w.Opaque(u.sigPriv)
		}
	})
	w.Vector(func(w *codec.Writer) {
		for _, p := range s.past {
			w.U64(p.epoch)
			w.U64(unixMilli(p.ended))
			p.ctx.MarshalMLS(w)
			w.Opaque(p.senderData)
			marshalKeys(w, p.keys)
			w.Vector(func(w *codec.Writer) {
				if p.tree != nil {
					for l, ln := range p.tree.Leaves() {
						w.U32(uint32(l))
						w.Opaque(ln.SignatureKey)
					}
					return
				}
				for _, l := range slices.Sorted(maps.Keys(p.sigKeys)) {
					w.U32(l)
					w.Opaque(p.sigKeys[l])
				}
			})
		}
	})
	w.Vector(func(w *codec.Writer) {
		for _, r := range s.resumption {
			w.U64(r.epoch)
			w.Opaque(r.psk)
		}
	})
	w.Optional(s.reinit != nil, func(w *codec.Writer) { s.reinit.MarshalMLS(w) })
	w.Bool(s.removed)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: encoding state: %w", err)
	}
	return b, nil
}

// unixMilli encodes t as milliseconds since the Unix epoch; the zero time
// and times before 1970 are 0.
func unixMilli(t time.Time) uint64 {
	if ms := t.UnixMilli(); !t.IsZero() && ms > 0 {
		return uint64(ms)
	}
	return 0
}

// fromUnixMilli decodes unixMilli's encoding (0 is the zero time).
func fromUnixMilli(ms uint64) time.Time {
	if ms == 0 || ms > math.MaxInt64 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms))
}

// secretFields lists the kept epoch secrets in their serialization order.
func secretFields(e *keyschedule.EpochSecrets) []*[]byte {
	return []*[]byte{
		&e.SenderDataSecret, &e.ExporterSecret, &e.ExternalSecret, &e.ConfirmationKey,
		&e.MembershipKey, &e.ResumptionPSK, &e.EpochAuthenticator, &e.InitSecret,
	}
}

func marshalKeys(w *codec.Writer, k *epochKeys) {
	b, err := k.marshal()
	if err != nil {
		w.Fail(err)
		return
	}
	w.Opaque(b)
	clear(b)
}

func unmarshalKeys(r *codec.Reader, s *cipher.Suite, cfg *Config) *epochKeys {
	b := r.Opaque("state.keys.secret_tree")
	if r.Err() != nil {
		return nil
	}
	k, err := unmarshalEpochKeys(s, b, cfg)
	clear(b)
	if err != nil {
		r.Fail("state.keys.secret_tree", err)
		return nil
	}
	return k
}

// UnmarshalState restores a group from MarshalState output, with the
// given configuration, whose receive window (MaxForwardDistance,
// MaxSkippedKeys) applies to the restored secret trees. It checks the
// state's consistency (tree hash, private keys against the tree, secret
// tree structure). Malformed input, including states of an older format
// version, fails with ErrStateCorrupt.
func UnmarshalState(data []byte, cfg Config) (*Group, error) {
	r := codec.NewReader(bytes.Clone(data))
	version := r.U8("state.version")
	if r.Err() == nil && version != stateVersion && version != 2 {
		return nil, fmt.Errorf("%w: state format version %d", ErrStateCorrupt, version)
	}
	suiteID := cipher.SuiteID(r.U16("state.suite"))
	if r.Err() != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, r.Err())
	}
	suite, err := cipher.Lookup(suiteID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
	}
	s := &groupState{ctx: new(wire.GroupContext), secrets: &keyschedule.EpochSecrets{}, pathSecrets: map[treemath.NodeIndex][]byte{}}
	s.ctx.UnmarshalMLS(r)
	var rt wire.RatchetTree
	rt.UnmarshalMLS(r)
	s.me = treemath.LeafIndex(r.U32("state.leaf"))
	s.sigPriv = r.Opaque("state.signature_priv")
	s.leafPriv = r.Opaque("state.leaf_priv")
	r.Vector("state.path_secrets", func(r *codec.Reader) {
		x := treemath.NodeIndex(r.U32("state.path_secret.node"))
		s.pathSecrets[x] = r.Opaque("state.path_secret")
	})
	for _, f := range secretFields(s.secrets) {
		*f = r.Opaque("state.secret")
	}
	s.interim = r.Opaque("state.interim")
	s.confTag = r.Opaque("state.confirmation_tag")
	s.keys = unmarshalKeys(r, suite, &cfg)
	r.Vector("state.proposals", func(r *codec.Reader) {
		p := &cachedProposal{ref: r.Opaque("proposal.ref"), proposal: new(wire.Proposal)}
		p.sender.UnmarshalMLS(r)
		p.proposal.UnmarshalMLS(r)
		s.proposals = append(s.proposals, p)
	})
	r.Vector("state.update_keys", func(r *codec.Reader) {
		if s.updateKeys == nil {
			s.updateKeys = map[string]*ownUpdate{}
		}
		pub := string(r.Opaque("update.pub"))
		s.updateKeys[pub] = &ownUpdate{encPriv: r.Opaque("update.enc_priv"), sigPriv: r.Opaque("update.sig_priv")}
	})
	r.Vector("state.past", func(r *codec.Reader) {
		p := &pastEpoch{epoch: r.U64("past.epoch"), ctx: new(wire.GroupContext), sigKeys: map[uint32][]byte{}}
		if version > 2 {
			p.ended = fromUnixMilli(r.U64("past.ended"))
		}
		p.ctx.UnmarshalMLS(r)
		p.senderData = r.Opaque("past.sender_data")
		p.keys = unmarshalKeys(r, suite, &cfg)
		r.Vector("past.members", func(r *codec.Reader) {
			l := r.U32("past.member.leaf")
			p.sigKeys[l] = r.Opaque("past.member.signature_key")
		})
		s.past = append(s.past, p)
	})
	r.Vector("state.resumption", func(r *codec.Reader) {
		s.resumption = append(s.resumption, resumptionEntry{epoch: r.U64("resumption.epoch"), psk: r.Opaque("resumption.psk")})
	})
	r.Optional("state.reinit", func(r *codec.Reader) {
		s.reinit = new(wire.ReInit)
		s.reinit.UnmarshalMLS(r)
	})
	s.removed = r.Bool("state.removed")
	if err := r.Done("state"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
	}
	if s.ctx.CipherSuite != suiteID {
		return nil, fmt.Errorf("%w: context suite %d, state suite %d", ErrStateCorrupt, s.ctx.CipherSuite, suiteID)
	}
	if s.tree, err = tree.FromRatchetTree(suite, rt); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
	}
	th, err := s.tree.TreeHash()
	if err != nil || !bytes.Equal(th, s.ctx.TreeHash) {
		return nil, fmt.Errorf("%w: tree hash does not match the GroupContext (%v)", ErrStateCorrupt, err)
	}
	if s.keys.leaves() != s.tree.LeafCount() {
		return nil, fmt.Errorf("%w: secret tree size", ErrStateCorrupt)
	}
	if s.priv, err = tree.NewPrivateState(suite, s.me, s.leafPriv); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
	}
	for x, ps := range s.pathSecrets {
		if err := s.priv.SetPathSecret(x, ps); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
		}
	}
	if err := s.priv.Check(s.tree); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
	}
	if s.tree.Leaf(s.me) == nil {
		return nil, fmt.Errorf("%w: own leaf %d is blank", ErrStateCorrupt, s.me)
	}
	return &Group{cfg: cfg, suite: suite, s: s}, nil
}
