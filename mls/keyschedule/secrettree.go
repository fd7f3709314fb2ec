package keyschedule

import (
	"fmt"
	"math"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/treemath"
)

// Labels of the secret tree (RFC 9420, Section 9).
const (
	labelTree        = "tree"
	labelHandshake   = "handshake"
	labelApplication = "application"
	labelSecret      = "secret"
)

// Contexts of the "tree" derivation of left and right children (RFC 9420,
// Section 9).
var (
	contextLeft  = []byte("left")
	contextRight = []byte("right")
)

// RatchetType selects one of a sender's two hash ratchets (RFC 9420,
// Section 9): Handshake for Proposal and Commit content, Application for
// application data.
type RatchetType uint8

// The two per-sender ratchets (RFC 9420, Section 9).
const (
	Handshake RatchetType = iota
	Application
)

// String returns "handshake" or "application", the ratchet's derivation
// label (RFC 9420, Section 9).
func (r RatchetType) String() string {
	switch r {
	case Handshake:
		return labelHandshake
	case Application:
		return labelApplication
	default:
		return fmt.Sprintf("RatchetType(%d)", uint8(r))
	}
}

// Defaults of the receive window of a SecretTree (RFC 9420, Section 9.2
// allows keeping unconsumed values "for some reasonable amount of time").
const (
	// DefaultMaxForwardDistance is the default SecretTree.MaxForwardDistance.
	DefaultMaxForwardDistance = 1024
	// DefaultMaxSkippedKeys is the default SecretTree.MaxSkippedKeys.
	DefaultMaxSkippedKeys = 1024
)

// SecretTree is the secret tree of one epoch (RFC 9420, Section 9) with the
// handshake and application hash ratchets of every sender.
//
// Node secrets are derived lazily, only on the path to a leaf that is used,
// so creating a tree for a large group is cheap. Following the deletion
// schedule (Section 9.2), a node's secret is deleted as soon as both of its
// children are derived (they are always derived together), a leaf's secret
// is deleted once its two ratchets are initialized, a ratchet secret is
// deleted when the ratchet advances, and a key and nonce are deleted when
// handed out (consumed).
//
// Receiving (Get) accepts generations out of order within a bounded window:
// a generation at most MaxForwardDistance ahead of the ratchet is derived,
// and the keys of the generations skipped on the way are kept, at most
// MaxSkippedKeys per ratchet (oldest evicted first), until asked for.
//
// A SecretTree is not safe for concurrent use: use it from one goroutine at
// a time (or guard it with a mutex). It holds no global state.
type SecretTree struct {
	// MaxForwardDistance bounds how far ahead of a ratchet's next
	// generation Get may reach; further requests fail with
	// ErrGenerationTooFar. Zero accepts only the next generation. It also
	// bounds the work a hostile generation number can cause.
	// NewSecretTree sets DefaultMaxForwardDistance.
	MaxForwardDistance uint32

	// MaxSkippedKeys caps, per ratchet, the keys of skipped generations
	// kept for out-of-order delivery; when exceeded, the oldest are
	// evicted and asking for them fails with ErrGenerationExpired. Zero (or
	// negative) keeps none. NewSecretTree sets DefaultMaxSkippedKeys.
	MaxSkippedKeys int

	suite   *cipher.Suite
	nLeaves uint32
	root    treemath.NodeIndex
	nodes   map[treemath.NodeIndex][]byte // underived-from tree node secrets
	leaves  map[treemath.LeafIndex]*[2]ratchet
	erased  bool
}

// keyNonce is one generation's AEAD key and nonce.
type keyNonce struct{ key, nonce []byte }

// ratchet is one sender hash ratchet (RFC 9420, Section 9.1).
//
// Invariant: every generation in [low, head) is either consumed or stored
// in skipped; generations below low were consumed or dropped.
type ratchet struct {
	secret  []byte // ratchet_secret_[N]_[head]; nil once exhausted
	head    uint32 // generation of secret: the next one to derive
	low     uint32
	skipped map[uint32]keyNonce
	order   []uint32 // stored generations in increasing order (may hold consumed ones)
}

// NewSecretTree returns the secret tree of an epoch over nLeaves leaves
// with encryption_secret at its root (RFC 9420, Section 9). Nothing is
// derived until a leaf is used. encryptionSecret is copied. With a nil
// suite, an empty secret, no leaves or more than 2^31 leaves, every
// operation fails (with ErrInvalidInput).
func NewSecretTree(s *cipher.Suite, encryptionSecret []byte, nLeaves uint32) *SecretTree {
	t := &SecretTree{
		MaxForwardDistance: DefaultMaxForwardDistance,
		MaxSkippedKeys:     DefaultMaxSkippedKeys,
		suite:              s,
		nLeaves:            nLeaves,
		nodes:              make(map[treemath.NodeIndex][]byte),
		leaves:             make(map[treemath.LeafIndex]*[2]ratchet),
	}
	if s == nil || len(encryptionSecret) == 0 || nLeaves == 0 || nLeaves > 1<<31 {
		t.erased = true
		return t
	}
	t.root = treemath.Root(nLeaves)
	t.nodes[t.root] = append([]byte(nil), encryptionSecret...)
	return t
}

// Leaves returns the number of leaves the tree was created for (RFC 9420,
// Section 9: the secret tree has the ratchet tree's shape).
func (t *SecretTree) Leaves() uint32 { return t.nLeaves }

// Next returns the key and nonce of the next generation of leaf's ratchet
// of type typ, for sending (RFC 9420, Section 9.1), and advances the
// ratchet. The key is consumed: Get for that generation then fails with
// ErrKeyConsumed.
func (t *SecretTree) Next(leaf treemath.LeafIndex, typ RatchetType) (generation uint32, key, nonce []byte, err error) {
	r, err := t.ratchet(leaf, typ)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("keyschedule: secret tree next: %w", err)
	}
	generation = r.head
	kn, err := t.advance(r)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("keyschedule: secret tree next (leaf %d, %s): %w", leaf, typ, err)
	}
	return generation, kn.key, kn.nonce, nil
}

// Get returns the key and nonce of generation generation of leaf's ratchet
// of type typ, for receiving (RFC 9420, Sections 9.1 and 9.2), and deletes
// them (the key is consumed).
//
// Generations ahead of the ratchet are derived if at most
// MaxForwardDistance ahead (else ErrGenerationTooFar); the keys of the
// generations skipped over are kept for later out-of-order requests, up to
// MaxSkippedKeys. A generation already handed out fails with
// ErrKeyConsumed; one behind the ratchet whose key was not kept fails with
// ErrGenerationExpired. Leaves not below the tree's leaf count fail with
// ErrLeafOutOfRange.
//
// Get deletes the key before the caller knows whether decryption
// succeeds; callers that must not lose a key to a forged message can use
// Peek followed by Consume instead.
func (t *SecretTree) Get(leaf treemath.LeafIndex, typ RatchetType, generation uint32) (key, nonce []byte, err error) {
	kn, err := t.get(leaf, typ, generation, true)
	if err != nil {
		return nil, nil, fmt.Errorf("keyschedule: secret tree get (leaf %d, %s, generation %d): %w", leaf, typ, generation, err)
	}
	return kn.key, kn.nonce, nil
}

// Peek is Get without consuming: it returns copies of the key and nonce of
// the generation and keeps them stored (the peeked generation may exceed
// MaxSkippedKeys by one; older ones are evicted as usual), so that
// a receiver can delete them with Consume only after decryption succeeded,
// as RFC 9420, Section 9.2 defines consumption. Ratchet advancement and
// errors are as for Get.
func (t *SecretTree) Peek(leaf treemath.LeafIndex, typ RatchetType, generation uint32) (key, nonce []byte, err error) {
	kn, err := t.get(leaf, typ, generation, false)
	if err != nil {
		return nil, nil, fmt.Errorf("keyschedule: secret tree peek (leaf %d, %s, generation %d): %w", leaf, typ, generation, err)
	}
	return append([]byte(nil), kn.key...), append([]byte(nil), kn.nonce...), nil
}

// Consume deletes the stored key and nonce of a generation previously
// returned by Peek (RFC 9420, Section 9.2). It fails like Get for a
// generation that is not stored, and with ErrInvalidInput for a generation
// not yet derived.
func (t *SecretTree) Consume(leaf treemath.LeafIndex, typ RatchetType, generation uint32) error {
	r, err := t.ratchet(leaf, typ)
	if err == nil {
		if generation >= r.head {
			err = fmt.Errorf("generation not yet derived: %w", ErrInvalidInput)
		} else {
			var kn keyNonce
			kn, err = r.take(generation)
			zero(kn.key)
			zero(kn.nonce)
		}
	}
	if err != nil {
		return fmt.Errorf("keyschedule: secret tree consume (leaf %d, %s, generation %d): %w", leaf, typ, generation, err)
	}
	return nil
}

// Erase zeroes and drops every secret, key and nonce the tree holds, as the
// deletion schedule asks once an epoch is over (RFC 9420, Section 9.2). All
// later operations fail.
func (t *SecretTree) Erase() {
	for x, s := range t.nodes {
		zero(s)
		delete(t.nodes, x)
	}
	for l, rs := range t.leaves {
		for i := range rs {
			r := &rs[i]
			zero(r.secret)
			for _, kn := range r.skipped {
				zero(kn.key)
				zero(kn.nonce)
			}
		}
		delete(t.leaves, l)
	}
	t.erased = true
}

// get implements Get (consume) and Peek (!consume).
func (t *SecretTree) get(leaf treemath.LeafIndex, typ RatchetType, generation uint32, consume bool) (keyNonce, error) {
	r, err := t.ratchet(leaf, typ)
	if err != nil {
		return keyNonce{}, err
	}
	if generation < r.head {
		if consume {
			return r.take(generation)
		}
		if kn, ok := r.skipped[generation]; ok {
			return kn, nil
		}
		return keyNonce{}, r.missing(generation)
	}
	if r.secret == nil {
		return keyNonce{}, ErrGenerationExhausted
	}
	if generation-r.head > t.MaxForwardDistance {
		return keyNonce{}, fmt.Errorf("%d generations ahead of %d, limit %d: %w",
			generation-r.head, r.head, t.MaxForwardDistance, ErrGenerationTooFar)
	}
	maxSkipped := t.MaxSkippedKeys
	if maxSkipped < 0 {
		maxSkipped = 0
	}
	// Generations that would be evicted anyway need only the ratchet
	// secret, not their key and nonce.
	if dist := uint64(generation - r.head); dist > uint64(maxSkipped) {
		for n := dist - uint64(maxSkipped); n > 0; n-- {
			if err := t.step(r); err != nil {
				return keyNonce{}, err
			}
		}
		r.dropAll()
	}
	for r.head < generation {
		g := r.head
		kn, err := t.advance(r)
		if err != nil {
			return keyNonce{}, err
		}
		r.store(g, kn, maxSkipped)
	}
	kn, err := t.advance(r)
	if err != nil {
		return keyNonce{}, err
	}
	if !consume {
		r.store(generation, kn, maxSkipped+1)
	}
	return kn, nil
}

// ratchet returns leaf's ratchet of type typ, initializing the leaf's
// ratchets from the tree on first use.
func (t *SecretTree) ratchet(leaf treemath.LeafIndex, typ RatchetType) (*ratchet, error) {
	if t.erased {
		return nil, fmt.Errorf("secret tree unusable (erased or created without suite, secret or leaves): %w", ErrInvalidInput)
	}
	if typ != Handshake && typ != Application {
		return nil, ErrInvalidRatchetType
	}
	if uint32(leaf) >= t.nLeaves {
		return nil, fmt.Errorf("leaf %d, tree has %d leaves: %w", leaf, t.nLeaves, ErrLeafOutOfRange)
	}
	rs, ok := t.leaves[leaf]
	if !ok {
		var err error
		if rs, err = t.initLeaf(leaf); err != nil {
			return nil, err
		}
		t.leaves[leaf] = rs
	}
	return &rs[typ], nil
}

// initLeaf derives leaf's secret down from the nearest stored ancestor
// (RFC 9420, Section 9), storing the siblings along the way and deleting
// every consumed node secret, then derives its two ratchet roots:
//
//	handshake_ratchet_secret_[N]_[0]   = ExpandWithLabel(leaf, "handshake", "", Nh)
//	application_ratchet_secret_[N]_[0] = ExpandWithLabel(leaf, "application", "", Nh)
func (t *SecretTree) initLeaf(leaf treemath.LeafIndex) (*[2]ratchet, error) {
	nh := t.suite.HashSize()
	target := leaf.Node()
	for x := t.root; x != target; {
		left, right := treemath.Left(x), treemath.Right(x)
		if sec, ok := t.nodes[x]; ok {
			ls, err := t.suite.ExpandWithLabel(sec, labelTree, contextLeft, nh)
			if err != nil {
				return nil, fmt.Errorf("deriving node %d secret: %w", left, err)
			}
			rsec, err := t.suite.ExpandWithLabel(sec, labelTree, contextRight, nh)
			if err != nil {
				zero(ls)
				return nil, fmt.Errorf("deriving node %d secret: %w", right, err)
			}
			zero(sec)
			delete(t.nodes, x)
			t.nodes[left] = ls
			if t.inRange(right) {
				t.nodes[right] = rsec
			} else {
				zero(rsec) // covers no leaf of this tree; never needed
			}
		}
		if target < x {
			x = left
		} else {
			x = right
		}
	}
	sec, ok := t.nodes[target]
	if !ok {
		// Unreachable while the invariants hold: a leaf's secret is only
		// deleted after its ratchets are stored in t.leaves.
		return nil, fmt.Errorf("leaf %d secret missing", leaf)
	}
	hs, err := t.suite.ExpandWithLabel(sec, labelHandshake, nil, nh)
	if err != nil {
		return nil, fmt.Errorf("deriving handshake ratchet of leaf %d: %w", leaf, err)
	}
	as, err := t.suite.ExpandWithLabel(sec, labelApplication, nil, nh)
	if err != nil {
		zero(hs)
		return nil, fmt.Errorf("deriving application ratchet of leaf %d: %w", leaf, err)
	}
	zero(sec)
	delete(t.nodes, target)
	return &[2]ratchet{{secret: hs}, {secret: as}}, nil
}

// inRange reports whether the subtree under x holds a leaf of the tree.
func (t *SecretTree) inRange(x treemath.NodeIndex) bool {
	leftmost := uint64(x) - (uint64(1)<<treemath.Level(x) - 1)
	return leftmost/2 < uint64(t.nLeaves)
}

// advance derives the key and nonce of r's current generation and moves r
// to the next one (RFC 9420, Section 9.1):
//
//	ratchet_nonce_[N]_[j]      = DeriveTreeSecret(secret, "nonce", j, AEAD.Nn)
//	ratchet_key_[N]_[j]        = DeriveTreeSecret(secret, "key", j, AEAD.Nk)
//	ratchet_secret_[N]_[j+1]   = DeriveTreeSecret(secret, "secret", j, KDF.Nh)
func (t *SecretTree) advance(r *ratchet) (keyNonce, error) {
	if r.secret == nil {
		return keyNonce{}, ErrGenerationExhausted
	}
	key, err := t.suite.DeriveTreeSecret(r.secret, labelKey, r.head, t.suite.AEADKeySize())
	if err != nil {
		return keyNonce{}, fmt.Errorf("deriving key of generation %d: %w", r.head, err)
	}
	nonce, err := t.suite.DeriveTreeSecret(r.secret, labelNonce, r.head, t.suite.AEADNonceSize())
	if err != nil {
		zero(key)
		return keyNonce{}, fmt.Errorf("deriving nonce of generation %d: %w", r.head, err)
	}
	if err := t.step(r); err != nil {
		zero(key)
		zero(nonce)
		return keyNonce{}, err
	}
	return keyNonce{key, nonce}, nil
}

// step moves r to the next generation without deriving the current key.
// The last uint32 generation has no successor: reaching it exhausts r.
func (t *SecretTree) step(r *ratchet) error {
	if r.secret == nil {
		return ErrGenerationExhausted
	}
	if r.head == math.MaxUint32 {
		zero(r.secret)
		r.secret = nil
		return ErrGenerationExhausted
	}
	next, err := t.suite.DeriveTreeSecret(r.secret, labelSecret, r.head, t.suite.HashSize())
	if err != nil {
		return fmt.Errorf("deriving ratchet secret of generation %d: %w", r.head+1, err)
	}
	zero(r.secret)
	r.secret = next
	r.head++
	return nil
}

// take removes and returns the stored key of generation g < r.head.
func (r *ratchet) take(g uint32) (keyNonce, error) {
	kn, ok := r.skipped[g]
	if !ok {
		return keyNonce{}, r.missing(g)
	}
	delete(r.skipped, g)
	// Trim consumed generations from the front of the order queue; compact
	// it when consumed entries dominate.
	for len(r.order) > 0 {
		if _, ok := r.skipped[r.order[0]]; ok {
			break
		}
		r.order = r.order[1:]
	}
	if len(r.order) > 64 && len(r.order) > 2*len(r.skipped) {
		kept := make([]uint32, 0, len(r.skipped))
		for _, o := range r.order {
			if _, ok := r.skipped[o]; ok {
				kept = append(kept, o)
			}
		}
		r.order = kept
	}
	return kn, nil
}

// missing classifies an absent generation g < r.head.
func (r *ratchet) missing(g uint32) error {
	if g >= r.low {
		return ErrKeyConsumed
	}
	return fmt.Errorf("generation %d is behind the retained window starting at %d: %w", g, r.low, ErrGenerationExpired)
}

// store keeps the key of generation g (which is above every stored one),
// evicting the oldest stored keys beyond limit.
func (r *ratchet) store(g uint32, kn keyNonce, limit int) {
	if limit <= 0 {
		zero(kn.key)
		zero(kn.nonce)
		r.low = g + 1
		return
	}
	if r.skipped == nil {
		r.skipped = make(map[uint32]keyNonce)
	}
	r.skipped[g] = kn
	r.order = append(r.order, g)
	for len(r.skipped) > limit {
		old := r.order[0]
		r.order = r.order[1:]
		if okn, ok := r.skipped[old]; ok {
			zero(okn.key)
			zero(okn.nonce)
			delete(r.skipped, old)
			r.low = old + 1
		}
	}
}

// dropAll evicts every stored key: the ratchet jumped so far that all of
// them fall out of the retained window. Generations below the current head
// become expired.
func (r *ratchet) dropAll() {
	for g, kn := range r.skipped {
		zero(kn.key)
		zero(kn.nonce)
		delete(r.skipped, g)
	}
	r.order = r.order[:0]
	r.low = r.head
}
