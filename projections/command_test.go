package projections_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/projections"
)

func allConditions() []projections.Condition {
	return []projections.Condition{
		projections.RoomExists("r"),
		projections.RoomDoesNotExist("r2"),
		projections.RoomEpochIs("r", 7),
		projections.RoomSeqIs("r", 3),
		projections.RoomProposalsAre("r", 7, 2),
		projections.KeyPackageUnclaimed([]byte("ref"), 1234),
		projections.NotifyNotSeen("hub.example", bytes.Repeat([]byte{9}, 32)),
		projections.ClientIsRegistered("c"),
		projections.ClientNotRegistered("c2"),
	}
}

func sampleCommands() []*projections.Command {
	var ops []projections.Op
	for i, typ := range eventlog.Types() {
		body := eventlog.NewBody(typ)
		// Give every body some content by decoding a populated sample.
		ops = append(ops, ev("room", uint64(i), populated(body)))
	}
	ops = append(ops, projections.ClaimOp(projections.ClaimRequest{Client: "c", Suites: []uint16{1, 2}, Claimer: "u", Room: "r", Timestamp: 5, Required: true}))
	ops = append(ops, projections.ClaimOp(projections.ClaimRequest{Client: "c"}))
	return []*projections.Command{
		{},
		{Conditions: allConditions()},
		{Ops: ops},
		{Conditions: allConditions()[:2], Ops: ops[:3]},
	}
}

// populated fills a body's byte and string fields deterministically.
func populated(b eventlog.Body) eventlog.Body {
	v := reflect.ValueOf(b).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("s" + v.Type().Field(i).Name)
		case reflect.Slice:
			switch f.Type().Elem().Kind() {
			case reflect.Uint8:
				f.SetBytes([]byte("b" + v.Type().Field(i).Name))
			case reflect.String:
				f.Set(reflect.ValueOf([]string{"x", "y"}))
			}
		case reflect.Uint64, reflect.Uint32, reflect.Uint16:
			f.SetUint(uint64(i + 1))
		}
	}
	return b
}

func TestCommandRoundTrip(t *testing.T) {
	for i, c := range sampleCommands() {
		enc := encodeCmd(t, c)
		got, err := projections.DecodeCommand(enc)
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		enc2 := encodeCmd(t, got)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("command %d re-encodes differently", i)
		}
		if len(got.Conditions) != len(c.Conditions) || len(got.Ops) != len(c.Ops) {
			t.Fatalf("command %d: lengths differ", i)
		}
		for j := range c.Conditions {
			if !reflect.DeepEqual(got.Conditions[j], c.Conditions[j]) {
				t.Fatalf("condition %d: %#v != %#v", j, got.Conditions[j], c.Conditions[j])
			}
		}
		for j := range c.Ops {
			if (got.Ops[j].Event == nil) != (c.Ops[j].Event == nil) {
				t.Fatalf("op %d kind differs", j)
			}
			if c.Ops[j].Claim != nil && !reflect.DeepEqual(got.Ops[j].Claim, c.Ops[j].Claim) {
				// nil vs empty Suites is the only acceptable difference.
				if len(c.Ops[j].Claim.Suites) != 0 || len(got.Ops[j].Claim.Suites) != 0 {
					t.Fatalf("claim %d: %#v != %#v", j, got.Ops[j].Claim, c.Ops[j].Claim)
				}
			}
		}
		for n := 0; n < len(enc); n++ {
			if _, err := projections.DecodeCommand(enc[:n]); err == nil {
				t.Fatalf("command %d: prefix %d decoded", i, n)
			}
		}
	}
}

func TestCommandEncodeErrors(t *testing.T) {
	for _, c := range []*projections.Command{
		{Ops: []projections.Op{{}}},
		{Ops: []projections.Op{{Event: &eventlog.Event{Body: &eventlog.RoomClosed{}}, Claim: &projections.ClaimRequest{}}}},
		{Conditions: []projections.Condition{{Kind: 99}}},
		{Ops: []projections.Op{{Event: &eventlog.Event{}}}},
	} {
		if _, err := projections.EncodeCommand(c); err == nil {
			t.Fatalf("%+v encoded", c)
		}
	}
}

func TestCommandDecodeErrors(t *testing.T) {
	good := encodeCmd(t, &projections.Command{Conditions: allConditions()[:1]})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"version 2":      {0, 2, 0, 0},
		"condition kind": {0, 1, 2, 0, 0, 0},
		"op kind":        {0, 1, 0, 1, 9},
		"trailing":       append(append([]byte(nil), good...), 0),
		"non-minimal":    {0, 1, 0x40, 0, 0},
	} {
		_, err := projections.DecodeCommand(b)
		if !errors.Is(err, projections.ErrMalformedCommand) {
			t.Errorf("%s: %v", name, err)
		}
		var de *codec.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: no DecodeError in %v", name, err)
		}
	}
}

func FuzzCommand(f *testing.F) {
	for _, c := range sampleCommands() {
		f.Add(encodeCmd(f, c))
	}
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0})
	f.Add([]byte{0, 1, 0x80, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := projections.DecodeCommand(data)
		if err != nil {
			if !errors.Is(err, projections.ErrMalformedCommand) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		enc, err := projections.EncodeCommand(c)
		if err != nil {
			t.Fatalf("decoded command does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data, enc)
		}
	})
}

// TestConditions checks every condition kind, satisfied and failing, with
// its typed error.
func TestConditions(t *testing.T) {
	h := newHarness(t)
	h.ok(nil,
		ev("", 1, &eventlog.ClientRegistered{User: "u", Client: "c"}),
		ev("", 1, &eventlog.KeyPackagesUploaded{Client: "c", KeyPackages: []eventlog.KeyPackage{
			{Ref: []byte("fresh"), CipherSuite: 1, NotAfter: 1000},
			{Ref: []byte("old"), CipherSuite: 1, NotAfter: 10},
			{Ref: []byte("taken"), CipherSuite: 1, NotAfter: 1000},
		}}),
		ev("r", 2, &eventlog.RoomCreated{Hub: "h", Epoch: 4}),
		ev("r", 3, &eventlog.KeyPackageClaimed{Ref: []byte("taken"), Client: "c", Claimer: "x"}),
		ev("r", 4, &eventlog.NotifyAccepted{Hub: "h", BodyHash: eventlog.NotifyHash("r", []byte("n")), Body: []byte("n")}),
	)
	// Room r now has room sequence 3 (RoomCreated, claim, notify).
	tests := []struct {
		name string
		cond projections.Condition
		want error // nil: satisfied
	}{
		{"room exists", projections.RoomExists("r"), nil},
		{"room exists fails", projections.RoomExists("nope"), projections.ErrNoSuchRoom},
		{"room absent", projections.RoomDoesNotExist("nope"), nil},
		{"room absent fails", projections.RoomDoesNotExist("r"), projections.ErrRoomExists},
		{"epoch", projections.RoomEpochIs("r", 4), nil},
		{"epoch fails", projections.RoomEpochIs("r", 3), projections.ErrWrongEpoch},
		{"epoch no room", projections.RoomEpochIs("nope", 0), projections.ErrNoSuchRoom},
		{"proposals", projections.RoomProposalsAre("r", 4, 0), nil},
		{"proposals changed", projections.RoomProposalsAre("r", 4, 1), projections.ErrProposalsChanged},
		{"proposals wrong epoch", projections.RoomProposalsAre("r", 3, 0), projections.ErrWrongEpoch},
		{"proposals no room", projections.RoomProposalsAre("nope", 0, 0), projections.ErrNoSuchRoom},
		{"room seq", projections.RoomSeqIs("r", 3), nil},
		{"room seq empty", projections.RoomSeqIs("nope", 0), nil},
		{"room seq fails", projections.RoomSeqIs("r", 2), projections.ErrRoomSeqMismatch},
		{"kp unclaimed", projections.KeyPackageUnclaimed([]byte("fresh"), 999_999), nil},
		{"kp expired", projections.KeyPackageUnclaimed([]byte("fresh"), 1_001_000), projections.ErrKeyPackageExpired},
		{"kp old", projections.KeyPackageUnclaimed([]byte("old"), 11_000), projections.ErrKeyPackageExpired},
		{"kp claimed", projections.KeyPackageUnclaimed([]byte("taken"), 0), projections.ErrKeyPackageClaimed},
		{"kp unknown", projections.KeyPackageUnclaimed([]byte("zzz"), 0), projections.ErrKeyPackageUnknown},
		{"notify unseen", projections.NotifyNotSeen("h", eventlog.NotifyHash("r", []byte("m"))), nil},
		{"notify other hub", projections.NotifyNotSeen("h2", eventlog.NotifyHash("r", []byte("n"))), nil},
		{"notify seen", projections.NotifyNotSeen("h", eventlog.NotifyHash("r", []byte("n"))), projections.ErrDuplicateNotify},
		{"client registered", projections.ClientIsRegistered("c"), nil},
		{"client registered fails", projections.ClientIsRegistered("d"), projections.ErrUnknownClient},
		{"client not registered", projections.ClientNotRegistered("d"), nil},
		{"client not registered fails", projections.ClientNotRegistered("c"), projections.ErrClientExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := stateHash(t, h.m)
			// A satisfied condition lets the (harmless) op through.
			r := h.apply(conds(tc.cond), ev("", 9, &eventlog.ClientRegistered{User: "u", Client: "probe-" + tc.name}))
			if tc.want == nil {
				if r.Err != nil || len(r.Events) != 1 {
					t.Fatalf("want success, got %v", r.Err)
				}
				return
			}
			if !errors.Is(r.Err, tc.want) {
				t.Fatalf("got %v, want %v", r.Err, tc.want)
			}
			if !bytes.Equal(before, stateHash(t, h.m)) {
				t.Fatal("rejected command changed state")
			}
			if h.m.AppliedIndex() != h.idx {
				t.Fatal("applied index not recorded")
			}
		})
	}
	// Typed details.
	r := h.apply(conds(projections.RoomEpochIs("r", 1)))
	var we *projections.WrongEpochError
	if !errors.As(r.Err, &we) || we.Current != 4 || we.Proposed != 1 || we.Room != "r" {
		t.Fatalf("WrongEpochError: %v", r.Err)
	}
	r = h.apply(conds(projections.RoomSeqIs("r", 0)))
	var se *projections.RoomSeqError
	if !errors.As(r.Err, &se) || se.Current != 3 {
		t.Fatalf("RoomSeqError: %v", r.Err)
	}
}

// FuzzApply applies arbitrary commands to a Machine holding some state:
// Apply must never panic, and a rejection must be typed and leave the state
// unchanged.
func FuzzApply(f *testing.F) {
	for _, c := range sampleCommands() {
		f.Add(encodeCmd(f, c))
	}
	h := newHarness(f)
	runRandom(f, h, 99, 50)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := stateHash(t, h.m)
		h.idx++
		r := h.m.Apply(h.idx, data)
		if r.Err == nil {
			return
		}
		if errors.Is(r.Err, projections.ErrStorage) {
			t.Fatalf("fatal error from a command: %v", r.Err)
		}
		if !bytes.Equal(before, stateHash(t, h.m)) {
			t.Fatalf("rejected command (%v) changed state", r.Err)
		}
	})
}

// benchCommands are the two commands on the federation hot path, with
// 1 KiB messages: a hub's submit (the message, its fanout and the local
// recipients) and a follower's /notify of 16 messages.
func benchCommands() map[string]*projections.Command {
	msg := bytes.Repeat([]byte{0xa5}, 1024)
	const room = "mimi://a.example/r/bench-room"
	submit := &projections.Command{
		Conditions: []projections.Condition{projections.RoomEpochIs(room, 3)},
		Ops: []projections.Op{
			projections.EventOp(room, 1700000000000, &eventlog.ApplicationMessageAccepted{Epoch: 3, Message: msg, Sender: "mimi://c.example/u/sender/d/1"}),
			projections.EventOp(room, 1700000000000, &eventlog.FanoutEnqueued{Destinations: []string{"b.example", "c.example"}, Back: 1}),
			projections.EventOp(room, 1700000000000, &eventlog.ClientEnqueued{Clients: []string{"mimi://a.example/u/recv/d/1"}, Back: 2}),
		},
	}
	notify := &projections.Command{}
	for i := 0; i < 16; i++ {
		h := bytes.Repeat([]byte{byte(i)}, 32)
		notify.Conditions = append(notify.Conditions, projections.NotifyNotSeen("a.example", h))
		notify.Ops = append(notify.Ops,
			projections.EventOp(room, 1700000000000, &eventlog.NotifyAccepted{Hub: "a.example", BodyHash: h, Body: msg}),
			projections.EventOp(room, 1700000000000, &eventlog.ClientEnqueued{Clients: []string{"mimi://c.example/u/recv/d/1"}, Back: 1}))
	}
	notify.Conditions = append(notify.Conditions, projections.RoomSeqIs(room, 42))
	return map[string]*projections.Command{"submit": submit, "notify16": notify}
}

func BenchmarkEncodeCommand(b *testing.B) {
	for _, name := range []string{"submit", "notify16"} {
		c := benchCommands()[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := projections.EncodeCommand(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeCommand(b *testing.B) {
	for _, name := range []string{"submit", "notify16"} {
		enc := encodeCmd(b, benchCommands()[name])
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := projections.DecodeCommand(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
