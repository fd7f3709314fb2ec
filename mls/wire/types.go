// Package wire defines the MLS wire objects of RFC 9420 and their strict
// encoding with the TLS presentation language (package codec): credentials,
// capabilities, extensions, leaf and parent nodes, KeyPackage, GroupContext,
// proposals, Commit, framing structures, GroupInfo, GroupSecrets, Welcome and
// MLSMessage. It holds no group state and performs no cryptography beyond
// computing the bytes that are signed, hashed or referenced.
package wire

import "github.com/openmimi/mimi/mls/cipher"

// ProtocolVersion (RFC 9420, Section 6).
type ProtocolVersion uint16

// MLS10 is mls10, the only version RFC 9420 defines.
const MLS10 ProtocolVersion = 1

// WireFormat (RFC 9420, Section 6 and 17.2).
type WireFormat uint16

// Wire formats (RFC 9420, Section 17.2).
const (
	WireFormatPublicMessage  WireFormat = 1
	WireFormatPrivateMessage WireFormat = 2
	WireFormatWelcome        WireFormat = 3
	WireFormatGroupInfo      WireFormat = 4
	WireFormatKeyPackage     WireFormat = 5
)

// ExtensionType (RFC 9420, Section 13 and 17.3).
type ExtensionType uint16

// Extension types of RFC 9420, Section 17.3.
const (
	ExtensionApplicationID        ExtensionType = 1
	ExtensionRatchetTree          ExtensionType = 2
	ExtensionRequiredCapabilities ExtensionType = 3
	ExtensionExternalPub          ExtensionType = 4
	ExtensionExternalSenders      ExtensionType = 5
)

// ProposalType (RFC 9420, Section 12.1 and 17.4).
type ProposalType uint16

// Proposal types of RFC 9420, Section 17.4.
const (
	ProposalAdd                    ProposalType = 1
	ProposalUpdate                 ProposalType = 2
	ProposalRemove                 ProposalType = 3
	ProposalPreSharedKey           ProposalType = 4
	ProposalReInit                 ProposalType = 5
	ProposalExternalInit           ProposalType = 6
	ProposalGroupContextExtensions ProposalType = 7
)

// CredentialType (RFC 9420, Section 5.3 and 17.5).
type CredentialType uint16

// Credential types of RFC 9420, Section 17.5.
const (
	CredentialBasic CredentialType = 1
	CredentialX509  CredentialType = 2
)

// LeafNodeSource (RFC 9420, Section 7.2).
type LeafNodeSource uint8

// Leaf node sources (RFC 9420, Section 7.2).
const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

// SenderType (RFC 9420, Section 6).
type SenderType uint8

// Sender types (RFC 9420, Section 6).
const (
	SenderMember            SenderType = 1
	SenderExternal          SenderType = 2
	SenderNewMemberProposal SenderType = 3
	SenderNewMemberCommit   SenderType = 4
)

// ContentType (RFC 9420, Section 6).
type ContentType uint8

// Content types (RFC 9420, Section 6).
const (
	ContentApplication ContentType = 1
	ContentProposal    ContentType = 2
	ContentCommit      ContentType = 3
)

// PSKType (RFC 9420, Section 8.4).
type PSKType uint8

// PSK types (RFC 9420, Section 8.4).
const (
	PSKExternal   PSKType = 1
	PSKResumption PSKType = 2
)

// ResumptionPSKUsage (RFC 9420, Section 8.4).
type ResumptionPSKUsage uint8

// Resumption PSK usages (RFC 9420, Section 8.4).
const (
	ResumptionApplication ResumptionPSKUsage = 1
	ResumptionReInit      ResumptionPSKUsage = 2
	ResumptionBranch      ResumptionPSKUsage = 3
)

// ProposalOrRefType (RFC 9420, Section 12.4).
type ProposalOrRefType uint8

// ProposalOrRef variants (RFC 9420, Section 12.4).
const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)

// Extension (RFC 9420, Section 13).
type Extension struct {
	Type ExtensionType
	Data []byte
}

// Capabilities (RFC 9420, Section 7.2).
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []cipher.SuiteID
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

// Lifetime (RFC 9420, Section 7.2): seconds since the Unix epoch.
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

// Credential (RFC 9420, Section 5.3). Identity is set for basic
// credentials, Certificates (DER, leaf first) for x509.
type Credential struct {
	Type         CredentialType
	Identity     []byte
	Certificates [][]byte
}

// LeafNode (RFC 9420, Section 7.2). Lifetime is set only for source
// key_package, ParentHash only for source commit.
type LeafNode struct {
	EncryptionKey []byte
	SignatureKey  []byte
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	Lifetime      *Lifetime
	ParentHash    []byte
	Extensions    []Extension
	Signature     []byte
}

// ParentNode (RFC 9420, Section 7.1).
type ParentNode struct {
	EncryptionKey  []byte
	ParentHash     []byte
	UnmergedLeaves []uint32
}

// Node (RFC 9420, Section 7.8) is one ratchet tree node: exactly one of
// Leaf and Parent is set. A blank node is a nil *Node.
type Node struct {
	Leaf   *LeafNode
	Parent *ParentNode
}

// HPKECiphertext (RFC 9420, Section 7.6).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

// UpdatePathNode (RFC 9420, Section 7.6).
type UpdatePathNode struct {
	EncryptionKey       []byte
	EncryptedPathSecret []HPKECiphertext
}

// UpdatePath (RFC 9420, Section 7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

// KeyPackage (RFC 9420, Section 10).
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite cipher.SuiteID
	InitKey     []byte
	LeafNode    LeafNode
	Extensions  []Extension
	Signature   []byte
}

// GroupContext (RFC 9420, Section 8.1).
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             cipher.SuiteID
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              []Extension
}

// PreSharedKeyID (RFC 9420, Section 8.4). PSKID is set for external PSKs;
// Usage, PSKGroupID and PSKEpoch for resumption PSKs.
type PreSharedKeyID struct {
	Type       PSKType
	PSKID      []byte
	Usage      ResumptionPSKUsage
	PSKGroupID []byte
	PSKEpoch   uint64
	Nonce      []byte
}

// ProposalBody is the content of a Proposal; each proposal type has one
// concrete pointer type implementing it.
type ProposalBody interface {
	ProposalType() ProposalType
}

// Proposal (RFC 9420, Section 12.1).
type Proposal struct {
	Type ProposalType
	Body ProposalBody
}

// Add (RFC 9420, Section 12.1.1).
type Add struct{ KeyPackage KeyPackage }

// Update (RFC 9420, Section 12.1.2).
type Update struct{ LeafNode LeafNode }

// Remove (RFC 9420, Section 12.1.3).
type Remove struct{ Removed uint32 }

// PreSharedKey (RFC 9420, Section 12.1.4).
type PreSharedKey struct{ PSK PreSharedKeyID }

// ReInit (RFC 9420, Section 12.1.5).
type ReInit struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite cipher.SuiteID
	Extensions  []Extension
}

// ExternalInit (RFC 9420, Section 12.1.6).
type ExternalInit struct{ KEMOutput []byte }

// GroupContextExtensions (RFC 9420, Section 12.1.7).
type GroupContextExtensions struct{ Extensions []Extension }

// ProposalType implements ProposalBody.
func (*Add) ProposalType() ProposalType { return ProposalAdd }

// ProposalType implements ProposalBody.
func (*Update) ProposalType() ProposalType { return ProposalUpdate }

// ProposalType implements ProposalBody.
func (*Remove) ProposalType() ProposalType { return ProposalRemove }

// ProposalType implements ProposalBody.
func (*PreSharedKey) ProposalType() ProposalType { return ProposalPreSharedKey }

// ProposalType implements ProposalBody.
func (*ReInit) ProposalType() ProposalType { return ProposalReInit }

// ProposalType implements ProposalBody.
func (*ExternalInit) ProposalType() ProposalType { return ProposalExternalInit }

// ProposalType implements ProposalBody.
func (*GroupContextExtensions) ProposalType() ProposalType { return ProposalGroupContextExtensions }

// ProposalOrRef (RFC 9420, Section 12.4): a proposal by value or a
// ProposalRef.
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  *Proposal
	Reference []byte
}

// Commit (RFC 9420, Section 12.4). Path is nil when absent.
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

// Sender (RFC 9420, Section 6). Index is the leaf_index of a member or the
// sender_index of an external sender; unused for new-member senders.
type Sender struct {
	Type  SenderType
	Index uint32
}

// FramedContent (RFC 9420, Section 6). Exactly one of ApplicationData,
// Proposal and Commit is meaningful, per ContentType.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte
	Proposal          *Proposal
	Commit            *Commit
}

// FramedContentAuthData (RFC 9420, Section 6.1). ConfirmationTag is present
// only for commits.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte
}

// AuthenticatedContent (RFC 9420, Section 6.1).
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

// PublicMessage (RFC 9420, Section 6.2). MembershipTag is present only when
// the sender is a member.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte
}

// PrivateMessage (RFC 9420, Section 6.3).
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

// GroupInfo (RFC 9420, Section 12.4.3).
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      []Extension
	ConfirmationTag []byte
	Signer          uint32
	Signature       []byte
}

// GroupSecrets (RFC 9420, Section 12.4.3.1). PathSecret is nil when absent.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   []byte
	PSKs         []PreSharedKeyID
}

// EncryptedGroupSecrets (RFC 9420, Section 12.4.3.1).
type EncryptedGroupSecrets struct {
	NewMember             []byte
	EncryptedGroupSecrets HPKECiphertext
}

// Welcome (RFC 9420, Section 12.4.3.1).
type Welcome struct {
	CipherSuite        cipher.SuiteID
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

// MLSMessage (RFC 9420, Section 6): exactly one body is set, per WireFormat.
type MLSMessage struct {
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}
