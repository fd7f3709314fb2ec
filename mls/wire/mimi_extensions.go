package wire

import (
	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/codec"
)

// Codepoints for the proposals and extensions beyond RFC 9420 that MIMI
// needs. docs/codepoints.md lists them with the reasons for their values.
const (
	// ProposalSelfRemove is self_remove (draft-ietf-mls-extensions,
	// SelfRemove Proposal), at the value that draft suggests.
	ProposalSelfRemove ProposalType = 0x000A
	// ProposalAppSync is AppSync (draft-ralston-mimi-protocol-02,
	// Section 7), from RFC 9420's private-use range (Section 17.4).
	ProposalAppSync ProposalType = 0xF0A1
	// ExtensionApplicationStates is application_states
	// (draft-ralston-mimi-protocol-02, Section 7), a GroupContext extension
	// from RFC 9420's private-use range (Section 17.3).
	ExtensionApplicationStates ExtensionType = 0xF0A1
)

// SelfRemove is the empty SelfRemove proposal (draft-ietf-mls-extensions):
// the sender removes itself.
type SelfRemove struct{}

// ProposalType implements ProposalBody.
func (*SelfRemove) ProposalType() ProposalType { return ProposalSelfRemove }

// MarshalMLS encodes the empty struct.
func (*SelfRemove) MarshalMLS(*codec.Writer) {}

// UnmarshalMLS decodes the empty struct.
func (*SelfRemove) UnmarshalMLS(*codec.Reader) {}

// AppSync is the AppSync proposal (draft-ralston-mimi-protocol-02,
// Section 7); its body and semantics are in package appsync.
type AppSync struct {
	appsync.AppSync
}

// ProposalType implements ProposalBody.
func (*AppSync) ProposalType() ProposalType { return ProposalAppSync }

// ApplicationStatesExtension reads the application_states extension from a
// GroupContext extension list: the states, whether it was present, and a
// decoding error.
func ApplicationStatesExtension(exts []Extension) (*appsync.States, bool, error) {
	data, ok := FindExtension(exts, ExtensionApplicationStates)
	if !ok {
		return &appsync.States{}, false, nil
	}
	st, err := appsync.ParseStates(data)
	if err != nil {
		return nil, true, err
	}
	return st, true, nil
}

// NewApplicationStatesExtension encodes states as an application_states
// extension.
func NewApplicationStatesExtension(st *appsync.States) (Extension, error) {
	b, err := st.Bytes()
	if err != nil {
		return Extension{}, err
	}
	return Extension{Type: ExtensionApplicationStates, Data: b}, nil
}
