package chaos

import (
	"slices"
	"testing"
)

// checkFixture is a small room: a1 creates it, adds b1 and c1 in one
// commit (with a Welcome), then a1, b1 and c1 send one message each, a1
// commits again, removes c1, sends, and adds c1 back (with another
// Welcome), and b1 sends. Then b1 leaves (two proposals), a1 sends (not
// to b1, whose user has left the participant list), c1 completes the
// leave with a commit including the proposals, c2 (a new client of c1's
// user) joins by external commit, and a1 sends.
func checkFixture() CheckInput {
	const room = "mimi://a.example/r/x"
	m := func(s string) []byte { return []byte(s) }
	all, ab := []string{"a1", "b1", "c1"}, []string{"a1", "b1"}
	log := []LogEntry{
		{Seq: 3, RoomSeq: 1, Room: room, Kind: KindCreated, Members: []string{"a1"}, Sender: "a1"},
		{Seq: 5, RoomSeq: 2, Room: room, Kind: KindCommit, Message: m("commit1"), Welcome: m("welcome1"), Members: all, Sender: "a1"},
		{Seq: 9, RoomSeq: 3, Epoch: 1, Room: room, Kind: KindMessage, Message: m("msg-a"), Sender: "a1"},
		{Seq: 10, RoomSeq: 4, Epoch: 1, Room: room, Kind: KindMessage, Message: m("msg-b"), Sender: "b.example"},
		{Seq: 12, RoomSeq: 5, Epoch: 1, Room: room, Kind: KindMessage, Message: m("msg-c"), Sender: "c.example"},
		{Seq: 14, RoomSeq: 6, Epoch: 1, Room: room, Kind: KindCommit, Message: m("commit2"), Members: all, Sender: "a1"},
		{Seq: 15, RoomSeq: 7, Epoch: 2, Room: room, Kind: KindCommit, Message: m("commit3"), Members: ab, Sender: "a1"},
		{Seq: 16, RoomSeq: 8, Epoch: 3, Room: room, Kind: KindMessage, Message: m("msg-d"), Sender: "a1"},
		{Seq: 18, RoomSeq: 9, Epoch: 3, Room: room, Kind: KindCommit, Message: m("commit4"), Welcome: m("welcome2"), Members: all, Sender: "a1"},
		{Seq: 19, RoomSeq: 10, Epoch: 4, Room: room, Kind: KindMessage, Message: m("msg-e"), Sender: "b.example"},
		{Seq: 20, RoomSeq: 11, Epoch: 4, Room: room, Kind: KindProposal, Message: m("prop-remove"), ProposalRef: m("ref1"), Sender: "b.example"},
		{Seq: 21, RoomSeq: 12, Epoch: 4, Room: room, Kind: KindProposal, Message: m("prop-appsync"), ProposalRef: m("ref2"), Leaving: []string{"b1"}, Sender: "b.example"},
		{Seq: 22, RoomSeq: 13, Epoch: 4, Room: room, Kind: KindMessage, Message: m("msg-g"), Sender: "a1"},
		{Seq: 23, RoomSeq: 14, Epoch: 4, Room: room, Kind: KindCommit, Message: m("commit5"), Refs: [][]byte{m("ref2"), m("ref1")},
			Members: []string{"a1", "c1"}, Sender: "c.example"},
		{Seq: 24, RoomSeq: 15, Epoch: 5, Room: room, Kind: KindCommit, Message: m("commit6"), External: true,
			Members: []string{"a1", "c1", "c2"}, Sender: "c.example"},
		{Seq: 25, RoomSeq: 16, Epoch: 6, Room: room, Kind: KindMessage, Message: m("msg-f"), Sender: "a1"},
	}
	subs := []Submit{
		{Client: "a1", Room: room, Message: m("msg-a"), Label: "a", Acked: true, Attempts: 1},
		{Client: "b1", Room: room, Message: m("msg-b"), Label: "b", Acked: true, Attempts: 2},
		{Client: "c1", Room: room, Message: m("msg-c"), Label: "c", Acked: false, Attempts: 3},
		{Client: "a1", Room: room, Message: m("msg-d"), Label: "d", Acked: true, Attempts: 1},
		{Client: "b1", Room: room, Message: m("msg-e"), Label: "e", Acked: true, Attempts: 1},
		{Client: "a1", Room: room, Message: m("msg-g"), Label: "g", Acked: true, Attempts: 1},
		{Client: "a1", Room: room, Message: m("msg-f"), Label: "f", Acked: true, Attempts: 1},
	}
	var commits []Submit
	for _, c := range []string{"commit1", "commit2", "commit3", "commit4"} {
		commits = append(commits, Submit{Client: "a1", Room: room, Message: m(c), Label: c, Acked: true, Attempts: 1})
	}
	commits[2].Attempts = 2
	commits = append(commits, Submit{Client: "c1", Room: room, Message: m("commit5"), Label: "commit5", Acked: true, Attempts: 1},
		Submit{Client: "c2", Room: room, Message: m("commit6"), Label: "join", Acked: true, Attempts: 1})
	proposals := []Submit{
		{Client: "b1", Room: room, Message: m("prop-remove"), Label: "leave", Acked: true, Attempts: 1},
		{Client: "b1", Room: room, Message: m("prop-appsync"), Label: "leave", Acked: true, Attempts: 1},
	}
	d := func(pos uint64, s string) Delivery { return Delivery{Pos: pos, Room: room, Message: m(s)} }
	recv := map[string][]Delivery{
		// a1 gets its commits back but no echo of its own messages, b1
		// gets its echo: own application messages are optional.
		"a1": {d(1, "commit1"), d(2, "msg-b"), d(3, "msg-c"), d(4, "commit2"), d(5, "commit3"), d(6, "commit4"), d(7, "msg-e"),
			d(8, "prop-remove"), d(9, "prop-appsync"), d(10, "commit5"), d(11, "commit6")},
		// b1 receives its own proposals back, not msg-g, and the commit
		// completing its leave.
		"b1": {d(1, "welcome1"), d(2, "msg-a"), d(3, "msg-b"), d(4, "msg-c"), d(5, "commit2"), d(6, "commit3"), d(7, "msg-d"), d(8, "commit4"),
			d(9, "prop-remove"), d(10, "prop-appsync"), d(11, "commit5")},
		// c1 receives its removal, not msg-d, and the Welcome adding it
		// back.
		"c1": {d(4, "welcome1"), d(5, "msg-a"), d(6, "msg-b"), d(7, "commit2"), d(8, "commit3"), d(9, "welcome2"), d(10, "msg-e"),
			d(11, "prop-remove"), d(12, "prop-appsync"), d(13, "msg-g"), d(14, "commit5"), d(15, "commit6"), d(16, "msg-f")},
		// c2's membership begins with its own external commit, which it
		// receives back.
		"c2": {d(1, "commit6"), d(2, "msg-f")},
	}
	removed := map[string][]Removal{"b1": {{Room: room, Pos: 11}}, "c1": {{Room: room, Pos: 8}}}
	return CheckInput{Log: log, Submits: subs, Commits: commits, Proposals: proposals, Received: recv, Removed: removed}
}

func clone(in CheckInput) CheckInput {
	out := CheckInput{Log: slices.Clone(in.Log), Submits: slices.Clone(in.Submits), Commits: slices.Clone(in.Commits), Proposals: slices.Clone(in.Proposals),
		Received: map[string][]Delivery{}, Removed: map[string][]Removal{}}
	for k, v := range in.Received {
		out.Received[k] = slices.Clone(v)
	}
	for k, v := range in.Removed {
		out.Removed[k] = slices.Clone(v)
	}
	return out
}

// TestCheck feeds the checker a correct run and runs with each kind of
// violation; every violation must be reported with its kind, and the
// correct run must pass.
func TestCheck(t *testing.T) {
	base := checkFixture()
	ok := Check(clone(base))
	if !ok.OK() {
		t.Fatalf("correct run reported: %v", ok.Problems)
	}
	// a1: commit1, msg-b, msg-c, commit2, commit3, commit4, msg-e, the
	// two proposals, commit5, commit6 (msg-a, msg-d, msg-g and msg-f are
	// own); b1: welcome1, msg-a, msg-c, commit2, commit3, msg-d, commit4,
	// the two proposals, commit5 (msg-b and msg-e own, msg-g after its
	// leave); c1: welcome1, msg-a, msg-b, commit2, commit3, welcome2,
	// msg-e, the two proposals, msg-g, commit5, commit6, msg-f (msg-c
	// own); c2: commit6, msg-f: 36.
	if ok.DeliveriesChecked != 36 || ok.Acked != 6 || ok.Unacked != 1 || ok.Retried != 2 || ok.AckedRetried != 1 || ok.HubMessages != 7 ||
		ok.CommitsAcked != 6 || ok.CommitsRetried != 1 || ok.ProposalsAcked != 2 || ok.HubProposals != 2 ||
		ok.Joins != 4 || ok.ExternalJoins != 1 || ok.Removals != 2 {
		t.Fatalf("figures: %+v", ok)
	}

	cases := []struct {
		name   string
		mutate func(*CheckInput)
		want   ProblemKind
		client string
	}{
		{"lost delivery", func(in *CheckInput) {
			in.Received["b1"] = slices.Delete(in.Received["b1"], 3, 4) // msg-c
		}, ProblemLost, "b1"},
		{"duplicated delivery", func(in *CheckInput) {
			r := in.Received["c1"]
			in.Received["c1"] = append(r[:3:3], Delivery{Pos: 100, Room: r[2].Room, Message: r[2].Message}, r[3])
		}, ProblemDuplicate, "c1"},
		{"reordered delivery", func(in *CheckInput) {
			r := in.Received["a1"]
			r[0].Message, r[1].Message = r[1].Message, r[0].Message
		}, ProblemReordered, "a1"},
		{"duplicated Welcome", func(in *CheckInput) {
			r := in.Received["c1"]
			in.Received["c1"] = append(r, Delivery{Pos: 50, Room: r[0].Room, Message: r[0].Message})
		}, ProblemDuplicate, "c1"},
		{"delivery not in hub log", func(in *CheckInput) {
			in.Received["a1"] = append(in.Received["a1"], Delivery{Pos: 9, Room: in.Log[0].Room, Message: []byte("forged")})
		}, ProblemUnknown, "a1"},
		{"delivery before joining", func(in *CheckInput) {
			// c1 was not a member when commit1 was accepted.
			in.Received["c1"] = append([]Delivery{{Pos: 1, Room: in.Log[0].Room, Message: []byte("commit1")}}, in.Received["c1"]...)
		}, ProblemUnknown, "c1"},
		{"acked submit lost at hub", func(in *CheckInput) {
			in.Submits = append(in.Submits, Submit{Client: "a1", Room: in.Log[0].Room, Message: []byte("msg-lost"), Acked: true, Attempts: 1})
		}, ProblemLostAtHub, "a1"},
		{"submit duplicated at hub", func(in *CheckInput) {
			e := in.Log[3]
			e.Seq, e.RoomSeq, e.Epoch = 30, 11, 4
			in.Log = append(in.Log, e)
		}, ProblemDuplicateAtHub, "b1"},
		{"hub message nobody submitted", func(in *CheckInput) {
			in.Log = append(in.Log, LogEntry{Seq: 30, RoomSeq: 11, Epoch: 4, Room: in.Log[0].Room, Kind: KindMessage, Message: []byte("ghost")})
		}, ProblemPhantomAtHub, ""},
		{"commit nobody submitted", func(in *CheckInput) {
			in.Commits = in.Commits[:3]
		}, ProblemPhantomAtHub, ""},
		{"acked commit lost at hub", func(in *CheckInput) {
			in.Commits = append(in.Commits, Submit{Client: "a1", Room: in.Log[0].Room, Message: []byte("commit-lost"), Acked: true, Attempts: 2})
		}, ProblemLostAtHub, "a1"},
		{"refused submit in hub log", func(in *CheckInput) {
			in.Submits[2].Refusal = "epochTooOld" // msg-c
		}, ProblemRefusedAtHub, "c1"},
		{"refused commit in hub log", func(in *CheckInput) {
			in.Commits[3].Acked, in.Commits[3].Refusal = false, "wrongEpoch"
		}, ProblemRefusedAtHub, "a1"},
		{"message of a past epoch", func(in *CheckInput) {
			in.Log[7].Epoch = 2 // msg-d, after commit3
		}, ProblemEpoch, ""},
		{"commit of another epoch", func(in *CheckInput) {
			in.Log[8].Epoch = 4 // commit4
		}, ProblemEpoch, ""},
		{"delivery after removal", func(in *CheckInput) {
			r := in.Received["c1"]
			in.Received["c1"] = slices.Insert(r, 5, Delivery{Pos: 9, Room: r[0].Room, Message: []byte("msg-d")})
		}, ProblemUnknown, "c1"},
		{"removal not received", func(in *CheckInput) {
			in.Received["c1"] = slices.Delete(in.Received["c1"], 4, 5) // commit3
		}, ProblemLost, "c1"},
		{"Welcome not received", func(in *CheckInput) {
			in.Received["c1"] = slices.Delete(in.Received["c1"], 5, 6) // welcome2
		}, ProblemLost, "c1"},
		{"Welcome of another client's add", func(in *CheckInput) {
			in.Received["a1"] = append(in.Received["a1"], Delivery{Pos: 9, Room: in.Log[0].Room, Message: []byte("welcome1")})
		}, ProblemUnknown, "a1"},
		{"own commit not received", func(in *CheckInput) {
			in.Received["a1"] = slices.Delete(in.Received["a1"], 3, 4) // commit2
		}, ProblemLost, "a1"},
		{"own echo out of order", func(in *CheckInput) {
			// b1 receives its own msg-b after msg-c.
			r := in.Received["b1"]
			r[2].Message, r[3].Message = r[3].Message, r[2].Message
		}, ProblemReordered, "b1"},
		{"own proposal not received", func(in *CheckInput) {
			in.Received["b1"] = slices.Delete(in.Received["b1"], 8, 9) // prop-remove
		}, ProblemLost, "b1"},
		{"commit completing the leave not received", func(in *CheckInput) {
			in.Received["b1"] = in.Received["b1"][:10] // commit5
			in.Removed["b1"] = nil
		}, ProblemLost, "b1"},
		{"application message after the leave proposals", func(in *CheckInput) {
			in.Received["b1"] = slices.Insert(in.Received["b1"], 10, Delivery{Pos: 50, Room: in.Log[0].Room, Message: []byte("msg-g")})
			in.Received["b1"][11].Pos = 51 // commit5 after it
			in.Removed["b1"][0].Pos = 51
		}, ProblemUnknown, "b1"},
		{"application message after another user's leave proposals not received", func(in *CheckInput) {
			in.Received["c1"] = slices.Delete(in.Received["c1"], 9, 10) // msg-g
		}, ProblemLost, "c1"},
		{"delivery after the leave", func(in *CheckInput) {
			in.Received["b1"] = append(in.Received["b1"], Delivery{Pos: 12, Room: in.Log[0].Room, Message: []byte("commit6")})
		}, ProblemUnknown, "b1"},
		{"proposal left out of the commit ending its epoch", func(in *CheckInput) {
			in.Log[13].Refs = in.Log[13].Refs[:1] // commit5 without ref1
		}, ProblemProposalDropped, ""},
		{"proposal nobody submitted", func(in *CheckInput) {
			in.Proposals = in.Proposals[1:]
		}, ProblemPhantomAtHub, ""},
		{"acked proposal lost at hub", func(in *CheckInput) {
			in.Proposals = append(in.Proposals, Submit{Client: "b1", Room: in.Log[0].Room, Message: []byte("prop-lost"), Acked: true, Attempts: 1})
		}, ProblemLostAtHub, "b1"},
		{"refused proposal in hub log", func(in *CheckInput) {
			in.Proposals[0].Acked, in.Proposals[0].Refusal = false, "wrongEpoch"
		}, ProblemRefusedAtHub, "b1"},
		{"own external commit not received", func(in *CheckInput) {
			in.Received["c2"] = in.Received["c2"][1:]
		}, ProblemLost, "c2"},
		{"another client's external commit received by the joiner", func(in *CheckInput) {
			// commit6 is c1's (a resync): c2 joined by it is not its
			// committer, and was not a member before it.
			in.Commits[5].Client = "c1"
		}, ProblemUnknown, "c2"},
		{"removal not reported", func(in *CheckInput) {
			in.Removed["b1"] = nil
		}, ProblemRemoval, "b1"},
		{"removal reported at another message", func(in *CheckInput) {
			in.Removed["a1"] = []Removal{{Room: in.Log[0].Room, Pos: 5}}
		}, ProblemRemoval, "a1"},
		{"removal reported twice", func(in *CheckInput) {
			in.Removed["c1"] = append(in.Removed["c1"], in.Removed["c1"][0])
		}, ProblemRemoval, "c1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := clone(base)
			tc.mutate(&in)
			rep := Check(in)
			if rep.Count(tc.want) == 0 {
				t.Fatalf("want a %s problem, got %v", tc.want, rep.Problems)
			}
			for _, p := range rep.Problems {
				if p.Kind == tc.want && p.Client != tc.client {
					t.Errorf("problem for client %q, want %q: %v", p.Client, tc.client, p)
				}
				if p.String() == "" {
					t.Error("empty problem text")
				}
			}
		})
	}
}
