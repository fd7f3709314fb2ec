package publicgroup

import (
	"bytes"
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/wire"
)

// encodingVersion is the first byte of a serialized View.
const encodingVersion = 1

// Marshal serializes the view deterministically, for persistence (for
// example in the hub's event-log projections). The encoding, in the TLS
// presentation language of RFC 9420, Section 2.1, is
//
//	struct {
//	    uint8 version = 1;
//	    GroupContext group_context;
//	    optional<Node> ratchet_tree<V>;
//	    opaque interim_transcript_hash<V>;
//	    opaque confirmation_tag<V>;
//	    PublicMessage pending_proposals<V>;  // in arrival order
//	} PublicGroupView;
//
// The clock set with SetClock is not included.
func (v *View) Marshal() ([]byte, error) {
	w := codec.NewWriter()
	w.U8(encodingVersion)
	v.ctx.MarshalMLS(w)
	rt := v.tree.RatchetTree()
	rt.MarshalMLS(w)
	w.Opaque(v.interim)
	w.Opaque(v.confirmationTag)
	w.Vector(func(w *codec.Writer) {
		for _, p := range v.proposals {
			p.msg.MarshalMLS(w)
		}
	})
	return w.Bytes()
}

// Unmarshal decodes a view serialized by Marshal. The input is checked for
// consistency — known version and cipher suite, a ratchet tree whose tree
// hash is the GroupContext's, decodable extensions, and pending proposals
// of this group and epoch whose signatures verify — but the tree's leaves
// and parent hashes are not re-validated (the bytes are expected to come
// from Marshal; use New for untrusted input). Failures wrap
// ErrInvalidEncoding.
func Unmarshal(b []byte) (*View, error) {
	r := codec.NewReader(b)
	ver := r.U8("PublicGroupView.version")
	var ctx wire.GroupContext
	ctx.UnmarshalMLS(r)
	var rt wire.RatchetTree
	rt.UnmarshalMLS(r)
	interim := r.Opaque("PublicGroupView.interim_transcript_hash")
	tag := r.Opaque("PublicGroupView.confirmation_tag")
	var msgs []*wire.PublicMessage
	r.Vector("PublicGroupView.pending_proposals", func(r *codec.Reader) {
		m := new(wire.PublicMessage)
		m.UnmarshalMLS(r)
		msgs = append(msgs, m)
	})
	if err := r.Done("PublicGroupView"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEncoding, err)
	}
	if ver != encodingVersion {
		return nil, fmt.Errorf("%w: version %d", ErrInvalidEncoding, ver)
	}
	suite, err := cipher.Lookup(ctx.CipherSuite)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEncoding, err)
	}
	t, err := tree.FromRatchetTree(suite, rt)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEncoding, err)
	}
	th, err := t.TreeHash()
	if err != nil || !bytes.Equal(th, ctx.TreeHash) {
		return nil, fmt.Errorf("%w: tree hash does not match the GroupContext", ErrInvalidEncoding)
	}
	if len(interim) != suite.HashSize() {
		return nil, fmt.Errorf("%w: interim transcript hash of %d bytes", ErrInvalidEncoding, len(interim))
	}
	v := &View{suite: suite, ctx: &ctx, tree: t, interim: interim, confirmationTag: tag}
	if err := v.parseExtensions(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEncoding, err)
	}
	for i, m := range msgs {
		ac, err := v.VerifyPublicMessage(m)
		if err != nil || ac.Content.ContentType != wire.ContentProposal {
			return nil, fmt.Errorf("%w: pending proposal %d: %v", ErrInvalidEncoding, i, err)
		}
		ref, err := ac.ProposalRef(suite)
		if err != nil {
			return nil, fmt.Errorf("%w: pending proposal %d: %w", ErrInvalidEncoding, i, err)
		}
		if v.proposal(ref) != nil {
			return nil, fmt.Errorf("%w: pending proposal %d listed twice", ErrInvalidEncoding, i)
		}
		v.proposals = append(v.proposals, &cachedProposal{ref: ref, msg: m})
	}
	return v, nil
}

// clonePublicMessage deep-copies a PublicMessage through its encoding.
func clonePublicMessage(m *wire.PublicMessage) (*wire.PublicMessage, error) {
	b, err := codec.Marshal(m)
	if err != nil {
		return nil, err
	}
	var c wire.PublicMessage
	if err := codec.Unmarshal(b, "PublicMessage", &c); err != nil {
		return nil, err
	}
	return &c, nil
}
