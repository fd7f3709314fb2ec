package framing

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// reuseGuardSize is the length of SenderData.reuse_guard (RFC 9420,
// Section 6.3.2).
const reuseGuardSize = 4

// PrivateOptions tunes PrivateMessage protection (RFC 9420, Section 6.3).
// The zero value (or a nil *PrivateOptions) means no padding and
// crypto/rand for the reuse guard.
type PrivateOptions struct {
	// PadTo, when greater than 1, appends zero padding so that the length
	// of the encoded PrivateMessageContent is a multiple of PadTo
	// (RFC 9420, Section 6.3.1).
	PadTo int
	// Rand is the source of the reuse guard; nil means crypto/rand.
	Rand io.Reader
}

// ratchetFor picks the secret tree ratchet for a content type (RFC 9420,
// Section 9: application messages use the application ratchet, proposals
// and commits the handshake ratchet).
func ratchetFor(ct wire.ContentType) keyschedule.RatchetType {
	if ct == wire.ContentApplication {
		return keyschedule.Application
	}
	return keyschedule.Handshake
}

// applyReuseGuard returns a copy of nonce with its first four bytes XORed
// with guard (RFC 9420, Section 6.3.1).
func applyReuseGuard(nonce []byte, guard [reuseGuardSize]byte) []byte {
	n := append([]byte(nil), nonce...)
	for i := 0; i < reuseGuardSize && i < len(n); i++ {
		n[i] ^= guard[i]
	}
	return n
}

// marshalPrivateContent encodes PrivateMessageContent (RFC 9420, Section
// 6.3.1) with zero padding up to a multiple of padTo.
func marshalPrivateContent(c *wire.FramedContent, auth *wire.FramedContentAuthData, padTo int) ([]byte, error) {
	b, err := wire.MarshalPrivateMessageContent(c, auth, 0)
	if err != nil {
		return nil, fmt.Errorf("mls framing: encoding PrivateMessageContent: %w", err)
	}
	if padTo > 1 {
		if r := len(b) % padTo; r != 0 {
			b = append(b, make([]byte, padTo-r)...)
		}
	}
	return b, nil
}

// unmarshalPrivateContent decodes PrivateMessageContent (RFC 9420, Section
// 6.3.1) of content type c.ContentType into c's body fields and returns the
// auth data; the padding must be all zero (ErrNonZeroPadding).
func unmarshalPrivateContent(pt []byte, c *wire.FramedContent) (wire.FramedContentAuthData, error) {
	pmc, err := wire.UnmarshalPrivateMessageContent(pt, c.ContentType)
	switch {
	case errors.Is(err, wire.ErrNonZeroPadding):
		return wire.FramedContentAuthData{}, fmt.Errorf("%w: %w", ErrNonZeroPadding, err)
	case err != nil:
		return wire.FramedContentAuthData{}, fmt.Errorf("%w: PrivateMessageContent: %w", ErrMalformed, err)
	}
	c.ApplicationData, c.Proposal, c.Commit = pmc.ApplicationData, pmc.Proposal, pmc.Commit
	return pmc.Auth, nil
}

// ProtectPrivate encrypts a signed AuthenticatedContent as a PrivateMessage
// (RFC 9420, Section 6.3). The sender must be a member; ac must have been
// signed for wire format mls_private_message (see Sign) and, for a commit,
// carry its confirmation_tag. It takes the next generation of the sender's
// handshake (proposal, commit) or application ratchet from e.SecretTree,
// XORs a fresh reuse guard into the first four nonce bytes, encrypts the
// padded PrivateMessageContent with PrivateContentAAD, then encrypts
// SenderData{leaf_index, generation, reuse_guard} under the key and nonce
// derived from sender_data_secret and the first Nh ciphertext bytes, with
// SenderDataAAD. e needs Suite, SenderDataSecret and SecretTree.
func ProtectPrivate(e *Epoch, ac *wire.AuthenticatedContent, opts *PrivateOptions) (*wire.PrivateMessage, error) {
	if e == nil || e.Suite == nil || ac == nil {
		return nil, fmt.Errorf("%w: nil epoch, suite or content", ErrMissingState)
	}
	if e.SecretTree == nil || e.SenderDataSecret == nil {
		return nil, fmt.Errorf("%w: no secret tree or sender data secret", ErrMissingState)
	}
	if opts == nil {
		opts = &PrivateOptions{}
	}
	c := &ac.Content
	if ac.WireFormat != wire.WireFormatPrivateMessage {
		return nil, fmt.Errorf("%w: content signed for wire format %d, not PrivateMessage", ErrMalformed, ac.WireFormat)
	}
	if c.Sender.Type != wire.SenderMember {
		return nil, fmt.Errorf("%w: PrivateMessage sender type %d is not member", ErrInvalidSender, c.Sender.Type)
	}
	if err := checkContent(c); err != nil {
		return nil, err
	}
	if err := checkAuth(c.ContentType, &ac.Auth); err != nil {
		return nil, err
	}
	pt, err := marshalPrivateContent(c, &ac.Auth, opts.PadTo)
	if err != nil {
		return nil, err
	}
	return e.sealPrivate(c, pt, opts.Rand)
}

// sealPrivate encrypts the encoded PrivateMessageContent pt of c (RFC 9420,
// Sections 6.3.1 and 6.3.2).
func (e *Epoch) sealPrivate(c *wire.FramedContent, pt []byte, rnd io.Reader) (*wire.PrivateMessage, error) {
	s := e.Suite
	m := &wire.PrivateMessage{
		GroupID:           c.GroupID,
		Epoch:             c.Epoch,
		ContentType:       c.ContentType,
		AuthenticatedData: c.AuthenticatedData,
	}
	aad, err := codec.Marshal(m.ContentAAD())
	if err != nil {
		return nil, fmt.Errorf("mls framing: encoding PrivateContentAAD: %w", err)
	}
	sdAAD, err := codec.Marshal(m.SenderDataAAD())
	if err != nil {
		return nil, fmt.Errorf("mls framing: encoding SenderDataAAD: %w", err)
	}
	var guard [reuseGuardSize]byte
	if rnd == nil {
		rnd = rand.Reader
	}
	if _, err := io.ReadFull(rnd, guard[:]); err != nil {
		return nil, fmt.Errorf("mls framing: reading reuse guard: %w", err)
	}

	gen, key, nonce, err := e.SecretTree.Next(treemath.LeafIndex(c.Sender.Index), ratchetFor(c.ContentType))
	if err != nil {
		return nil, fmt.Errorf("mls framing: secret tree: %w", err)
	}
	ct, err := s.Seal(key, applyReuseGuard(nonce, guard), aad, pt)
	clear(key)
	clear(nonce)
	if err != nil {
		return nil, fmt.Errorf("mls framing: encrypting content: %w", err)
	}

	sdKey, sdNonce, err := keyschedule.SenderDataKeyNonce(s, e.SenderDataSecret, ct)
	if err != nil {
		return nil, fmt.Errorf("mls framing: sender data key: %w", err)
	}
	sd, err := codec.Marshal(&wire.SenderData{LeafIndex: c.Sender.Index, Generation: gen, ReuseGuard: guard})
	if err != nil {
		return nil, fmt.Errorf("mls framing: encoding SenderData: %w", err)
	}
	if m.EncryptedSenderData, err = s.Seal(sdKey, sdNonce, sdAAD, sd); err != nil {
		return nil, fmt.Errorf("mls framing: encrypting sender data: %w", err)
	}
	m.Ciphertext = ct
	return m, nil
}

// UnprotectPrivate decrypts and verifies a PrivateMessage and returns its
// AuthenticatedContent (RFC 9420, Section 6.3). In order it rejects: a
// message for another group or epoch than e.Context (ErrWrongGroup,
// ErrWrongEpoch); sender data that does not decrypt (ErrDecrypt) or decode
// (ErrMalformed); a leaf that e.CheckMember refuses (ErrInvalidSender); a
// generation the secret tree cannot give (its error is wrapped, e.g.
// keyschedule.ErrKeyConsumed on reuse); content that does not decrypt
// (ErrDecrypt) or decode (ErrMalformed); non-zero padding
// (ErrNonZeroPadding); and a signature that does not verify under the key
// from e.SignatureKey (ErrBadSignature). The confirmation_tag of a commit
// is left to the caller (VerifyConfirmationTag). e needs every field.
//
// The content key of the generation is consumed (deleted from the secret
// tree) once it has decrypted the content, even if the content then fails
// to decode or verify; a ciphertext that does not decrypt leaves it in
// place.
func UnprotectPrivate(e *Epoch, m *wire.PrivateMessage) (*wire.AuthenticatedContent, error) {
	if e == nil || e.Suite == nil || m == nil {
		return nil, fmt.Errorf("%w: nil epoch, suite or message", ErrMissingState)
	}
	if e.SecretTree == nil || e.SenderDataSecret == nil || e.CheckMember == nil || e.SignatureKey == nil {
		return nil, fmt.Errorf("%w: PrivateMessage needs SecretTree, SenderDataSecret, CheckMember and SignatureKey", ErrMissingState)
	}
	if err := e.checkGroupEpoch(m.GroupID, m.Epoch); err != nil {
		return nil, err
	}
	switch m.ContentType {
	case wire.ContentApplication, wire.ContentProposal, wire.ContentCommit:
	default:
		return nil, fmt.Errorf("%w: content type %d", ErrMalformed, m.ContentType)
	}
	s := e.Suite

	// Sender data (6.3.2).
	sdKey, sdNonce, err := keyschedule.SenderDataKeyNonce(s, e.SenderDataSecret, m.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("mls framing: sender data key: %w", err)
	}
	sdAAD, err := codec.Marshal(m.SenderDataAAD())
	if err != nil {
		return nil, fmt.Errorf("%w: SenderDataAAD: %w", ErrMalformed, err)
	}
	sd, err := s.Open(sdKey, sdNonce, sdAAD, m.EncryptedSenderData)
	if err != nil {
		return nil, fmt.Errorf("%w: sender data: %w", ErrDecrypt, err)
	}
	var sdv wire.SenderData
	if err := codec.Unmarshal(sd, "SenderData", &sdv); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	leaf, gen, guard := sdv.LeafIndex, sdv.Generation, sdv.ReuseGuard
	if err := e.CheckMember(leaf); err != nil {
		return nil, fmt.Errorf("%w: sender data leaf %d: %w", ErrInvalidSender, leaf, err)
	}

	// Content (6.3.1). The key is consumed only once it decrypted the
	// content (RFC 9420, Section 9.2), so a forged message cannot burn it.
	aad, err := codec.Marshal(m.ContentAAD())
	if err != nil {
		return nil, fmt.Errorf("%w: PrivateContentAAD: %w", ErrMalformed, err)
	}
	ll, typ := treemath.LeafIndex(leaf), ratchetFor(m.ContentType)
	key, nonce, err := e.SecretTree.Peek(ll, typ, gen)
	if err != nil {
		return nil, fmt.Errorf("mls framing: secret tree, leaf %d generation %d: %w", leaf, gen, err)
	}
	pt, err := s.Open(key, applyReuseGuard(nonce, guard), aad, m.Ciphertext)
	clear(key)
	clear(nonce)
	if err != nil {
		return nil, fmt.Errorf("%w: content: %w", ErrDecrypt, err)
	}
	if err := e.SecretTree.Consume(ll, typ, gen); err != nil {
		return nil, fmt.Errorf("mls framing: secret tree, leaf %d generation %d: %w", leaf, gen, err)
	}
	ac := &wire.AuthenticatedContent{
		WireFormat: wire.WireFormatPrivateMessage,
		Content: wire.FramedContent{
			GroupID:           m.GroupID,
			Epoch:             m.Epoch,
			Sender:            wire.Sender{Type: wire.SenderMember, Index: leaf},
			AuthenticatedData: m.AuthenticatedData,
			ContentType:       m.ContentType,
		},
	}
	if ac.Auth, err = unmarshalPrivateContent(pt, &ac.Content); err != nil {
		return nil, err
	}
	if err := checkContent(&ac.Content); err != nil {
		return nil, err
	}
	if err := checkAuth(ac.Content.ContentType, &ac.Auth); err != nil {
		return nil, err
	}

	// Signature (6.1).
	pub, err := e.SignatureKey(ac.Content.Sender, &ac.Content)
	if err != nil {
		return nil, fmt.Errorf("%w: signature key of leaf %d: %w", ErrInvalidSender, leaf, err)
	}
	if err := Verify(s, ac, e.Context, pub); err != nil {
		return nil, err
	}
	return ac, nil
}
