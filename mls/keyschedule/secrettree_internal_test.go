package keyschedule

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/treemath"
)

func internalSuite(t testing.TB) *cipher.Suite {
	t.Helper()
	s, err := cipher.Lookup(cipher.X25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var internalSecret = bytes.Repeat([]byte{7}, 32)

// TestSecretTreeLazy checks that a large tree derives only the path to the
// leaves used, and that node secrets are deleted once their children exist
// (RFC 9420, Section 9.2).
func TestSecretTreeLazy(t *testing.T) {
	s := internalSuite(t)
	const n = 10000
	tr := NewSecretTree(s, internalSecret, n)
	if len(tr.nodes) != 1 || len(tr.leaves) != 0 {
		t.Fatalf("new tree holds %d node secrets, %d leaves", len(tr.nodes), len(tr.leaves))
	}
	leaf := treemath.LeafIndex(7)
	if _, _, _, err := tr.Next(leaf, Application); err != nil {
		t.Fatal(err)
	}
	// The leaf and its direct path are consumed; only copath nodes remain.
	if _, ok := tr.nodes[leaf.Node()]; ok {
		t.Error("leaf secret kept after its ratchets were initialized")
	}
	for _, p := range treemath.DirectPath(leaf.Node(), n) {
		if _, ok := tr.nodes[p]; ok {
			t.Errorf("node %d on the direct path kept", p)
		}
	}
	copath := treemath.Copath(leaf.Node(), n)
	if len(tr.nodes) > len(copath) {
		t.Errorf("%d node secrets stored, copath has %d nodes", len(tr.nodes), len(copath))
	}
	for x := range tr.nodes {
		found := false
		for _, c := range copath {
			found = found || c == x
		}
		if !found {
			t.Errorf("node %d stored but not on the copath", x)
		}
	}

	// Using every leaf of a small non-power-of-two tree leaves no node
	// secrets behind.
	tr = NewSecretTree(s, internalSecret, 5)
	for l := treemath.LeafIndex(0); l < 5; l++ {
		if _, _, err := tr.Get(l, Handshake, 0); err != nil {
			t.Fatal(err)
		}
	}
	if len(tr.nodes) != 0 {
		t.Errorf("%d node secrets left after all leaves were used: %v", len(tr.nodes), tr.nodes)
	}
}

func TestSecretTreeExhausted(t *testing.T) {
	s := internalSuite(t)
	tr := NewSecretTree(s, internalSecret, 2)
	r, err := tr.ratchet(1, Application)
	if err != nil {
		t.Fatal(err)
	}
	r.head = math.MaxUint32 - 1
	g, _, _, err := tr.Next(1, Application)
	if err != nil || g != math.MaxUint32-1 {
		t.Fatalf("Next = %d, %v", g, err)
	}
	if _, _, _, err := tr.Next(1, Application); !errors.Is(err, ErrGenerationExhausted) {
		t.Fatalf("Next at the last generation: %v", err)
	}
	if _, _, err := tr.Get(1, Application, math.MaxUint32); !errors.Is(err, ErrGenerationExhausted) {
		t.Fatalf("Get at the last generation: %v", err)
	}

	r, _ = tr.ratchet(0, Application)
	r.head = math.MaxUint32 - 3
	if _, _, err := tr.Get(0, Application, math.MaxUint32); !errors.Is(err, ErrGenerationExhausted) {
		t.Fatalf("Get of the last generation: %v", err)
	}
	if _, _, err := tr.Get(0, Application, math.MaxUint32-2); err != nil {
		t.Fatalf("Get of a skipped generation before exhaustion: %v", err)
	}
}

// TestSecretTreeBookkeepingBounded checks that the skipped-key queue does
// not grow without bound when keys are consumed out of order.
func TestSecretTreeBookkeepingBounded(t *testing.T) {
	s := internalSuite(t)
	tr := NewSecretTree(s, internalSecret, 1)
	r, _ := tr.ratchet(0, Application)
	// Generation 0 stays pending at the front of the queue while, 10,000
	// times, generation base is skipped (stored) and then consumed from the
	// middle of the queue.
	if _, _, err := tr.Get(0, Application, 1); err != nil { // keeps 0 pending
		t.Fatal(err)
	}
	for base := uint32(2); base < 20000; base += 2 {
		if _, _, err := tr.Get(0, Application, base+1); err != nil { // stores base
			t.Fatal(err)
		}
		if _, _, err := tr.Get(0, Application, base); err != nil { // consumes it
			t.Fatal(err)
		}
	}
	if len(r.skipped) != 1 {
		t.Fatalf("%d keys stored, want 1 (generation 0)", len(r.skipped))
	}
	if len(r.order) > 130 {
		t.Fatalf("order queue grew to %d entries", len(r.order))
	}
	if _, _, err := tr.Get(0, Application, 0); err != nil {
		t.Fatal(err)
	}
}
