package keyschedule_test

import (
	"testing"

	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/treemath"
)

// BenchmarkSecretTreeFirstMessage10k measures Next for a leaf's first
// message in a 10,000-leaf group: the lazy derivation of the leaf's path
// from the nearest stored ancestor plus its ratchet roots and first key.
// Leaves are taken in a scattered order; a fresh tree is made (untimed)
// when all leaves have been used.
func BenchmarkSecretTreeFirstMessage10k(b *testing.B) {
	s := testSuite(b)
	const n = 10000
	var tr *keyschedule.SecretTree
	for i := 0; i < b.N; i++ {
		if i%n == 0 {
			b.StopTimer()
			tr = keyschedule.NewSecretTree(s, testSecret, n)
			b.StartTimer()
		}
		leaf := treemath.LeafIndex((uint64(i%n) * 7919) % n) // 7919 is prime: a permutation of 0..n-1
		if _, _, _, err := tr.Next(leaf, keyschedule.Application); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSecretTreeFirstMessageColdTree10k measures the very first
// message of a fresh 10,000-leaf tree (tree creation included): the full
// root-to-leaf derivation.
func BenchmarkSecretTreeFirstMessageColdTree10k(b *testing.B) {
	s := testSuite(b)
	for i := 0; i < b.N; i++ {
		tr := keyschedule.NewSecretTree(s, testSecret, 10000)
		if _, _, _, err := tr.Next(treemath.LeafIndex(i%10000), keyschedule.Application); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSecretTreeSteadyStateNext measures sending on an initialized
// ratchet: one key, one nonce and one ratchet step per message.
func BenchmarkSecretTreeSteadyStateNext(b *testing.B) {
	s := testSuite(b)
	tr := keyschedule.NewSecretTree(s, testSecret, 10000)
	for i := 0; i < b.N; i++ {
		if _, _, _, err := tr.Next(4321, keyschedule.Application); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSecretTreeSteadyStateGet measures in-order receiving from a
// sender on an initialized ratchet.
func BenchmarkSecretTreeSteadyStateGet(b *testing.B) {
	s := testSuite(b)
	tr := keyschedule.NewSecretTree(s, testSecret, 10000)
	for i := 0; i < b.N; i++ {
		if _, _, err := tr.Get(4321, keyschedule.Application, uint32(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSecretTreeOutOfOrderGet measures receiving in pairs swapped
// (2k+1 before 2k), exercising the skipped-key store.
func BenchmarkSecretTreeOutOfOrderGet(b *testing.B) {
	s := testSuite(b)
	tr := keyschedule.NewSecretTree(s, testSecret, 10000)
	for i := 0; i < b.N; i++ {
		if _, _, err := tr.Get(4321, keyschedule.Application, uint32(i^1)); err != nil {
			b.Fatal(err)
		}
	}
}
