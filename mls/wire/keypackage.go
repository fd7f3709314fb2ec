package wire

import (
	"bytes"
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
)

func (k *KeyPackage) marshalTBS(w *codec.Writer) {
	w.U16(uint16(k.Version))
	w.U16(uint16(k.CipherSuite))
	w.Opaque(k.InitKey)
	k.LeafNode.MarshalMLS(w)
	writeExtensions(w, k.Extensions)
}

// MarshalMLS encodes a KeyPackage (RFC 9420, Section 10).
func (k *KeyPackage) MarshalMLS(w *codec.Writer) {
	k.marshalTBS(w)
	w.Opaque(k.Signature)
}

// UnmarshalMLS decodes a KeyPackage (RFC 9420, Section 10). Version, cipher
// suite and leaf source are checked by Verify, not here.
func (k *KeyPackage) UnmarshalMLS(r *codec.Reader) {
	*k = KeyPackage{
		Version:     ProtocolVersion(r.U16("KeyPackage.version")),
		CipherSuite: cipher.SuiteID(r.U16("KeyPackage.cipher_suite")),
		InitKey:     r.Opaque("KeyPackage.init_key"),
	}
	k.LeafNode.UnmarshalMLS(r)
	k.Extensions = readExtensions(r, "KeyPackage.extensions")
	k.Signature = r.Opaque("KeyPackage.signature")
}

// TBS returns the encoded KeyPackageTBS (RFC 9420, Section 10).
func (k *KeyPackage) TBS() ([]byte, error) {
	w := codec.NewWriter()
	k.marshalTBS(w)
	return w.Bytes()
}

// Sign sets Signature to SignWithLabel(priv, "KeyPackageTBS", KeyPackageTBS)
// (RFC 9420, Section 10). It does not sign the LeafNode; call
// LeafNode.Sign first.
func (k *KeyPackage) Sign(s *cipher.Suite, priv []byte) error {
	tbs, err := k.TBS()
	if err != nil {
		return err
	}
	sig, err := s.SignWithLabel(priv, LabelKeyPackageTBS, tbs)
	if err != nil {
		return fmt.Errorf("mls wire: signing KeyPackage: %w", err)
	}
	k.Signature = sig
	return nil
}

// Verify performs the checks of RFC 9420, Section 10.1 that need no group
// or application context: the version is mls10, the cipher suite is s's,
// leaf_node.leaf_node_source is key_package, init_key differs from
// leaf_node.encryption_key, and both the LeafNode's and the KeyPackage's
// signatures verify under leaf_node.signature_key. Matching the group's
// version and suite, and the rest of leaf node validation (Section 7.3:
// credential, capabilities, lifetime, extension support, key uniqueness),
// are up to the caller. Structural failures wrap ErrKeyPackageInvalid or
// ErrSuiteMismatch; signature failures wrap cipher.ErrBadSignature.
func (k *KeyPackage) Verify(s *cipher.Suite) error {
	if k.Version != MLS10 {
		return fmt.Errorf("%w: version %d is not mls10", ErrKeyPackageInvalid, k.Version)
	}
	if k.CipherSuite != s.ID() {
		return fmt.Errorf("%w: KeyPackage suite %#04x, expected %#04x", ErrSuiteMismatch, uint16(k.CipherSuite), uint16(s.ID()))
	}
	if k.LeafNode.Source != LeafNodeSourceKeyPackage {
		return fmt.Errorf("%w: leaf_node_source %d is not key_package", ErrKeyPackageInvalid, k.LeafNode.Source)
	}
	if bytes.Equal(k.InitKey, k.LeafNode.EncryptionKey) {
		return fmt.Errorf("%w: init_key equals leaf_node.encryption_key", ErrKeyPackageInvalid)
	}
	if err := k.LeafNode.VerifySignature(s, nil, 0); err != nil {
		return err
	}
	tbs, err := k.TBS()
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(k.LeafNode.SignatureKey, LabelKeyPackageTBS, tbs, k.Signature); err != nil {
		return fmt.Errorf("mls wire: KeyPackage signature: %w", err)
	}
	return nil
}

// Ref returns the KeyPackageRef of k (RFC 9420, Section 5.2), hashing with
// s, which must be k's cipher suite.
func (k *KeyPackage) Ref(s *cipher.Suite) ([]byte, error) {
	if k.CipherSuite != s.ID() {
		return nil, fmt.Errorf("%w: KeyPackage suite %#04x, suite %#04x", ErrSuiteMismatch, uint16(k.CipherSuite), uint16(s.ID()))
	}
	b, err := codec.Marshal(k)
	if err != nil {
		return nil, err
	}
	return s.KeyPackageRef(b), nil
}

// MarshalMLS encodes a GroupContext (RFC 9420, Section 8.1).
func (g *GroupContext) MarshalMLS(w *codec.Writer) {
	w.U16(uint16(g.Version))
	w.U16(uint16(g.CipherSuite))
	w.Opaque(g.GroupID)
	w.U64(g.Epoch)
	w.Opaque(g.TreeHash)
	w.Opaque(g.ConfirmedTranscriptHash)
	writeExtensions(w, g.Extensions)
}

// UnmarshalMLS decodes a GroupContext (RFC 9420, Section 8.1).
func (g *GroupContext) UnmarshalMLS(r *codec.Reader) {
	*g = GroupContext{
		Version:                 ProtocolVersion(r.U16("GroupContext.version")),
		CipherSuite:             cipher.SuiteID(r.U16("GroupContext.cipher_suite")),
		GroupID:                 r.Opaque("GroupContext.group_id"),
		Epoch:                   r.U64("GroupContext.epoch"),
		TreeHash:                r.Opaque("GroupContext.tree_hash"),
		ConfirmedTranscriptHash: r.Opaque("GroupContext.confirmed_transcript_hash"),
		Extensions:              readExtensions(r, "GroupContext.extensions"),
	}
}

// MarshalMLS encodes a PreSharedKeyID (RFC 9420, Section 8.4).
func (p *PreSharedKeyID) MarshalMLS(w *codec.Writer) {
	w.U8(uint8(p.Type))
	switch p.Type {
	case PSKExternal:
		w.Opaque(p.PSKID)
	case PSKResumption:
		if p.Usage == 0 {
			fail(w, "PreSharedKeyID.usage", "reserved value 0")
		}
		w.U8(uint8(p.Usage))
		w.Opaque(p.PSKGroupID)
		w.U64(p.PSKEpoch)
	default:
		fail(w, "PreSharedKeyID.psktype", "unknown type %d", p.Type)
	}
	w.Opaque(p.Nonce)
}

// UnmarshalMLS decodes a PreSharedKeyID (RFC 9420, Section 8.4). Reserved or
// unknown psktype fails with ErrUnknownPSKType, usage reserved(0) with
// ErrReservedPSKUsage.
func (p *PreSharedKeyID) UnmarshalMLS(r *codec.Reader) {
	*p = PreSharedKeyID{Type: PSKType(r.U8("PreSharedKeyID.psktype"))}
	if r.Err() != nil {
		return
	}
	switch p.Type {
	case PSKExternal:
		p.PSKID = r.Opaque("PreSharedKeyID.psk_id")
	case PSKResumption:
		p.Usage = ResumptionPSKUsage(r.U8("PreSharedKeyID.usage"))
		if r.Err() == nil && p.Usage == 0 {
			badEnum(r, "PreSharedKeyID.usage", ErrReservedPSKUsage, 0)
			return
		}
		p.PSKGroupID = r.Opaque("PreSharedKeyID.psk_group_id")
		p.PSKEpoch = r.U64("PreSharedKeyID.psk_epoch")
	default:
		badEnum(r, "PreSharedKeyID.psktype", ErrUnknownPSKType, uint64(p.Type))
		return
	}
	p.Nonce = r.Opaque("PreSharedKeyID.psk_nonce")
}
