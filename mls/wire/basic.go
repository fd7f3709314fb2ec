package wire

import (
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
)

// readVec decodes a vector<V> of elements produced by elem.
func readVec[T any](r *codec.Reader, field string, elem func(r *codec.Reader) T) []T {
	var out []T
	r.Vector(field, func(r *codec.Reader) { out = append(out, elem(r)) })
	if r.Err() != nil {
		return nil
	}
	return out
}

// writeVec encodes a vector<V> of elements with elem.
func writeVec[T any](w *codec.Writer, list []T, elem func(w *codec.Writer, v *T)) {
	w.Vector(func(w *codec.Writer) {
		for i := range list {
			elem(w, &list[i])
		}
	})
}

func readU16s[T ~uint16](r *codec.Reader, field string) []T {
	return readVec(r, field, func(r *codec.Reader) T { return T(r.U16(field)) })
}

func writeU16s[T ~uint16](w *codec.Writer, list []T) {
	writeVec(w, list, func(w *codec.Writer, v *T) { w.U16(uint16(*v)) })
}

// MarshalMLS encodes an Extension (RFC 9420, Section 13).
func (e *Extension) MarshalMLS(w *codec.Writer) {
	w.U16(uint16(e.Type))
	w.Opaque(e.Data)
}

// UnmarshalMLS decodes an Extension (RFC 9420, Section 13). Any extension
// type is accepted; whether it is supported is a validation question.
func (e *Extension) UnmarshalMLS(r *codec.Reader) {
	*e = Extension{
		Type: ExtensionType(r.U16("Extension.extension_type")),
		Data: r.Opaque("Extension.extension_data"),
	}
}

func writeExtensions(w *codec.Writer, exts []Extension) {
	writeVec(w, exts, func(w *codec.Writer, e *Extension) { e.MarshalMLS(w) })
}

func readExtensions(r *codec.Reader, field string) []Extension {
	return readVec(r, field, func(r *codec.Reader) (e Extension) { e.UnmarshalMLS(r); return })
}

// MarshalMLS encodes Capabilities (RFC 9420, Section 7.2).
func (c *Capabilities) MarshalMLS(w *codec.Writer) {
	writeU16s(w, c.Versions)
	writeU16s(w, c.CipherSuites)
	writeU16s(w, c.Extensions)
	writeU16s(w, c.Proposals)
	writeU16s(w, c.Credentials)
}

// UnmarshalMLS decodes Capabilities (RFC 9420, Section 7.2). Unknown (for
// example GREASE) values are kept.
func (c *Capabilities) UnmarshalMLS(r *codec.Reader) {
	*c = Capabilities{
		Versions:     readU16s[ProtocolVersion](r, "Capabilities.versions"),
		CipherSuites: readU16s[cipher.SuiteID](r, "Capabilities.cipher_suites"),
		Extensions:   readU16s[ExtensionType](r, "Capabilities.extensions"),
		Proposals:    readU16s[ProposalType](r, "Capabilities.proposals"),
		Credentials:  readU16s[CredentialType](r, "Capabilities.credentials"),
	}
}

// MarshalMLS encodes a Lifetime (RFC 9420, Section 7.2).
func (l *Lifetime) MarshalMLS(w *codec.Writer) {
	w.U64(l.NotBefore)
	w.U64(l.NotAfter)
}

// UnmarshalMLS decodes a Lifetime (RFC 9420, Section 7.2).
func (l *Lifetime) UnmarshalMLS(r *codec.Reader) {
	l.NotBefore = r.U64("Lifetime.not_before")
	l.NotAfter = r.U64("Lifetime.not_after")
}

// MarshalMLS encodes a Credential (RFC 9420, Section 5.3). Only the basic
// and x509 types have an encoding; others make the Writer fail.
func (c *Credential) MarshalMLS(w *codec.Writer) {
	w.U16(uint16(c.Type))
	switch c.Type {
	case CredentialBasic:
		if len(c.Certificates) > 0 {
			fail(w, "Credential.certificates", "set for a basic credential")
		}
		w.Opaque(c.Identity)
	case CredentialX509:
		if len(c.Identity) > 0 {
			fail(w, "Credential.identity", "set for an x509 credential")
		}
		writeVec(w, c.Certificates, func(w *codec.Writer, cert *[]byte) { w.Opaque(*cert) })
	default:
		fail(w, "Credential.credential_type", "unknown type %d", c.Type)
	}
}

// UnmarshalMLS decodes a Credential (RFC 9420, Section 5.3). An unknown
// credential_type fails with ErrUnknownCredentialType, since its select body
// cannot be parsed.
func (c *Credential) UnmarshalMLS(r *codec.Reader) {
	*c = Credential{Type: CredentialType(r.U16("Credential.credential_type"))}
	if r.Err() != nil {
		return
	}
	switch c.Type {
	case CredentialBasic:
		c.Identity = r.Opaque("Credential.identity")
	case CredentialX509:
		c.Certificates = readVec(r, "Credential.certificates", func(r *codec.Reader) []byte {
			return r.Opaque("Certificate.cert_data")
		})
	default:
		badEnum(r, "Credential.credential_type", ErrUnknownCredentialType, uint64(c.Type))
	}
}

// MarshalMLS encodes an HPKECiphertext (RFC 9420, Section 7.6).
func (c *HPKECiphertext) MarshalMLS(w *codec.Writer) {
	w.Opaque(c.KEMOutput)
	w.Opaque(c.Ciphertext)
}

// UnmarshalMLS decodes an HPKECiphertext (RFC 9420, Section 7.6).
func (c *HPKECiphertext) UnmarshalMLS(r *codec.Reader) {
	c.KEMOutput = r.Opaque("HPKECiphertext.kem_output")
	c.Ciphertext = r.Opaque("HPKECiphertext.ciphertext")
}
