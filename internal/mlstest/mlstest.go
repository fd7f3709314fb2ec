// Package mlstest holds deterministic MLS test fixtures shared by the tests
// of the mls packages: the mandatory cipher suite, seeded key material, and
// clients with basic credentials that make signed KeyPackages (RFC 9420,
// Sections 5.3 and 10). It imports only mls/cipher and mls/wire, so any
// mls package's tests may use it.
package mlstest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

// Suite returns MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519, the
// mandatory-to-implement cipher suite (RFC 9420, Section 17.1).
func Suite(tb testing.TB) *cipher.Suite {
	tb.Helper()
	s, err := cipher.Lookup(cipher.X25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Seed derives 32 bytes of deterministic key material from a label and an
// index.
func Seed(label string, i int) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	h := sha256.Sum256(append([]byte(label), b[:]...))
	return h[:]
}

// Caps are the capabilities the fixtures' leaves advertise: MLS 1.0, the
// suite of Suite, the application_states extension, the SelfRemove and
// AppSync proposals and basic credentials (RFC 9420, Section 7.2).
func Caps() wire.Capabilities {
	return wire.Capabilities{
		Versions:     []wire.ProtocolVersion{wire.MLS10},
		CipherSuites: []cipher.SuiteID{cipher.X25519_AES128GCM_SHA256_Ed25519},
		Extensions:   []wire.ExtensionType{wire.ExtensionApplicationStates},
		Proposals:    []wire.ProposalType{wire.ProposalSelfRemove, wire.ProposalAppSync},
		Credentials:  []wire.CredentialType{wire.CredentialBasic},
	}
}

// Client is a test client with a deterministic signature key pair.
type Client struct {
	ID              int
	SigPriv, SigPub []byte
	gen             int // HPKE keys made so far
}

// NewClient returns client id of suite s.
func NewClient(tb testing.TB, s *cipher.Suite, id int) *Client {
	tb.Helper()
	c := &Client{ID: id, SigPriv: Seed("sig", id)}
	pub, err := s.SignaturePublicKey(c.SigPriv)
	if err != nil {
		tb.Fatal(err)
	}
	c.SigPub = pub
	return c
}

// Credential is the client's basic credential, "client-<id>" (RFC 9420,
// Section 5.3).
func (c *Client) Credential() wire.Credential {
	return wire.Credential{Type: wire.CredentialBasic, Identity: fmt.Appendf(nil, "client-%d", c.ID)}
}

// HPKE returns a fresh deterministic HPKE public key (a new one at every
// call).
func (c *Client) HPKE(tb testing.TB, s *cipher.Suite) []byte {
	tb.Helper()
	c.gen++
	_, pub, err := s.DeriveHPKEKey(Seed(fmt.Sprintf("hpke-%d-%d", c.ID, c.gen), 0))
	if err != nil {
		tb.Fatal(err)
	}
	return pub
}

// KeyPackage returns a signed KeyPackage with capabilities caps and the
// lifetime 1000..2^40 seconds since the Unix epoch (RFC 9420, Section 10).
func (c *Client) KeyPackage(tb testing.TB, s *cipher.Suite, caps wire.Capabilities) *wire.KeyPackage {
	tb.Helper()
	kp := &wire.KeyPackage{
		Version:     wire.MLS10,
		CipherSuite: s.ID(),
		InitKey:     c.HPKE(tb, s),
		LeafNode: wire.LeafNode{
			EncryptionKey: c.HPKE(tb, s),
			SignatureKey:  c.SigPub,
			Credential:    c.Credential(),
			Capabilities:  caps,
			Source:        wire.LeafNodeSourceKeyPackage,
			Lifetime:      &wire.Lifetime{NotBefore: 1000, NotAfter: 1 << 40},
		},
	}
	if err := kp.LeafNode.Sign(s, c.SigPriv, nil, 0); err != nil {
		tb.Fatal(err)
	}
	if err := kp.Sign(s, c.SigPriv); err != nil {
		tb.Fatal(err)
	}
	return kp
}
