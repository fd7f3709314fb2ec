package wire_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

func TestAppSyncAndSelfRemoveProposals(t *testing.T) {
	as := &wire.AppSync{AppSync: appsync.AppSync{ApplicationID: 7, Type: appsync.OrderedArray,
		ReplacedElements: []appsync.IndexedElement{}, RemovedIndices: []uint32{0}, InsertedElements: []appsync.IndexedElement{},
		AppendedEntries: [][]byte{[]byte("x")}}}
	c := &wire.Commit{Proposals: []wire.ProposalOrRef{
		{Type: wire.ProposalOrRefProposal, Proposal: &wire.Proposal{Body: as}},
		{Type: wire.ProposalOrRefProposal, Proposal: &wire.Proposal{Body: &wire.SelfRemove{}}},
	}}
	b, err := codec.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := wire.UnmarshalCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := got.Proposals[0].Proposal.Body.(*wire.AppSync); !ok || p.ApplicationID != 7 || string(p.AppendedEntries[0]) != "x" {
		t.Fatalf("AppSync decoded as %#v", got.Proposals[0].Proposal.Body)
	}
	if _, ok := got.Proposals[1].Proposal.Body.(*wire.SelfRemove); !ok || got.Proposals[1].Proposal.Type != wire.ProposalSelfRemove {
		t.Fatalf("SelfRemove decoded as %#v", got.Proposals[1].Proposal)
	}
	if b2, _ := codec.Marshal(got); !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
	// An AppSync with an unknown state type inside a commit is rejected.
	bad := bytes.Clone(b)
	bad[1+1+2+4] = 9 // vector header, ProposalOrRef type, proposal type, applicationId, then stateType
	if _, err := wire.UnmarshalCommit(bad); !errors.Is(err, appsync.ErrUnknownStateType) {
		t.Fatalf("unknown state type: %v", err)
	}
}

func TestApplicationStatesExtension(t *testing.T) {
	st := &appsync.States{}
	st.Set(&appsync.ApplicationState{ApplicationID: 1, Type: appsync.Irreducible, State: []byte("p")})
	ext, err := wire.NewApplicationStatesExtension(st)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := wire.ApplicationStatesExtension([]wire.Extension{{Type: 5, Data: []byte{0}}, ext})
	if err != nil || !ok || string(got.Get(1).State) != "p" {
		t.Fatalf("%v %v %v", got, ok, err)
	}
	if got, ok, err := wire.ApplicationStatesExtension(nil); err != nil || ok || len(got.States) != 0 {
		t.Fatal("absent extension")
	}
	if _, _, err := wire.ApplicationStatesExtension([]wire.Extension{{Type: wire.ExtensionApplicationStates, Data: []byte{5}}}); err == nil {
		t.Fatal("malformed extension accepted")
	}
}
