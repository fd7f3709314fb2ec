package mimi

import (
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// KeyMaterialRequest (draft-ralston-mimi-protocol-02, Section 5.2).
type KeyMaterialRequest struct {
	Protocol               Protocol
	RequestingUser         string
	TargetUser             string
	RoomID                 string
	AcceptableCiphersuites []cipher.SuiteID
	RequiredCapabilities   wire.RequiredCapabilities
}

// MarshalMLS implements codec.Marshaler.
func (m *KeyMaterialRequest) MarshalMLS(w *codec.Writer) {
	w.U8(uint8(m.Protocol))
	w.Opaque([]byte(m.RequestingUser))
	w.Opaque([]byte(m.TargetUser))
	w.Opaque([]byte(m.RoomID))
	w.Vector(func(w *codec.Writer) {
		for _, s := range m.AcceptableCiphersuites {
			w.U16(uint16(s))
		}
	})
	m.RequiredCapabilities.MarshalMLS(w)
}

// UnmarshalMLS implements codec.Unmarshaler. It requires mls10, user URIs
// for the requesting and target users, a room URI, and a non-empty list of
// cipher suites.
func (m *KeyMaterialRequest) UnmarshalMLS(r *codec.Reader) {
	m.Protocol = readProtocol(r, "KeyMaterialRequest.protocol")
	m.RequestingUser = readURIKind(r, "KeyMaterialRequest.requestingUser", KindUser)
	m.TargetUser = readURIKind(r, "KeyMaterialRequest.targetUser", KindUser)
	m.RoomID = readURIKind(r, "KeyMaterialRequest.roomId", KindRoom)
	m.AcceptableCiphersuites = nil
	r.Vector("KeyMaterialRequest.acceptableCiphersuites", func(r *codec.Reader) {
		m.AcceptableCiphersuites = append(m.AcceptableCiphersuites, cipher.SuiteID(r.U16("KeyMaterialRequest.acceptableCiphersuites")))
	})
	if r.Err() == nil && len(m.AcceptableCiphersuites) == 0 {
		r.Fail("KeyMaterialRequest.acceptableCiphersuites", fmt.Errorf("%w: empty", codec.ErrInvalidValue))
	}
	m.RequiredCapabilities.UnmarshalMLS(r)
}

func readURIKind(r *codec.Reader, field string, k URIKind) string {
	s := readURI(r, field)
	if r.Err() != nil {
		return ""
	}
	if u, _ := ParseURI(s); u.Kind != k {
		r.Fail(field, fmt.Errorf("%w: want a %s URI", codec.ErrInvalidValue, k))
		return ""
	}
	return s
}

// KeyMaterialUserCode (draft-ralston-mimi-protocol-02, Section 5.2).
type KeyMaterialUserCode uint8

// User status codes (draft-ralston-mimi-protocol-02, Section 5.2).
const (
	UserSuccess              KeyMaterialUserCode = 0
	UserPartialSuccess       KeyMaterialUserCode = 1
	UserIncompatibleProtocol KeyMaterialUserCode = 2
	UserNoCompatibleMaterial KeyMaterialUserCode = 3
	UserUnknown              KeyMaterialUserCode = 4
	UserNoConsent            KeyMaterialUserCode = 5
	UserNoConsentForThisRoom KeyMaterialUserCode = 6
	UserDeleted              KeyMaterialUserCode = 7
)

// KeyMaterialClientCode (draft-ralston-mimi-protocol-02, Section 5.2).
type KeyMaterialClientCode uint8

// Client status codes (draft-ralston-mimi-protocol-02, Section 5.2).
const (
	ClientSuccess              KeyMaterialClientCode = 0
	ClientKeyMaterialExhausted KeyMaterialClientCode = 1
	ClientNothingCompatible    KeyMaterialClientCode = 2
)

// ClientKeyMaterial (draft-ralston-mimi-protocol-02, Section 5.2).
// KeyPackage is set for success; Capabilities optionally for
// nothingCompatible.
type ClientKeyMaterial struct {
	Status       KeyMaterialClientCode
	ClientURI    string
	KeyPackage   *wire.KeyPackage
	Capabilities *wire.Capabilities
}

// KeyMaterialResponse (draft-ralston-mimi-protocol-02, Section 5.2).
type KeyMaterialResponse struct {
	Protocol   Protocol
	UserStatus KeyMaterialUserCode
	UserURI    string
	Clients    []ClientKeyMaterial
}

// MarshalMLS implements codec.Marshaler.
func (m *KeyMaterialResponse) MarshalMLS(w *codec.Writer) {
	w.U8(uint8(m.Protocol))
	w.U8(uint8(m.UserStatus))
	w.Opaque([]byte(m.UserURI))
	w.Vector(func(w *codec.Writer) {
		for i := range m.Clients {
			c := &m.Clients[i]
			w.U8(uint8(c.Status))
			w.Opaque([]byte(c.ClientURI))
			switch c.Status {
			case ClientSuccess:
				if c.KeyPackage == nil {
					w.Fail(fmt.Errorf("mimi: ClientKeyMaterial %s: success without a KeyPackage", c.ClientURI))
					return
				}
				c.KeyPackage.MarshalMLS(w)
			case ClientNothingCompatible:
				w.Optional(c.Capabilities != nil, func(w *codec.Writer) { c.Capabilities.MarshalMLS(w) })
			}
		}
	})
}

// UnmarshalMLS implements codec.Unmarshaler. It enforces the draft's rule
// that only success, partialSuccess and noCompatibleMaterial carry clients.
func (m *KeyMaterialResponse) UnmarshalMLS(r *codec.Reader) {
	m.Protocol = readProtocol(r, "KeyMaterialResponse.protocol")
	m.UserStatus = KeyMaterialUserCode(r.U8("KeyMaterialResponse.userStatus"))
	if r.Err() == nil && m.UserStatus > UserDeleted {
		r.Fail("KeyMaterialResponse.userStatus", codec.ErrInvalidValue)
	}
	m.UserURI = readURIKind(r, "KeyMaterialResponse.userUri", KindUser)
	m.Clients = nil
	r.Vector("KeyMaterialResponse.clients", func(r *codec.Reader) {
		var c ClientKeyMaterial
		c.Status = KeyMaterialClientCode(r.U8("ClientKeyMaterial.clientStatus"))
		c.ClientURI = readURIKind(r, "ClientKeyMaterial.clientUri", KindClient)
		switch c.Status {
		case ClientSuccess:
			c.KeyPackage = new(wire.KeyPackage)
			c.KeyPackage.UnmarshalMLS(r)
		case ClientKeyMaterialExhausted:
		case ClientNothingCompatible:
			r.Optional("ClientKeyMaterial.clientCapabilities", func(r *codec.Reader) {
				c.Capabilities = new(wire.Capabilities)
				c.Capabilities.UnmarshalMLS(r)
			})
		default:
			r.Fail("ClientKeyMaterial.clientStatus", codec.ErrInvalidValue)
		}
		m.Clients = append(m.Clients, c)
	})
	if r.Err() == nil && len(m.Clients) > 0 {
		switch m.UserStatus {
		case UserSuccess, UserPartialSuccess, UserNoCompatibleMaterial:
		default:
			r.Fail("KeyMaterialResponse.clients", fmt.Errorf("%w: clients present with user status %d", codec.ErrInvalidValue, m.UserStatus))
		}
	}
}
