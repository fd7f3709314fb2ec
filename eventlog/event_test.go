package eventlog_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mls/codec"
)

// samples returns one fully populated event per type (and some edge cases).
func samples() []eventlog.Event {
	b := func(s string) []byte { return []byte(s) }
	return []eventlog.Event{
		eventlog.New("", 1, &eventlog.ClientRegistered{User: "mimi://a.example/u/alice", Client: "mimi://a.example/d/alice/1", SignatureKey: b("sigkey"), Credential: b("cred")}),
		eventlog.New("", 2, &eventlog.ClientRemoved{Client: "mimi://a.example/d/alice/1"}),
		eventlog.New("", 3, &eventlog.KeyPackagesUploaded{Client: "c", KeyPackages: []eventlog.KeyPackage{
			{Ref: b("ref1"), CipherSuite: 1, NotAfter: 1 << 40, Data: b("kp1")},
			{Ref: b("ref2"), CipherSuite: 3, NotAfter: 7, Data: []byte{}},
		}}),
		eventlog.New("", 3, &eventlog.KeyPackagesUploaded{Client: "c"}),
		eventlog.New("room1", 4, &eventlog.KeyPackageClaimed{Ref: b("ref1"), Client: "c", Claimer: "mimi://b.example/u/bob"}),
		eventlog.New("room1", 5, &eventlog.KeyPackageRouted{Ref: b("ref1"), Provider: "b.example", User: "mimi://b.example/u/bob"}),
		eventlog.New("room1", 6, &eventlog.RoomCreated{Hub: "a.example", Creator: "alice", Epoch: 0, Policy: b("pol"), Participants: b("parts"), GroupInfo: b("gi"), RatchetTree: b("tree"), Members: []string{"c1", "c2"}}),
		eventlog.New("room1", 7, &eventlog.RoomStateUpdated{Participants: b("p2"), Sender: "alice"}),
		eventlog.New("room1", 7, &eventlog.RoomStateUpdated{Policy: []byte{}, Sender: "alice"}),
		eventlog.New("room1", 8, &eventlog.RoomClosed{Sender: "alice", Reason: "bye"}),
		eventlog.New("room1", 9, &eventlog.ProposalAccepted{Epoch: 3, Message: b("prop"), ProposalRef: b("pref"), Sender: "bob"}),
		eventlog.New("room1", 10, &eventlog.CommitAccepted{Epoch: 4, Commit: b("commit"), Welcome: b("welcome"),
			WelcomeRoutes: []eventlog.WelcomeRoute{{Ref: b("r1"), Provider: "b.example"}, {Ref: b("r2"), Provider: "c.example"}},
			GroupInfo:     b("gi4"), RatchetTree: b("tree4"), Participants: b("pl"), Policy: b("po"), Members: []string{"x"}, Sender: "alice"}),
		eventlog.New("room1", 10, &eventlog.CommitAccepted{Epoch: 5, Commit: b("commit"), GroupInfo: b("gi5"), RatchetTree: b("tree5")}),
		eventlog.New("room1", 11, &eventlog.ApplicationMessageAccepted{Epoch: 4, Message: b("ciphertext"), Sender: "bob"}),
		eventlog.New("room1", 12, &eventlog.NotifyAccepted{Hub: "a.example", BodyHash: bytes.Repeat([]byte{1}, 32), Body: b("body")}),
		eventlog.New("room1", 13, &eventlog.FanoutEnqueued{Destinations: []string{"b.example", "c.example"}, Back: 1, Part: eventlog.PartWelcome}),
		eventlog.New("", 14, &eventlog.FanoutDelivered{Destination: "b.example", UpTo: 9}),
		eventlog.New("room1", 15, &eventlog.ClientEnqueued{Clients: []string{"c1"}, Back: 2, Part: eventlog.PartMessage, Index: 3}),
		eventlog.New("", 16, &eventlog.ClientDelivered{Client: "c1", UpTo: 1}),
		eventlog.New("room1", 17, &eventlog.GroupBound{Hub: "a.example", GroupID: b("group")}),
		eventlog.New("", 18, &eventlog.NotifyDedupPruned{OlderThan: 1_800_000_000_000, Limit: 1000}),
		eventlog.New("", 19, &eventlog.KeyPackagesExpired{Now: 1_800_000_000_000, Limit: 1000}),
		eventlog.New("", 20, &eventlog.HubKeyDeclared{CipherSuite: 1, SignatureKey: bytes.Repeat([]byte{7}, 32)}),
		eventlog.New("", 21, &eventlog.ClientCallAccepted{Digest: bytes.Repeat([]byte{9}, 32), Expiry: 1_800_000_300_000, Now: 1_800_000_000_000}),
	}
}

// TestEventRoundTrip checks encode/decode/re-encode for every event type.
func TestEventRoundTrip(t *testing.T) {
	seen := map[eventlog.Type]bool{}
	for _, ev := range samples() {
		ev := ev
		t.Run(ev.Type().String(), func(t *testing.T) {
			seen[ev.Type()] = true
			enc, err := eventlog.Encode(&ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := eventlog.Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			if got.Type() != ev.Type() || got.Room != ev.Room || got.Timestamp != ev.Timestamp || got.Version != eventlog.SchemaVersion {
				t.Fatalf("header mismatch: %+v vs %+v", got, ev)
			}
			enc2, err := eventlog.Encode(&got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, enc2) {
				t.Fatalf("re-encoding differs")
			}
			// Field-level equality for the bodies, modulo nil vs empty.
			if !reflect.DeepEqual(canon(t, got.Body), canon(t, ev.Body)) {
				t.Fatalf("body mismatch:\n got %#v\nwant %#v", got.Body, ev.Body)
			}
			// Every strict prefix fails to decode; no panic.
			for i := 0; i < len(enc); i++ {
				if _, err := eventlog.Decode(enc[:i]); err == nil {
					t.Fatalf("prefix of %d bytes decoded", i)
				}
			}
			if _, err := eventlog.Decode(append(append([]byte(nil), enc...), 0)); !errors.Is(err, codec.ErrTrailingData) {
				t.Fatalf("trailing byte: %v", err)
			}
		})
	}
	for _, typ := range eventlog.Types() {
		if !seen[typ] {
			t.Errorf("no round-trip sample for %s", typ)
		}
	}
}

// canon re-decodes a body from its encoding so comparisons ignore nil vs
// empty differences that the encoding does not carry.
func canon(t *testing.T, b eventlog.Body) eventlog.Body {
	t.Helper()
	enc := codec.MustMarshal(b)
	out := eventlog.NewBody(b.EventType())
	if err := codec.Unmarshal(enc, "body", out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEventOptionalPresence(t *testing.T) {
	// nil is absent, empty is present: the distinction survives.
	ev := eventlog.New("r", 1, &eventlog.RoomStateUpdated{Policy: []byte{}})
	enc, _ := eventlog.Encode(&ev)
	got, err := eventlog.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	body := got.Body.(*eventlog.RoomStateUpdated)
	if body.Participants != nil || body.Policy == nil || len(body.Policy) != 0 {
		t.Fatalf("optional fields: %#v", body)
	}
}

func TestEventDecodeErrors(t *testing.T) {
	ev := eventlog.New("r", 1, &eventlog.ClientRemoved{Client: "c"})
	enc, _ := eventlog.Encode(&ev)
	tests := []struct {
		name string
		mod  func([]byte) []byte
		want error
	}{
		{"version 0", func(b []byte) []byte { b[1] = 0; return b }, eventlog.ErrUnsupportedVersion},
		{"version 2", func(b []byte) []byte { b[1] = 2; return b }, eventlog.ErrUnsupportedVersion},
		{"type 0", func(b []byte) []byte { b[3] = 0; return b }, eventlog.ErrUnknownType},
		{"type 99", func(b []byte) []byte { b[3] = 99; return b }, eventlog.ErrUnknownType},
		{"body trailing", func(b []byte) []byte {
			// grow the body by one byte: bump its length and append.
			b[len(b)-3]++
			return append(b, 'x')
		}, codec.ErrTrailingData},
		{"empty", func([]byte) []byte { return nil }, codec.ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mod(append([]byte(nil), enc...))
			_, err := eventlog.Decode(b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := eventlog.Encode(&eventlog.Event{Version: 1}); !errors.Is(err, eventlog.ErrNilBody) {
		t.Fatalf("nil body: %v", err)
	}
	if _, err := eventlog.Encode(&eventlog.Event{Version: 9, Body: &eventlog.ClientRemoved{}}); !errors.Is(err, eventlog.ErrUnsupportedVersion) {
		t.Fatalf("version 9: %v", err)
	}
}

func TestKeyComponent(t *testing.T) {
	vals := []string{"", "\x00", "\x00\x00", "\x00\x01", "\x00\xff", "a", "a\x00", "a\x00b", "ab", "b", "\xff", "\xff\x00"}
	var encs [][]byte
	for _, v := range vals {
		e := eventlog.AppendKeyString(nil, v)
		if !bytes.Equal(e, eventlog.AppendKeyComponent(nil, []byte(v))) {
			t.Fatalf("string and bytes encodings differ for %q", v)
		}
		got, rest, err := eventlog.ReadKeyComponent(append(e, 9, 9))
		if err != nil || string(got) != v || !bytes.Equal(rest, []byte{9, 9}) {
			t.Fatalf("%q: got %q rest %x err %v", v, got, rest, err)
		}
		encs = append(encs, e)
	}
	for i := range vals {
		for j := range vals {
			if c1, c2 := bytes.Compare(encs[i], encs[j]), bytes.Compare([]byte(vals[i]), []byte(vals[j])); c1 != c2 {
				t.Fatalf("order of %q,%q not preserved", vals[i], vals[j])
			}
			if i != j && bytes.HasPrefix(encs[i], encs[j]) {
				t.Fatalf("%q encoding is a prefix of %q's", vals[j], vals[i])
			}
		}
	}
	for _, bad := range [][]byte{nil, {'a'}, {0}, {0, 2}} {
		if _, _, err := eventlog.ReadKeyComponent(bad); err == nil {
			t.Fatalf("%x decoded", bad)
		}
	}
	if got := eventlog.PrefixEnd([]byte{1, 0xff}); !bytes.Equal(got, []byte{2}) {
		t.Fatalf("PrefixEnd: %x", got)
	}
	if eventlog.PrefixEnd([]byte{0xff}) != nil {
		t.Fatal("PrefixEnd of 0xff")
	}
}

// FuzzEvent checks that decoding never panics and that whatever decodes
// re-encodes to exactly the input (the encoding is canonical).
func FuzzEvent(f *testing.F) {
	for _, ev := range samples() {
		b, err := eventlog.Encode(&ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0, 12, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := eventlog.Decode(data)
		if err != nil {
			return
		}
		enc, err := eventlog.Encode(&ev)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data, enc)
		}
	})
}

// record is a stored record as the Appender writes it: chain hash,
// big-endian sequence numbers, event encoding.
func record(t testing.TB, h [eventlog.HashSize]byte, ev *eventlog.Event) []byte {
	t.Helper()
	enc, err := eventlog.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	b := binary.BigEndian.AppendUint64(append([]byte(nil), h[:]...), ev.Seq)
	return append(binary.BigEndian.AppendUint64(b, ev.RoomSeq), enc...)
}

// FuzzDecodeRecord: a stored record (read back from Pebble, or from a
// snapshot another node sent) decodes without panicking, and what decodes
// re-encodes to exactly the input.
func FuzzDecodeRecord(f *testing.F) {
	for i, ev := range samples() {
		ev.Seq = uint64(i + 1)
		if ev.Room != "" {
			ev.RoomSeq = uint64(i + 1)
		}
		b := record(f, eventlog.ChainHash([eventlog.HashSize]byte{}, []byte{byte(i)}), &ev)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, h, err := eventlog.DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, eventlog.ErrCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if out := record(t, h, &ev); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}

// FuzzReadKeyComponent: a key component of a stored key decodes without
// panicking, and the bytes it consumed are exactly its encoding.
func FuzzReadKeyComponent(f *testing.F) {
	for _, v := range []string{"", "\x00", "a\x00b", "mimi://a.example/r/clubhouse", "\xff\x00"} {
		f.Add(append(eventlog.AppendKeyString(nil, v), 0, 0, 0, 0, 0, 0, 0, 9))
	}
	f.Add([]byte{0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		comp, rest, err := eventlog.ReadKeyComponent(b)
		if err != nil {
			return
		}
		if n := len(b) - len(rest); n < 0 || !bytes.Equal(b[n:], rest) || !bytes.Equal(eventlog.AppendKeyComponent(nil, comp), b[:n]) {
			t.Fatalf("component %x and rest %x do not make up %x", comp, rest, b)
		}
	})
}

// benchEvents are events of the federation hot path carrying a 1 KiB
// message.
func benchEvents() map[string]eventlog.Event {
	msg := bytes.Repeat([]byte{0xa5}, 1024)
	const room = "mimi://a.example/r/bench-room"
	return map[string]eventlog.Event{
		"app":     eventlog.New(room, 1700000000000, &eventlog.ApplicationMessageAccepted{Epoch: 3, Message: msg, Sender: "mimi://c.example/u/sender/d/1"}),
		"notify":  eventlog.New(room, 1700000000000, &eventlog.NotifyAccepted{Hub: "a.example", BodyHash: bytes.Repeat([]byte{1}, 32), Body: msg}),
		"enqueue": eventlog.New(room, 1700000000000, &eventlog.ClientEnqueued{Clients: []string{"mimi://a.example/u/recv/d/1", "mimi://a.example/u/recv/d/2"}, Back: 1}),
	}
}

var benchEventNames = []string{"app", "notify", "enqueue"}

func BenchmarkEventEncode(b *testing.B) {
	for _, name := range benchEventNames {
		ev := benchEvents()[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eventlog.Encode(&ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEventDecode(b *testing.B) {
	for _, name := range benchEventNames {
		ev := benchEvents()[name]
		enc, err := eventlog.Encode(&ev)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eventlog.Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestFanoutDestinations(t *testing.T) {
	evs := []eventlog.Event{
		eventlog.New("r", 1, &eventlog.ApplicationMessageAccepted{}),
		eventlog.New("r", 1, &eventlog.FanoutEnqueued{Destinations: []string{"c.example", "b.example"}}),
		eventlog.New("r", 1, &eventlog.ClientEnqueued{Clients: []string{"x"}}),
		eventlog.New("r", 1, &eventlog.FanoutEnqueued{Destinations: []string{"b.example", "d.example"}}),
	}
	if got := eventlog.FanoutDestinations(evs); !reflect.DeepEqual(got, []string{"b.example", "c.example", "d.example"}) {
		t.Fatalf("FanoutDestinations = %v", got)
	}
	if got := eventlog.FanoutDestinations(evs[:1]); len(got) != 0 {
		t.Fatalf("no FanoutEnqueued: %v", got)
	}
}
