package projections

import (
	"errors"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/eventlog"
)

func TestResultCodecRoundTrip(t *testing.T) {
	ev := eventlog.New("mimi://a.example/r/clubhouse", 1234, &eventlog.ClientRegistered{})
	if b, ok := ev.Body.(*eventlog.ClientRegistered); ok {
		b.User, b.Client = "mimi://a.example/u/alice", "mimi://a.example/d/a1"
	}
	ev.Seq, ev.RoomSeq = 7, 3
	kp := KeyPackage{Ref: []byte{1, 2}, Client: "mimi://b.example/d/b1", CipherSuite: 1, NotAfter: 99, Data: []byte{9}, Claimed: true, Claimer: "mimi://a.example/u/alice"}
	results := []Result{
		{},
		{Duplicate: true},
		{Events: []eventlog.Event{ev}, Claims: []ClaimResult{{Client: "mimi://b.example/d/b1", Found: true, KeyPackage: kp, Seq: 7}, {Client: "mimi://b.example/d/b2"}}},
		{Err: &WrongEpochError{Room: "r", Current: 5, Proposed: 4}},
		{Err: fmt.Errorf("condition 0: %w", &RoomSeqError{Room: "r", Current: 2, Expected: 1})},
		{Err: fmt.Errorf("claim: %w", ErrKeyPackageClaimed)},
		{Err: errors.New("something else")},
	}
	var c ResultCodec
	for i, r := range results {
		b, err := c.EncodeResult(r)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		got, err := c.DecodeResult(b)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if got.Duplicate != r.Duplicate || len(got.Events) != len(r.Events) || len(got.Claims) != len(r.Claims) {
			t.Fatalf("%d: got %+v", i, got)
		}
		if (got.Err == nil) != (r.Err == nil) || (r.Err != nil && got.Err.Error() != r.Err.Error() && !errors.As(r.Err, new(*RoomSeqError))) {
			t.Fatalf("%d: err %v, want %v", i, got.Err, r.Err)
		}
	}
	got, _ := c.DecodeResult(mustEncode(t, results[2]))
	if got.Events[0].Seq != 7 || got.Events[0].RoomSeq != 3 || got.Claims[0].KeyPackage.Claimer != kp.Claimer || !got.Claims[0].Found {
		t.Fatalf("fields lost: %+v", got)
	}
	got, _ = c.DecodeResult(mustEncode(t, results[3]))
	var we *WrongEpochError
	if !errors.As(got.Err, &we) || we.Current != 5 || !errors.Is(got.Err, ErrWrongEpoch) {
		t.Fatalf("wrong epoch lost: %v", got.Err)
	}
	got, _ = c.DecodeResult(mustEncode(t, results[5]))
	if !errors.Is(got.Err, ErrKeyPackageClaimed) {
		t.Fatalf("sentinel lost: %v", got.Err)
	}
	if _, err := c.DecodeResult([]byte{0, 0, 0, 9}); err == nil {
		t.Fatal("bad error kind accepted")
	}
}

func mustEncode(t *testing.T, r Result) []byte {
	t.Helper()
	b, err := ResultCodec{}.EncodeResult(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
