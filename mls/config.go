package mls

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/wire"
)

// Defaults of Config.
const (
	// DefaultPastEpochs is the number of past epochs whose secret trees,
	// sender data secrets and member signature keys are kept for late
	// application messages (RFC 9420, Section 15.3).
	DefaultPastEpochs = 2
	// DefaultMaxPastEpochs bounds the past epochs kept under
	// Config.PastEpochTime when Config.MaxPastEpochs is zero.
	DefaultMaxPastEpochs = 64
	// DefaultResumptionPSKs is the number of epochs (the current one
	// included) whose resumption_psk is kept (RFC 9420, Section 8.6: "The
	// application SHOULD specify an upper limit").
	DefaultResumptionPSKs = 16
	// DefaultKeyPackageLifetime is the lifetime given to new KeyPackages and
	// to the creator's leaf (RFC 9420, Section 7.2).
	DefaultKeyPackageLifetime = 90 * 24 * time.Hour
)

// Config holds a Group's policy and callbacks (RFC 9420 leaves these to the
// application). It is not part of the serialized state: pass it again to
// UnmarshalState. The zero value is usable.
type Config struct {
	// Clock returns the current time, used for LeafNode lifetime checks
	// (RFC 9420, Section 7.3) and for the lifetime of new leaves. Nil means
	// time.Now. A clock returning the zero time disables lifetime checks.
	Clock func() time.Time
	// CheckTreeLifetimes also checks the lifetime of every leaf of a tree
	// being joined (RFC 9420, Section 7.3 makes this RECOMMENDED only:
	// leaves of members that never committed carry their KeyPackage
	// lifetime forever, so strict checking can make old groups unjoinable).
	CheckTreeLifetimes bool
	// MaxLifetime, when non-zero, bounds not_after - not_before of
	// key_package leaves (RFC 9420, Section 7.2).
	MaxLifetime time.Duration
	// VerifyCredential validates a leaf's credential and its binding to
	// the signature key (RFC 9420, Section 5.3.1). Nil accepts every
	// credential.
	VerifyCredential func(ln *wire.LeafNode) error
	// SameClient decides whether two leaves belong to the same client
	// "according to the application" (RFC 9420, Section 12.2): for
	// duplicate Adds, Adds of existing members, resync external commits,
	// the UpdatePath leaf of a member's commit (checked only when set) and
	// the member checks of reinit/branch Welcomes (Sections 11.2, 11.3).
	// Nil means mls/commit's defaults for proposal lists (equal signature
	// keys; equal credentials for resync) and equal credentials elsewhere.
	SameClient func(a, b *wire.LeafNode) bool
	// ExternalPSK returns the secret of an external PSK by psk_id (RFC 9420,
	// Section 8.4), or an error when it is not held.
	ExternalPSK func(pskID []byte) ([]byte, error)
	// ResumptionPSK returns the resumption_psk of another group's epoch
	// (RFC 9420, Section 8.6). Resumption PSKs of this group are served
	// from the group's own history.
	ResumptionPSK func(groupID []byte, epoch uint64) ([]byte, error)
	// PastEpochs is how many past epochs are kept for late application
	// messages whatever their age; 0 means DefaultPastEpochs, negative
	// keeps none (RFC 9420, Section 15.3 leaves the retention to the
	// application).
	PastEpochs int
	// PastEpochTime, when positive, also keeps older past epochs until
	// this long after the group left them, at most MaxPastEpochs in all:
	// late messages are then bounded by time instead of by the number of
	// commits in between. Expired epochs are deleted when the group
	// advances, when a message for a past epoch arrives and when the state
	// is marshaled. The clock is Clock.
	PastEpochTime time.Duration
	// MaxPastEpochs bounds the past epochs kept under PastEpochTime; 0
	// means DefaultMaxPastEpochs. PastEpochs is kept even when larger.
	MaxPastEpochs int
	// ResumptionPSKs is how many epochs' resumption_psk are kept; 0 means
	// DefaultResumptionPSKs, negative keeps only the current one.
	ResumptionPSKs int
	// MaxForwardDistance and MaxSkippedKeys configure the secret tree's
	// out-of-order window (RFC 9420, Section 9.2); zero means the
	// keyschedule defaults.
	MaxForwardDistance uint32
	MaxSkippedKeys     int
	// PadTo pads PrivateMessage content to a multiple of this many bytes
	// (RFC 9420, Section 6.3.1); 0 or 1 means no padding.
	PadTo int
	// AllowAppDataWithPendingProposals lifts the rule that a member commits
	// pending proposals before sending application data (RFC 9420,
	// Section 12.4).
	AllowAppDataWithPendingProposals bool
	// Rand is the randomness source for nonces and reuse guards; nil means
	// crypto/rand. (HPKE and signature randomness always use crypto/rand.)
	Rand io.Reader
}

// now returns the configured time.
func (c *Config) now() time.Time {
	if c.Clock == nil {
		return time.Now()
	}
	return c.Clock()
}

func (c *Config) pastEpochs() int {
	switch {
	case c.PastEpochs == 0:
		return DefaultPastEpochs
	case c.PastEpochs < 0:
		return 0
	}
	return c.PastEpochs
}

// keepPast returns the suffix of past (oldest first) that the retention
// rules keep at now: the newest pastEpochs() entries, and newer than
// PastEpochTime up to MaxPastEpochs.
func (c *Config) keepPast(past []*pastEpoch, now time.Time) []*pastEpoch {
	count, limit := c.pastEpochs(), 0
	if c.PastEpochTime > 0 {
		limit = c.MaxPastEpochs
		if limit <= 0 {
			limit = DefaultMaxPastEpochs
		}
	}
	keep := 0
	for k := len(past) - 1; k >= 0; k-- {
		n := len(past) - k // 1 for the newest
		if n > count && (n > limit || now.Sub(past[k].ended) >= c.PastEpochTime) {
			break
		}
		keep = n
	}
	return past[len(past)-keep:]
}

func (c *Config) resumptionPSKs() int {
	switch {
	case c.ResumptionPSKs == 0:
		return DefaultResumptionPSKs
	case c.ResumptionPSKs < 0:
		return 1
	}
	return c.ResumptionPSKs
}

func (c *Config) maxForward() uint32 {
	if c.MaxForwardDistance == 0 {
		return keyschedule.DefaultMaxForwardDistance
	}
	return c.MaxForwardDistance
}

func (c *Config) maxSkipped() int {
	if c.MaxSkippedKeys == 0 {
		return keyschedule.DefaultMaxSkippedKeys
	}
	if c.MaxSkippedKeys < 0 {
		return 0
	}
	return c.MaxSkippedKeys
}

func (c *Config) sameClient(a, b *wire.LeafNode) bool {
	if c.SameClient != nil {
		return c.SameClient(a, b)
	}
	return credentialsEqual(&a.Credential, &b.Credential)
}

// credentialsEqual compares two credentials field by field.
func credentialsEqual(a, b *wire.Credential) bool {
	return a.Type == b.Type && bytes.Equal(a.Identity, b.Identity) &&
		slices.EqualFunc(a.Certificates, b.Certificates, bytes.Equal)
}

// StaticPSKs returns a Config.ExternalPSK function serving the given
// psk_id -> secret map (RFC 9420, Section 8.4); the map is copied.
func StaticPSKs(psks map[string][]byte) func([]byte) ([]byte, error) {
	m := make(map[string][]byte, len(psks))
	for k, v := range psks {
		m[k] = bytes.Clone(v)
	}
	return func(id []byte) ([]byte, error) {
		if v, ok := m[string(id)]; ok {
			return v, nil
		}
		return nil, fmt.Errorf("%w: external PSK %x", ErrMissingPSK, id)
	}
}

// DefaultCapabilities returns the capabilities this implementation
// supports for suite (RFC 9420, Section 7.2): mls10, the suite, the
// application_states extension, the SelfRemove and AppSync proposals, and
// basic and X.509 credentials (plus credType if it is another type).
func DefaultCapabilities(suite cipher.SuiteID, credType wire.CredentialType) wire.Capabilities {
	creds := []wire.CredentialType{wire.CredentialBasic, wire.CredentialX509}
	if !slices.Contains(creds, credType) && credType != 0 {
		creds = append(creds, credType)
	}
	return wire.Capabilities{
		Versions:     []wire.ProtocolVersion{wire.MLS10},
		CipherSuites: []cipher.SuiteID{suite},
		Extensions:   []wire.ExtensionType{wire.ExtensionApplicationStates},
		Proposals:    []wire.ProposalType{wire.ProposalSelfRemove, wire.ProposalAppSync},
		Credentials:  creds,
	}
}

// Signer is a member's identity: its credential and signature private key
// (RFC 9420, Sections 5.1.2 and 5.3). The public key is derived from the
// private key.
type Signer struct {
	Credential    wire.Credential
	SignaturePriv []byte
}

// LeafOptions customize a LeafNode this member creates (RFC 9420, Section
// 7.2): in a KeyPackage, at group creation, in an Update or in the
// UpdatePath of a Commit.
type LeafOptions struct {
	// Capabilities; nil means DefaultCapabilities.
	Capabilities *wire.Capabilities
	// Extensions of the LeafNode.
	Extensions []wire.Extension
	// Lifetime for key_package leaves; nil means from one hour ago to
	// DefaultKeyPackageLifetime ahead of Config.Clock.
	Lifetime *wire.Lifetime
	// Signer, when set, replaces the member's credential and signature key
	// (Update and Commit leaves only; RFC 9420, Section 12.1.2).
	Signer *Signer
}
