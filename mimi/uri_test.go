package mimi

import (
	"errors"
	"testing"
)

func TestParseURI(t *testing.T) {
	good := []struct {
		in   string
		kind URIKind
		prov string
		id   string
	}{
		{"mimi://a.example", KindProvider, "a.example", ""},
		{"mimi://a.example/u/alice", KindUser, "a.example", "alice"},
		{"mimi://a.example/d/ClientA1", KindClient, "a.example", "ClientA1"},
		{"mimi://a.example/r/clubhouse", KindRoom, "a.example", "clubhouse"},
		{"mimi://a.example/g/clubhouse", KindGroup, "a.example", "clubhouse"},
		{"mimi://sub-1.b.example/u/bob_2.x~y", KindUser, "sub-1.b.example", "bob_2.x~y"},
	}
	for _, tc := range good {
		u, err := ParseURI(tc.in)
		if err != nil {
			t.Errorf("ParseURI(%q): %v", tc.in, err)
			continue
		}
		if u.Kind != tc.kind || u.Provider != tc.prov || u.ID != tc.id {
			t.Errorf("ParseURI(%q) = %+v", tc.in, u)
		}
		if u.String() != tc.in {
			t.Errorf("round trip %q -> %q", tc.in, u.String())
		}
	}
	bad := []string{
		"", "mimi:", "mimi://", "http://a.example/u/alice", "MIMI://a.example",
		"mimi://A.example/u/alice", "mimi://a.example:443/u/alice", "mimi://user@a.example",
		"mimi://localhost", "mimi://a.example/", "mimi://a.example/u/", "mimi://a.example/u",
		"mimi://a.example/x/alice", "mimi://a.example/u/al ice", "mimi://a.example/u/al/ice",
		"mimi://a.example/u/alice?x=1", "mimi://a.example/u/alice#f", "mimi://-a.example",
		"mimi://a..example", "mimi://a.example/u/%41", "mimi://127.0.0.1", "mimi://a.example.123/u/x",
	}
	for _, in := range bad {
		if _, err := ParseURI(in); !errors.Is(err, ErrInvalidURI) {
			t.Errorf("ParseURI(%q) err = %v, want ErrInvalidURI", in, err)
		}
	}
}

func TestParseURIKind(t *testing.T) {
	if _, err := ParseURIKind("mimi://a.example/u/alice", KindRoom); !errors.Is(err, ErrInvalidURI) {
		t.Fatalf("want kind mismatch error, got %v", err)
	}
	if u, err := ParseURIKind("mimi://a.example/r/clubhouse", KindRoom); err != nil || u.ID != "clubhouse" {
		t.Fatalf("got %+v %v", u, err)
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"mimi://a.example/u/alice", "mimi://a.example", "mimi://b.example/r/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		if u.String() != s {
			t.Fatalf("accepted %q but canonical form is %q", s, u.String())
		}
	})
}
