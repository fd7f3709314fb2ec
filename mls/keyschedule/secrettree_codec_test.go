package keyschedule_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/treemath"
)

// treeOp is one SecretTree operation of a random script.
type treeOp struct {
	kind int // 0 Next, 1 Get, 2 Peek, 3 Consume
	leaf treemath.LeafIndex
	typ  keyschedule.RatchetType
	gen  uint32
}

func (o treeOp) String() string {
	return fmt.Sprintf("%s(%d,%v,%d)", [...]string{"Next", "Get", "Peek", "Consume"}[o.kind], o.leaf, o.typ, o.gen)
}

// opResult is what an operation returned, with its error reduced to the
// package's sentinel.
type opResult struct {
	gen        uint32
	key, nonce []byte
	err        error
}

var sentinels = []error{
	keyschedule.ErrKeyConsumed, keyschedule.ErrGenerationExpired, keyschedule.ErrGenerationTooFar,
	keyschedule.ErrGenerationExhausted, keyschedule.ErrLeafOutOfRange, keyschedule.ErrInvalidInput,
	keyschedule.ErrInvalidRatchetType,
}

func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

func apply(tr *keyschedule.SecretTree, o treeOp) opResult {
	var r opResult
	switch o.kind {
	case 0:
		r.gen, r.key, r.nonce, r.err = tr.Next(o.leaf, o.typ)
	case 1:
		r.key, r.nonce, r.err = tr.Get(o.leaf, o.typ, o.gen)
	case 2:
		r.key, r.nonce, r.err = tr.Peek(o.leaf, o.typ, o.gen)
	case 3:
		r.err = tr.Consume(o.leaf, o.typ, o.gen)
	}
	r.err = classify(r.err)
	return r
}

func randomOps(rng *rand.Rand, nLeaves uint32, n int) []treeOp {
	ops := make([]treeOp, n)
	for i := range ops {
		o := treeOp{
			kind: rng.IntN(4),
			leaf: treemath.LeafIndex(rng.Uint32N(nLeaves + 1)), // sometimes out of range
			typ:  keyschedule.RatchetType(rng.IntN(2)),
			gen:  rng.Uint32N(40),
		}
		if rng.IntN(20) == 0 {
			o.gen = math.MaxUint32 - rng.Uint32N(3)
		}
		ops[i] = o
	}
	return ops
}

func mustMarshal(t testing.TB, tr *keyschedule.SecretTree) []byte {
	t.Helper()
	b, err := tr.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	return b
}

// TestSecretTreeMarshalRoundTrip checks, for random scripts of Next, Get,
// Peek and Consume over small windows, that at every point the encoding
// decodes to a tree that re-encodes byte for byte and that then behaves
// exactly like the original for the rest of the script: same generations,
// keys, nonces and error classes, including out-of-window errors (RFC 9420,
// Section 9.2).
func TestSecretTreeMarshalRoundTrip(t *testing.T) {
	for _, id := range []cipher.SuiteID{cipher.X25519_AES128GCM_SHA256_Ed25519, cipher.P384_AES256GCM_SHA384_P384} {
		s := lookup(t, uint16(id))
		for seed := uint64(0); seed < 12; seed++ {
			rng := rand.New(rand.NewPCG(seed, uint64(id)))
			nLeaves := []uint32{1, 2, 3, 5, 8, 13}[seed%6]
			ops := randomOps(rng, nLeaves, 60)
			t.Run(fmt.Sprintf("suite%d/seed%d", id, seed), func(t *testing.T) {
				newTree := func() *keyschedule.SecretTree {
					tr := keyschedule.NewSecretTree(s, testSecret, nLeaves)
					tr.MaxForwardDistance = 12
					tr.MaxSkippedKeys = int(seed % 5) // includes 0: keep nothing
					return tr
				}
				// Reference results of the whole script on one tree.
				ref := newTree()
				want := make([]opResult, len(ops))
				var ok [4]int
				for i, o := range ops {
					if want[i] = apply(ref, o); want[i].err == nil {
						ok[o.kind]++
					}
				}
				if ok[0] == 0 || ok[1]+ok[2] == 0 {
					t.Fatalf("script exercises too little: successes per kind %v", ok)
				}
				// Split the script at every point: run the prefix, round
				// trip, run the suffix on the decoded tree.
				for cut := 0; cut <= len(ops); cut += 3 {
					orig := newTree()
					for _, o := range ops[:cut] {
						apply(orig, o)
					}
					b := mustMarshal(t, orig)
					dec, err := keyschedule.UnmarshalSecretTree(s, b)
					if err != nil {
						t.Fatalf("cut %d: decode: %v", cut, err)
					}
					if b2 := mustMarshal(t, dec); !bytes.Equal(b, b2) {
						t.Fatalf("cut %d: re-encoding differs", cut)
					}
					if dec.Leaves() != nLeaves || dec.MaxForwardDistance != orig.MaxForwardDistance || dec.MaxSkippedKeys != orig.MaxSkippedKeys {
						t.Fatalf("cut %d: parameters not preserved", cut)
					}
					for i := cut; i < len(ops); i++ {
						got := apply(dec, ops[i])
						w := want[i]
						if got.gen != w.gen || !bytes.Equal(got.key, w.key) || !bytes.Equal(got.nonce, w.nonce) || got.err != w.err {
							t.Fatalf("cut %d, op %d %v: decoded tree gave (%d, %x, %x, %v), original (%d, %x, %x, %v)",
								cut, i, ops[i], got.gen, got.key, got.nonce, got.err, w.gen, w.key, w.nonce, w.err)
						}
					}
					// The original is unaffected by encoding.
					if b3 := mustMarshal(t, orig); !bytes.Equal(b, b3) {
						t.Fatalf("cut %d: encoding changed the tree", cut)
					}
				}
			})
		}
	}
}

// TestSecretTreeMarshalWindow checks that the retained window survives a
// round trip: a consumed generation stays consumed, an evicted one
// expired, a too distant one too far, a kept one available.
func TestSecretTreeMarshalWindow(t *testing.T) {
	s := testSuite(t)
	keys, nonces := reference(t, s, 4, 1, keyschedule.Handshake, 20)
	tr := keyschedule.NewSecretTree(s, testSecret, 4)
	tr.MaxForwardDistance = 8
	tr.MaxSkippedKeys = 3
	mustGet(t, tr, 1, keyschedule.Handshake, 6, keys[6], nonces[6]) // keeps 3,4,5; 0..2 evicted
	mustGet(t, tr, 1, keyschedule.Handshake, 4, keys[4], nonces[4])
	dec, err := keyschedule.UnmarshalSecretTree(s, mustMarshal(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = dec.Get(1, keyschedule.Handshake, 2)
	wantErr(t, err, keyschedule.ErrGenerationExpired)
	_, _, err = dec.Get(1, keyschedule.Handshake, 4)
	wantErr(t, err, keyschedule.ErrKeyConsumed)
	_, _, err = dec.Get(1, keyschedule.Handshake, 6)
	wantErr(t, err, keyschedule.ErrKeyConsumed)
	_, _, err = dec.Get(1, keyschedule.Handshake, 7+9)
	wantErr(t, err, keyschedule.ErrGenerationTooFar)
	mustGet(t, dec, 1, keyschedule.Handshake, 3, keys[3], nonces[3])
	mustGet(t, dec, 1, keyschedule.Handshake, 5, keys[5], nonces[5])
	mustGet(t, dec, 1, keyschedule.Handshake, 15, keys[15], nonces[15])
}

// TestSecretTreeMarshalUnusable: an erased tree, or one created without a
// secret, has nothing to encode.
func TestSecretTreeMarshalUnusable(t *testing.T) {
	s := testSuite(t)
	tr := keyschedule.NewSecretTree(s, testSecret, 2)
	tr.Erase()
	if _, err := tr.MarshalBinary(); !errors.Is(err, keyschedule.ErrInvalidInput) {
		t.Fatalf("erased tree: %v", err)
	}
	if _, err := keyschedule.NewSecretTree(s, nil, 2).MarshalBinary(); !errors.Is(err, keyschedule.ErrInvalidInput) {
		t.Fatalf("tree without secret: %v", err)
	}
	if _, err := keyschedule.UnmarshalSecretTree(nil, nil); !errors.Is(err, keyschedule.ErrInvalidInput) {
		t.Fatalf("nil suite: %v", err)
	}
}

// hostileTree writes a SecretTreeState by hand.
type hostileTree struct {
	version        uint8
	suite          uint16
	leaves         uint32
	maxFwd, maxSkp uint32
	nodes          []hostileNode
	ratchets       []hostileLeaf
	trailing       []byte
}

type hostileNode struct {
	x   uint32
	sec []byte
}

type hostileRatchet struct {
	secret    []byte // nil: absent
	head, low uint32
	skipped   []hostileSkipped
}

type hostileSkipped struct {
	g          uint32
	key, nonce []byte
}

type hostileLeaf struct {
	leaf uint32
	rs   [2]hostileRatchet
}

func (h hostileTree) encode() []byte {
	w := codec.NewWriter()
	w.U8(h.version)
	w.U16(h.suite)
	w.U32(h.leaves)
	w.U32(h.maxFwd)
	w.U32(h.maxSkp)
	w.Vector(func(w *codec.Writer) {
		for _, n := range h.nodes {
			w.U32(n.x)
			w.Opaque(n.sec)
		}
	})
	w.Vector(func(w *codec.Writer) {
		for _, l := range h.ratchets {
			w.U32(l.leaf)
			for _, r := range l.rs {
				w.Optional(r.secret != nil, func(w *codec.Writer) { w.Opaque(r.secret) })
				w.U32(r.head)
				w.U32(r.low)
				w.Vector(func(w *codec.Writer) {
					for _, sk := range r.skipped {
						w.U32(sk.g)
						w.Opaque(sk.key)
						w.Opaque(sk.nonce)
					}
				})
			}
		}
	})
	w.Raw(h.trailing)
	b, err := w.Bytes()
	if err != nil {
		panic(err)
	}
	return b
}

// TestUnmarshalSecretTreeHostile checks that malformed or impossible
// encodings are rejected with ErrInvalidEncoding, and that the valid base
// case decodes.
func TestUnmarshalSecretTreeHostile(t *testing.T) {
	s := testSuite(t)
	h32, k16, n12 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16), bytes.Repeat([]byte{3}, 12)
	okRatchet := hostileRatchet{secret: h32, head: 5, low: 1, skipped: []hostileSkipped{{1, k16, n12}, {3, k16, n12}}}
	// 4 leaves: leaf 0 initialized, node 2 (leaf 1) and node 5 (leaves 2-3)
	// still hold secrets.
	base := func() hostileTree {
		return hostileTree{
			version: 1, suite: uint16(s.ID()), leaves: 4, maxFwd: 10, maxSkp: 4,
			nodes:    []hostileNode{{2, h32}, {5, h32}},
			ratchets: []hostileLeaf{{0, [2]hostileRatchet{okRatchet, {secret: h32}}}},
		}
	}
	if _, err := keyschedule.UnmarshalSecretTree(s, base().encode()); err != nil {
		t.Fatalf("valid base: %v", err)
	}
	cases := []struct {
		name string
		edit func(h *hostileTree)
	}{
		{"version", func(h *hostileTree) { h.version = 2 }},
		{"suite", func(h *hostileTree) { h.suite = 2 }},
		{"zero leaves", func(h *hostileTree) { h.leaves = 0 }},
		{"too many leaves", func(h *hostileTree) { h.leaves = 1<<31 + 1 }},
		{"trailing data", func(h *hostileTree) { h.trailing = []byte{0} }},
		{"node secret length", func(h *hostileTree) { h.nodes[0].sec = h32[:31] }},
		{"empty root secret", func(h *hostileTree) { h.nodes, h.ratchets = []hostileNode{{3, []byte{}}}, nil }},
		{"node out of tree", func(h *hostileTree) { h.nodes[1].x = 7 + 8 }},
		{"node index max", func(h *hostileTree) { h.nodes[1].x = math.MaxUint32 }},
		{"node covering no leaf", func(h *hostileTree) { h.leaves = 3; h.nodes[1].x = 6 }},
		{"nodes unsorted", func(h *hostileTree) { h.nodes[0], h.nodes[1] = h.nodes[1], h.nodes[0] }},
		{"nodes duplicate", func(h *hostileTree) { h.nodes[1] = h.nodes[0] }},
		{"root and leaf overlap", func(h *hostileTree) { h.nodes = append(h.nodes, hostileNode{3, h32}) }},
		{"leaf under node", func(h *hostileTree) { h.nodes[0].x = 1 }},
		{"leaf uncovered", func(h *hostileTree) { h.nodes = h.nodes[:1] }},
		{"nothing at all", func(h *hostileTree) { h.nodes, h.ratchets = nil, nil }},
		{"ratchet leaf out of range", func(h *hostileTree) { h.ratchets[0].leaf = 4 }},
		{"ratchets duplicate", func(h *hostileTree) { h.ratchets = append(h.ratchets, h.ratchets[0]) }},
		{"ratchet secret length", func(h *hostileTree) { h.ratchets[0].rs[1].secret = h32[:8] }},
		{"empty ratchet secret", func(h *hostileTree) { h.ratchets[0].rs[1].secret = []byte{} }},
		{"exhausted early", func(h *hostileTree) { h.ratchets[0].rs[1].secret = nil }},
		{"low above head", func(h *hostileTree) { h.ratchets[0].rs[0].low = 6 }},
		{"skipped below low", func(h *hostileTree) { h.ratchets[0].rs[0].low = 2 }},
		{"skipped at head", func(h *hostileTree) { h.ratchets[0].rs[0].head = 3 }},
		{"skipped unsorted", func(h *hostileTree) {
			h.ratchets[0].rs[0].skipped = []hostileSkipped{{3, k16, n12}, {1, k16, n12}}
		}},
		{"skipped duplicate", func(h *hostileTree) {
			h.ratchets[0].rs[0].skipped = []hostileSkipped{{3, k16, n12}, {3, k16, n12}}
		}},
		{"key length", func(h *hostileTree) { h.ratchets[0].rs[0].skipped[0].key = h32 }},
		{"nonce length", func(h *hostileTree) { h.ratchets[0].rs[0].skipped[1].nonce = n12[:11] }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := base()
			h.ratchets[0].rs[0].skipped = append([]hostileSkipped(nil), okRatchet.skipped...)
			tc.edit(&h)
			if tr, err := keyschedule.UnmarshalSecretTree(s, h.encode()); !errors.Is(err, keyschedule.ErrInvalidEncoding) {
				t.Fatalf("got (%v, %v), want ErrInvalidEncoding", tr, err)
			}
		})
	}
	// Every truncation of a real encoding fails cleanly.
	tr := keyschedule.NewSecretTree(s, testSecret, 6)
	tr.Get(3, keyschedule.Application, 5)
	tr.Next(0, keyschedule.Handshake)
	b := mustMarshal(t, tr)
	for i := range b {
		if _, err := keyschedule.UnmarshalSecretTree(s, b[:i]); !errors.Is(err, keyschedule.ErrInvalidEncoding) {
			t.Fatalf("truncated at %d of %d: %v", i, len(b), err)
		}
	}
	// A different suite refuses it.
	if _, err := keyschedule.UnmarshalSecretTree(lookup(t, uint16(cipher.P384_AES256GCM_SHA384_P384)), b); !errors.Is(err, keyschedule.ErrInvalidEncoding) {
		t.Fatalf("wrong suite: %v", err)
	}
}

// FuzzUnmarshalSecretTree: arbitrary input never panics; what decodes
// re-encodes byte for byte and can be used.
func FuzzUnmarshalSecretTree(f *testing.F) {
	s := testSuite(f)
	for seed := uint64(0); seed < 6; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		n := []uint32{1, 3, 4, 7, 9, 16}[seed]
		tr := keyschedule.NewSecretTree(s, testSecret, n)
		tr.MaxForwardDistance, tr.MaxSkippedKeys = 16, 4
		f.Add(mustMarshal(f, tr))
		for _, o := range randomOps(rng, n, 25) {
			apply(tr, o)
		}
		f.Add(mustMarshal(f, tr))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := keyschedule.UnmarshalSecretTree(s, b)
		if err != nil {
			if !errors.Is(err, keyschedule.ErrInvalidEncoding) {
				t.Fatalf("error does not wrap ErrInvalidEncoding: %v", err)
			}
			return
		}
		if b2 := mustMarshal(t, tr); !bytes.Equal(b, b2) {
			t.Fatal("accepted input does not re-encode identically")
		}
		tr.MaxForwardDistance = min(tr.MaxForwardDistance, 64) // bound the work
		for l := range min(tr.Leaves(), 4) {
			for typ := range 2 {
				tr.Get(treemath.LeafIndex(l), keyschedule.RatchetType(typ), 3)
				tr.Next(treemath.LeafIndex(l), keyschedule.RatchetType(typ))
			}
		}
		if _, err := tr.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}
