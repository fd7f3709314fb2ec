package keyschedule

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/treemath"
)

// ErrInvalidEncoding reports UnmarshalSecretTree input that does not decode
// or does not describe a state a SecretTree can reach (RFC 9420, Section
// 9.2): wrong version or cipher suite, bad lengths, unsorted or duplicate
// entries, node indices outside the tree, overlapping or incomplete
// coverage of the leaves, generations outside a ratchet's window.
var ErrInvalidEncoding = errors.New("mls keyschedule: invalid secret tree encoding")

// secretTreeVersion is the format version of MarshalBinary output.
const secretTreeVersion = 1

// MarshalBinary encodes exactly the secrets the tree still holds, following
// the deletion schedule of RFC 9420, Section 9.2: the node secrets on the
// frontier that were not yet expanded, and for each leaf whose ratchets are
// initialized, each ratchet's current ratchet secret and generation and the
// keys and nonces of skipped generations still retained for out-of-order
// delivery. The encryption_secret (once expanded), expanded node secrets,
// consumed, evicted or dropped keys and superseded ratchet secrets are
// gone from memory and hence from the encoding. The window limits
// (MaxForwardDistance, MaxSkippedKeys clamped to [0, 2^32-1]) are included.
//
// The encoding, in the TLS presentation language of RFC 9420, Section 2.1,
// with every list in strictly ascending order of its first field, is
//
//	struct {
//	    uint8  version = 1;
//	    uint16 cipher_suite;
//	    uint32 leaves;
//	    uint32 max_forward_distance;
//	    uint32 max_skipped_keys;
//	    struct { uint32 node; opaque secret<V>; } nodes<V>;
//	    struct {
//	        uint32 leaf;
//	        RatchetState handshake;
//	        RatchetState application;
//	    } ratchets<V>;
//	} SecretTreeState;
//
//	struct {
//	    optional<opaque secret<V>> ratchet_secret; /* absent once exhausted */
//	    uint32 next_generation;
//	    uint32 window_low; /* below: consumed or expired */
//	    struct {
//	        uint32 generation;
//	        opaque key<V>;
//	        opaque nonce<V>;
//	    } skipped<V>;
//	} RatchetState;
//
// The output is secret: it allows decrypting every message of the epoch
// not yet received. The caller should zero it after use. A tree that was
// erased or created unusable fails with ErrInvalidInput.
func (t *SecretTree) MarshalBinary() ([]byte, error) {
	if t == nil || t.erased || t.suite == nil {
		return nil, fmt.Errorf("keyschedule: secret tree encode: unusable tree: %w", ErrInvalidInput)
	}
	w := codec.NewWriter()
	w.U8(secretTreeVersion)
	w.U16(uint16(t.suite.ID()))
	w.U32(t.nLeaves)
	w.U32(t.MaxForwardDistance)
	w.U32(clampSkipped(t.MaxSkippedKeys))
	w.Vector(func(w *codec.Writer) {
		for _, x := range slices.Sorted(maps.Keys(t.nodes)) {
			w.U32(uint32(x))
			w.Opaque(t.nodes[x])
		}
	})
	w.Vector(func(w *codec.Writer) {
		for _, l := range slices.Sorted(maps.Keys(t.leaves)) {
			w.U32(uint32(l))
			for i := range t.leaves[l] {
				marshalRatchet(w, &t.leaves[l][i])
			}
		}
	})
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("keyschedule: secret tree encode: %w", err)
	}
	return b, nil
}

func clampSkipped(n int) uint32 {
	switch {
	case n <= 0:
		return 0
	case uint64(n) > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(n)
}

func marshalRatchet(w *codec.Writer, r *ratchet) {
	w.Optional(r.secret != nil, func(w *codec.Writer) { w.Opaque(r.secret) })
	w.U32(r.head)
	w.U32(r.low)
	w.Vector(func(w *codec.Writer) {
		for _, g := range slices.Sorted(maps.Keys(r.skipped)) {
			kn := r.skipped[g]
			w.U32(g)
			w.Opaque(kn.key)
			w.Opaque(kn.nonce)
		}
	})
}

// UnmarshalSecretTree decodes MarshalBinary output for suite s (RFC 9420,
// Sections 9 and 9.2). The input is treated as hostile: besides decoding
// errors it rejects, with ErrInvalidEncoding, a version or cipher suite
// other than expected, secrets, keys and nonces of the wrong length (an
// unexpanded root may have any non-empty length, as in NewSecretTree), a leaf
// count of 0 or above 2^31, lists not in strictly ascending order, node
// indices outside the tree or covering no leaf, node subtrees and
// initialized leaves that overlap or leave a leaf uncovered, an exhausted
// ratchet before the last generation, and retained generations outside
// [window_low, next_generation). Accepted input re-encodes byte for byte.
// b is not retained; the caller should zero it after use.
func UnmarshalSecretTree(s *cipher.Suite, b []byte) (*SecretTree, error) {
	if s == nil {
		return nil, fmt.Errorf("keyschedule: secret tree decode: nil suite: %w", ErrInvalidInput)
	}
	t, err := decodeSecretTree(s, b)
	if err != nil {
		if t != nil {
			t.Erase()
		}
		return nil, fmt.Errorf("keyschedule: secret tree decode: %w: %w", ErrInvalidEncoding, err)
	}
	return t, nil
}

// span is the range of leaves [lo, hi] covered by a node secret or an
// initialized leaf.
type span struct{ lo, hi uint64 }

func decodeSecretTree(s *cipher.Suite, b []byte) (*SecretTree, error) {
	nh, nk, nn := s.HashSize(), s.AEADKeySize(), s.AEADNonceSize()
	r := codec.NewReader(b)
	if v := r.U8("secret_tree.version"); r.Err() == nil && v != secretTreeVersion {
		return nil, fmt.Errorf("version %d, want %d", v, secretTreeVersion)
	}
	if id := cipher.SuiteID(r.U16("secret_tree.cipher_suite")); r.Err() == nil && id != s.ID() {
		return nil, fmt.Errorf("cipher suite %d, want %d", id, s.ID())
	}
	n := r.U32("secret_tree.leaves")
	maxFwd := r.U32("secret_tree.max_forward_distance")
	maxSkip := r.U32("secret_tree.max_skipped_keys")
	if r.Err() != nil {
		return nil, r.Err()
	}
	if n == 0 || n > 1<<31 {
		return nil, fmt.Errorf("%d leaves", n)
	}
	if uint64(maxSkip) > math.MaxInt {
		return nil, fmt.Errorf("max_skipped_keys %d does not fit an int", maxSkip)
	}
	t := &SecretTree{
		MaxForwardDistance: maxFwd,
		MaxSkippedKeys:     int(maxSkip),
		suite:              s,
		nLeaves:            n,
		root:               treemath.Root(n),
		nodes:              make(map[treemath.NodeIndex][]byte),
		leaves:             make(map[treemath.LeafIndex]*[2]ratchet),
	}
	// The root's subtree spans node indices [0, 2*root].
	maxNode := 2 * uint64(t.root)
	var spans []span
	first := true
	var prev uint32
	r.Vector("secret_tree.nodes", func(r *codec.Reader) {
		x := r.U32("node.index")
		sec := r.Opaque("node.secret")
		if r.Err() != nil {
			return
		}
		half := uint64(1)<<treemath.Level(treemath.NodeIndex(x)) - 1
		lo, hi := uint64(x)-half, uint64(x)+half
		var bad error
		switch {
		case !first && x <= prev:
			bad = fmt.Errorf("node %d after %d: %w", x, prev, codec.ErrInvalidValue)
		case hi > maxNode || lo/2 >= uint64(n):
			bad = fmt.Errorf("node %d outside the tree of %d leaves: %w", x, n, codec.ErrInvalidValue)
		case len(sec) != nh && (x != uint32(t.root) || len(sec) == 0):
			// NewSecretTree takes an encryption_secret of any non-empty
			// length; every derived secret has KDF.Nh octets.
			bad = fmt.Errorf("secret length %d, want %d: %w", len(sec), nh, codec.ErrInvalidValue)
		}
		if bad != nil {
			zero(sec)
			r.Fail("node", bad)
			return
		}
		first, prev = false, x
		t.nodes[treemath.NodeIndex(x)] = sec
		spans = append(spans, span{lo / 2, min(hi/2, uint64(n)-1)})
	})
	first = true
	r.Vector("secret_tree.ratchets", func(r *codec.Reader) {
		l := r.U32("ratchets.leaf")
		if r.Err() != nil {
			return
		}
		if !first && l <= prev || l >= n {
			r.Fail("ratchets.leaf", fmt.Errorf("leaf %d (after %d, %d leaves): %w", l, prev, n, codec.ErrInvalidValue))
			return
		}
		first, prev = false, l
		rs := new([2]ratchet)
		t.leaves[treemath.LeafIndex(l)] = rs // before decoding, so a failure erases what was read
		for i := range rs {
			unmarshalRatchet(r, &rs[i], nh, nk, nn)
		}
		spans = append(spans, span{uint64(l), uint64(l)})
	})
	if err := r.Done("secret_tree"); err != nil {
		return t, err
	}
	// Node subtrees and initialized leaves must partition the leaves: every
	// leaf's secret is either still derivable from exactly one stored node
	// or already turned into its ratchets.
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	var covered uint64
	for i, sp := range spans {
		if i > 0 && sp.lo <= spans[i-1].hi {
			return t, fmt.Errorf("leaves %d..%d covered twice", sp.lo, spans[i-1].hi)
		}
		covered += sp.hi - sp.lo + 1
	}
	if covered != uint64(n) {
		return t, fmt.Errorf("%d of %d leaves covered by node secrets and ratchets", covered, n)
	}
	return t, nil
}

func unmarshalRatchet(r *codec.Reader, rt *ratchet, nh, nk, nn int) {
	r.Optional("ratchet.secret", func(r *codec.Reader) {
		if sec := r.Opaque("ratchet.secret"); r.Err() == nil {
			rt.secret = sec
			if len(sec) != nh {
				r.Fail("ratchet.secret", fmt.Errorf("length %d, want %d: %w", len(sec), nh, codec.ErrInvalidValue))
			}
		}
	})
	rt.head = r.U32("ratchet.next_generation")
	rt.low = r.U32("ratchet.window_low")
	if r.Err() != nil {
		return
	}
	// A ratchet is exhausted only by stepping past the last generation.
	if rt.secret == nil && rt.head != math.MaxUint32 || rt.low > rt.head {
		r.Fail("ratchet", fmt.Errorf("exhausted at %d or window low %d above generation %d: %w",
			rt.head, rt.low, rt.head, codec.ErrInvalidValue))
		return
	}
	r.Vector("ratchet.skipped", func(r *codec.Reader) {
		g := r.U32("skipped.generation")
		key := r.Opaque("skipped.key")
		nonce := r.Opaque("skipped.nonce")
		if r.Err() != nil {
			zero(key)
			zero(nonce)
			return
		}
		var bad error
		switch {
		case len(rt.order) > 0 && g <= rt.order[len(rt.order)-1]:
			bad = fmt.Errorf("generation %d out of order: %w", g, codec.ErrInvalidValue)
		case g < rt.low || g >= rt.head:
			bad = fmt.Errorf("generation %d outside the window [%d, %d): %w", g, rt.low, rt.head, codec.ErrInvalidValue)
		case len(key) != nk || len(nonce) != nn:
			bad = fmt.Errorf("key/nonce lengths %d/%d, want %d/%d: %w", len(key), len(nonce), nk, nn, codec.ErrInvalidValue)
		}
		if bad != nil {
			zero(key)
			zero(nonce)
			r.Fail("skipped", bad)
			return
		}
		if rt.skipped == nil {
			rt.skipped = make(map[uint32]keyNonce)
		}
		rt.skipped[g] = keyNonce{key, nonce}
		rt.order = append(rt.order, g)
	})
}
