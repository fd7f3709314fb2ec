package mls

import (
	"errors"

	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/framing"
)

// Errors callers branch on. Errors returned by this package wrap one of
// these, or a sentinel of the package that detected the problem (mls/commit
// for proposal-list rules, mls/tree for tree and leaf validation,
// mls/framing for message protection, mls/wire and mls/codec for decoding);
// test with errors.Is.
var (
	// ErrWrongEpoch: a message for another epoch than the current one (RFC
	// 9420, Sections 6 and 12.4.2), or an application message for a past
	// epoch whose keys are no longer kept (Section 15.3). It is
	// framing.ErrWrongEpoch, so either name matches.
	ErrWrongEpoch = framing.ErrWrongEpoch
	// ErrWrongGroup: a message for another group (RFC 9420, Section 6). It
	// is framing.ErrWrongGroup.
	ErrWrongGroup = framing.ErrWrongGroup
	// ErrBadMembershipTag is framing.ErrBadMembershipTag (RFC 9420, Section 6.2).
	ErrBadMembershipTag = framing.ErrBadMembershipTag
	// ErrBadConfirmationTag is framing.ErrBadConfirmationTag (RFC 9420,
	// Sections 6.1 and 12.4.2).
	ErrBadConfirmationTag = framing.ErrBadConfirmationTag
	// ErrBadSignature is framing.ErrBadSignature (RFC 9420, Section 6.1).
	ErrBadSignature = framing.ErrBadSignature

	// ErrUnknownProposal: a Commit references a proposal that is not in the
	// pending-proposal cache of the current epoch (RFC 9420, Section 12.4).
	ErrUnknownProposal = errors.New("mls: commit references an unknown proposal")
	// ErrUnknownSender: the sender of a message is not a member (blank or
	// out-of-range leaf), not in the external_senders extension, or of a
	// type not allowed here (RFC 9420, Sections 6 and 12.1.8).
	ErrUnknownSender = errors.New("mls: unknown or invalid sender")
	// ErrPathRequired: a Commit without an UpdatePath where one is required
	// (RFC 9420, Section 12.4), including every external Commit
	// (Section 12.4.3.2). It is commit.ErrPathRequired.
	ErrPathRequired = commit.ErrPathRequired
	// ErrInvalidExternalCommit: an external Commit violating RFC 9420,
	// Section 12.4.3.2 beyond the proposal-list rules (no path, proposals by
	// reference, resync leaf not acceptable for the removed member, no
	// external_pub in the GroupInfo).
	ErrInvalidExternalCommit = errors.New("mls: invalid external commit")
	// ErrOwnCommit: a Commit sent from this member's own leaf that is not
	// the pending commit created here (RFC 9420, Section 7.5: a member
	// cannot decrypt its own UpdatePath).
	ErrOwnCommit = errors.New("mls: commit from our own leaf that we did not create")
	// ErrStaleCommit: PendingCommit.Merge after the group moved on (another
	// commit was processed or merged) or after Discard.
	ErrStaleCommit = errors.New("mls: pending commit is stale")
	// ErrInactive: the group can no longer be used to send or process
	// handshake messages: this member was removed, or a ReInit was committed
	// (RFC 9420, Sections 11.2 and 12.4.2).
	ErrInactive = errors.New("mls: group is no longer active")
	// ErrPendingProposals: application data cannot be sent while proposals
	// are pending in this epoch (RFC 9420, Section 12.4: a member that has
	// observed valid proposals MUST commit before sending application data).
	ErrPendingProposals = errors.New("mls: proposals pending; commit before sending application data")
	// ErrMissingPSK: a pre-shared key named by a PreSharedKey proposal or by
	// GroupSecrets is not available (RFC 9420, Sections 8.4, 12.4.2 and
	// 12.4.3.1).
	ErrMissingPSK = errors.New("mls: pre-shared key not available")
	// ErrNoRatchetTree: a Welcome or GroupInfo without a ratchet_tree
	// extension and no tree supplied out of band (RFC 9420, Section
	// 12.4.3.3).
	ErrNoRatchetTree = errors.New("mls: no ratchet tree")
	// ErrWelcomeInvalid: a Welcome that fails a check of RFC 9420, Section
	// 12.4.3.1 not covered by a more specific sentinel (our leaf missing
	// from the tree, blank signer, unsupported group extension, bad path
	// secret, reinit/branch rules).
	ErrWelcomeInvalid = errors.New("mls: invalid welcome")
	// ErrGroupInfoInvalid: a GroupInfo that fails the checks of RFC 9420,
	// Sections 12.4.3 and 12.4.3.2 (signature, blank signer, missing
	// external_pub, tree mismatch).
	ErrGroupInfoInvalid = errors.New("mls: invalid group info")
	// ErrInvalidMessage: a structurally unacceptable message for this
	// group: unexpected wire format or content, a proposal or commit for a
	// past epoch, an UpdatePath leaf that is not acceptable (RFC 9420,
	// Sections 6 and 12.4.2).
	ErrInvalidMessage = errors.New("mls: invalid message")
	// ErrInvalidArgument: a caller error (bad option, unknown leaf, ...).
	ErrInvalidArgument = errors.New("mls: invalid argument")
	// ErrStateCorrupt: UnmarshalState input that does not decode or is
	// inconsistent.
	ErrStateCorrupt = errors.New("mls: corrupt group state")
	// ErrRemoved: returned in Processed when this member was removed; also
	// the error for operations attempted afterwards (it wraps ErrInactive).
	ErrRemoved = errors.Join(ErrInactive, errors.New("mls: this member was removed from the group"))
)
