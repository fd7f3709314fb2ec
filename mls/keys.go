package mls

import (
	"fmt"
	"math"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/treemath"
)

// epochKeys is the secret tree of one epoch (RFC 9420, Section 9), kept
// twice:
//
//   - tree is the live tree that mls/framing uses. It consumes a key as
//     soon as the key decrypted a message (and advances a ratchet as soon
//     as a generation is asked for), before the message is fully
//     validated.
//   - durable is what MarshalState persists. It is advanced (noteUsed) only
//     once a message was accepted, so that a message that decrypts but is
//     then rejected leaves MarshalState byte for byte unchanged.
//
// Both follow the deletion schedule of RFC 9420, Section 9.2: the epoch's
// encryption_secret is gone once the first leaf is used, and persisted
// state holds only the frontier node secrets, the current ratchet secrets
// and the retained skipped keys of durable (keyschedule.SecretTree's
// MarshalBinary), never a consumed key. durable differs from tree only by
// keys that were used on rejected messages (and by ratchets advanced for
// them), so it holds no key that tree deleted for an accepted message.
type epochKeys struct {
	tree    *keyschedule.SecretTree
	durable *keyschedule.SecretTree
}

// newEpochKeysHook, if set (by tests), observes every epoch's
// encryption_secret.
var newEpochKeysHook func(encSecret []byte)

func newEpochKeys(s *cipher.Suite, encSecret []byte, nLeaves uint32, cfg *Config) *epochKeys {
	if newEpochKeysHook != nil {
		newEpochKeysHook(encSecret)
	}
	k := &epochKeys{
		tree:    keyschedule.NewSecretTree(s, encSecret, nLeaves),
		durable: keyschedule.NewSecretTree(s, encSecret, nLeaves),
	}
	k.setWindow(cfg)
	return k
}

// setWindow applies the configured receive window (RFC 9420, Section 9.2)
// to both trees.
func (k *epochKeys) setWindow(cfg *Config) {
	for _, t := range []*keyschedule.SecretTree{k.tree, k.durable} {
		t.MaxForwardDistance = cfg.maxForward()
		t.MaxSkippedKeys = cfg.maxSkipped()
	}
}

// leaves is the number of leaves of the epoch's tree.
func (k *epochKeys) leaves() uint32 { return k.tree.Leaves() }

// noteUsed records in durable that generation gen of leaf's ratchet typ
// was consumed by an accepted message (sent or received): durable consumes
// it as the live tree did (RFC 9420, Section 9.2).
//
// durable may lag behind the live tree (rejected messages advanced only
// the latter), so the forward distance is not limited here: the live tree
// already bounded how far gen can be. An error means that durable no
// longer holds the key either (consumed, or evicted from its window), which
// is the goal, so it is ignored.
func (k *epochKeys) noteUsed(leaf uint32, typ keyschedule.RatchetType, gen uint32) {
	d := k.durable
	fwd := d.MaxForwardDistance
	d.MaxForwardDistance = math.MaxUint32
	key, nonce, err := d.Get(treemath.LeafIndex(leaf), typ, gen)
	d.MaxForwardDistance = fwd
	if err == nil {
		clear(key)
		clear(nonce)
	}
}

// marshal encodes durable (keyschedule.SecretTree.MarshalBinary).
func (k *epochKeys) marshal() ([]byte, error) {
	b, err := k.durable.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("mls: encoding secret tree: %w", err)
	}
	return b, nil
}

// unmarshalEpochKeys restores both trees from marshal output, with the
// window of cfg.
func unmarshalEpochKeys(s *cipher.Suite, b []byte, cfg *Config) (*epochKeys, error) {
	t, err := keyschedule.UnmarshalSecretTree(s, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
	}
	d, err := keyschedule.UnmarshalSecretTree(s, b)
	if err != nil {
		t.Erase()
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
	}
	k := &epochKeys{tree: t, durable: d}
	k.setWindow(cfg)
	return k, nil
}
