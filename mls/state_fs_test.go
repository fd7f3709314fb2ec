package mls

import (
	"bytes"
	"errors"
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// captureEncryptionSecrets records the distinct encryption_secrets of the
// epochs created while the test runs, in order (tests of this package do
// not run in parallel).
func captureEncryptionSecrets(t *testing.T) *[][]byte {
	var got [][]byte
	newEpochKeysHook = func(s []byte) {
		for _, g := range got {
			if bytes.Equal(g, s) {
				return
			}
		}
		got = append(got, bytes.Clone(s))
	}
	t.Cleanup(func() { newEpochKeysHook = nil })
	return &got
}

// refKey derives the key and nonce of a generation of a sender's ratchet
// from an epoch's encryption_secret with the RFC 9420 key schedule, on a
// tree of its own.
func refKey(t *testing.T, encSecret []byte, nLeaves uint32, leaf treemath.LeafIndex, typ keyschedule.RatchetType, gen uint32) [2][]byte {
	t.Helper()
	s, err := cipher.Lookup(testSuite)
	if err != nil {
		t.Fatal(err)
	}
	tr := keyschedule.NewSecretTree(s, encSecret, nLeaves)
	tr.MaxForwardDistance = gen
	k, n, err := tr.Get(leaf, typ, gen)
	if err != nil {
		t.Fatal(err)
	}
	return [2][]byte{k, n}
}

func mustProtect(t *testing.T, g *Group, text string) *wire.MLSMessage {
	t.Helper()
	m, err := g.ProtectApplication([]byte(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustReceive(t *testing.T, g *Group, m *wire.MLSMessage, want string) {
	t.Helper()
	p, err := g.Process(m)
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	if want != "" && string(p.ApplicationData) != want {
		t.Fatalf("got %q, want %q", p.ApplicationData, want)
	}
}

// TestStateForwardSecrecy checks that persisted state follows the deletion
// schedule of RFC 9420, Section 9.2: after a member received and sent
// messages, MarshalState holds neither the used epochs' encryption_secret
// nor any key or nonce consumed by an accepted message, but still the keys
// of skipped generations; a group restored from it decrypts held
// (out-of-order) and later messages of the current and a past epoch and
// refuses replays.
func TestStateForwardSecrecy(t *testing.T) {
	secrets := captureEncryptionSecrets(t)
	gs := iGroup(t, 3, Config{})
	a, b, c := gs[0], gs[1], gs[2]

	// Epoch 1: a sends generations 0..4; b receives 1, 3, 4 and holds 0
	// and 2; b sends one message (its generation 0); c commits privately
	// (c's handshake generation 0).
	var e1 []*wire.MLSMessage
	for _, txt := range []string{"a0", "a1", "a2", "a3", "a4"} {
		e1 = append(e1, mustProtect(t, a, txt))
	}
	for _, i := range []int{1, 3, 4} {
		mustReceive(t, b, e1[i], "")
	}
	bm := mustProtect(t, b, "b0")
	mustReceive(t, a, bm, "b0")
	mustReceive(t, c, bm, "b0")
	pc, err := c.Commit(&CommitOptions{Send: SendOptions{Private: true}})
	if err != nil {
		t.Fatal(err)
	}
	mustReceive(t, a, pc.Message, "")
	mustReceive(t, b, pc.Message, "")
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	// Epoch 2: a sends 0..2; b receives 1.
	var e2 []*wire.MLSMessage
	for _, txt := range []string{"n0", "n1", "n2"} {
		e2 = append(e2, mustProtect(t, a, txt))
	}
	mustReceive(t, b, e2[1], "n1")

	if len(*secrets) != 3 {
		t.Fatalf("captured %d encryption secrets, want 3 (epochs 0, 1, 2)", len(*secrets))
	}
	es1, es2 := (*secrets)[1], (*secrets)[2]
	st := mustState(t, b)
	present := func(what string, v []byte, want bool) {
		t.Helper()
		if bytes.Contains(st, v) != want {
			t.Errorf("%s: in state = %v, want %v", what, !want, want)
		}
	}
	present("epoch 1 encryption_secret", es1, false)
	present("epoch 2 encryption_secret", es2, false)
	for gen, consumed := range []bool{false, true, false, true, true} {
		kn := refKey(t, es1, 3, 0, keyschedule.Application, uint32(gen))
		present("epoch 1 key of a", kn[0], !consumed)
		present("epoch 1 nonce of a", kn[1], !consumed)
	}
	for _, kn := range [][2][]byte{
		refKey(t, es1, 3, 1, keyschedule.Application, 0), // b's own message
		refKey(t, es1, 3, 2, keyschedule.Handshake, 0),   // c's commit
		refKey(t, es2, 3, 0, keyschedule.Application, 1), // n1
	} {
		present("consumed key", kn[0], false)
		present("consumed nonce", kn[1], false)
	}
	kn := refKey(t, es2, 3, 0, keyschedule.Application, 0)
	present("skipped epoch 2 key", kn[0], true)

	// Restore: the state round trips, the held messages of both epochs and
	// a later one decrypt, replays are refused.
	rb, err := UnmarshalState(st, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustState(t, rb), st) {
		t.Fatal("state round trip is not byte-identical")
	}
	mustReceive(t, rb, e1[2], "a2")
	mustReceive(t, rb, e2[2], "n2")
	mustReceive(t, rb, e2[0], "n0")
	mustReceive(t, rb, e1[0], "a0")
	mustReceive(t, rb, mustProtect(t, a, "n3"), "n3")
	for _, m := range []*wire.MLSMessage{e1[1], e1[2], e2[1], e2[0]} {
		if _, err := rb.Process(m); !errors.Is(err, keyschedule.ErrKeyConsumed) {
			t.Fatalf("replay after restore: %v, want ErrKeyConsumed", err)
		}
	}
	st2 := mustState(t, rb)
	for _, gen := range []uint32{0, 2} {
		kn := refKey(t, es1, 3, 0, keyschedule.Application, gen)
		if bytes.Contains(st2, kn[0]) || bytes.Contains(st2, kn[1]) {
			t.Errorf("epoch 1 generation %d consumed after restore but still persisted", gen)
		}
	}

	// A state of the previous format version is refused cleanly.
	old := bytes.Clone(st)
	old[0] = 1
	if _, err := UnmarshalState(old, Config{}); !errors.Is(err, ErrStateCorrupt) {
		t.Fatalf("version 1 state: %v, want ErrStateCorrupt", err)
	}
}

// TestStateRejectedThenAccepted: a PrivateMessage that decrypts but is
// rejected consumes its key in memory only; MarshalState is unchanged by
// it, and the persisted tree, now behind the live one, still follows the
// accepted messages after a restore.
func TestStateRejectedThenAccepted(t *testing.T) {
	gs := iGroup(t, 3, Config{})
	a, b := gs[0], gs[1]
	before := mustState(t, b)
	kp := newKPFor(t, "dup")
	bad := forge(t, a, []*wire.Proposal{addProposal(kp.KeyPackage), addProposal(kp.KeyPackage)}, nil,
		&CommitOptions{Send: SendOptions{Private: true}}).Message
	if _, err := b.Process(bad); !errors.Is(err, commit.ErrDuplicateAdd) {
		t.Fatalf("forged commit: %v", err)
	}
	if !bytes.Equal(mustState(t, b), before) {
		t.Fatal("rejected message changed the state")
	}
	// a's next handshake message (generation 1) and application messages.
	sp, err := a.ProposeGroupContextExtensions(nil, &SendOptions{Private: true})
	if err != nil {
		t.Fatal(err)
	}
	mustReceive(t, b, sp.Message, "")
	a.SetConfig(Config{AllowAppDataWithPendingProposals: true})
	m0, m1 := mustProtect(t, a, "m0"), mustProtect(t, a, "m1")
	mustReceive(t, b, m1, "m1")
	rb, err := UnmarshalState(mustState(t, b), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Process(sp.Message); !errors.Is(err, keyschedule.ErrKeyConsumed) {
		t.Fatalf("replayed proposal after restore: %v", err)
	}
	mustReceive(t, rb, m0, "m0")
	pc, err := gs[2].Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	mustReceive(t, rb, pc.Message, "")
}
