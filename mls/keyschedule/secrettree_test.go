package keyschedule_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/treemath"
)

var testSecret = bytes.Repeat([]byte{0x42}, 32)

func testSuite(t testing.TB) *cipher.Suite {
	return lookup(t, uint16(cipher.X25519_AES128GCM_SHA256_Ed25519))
}

// reference returns the keys of generations 0..n-1 of one ratchet, obtained
// by sending (Next) on a fresh tree.
func reference(t *testing.T, s *cipher.Suite, nLeaves uint32, leaf treemath.LeafIndex, typ keyschedule.RatchetType, n int) (keys, nonces [][]byte) {
	t.Helper()
	tr := keyschedule.NewSecretTree(s, testSecret, nLeaves)
	for i := 0; i < n; i++ {
		g, k, nn, err := tr.Next(leaf, typ)
		if err != nil {
			t.Fatal(err)
		}
		if g != uint32(i) {
			t.Fatalf("Next returned generation %d, want %d", g, i)
		}
		keys, nonces = append(keys, k), append(nonces, nn)
	}
	return keys, nonces
}

func mustGet(t *testing.T, tr *keyschedule.SecretTree, leaf treemath.LeafIndex, typ keyschedule.RatchetType, g uint32, wantK, wantN []byte) {
	t.Helper()
	k, n, err := tr.Get(leaf, typ, g)
	if err != nil {
		t.Fatalf("Get(%d, %v, %d): %v", leaf, typ, g, err)
	}
	if !bytes.Equal(k, wantK) || !bytes.Equal(n, wantN) {
		t.Fatalf("Get(%d, %v, %d): wrong key/nonce", leaf, typ, g)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func TestSecretTreeOutOfOrder(t *testing.T) {
	s := testSuite(t)
	const leaf = 2
	keys, nonces := reference(t, s, 5, leaf, keyschedule.Application, 12)
	tr := keyschedule.NewSecretTree(s, testSecret, 5)
	for _, g := range []uint32{5, 2, 4, 3, 0, 1, 6, 11, 7, 10, 8, 9} {
		mustGet(t, tr, leaf, keyschedule.Application, g, keys[g], nonces[g])
	}
	// Every generation is consumed now.
	for g := uint32(0); g < 12; g++ {
		_, _, err := tr.Get(leaf, keyschedule.Application, g)
		wantErr(t, err, keyschedule.ErrKeyConsumed)
	}
}

func TestSecretTreeRandomOrder(t *testing.T) {
	s := testSuite(t)
	const n = 200
	keys, nonces := reference(t, s, 3, 1, keyschedule.Handshake, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 5; round++ {
		tr := keyschedule.NewSecretTree(s, testSecret, 3)
		for _, g := range rng.Perm(n) {
			mustGet(t, tr, 1, keyschedule.Handshake, uint32(g), keys[g], nonces[g])
		}
	}
}

func TestSecretTreeConsumed(t *testing.T) {
	s := testSuite(t)
	tr := keyschedule.NewSecretTree(s, testSecret, 4)
	if _, _, err := tr.Get(0, keyschedule.Handshake, 5); err != nil {
		t.Fatal(err)
	}
	_, _, err := tr.Get(0, keyschedule.Handshake, 5)
	wantErr(t, err, keyschedule.ErrKeyConsumed)

	// A key handed out by Next is consumed too.
	g, _, _, err := tr.Next(1, keyschedule.Application)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = tr.Get(1, keyschedule.Application, g)
	wantErr(t, err, keyschedule.ErrKeyConsumed)

	// In-order receiving: all earlier generations stay "consumed".
	for i := uint32(0); i < 4; i++ {
		if _, _, err := tr.Get(3, keyschedule.Application, i); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = tr.Get(3, keyschedule.Application, 0)
	wantErr(t, err, keyschedule.ErrKeyConsumed)
}

func TestSecretTreeWindow(t *testing.T) {
	s := testSuite(t)
	tr := keyschedule.NewSecretTree(s, testSecret, 2)
	if tr.MaxForwardDistance != keyschedule.DefaultMaxForwardDistance || tr.MaxSkippedKeys != keyschedule.DefaultMaxSkippedKeys {
		t.Fatalf("defaults: %d %d", tr.MaxForwardDistance, tr.MaxSkippedKeys)
	}
	_, _, err := tr.Get(0, keyschedule.Application, keyschedule.DefaultMaxForwardDistance+1)
	wantErr(t, err, keyschedule.ErrGenerationTooFar)
	_, _, err = tr.Get(0, keyschedule.Application, 0xffffffff)
	wantErr(t, err, keyschedule.ErrGenerationTooFar)
	// Exactly at the limit is accepted, and the window moves with the ratchet.
	if _, _, err := tr.Get(0, keyschedule.Application, keyschedule.DefaultMaxForwardDistance); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Get(0, keyschedule.Application, 2*keyschedule.DefaultMaxForwardDistance+1); err != nil {
		t.Fatal(err)
	}

	keys, nonces := reference(t, s, 2, 1, keyschedule.Handshake, 40)
	tr = keyschedule.NewSecretTree(s, testSecret, 2)
	tr.MaxForwardDistance = 10
	tr.MaxSkippedKeys = 4
	_, _, err = tr.Get(1, keyschedule.Handshake, 11)
	wantErr(t, err, keyschedule.ErrGenerationTooFar)
	mustGet(t, tr, 1, keyschedule.Handshake, 10, keys[10], nonces[10]) // keeps 6..9
	for g := uint32(0); g < 6; g++ {
		_, _, err = tr.Get(1, keyschedule.Handshake, g)
		wantErr(t, err, keyschedule.ErrGenerationExpired)
	}
	mustGet(t, tr, 1, keyschedule.Handshake, 7, keys[7], nonces[7])
	// 12 stores 11: 6, 8, 9, 11 kept.
	mustGet(t, tr, 1, keyschedule.Handshake, 12, keys[12], nonces[12])
	// 14 stores 13: 6 evicted.
	mustGet(t, tr, 1, keyschedule.Handshake, 14, keys[14], nonces[14])
	_, _, err = tr.Get(1, keyschedule.Handshake, 6)
	wantErr(t, err, keyschedule.ErrGenerationExpired)
	_, _, err = tr.Get(1, keyschedule.Handshake, 7) // consumed, just above the evicted 6
	wantErr(t, err, keyschedule.ErrKeyConsumed)
	for _, g := range []uint32{13, 9, 11, 8} {
		mustGet(t, tr, 1, keyschedule.Handshake, g, keys[g], nonces[g])
	}
	for _, g := range []uint32{8, 9, 10, 11, 12, 13, 14} {
		_, _, err = tr.Get(1, keyschedule.Handshake, g)
		wantErr(t, err, keyschedule.ErrKeyConsumed)
	}

	// No retention at all.
	tr = keyschedule.NewSecretTree(s, testSecret, 2)
	tr.MaxSkippedKeys = 0
	mustGet(t, tr, 1, keyschedule.Handshake, 3, keys[3], nonces[3])
	_, _, err = tr.Get(1, keyschedule.Handshake, 2)
	wantErr(t, err, keyschedule.ErrGenerationExpired)
	_, _, err = tr.Get(1, keyschedule.Handshake, 3)
	wantErr(t, err, keyschedule.ErrKeyConsumed)
	mustGet(t, tr, 1, keyschedule.Handshake, 4, keys[4], nonces[4])

	// Only in-order receiving.
	tr = keyschedule.NewSecretTree(s, testSecret, 2)
	tr.MaxForwardDistance = 0
	_, _, err = tr.Get(1, keyschedule.Handshake, 1)
	wantErr(t, err, keyschedule.ErrGenerationTooFar)
	mustGet(t, tr, 1, keyschedule.Handshake, 0, keys[0], nonces[0])
	mustGet(t, tr, 1, keyschedule.Handshake, 1, keys[1], nonces[1])

	// A jump past the retention cap keeps only the newest skipped keys.
	tr = keyschedule.NewSecretTree(s, testSecret, 2)
	tr.MaxSkippedKeys = 3
	mustGet(t, tr, 1, keyschedule.Handshake, 2, keys[2], nonces[2]) // keeps 0, 1
	mustGet(t, tr, 1, keyschedule.Handshake, 30, keys[30], nonces[30])
	for _, g := range []uint32{0, 1, 25, 26} {
		_, _, err = tr.Get(1, keyschedule.Handshake, g)
		wantErr(t, err, keyschedule.ErrGenerationExpired)
	}
	for _, g := range []uint32{29, 27, 28} {
		mustGet(t, tr, 1, keyschedule.Handshake, g, keys[g], nonces[g])
	}
}

func TestSecretTreeLeafRange(t *testing.T) {
	s := testSuite(t)
	tr := keyschedule.NewSecretTree(s, testSecret, 5)
	for _, leaf := range []treemath.LeafIndex{5, 6, 7, 8, 1 << 20, 0xffffffff} {
		_, _, err := tr.Get(leaf, keyschedule.Application, 0)
		wantErr(t, err, keyschedule.ErrLeafOutOfRange)
		_, _, _, err = tr.Next(leaf, keyschedule.Handshake)
		wantErr(t, err, keyschedule.ErrLeafOutOfRange)
		_, _, err = tr.Peek(leaf, keyschedule.Handshake, 0)
		wantErr(t, err, keyschedule.ErrLeafOutOfRange)
	}
	_, _, err := tr.Get(0, keyschedule.RatchetType(2), 0)
	wantErr(t, err, keyschedule.ErrInvalidRatchetType)
	if tr.Leaves() != 5 {
		t.Fatalf("Leaves() = %d", tr.Leaves())
	}
	// Every in-range leaf of a non-power-of-two tree works.
	for leaf := treemath.LeafIndex(0); leaf < 5; leaf++ {
		if _, _, err := tr.Get(leaf, keyschedule.Application, 0); err != nil {
			t.Fatal(err)
		}
	}

	for _, bad := range []*keyschedule.SecretTree{
		keyschedule.NewSecretTree(s, testSecret, 0),
		keyschedule.NewSecretTree(s, nil, 4),
		keyschedule.NewSecretTree(nil, testSecret, 4),
	} {
		_, _, err := bad.Get(0, keyschedule.Application, 0)
		if err == nil {
			t.Fatal("Get on an unusable tree succeeded")
		}
		if _, _, _, err := bad.Next(0, keyschedule.Application); err == nil {
			t.Fatal("Next on an unusable tree succeeded")
		}
	}
}

func TestSecretTreeNextAfterGet(t *testing.T) {
	s := testSuite(t)
	keys, nonces := reference(t, s, 4, 3, keyschedule.Application, 10)
	tr := keyschedule.NewSecretTree(s, testSecret, 4)
	mustGet(t, tr, 3, keyschedule.Application, 3, keys[3], nonces[3])
	// Next continues after the highest generation handed out.
	g, k, n, err := tr.Next(3, keyschedule.Application)
	if err != nil || g != 4 || !bytes.Equal(k, keys[4]) || !bytes.Equal(n, nonces[4]) {
		t.Fatalf("Next = %d, %v", g, err)
	}
	// Skipped generations are still available to Get.
	mustGet(t, tr, 3, keyschedule.Application, 1, keys[1], nonces[1])
	// Get ahead of Next, then Next skips over it.
	mustGet(t, tr, 3, keyschedule.Application, 6, keys[6], nonces[6])
	g, _, _, err = tr.Next(3, keyschedule.Application)
	if err != nil || g != 7 {
		t.Fatalf("Next = %d, %v; want 7", g, err)
	}
	_, _, err = tr.Get(3, keyschedule.Application, 4)
	wantErr(t, err, keyschedule.ErrKeyConsumed)
	mustGet(t, tr, 3, keyschedule.Application, 5, keys[5], nonces[5])
	// The handshake ratchet of the same leaf is independent.
	g, _, _, err = tr.Next(3, keyschedule.Handshake)
	if err != nil || g != 0 {
		t.Fatalf("handshake Next = %d, %v; want 0", g, err)
	}
}

func TestSecretTreePeekConsume(t *testing.T) {
	s := testSuite(t)
	keys, nonces := reference(t, s, 2, 0, keyschedule.Application, 6)
	tr := keyschedule.NewSecretTree(s, testSecret, 2)
	for i := 0; i < 2; i++ {
		k, n, err := tr.Peek(0, keyschedule.Application, 3)
		if err != nil || !bytes.Equal(k, keys[3]) || !bytes.Equal(n, nonces[3]) {
			t.Fatalf("Peek #%d: %v", i, err)
		}
		k[0] ^= 1 // the caller's copy; must not affect the stored key
	}
	if err := tr.Consume(0, keyschedule.Application, 3); err != nil {
		t.Fatal(err)
	}
	wantErr(t, tr.Consume(0, keyschedule.Application, 3), keyschedule.ErrKeyConsumed)
	_, _, err := tr.Get(0, keyschedule.Application, 3)
	wantErr(t, err, keyschedule.ErrKeyConsumed)
	_, _, err = tr.Peek(0, keyschedule.Application, 3)
	wantErr(t, err, keyschedule.ErrKeyConsumed)
	wantErr(t, tr.Consume(0, keyschedule.Application, 4), keyschedule.ErrInvalidInput)
	// Peeked but never consumed keys remain retrievable with Get.
	if _, _, err := tr.Peek(0, keyschedule.Application, 5); err != nil {
		t.Fatal(err)
	}
	mustGet(t, tr, 0, keyschedule.Application, 5, keys[5], nonces[5])
	mustGet(t, tr, 0, keyschedule.Application, 2, keys[2], nonces[2])
	// Peek of a generation already stored does not move the ratchet.
	if _, _, err := tr.Peek(0, keyschedule.Application, 1); err != nil {
		t.Fatal(err)
	}
	g, _, _, err := tr.Next(0, keyschedule.Application)
	if err != nil || g != 6 {
		t.Fatalf("Next = %d, %v; want 6", g, err)
	}
	// Peek with no retention still works for the target generation.
	tr = keyschedule.NewSecretTree(s, testSecret, 2)
	tr.MaxSkippedKeys = 0
	if _, _, err := tr.Peek(0, keyschedule.Application, 2); err != nil {
		t.Fatal(err)
	}
	mustGet(t, tr, 0, keyschedule.Application, 2, keys[2], nonces[2])
}

func TestSecretTreeErase(t *testing.T) {
	s := testSuite(t)
	tr := keyschedule.NewSecretTree(s, testSecret, 8)
	if _, _, err := tr.Get(2, keyschedule.Application, 4); err != nil {
		t.Fatal(err)
	}
	tr.Erase()
	if _, _, err := tr.Get(2, keyschedule.Application, 1); err == nil {
		t.Fatal("Get after Erase succeeded")
	}
	if _, _, _, err := tr.Next(5, keyschedule.Application); err == nil {
		t.Fatal("Next after Erase succeeded")
	}
}

func TestSecretTreeDoesNotAliasSecret(t *testing.T) {
	s := testSuite(t)
	secret := append([]byte(nil), testSecret...)
	tr := keyschedule.NewSecretTree(s, secret, 2)
	_, k1, _, err := tr.Next(0, keyschedule.Handshake)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(secret, testSecret) {
		t.Fatal("NewSecretTree modified the caller's encryption secret")
	}
	secret[0] ^= 0xff // must not affect the tree
	keys, _ := reference(t, s, 2, 1, keyschedule.Handshake, 1)
	_, k2, _, err := tr.Next(1, keyschedule.Handshake)
	if err != nil || !bytes.Equal(k2, keys[0]) || bytes.Equal(k1, k2) {
		t.Fatalf("tree depends on the caller's slice: %v", err)
	}
}
