package publicgroup_test

import (
	"bytes"
	"github.com/openmimi/mimi/internal/mlstest"
	"testing"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/publicgroup"
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
