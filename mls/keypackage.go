package mls

import (
	"bytes"
	"fmt"
	"time"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// KeyPackageOptions customize NewKeyPackage (RFC 9420, Section 10).
type KeyPackageOptions struct {
	// Leaf customizes the KeyPackage's LeafNode (capabilities, extensions,
	// lifetime). Leaf.Signer is ignored.
	Leaf LeafOptions
	// Extensions are the KeyPackage extensions (RFC 9420, Section 10).
	Extensions []wire.Extension
	// Clock is used for the default lifetime; nil means time.Now.
	Clock func() time.Time
}

// KeyPackageBundle is a KeyPackage with its private keys (RFC 9420,
// Section 10): the HPKE init_key and leaf encryption_key private keys and
// the signature private key. It is secret; MarshalBinary output must be
// stored as securely as the keys themselves.
type KeyPackageBundle struct {
	KeyPackage     *wire.KeyPackage
	InitPriv       []byte
	EncryptionPriv []byte
	SignaturePriv  []byte
}

// leafLifetime returns opts' lifetime or the default around now.
func leafLifetime(lt *wire.Lifetime, now time.Time) *wire.Lifetime {
	if lt != nil {
		c := *lt
		return &c
	}
	if now.IsZero() {
		now = time.Now()
	}
	nb := now.Add(-time.Hour).Unix()
	if nb < 0 {
		nb = 0
	}
	return &wire.Lifetime{NotBefore: uint64(nb), NotAfter: uint64(now.Add(DefaultKeyPackageLifetime).Unix())}
}

// newLeafNode builds an unsigned LeafNode template for signer.
func newLeafNode(s *cipher.Suite, signer *Signer, o *LeafOptions) (*wire.LeafNode, error) {
	pub, err := s.SignaturePublicKey(signer.SignaturePriv)
	if err != nil {
		return nil, fmt.Errorf("%w: signature private key: %w", ErrInvalidArgument, err)
	}
	caps := DefaultCapabilities(s.ID(), signer.Credential.Type)
	if o != nil && o.Capabilities != nil {
		caps = cloneCapabilities(o.Capabilities)
	}
	ln := &wire.LeafNode{
		SignatureKey: pub,
		Credential:   cloneCredential(&signer.Credential),
		Capabilities: caps,
	}
	if o != nil {
		ln.Extensions = cloneExtensions(o.Extensions)
	}
	return ln, nil
}

// NewKeyPackage generates a KeyPackage for credential with the signature
// private key sigPriv (RFC 9420, Section 10): fresh init and encryption
// HPKE key pairs, a key_package LeafNode signed with sigPriv, and the
// KeyPackage signature.
func NewKeyPackage(suite cipher.SuiteID, credential wire.Credential, sigPriv []byte, opts *KeyPackageOptions) (*KeyPackageBundle, error) {
	s, err := cipher.Lookup(suite)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &KeyPackageOptions{}
	}
	signer := &Signer{Credential: credential, SignaturePriv: sigPriv}
	ln, err := newLeafNode(s, signer, &opts.Leaf)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if opts.Clock != nil {
		now = opts.Clock()
	}
	encPriv, encPub, err := s.GenerateHPKEKey()
	if err != nil {
		return nil, err
	}
	initPriv, initPub, err := s.GenerateHPKEKey()
	if err != nil {
		return nil, err
	}
	ln.EncryptionKey = encPub
	ln.Source = wire.LeafNodeSourceKeyPackage
	ln.Lifetime = leafLifetime(opts.Leaf.Lifetime, now)
	if err := ln.Sign(s, sigPriv, nil, 0); err != nil {
		return nil, fmt.Errorf("mls: signing key package leaf: %w", err)
	}
	kp := &wire.KeyPackage{
		Version:     wire.MLS10,
		CipherSuite: suite,
		InitKey:     initPub,
		LeafNode:    *ln,
		Extensions:  cloneExtensions(opts.Extensions),
	}
	if err := kp.Sign(s, sigPriv); err != nil {
		return nil, fmt.Errorf("mls: signing key package: %w", err)
	}
	return &KeyPackageBundle{KeyPackage: kp, InitPriv: initPriv, EncryptionPriv: encPriv, SignaturePriv: bytes.Clone(sigPriv)}, nil
}

// Ref returns the KeyPackageRef of the bundle's KeyPackage (RFC 9420,
// Section 5.2).
func (b *KeyPackageBundle) Ref() ([]byte, error) {
	s, err := cipher.Lookup(b.KeyPackage.CipherSuite)
	if err != nil {
		return nil, err
	}
	return b.KeyPackage.Ref(s)
}

// Check verifies that the private keys match the KeyPackage's public keys
// (init_key, leaf encryption_key, signature_key) and that the KeyPackage is
// valid (RFC 9420, Section 10.1).
func (b *KeyPackageBundle) Check() error {
	if b == nil || b.KeyPackage == nil {
		return fmt.Errorf("%w: nil key package bundle", ErrInvalidArgument)
	}
	s, err := cipher.Lookup(b.KeyPackage.CipherSuite)
	if err != nil {
		return err
	}
	kp := b.KeyPackage
	b = b.normalized(s)
	if err := kp.Verify(s); err != nil {
		return err
	}
	for _, c := range []struct {
		name      string
		priv, pub []byte
		derive    func([]byte) ([]byte, error)
	}{
		{"init", b.InitPriv, kp.InitKey, s.HPKEPublicKey},
		{"encryption", b.EncryptionPriv, kp.LeafNode.EncryptionKey, s.HPKEPublicKey},
		{"signature", b.SignaturePriv, kp.LeafNode.SignatureKey, s.SignaturePublicKey},
	} {
		pub, err := c.derive(c.priv)
		if err != nil {
			return fmt.Errorf("%w: %s private key: %w", ErrInvalidArgument, c.name, err)
		}
		if !bytes.Equal(pub, c.pub) {
			return fmt.Errorf("%w: %s private key does not match the key package", ErrInvalidArgument, c.name)
		}
	}
	return nil
}

// normalized returns b with HPKE private keys of NIST-curve suites
// left-padded to the scalar length (RFC 9180, Section 7.1.2 serializes them
// at full length; some encoders, the interop vectors among them, strip
// leading zero bytes).
func (b *KeyPackageBundle) normalized(s *cipher.Suite) *KeyPackageBundle {
	c := *b
	c.InitPriv = padHPKEPriv(s, b.InitPriv)
	c.EncryptionPriv = padHPKEPriv(s, b.EncryptionPriv)
	return &c
}

// padHPKEPriv left-pads a NIST-curve HPKE private key to its full length.
func padHPKEPriv(s *cipher.Suite, priv []byte) []byte {
	n := 0
	switch s.ID() {
	case cipher.P256_AES128GCM_SHA256_P256:
		n = 32
	case cipher.P384_AES256GCM_SHA384_P384:
		n = 48
	case cipher.P521_AES256GCM_SHA512_P521:
		n = 66
	}
	if len(priv) >= n {
		return priv
	}
	return append(make([]byte, n-len(priv)), priv...)
}

// MarshalBinary encodes the bundle (KeyPackage and private keys) for
// storage. The output is secret.
func (b *KeyPackageBundle) MarshalBinary() ([]byte, error) {
	w := codec.NewWriter()
	w.U8(1) // format version
	b.KeyPackage.MarshalMLS(w)
	w.Opaque(b.InitPriv)
	w.Opaque(b.EncryptionPriv)
	w.Opaque(b.SignaturePriv)
	return w.Bytes()
}

// UnmarshalKeyPackageBundle decodes the output of
// KeyPackageBundle.MarshalBinary and checks it (KeyPackageBundle.Check).
func UnmarshalKeyPackageBundle(data []byte) (*KeyPackageBundle, error) {
	r := codec.NewReader(bytes.Clone(data))
	if v := r.U8("bundle.version"); r.Err() == nil && v != 1 {
		return nil, fmt.Errorf("%w: key package bundle version %d", ErrStateCorrupt, v)
	}
	b := &KeyPackageBundle{KeyPackage: new(wire.KeyPackage)}
	b.KeyPackage.UnmarshalMLS(r)
	b.InitPriv = r.Opaque("bundle.init_priv")
	b.EncryptionPriv = r.Opaque("bundle.encryption_priv")
	b.SignaturePriv = r.Opaque("bundle.signature_priv")
	if err := r.Done("KeyPackageBundle"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateCorrupt, err)
	}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return b, nil
}

// Deep-copy helpers for wire values handed in by callers.

func cloneExtensions(in []wire.Extension) []wire.Extension {
	if in == nil {
		return nil
	}
	out := make([]wire.Extension, len(in))
	for i, e := range in {
		out[i] = wire.Extension{Type: e.Type, Data: bytes.Clone(e.Data)}
	}
	return out
}

func cloneCredential(c *wire.Credential) wire.Credential {
	out := wire.Credential{Type: c.Type, Identity: bytes.Clone(c.Identity)}
	for _, cert := range c.Certificates {
		out.Certificates = append(out.Certificates, bytes.Clone(cert))
	}
	return out
}

func cloneCapabilities(c *wire.Capabilities) wire.Capabilities {
	return wire.Capabilities{
		Versions:     append([]wire.ProtocolVersion(nil), c.Versions...),
		CipherSuites: append([]cipher.SuiteID(nil), c.CipherSuites...),
		Extensions:   append([]wire.ExtensionType(nil), c.Extensions...),
		Proposals:    append([]wire.ProposalType(nil), c.Proposals...),
		Credentials:  append([]wire.CredentialType(nil), c.Credentials...),
	}
}
