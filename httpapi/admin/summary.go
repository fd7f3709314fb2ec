package admin

import (
	"fmt"
	"strings"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mls/wire"
)

// maxSummaryList bounds how many list items a summary names.
const maxSummaryList = 8

// Summarize returns a one-line description of an event's body for
// operators: the fields of the event types of package eventlog
// (draft-ralston-mimi-protocol-02, Sections 4 and 5), with byte strings
// shortened and MLS messages (RFC 9420, Section 6) described by their
// sender, epoch and content. It never fails: undecodable MLS bytes are
// reported as such.
func Summarize(ev *eventlog.Event) string {
	switch b := ev.Body.(type) {
	case *eventlog.ClientRegistered:
		return fmt.Sprintf("user=%s client=%s signature_key=%s credential=%dB", b.User, b.Client, short(b.SignatureKey), len(b.Credential))
	case *eventlog.ClientRemoved:
		return "client=" + b.Client
	case *eventlog.KeyPackagesUploaded:
		refs := make([]string, 0, len(b.KeyPackages))
		for _, kp := range b.KeyPackages {
			refs = append(refs, fmt.Sprintf("%s(suite %d)", short(kp.Ref), kp.CipherSuite))
		}
		return fmt.Sprintf("client=%s key_packages=%d [%s]", b.Client, len(b.KeyPackages), list(refs))
	case *eventlog.KeyPackageClaimed:
		return fmt.Sprintf("ref=%s client=%s claimer=%s", short(b.Ref), b.Client, b.Claimer)
	case *eventlog.KeyPackageRouted:
		return fmt.Sprintf("ref=%s provider=%s user=%s", short(b.Ref), b.Provider, b.User)
	case *eventlog.RoomCreated:
		return fmt.Sprintf("hub=%s creator=%s epoch=%d members=[%s] group_info=%s tree=%dB",
			b.Hub, b.Creator, b.Epoch, list(b.Members), groupInfoSummary(b.GroupInfo), len(b.RatchetTree))
	case *eventlog.RoomStateUpdated:
		return fmt.Sprintf("sender=%s participants=%s policy=%s", b.Sender, optBytes(b.Participants), optBytes(b.Policy))
	case *eventlog.RoomClosed:
		return fmt.Sprintf("sender=%s reason=%q", b.Sender, b.Reason)
	case *eventlog.ProposalAccepted:
		return fmt.Sprintf("epoch=%d sender=%s ref=%s %s", b.Epoch, b.Sender, short(b.ProposalRef), messageSummary(b.Message))
	case *eventlog.CommitAccepted:
		welcome := "none"
		if b.Welcome != nil {
			routes := make([]string, 0, len(b.WelcomeRoutes))
			for _, r := range b.WelcomeRoutes {
				routes = append(routes, r.Provider)
			}
			welcome = fmt.Sprintf("%dB->[%s]", len(b.Welcome), list(routes))
		}
		return fmt.Sprintf("epoch=%d sender=%s %s welcome=%s members=[%s] group_info=%s",
			b.Epoch, b.Sender, messageSummary(b.Commit), welcome, list(b.Members), groupInfoSummary(b.GroupInfo))
	case *eventlog.ApplicationMessageAccepted:
		return fmt.Sprintf("epoch=%d sender=%s message=%dB", b.Epoch, b.Sender, len(b.Message))
	case *eventlog.NotifyAccepted:
		return fmt.Sprintf("hub=%s body=%dB sha256=%s", b.Hub, len(b.Body), short(b.BodyHash))
	case *eventlog.FanoutEnqueued:
		return fmt.Sprintf("source=%s part=%s destinations=[%s]", sourceSeq(ev, b.Back), partName(b.Part), list(b.Destinations))
	case *eventlog.FanoutDelivered:
		return fmt.Sprintf("destination=%s up_to=%d", b.Destination, b.UpTo)
	case *eventlog.ClientEnqueued:
		return fmt.Sprintf("source=%s part=%s index=%d clients=[%s]", sourceSeq(ev, b.Back), partName(b.Part), b.Index, list(b.Clients))
	case *eventlog.ClientDelivered:
		return fmt.Sprintf("client=%s up_to=%d", b.Client, b.UpTo)
	case *eventlog.GroupBound:
		return fmt.Sprintf("hub=%s group_id=%s", b.Hub, short(b.GroupID))
	case *eventlog.NotifyDedupPruned:
		return fmt.Sprintf("older_than=%d limit=%d", b.OlderThan, b.Limit)
	case *eventlog.KeyPackagesExpired:
		return fmt.Sprintf("now=%d limit=%d", b.Now, b.Limit)
	case *eventlog.ClientCallAccepted:
		return fmt.Sprintf("digest=%s expiry=%d now=%d", short(b.Digest), b.Expiry, b.Now)
	case *eventlog.HubKeyDeclared:
		return fmt.Sprintf("cipher_suite=%d signature_key=%s", b.CipherSuite, short(b.SignatureKey))
	case nil:
		return "(no body)"
	}
	return fmt.Sprintf("(%s)", ev.Type())
}

// sourceSeq names the event back positions before ev.
func sourceSeq(ev *eventlog.Event, back uint64) string {
	if back == 0 || back >= ev.Seq {
		return fmt.Sprintf("invalid(back %d)", back)
	}
	return fmt.Sprintf("seq %d", ev.Seq-back)
}

func partName(p eventlog.Part) string {
	switch p {
	case eventlog.PartMessage:
		return "message"
	case eventlog.PartWelcome:
		return "welcome"
	}
	return fmt.Sprintf("part(%d)", uint8(p))
}

// short renders up to 8 bytes of b in hex, with its length if longer.
func short(b []byte) string {
	if len(b) <= 8 {
		return fmt.Sprintf("%x", b)
	}
	return fmt.Sprintf("%x…(%dB)", b[:8], len(b))
}

func optBytes(b []byte) string {
	if b == nil {
		return "unchanged"
	}
	return fmt.Sprintf("%dB", len(b))
}

// list joins at most maxSummaryList items.
func list(items []string) string {
	if len(items) <= maxSummaryList {
		return strings.Join(items, ",")
	}
	return strings.Join(items[:maxSummaryList], ",") + fmt.Sprintf(",…+%d", len(items)-maxSummaryList)
}

// groupInfoSummary describes a stored GroupInfo.
func groupInfoSummary(b []byte) string {
	gi, err := DecodeGroupInfo(b)
	if err != nil {
		return fmt.Sprintf("%dB(undecodable)", len(b))
	}
	return fmt.Sprintf("%dB(epoch %d, signer %d)", len(b), gi.GroupContext.Epoch, gi.Signer)
}

// messageSummary describes a stored handshake MLSMessage.
func messageSummary(b []byte) string {
	pm, err := DecodePublicMessage(b)
	if err != nil {
		return fmt.Sprintf("message=%dB(undecodable)", len(b))
	}
	c := &pm.Content
	s := fmt.Sprintf("message=%dB(%s", len(b), senderName(c.Sender))
	switch {
	case c.Commit != nil:
		types := make([]string, 0, len(c.Commit.Proposals))
		for _, p := range c.Commit.Proposals {
			if p.Type == wire.ProposalOrRefReference {
				types = append(types, "ref")
			} else if p.Proposal != nil {
				types = append(types, proposalTypeName(p.Proposal.Type))
			}
		}
		s += fmt.Sprintf(", commit [%s], path=%v", list(types), c.Commit.Path != nil)
	case c.Proposal != nil:
		s += ", " + proposalTypeName(c.Proposal.Type)
	}
	return s + ")"
}

func senderName(s wire.Sender) string {
	switch s.Type {
	case wire.SenderMember:
		return fmt.Sprintf("leaf %d", s.Index)
	case wire.SenderExternal:
		return fmt.Sprintf("external %d", s.Index)
	case wire.SenderNewMemberProposal:
		return "new member proposal"
	case wire.SenderNewMemberCommit:
		return "new member commit"
	}
	return fmt.Sprintf("sender type %d", s.Type)
}
