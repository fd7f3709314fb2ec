package wire

import (
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
)

func (g *GroupInfo) marshalTBS(w *codec.Writer) {
	g.GroupContext.MarshalMLS(w)
	writeExtensions(w, g.Extensions)
	w.Opaque(g.ConfirmationTag)
	w.U32(g.Signer)
}

// MarshalMLS encodes a GroupInfo (RFC 9420, Section 12.4.3).
func (g *GroupInfo) MarshalMLS(w *codec.Writer) {
	g.marshalTBS(w)
	w.Opaque(g.Signature)
}

// UnmarshalMLS decodes a GroupInfo (RFC 9420, Section 12.4.3).
func (g *GroupInfo) UnmarshalMLS(r *codec.Reader) {
	*g = GroupInfo{}
	g.GroupContext.UnmarshalMLS(r)
	g.Extensions = readExtensions(r, "GroupInfo.extensions")
	g.ConfirmationTag = r.Opaque("GroupInfo.confirmation_tag")
	g.Signer = r.U32("GroupInfo.signer")
	g.Signature = r.Opaque("GroupInfo.signature")
}

// TBS returns the encoded GroupInfoTBS (RFC 9420, Section 12.4.3).
func (g *GroupInfo) TBS() ([]byte, error) {
	w := codec.NewWriter()
	g.marshalTBS(w)
	return w.Bytes()
}

// Sign sets Signature to SignWithLabel(priv, "GroupInfoTBS", GroupInfoTBS)
// (RFC 9420, Section 12.4.3).
func (g *GroupInfo) Sign(s *cipher.Suite, priv []byte) error {
	tbs, err := g.TBS()
	if err != nil {
		return err
	}
	sig, err := s.SignWithLabel(priv, LabelGroupInfoTBS, tbs)
	if err != nil {
		return fmt.Errorf("mls wire: signing GroupInfo: %w", err)
	}
	g.Signature = sig
	return nil
}

// VerifySignature verifies Signature with pub, the signature key of the
// leaf at index Signer (RFC 9420, Section 12.4.3.1). Failures wrap
// cipher.ErrBadSignature.
func (g *GroupInfo) VerifySignature(s *cipher.Suite, pub []byte) error {
	tbs, err := g.TBS()
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(pub, LabelGroupInfoTBS, tbs, g.Signature); err != nil {
		return fmt.Errorf("mls wire: GroupInfo signature: %w", err)
	}
	return nil
}

// MarshalMLS encodes a GroupSecrets (RFC 9420, Section 12.4.3.1). A nil
// PathSecret is encoded as absent.
func (g *GroupSecrets) MarshalMLS(w *codec.Writer) {
	w.Opaque(g.JoinerSecret)
	w.Optional(g.PathSecret != nil, func(w *codec.Writer) { w.Opaque(g.PathSecret) })
	writeVec(w, g.PSKs, func(w *codec.Writer, p *PreSharedKeyID) { p.MarshalMLS(w) })
}

// UnmarshalMLS decodes a GroupSecrets (RFC 9420, Section 12.4.3.1). A
// present path_secret decodes to a non-nil slice, even if empty.
func (g *GroupSecrets) UnmarshalMLS(r *codec.Reader) {
	*g = GroupSecrets{JoinerSecret: r.Opaque("GroupSecrets.joiner_secret")}
	r.Optional("GroupSecrets.path_secret", func(r *codec.Reader) {
		g.PathSecret = r.Opaque("PathSecret.path_secret")
	})
	g.PSKs = readVec(r, "GroupSecrets.psks", func(r *codec.Reader) (p PreSharedKeyID) {
		p.UnmarshalMLS(r)
		return
	})
}

// MarshalMLS encodes an EncryptedGroupSecrets (RFC 9420, Section 12.4.3.1).
func (e *EncryptedGroupSecrets) MarshalMLS(w *codec.Writer) {
	w.Opaque(e.NewMember)
	e.EncryptedGroupSecrets.MarshalMLS(w)
}

// UnmarshalMLS decodes an EncryptedGroupSecrets (RFC 9420, Section 12.4.3.1).
func (e *EncryptedGroupSecrets) UnmarshalMLS(r *codec.Reader) {
	*e = EncryptedGroupSecrets{NewMember: r.Opaque("EncryptedGroupSecrets.new_member")}
	e.EncryptedGroupSecrets.UnmarshalMLS(r)
}

// MarshalMLS encodes a Welcome (RFC 9420, Section 12.4.3.1).
func (m *Welcome) MarshalMLS(w *codec.Writer) {
	w.U16(uint16(m.CipherSuite))
	writeVec(w, m.Secrets, func(w *codec.Writer, e *EncryptedGroupSecrets) { e.MarshalMLS(w) })
	w.Opaque(m.EncryptedGroupInfo)
}

// UnmarshalMLS decodes a Welcome (RFC 9420, Section 12.4.3.1).
func (m *Welcome) UnmarshalMLS(r *codec.Reader) {
	*m = Welcome{
		CipherSuite: cipher.SuiteID(r.U16("Welcome.cipher_suite")),
		Secrets: readVec(r, "Welcome.secrets", func(r *codec.Reader) (e EncryptedGroupSecrets) {
			e.UnmarshalMLS(r)
			return
		}),
		EncryptedGroupInfo: r.Opaque("Welcome.encrypted_group_info"),
	}
}

// Find returns the entry of m.Secrets whose new_member equals ref (a
// KeyPackageRef), or nil (RFC 9420, Section 12.4.3.1).
func (m *Welcome) Find(ref []byte) *EncryptedGroupSecrets {
	for i := range m.Secrets {
		if string(m.Secrets[i].NewMember) == string(ref) {
			return &m.Secrets[i]
		}
	}
	return nil
}
