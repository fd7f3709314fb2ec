package publicgroup

import "errors"

// Errors callers branch on. Returned errors wrap one of these and, where
// relevant, the error of package commit, tree, framing, wire or codec (so
// errors.Is also matches, for example, commit.ErrRemoveBlankLeaf, and
// errors.As finds a *commit.ProposalError naming the offending proposal).
var (
	// ErrInvalidGroupInfo: a GroupInfo given to New is inconsistent: wrong
	// cipher suite, signer outside the tree or blank, bad signature (RFC
	// 9420, Sections 12.4.3 and 12.4.3.1), malformed GroupContext
	// extensions, or no ratchet tree.
	ErrInvalidGroupInfo = errors.New("mls publicgroup: invalid GroupInfo")
	// ErrInvalidTree: the ratchet tree fails validation against the
	// GroupContext (RFC 9420, Section 12.4.3.1); wraps the tree error.
	ErrInvalidTree = errors.New("mls publicgroup: invalid ratchet tree")
	// ErrMalformedMessage: a structurally invalid message: nil, a content
	// type other than proposal or commit, a missing or unexpected
	// membership_tag or confirmation_tag (RFC 9420, Sections 6 and 6.2),
	// or a new-member sender without the LeafNode that carries its key.
	ErrMalformedMessage = errors.New("mls publicgroup: malformed message")
	// ErrWrongGroup: the message's group_id is not the group's (RFC 9420,
	// Section 6).
	ErrWrongGroup = errors.New("mls publicgroup: message for another group")
	// ErrWrongEpoch: the message's epoch is not the current epoch (RFC
	// 9420, Sections 6 and 12.1).
	ErrWrongEpoch = errors.New("mls publicgroup: message for another epoch")
	// ErrUnknownSender: a member sender whose leaf is out of range or
	// blank (RFC 9420, Section 6).
	ErrUnknownSender = errors.New("mls publicgroup: sender is not a member")
	// ErrUnknownExternalSender: an external sender whose sender_index is
	// not an entry of external_senders (RFC 9420, Section 12.1.8.1).
	ErrUnknownExternalSender = errors.New("mls publicgroup: external sender not listed")
	// ErrInvalidSender: a sender type that may not send this content (RFC
	// 9420, Sections 6 and 12.1.8), e.g. an external sender with a Commit.
	ErrInvalidSender = errors.New("mls publicgroup: sender not allowed for this content")
	// ErrBadSignature: the FramedContent signature does not verify (RFC
	// 9420, Section 6.1).
	ErrBadSignature = errors.New("mls publicgroup: bad signature")
	// ErrNotProposal: HandleProposal was given a non-proposal message.
	ErrNotProposal = errors.New("mls publicgroup: not a proposal")
	// ErrNotCommit: HandleCommit was given a non-commit message.
	ErrNotCommit = errors.New("mls publicgroup: not a commit")
	// ErrUnknownProposalRef: a Commit references a proposal that was not
	// received (as a valid PublicMessage) in the current epoch (RFC 9420,
	// Section 12.4). It is returned inside a *commit.ProposalError with
	// the reference.
	ErrUnknownProposalRef = errors.New("mls publicgroup: unknown proposal reference")
	// ErrInvalidPath: the Commit's UpdatePath fails validation (RFC 9420,
	// Sections 7.5, 7.6, 7.9.2 and 12.4.2); wraps the tree error.
	ErrInvalidPath = errors.New("mls publicgroup: invalid UpdatePath")
	// ErrEpochExhausted: the epoch counter cannot be incremented.
	ErrEpochExhausted = errors.New("mls publicgroup: epoch counter exhausted")
	// ErrStaleResult: Accept was given a CommitResult that was not
	// computed from this view's current state.
	ErrStaleResult = errors.New("mls publicgroup: commit result does not match the view")
	// ErrGroupInfoMismatch: a GroupInfo whose GroupContext or
	// confirmation_tag differs from the view's, whose signer is not a
	// member, whose signature does not verify, or whose ratchet_tree
	// extension differs from the tree (RFC 9420, Section 12.4.3).
	ErrGroupInfoMismatch = errors.New("mls publicgroup: GroupInfo does not match the group")
	// ErrInvalidEncoding: Unmarshal input that does not decode into a
	// consistent view.
	ErrInvalidEncoding = errors.New("mls publicgroup: invalid view encoding")
)
