package admin

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

func sortBy[T any](s []T, key func(T) string) {
	sort.SliceStable(s, func(i, j int) bool { return key(s[i]) < key(s[j]) })
}

// errNotGroupInfo: stored bytes are neither a GroupInfo nor an MLSMessage
// carrying one.
var errNotGroupInfo = errors.New("not a GroupInfo")

// DecodeGroupInfo decodes a stored GroupInfo (RFC 9420, Section 12.4.3):
// either an MLSMessage of wire format mls_group_info (Section 6) or a bare
// GroupInfo. Decoding is strict, so at most one form matches.
func DecodeGroupInfo(b []byte) (*wire.GroupInfo, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", errNotGroupInfo)
	}
	if m, err := wire.UnmarshalMLSMessage(b); err == nil {
		if m.WireFormat != wire.WireFormatGroupInfo || m.GroupInfo == nil {
			return nil, fmt.Errorf("%w: MLSMessage of wire format %d", errNotGroupInfo, m.WireFormat)
		}
		return m.GroupInfo, nil
	}
	gi, err := wire.UnmarshalGroupInfo(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotGroupInfo, err)
	}
	return gi, nil
}

// DecodePublicMessage decodes a stored handshake message: an MLSMessage of
// wire format mls_public_message (RFC 9420, Section 6), or a bare
// PublicMessage.
func DecodePublicMessage(b []byte) (*wire.PublicMessage, error) {
	if m, err := wire.UnmarshalMLSMessage(b); err == nil {
		if m.WireFormat != wire.WireFormatPublicMessage || m.PublicMessage == nil {
			return nil, fmt.Errorf("admin: MLSMessage of wire format %d, want a PublicMessage", m.WireFormat)
		}
		return m.PublicMessage, nil
	}
	pm, err := wire.UnmarshalPublicMessage(b)
	if err != nil {
		return nil, fmt.Errorf("admin: not a PublicMessage: %w", err)
	}
	return pm, nil
}

// DecodeRatchetTree decodes a stored ratchet tree (RFC 9420, Section
// 12.4.3.3); empty bytes give a nil tree.
func DecodeRatchetTree(b []byte) (wire.RatchetTree, error) {
	if len(b) == 0 {
		return nil, nil
	}
	return wire.UnmarshalRatchetTree(b)
}

// describeRoom renders a room for GetRoom.
func describeRoom(r *projections.Room, props []projections.Proposal, now time.Time, raw bool) *adminv1.Room {
	out := &adminv1.Room{
		Id: r.ID, Hub: r.Hub, Creator: r.Creator, Epoch: r.Epoch, Closed: r.Closed,
		CreatedAt: millis(r.CreatedAt), CreatedSeq: r.CreatedSeq,
		LastCommitAt: millis(r.LastCommitAt), LastCommitSeq: r.LastCommitSeq,
		MemberClients: append([]string(nil), r.Members...),
		PolicyRaw:     r.Policy, ParticipantsRaw: r.Participants,
	}
	if raw {
		out.GroupInfoRaw, out.RatchetTreeRaw = r.GroupInfo, r.RatchetTree
	}

	// The GroupInfo was set by RoomCreated or by the latest commit.
	gs := &adminv1.GroupInfoStatus{SetSeq: r.CreatedSeq, Size: uint32(len(r.GroupInfo))}
	setAt := r.CreatedAt
	if r.LastCommitSeq != 0 {
		gs.SetSeq, setAt = r.LastCommitSeq, r.LastCommitAt
	}
	gs.SetAt = millis(setAt)
	gs.Age = durationOf(now.Sub(time.UnixMilli(int64(setAt))))
	out.GroupInfo = gs

	gi, err := DecodeGroupInfo(r.GroupInfo)
	if err != nil {
		gs.DecodeError = err.Error()
	} else {
		gs.Epoch, gs.CipherSuite, gs.GroupId, gs.Signer = gi.GroupContext.Epoch, uint32(gi.GroupContext.CipherSuite), gi.GroupContext.GroupID, gi.Signer
		// Policy and participants as the members agreed on them: the
		// application_states extension of the GroupContext
		// (draft-ralston-mimi-protocol-02, Section 7).
		if st, found, err := wire.ApplicationStatesExtension(gi.GroupContext.Extensions); err == nil && found {
			if rm, err := mimi.RoomFromStates(st); err == nil {
				out.Policy, out.PolicySource = policyMessage(&rm.Policy), "group_info"
				for _, p := range rm.Participants {
					out.Participants = append(out.Participants, &adminv1.Participant{User: p.User, Role: p.Role})
				}
				out.ParticipantsSource = "group_info"
			}
		}
	}
	if out.Policy == nil && len(r.Policy) > 0 {
		var p mimi.Policy
		if codec.Unmarshal(r.Policy, "RoomPolicy", &p) == nil {
			out.Policy, out.PolicySource = policyMessage(&p), "projection"
		}
	}
	if out.ParticipantsSource == "" && len(r.Participants) > 0 {
		if ps, ok := decodeParticipants(r.Participants); ok {
			out.Participants, out.ParticipantsSource = ps, "projection"
		}
	}

	if rt, err := DecodeRatchetTree(r.RatchetTree); err == nil {
		if rt == nil && gi != nil {
			rt, _, _ = wire.RatchetTreeExtension(gi.Extensions)
		}
		out.Leaves = treeLeaves(rt)
	}

	for _, p := range props {
		cp := &adminv1.CachedProposal{Seq: p.Seq, AcceptedAt: millis(p.Timestamp), Epoch: p.Epoch, Ref: p.Ref, Sender: p.Sender, MessageSize: uint32(len(p.Message))}
		if pm, err := DecodePublicMessage(p.Message); err == nil && pm.Content.Proposal != nil {
			cp.ProposalType = proposalTypeName(pm.Content.Proposal.Type)
		}
		out.Proposals = append(out.Proposals, cp)
	}
	return out
}

func policyMessage(p *mimi.Policy) *adminv1.Policy {
	out := &adminv1.Policy{RoomId: p.RoomID}
	for _, r := range p.Roles {
		role := &adminv1.Role{Name: r.Name}
		for _, perm := range r.Permissions {
			role.Permissions = append(role.Permissions, perm.String())
		}
		out.Roles = append(out.Roles, role)
	}
	return out
}

// decodeParticipants decodes the hub's stored participant list: the
// mimiParticipantList application state (draft-ralston-mimi-protocol-02,
// Section 7; a map from user URI to role), as the provider stores it.
// Other encodings are shown raw only.
func decodeParticipants(b []byte) ([]*adminv1.Participant, bool) {
	var st appsync.ApplicationState
	if codec.Unmarshal(b, "mimiParticipantList", &st) != nil || st.ApplicationID != mimi.AppIDParticipantList || st.Type != appsync.Map {
		return nil, false
	}
	out := []*adminv1.Participant{}
	for _, e := range st.Entries {
		out = append(out, &adminv1.Participant{User: printable(e.Name), Role: printable(e.Value)})
	}
	return out, true
}

// treeLeaves lists the non-blank leaves of a ratchet tree (RFC 9420,
// Section 7.1: leaves are the even node indices).
func treeLeaves(rt wire.RatchetTree) []*adminv1.TreeLeaf {
	var out []*adminv1.TreeLeaf
	for i := 0; i < len(rt); i += 2 {
		n := rt[i]
		if n == nil || n.Leaf == nil {
			continue
		}
		ln := n.Leaf
		out = append(out, &adminv1.TreeLeaf{
			Index: uint32(i / 2), Identity: credentialIdentity(&ln.Credential),
			CredentialType: credentialTypeName(ln.Credential.Type), SignatureKey: ln.SignatureKey,
		})
	}
	return out
}

// credentialIdentity renders a credential's identity: the MIMI client URI
// when it is a MIMI client identity, else the identity as text or hex.
func credentialIdentity(c *wire.Credential) string {
	if id, err := mimi.IdentityFromCredential(c); err == nil {
		return id.Client
	}
	if c.Type == wire.CredentialBasic {
		return printable(c.Identity)
	}
	return fmt.Sprintf("%d certificate(s)", len(c.Certificates))
}

func credentialTypeName(t wire.CredentialType) string {
	switch t {
	case wire.CredentialBasic:
		return "basic"
	case wire.CredentialX509:
		return "x509"
	}
	return fmt.Sprintf("credential(%d)", uint16(t))
}

// printable returns b as text if it is printable UTF-8, else as hex.
func printable(b []byte) string {
	if utf8.Valid(b) && !strings.ContainsFunc(string(b), func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return string(b)
	}
	return fmt.Sprintf("%x", b)
}

func proposalTypeName(t wire.ProposalType) string {
	switch t {
	case wire.ProposalAdd:
		return "add"
	case wire.ProposalUpdate:
		return "update"
	case wire.ProposalRemove:
		return "remove"
	case wire.ProposalPreSharedKey:
		return "psk"
	case wire.ProposalReInit:
		return "reinit"
	case wire.ProposalExternalInit:
		return "external_init"
	case wire.ProposalGroupContextExtensions:
		return "group_context_extensions"
	case wire.ProposalSelfRemove:
		return "self_remove"
	case wire.ProposalAppSync:
		return "app_sync"
	}
	return fmt.Sprintf("proposal(%d)", uint16(t))
}
