package mls

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/treemath"
)

// ratchetID names one sender ratchet of a secret tree (RFC 9420, Section 9).
type ratchetID struct {
	leaf uint32
	typ  keyschedule.RatchetType
}

// ratchetLog records how far a ratchet was used: every generation below
// head was derived, and avail lists (ascending) the generations below head
// whose keys are still held for out-of-order delivery. It mirrors the
// state of the keyschedule.SecretTree ratchet so that it can be rebuilt
// after UnmarshalState.
type ratchetLog struct {
	head  uint32
	avail []uint32
}

// epochKeys is the secret tree of one epoch (RFC 9420, Section 9) together
// with a log of its use.
//
// keyschedule.SecretTree cannot be exported, so to persist it we keep the
// epoch's encryption_secret and the ratchet logs, and rebuild the tree on
// load by re-deriving every used ratchet up to its head and deleting the
// consumed keys. The consequence (documented on MarshalState) is that
// persisted state keeps the root of the current and kept past epochs'
// secret trees, so within those epochs it does not give forward secrecy
// for already consumed keys.
//
// The log is updated only after a message was fully processed (note*), so
// a message that decrypts but is then rejected leaves the log, and hence
// MarshalState, unchanged; the in-memory tree has consumed its key
// regardless.
type epochKeys struct {
	suite      *cipher.Suite
	encSecret  []byte
	nLeaves    uint32
	maxForward uint32
	maxSkipped int
	tree       *keyschedule.SecretTree
	logs       map[ratchetID]*ratchetLog
}

func newEpochKeys(s *cipher.Suite, encSecret []byte, nLeaves uint32, cfg *Config) *epochKeys {
	k := &epochKeys{
		suite:      s,
		encSecret:  append([]byte(nil), encSecret...),
		nLeaves:    nLeaves,
		maxForward: cfg.maxForward(),
		maxSkipped: cfg.maxSkipped(),
		logs:       map[ratchetID]*ratchetLog{},
	}
	k.tree = k.freshTree()
	return k
}

func (k *epochKeys) freshTree() *keyschedule.SecretTree {
	t := keyschedule.NewSecretTree(k.suite, k.encSecret, k.nLeaves)
	t.MaxForwardDistance = k.maxForward
	t.MaxSkippedKeys = k.maxSkipped
	return t
}

func (k *epochKeys) log(id ratchetID) *ratchetLog {
	l := k.logs[id]
	if l == nil {
		l = &ratchetLog{}
		k.logs[id] = l
	}
	return l
}

// noteUsed records that generation gen of ratchet id was consumed (sent or
// received), mirroring keyschedule.SecretTree's window rules.
func (k *epochKeys) noteUsed(leaf uint32, typ keyschedule.RatchetType, gen uint32) {
	l := k.log(ratchetID{leaf, typ})
	if gen < l.head {
		if i, ok := slices.BinarySearch(l.avail, gen); ok {
			l.avail = slices.Delete(l.avail, i, i+1)
		}
		return
	}
	limit := k.maxSkipped
	if uint64(gen-l.head) > uint64(limit) {
		l.avail = l.avail[:0]
		l.head = gen - uint32(limit)
	}
	for g := l.head; g < gen; g++ {
		l.avail = append(l.avail, g)
	}
	if over := len(l.avail) - limit; over > 0 {
		l.avail = slices.Delete(l.avail, 0, over)
	}
	l.head = gen + 1
}

// rebuild re-creates the in-memory secret tree from encSecret and the logs
// (after UnmarshalState).
func (k *epochKeys) rebuild() error {
	t := k.freshTree()
	t.MaxForwardDistance = math.MaxUint32
	ids := slices.SortedFunc(maps.Keys(k.logs), func(a, b ratchetID) int {
		return cmp.Or(cmp.Compare(a.leaf, b.leaf), cmp.Compare(a.typ, b.typ))
	})
	for _, id := range ids {
		l := k.logs[id]
		if l.head == 0 {
			continue
		}
		if _, _, err := t.Get(treemath.LeafIndex(id.leaf), id.typ, l.head-1); err != nil {
			return fmt.Errorf("%w: secret tree leaf %d: %w", ErrStateCorrupt, id.leaf, err)
		}
		start := uint32(0)
		if uint64(l.head-1) > uint64(k.maxSkipped) {
			start = l.head - 1 - uint32(k.maxSkipped)
		}
		for g := start; g < l.head-1; g++ {
			if _, ok := slices.BinarySearch(l.avail, g); ok {
				continue
			}
			_ = t.Consume(treemath.LeafIndex(id.leaf), id.typ, g) // absent keys are fine
		}
	}
	t.MaxForwardDistance = k.maxForward
	k.tree = t
	return nil
}
