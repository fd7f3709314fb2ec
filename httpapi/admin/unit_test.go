package admin

import (
	"context"
	"strings"
	"testing"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// TestSummarizeEveryType checks that every event type has a summary and
// that empty or garbage MLS bytes are reported, not fatal.
func TestSummarizeEveryType(t *testing.T) {
	garbage := []byte{0, 1, 0, 1, 0xff, 0xfe}
	for _, typ := range eventlog.Types() {
		ev := eventlog.New("r", 1, eventlog.NewBody(typ))
		ev.Seq = 10
		if s := Summarize(&ev); s == "" || strings.HasPrefix(s, "(") {
			t.Errorf("%s: summary %q", typ, s)
		}
	}
	for _, body := range []eventlog.Body{
		&eventlog.RoomCreated{GroupInfo: garbage},
		&eventlog.CommitAccepted{Commit: garbage, GroupInfo: garbage, Welcome: garbage},
		&eventlog.ProposalAccepted{Message: garbage},
		&eventlog.FanoutEnqueued{Back: 99},
		&eventlog.ClientEnqueued{Back: 0},
	} {
		ev := eventlog.New("r", 1, body)
		ev.Seq = 10
		s := Summarize(&ev)
		if !strings.Contains(s, "undecodable") && !strings.Contains(s, "invalid(back") {
			t.Errorf("%s: summary %q", ev.Type(), s)
		}
	}
	if s := Summarize(&eventlog.Event{}); s != "(no body)" {
		t.Errorf("no body: %q", s)
	}
	long := make([]string, 20)
	for i := range long {
		long[i] = "d"
	}
	if got := list(long); !strings.HasSuffix(got, ",…+12") {
		t.Errorf("list = %q", got)
	}
}

// memState is a State over a fixed event list.
type memState struct {
	State
	events []eventlog.Event
}

func (m *memState) RoomEvents(room string, from uint64, limit int) ([]eventlog.Event, error) {
	var out []eventlog.Event
	for _, ev := range m.events {
		if ev.Room == room && ev.RoomSeq >= from && (limit <= 0 || len(out) < limit) {
			out = append(out, ev)
		}
	}
	return out, nil
}

// TestVerifyRoomFailures checks the first failure of rooms whose history
// cannot be re-run.
func TestVerifyRoomFailures(t *testing.T) {
	mk := func(seq, roomSeq uint64, body eventlog.Body) eventlog.Event {
		ev := eventlog.New("r", seq, body)
		ev.Seq, ev.RoomSeq = seq, roomSeq
		return ev
	}
	for _, tc := range []struct {
		name    string
		events  []eventlog.Event
		seq     uint64
		errPart string
	}{
		{"opaque GroupInfo", []eventlog.Event{mk(1, 1, &eventlog.RoomCreated{GroupInfo: []byte("gi0"), RatchetTree: []byte("t")})}, 1, "GroupInfo"},
		{"commit before creation", []eventlog.Event{mk(4, 1, &eventlog.CommitAccepted{Epoch: 1})}, 4, "before RoomCreated"},
		{"message before creation", []eventlog.Event{mk(4, 1, &eventlog.ApplicationMessageAccepted{})}, 4, "before RoomCreated"},
		{"no events", nil, 0, "no RoomCreated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rv := verifyRoom(context.Background(), &memState{events: tc.events}, "r", 100)
			f := rv.GetFirstFailure()
			if rv.GetOk() || f == nil || f.GetSeq() != tc.seq || !strings.Contains(f.GetError(), tc.errPart) {
				t.Errorf("got %v", rv)
			}
		})
	}
	// Events after maxSeq are not checked.
	rv := verifyRoom(context.Background(), &memState{events: []eventlog.Event{
		mk(1, 1, &eventlog.RoomCreated{GroupInfo: []byte("x")}),
	}}, "r", 0)
	if rv.GetEventsChecked() != 0 {
		t.Errorf("checked %d events beyond the head", rv.GetEventsChecked())
	}
}

func TestMergeFanout(t *testing.T) {
	out := mergeFanout([]projections.Destination{{Destination: "z.example", Cursor: projections.Cursor{Enqueued: 3, Acked: 3}}},
		[]FanoutDestinationStatus{{Destination: "a.example", Enqueued: 1}, {Destination: "z.example", LastError: "boom"}}, true)
	ds := out.GetDestinations()
	if len(ds) != 2 || ds[0].GetDestination() != "a.example" || ds[0].GetBacklog() != 1 || ds[1].GetLastError() != "boom" || ds[1].GetBacklog() != 0 {
		t.Errorf("merged = %v", ds)
	}
}

// FuzzDecodeStored feeds arbitrary bytes to everything that decodes stored
// MLS data: it must return errors, never panic.
func FuzzDecodeStored(f *testing.F) {
	f.Add([]byte{0, 1, 0, 4})
	f.Add([]byte{0, 1, 0, 1, 0, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeGroupInfo(b)
		_, _ = DecodePublicMessage(b)
		_, _ = DecodeRatchetTree(b)
		_, _ = decodeParticipants(b)
		ev := eventlog.New("r", 1, &eventlog.CommitAccepted{Commit: b, GroupInfo: b})
		_ = Summarize(&ev)
		c := &roomChecker{rv: verifyRoom(context.Background(), &memState{}, "x", 0)}
		_ = c.safeCheck(&eventlog.Event{Body: &eventlog.RoomCreated{GroupInfo: b, RatchetTree: b}})
	})
}
