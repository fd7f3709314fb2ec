package mls_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

// newSigner returns a signer with a basic credential named name.
func newSigner(t testing.TB, suite cipher.SuiteID, name string) mls.Signer {
	t.Helper()
	s, err := cipher.Lookup(suite)
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	return mls.Signer{Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte(name)}, SignaturePriv: priv}
}

// newKP returns a fresh KeyPackageBundle for signer.
func newKP(t testing.TB, suite cipher.SuiteID, signer mls.Signer) *mls.KeyPackageBundle {
	t.Helper()
	kp, err := mls.NewKeyPackage(suite, signer.Credential, signer.SignaturePriv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// roundTrip encodes and decodes msg, as the network would.
func roundTrip(t testing.TB, msg *wire.MLSMessage) *wire.MLSMessage {
	t.Helper()
	b, err := msg.MarshalBinary()
	if err != nil {
		t.Fatalf("encoding message: %v", err)
	}
	m, err := wire.UnmarshalMLSMessage(b)
	if err != nil {
		t.Fatalf("decoding message: %v", err)
	}
	return m
}

// state returns g's serialized state.
func state(t testing.TB, g *mls.Group) []byte {
	t.Helper()
	b, err := g.MarshalState()
	if err != nil {
		t.Fatalf("MarshalState: %v", err)
	}
	return b
}

// testGroup is a small group of members driven directly by a test.
type testGroup struct {
	t       testing.TB
	suite   cipher.SuiteID
	members []*mls.Group // index = creation order, nil when gone
	signers []mls.Signer
}

// newTestGroup creates a group of n members, all added by member 0 in one
// commit.
func newTestGroup(t testing.TB, suite cipher.SuiteID, n int, exts ...wire.Extension) *testGroup {
	t.Helper()
	tg := &testGroup{t: t, suite: suite}
	creator := newSigner(t, suite, "m0")
	gid := []byte(fmt.Sprintf("test group %s", t.Name()))
	g, err := mls.CreateGroup(suite, gid, creator, &mls.CreateOptions{Extensions: exts})
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	tg.members = append(tg.members, g)
	tg.signers = append(tg.signers, creator)
	if n > 1 {
		tg.add(0, n-1)
	}
	return tg
}

// add has member by commit Adds for k new members (by value) and welcomes
// them; it returns their indices.
func (tg *testGroup) add(by, k int) []int {
	t := tg.t
	t.Helper()
	var props []*wire.Proposal
	var kps []*mls.KeyPackageBundle
	for i := 0; i < k; i++ {
		name := fmt.Sprintf("m%d", len(tg.signers))
		s := newSigner(t, tg.suite, name)
		kp := newKP(t, tg.suite, s)
		kps = append(kps, kp)
		props = append(props, &wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp.KeyPackage}})
		tg.signers = append(tg.signers, s)
	}
	pc, err := tg.members[by].Commit(&mls.CommitOptions{Proposals: props, WelcomeRatchetTree: true})
	if err != nil {
		t.Fatalf("commit adds: %v", err)
	}
	tg.deliver(by, pc.Message)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	var idx []int
	for _, kp := range kps {
		g, err := mls.JoinFromWelcome(roundTrip(t, pc.Welcome), kp, nil)
		if err != nil {
			t.Fatalf("join: %v", err)
		}
		idx = append(idx, len(tg.members))
		tg.members = append(tg.members, g)
	}
	tg.check()
	return idx
}

// deliver processes msg at every member except from.
func (tg *testGroup) deliver(from int, msg *wire.MLSMessage) {
	tg.t.Helper()
	for i, g := range tg.members {
		if g == nil || i == from {
			continue
		}
		res, err := g.Process(roundTrip(tg.t, msg))
		if err != nil {
			tg.t.Fatalf("member %d processing: %v", i, err)
		}
		if res.Commit != nil && res.Commit.SelfRemoved {
			tg.members[i] = nil
		}
	}
}

// check verifies that all members share the epoch authenticator.
func (tg *testGroup) check() {
	tg.t.Helper()
	var want []byte
	var epoch uint64
	for i, g := range tg.members {
		if g == nil {
			continue
		}
		if want == nil {
			want, epoch = g.EpochAuthenticator(), g.Epoch()
			continue
		}
		if got := g.EpochAuthenticator(); !bytes.Equal(got, want) || g.Epoch() != epoch {
			tg.t.Fatalf("member %d: epoch %d authenticator %x, want epoch %d %x", i, g.Epoch(), got, epoch, want)
		}
	}
}
