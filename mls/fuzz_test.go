package mls

import (
	"testing"

	"github.com/openmimi/mimi/mls/wire"
)

// fuzzSeeds builds a 3-member group and returns member 1's state with a few
// messages addressed to it (commit, proposal, application).
func fuzzSeeds(f *testing.F) (state []byte, msgs [][]byte) {
	gs := iGroup(f, 3, Config{})
	st, err := gs[1].MarshalState()
	if err != nil {
		f.Fatal(err)
	}
	add := func(m *wire.MLSMessage) {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	sp, err := gs[2].ProposeRemove(0, nil)
	if err != nil {
		f.Fatal(err)
	}
	add(sp.Message)
	pc, err := gs[0].Commit(&CommitOptions{SkipPending: true})
	if err != nil {
		f.Fatal(err)
	}
	add(pc.Message)
	pc2, err := gs[0].Commit(&CommitOptions{SkipPending: true, Send: SendOptions{Private: true}})
	if err != nil {
		f.Fatal(err)
	}
	add(pc2.Message)
	gs[0].SetConfig(Config{AllowAppDataWithPendingProposals: true})
	app, err := gs[0].ProtectApplication([]byte("hello"), nil)
	if err != nil {
		f.Fatal(err)
	}
	add(app)
	return st, msgs
}

// FuzzProcess feeds arbitrary messages to a member: Process must return an
// error or a result, never panic, and a rejected message must leave the
// state unchanged.
func FuzzProcess(f *testing.F) {
	st, msgs := fuzzSeeds(f)
	for _, m := range msgs {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := wire.UnmarshalMLSMessage(data)
		if err != nil {
			return
		}
		g, err := UnmarshalState(st, Config{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Process(m); err != nil {
			after, err2 := g.MarshalState()
			if err2 != nil {
				t.Fatal(err2)
			}
			if string(after) != string(st) {
				t.Fatalf("rejected message changed the state: %v", err)
			}
		}
	})
}

// FuzzUnmarshalState: corrupt state is rejected without panicking.
func FuzzUnmarshalState(f *testing.F) {
	st, _ := fuzzSeeds(f)
	f.Add(st)
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := UnmarshalState(data, Config{})
		if err != nil {
			return
		}
		if _, err := g.MarshalState(); err != nil {
			t.Fatal(err)
		}
	})
}
