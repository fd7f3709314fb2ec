package mimi

import (
	"errors"
	"testing"

	"github.com/openmimi/mimi/mls/wire"
)

func TestClientIdentity(t *testing.T) {
	id := &ClientIdentity{User: "mimi://c.example/u/cathy", Client: "mimi://c.example/d/c3"}
	cred, err := id.Credential()
	if err != nil {
		t.Fatal(err)
	}
	got, err := IdentityFromCredential(&cred)
	if err != nil || *got != *id {
		t.Fatalf("%+v %v", got, err)
	}
	bad := []*ClientIdentity{
		{User: "mimi://c.example/u/cathy", Client: "mimi://b.example/d/c3"}, // other provider
		{User: "mimi://c.example/d/cathy", Client: "mimi://c.example/d/c3"}, // not a user
		{User: "mimi://c.example/u/cathy", Client: "mimi://c.example/u/c3"}, // not a client
	}
	for _, b := range bad {
		if _, err := b.Credential(); !errors.Is(err, ErrInvalidIdentity) {
			t.Errorf("%+v: %v", b, err)
		}
	}
	for _, c := range []wire.Credential{
		{Type: wire.CredentialX509, Certificates: [][]byte{{1}}},
		{Type: wire.CredentialBasic, Identity: []byte("alice")},
		{Type: wire.CredentialBasic, Identity: append(cred.Identity, 0)},
	} {
		if _, err := IdentityFromCredential(&c); !errors.Is(err, ErrInvalidIdentity) {
			t.Errorf("credential %+v: %v", c, err)
		}
	}
}
