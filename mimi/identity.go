package mimi

import (
	"errors"
	"fmt"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// ErrInvalidIdentity is wrapped by every client identity error.
var ErrInvalidIdentity = errors.New("mimi: invalid client identity")

// ClientIdentity binds an MLS client to its MIMI user. The draft leaves
// credentials open (draft-ralston-mimi-protocol-02, Sections 1.1 and 4.2);
// we carry the identity in an MLS basic credential whose identity field is
//
//	struct { opaque user_uri<V>; opaque client_uri<V>; } MIMIClientIdentity;
//
// so that the hub can map every leaf of a room's group to a participant.
// User and client must belong to the same provider: a provider vouches only
// for its own users (see docs/wire.md).
type ClientIdentity struct {
	User   string // a user URI
	Client string // a client URI
}

// MarshalMLS implements codec.Marshaler.
func (c *ClientIdentity) MarshalMLS(w *codec.Writer) {
	w.Opaque([]byte(c.User))
	w.Opaque([]byte(c.Client))
}

// UnmarshalMLS implements codec.Unmarshaler.
func (c *ClientIdentity) UnmarshalMLS(r *codec.Reader) {
	c.User = readURIKind(r, "MIMIClientIdentity.user_uri", KindUser)
	c.Client = readURIKind(r, "MIMIClientIdentity.client_uri", KindClient)
}

// Validate checks both URIs and that they name the same provider.
func (c *ClientIdentity) Validate() error {
	u, err := ParseURIKind(c.User, KindUser)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	d, err := ParseURIKind(c.Client, KindClient)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	if u.Provider != d.Provider {
		return fmt.Errorf("%w: user %s and client %s are at different providers", ErrInvalidIdentity, c.User, c.Client)
	}
	return nil
}

// Credential returns the MLS basic credential carrying the identity.
func (c *ClientIdentity) Credential() (wire.Credential, error) {
	if err := c.Validate(); err != nil {
		return wire.Credential{}, err
	}
	b, err := codec.Marshal(c)
	if err != nil {
		return wire.Credential{}, err
	}
	return wire.Credential{Type: wire.CredentialBasic, Identity: b}, nil
}

// IdentityFromCredential decodes and validates the client identity in an
// MLS credential.
func IdentityFromCredential(cred *wire.Credential) (*ClientIdentity, error) {
	if cred.Type != wire.CredentialBasic {
		return nil, fmt.Errorf("%w: credential type %d, want basic", ErrInvalidIdentity, cred.Type)
	}
	c := new(ClientIdentity)
	if err := codec.Unmarshal(cred.Identity, "MIMIClientIdentity", c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
