package framing

import (
	"bytes"
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/wire"
)

// Epoch is what message protection needs from one epoch of a group's state
// (RFC 9420, Sections 6.1 to 6.3, 8 and 9). The group state machine fills it
// in; fields an operation does not use may be left zero. An Epoch is not
// safe for concurrent use when SecretTree is set (the secret tree is
// stateful).
type Epoch struct {
	// Suite is the group's cipher suite.
	Suite *cipher.Suite
	// Context is the GroupContext of this epoch. Its GroupID and Epoch are
	// checked against incoming messages, and it is signed into
	// FramedContentTBS for member and new_member_commit senders.
	Context *wire.GroupContext
	// MembershipKey is the epoch's membership_key (RFC 9420, Section 8),
	// used for PublicMessage membership tags.
	MembershipKey []byte
	// SenderDataSecret is the epoch's sender_data_secret (RFC 9420,
	// Section 8), used for PrivateMessage sender data.
	SenderDataSecret []byte
	// SecretTree is the epoch's secret tree (RFC 9420, Section 9), used for
	// PrivateMessage content keys. It is advanced and consumed in place.
	SecretTree *keyschedule.SecretTree
	// CheckMember reports whether leaf is a valid PrivateMessage sender:
	// in range of the tree and non-blank (RFC 9420, Section 6.3.2). It is
	// required for UnprotectPrivate and must return an error otherwise.
	CheckMember func(leaf uint32) error
	// SignatureKey returns the signature public key with which the sender
	// of content must have signed (RFC 9420, Section 6.1): the leaf's key
	// for a member, the external_senders entry for an external sender, or
	// the LeafNode in the content for new-member senders. It is required
	// for UnprotectPrivate (whose sender is known only after decryption);
	// UnprotectPublic takes the key as an argument instead.
	SignatureKey func(sender wire.Sender, content *wire.FramedContent) ([]byte, error)
}

// checkGroupEpoch rejects a message for another group or epoch (RFC 9420,
// Section 6).
func (e *Epoch) checkGroupEpoch(groupID []byte, epoch uint64) error {
	if e.Context == nil {
		return fmt.Errorf("%w: no GroupContext", ErrMissingState)
	}
	if !bytes.Equal(groupID, e.Context.GroupID) {
		return ErrWrongGroup
	}
	if epoch != e.Context.Epoch {
		return fmt.Errorf("%w: message epoch %d, current %d", ErrWrongEpoch, epoch, e.Context.Epoch)
	}
	return nil
}
