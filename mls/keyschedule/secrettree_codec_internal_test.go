package keyschedule

import (
	"bytes"
	"testing"

	"github.com/openmimi/mimi/mls/treemath"
)

// refNode derives the secret of node x of an n-leaf tree from the root,
// independently of SecretTree (RFC 9420, Section 9).
func refNode(t *testing.T, tr *SecretTree, root []byte, x treemath.NodeIndex) []byte {
	t.Helper()
	s, nh := tr.suite, tr.suite.HashSize()
	sec := root
	for cur := treemath.Root(tr.nLeaves); cur != x; {
		ctx, next := contextRight, treemath.Right(cur)
		if x < cur {
			ctx, next = contextLeft, treemath.Left(cur)
		}
		var err error
		if sec, err = s.ExpandWithLabel(sec, labelTree, ctx, nh); err != nil {
			t.Fatal(err)
		}
		cur = next
	}
	return sec
}

// refRatchet derives ratchet_secret_[leaf]_[gen] and the key and nonce of
// that generation (RFC 9420, Section 9.1).
func refRatchet(t *testing.T, tr *SecretTree, root []byte, leaf treemath.LeafIndex, typ RatchetType, gen uint32) (secret, key, nonce []byte) {
	t.Helper()
	s, nh := tr.suite, tr.suite.HashSize()
	ls := refNode(t, tr, root, leaf.Node())
	secret, err := s.ExpandWithLabel(ls, typ.String(), nil, nh)
	if err != nil {
		t.Fatal(err)
	}
	for g := uint32(0); g < gen; g++ {
		if secret, err = s.DeriveTreeSecret(secret, labelSecret, g, nh); err != nil {
			t.Fatal(err)
		}
	}
	key, _ = s.DeriveTreeSecret(secret, labelKey, gen, s.AEADKeySize())
	nonce, _ = s.DeriveTreeSecret(secret, labelNonce, gen, s.AEADNonceSize())
	return secret, key, nonce
}

// TestSecretTreeMarshalForgets checks the deletion schedule at rest (RFC
// 9420, Section 9.2): the encoding holds the frontier node secrets, the
// current ratchet secrets and the retained skipped keys, and none of the
// encryption_secret, expanded node secrets, superseded ratchet secrets, or
// consumed keys and nonces.
func TestSecretTreeMarshalForgets(t *testing.T) {
	s := internalSuite(t)
	root := bytes.Repeat([]byte{0x5a}, 32)
	tr := NewSecretTree(s, root, 8)
	for range 3 { // leaf 2 application: generations 0..2 sent
		if _, _, _, err := tr.Next(2, Application); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []uint32{4, 1} { // leaf 5 handshake: 0..3 skipped, then 1 consumed
		if _, _, err := tr.Get(5, Handshake, g); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := tr.Peek(5, Handshake, 6); err != nil { // 5 skipped, 6 peeked...
		t.Fatal(err)
	}
	if err := tr.Consume(5, Handshake, 6); err != nil { // ...and consumed
		t.Fatal(err)
	}
	if _, _, err := tr.Peek(5, Handshake, 2); err != nil { // peeked, not consumed
		t.Fatal(err)
	}
	enc, err := tr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	present := func(what string, b []byte, want bool) {
		t.Helper()
		if bytes.Contains(enc, b) != want {
			t.Errorf("%s: present = %v, want %v", what, !want, want)
		}
	}
	present("encryption_secret", root, false)
	// Paths 7-3-5-4 (leaf 2) and 7-11-9-10 (leaf 5) were expanded; their
	// siblings 1, 6, 13 and 8 are the frontier.
	for _, x := range []treemath.NodeIndex{7, 3, 5, 4, 11, 9, 10} {
		present("expanded node secret", refNode(t, tr, root, x), false)
	}
	for _, x := range []treemath.NodeIndex{1, 6, 13, 8} {
		present("frontier node secret", refNode(t, tr, root, x), true)
	}
	for g := uint32(0); g <= 3; g++ {
		sec, key, nonce := refRatchet(t, tr, root, 2, Application, g)
		present("leaf 2 ratchet secret", sec, g == 3)
		if g < 3 {
			present("sent key", key, false)
			present("sent nonce", nonce, false)
		}
	}
	sec, _, _ := refRatchet(t, tr, root, 2, Handshake, 0)
	present("unused handshake ratchet secret", sec, true)
	for g := uint32(0); g <= 7; g++ {
		sec, key, nonce := refRatchet(t, tr, root, 5, Handshake, g)
		present("leaf 5 ratchet secret", sec, g == 7)
		kept := g == 0 || g == 2 || g == 3 || g == 5
		if g < 7 {
			present("leaf 5 key", key, kept)
			present("leaf 5 nonce", nonce, kept)
		}
	}
}
