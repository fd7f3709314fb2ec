package fanout_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/fanout"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// TestBuildRound checks round composition: the oldest pending deliveries
// up to the message cap, one body per room in queue order, a body over the
// byte cap ending the round (a single large message goes alone), and each
// body the concatenation of its room's FanoutMessages (with timestamps
// and, for a Welcome, its ratchet tree).
func TestBuildRound(t *testing.T) {
	const dest = "b.example"
	s := newMemStore()
	tree := treeBytes(t, "epoch-2")
	s.add("r1", 101, eventlog.PartMessage, fanout.Payload{Message: privMsg(t, "a1")}, dest)
	s.add("r1", 102, eventlog.PartMessage, fanout.Payload{Message: privMsg(t, "a2")}, dest)
	s.add("r1", 103, eventlog.PartWelcome, fanout.Payload{Message: welcomeMsg(t, "w1"), RatchetTree: tree}, dest)
	s.add("r2", 104, eventlog.PartMessage, fanout.Payload{Message: privMsg(t, "b1")}, dest)
	s.add("r1", 105, eventlog.PartMessage, fanout.Payload{Message: privMsg(t, "a3")}, dest)
	s.add("r1", 106, eventlog.PartMessage, fanout.Payload{Message: privMsg(t, "a4")}, dest)
	s.add("r1", 107, eventlog.PartMessage, fanout.Payload{Message: privMsg(t, "a5")}, dest)

	type want struct {
		first, last uint64
		bodies      []string // room: message IDs
	}
	walk := func(lim fanout.Limits) []want {
		// Build, then acknowledge, round after round, checking each
		// rebuild of the same pending range gives the same bytes.
		c := newMemStore()
		c.payloads = s.payloads // read-only here
		c.queues = map[string]*memQueue{dest: {cur: s.queues[dest].cur, items: slices.Clone(s.queues[dest].items)}}
		var out []want
		for {
			r, err := fanout.BuildRound(c, dest, lim)
			if err != nil {
				t.Fatal(err)
			}
			if r == nil {
				return out
			}
			again, err := fanout.BuildRound(c, dest, lim)
			if err != nil || again.First != r.First || again.Last != r.Last || len(again.Batches) != len(r.Batches) {
				t.Fatalf("rebuilding %d..%d gave another round (%v)", r.First, r.Last, err)
			}
			if r.Count() != int(r.Last-r.First+1) || r.Destination != dest {
				t.Fatalf("round %+v", r)
			}
			w := want{first: r.First, last: r.Last}
			for i, b := range r.Batches {
				if !bytes.Equal(again.Batches[i].Body, b.Body) {
					t.Fatalf("rebuilding %d..%d gave other bytes for %s", r.First, r.Last, b.Room)
				}
				if b.Destination != dest || b.First != b.Deliveries[0].N || b.Last != b.Deliveries[b.Count()-1].N {
					t.Fatalf("batch %+v", b)
				}
				// The body is exactly MarshalFanout of the room's messages,
				// in queue order.
				msgs, err := mimi.UnmarshalFanout(b.Body)
				if err != nil {
					t.Fatal(err)
				}
				re, err := mimi.MarshalFanout(msgs)
				if err != nil || !bytes.Equal(re, b.Body) {
					t.Fatalf("body is not canonical concatenated FanoutMessages: %v", err)
				}
				for j := range msgs {
					d := b.Deliveries[j]
					if d.Room != b.Room || (j > 0 && d.N <= b.Deliveries[j-1].N) {
						t.Fatalf("delivery %d of %s in the body of %s", d.N, d.Room, b.Room)
					}
					if msgs[j].Timestamp != d.Timestamp {
						t.Fatalf("message %d: timestamp %d, want source timestamp %d", d.N, msgs[j].Timestamp, d.Timestamp)
					}
					isWelcome := msgs[j].Message.WireFormat == wire.WireFormatWelcome
					if isWelcome != (d.Part == eventlog.PartWelcome) || isWelcome != (msgs[j].RatchetTreeOption != nil) {
						t.Fatalf("message %d: Welcome/RatchetTreeOption mismatch", d.N)
					}
					if isWelcome {
						rto := msgs[j].RatchetTreeOption
						got, err := codec.Marshal(&rto.Tree)
						if err != nil || rto.Representation != mimi.RatchetTreeFull || !bytes.Equal(got, tree) {
							t.Fatalf("Welcome carries tree %x (rep %d), want %x", got, rto.Representation, tree)
						}
					}
				}
				w.bodies = append(w.bodies, b.Room+":"+strings.Join(decodeIDs(t, b.Body), ","))
			}
			out = append(out, w)
			if err := c.Ack(context.Background(), dest, r.Last); err != nil {
				t.Fatal(err)
			}
		}
	}
	msgLen := func(id string) int {
		b, _ := fanout.EncodeMessage(projections.Delivery{Timestamp: 1}, fanout.Payload{Message: privMsg(t, id)})
		return len(b)
	}

	all := []want{{1, 7, []string{"r1:a1,a2,W:w1,a3,a4,a5", "r2:b1"}}}
	for _, tc := range []struct {
		name string
		lim  fanout.Limits
		want []want
	}{
		{"defaults", fanout.Limits{}, all},
		{"two messages", fanout.Limits{MaxMessages: 2}, []want{
			{1, 2, []string{"r1:a1,a2"}},
			{3, 4, []string{"r1:W:w1", "r2:b1"}},
			{5, 6, []string{"r1:a3,a4"}},
			{7, 7, []string{"r1:a5"}},
		}},
		{"bytes for two", fanout.Limits{MaxBytes: 2*msgLen("a1") + 1}, []want{
			{1, 2, []string{"r1:a1,a2"}},
			{3, 4, []string{"r1:W:w1", "r2:b1"}}, // the Welcome is larger than the limit: alone
			{5, 6, []string{"r1:a3,a4"}},
			{7, 7, []string{"r1:a5"}},
		}},
		{"one byte", fanout.Limits{MaxBytes: 1}, []want{
			{1, 1, []string{"r1:a1"}}, {2, 2, []string{"r1:a2"}}, {3, 4, []string{"r1:W:w1", "r2:b1"}},
			{5, 5, []string{"r1:a3"}}, {6, 6, []string{"r1:a4"}}, {7, 7, []string{"r1:a5"}},
		}},
		{"over the follower's cap", fanout.Limits{MaxMessages: 1 << 20}, all},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := walk(tc.lim)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("rounds %+v, want %+v", got, tc.want)
			}
		})
	}

	// Nothing pending: no round.
	if r, err := fanout.BuildRound(s, "nobody.example", fanout.Limits{}); r != nil || err != nil {
		t.Fatalf("empty queue: %+v %v", r, err)
	}
}

// TestEncodeMessageRejects checks that payloads which cannot be fanned out
// fail with ErrPermanent instead of producing a body.
func TestEncodeMessageRejects(t *testing.T) {
	gi, err := codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatGroupInfo, GroupInfo: &wire.GroupInfo{
		GroupContext:    wire.GroupContext{Version: wire.MLS10, CipherSuite: 1, GroupID: []byte("g"), TreeHash: []byte{}, ConfirmedTranscriptHash: []byte{}},
		ConfirmationTag: []byte{}, Signature: []byte{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(part eventlog.Part) projections.Delivery {
		return projections.Delivery{N: 1, Part: part, Room: "r"}
	}
	for _, tc := range []struct {
		name string
		d    projections.Delivery
		p    fanout.Payload
	}{
		{"garbage", msg(eventlog.PartMessage), fanout.Payload{Message: []byte{0, 1, 0, 2, 9}}},
		{"empty", msg(eventlog.PartMessage), fanout.Payload{}},
		{"trailing bytes", msg(eventlog.PartMessage), fanout.Payload{Message: append(privMsg(t, "x"), 0)}},
		{"GroupInfo", msg(eventlog.PartMessage), fanout.Payload{Message: gi}},
		{"Welcome as message part", msg(eventlog.PartMessage), fanout.Payload{Message: welcomeMsg(t, "w"), RatchetTree: treeBytes(t, "t")}},
		{"message as Welcome part", msg(eventlog.PartWelcome), fanout.Payload{Message: privMsg(t, "x"), RatchetTree: treeBytes(t, "t")}},
		{"Welcome without tree", msg(eventlog.PartWelcome), fanout.Payload{Message: welcomeMsg(t, "w")}},
		{"Welcome with bad tree", msg(eventlog.PartWelcome), fanout.Payload{Message: welcomeMsg(t, "w"), RatchetTree: []byte{5, 1}}},
		{"unknown part", msg(7), fanout.Payload{Message: privMsg(t, "x")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := fanout.EncodeMessage(tc.d, tc.p); !errors.Is(err, fanout.ErrPermanent) {
				t.Fatalf("got %x, %v; want ErrPermanent", b, err)
			}
			dst := []byte("body so far")
			if b, err := fanout.AppendMessage(dst, tc.d, tc.p); !errors.Is(err, fanout.ErrPermanent) || !bytes.Equal(b, dst) {
				t.Fatalf("AppendMessage: got %x, %v; want the input unchanged and ErrPermanent", b, err)
			}
		})
	}
}

// TestAppendMessageMatchesEncode checks that AppendMessage, whose
// PrivateMessage case skips the decode and re-encode, appends exactly the
// bytes of EncodeMessage (draft-ralston-mimi-protocol-02, Section 5.5).
func TestAppendMessageMatchesEncode(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    projections.Delivery
		p    fanout.Payload
	}{
		{"PrivateMessage", projections.Delivery{N: 1, Part: eventlog.PartMessage, Timestamp: 1700000000001}, fanout.Payload{Message: privMsg(t, "m")}},
		{"long PrivateMessage", projections.Delivery{N: 2, Part: eventlog.PartMessage, Timestamp: 1}, fanout.Payload{Message: privMsg(t, string(bytes.Repeat([]byte("x"), 20000)))}},
		{"Welcome", projections.Delivery{N: 3, Part: eventlog.PartWelcome, Timestamp: 7}, fanout.Payload{Message: welcomeMsg(t, "w"), RatchetTree: treeBytes(t, "t")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := fanout.EncodeMessage(tc.d, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := fanout.AppendMessage([]byte("head"), tc.d, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append([]byte("head"), want...)) {
				t.Fatalf("AppendMessage differs from EncodeMessage")
			}
		})
	}
}
