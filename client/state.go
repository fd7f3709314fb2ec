package client

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
)

// stateMagic and stateVersion start every saved state.
const (
	stateMagic   = "mimi-client-state"
	stateVersion = 2 // 2 adds RoomState.unresolved; version 1 states are read
)

// Save serializes the client for Load: its identity and signature private
// key, the private keys of its unused KeyPackages, its inbox position, and
// for every room the MLS group state (mls.Group.MarshalState) and the
// hashes of its recent accepted messages. The encoding, in the TLS
// presentation language of RFC 9420, Section 2.1, is deterministic:
//
//	struct {
//	    opaque magic<V>;                 // "mimi-client-state"
//	    uint8 version = 2;
//	    opaque user_uri<V>;
//	    opaque client_uri<V>;
//	    CipherSuite cipher_suite;
//	    opaque signature_priv<V>;
//	    uint64 inbox_next;
//	    opaque key_package_bundles<V><V>; // mls.KeyPackageBundle, by ref
//	    RoomState rooms<V>;               // by room URI
//	} ClientState;
//	struct {
//	    opaque room_uri<V>;
//	    uint8 leaving;
//	    opaque sent_hashes<V>;            // SHA-256 values, 32 octets each
//	    opaque group_state<V>;
//	    optional<UnresolvedCommit> unresolved;
//	} RoomState;
//	struct {
//	    opaque pending_commit<V>;         // mls.PendingCommit.MarshalBinary
//	    UpdateRequest request;            // as sent to the hub
//	} UnresolvedCommit;
//
// A commit whose outcome is unknown (ErrOutcomeUnknown) is saved with the
// request that carried it, so that a restored client still recognizes its
// echo or sends the same request again (draft-ralston-mimi-protocol-02,
// Section 5.3).
//
// THE OUTPUT IS SECRET: it holds the client's signature private key, its
// KeyPackages' private keys and every group's epoch secrets (see
// mls.Group.MarshalState), those of an unresolved commit's epoch
// included. Encrypt it at rest. Events not yet returned by Sync are not
// saved.
func (c *Client) Save() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.saveLocked()
}

func (c *Client) saveLocked() ([]byte, error) {
	refs := make([]string, 0, len(c.bundles))
	for r := range c.bundles {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	bundles := make([][]byte, 0, len(refs))
	for _, r := range refs {
		b, err := c.bundles[r].MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("client: saving a KeyPackage: %w", err)
		}
		bundles = append(bundles, b)
	}
	ids := make([]string, 0, len(c.rooms))
	for id := range c.rooms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	groups := make([][]byte, 0, len(ids))
	pending := make([][]byte, len(ids))
	for i, id := range ids {
		r := c.rooms[id]
		st, err := r.g.MarshalState()
		if err != nil {
			return nil, fmt.Errorf("client: saving room %s: %w", id, err)
		}
		groups = append(groups, st)
		if u := r.unresolved; u != nil && u.base() == r.g.Epoch() {
			if pending[i], err = u.pc.MarshalBinary(); err != nil && !errors.Is(err, mls.ErrStaleCommit) {
				return nil, fmt.Errorf("client: saving room %s's unresolved commit: %w", id, err)
			}
		}
	}
	w := codec.NewWriter()
	w.Opaque([]byte(stateMagic))
	w.U8(stateVersion)
	w.Opaque([]byte(c.id.User))
	w.Opaque([]byte(c.id.Client))
	w.U16(uint16(c.suite.ID()))
	w.Opaque(c.sigPriv)
	w.U64(c.inboxNext)
	w.Vector(func(w *codec.Writer) {
		for _, b := range bundles {
			w.Opaque(b)
		}
	})
	w.Vector(func(w *codec.Writer) {
		for i, id := range ids {
			r := c.rooms[id]
			w.Opaque([]byte(id))
			if r.leaving {
				w.U8(1)
			} else {
				w.U8(0)
			}
			var sent []byte
			for _, h := range r.sent {
				sent = append(sent, h[:]...)
			}
			w.Opaque(sent)
			w.Opaque(groups[i])
			w.Optional(pending[i] != nil, func(w *codec.Writer) {
				w.Opaque(pending[i])
				r.unresolved.req.MarshalMLS(w)
			})
		}
	})
	out, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("client: encoding the state: %w", err)
	}
	return out, nil
}

// savedRoom is a RoomState as decoded, before its group is restored.
type savedRoom struct {
	id      string
	leaving bool
	sent    []byte
	group   []byte
	pending []byte              // nil: no unresolved commit
	req     *mimi.UpdateRequest // the unresolved commit's request
}

// Load restores a client saved with Save, talking to provider p with
// options opts (which are not part of the state). It checks the state's
// consistency: the identity, the key pair, every KeyPackage against its
// private keys and the client's identity, and every group (mls.UnmarshalState)
// against its room and the client's leaf. Errors wrap ErrStateCorrupt.
func Load(data []byte, p Provider, opts *Options) (*Client, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrStateCorrupt, fmt.Sprintf(format, args...))
	}
	r := codec.NewReader(data)
	if string(r.Opaque("magic")) != stateMagic || r.Err() != nil {
		return nil, bad("not a saved client state")
	}
	version := r.U8("version")
	if r.Err() == nil && version != stateVersion && version != 1 {
		return nil, bad("version %d", version)
	}
	id := mimi.ClientIdentity{User: string(r.Opaque("user_uri")), Client: string(r.Opaque("client_uri"))}
	suiteID := cipher.SuiteID(r.U16("cipher_suite"))
	priv := r.Opaque("signature_priv")
	next := r.U64("inbox_next")
	var bundles [][]byte
	r.Vector("key_package_bundles", func(r *codec.Reader) { bundles = append(bundles, r.Opaque("bundle")) })
	var rooms []savedRoom
	r.Vector("rooms", func(r *codec.Reader) {
		var sr savedRoom
		sr.id = string(r.Opaque("room_uri"))
		switch r.U8("leaving") {
		case 0:
		case 1:
			sr.leaving = true
		default:
			r.Fail("leaving", codec.ErrInvalidValue)
		}
		sr.sent = r.Opaque("sent_hashes")
		sr.group = r.Opaque("group_state")
		if version > 1 {
			r.Optional("unresolved", func(r *codec.Reader) {
				sr.pending = r.Opaque("pending_commit")
				sr.req = new(mimi.UpdateRequest)
				sr.req.UnmarshalMLS(r)
			})
		}
		rooms = append(rooms, sr)
	})
	if err := r.Done("ClientState"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
	}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
	}
	s, err := cipher.Lookup(suiteID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
	}
	pub, err := s.SignaturePublicKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: signature key: %w", ErrStateCorrupt, err)
	}
	c, err := newClient(id, s, priv, pub, p, opts)
	if err != nil {
		return nil, err
	}
	c.inboxNext = next
	for i, b := range bundles {
		kb, err := mls.UnmarshalKeyPackageBundle(b)
		if err != nil {
			return nil, fmt.Errorf("%w: KeyPackage %d: %w", ErrStateCorrupt, i, err)
		}
		kid, err := mimi.IdentityFromCredential(&kb.KeyPackage.LeafNode.Credential)
		if err != nil || *kid != id || kb.KeyPackage.CipherSuite != suiteID || !bytes.Equal(kb.SignaturePriv, priv) {
			return nil, bad("KeyPackage %d is not this client's", i)
		}
		ref, err := kb.Ref()
		if err != nil {
			return nil, fmt.Errorf("%w: KeyPackage %d: %w", ErrStateCorrupt, i, err)
		}
		if c.bundles[string(ref)] != nil {
			return nil, bad("KeyPackage %d listed twice", i)
		}
		c.bundles[string(ref)] = kb
	}
	for _, sr := range rooms {
		if _, err := mimi.ParseURIKind(sr.id, mimi.KindRoom); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
		}
		if c.rooms[sr.id] != nil {
			return nil, bad("room %s listed twice", sr.id)
		}
		if len(sr.sent)%32 != 0 || len(sr.sent) > 32*maxSent {
			return nil, bad("room %s: sent hashes", sr.id)
		}
		g, err := mls.UnmarshalState(sr.group, c.mlsConfig())
		if err != nil {
			return nil, fmt.Errorf("%w: room %s: %w", ErrStateCorrupt, sr.id, err)
		}
		if g.CipherSuite() != suiteID {
			return nil, bad("room %s: cipher suite %v", sr.id, g.CipherSuite())
		}
		me, ok := g.Member(g.LeafIndex())
		if !ok {
			return nil, bad("room %s: no own leaf", sr.id)
		}
		mid, err := mimi.IdentityFromCredential(&me.Credential)
		if err != nil || *mid != id || !bytes.Equal(me.SignatureKey, pub) {
			return nil, bad("room %s: the group's own leaf is not this client", sr.id)
		}
		rm, err := roomState(g)
		if err != nil {
			return nil, fmt.Errorf("%w: room %s: %w", ErrStateCorrupt, sr.id, err)
		}
		if rm.Policy.RoomID != sr.id {
			return nil, bad("room %s holds the group of %s", sr.id, rm.Policy.RoomID)
		}
		if err := c.checkGroupID(g.GroupID(), ""); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
		}
		rs := &room{id: sr.id, g: g, leaving: sr.leaving}
		if sr.pending != nil {
			pc, err := g.RestorePendingCommit(sr.pending)
			if err != nil {
				return nil, fmt.Errorf("%w: room %s: %w", ErrStateCorrupt, sr.id, err)
			}
			var made []byte
			sent, err := codec.Marshal(&sr.req.ProposalOrCommit)
			if pm := pc.Message.PublicMessage; err == nil && pm != nil {
				made, err = codec.Marshal(pm)
			}
			if err != nil || made == nil || !bytes.Equal(sent, made) {
				pc.Discard()
				return nil, bad("room %s: the unresolved request does not carry the pending commit", sr.id)
			}
			rs.unresolved = &unresolvedCommit{pc: pc, req: sr.req}
		}
		for i := 0; i < len(sr.sent); i += 32 {
			rs.sent = append(rs.sent, [32]byte(sr.sent[i:i+32]))
		}
		c.rooms[sr.id] = rs
	}
	return c, nil
}
