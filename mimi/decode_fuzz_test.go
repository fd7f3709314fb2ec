package mimi

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// addTruncations seeds f with b and a few of its prefixes.
func addTruncations(f *testing.F, b []byte) {
	f.Add(b)
	for _, n := range []int{len(b) - 1, len(b) / 2, 1} {
		if n > 0 && n < len(b) {
			f.Add(b[:n])
		}
	}
}

// FuzzParseDirectory: a peer's directory document
// (draft-ralston-mimi-protocol-02, Section 5.1) never panics the parser,
// and an accepted one has every template an https URL with its placeholder
// once. JSON is not canonical (white space, member order and case,
// escapes, duplicate members), so instead of comparing bytes the test
// checks that the accepted document survives re-encoding.
func FuzzParseDirectory(f *testing.F) {
	// The example of Section 5.1.
	addTruncations(f, []byte(`{
  "keyMaterial":
     "https://mimi.example.com/v1/keyMaterial/{targetUser}",
  "update": "https://mimi.example.com/v1/update{roomId}",
  "notify": "https://mimi.example.com/v1/notify/{roomId}",
  "submitMessage":
     "https://mimi.example.com/v1/submitMessage/{roomId}",
  "groupInfo":
     "https://mimi.example.com/v1/groupInfo/{roomId}"
}`))
	d := Directory{KeyMaterial: "https://a.example/k/{targetUser}", Update: "https://a.example/u/{roomId}",
		Notify: "https://a.example:8443/n/{roomId}", SubmitMessage: "https://{roomId}.a.example/s", GroupInfo: "https://a.example/g/{roomId}/x"}
	js, err := json.Marshal(d)
	if err != nil {
		f.Fatal(err)
	}
	addTruncations(f, js)
	f.Add([]byte(`{"keyMaterial":"http://a.example/{targetUser}"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDirectory(b)
		if err != nil {
			if d != nil {
				t.Fatal("directory returned with an error")
			}
			return
		}
		if len(b) > maxDirectory {
			t.Fatalf("accepted a document of %d bytes", len(b))
		}
		for _, e := range []struct{ tmpl, ph string }{
			{d.KeyMaterial, "{targetUser}"}, {d.Update, "{roomId}"}, {d.Notify, "{roomId}"},
			{d.SubmitMessage, "{roomId}"}, {d.GroupInfo, "{roomId}"},
		} {
			if strings.Count(e.tmpl, e.ph) != 1 || !strings.HasPrefix(strings.ToLower(e.tmpl), "https:") {
				t.Fatalf("accepted template %q", e.tmpl)
			}
			if u, err := url.Parse(Expand(e.tmpl, URI{Kind: KindRoom, Provider: "a.example", ID: "r"})); err != nil || u.Scheme != "https" {
				t.Fatalf("template %q expands to a bad URL: %v", e.tmpl, err)
			}
		}
		js, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := ParseDirectory(js)
		if err != nil || *d2 != *d {
			t.Fatalf("re-encoded directory differs: %v", err)
		}
	})
}

// FuzzClientIdentity: the MIMI client identity in an MLS basic credential
// (docs/wire.md), which clients and peers present in every KeyPackage,
// leaf and GroupInfoRequest, decodes without panicking; what decodes
// re-encodes to exactly the input (the encoding is canonical), and what
// IdentityFromCredential accepts is a valid identity whose Credential is
// the input credential.
func FuzzClientIdentity(f *testing.F) {
	for _, id := range []ClientIdentity{
		{User: "mimi://c.example/u/cathy", Client: "mimi://c.example/d/c3"},
		{User: "mimi://c.example/u/cathy", Client: "mimi://b.example/d/c3"},
		{User: "mimi://a.example/u/alice", Client: "mimi://a.example/u/alice"},
	} {
		b, err := codec.Marshal(&id)
		if err != nil {
			f.Fatal(err)
		}
		addTruncations(f, b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var id ClientIdentity
		if err := codec.Unmarshal(b, "MIMIClientIdentity", &id); err == nil {
			out, err := codec.Marshal(&id)
			if err != nil || !bytes.Equal(out, b) {
				t.Fatalf("re-encoding differs (%v):\n in %x\nout %x", err, b, out)
			}
		}
		got, err := IdentityFromCredential(&wire.Credential{Type: wire.CredentialBasic, Identity: b})
		if err != nil {
			return
		}
		if got.Validate() != nil {
			t.Fatalf("accepted invalid identity %+v", got)
		}
		cred, err := got.Credential()
		if err != nil || !bytes.Equal(cred.Identity, b) {
			t.Fatalf("credential of the accepted identity differs: %v", err)
		}
	})
}

// samplePolicy is a room policy with two roles.
var samplePolicy = Policy{RoomID: "mimi://a.example/r/clubhouse", Roles: []Role{
	{Name: "admin", Permissions: []Permission{CanAddUser, CanRemoveUser, CanSetUserRole, CanSendMessage}},
	{Name: "member", Permissions: []Permission{CanSendMessage}},
}}

// FuzzPolicy: the room policy (draft-ralston-mimi-protocol-02, Section
// 4.3.1), which arrives in a peer's GroupInfo and commits and is stored by
// the hub, decodes without panicking; what decodes is in the canonical
// order (Normalize changes nothing) and re-encodes to exactly the input.
func FuzzPolicy(f *testing.F) {
	for _, p := range []Policy{
		samplePolicy,
		{RoomID: "mimi://b.example/r/x"},
		{RoomID: "mimi://b.example/r/x", Roles: []Role{{Name: "a"}, {Name: "b", Permissions: []Permission{1, 0xffff}}}},
	} {
		b, err := codec.Marshal(&p)
		if err != nil {
			f.Fatal(err)
		}
		addTruncations(f, b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Policy
		if err := codec.Unmarshal(b, "RoomPolicy", &p); err != nil {
			return
		}
		p.Normalize()
		out, err := codec.Marshal(&p)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("accepted policy is not canonical (%v):\n in %x\nout %x", err, b, out)
		}
	})
}

// FuzzRoomFromStates: application states (draft-ralston-mimi-protocol-02,
// Section 7) from a GroupInfo or the hub's store yield a room or an error,
// never a panic. An accepted room has its participants in ascending order
// (Room.Participant searches them) and survives its own encoding; states
// of other applications are accepted and dropped, so bytes are not
// compared.
func FuzzRoomFromStates(f *testing.F) {
	for _, rm := range []*Room{
		{Policy: samplePolicy, Participants: []Participant{{User: "mimi://a.example/u/alice", Role: "admin"}, {User: "mimi://b.example/u/bob", Role: "member"}}},
		{Policy: Policy{RoomID: "mimi://b.example/r/empty", Roles: []Role{{Name: "x"}}}},
	} {
		st, err := rm.ApplicationStates()
		if err != nil {
			f.Fatal(err)
		}
		b, err := st.Bytes()
		if err != nil {
			f.Fatal(err)
		}
		addTruncations(f, b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := appsync.ParseStates(b)
		if err != nil {
			return
		}
		rm, err := RoomFromStates(st)
		if err != nil {
			return
		}
		for i := 1; i < len(rm.Participants); i++ {
			if cmpStr(rm.Participants[i-1].User, rm.Participants[i].User) >= 0 {
				t.Fatalf("participants out of order: %v", rm.Participants)
			}
		}
		st2, err := rm.ApplicationStates()
		if err != nil {
			t.Fatal(err)
		}
		rm2, err := RoomFromStates(st2)
		if err != nil || !reflect.DeepEqual(rm, rm2) {
			t.Fatalf("room differs after re-encoding: %v", err)
		}
	})
}
