package commit

import (
	"errors"
	"fmt"
)

// ProposalError reports the proposal of a Commit (or a standalone
// proposal) that violates a rule, so that a server can answer with the
// offending ProposalRefs (draft-ralston-mimi-protocol-02, Section 5
// invalidProposal) and a member can report which proposal was refused
// (RFC 9420, Sections 12.2 and 12.4.2). Err wraps exactly one of this
// package's sentinels (and, where relevant, the underlying error of
// packages tree, wire, cipher or appsync).
type ProposalError struct {
	// Index is the position of the proposal in the Commit's proposal
	// list (0 for ValidateProposal).
	Index int
	// Ref is the ProposalRef of a proposal included by reference; nil for
	// proposals by value.
	Ref []byte
	// Err is the violated rule.
	Err error
}

// Error implements error.
func (e *ProposalError) Error() string {
	if e.Ref != nil {
		return fmt.Sprintf("mls commit: proposal %d (ref %x): %v", e.Index, e.Ref, e.Err)
	}
	return fmt.Sprintf("mls commit: proposal %d: %v", e.Index, e.Err)
}

// Unwrap returns Err.
func (e *ProposalError) Unwrap() error { return e.Err }

// Errors not tied to one proposal (RFC 9420, Sections 12.4.2 and
// 12.4.3.2). They are returned without a *ProposalError.
var (
	// ErrInvalidParams: Params is incomplete (nil suite, tree or context,
	// a suite differing from the GroupContext's) — a caller bug, reported
	// instead of a panic.
	ErrInvalidParams = errors.New("mls commit: invalid parameters")
	// ErrInvalidCommitter: the Commit's sender is neither a member leaf
	// that is non-blank and in range nor new_member_commit (RFC 9420,
	// Sections 6 and 12.4).
	ErrInvalidCommitter = errors.New("mls commit: invalid committer")
	// ErrPathRequired: the Commit has no UpdatePath although its proposal
	// list is empty or holds a proposal of a "path required" type (RFC
	// 9420, Sections 12.4 and 17.4: Update, Remove, ExternalInit,
	// GroupContextExtensions; draft-ietf-mls-extensions: SelfRemove), or
	// it is an external Commit (RFC 9420, Section 12.4.3.2).
	ErrPathRequired = errors.New("mls commit: UpdatePath required")
	// ErrExternalInitCount: an external Commit without exactly one
	// ExternalInit proposal (RFC 9420, Section 12.2).
	ErrExternalInitCount = errors.New("mls commit: external Commit needs exactly one ExternalInit")
	// ErrMissingPathLeaf: an external Commit with a Remove proposal, but
	// Params.PathLeaf is nil, so the resync rule of RFC 9420, Section 12.2
	// cannot be checked (a caller bug).
	ErrMissingPathLeaf = errors.New("mls commit: external Commit with Remove needs the UpdatePath leaf")
)

// Errors tied to one proposal; returned inside a *ProposalError.
var (
	// ErrMalformedProposal: a Proposal with a nil body or a type that
	// differs from its body's (RFC 9420, Section 12.1).
	ErrMalformedProposal = errors.New("mls commit: malformed proposal")

	// ErrInvalidSender: a sender type that cannot send proposals (an
	// unknown type, or new_member_commit on a proposal by reference), or
	// a proposal by value whose sender is not the committer (RFC 9420,
	// Sections 6 and 12.4).
	ErrInvalidSender = errors.New("mls commit: invalid proposal sender")
	// ErrUnknownSender: a member sender whose leaf index is out of range
	// or blank (RFC 9420, Section 6).
	ErrUnknownSender = errors.New("mls commit: proposal sender is not a member")
	// ErrUnknownExternalSender: an external sender whose sender_index is
	// not an entry of the GroupContext's external_senders extension, or a
	// group without that extension (RFC 9420, Sections 12.1.8 and
	// 12.1.8.1).
	ErrUnknownExternalSender = errors.New("mls commit: external sender not in external_senders")
	// ErrExternalSenderProposalType: an external sender sent a proposal
	// type whose "Ext" column is N (RFC 9420, Sections 12.1.8 and 17.4:
	// only Add, Remove, PreSharedKey, ReInit and GroupContextExtensions;
	// AppSync per draft-ralston-mimi-protocol-02, Section 7; never
	// SelfRemove, draft-ietf-mls-extensions).
	ErrExternalSenderProposalType = errors.New("mls commit: proposal type not allowed from an external sender")
	// ErrNewMemberProposalType: a new_member_proposal sender with a
	// proposal other than Add (RFC 9420, Sections 6 and 12.1.8).
	ErrNewMemberProposalType = errors.New("mls commit: new_member_proposal sender may only send Add")
	// ErrUnsupportedProposalType: a non-default proposal type that some
	// member who will process the Commit does not list in its
	// capabilities (RFC 9420, Sections 12.2 and 13.3).
	ErrUnsupportedProposalType = errors.New("mls commit: proposal type not supported by every member")

	// ErrInvalidKeyPackage: an Add whose KeyPackage fails the checks of
	// RFC 9420, Section 10.1 (signatures, version and cipher suite equal
	// to the group's, leaf source, init_key distinct from encryption_key).
	ErrInvalidKeyPackage = errors.New("mls commit: invalid KeyPackage in Add")
	// ErrInvalidLeafNode: the LeafNode of an Add or Update fails leaf node
	// validation in the context of the tree (RFC 9420, Section 7.3); wraps
	// the tree package's sentinel.
	ErrInvalidLeafNode = errors.New("mls commit: invalid leaf node")
	// ErrUnsupportedGroupExtension: the new member of an Add does not list
	// a non-default GroupContext extension in its capabilities (RFC 9420,
	// Section 13.4: "The capabilities field MUST indicate support for
	// each extension in the GroupContext").
	ErrUnsupportedGroupExtension = errors.New("mls commit: new member does not support a group extension")
	// ErrDuplicateAdd: two Adds for the same client (identical signature
	// keys, or Params.SameClient) (RFC 9420, Section 12.2).
	ErrDuplicateAdd = errors.New("mls commit: two Adds for the same client")
	// ErrAddExistingClient: an Add for a client already in the group that
	// the same Commit does not remove (RFC 9420, Section 12.2).
	ErrAddExistingClient = errors.New("mls commit: Add for a client already in the group")

	// ErrUpdateByValue: an Update proposal included by value; such an
	// Update is the committer's own (RFC 9420, Sections 12.2 and 12.4).
	ErrUpdateByValue = errors.New("mls commit: Update by value")
	// ErrUpdateByCommitter: an Update proposal sent by the committer (RFC
	// 9420, Section 12.2).
	ErrUpdateByCommitter = errors.New("mls commit: Update from the committer")
	// ErrDuplicateUpdateRemove: several Update, Remove and/or SelfRemove
	// proposals apply to the same leaf (RFC 9420, Section 12.2).
	ErrDuplicateUpdateRemove = errors.New("mls commit: several Update/Remove proposals for one leaf")

	// ErrRemoveOutOfRange: a Remove of a leaf index outside the tree (RFC
	// 9420, Section 12.1.3).
	ErrRemoveOutOfRange = errors.New("mls commit: Remove of a leaf outside the tree")
	// ErrRemoveBlankLeaf: a Remove of a blank leaf (RFC 9420, Section
	// 12.1.3).
	ErrRemoveBlankLeaf = errors.New("mls commit: Remove of a blank leaf")
	// ErrRemoveCommitter: a Remove (or SelfRemove) that removes the
	// committer (RFC 9420, Section 12.2).
	ErrRemoveCommitter = errors.New("mls commit: Remove of the committer")
	// ErrRemoveSelfRemoved: a Remove of a leaf whose SelfRemove is in the
	// same Commit (draft-ietf-mls-extensions, SelfRemove Proposal).
	ErrRemoveSelfRemoved = errors.New("mls commit: Remove of a leaf that also SelfRemoves")

	// ErrDuplicatePSK: two PreSharedKey proposals for the same PSK (RFC
	// 9420, Section 12.2).
	ErrDuplicatePSK = errors.New("mls commit: duplicate PreSharedKey")
	// ErrPSKNonceLength: a psk_nonce not of length KDF.Nh (RFC 9420,
	// Section 12.1.4).
	ErrPSKNonceLength = errors.New("mls commit: psk_nonce length is not Nh")
	// ErrPSKUsage: a resumption PSK proposal whose usage is not
	// application; reinit and branch are valid only when creating the new
	// group (RFC 9420, Sections 8.4 and 12.1.4).
	ErrPSKUsage = errors.New("mls commit: resumption PSK usage not allowed in a PreSharedKey proposal")

	// ErrReInitNotAlone: a ReInit together with another proposal (RFC
	// 9420, Section 12.2).
	ErrReInitNotAlone = errors.New("mls commit: ReInit with other proposals")
	// ErrReInitVersion: a ReInit to a lower protocol version (RFC 9420,
	// Section 12.1.5).
	ErrReInitVersion = errors.New("mls commit: ReInit to a lower version")

	// ErrExternalInitNotAllowed: an ExternalInit outside an external
	// Commit, or on its own as a proposal message (RFC 9420, Sections
	// 12.1.6 and 12.2).
	ErrExternalInitNotAllowed = errors.New("mls commit: ExternalInit outside an external Commit")

	// ErrMultipleGCE: more than one GroupContextExtensions proposal (RFC
	// 9420, Section 12.2).
	ErrMultipleGCE = errors.New("mls commit: several GroupContextExtensions proposals")
	// ErrInvalidExtensions: a GroupContext extension list (current or
	// proposed) with a repeated type, or a known extension that does not
	// decode (RFC 9420, Section 13.4).
	ErrInvalidExtensions = errors.New("mls commit: invalid GroupContext extensions")
	// ErrGCEUnsupportedExtension: a GroupContextExtensions proposal with a
	// non-default extension that some member after the Commit does not
	// support (RFC 9420, Sections 12.1.7 and 13.4).
	ErrGCEUnsupportedExtension = errors.New("mls commit: proposed extension not supported by every member")
	// ErrGCERequiredCapabilities: a GroupContextExtensions proposal whose
	// required_capabilities some member after the Commit (those added
	// included, those removed excluded) does not satisfy (RFC 9420,
	// Sections 11.1 and 12.1.7).
	ErrGCERequiredCapabilities = errors.New("mls commit: required_capabilities not supported by every member")

	// ErrSelfRemoveByValue: a SelfRemove included by value
	// (draft-ietf-mls-extensions: "only allowed in a Commit by
	// reference").
	ErrSelfRemoveByValue = errors.New("mls commit: SelfRemove by value")
	// ErrSelfRemoveSender: a SelfRemove whose sender is not a member
	// (draft-ietf-mls-extensions: "cannot be sent as an external
	// proposal").
	ErrSelfRemoveSender = errors.New("mls commit: SelfRemove from a non-member")
	// ErrDuplicateSelfRemove: two SelfRemove proposals from one member
	// (draft-ietf-mls-extensions: at most one per epoch).
	ErrDuplicateSelfRemove = errors.New("mls commit: several SelfRemove proposals from one member")

	// ErrAppSyncWithGCE: AppSync and GroupContextExtensions in one list
	// (draft-ralston-mimi-protocol-02, Section 7).
	ErrAppSyncWithGCE = errors.New("mls commit: AppSync together with GroupContextExtensions")
	// ErrDuplicateAppSync: two AppSyncs for one applicationId
	// (draft-ralston-mimi-protocol-02, Section 7).
	ErrDuplicateAppSync = errors.New("mls commit: several AppSyncs for one applicationId")
	// ErrAppSyncFailed: an AppSync that cannot be applied to the
	// application_states (wrong state type, bad index or key, ...;
	// draft-ralston-mimi-protocol-02, Section 7 and docs/appsync.md);
	// wraps the appsync error.
	ErrAppSyncFailed = errors.New("mls commit: AppSync cannot be applied")

	// ErrExternalCommitProposalType: an external Commit with a proposal
	// other than ExternalInit, Remove, PreSharedKey and (by reference)
	// SelfRemove (RFC 9420, Section 12.2; draft-ietf-mls-extensions).
	ErrExternalCommitProposalType = errors.New("mls commit: proposal type not allowed in an external Commit")
	// ErrExternalCommitByReference: an external Commit with a proposal by
	// reference other than SelfRemove (RFC 9420, Section 12.4.3.2).
	ErrExternalCommitByReference = errors.New("mls commit: proposal by reference in an external Commit")
	// ErrExternalCommitRemove: an external Commit with more than one
	// Remove, or with a Remove whose leaf is not an old appearance of the
	// joiner (RFC 9420, Section 12.2: the UpdatePath's LeafNode must meet
	// the criteria of an Update for the removed leaf).
	ErrExternalCommitRemove = errors.New("mls commit: invalid Remove in an external Commit")
)
