package mimi

import (
	"errors"
	"testing"

	"github.com/openmimi/mimi/mls/appsync"
)

func clubhouse(t *testing.T) *Room {
	t.Helper()
	rm := &Room{
		Policy: Policy{RoomID: "mimi://a.example/r/clubhouse", Roles: []Role{
			{Name: "admin", Permissions: []Permission{CanAddUser, CanRemoveUser, CanSetUserRole, CanSendMessage}},
			{Name: "member", Permissions: []Permission{CanSendMessage}},
		}},
		Participants: []Participant{{User: "mimi://a.example/u/alice", Role: "admin"}},
	}
	return rm
}

func TestRoomStatesRoundTrip(t *testing.T) {
	rm := clubhouse(t)
	st, err := rm.ApplicationStates()
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	st2, err := appsync.ParseStates(b)
	if err != nil {
		t.Fatal(err)
	}
	rm2, err := RoomFromStates(st2)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := rm2.Participant("mimi://a.example/u/alice"); !ok || r != "admin" {
		t.Fatalf("alice: %q %v", r, ok)
	}
	if !rm2.Policy.Role("admin").Has(CanAddUser) || rm2.Policy.Role("member").Has(CanAddUser) {
		t.Fatal("policy permissions lost")
	}
}

func TestChangeSetAppSyncRoundTrip(t *testing.T) {
	rm := clubhouse(t)
	rm, _ = rm.Apply(&ChangeSet{Add: []Participant{{"mimi://b.example/u/bob", "member"}}})
	c := &ChangeSet{
		Add:     []Participant{{"mimi://d.example/u/diana", "admin"}, {"mimi://c.example/u/cathy", "member"}},
		Remove:  []string{"mimi://b.example/u/bob"},
		SetRole: []Participant{{"mimi://a.example/u/alice", "member"}},
	}
	p := c.AppSync()
	back, err := ChangeSetFromAppSync(rm, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Add) != 2 || len(back.Remove) != 1 || len(back.SetRole) != 1 {
		t.Fatalf("decoded %+v", back)
	}
	// Applying the AppSync to the states and the change set to the room
	// give the same room.
	st, _ := rm.ApplicationStates()
	st2, err := st.ApplyAll([]*appsync.AppSync{p})
	if err != nil {
		t.Fatal(err)
	}
	viaStates, err := RoomFromStates(st2)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := rm.Apply(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(viaStates.Participants) != len(direct.Participants) {
		t.Fatalf("%v vs %v", viaStates.Participants, direct.Participants)
	}
	for i := range direct.Participants {
		if viaStates.Participants[i] != direct.Participants[i] {
			t.Fatalf("%v vs %v", viaStates.Participants, direct.Participants)
		}
	}
}

func TestChangeSetValidate(t *testing.T) {
	rm := clubhouse(t)
	bad := []*ChangeSet{
		{Add: []Participant{{"mimi://a.example/u/alice", "admin"}}},      // already in
		{Add: []Participant{{"mimi://b.example/u/bob", "owner"}}},        // no such role
		{Add: []Participant{{"mimi://b.example/r/bob", "admin"}}},        // not a user URI
		{Remove: []string{"mimi://b.example/u/bob"}},                     // not in
		{SetRole: []Participant{{"mimi://b.example/u/bob", "admin"}}},    // not in
		{SetRole: []Participant{{"mimi://a.example/u/alice", "nobody"}}}, // no such role
		{Remove: []string{"mimi://a.example/u/alice"}, SetRole: []Participant{{"mimi://a.example/u/alice", "member"}}},
	}
	for i, c := range bad {
		if err := c.Validate(rm); !errors.Is(err, ErrInvalidChange) {
			t.Errorf("case %d: err %v", i, err)
		}
	}
}

func TestAuthorize(t *testing.T) {
	rm := clubhouse(t)
	rm, _ = rm.Apply(&ChangeSet{Add: []Participant{{"mimi://b.example/u/bob", "member"}}})
	addCathy := &ChangeSet{Add: []Participant{{"mimi://c.example/u/cathy", "member"}}}
	if err := rm.Authorize("mimi://a.example/u/alice", addCathy); err != nil {
		t.Fatal(err)
	}
	if err := rm.Authorize("mimi://b.example/u/bob", addCathy); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("bob adding: %v", err)
	}
	// Leaving is always allowed; removing another user is not for members.
	if err := rm.Authorize("mimi://b.example/u/bob", &ChangeSet{Remove: []string{"mimi://b.example/u/bob"}}); err != nil {
		t.Fatal(err)
	}
	if err := rm.Authorize("mimi://b.example/u/bob", &ChangeSet{Remove: []string{"mimi://a.example/u/alice"}}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("bob removing alice: %v", err)
	}
	if err := rm.Authorize("mimi://z.example/u/zed", addCathy); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("outsider: %v", err)
	}
	if !rm.Can("mimi://b.example/u/bob", CanSendMessage) || rm.Can("mimi://z.example/u/zed", CanSendMessage) {
		t.Fatal("Can")
	}
}

func TestRoomFromStatesRejects(t *testing.T) {
	rm := clubhouse(t)
	st, _ := rm.ApplicationStates()
	// A participant with an undefined role.
	bad := st.Clone()
	bad.Get(AppIDParticipantList).Entries[0].Value = []byte("ghost")
	if _, err := RoomFromStates(bad); !errors.Is(err, ErrInvalidRoomState) {
		t.Fatalf("err %v", err)
	}
	// Missing policy.
	if _, err := RoomFromStates(&appsync.States{}); !errors.Is(err, ErrInvalidRoomState) {
		t.Fatalf("err %v", err)
	}
	// Unsorted roles are not canonical.
	p := rm.Policy
	p.Roles = []Role{p.Roles[1], p.Roles[0]}
	pst, _ := (&Room{Policy: p, Participants: rm.Participants}).ApplicationStates()
	if _, err := RoomFromStates(pst); !errors.Is(err, ErrInvalidRoomState) {
		t.Fatalf("unsorted roles: err %v", err)
	}
}
