package fanout_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/fanout"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// TestBuildBatch checks batch composition: same-room runs in one body, a
// room change or a cap ends it, and the body is the concatenation of the
// FanoutMessages (with timestamps and, for a Welcome, its ratchet tree).
func TestBuildBatch(t *testing.T) {
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
		room        string
		first, last uint64
		ids         []string
	}
	walk := func(lim fanout.Limits) []want {
		// Build, then acknowledge, batch after batch, checking each
		// rebuild of the same pending range gives the same bytes.
		c := newMemStore()
		c.payloads = s.payloads // read-only here
		c.queues = map[string]*memQueue{dest: {cur: s.queues[dest].cur, items: slices.Clone(s.queues[dest].items)}}
		var out []want
		for {
			b, err := fanout.BuildBatch(c, dest, lim)
			if err != nil {
				t.Fatal(err)
			}
			if b == nil {
				return out
			}
			again, err := fanout.BuildBatch(c, dest, lim)
			if err != nil || !bytes.Equal(again.Body, b.Body) || again.First != b.First || again.Last != b.Last {
				t.Fatalf("rebuilding %d..%d gave different bytes (%v)", b.First, b.Last, err)
			}
			if b.Count() != int(b.Last-b.First+1) || b.Destination != dest {
				t.Fatalf("batch %+v", b)
			}
			// The body is exactly MarshalFanout of the messages.
			msgs, err := mimi.UnmarshalFanout(b.Body)
			if err != nil {
				t.Fatal(err)
			}
			re, err := mimi.MarshalFanout(msgs)
			if err != nil || !bytes.Equal(re, b.Body) {
				t.Fatalf("body is not canonical concatenated FanoutMessages: %v", err)
			}
			for i := range msgs {
				d := b.Deliveries[i]
				if msgs[i].Timestamp != d.Timestamp {
					t.Fatalf("message %d: timestamp %d, want source timestamp %d", d.N, msgs[i].Timestamp, d.Timestamp)
				}
				isWelcome := msgs[i].Message.WireFormat == wire.WireFormatWelcome
				if isWelcome != (d.Part == eventlog.PartWelcome) || isWelcome != (msgs[i].RatchetTreeOption != nil) {
					t.Fatalf("message %d: Welcome/RatchetTreeOption mismatch", d.N)
				}
				if isWelcome {
					rto := msgs[i].RatchetTreeOption
					got, err := codec.Marshal(&rto.Tree)
					if err != nil || rto.Representation != mimi.RatchetTreeFull || !bytes.Equal(got, tree) {
						t.Fatalf("Welcome carries tree %x (rep %d), want %x", got, rto.Representation, tree)
					}
				}
			}
			out = append(out, want{b.Room, b.First, b.Last, decodeIDs(t, b.Body)})
			if err := c.Ack(context.Background(), dest, b.Last); err != nil {
				t.Fatal(err)
			}
		}
	}
	msgLen := func(id string) int {
		b, _ := fanout.EncodeMessage(projections.Delivery{Timestamp: 1}, fanout.Payload{Message: privMsg(t, id)})
		return len(b)
	}

	for _, tc := range []struct {
		name string
		lim  fanout.Limits
		want []want
	}{
		{"defaults", fanout.Limits{}, []want{
			{"r1", 1, 3, []string{"a1", "a2", "W:w1"}},
			{"r2", 4, 4, []string{"b1"}},
			{"r1", 5, 7, []string{"a3", "a4", "a5"}},
		}},
		{"two messages", fanout.Limits{MaxMessages: 2}, []want{
			{"r1", 1, 2, []string{"a1", "a2"}},
			{"r1", 3, 3, []string{"W:w1"}},
			{"r2", 4, 4, []string{"b1"}},
			{"r1", 5, 6, []string{"a3", "a4"}},
			{"r1", 7, 7, []string{"a5"}},
		}},
		{"bytes for two", fanout.Limits{MaxBytes: 2*msgLen("a1") + 1}, []want{
			{"r1", 1, 2, []string{"a1", "a2"}},
			{"r1", 3, 3, []string{"W:w1"}}, // larger than the limit: alone
			{"r2", 4, 4, []string{"b1"}},
			{"r1", 5, 6, []string{"a3", "a4"}},
			{"r1", 7, 7, []string{"a5"}},
		}},
		{"one byte", fanout.Limits{MaxBytes: 1}, []want{
			{"r1", 1, 1, []string{"a1"}}, {"r1", 2, 2, []string{"a2"}}, {"r1", 3, 3, []string{"W:w1"}},
			{"r2", 4, 4, []string{"b1"}}, {"r1", 5, 5, []string{"a3"}}, {"r1", 6, 6, []string{"a4"}}, {"r1", 7, 7, []string{"a5"}},
		}},
		{"over the follower's cap", fanout.Limits{MaxMessages: 1 << 20}, []want{
			{"r1", 1, 3, []string{"a1", "a2", "W:w1"}},
			{"r2", 4, 4, []string{"b1"}},
			{"r1", 5, 7, []string{"a3", "a4", "a5"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := walk(tc.lim)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d batches %+v, want %+v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i].room != tc.want[i].room || got[i].first != tc.want[i].first || got[i].last != tc.want[i].last ||
					!slices.Equal(got[i].ids, tc.want[i].ids) {
					t.Fatalf("batch %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}

	// Nothing pending: no batch.
	if b, err := fanout.BuildBatch(s, "nobody.example", fanout.Limits{}); b != nil || err != nil {
		t.Fatalf("empty queue: %+v %v", b, err)
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
