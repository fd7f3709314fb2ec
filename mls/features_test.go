package mls_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

const suite1 = cipher.X25519_AES128GCM_SHA256_Ed25519

func mustProcess(t *testing.T, g *mls.Group, m *wire.MLSMessage) *mls.Processed {
	t.Helper()
	p, err := g.Process(roundTrip(t, m))
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	return p
}

func protect(t *testing.T, g *mls.Group, text string) *wire.MLSMessage {
	t.Helper()
	m, err := g.ProtectApplication([]byte(text), nil)
	if err != nil {
		t.Fatalf("protect: %v", err)
	}
	return m
}

// TestApplicationOutOfOrder: messages of one epoch decrypt in any order
// (RFC 9420, Section 9.2), each exactly once.
func TestApplicationOutOfOrder(t *testing.T) {
	tg := newTestGroup(t, suite1, 3)
	a, b := tg.members[0], tg.members[1]
	var msgs []*wire.MLSMessage
	for i := 0; i < 6; i++ {
		msgs = append(msgs, protect(t, a, string(rune('a'+i))))
	}
	for _, i := range []int{5, 0, 3, 1, 4, 2} {
		p := mustProcess(t, b, msgs[i])
		if string(p.ApplicationData) != string(rune('a'+i)) {
			t.Fatalf("message %d decrypted to %q", i, p.ApplicationData)
		}
	}
	if _, err := b.Process(msgs[3]); !errors.Is(err, keyschedule.ErrKeyConsumed) {
		t.Fatalf("replayed message: %v, want ErrKeyConsumed", err)
	}
	// Our own message coming back is refused before it can touch our
	// sending ratchet.
	before := state(t, a)
	if _, err := a.Process(msgs[0]); !errors.Is(err, mls.ErrUnknownSender) {
		t.Fatalf("own message: %v", err)
	}
	if !bytes.Equal(before, state(t, a)) {
		t.Fatal("state changed")
	}
	if p := mustProcess(t, b, protect(t, a, "after")); string(p.ApplicationData) != "after" {
		t.Fatal("wrong plaintext")
	}
}

// TestPastEpochs: late application messages of kept epochs decrypt;
// older ones fail with ErrWrongEpoch (RFC 9420, Section 15.3).
func TestPastEpochs(t *testing.T) {
	tg := newTestGroup(t, suite1, 3)
	a, b, c := tg.members[0], tg.members[1], tg.members[2]
	b.SetConfig(mls.Config{PastEpochs: 1})
	old2 := protect(t, a, "two epochs ago")
	commitAll := func(by int) {
		pc, err := tg.members[by].Commit(nil)
		if err != nil {
			t.Fatal(err)
		}
		tg.deliver(by, pc.Message)
		if err := pc.Merge(); err != nil {
			t.Fatal(err)
		}
	}
	commitAll(2)
	old1 := protect(t, a, "one epoch ago")
	commitAll(2)
	if p := mustProcess(t, b, old1); string(p.ApplicationData) != "one epoch ago" {
		t.Fatal("wrong plaintext")
	}
	if _, err := b.Process(old2); !errors.Is(err, mls.ErrWrongEpoch) {
		t.Fatalf("message of a dropped epoch: %v", err)
	}
	// c keeps the default (2 past epochs).
	mustProcess(t, c, old2)
}

// TestPastEpochTime: with Config.PastEpochTime, past epochs beyond
// PastEpochs are kept until that long after the group left them, at most
// MaxPastEpochs, through a state round trip; then they are deleted.
func TestPastEpochTime(t *testing.T) {
	tg := newTestGroup(t, suite1, 3)
	a, b := tg.members[0], tg.members[1]
	now := time.Unix(1_800_000_000, 0)
	cfg := mls.Config{Clock: func() time.Time { return now }, PastEpochs: 1, PastEpochTime: time.Minute, MaxPastEpochs: 6}
	b.SetConfig(cfg)
	// Two messages in each of eight epochs, one second apart.
	type pair struct{ first, second *wire.MLSMessage }
	var late []pair
	for range 8 {
		e := a.Epoch()
		late = append(late, pair{protect(t, a, fmt.Sprint(e)), protect(t, a, fmt.Sprint(e))})
		pc, err := tg.members[2].Commit(nil)
		if err != nil {
			t.Fatal(err)
		}
		tg.deliver(2, pc.Message)
		if err := pc.Merge(); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
	}
	process := func(g *mls.Group, m *wire.MLSMessage, kept bool) {
		t.Helper()
		p, err := g.Process(roundTrip(t, m))
		switch {
		case !kept && !errors.Is(err, mls.ErrWrongEpoch):
			t.Fatalf("message of epoch %d: %v, want ErrWrongEpoch", m.PrivateMessage.Epoch, err)
		case kept && err != nil:
			t.Fatalf("message of epoch %d: %v", m.PrivateMessage.Epoch, err)
		case kept && string(p.ApplicationData) != fmt.Sprint(m.PrivateMessage.Epoch):
			t.Fatalf("wrong plaintext %q", p.ApplicationData)
		}
	}
	// A restored copy keeps when each epoch ended.
	rb, err := mls.UnmarshalState(state(t, b), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*mls.Group{b, rb} {
		for i, l := range late {
			process(g, l.first, i >= 2) // MaxPastEpochs: the newest six
		}
	}
	// A minute after the group left them, all but the newest past epoch
	// (PastEpochs) are gone, from memory and from the saved state.
	now = now.Add(time.Minute)
	process(b, late[6].second, false)
	process(b, late[7].second, true)
	rb2, err := mls.UnmarshalState(state(t, rb), cfg)
	if err != nil {
		t.Fatal(err)
	}
	process(rb2, late[5].second, false)
	process(rb2, late[7].second, true)
}

// TestStateVersion2: states of format version 2 (before past epochs
// recorded when they ended) are still read.
func TestStateVersion2(t *testing.T) {
	tg := newTestGroup(t, suite1, 2)
	a := tg.members[0]
	a.SetConfig(mls.Config{PastEpochs: -1})
	pc, err := a.Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	st := state(t, a) // no past epochs: version 2 differs in its first byte only
	v2 := append([]byte{2}, st[1:]...)
	g, err := mls.UnmarshalState(v2, mls.Config{})
	if err != nil {
		t.Fatalf("version 2: %v", err)
	}
	if !bytes.Equal(state(t, g), st) {
		t.Fatal("a version 2 state did not restore the same group")
	}
	if _, err := mls.UnmarshalState(append([]byte{1}, st[1:]...), mls.Config{}); !errors.Is(err, mls.ErrStateCorrupt) {
		t.Fatalf("version 1: %v", err)
	}
}

// TestStateRoundTrip: MarshalState is deterministic and complete: a
// restored group continues exactly like the original, with pending
// proposals, skipped message keys and past epochs.
func TestStateRoundTrip(t *testing.T) {
	tg := newTestGroup(t, suite1, 4)
	a, b := tg.members[0], tg.members[1]
	m0 := protect(t, a, "m0") // held for later: skipped generation
	m1 := protect(t, a, "m1")
	mustProcess(t, b, m1)
	late := protect(t, a, "late") // delivered after the commit
	sp, err := b.ProposeUpdate(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(1, sp.Message)
	pc, err := tg.members[2].Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Persist b with its own Update pending and the commit not yet seen.
	st := state(t, b)
	if st2 := state(t, b); !bytes.Equal(st, st2) {
		t.Fatal("MarshalState is not deterministic")
	}
	rb, err := mls.UnmarshalState(st, mls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if st3 := state(t, rb); !bytes.Equal(st, st3) {
		t.Fatal("round trip changed the state")
	}
	tg.members[1] = rb
	tg.deliver(2, pc.Message)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	tg.check()
	// The restored member decrypts the held and late messages of the past
	// epoch.
	for _, m := range []*wire.MLSMessage{m0, late} {
		mustProcess(t, rb, m)
	}
	if _, err := rb.Process(m1); !errors.Is(err, keyschedule.ErrKeyConsumed) {
		t.Fatalf("consumed key after restore: %v", err)
	}
	// And still works in the new epoch after another restore.
	rb2, err := mls.UnmarshalState(state(t, rb), mls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tg.members[1] = rb2
	pc, err = rb2.Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(1, pc.Message)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	tg.check()
	// Corrupt input is rejected.
	if _, err := mls.UnmarshalState(st[:len(st)-1], mls.Config{}); !errors.Is(err, mls.ErrStateCorrupt) {
		t.Fatalf("truncated state: %v", err)
	}
}

// TestConcurrentCommits: two members commit in the same epoch; the
// delivery service accepts one. The other discards its commit (MIMI's
// wrongEpoch) and processes the winner; a late Merge fails.
func TestConcurrentCommits(t *testing.T) {
	tg := newTestGroup(t, suite1, 3)
	a, b := tg.members[0], tg.members[1]
	pa, err := a.Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The hub accepted b's commit and echoes it back to b too.
	for i, g := range tg.members {
		res := mustProcess(t, g, pb.Message)
		if (i == 1) != res.Commit.OwnCommit {
			t.Fatalf("member %d: OwnCommit %v", i, res.Commit.OwnCommit)
		}
	}
	if err := pa.Merge(); !errors.Is(err, mls.ErrStaleCommit) {
		t.Fatalf("merge of the losing commit: %v", err)
	}
	pa.Discard()
	if err := pb.Merge(); !errors.Is(err, mls.ErrStaleCommit) {
		t.Fatalf("second merge: %v", err)
	}
	tg.check()
	// A commit of ours that we did not create is refused.
	if _, err := a.Process(pa.Message); !errors.Is(err, mls.ErrWrongEpoch) {
		t.Fatalf("stale own commit: %v", err)
	}
}

// TestExternalSenders: an external sender listed in external_senders
// (RFC 9420, Section 12.1.8) proposes a Remove that a member commits; an
// unlisted sender and a type it may not send are rejected without state
// change.
func TestExternalSenders(t *testing.T) {
	s, _ := cipher.Lookup(suite1)
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	ext, err := wire.NewExternalSendersExtension(wire.ExternalSenders{{SignatureKey: pub, Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte("hub")}}})
	if err != nil {
		t.Fatal(err)
	}
	tg := newTestGroup(t, suite1, 4, ext)
	gid, epoch := tg.members[0].GroupID(), tg.members[0].Epoch()
	rm := &wire.Proposal{Type: wire.ProposalRemove, Body: &wire.Remove{Removed: 3}}
	for _, bad := range []struct {
		index uint32
		p     *wire.Proposal
		want  error
	}{
		{5, rm, mls.ErrUnknownSender},
		{0, &wire.Proposal{Type: wire.ProposalSelfRemove, Body: &wire.SelfRemove{}}, commit.ErrSelfRemoveSender},
	} {
		m, err := mls.NewExternalProposal(suite1, gid, epoch, bad.index, priv, bad.p, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := state(t, tg.members[1])
		if _, err := tg.members[1].Process(roundTrip(t, m)); !errors.Is(err, bad.want) {
			t.Fatalf("external proposal from %d: %v, want %v", bad.index, err, bad.want)
		}
		if !bytes.Equal(before, state(t, tg.members[1])) {
			t.Fatal("state changed")
		}
	}
	m, err := mls.NewExternalProposal(suite1, gid, epoch, 0, priv, rm, []byte("policy"))
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(-1, m)
	pc, err := tg.members[1].Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(1, pc.Message)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	if tg.members[3] != nil {
		t.Fatal("member 3 was not removed")
	}
	tg.check()
}

// TestJoinProposal: a new member's own Add (new_member_proposal) is
// committed by reference.
func TestJoinProposal(t *testing.T) {
	tg := newTestGroup(t, suite1, 2)
	kp := newKP(t, suite1, newSigner(t, suite1, "joiner"))
	m, err := mls.NewJoinProposal(kp, tg.members[0].GroupID(), tg.members[0].Epoch(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(-1, m)
	pc, err := tg.members[0].Commit(&mls.CommitOptions{NoPath: true, WelcomeRatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(0, pc.Message)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	g, err := mls.JoinFromWelcome(roundTrip(t, pc.Welcome), kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.members = append(tg.members, g)
	tg.check()
}

// TestReInit: a committed ReInit ends the group (RFC 9420, Section 11.2);
// the new group, in another cipher suite, is joined with the reinit
// resumption PSK and checked against the old group.
func TestReInit(t *testing.T) {
	tg := newTestGroup(t, suite1, 3)
	const suite3 = cipher.X25519_CHACHA20POLY1305_SHA256_Ed25519
	ri := &wire.ReInit{GroupID: []byte("reinitialized"), Version: wire.MLS10, CipherSuite: suite3}
	sp, err := tg.members[1].ProposeReInit(ri, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(1, sp.Message)
	pc, err := tg.members[0].Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(0, pc.Message)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	tg.check()
	for _, g := range tg.members {
		if g.Active() || g.ReInit() == nil {
			t.Fatal("group still active after ReInit")
		}
	}
	if _, err := tg.members[0].ProtectApplication([]byte("x"), nil); !errors.Is(err, mls.ErrInactive) {
		t.Fatalf("send after ReInit: %v", err)
	}
	// Member 0 recreates the group with the others' new KeyPackages.
	var kps []*mls.KeyPackageBundle
	var wkps []*wire.KeyPackage
	for i := 1; i < 3; i++ {
		kp := newKP(t, suite3, newSigner(t, suite3, "new"+string(rune('0'+i))))
		kps, wkps = append(kps, kp), append(wkps, kp.KeyPackage)
	}
	ng, npc, err := tg.members[0].ReInitGroup(newSigner(t, suite3, "new0"), wkps, &mls.SuccessorOptions{WelcomeRatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := npc.Merge(); err != nil {
		t.Fatal(err)
	}
	if ng.Epoch() != 1 || !bytes.Equal(ng.GroupID(), ri.GroupID) || ng.CipherSuite() != suite3 {
		t.Fatal("new group parameters")
	}
	if _, err := mls.JoinFromWelcome(roundTrip(t, npc.Welcome), kps[0], nil); !errors.Is(err, mls.ErrMissingPSK) {
		t.Fatalf("join without the old group: %v", err)
	}
	members := []*mls.Group{ng}
	for i, kp := range kps {
		g, err := mls.JoinFromWelcome(roundTrip(t, npc.Welcome), kp, &mls.JoinOptions{PreviousGroup: tg.members[i+1],
			Config: mls.Config{SameClient: func(a, b *wire.LeafNode) bool { return true }}})
		if err != nil {
			t.Fatalf("join reinitialized group: %v", err)
		}
		members = append(members, g)
	}
	for _, g := range members[1:] {
		if !bytes.Equal(g.EpochAuthenticator(), ng.EpochAuthenticator()) {
			t.Fatal("epoch authenticators differ")
		}
	}
}

// TestBranch: a subgroup is created with a branch resumption PSK (RFC
// 9420, Section 11.3); a member of the branch that is not in the old group
// makes the Welcome invalid.
func TestBranch(t *testing.T) {
	tg := newTestGroup(t, suite1, 3)
	kp := newKP(t, suite1, tg.signers[1])
	outsider := newKP(t, suite1, newSigner(t, suite1, "outsider"))
	ng, pc, err := tg.members[0].Branch([]byte("branch"), tg.signers[0], []*wire.KeyPackage{kp.KeyPackage, outsider.KeyPackage}, &mls.SuccessorOptions{WelcomeRatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	if _, err := mls.JoinFromWelcome(roundTrip(t, pc.Welcome), kp, &mls.JoinOptions{PreviousGroup: tg.members[1]}); !errors.Is(err, mls.ErrWelcomeInvalid) {
		t.Fatalf("branch with an outsider: %v", err)
	}
	ng, pc, err = tg.members[0].Branch([]byte("branch2"), tg.signers[0], []*wire.KeyPackage{kp.KeyPackage}, &mls.SuccessorOptions{WelcomeRatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	g, err := mls.JoinFromWelcome(roundTrip(t, pc.Welcome), kp, &mls.JoinOptions{PreviousGroup: tg.members[1]})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), ng.EpochAuthenticator()) {
		t.Fatal("epoch authenticators differ")
	}
}

// TestWelcomeErrors: Welcome validation failures (RFC 9420, Section
// 12.4.3.1).
func TestWelcomeErrors(t *testing.T) {
	tg := newTestGroup(t, suite1, 2)
	kp := newKP(t, suite1, newSigner(t, suite1, "joiner"))
	pc, err := tg.members[0].Commit(&mls.CommitOptions{Proposals: []*wire.Proposal{{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp.KeyPackage}}}})
	if err != nil {
		t.Fatal(err)
	}
	stale := tg.members[0].RatchetTree()
	tg.deliver(0, pc.Message)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	other := newKP(t, suite1, newSigner(t, suite1, "other"))
	if _, err := mls.JoinFromWelcome(pc.Welcome, other, &mls.JoinOptions{RatchetTree: tg.members[0].RatchetTree()}); !errors.Is(err, framing.ErrNoMatchingSecrets) {
		t.Fatalf("wrong key package: %v", err)
	}
	if _, err := mls.JoinFromWelcome(pc.Welcome, kp, nil); !errors.Is(err, mls.ErrNoRatchetTree) {
		t.Fatalf("no tree: %v", err)
	}
	if _, err := mls.JoinFromWelcome(pc.Welcome, kp, &mls.JoinOptions{RatchetTree: stale}); !errors.Is(err, tree.ErrTreeHashMismatch) {
		t.Fatalf("stale tree: %v", err)
	}
	g, err := mls.JoinFromWelcome(pc.Welcome, kp, &mls.JoinOptions{RatchetTree: tg.members[0].RatchetTree()})
	if err != nil {
		t.Fatalf("tree out of band: %v", err)
	}
	tg.members = append(tg.members, g)
	tg.check()
}

// TestLeafLifetime: with a clock, an Add of an expired KeyPackage is
// refused (RFC 9420, Section 7.3).
func TestLeafLifetime(t *testing.T) {
	tg := newTestGroup(t, suite1, 2)
	future := time.Now().Add(365 * 24 * time.Hour)
	tg.members[0].SetConfig(mls.Config{Clock: func() time.Time { return future }})
	kp := newKP(t, suite1, newSigner(t, suite1, "joiner"))
	_, err := tg.members[0].Commit(&mls.CommitOptions{Proposals: []*wire.Proposal{{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp.KeyPackage}}}})
	if !errors.Is(err, tree.ErrLifetimeInvalid) {
		t.Fatalf("expired key package: %v", err)
	}
}

// TestRequiredCapabilities: a KeyPackage lacking a required capability
// cannot be added (RFC 9420, Section 11.1).
func TestRequiredCapabilities(t *testing.T) {
	rc, err := wire.NewRequiredCapabilitiesExtension(&wire.RequiredCapabilities{ProposalTypes: []wire.ProposalType{wire.ProposalAppSync}})
	if err != nil {
		t.Fatal(err)
	}
	tg := newTestGroup(t, suite1, 2, rc)
	s := newSigner(t, suite1, "old client")
	caps := mls.DefaultCapabilities(suite1, wire.CredentialBasic)
	caps.Proposals = nil
	kp, err := mls.NewKeyPackage(suite1, s.Credential, s.SignaturePriv, &mls.KeyPackageOptions{Leaf: mls.LeafOptions{Capabilities: &caps}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tg.members[0].Commit(&mls.CommitOptions{Proposals: []*wire.Proposal{{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp.KeyPackage}}}})
	if !errors.Is(err, tree.ErrMissingRequiredCapability) {
		t.Fatalf("add without required capability: %v", err)
	}
}

// TestPendingProposalsBlockApplication: RFC 9420, Section 12.4.
func TestPendingProposalsBlockApplication(t *testing.T) {
	tg := newTestGroup(t, suite1, 3)
	sp, err := tg.members[0].ProposeRemove(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(0, sp.Message)
	if _, err := tg.members[1].ProtectApplication([]byte("x"), nil); !errors.Is(err, mls.ErrPendingProposals) {
		t.Fatalf("send with pending proposals: %v", err)
	}
	if len(tg.members[1].PendingProposals()) != 1 {
		t.Fatal("proposal not cached")
	}
	pc, err := tg.members[1].Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(1, pc.Message)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	if len(tg.members[1].PendingProposals()) != 0 {
		t.Fatal("cache not cleared by the commit")
	}
	protect(t, tg.members[1], "now fine")
	tg.check()
}

// TestKeyPackageBundle: bundles survive MarshalBinary and are checked.
func TestKeyPackageBundle(t *testing.T) {
	for _, id := range []cipher.SuiteID{1, 2, 3, 4, 5, 6, 7} {
		kp := newKP(t, id, newSigner(t, id, "x"))
		b, err := kp.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		kp2, err := mls.UnmarshalKeyPackageBundle(b)
		if err != nil {
			t.Fatalf("suite %d: %v", id, err)
		}
		b2, _ := kp2.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatal("bundle round trip")
		}
		kp2.InitPriv = kp2.EncryptionPriv
		if err := kp2.Check(); !errors.Is(err, mls.ErrInvalidArgument) {
			t.Fatalf("mismatched init key: %v", err)
		}
	}
}

// TestAllSuites: create, add by Welcome, external join, update and send in
// every cipher suite.
func TestAllSuites(t *testing.T) {
	for _, id := range []cipher.SuiteID{1, 2, 3, 4, 5, 6, 7} {
		tg := newTestGroup(t, id, 3)
		gi, err := tg.members[0].GroupInfo(false)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := mls.JoinExternal(roundTrip(t, gi), newSigner(t, id, "ext"), &mls.ExternalJoinOptions{RatchetTree: tg.members[0].RatchetTree()})
		if err != nil {
			t.Fatalf("suite %d: external join: %v", id, err)
		}
		tg.deliver(-1, pc.Message)
		if err := pc.Merge(); err != nil {
			t.Fatal(err)
		}
		tg.members = append(tg.members, pc.Group())
		tg.check()
		sp, err := tg.members[3].ProposeUpdate(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		tg.deliver(3, sp.Message)
		c, err := tg.members[2].Commit(&mls.CommitOptions{Send: mls.SendOptions{Private: true}})
		if err != nil {
			t.Fatal(err)
		}
		tg.deliver(2, c.Message)
		if err := c.Merge(); err != nil {
			t.Fatal(err)
		}
		tg.check()
		m := protect(t, tg.members[3], "hello")
		for i := 0; i < 3; i++ {
			if p := mustProcess(t, tg.members[i], m); string(p.ApplicationData) != "hello" || p.Sender.Index != uint32(tg.members[3].LeafIndex()) {
				t.Fatalf("suite %d: bad application message", id)
			}
		}
	}
	_ = treemath.LeafIndex(0)
}

// TestGroupContextExtensions: a GroupContextExtensions proposal by
// reference changes every member's GroupContext (RFC 9420, Section
// 12.1.7).
func TestGroupContextExtensions(t *testing.T) {
	tg := newTestGroup(t, suite1, 3)
	ext, err := wire.NewExternalSendersExtension(wire.ExternalSenders{{SignatureKey: []byte("k"), Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte("hub")}}})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := tg.members[2].ProposeGroupContextExtensions([]wire.Extension{ext}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(2, sp.Message)
	pc, err := tg.members[0].Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	tg.deliver(0, pc.Message)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	tg.check()
	for _, g := range tg.members {
		if _, found, err := wire.ExternalSendersExtension(g.Extensions()); !found || err != nil {
			t.Fatal("extension not applied")
		}
	}
}
