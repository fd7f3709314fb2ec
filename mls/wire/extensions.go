package wire

import (
	"fmt"

	"github.com/openmimi/mimi/mls/codec"
)

// ExternalSender (RFC 9420, Section 12.1.8.1) is one entry of the
// external_senders extension.
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

// MarshalMLS encodes an ExternalSender (RFC 9420, Section 12.1.8.1).
func (e *ExternalSender) MarshalMLS(w *codec.Writer) {
	w.Opaque(e.SignatureKey)
	e.Credential.MarshalMLS(w)
}

// UnmarshalMLS decodes an ExternalSender (RFC 9420, Section 12.1.8.1).
func (e *ExternalSender) UnmarshalMLS(r *codec.Reader) {
	*e = ExternalSender{SignatureKey: r.Opaque("ExternalSender.signature_key")}
	e.Credential.UnmarshalMLS(r)
}

// ExternalSenders is the content of the external_senders extension
// (RFC 9420, Section 12.1.8.1): ExternalSender external_senders<V>.
type ExternalSenders []ExternalSender

// MarshalMLS encodes ExternalSenders (RFC 9420, Section 12.1.8.1).
func (e *ExternalSenders) MarshalMLS(w *codec.Writer) {
	writeVec(w, *e, func(w *codec.Writer, s *ExternalSender) { s.MarshalMLS(w) })
}

// UnmarshalMLS decodes ExternalSenders (RFC 9420, Section 12.1.8.1).
func (e *ExternalSenders) UnmarshalMLS(r *codec.Reader) {
	*e = readVec(r, "external_senders", func(r *codec.Reader) (s ExternalSender) {
		s.UnmarshalMLS(r)
		return
	})
}

// RequiredCapabilities (RFC 9420, Section 11.1) is the content of the
// required_capabilities extension.
type RequiredCapabilities struct {
	ExtensionTypes  []ExtensionType
	ProposalTypes   []ProposalType
	CredentialTypes []CredentialType
}

// MarshalMLS encodes RequiredCapabilities (RFC 9420, Section 11.1).
func (c *RequiredCapabilities) MarshalMLS(w *codec.Writer) {
	writeU16s(w, c.ExtensionTypes)
	writeU16s(w, c.ProposalTypes)
	writeU16s(w, c.CredentialTypes)
}

// UnmarshalMLS decodes RequiredCapabilities (RFC 9420, Section 11.1).
func (c *RequiredCapabilities) UnmarshalMLS(r *codec.Reader) {
	*c = RequiredCapabilities{
		ExtensionTypes:  readU16s[ExtensionType](r, "RequiredCapabilities.extension_types"),
		ProposalTypes:   readU16s[ProposalType](r, "RequiredCapabilities.proposal_types"),
		CredentialTypes: readU16s[CredentialType](r, "RequiredCapabilities.credential_types"),
	}
}

// opaqueValue is a bare opaque<V>, the content of the application_id
// (RFC 9420, Section 5.3.3) and external_pub (Section 12.4.3.2) extensions.
type opaqueValue struct {
	field string
	v     []byte
}

func (o *opaqueValue) MarshalMLS(w *codec.Writer)   { w.Opaque(o.v) }
func (o *opaqueValue) UnmarshalMLS(r *codec.Reader) { o.v = r.Opaque(o.field) }

// DuplicateExtension reports the first extension type that occurs more than
// once in exts. RFC 9420, Section 13 forbids such lists; decoders accept
// them, and validation calls this to reject them.
func DuplicateExtension(exts []Extension) (ExtensionType, bool) {
	seen := make(map[ExtensionType]struct{}, len(exts))
	for _, e := range exts {
		if _, ok := seen[e.Type]; ok {
			return e.Type, true
		}
		seen[e.Type] = struct{}{}
	}
	return 0, false
}

// FindExtension returns the data of the first extension of type t in exts
// (RFC 9420, Section 13). Lists with duplicates should have been rejected
// with DuplicateExtension.
func FindExtension(exts []Extension, t ExtensionType) ([]byte, bool) {
	for _, e := range exts {
		if e.Type == t {
			return e.Data, true
		}
	}
	return nil, false
}

// parseExtension finds extension t in exts and decodes it strictly into u.
func parseExtension(exts []Extension, t ExtensionType, name string, u codec.Unmarshaler) (bool, error) {
	data, ok := FindExtension(exts, t)
	if !ok {
		return false, nil
	}
	if err := codec.Unmarshal(data, name, u); err != nil {
		return true, fmt.Errorf("mls wire: %s extension: %w", name, err)
	}
	return true, nil
}

func newExtension(t ExtensionType, m codec.Marshaler) (Extension, error) {
	b, err := codec.Marshal(m)
	if err != nil {
		return Extension{}, err
	}
	return Extension{Type: t, Data: b}, nil
}

// ApplicationID returns the application_id extension (RFC 9420,
// Section 5.3.3) of exts: found reports presence, err a malformed value.
func ApplicationID(exts []Extension) (id []byte, found bool, err error) {
	o := opaqueValue{field: "application_id"}
	found, err = parseExtension(exts, ExtensionApplicationID, "application_id", &o)
	return o.v, found, err
}

// NewApplicationIDExtension builds an application_id extension (RFC 9420,
// Section 5.3.3).
func NewApplicationIDExtension(id []byte) (Extension, error) {
	return newExtension(ExtensionApplicationID, &opaqueValue{v: id})
}

// RatchetTreeExtension returns the ratchet_tree extension (RFC 9420,
// Section 12.4.3.3) of exts, decoded.
func RatchetTreeExtension(exts []Extension) (tree RatchetTree, found bool, err error) {
	found, err = parseExtension(exts, ExtensionRatchetTree, "ratchet_tree", &tree)
	return tree, found, err
}

// NewRatchetTreeExtension builds a ratchet_tree extension (RFC 9420,
// Section 12.4.3.3).
func NewRatchetTreeExtension(tree RatchetTree) (Extension, error) {
	return newExtension(ExtensionRatchetTree, &tree)
}

// RequiredCapabilitiesExtension returns the required_capabilities extension
// (RFC 9420, Section 11.1) of exts, decoded.
func RequiredCapabilitiesExtension(exts []Extension) (*RequiredCapabilities, bool, error) {
	var rc RequiredCapabilities
	found, err := parseExtension(exts, ExtensionRequiredCapabilities, "required_capabilities", &rc)
	if !found || err != nil {
		return nil, found, err
	}
	return &rc, true, nil
}

// NewRequiredCapabilitiesExtension builds a required_capabilities extension
// (RFC 9420, Section 11.1).
func NewRequiredCapabilitiesExtension(rc *RequiredCapabilities) (Extension, error) {
	return newExtension(ExtensionRequiredCapabilities, rc)
}

// ExternalPub returns the HPKE public key in the external_pub extension
// (RFC 9420, Section 12.4.3.2) of exts.
func ExternalPub(exts []Extension) (pub []byte, found bool, err error) {
	o := opaqueValue{field: "ExternalPub.external_pub"}
	found, err = parseExtension(exts, ExtensionExternalPub, "external_pub", &o)
	return o.v, found, err
}

// NewExternalPubExtension builds an external_pub extension (RFC 9420,
// Section 12.4.3.2).
func NewExternalPubExtension(pub []byte) (Extension, error) {
	return newExtension(ExtensionExternalPub, &opaqueValue{v: pub})
}

// ExternalSendersExtension returns the external_senders extension
// (RFC 9420, Section 12.1.8.1) of exts, decoded.
func ExternalSendersExtension(exts []Extension) (senders ExternalSenders, found bool, err error) {
	found, err = parseExtension(exts, ExtensionExternalSenders, "external_senders", &senders)
	return senders, found, err
}

// NewExternalSendersExtension builds an external_senders extension
// (RFC 9420, Section 12.1.8.1).
func NewExternalSendersExtension(senders ExternalSenders) (Extension, error) {
	return newExtension(ExtensionExternalSenders, &senders)
}
