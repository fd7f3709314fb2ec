package publicgroup_test

import (
	"bytes"
	"github.com/openmimi/mimi/internal/mlstest"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/wire"
)

// FuzzHandleCommit feeds arbitrary PublicMessage bytes to HandleCommit on a
// fixed view: it must never panic, never change the view (HandleCommit
// only returns a pending result), and an accepted result must lead to a
// view that serializes and round-trips.
func FuzzHandleCommit(f *testing.F) {
	fx := newFixture(f, 4)
	ref, err := fx.v.HandleProposal(fx.hubProposal(f, &wire.Remove{Removed: 3}))
	if err != nil {
		f.Fatal(err)
	}
	kp := newClient(f, fx.s, 90).KeyPackage(f, fx.s, mlstest.Caps())
	seeds := []*wire.PublicMessage{
		fx.makeCommit(f, 0, nil, commitOpts{}),
		fx.makeCommit(f, 1, []wire.ProposalOrRef{byRef(ref)}, commitOpts{}),
		fx.makeCommit(f, 2, []wire.ProposalOrRef{byValue(&wire.Add{KeyPackage: *kp})}, commitOpts{noPath: true}),
		fx.makeCommit(f, 0, []wire.ProposalOrRef{byValue(&wire.ExternalInit{KEMOutput: []byte("k")})}, commitOpts{external: newClient(f, fx.s, 91)}),
		fx.memberProposal(f, 1, &wire.Remove{Removed: 2}),
	}
	for i, m := range seeds[:4] {
		if _, err := fx.v.HandleCommit(m); err != nil {
			f.Fatalf("seed %d rejected: %v", i, err)
		}
	}
	for _, m := range seeds {
		b, err := codec.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	v := fx.v
	before := viewBytes(f, v)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.UnmarshalPublicMessage(b)
		if err != nil {
			return
		}
		r, err := v.HandleCommit(m)
		if !bytes.Equal(before, viewBytes(t, v)) {
			t.Fatalf("HandleCommit changed the view (err %v)", err)
		}
		if err != nil {
			if r != nil {
				t.Fatalf("result with error %v", err)
			}
			return
		}
		n := r.View()
		nb := viewBytes(t, n)
		u, err := publicgroup.Unmarshal(nb)
		if err != nil {
			t.Fatalf("Unmarshal of the new view: %v", err)
		}
		if !bytes.Equal(nb, viewBytes(t, u)) {
			t.Fatalf("new view does not round-trip")
		}
	})
}

// FuzzUnmarshal: a stored public group view (the hub's persisted state,
// possibly corrupt) is decoded and checked without panicking, and what is
// accepted re-encodes to exactly the input. Seeds are views of the test
// fixture, with and without pending proposals, and views over the first
// trees of tree-validation.json (official vectors), each with
// truncations.
func FuzzUnmarshal(f *testing.F) {
	add := func(b []byte) {
		f.Add(b)
		f.Add(b[:len(b)-1])
		f.Add(b[:len(b)/2])
	}
	fx := newFixture(f, 3)
	add(viewBytes(f, fx.v))
	if _, err := fx.v.HandleProposal(fx.hubProposal(f, &wire.Remove{Removed: 2})); err != nil {
		f.Fatal(err)
	}
	if _, err := fx.v.HandleProposal(fx.memberProposal(f, 1, &wire.SelfRemove{})); err != nil {
		f.Fatal(err)
	}
	add(viewBytes(f, fx.v))
	var vs []struct {
		CipherSuite cipher.SuiteID `json:"cipher_suite"`
		Tree        vectors.Hex    `json:"tree"`
		GroupID     vectors.Hex    `json:"group_id"`
	}
	vectors.Load(f, "tree-validation.json", &vs)
	for _, v := range vs[:2] {
		s, err := cipher.Lookup(v.CipherSuite)
		if err != nil {
			f.Fatal(err)
		}
		rt, err := wire.UnmarshalRatchetTree(v.Tree)
		if err != nil {
			f.Fatal(err)
		}
		t, err := tree.FromRatchetTree(s, rt)
		if err != nil {
			f.Fatal(err)
		}
		th, err := t.TreeHash()
		if err != nil {
			f.Fatal(err)
		}
		ctx := &wire.GroupContext{Version: wire.MLS10, CipherSuite: s.ID(), GroupID: v.GroupID, Epoch: 1,
			TreeHash: th, ConfirmedTranscriptHash: seed("cth", 1)[:s.HashSize()]}
		pv, err := publicgroup.NewFromState(s, ctx, rt, seed("tag", 1)[:s.HashSize()])
		if err != nil {
			f.Fatal(err)
		}
		add(viewBytes(f, pv))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := publicgroup.Unmarshal(b)
		if err != nil {
			return
		}
		if out := viewBytes(t, v); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}
