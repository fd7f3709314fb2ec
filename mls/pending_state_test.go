package mls_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/openmimi/mimi/mls"
)

// TestPendingCommitRestart: a member saves its state and its pending
// commit, restarts, restores both, and then either recognizes the commit's
// echo or merges it; in both cases it reaches the epoch the other members
// reached by processing the commit, and can talk to them.
func TestPendingCommitRestart(t *testing.T) {
	for _, via := range []string{"echo", "merge"} {
		t.Run(via, func(t *testing.T) {
			tg := newTestGroup(t, suite1, 3)
			a := tg.members[0]
			pc, err := a.Commit(nil)
			if err != nil {
				t.Fatal(err)
			}
			st, pst := state(t, a), pendingState(t, pc)
			tg.deliver(0, pc.Message) // the others take the commit

			ra, err := mls.UnmarshalState(st, mls.Config{})
			if err != nil {
				t.Fatal(err)
			}
			rpc, err := ra.RestorePendingCommit(pst)
			if err != nil {
				t.Fatal(err)
			}
			if rpc.Epoch != pc.Epoch || len(rpc.ProposalRefs) != len(pc.ProposalRefs) {
				t.Fatalf("restored commit: epoch %d, %d refs; want %d, %d", rpc.Epoch, len(rpc.ProposalRefs), pc.Epoch, len(pc.ProposalRefs))
			}
			if rpc.Merged() {
				t.Fatal("merged before the echo or Merge")
			}
			switch via {
			case "echo":
				p, err := ra.Process(roundTrip(t, pc.Message))
				if err != nil {
					t.Fatalf("echo: %v", err)
				}
				if p.Commit == nil || !p.Commit.OwnCommit {
					t.Fatalf("echo not recognized as our commit: %+v", p)
				}
			case "merge":
				if err := rpc.Merge(); err != nil {
					t.Fatal(err)
				}
			}
			if !rpc.Merged() {
				t.Fatal("Merged is false after the " + via)
			}
			b := tg.members[1]
			if ra.Epoch() != b.Epoch() || !bytes.Equal(ra.EpochAuthenticator(), b.EpochAuthenticator()) {
				t.Fatalf("restored member at epoch %d, others at %d, or keys differ", ra.Epoch(), b.Epoch())
			}
			if p := mustProcess(t, b, protect(t, ra, "after restart")); string(p.ApplicationData) != "after restart" {
				t.Fatal("wrong plaintext")
			}
		})
	}
}

// TestRestorePendingCommitRefused: a pending commit restores only into the
// group and epoch it was made in, and a refused one changes nothing.
func TestRestorePendingCommitRefused(t *testing.T) {
	tg := newTestGroup(t, suite1, 3)
	a := tg.members[0]
	pc, err := a.Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	pst := pendingState(t, pc)
	var other *mls.Group // a group of another ID (newTestGroup names it after the test)
	t.Run("other", func(t *testing.T) { other = newTestGroup(t, suite1, 3).members[0] })
	// b is a member of the same group, at the same epoch, but another leaf.
	b := tg.members[1]
	cases := map[string]struct {
		g    *mls.Group
		data []byte
	}{
		"another group":  {other, pst},
		"another leaf":   {b, pst},
		"truncated":      {a, pst[:len(pst)-1]},
		"trailing bytes": {a, append(bytes.Clone(pst), 0)},
		"version":        {a, append([]byte{9}, pst[1:]...)},
	}
	for name, c := range cases {
		before := state(t, c.g)
		if _, err := c.g.RestorePendingCommit(c.data); !errors.Is(err, mls.ErrStateCorrupt) {
			t.Errorf("%s: %v, want ErrStateCorrupt", name, err)
		}
		if !bytes.Equal(before, state(t, c.g)) {
			t.Errorf("%s: state changed", name)
		}
	}
	// Once the group moved on, the commit no longer restores.
	if other, err := a.Commit(nil); err != nil {
		t.Fatal(err)
	} else if other.Discard(); other.Merged() {
		t.Fatal("a discarded commit reports Merged")
	}
	if pc, err = a.Commit(nil); err != nil {
		t.Fatal(err)
	}
	pst = pendingState(t, pc)
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RestorePendingCommit(pst); !errors.Is(err, mls.ErrStateCorrupt) {
		t.Fatalf("after the epoch changed: %v", err)
	}
	if _, err := pc.MarshalBinary(); !errors.Is(err, mls.ErrStaleCommit) {
		t.Fatalf("merged commit serialized: %v", err)
	}
}

func pendingState(t testing.TB, pc *mls.PendingCommit) []byte {
	t.Helper()
	b, err := pc.MarshalBinary()
	if err != nil {
		t.Fatalf("PendingCommit.MarshalBinary: %v", err)
	}
	return b
}
