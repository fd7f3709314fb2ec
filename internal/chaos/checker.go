package chaos

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// EntryKind says what a hub log entry is (draft-ralston-mimi-protocol-02,
// Sections 3.1, 5.3 and 5.4).
type EntryKind uint8

// Kinds of hub log entries the checker looks at.
const (
	// KindCreated: the room was created (Section 3.1); no message.
	KindCreated EntryKind = iota + 1
	// KindCommit: an accepted commit (Section 5.3), possibly with a
	// Welcome.
	KindCommit
	// KindProposal: an accepted proposal (Section 5.3).
	KindProposal
	// KindMessage: an accepted application message (Section 5.4).
	KindMessage
)

// String names the kind.
func (k EntryKind) String() string {
	switch k {
	case KindCreated:
		return "created"
	case KindCommit:
		return "commit"
	case KindProposal:
		return "proposal"
	case KindMessage:
		return "message"
	}
	return fmt.Sprintf("EntryKind(%d)", uint8(k))
}

// LogEntry is one room event of the hub's log that clients may receive
// (draft-ralston-mimi-protocol-02, Section 5.5: the hub fans out every
// accepted proposal, commit and application message, in room order).
type LogEntry struct {
	// Seq is the global sequence number, RoomSeq the room's.
	Seq, RoomSeq uint64
	Room         string
	Kind         EntryKind
	// Epoch is the MLS epoch the message was sent in (RFC 9420, Section
	// 6: a commit's is the epoch it ends), or for KindCreated the epoch
	// of the room's first GroupInfo.
	Epoch uint64
	// Message is the MLSMessage fanned out (nil for KindCreated).
	Message []byte
	// Welcome is a commit's Welcome MLSMessage, if any.
	Welcome []byte
	// Members is the room's member client list after a KindCreated or
	// KindCommit entry (nil otherwise).
	Members []string
	// Sender is who the hub recorded as sender (a client URI, or a
	// provider domain for a remote submission).
	Sender string
	// ProposalRef is a KindProposal entry's ProposalRef (RFC 9420,
	// Section 5.2); Refs are the ProposalRefs a KindCommit entry's commit
	// includes by reference (RFC 9420, Section 12.4).
	ProposalRef []byte
	Refs        [][]byte
	// Leaving lists, for a KindProposal entry of a participant-list
	// AppSync that removes users (a leave, Section 3.5), the member
	// clients of those users.
	Leaving []string
	// External: a KindCommit entry is an external commit (RFC 9420,
	// Section 12.4.3.2), a participant's new client joining
	// (draft-ralston-mimi-protocol-02, Sections 3.6 and 5.6).
	External bool
}

// Submit is one application message (draft-ralston-mimi-protocol-02,
// Section 5.4), commit or proposal (Section 5.3) a client submitted
// through its provider, with what the client learned of its outcome.
type Submit struct {
	Client, Room string
	// Message is the submitted MLSMessage; every retry sent these bytes.
	Message []byte
	// Label is the plaintext the client encrypted, or the change a commit
	// or proposal makes.
	Label string
	// Acked: the provider answered accepted (success for a commit).
	Acked bool
	// Refusal describes the answer when it was another response code;
	// empty when accepted or when no answer came.
	Refusal string
	// Attempts is the number of calls made (1 = no retry); Sent and
	// Answered are the times of the first call and of the answer (zero
	// if none came).
	Attempts       int
	Sent, Answered time.Time
}

// Delivery is one entry of a client's inbox (Section 5.5 as delivered to a
// client): its inbox position, room and MLSMessage, and when the client
// read it.
type Delivery struct {
	Pos     uint64
	Room    string
	Message []byte
	Read    time.Time
}

// CheckInput is what Check compares.
type CheckInput struct {
	// Log is the hub's log (every room), in log order.
	Log []LogEntry
	// Submits are all application messages the clients submitted,
	// Commits all their commits, Proposals all their proposals (one
	// Submit per proposal of an update request).
	Submits, Commits, Proposals []Submit
	// Received maps each client URI to its inbox entries in position
	// order. Every client of the run must be present.
	Received map[string][]Delivery
	// Removed maps each client URI to the removals from a room its Syncs
	// reported (client.EventRemoved); nil skips that comparison.
	Removed map[string][]Removal
}

// Removal is a client's report that a commit removed it from a room
// (client.EventRemoved): the room and the inbox position of the commit.
type Removal struct {
	Room string
	Pos  uint64
}

// ProblemKind classifies a violation found by Check.
type ProblemKind string

// Violations Check reports.
const (
	// ProblemLostAtHub: an acknowledged submission is not in the hub log.
	ProblemLostAtHub ProblemKind = "acked-not-in-hub-log"
	// ProblemDuplicateAtHub: a submission is in the hub log more than once.
	ProblemDuplicateAtHub ProblemKind = "duplicate-in-hub-log"
	// ProblemPhantomAtHub: the hub log holds an application message or
	// commit no client submitted.
	ProblemPhantomAtHub ProblemKind = "hub-message-not-submitted"
	// ProblemRefusedAtHub: a submission whose last answer was a refusal
	// (epochTooOld, wrongEpoch, notAllowed, ...) is in the hub log: the
	// client believes it was not accepted, and sends the plaintext again
	// or its group stays behind the room's.
	ProblemRefusedAtHub ProblemKind = "refused-but-in-hub-log"
	// ProblemEpoch: the hub log holds a message of another MLS epoch than
	// the room's at its position (RFC 9420, Section 6).
	ProblemEpoch ProblemKind = "wrong-epoch-in-hub-log"
	// ProblemLost: a member did not receive a room event, or a client
	// added by a commit its Welcome.
	ProblemLost ProblemKind = "lost-delivery"
	// ProblemDuplicate: a client received the same message more than once.
	ProblemDuplicate ProblemKind = "duplicate-delivery"
	// ProblemReordered: a client received a room's events out of the hub
	// log's order.
	ProblemReordered ProblemKind = "reordered-delivery"
	// ProblemUnknown: a client received a message the hub log does not
	// hold (or one of a room it was not a member of at the time).
	ProblemUnknown ProblemKind = "delivery-not-in-hub-log"
	// ProblemUndecryptable: a client could not process a message of
	// another member (reported by the harness, not by Check).
	ProblemUndecryptable ProblemKind = "undecryptable"
	// ProblemProposalDropped: the commit that ended a proposal's epoch
	// does not include it (draft-ralston-mimi-protocol-02, Section 3.5:
	// the hub requires the next committer to include every cached
	// proposal), so a leave, say, was not completed there.
	ProblemProposalDropped ProblemKind = "proposal-not-committed"
	// ProblemRemoval: a client did not report its removal
	// (client.EventRemoved) when it processed the commit that ended its
	// membership, or reported a removal at another message (Section 5.5:
	// removed clients receive their removal).
	ProblemRemoval ProblemKind = "removal-not-reported"
)

// Problem is one violation.
type Problem struct {
	Kind   ProblemKind
	Client string
	Room   string
	// Message is a short hash of the MLSMessage concerned.
	Message string
	// Retried: the submission concerned was retried (sent more than once
	// with the same bytes).
	Retried bool
	Detail  string
}

// String formats the problem on one line.
func (p Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", p.Kind)
	if p.Client != "" {
		fmt.Fprintf(&b, " client=%s", p.Client)
	}
	if p.Room != "" {
		fmt.Fprintf(&b, " room=%s", p.Room)
	}
	if p.Message != "" {
		fmt.Fprintf(&b, " msg=%s", p.Message)
	}
	if p.Retried {
		b.WriteString(" retried")
	}
	if p.Detail != "" {
		fmt.Fprintf(&b, ": %s", p.Detail)
	}
	return b.String()
}

// CheckReport is the result of Check.
type CheckReport struct {
	// Acked, Unacked and Retried count application message submissions
	// (Retried: more than one attempt; AckedRetried: of those,
	// acknowledged).
	Acked, Unacked, Retried, AckedRetried int
	// CommitsAcked and CommitsRetried count the commits acknowledged, and
	// those sent more than once; ProposalsAcked the proposals
	// acknowledged.
	CommitsAcked, CommitsRetried, ProposalsAcked int
	// HubProposals is the number of proposals in the hub log.
	HubProposals int
	// HubMessages is the number of application messages in the hub log.
	HubMessages int
	// Joins counts the clients' memberships that began with a commit
	// (whose Welcome they had to receive, or their own external commit:
	// ExternalJoins of them), Removals those that a commit ended.
	Joins, ExternalJoins, Removals int
	// DeliveriesChecked is the number of (member, room event) pairs and
	// (added client, Welcome) pairs that had to be received exactly
	// once, in order.
	DeliveriesChecked int
	// Problems lists every violation; empty means the run passed.
	Problems []Problem
}

// OK reports whether no violation was found.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

// Count returns how many problems of kind k were found.
func (r *CheckReport) Count(k ProblemKind) int {
	n := 0
	for _, p := range r.Problems {
		if p.Kind == k {
			n++
		}
	}
	return n
}

type digest = [32]byte

func short(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:6])
}

// membership is one period of a client's membership in a room, in room
// sequence numbers: (join, leave], leave 0 while it lasts, or [join,
// leave] when external: it began with the client's own external commit,
// which it receives back (its echo). welcome is the Welcome of the
// commit that began it, if any.
type membership struct {
	join, leave uint64
	external    bool
	welcome     []byte
}

func (m membership) holds(roomSeq uint64) bool {
	return (roomSeq > m.join || m.external && roomSeq == m.join) && (m.leave == 0 || roomSeq <= m.leave)
}

// memberships returns a client's memberships of a room from the member
// lists of its created and commit entries; own tells the client's own
// commits.
func memberships(entries []*LogEntry, c string, own func(*LogEntry) bool) []membership {
	var out []membership
	member := false
	for _, e := range entries {
		if e.Kind != KindCreated && e.Kind != KindCommit {
			continue
		}
		in := slices.Contains(e.Members, c)
		switch {
		case !member && in:
			out = append(out, membership{join: e.RoomSeq, external: e.External && own(e), welcome: e.Welcome})
		case member && !in:
			out[len(out)-1].leave = e.RoomSeq
		}
		member = in
	}
	return out
}

// Check compares every client's received sequence with the hub's log
// (draft-ralston-mimi-protocol-02, Sections 5.3 to 5.5):
//
//  1. every acknowledged submission (application message, commit or
//     proposal) appears in the hub log exactly once, an unacknowledged
//     one at most once, a refused one not at all, and the log holds no
//     application message, commit or proposal that no client submitted;
//  2. every message of the log is of the room's MLS epoch at its
//     position (a commit ends its epoch), and the commit that ends an
//     epoch includes, by reference, every proposal accepted in it
//     (Section 3.5: so a leave completes at the commit after its
//     proposals);
//  3. a client is a member of a room from each created/commit entry whose
//     member list names it (after one that did not) up to and including
//     the next commit whose list does not: it must receive the Welcome of
//     the commit that added it, and every message, proposal and commit of
//     the room during its membership (the commit removing it included,
//     Section 5.5), exactly once, its own proposals and commits included
//     (they tell a client whose answer was lost that the hub accepted
//     them), except its own application messages, which it may receive at
//     most once (echo suppression is best effort). An application message
//     thus reaches exactly the members of the epoch it was accepted in,
//     less those whose user a proposal accepted before it in the epoch
//     removed from the participant list (a leave, Section 3.5: the
//     AppSync takes effect at once, Section 6.1), who receive the rest of
//     the epoch's proposals and the commit that removes them, and no
//     application message. A client that joined by its own external
//     commit (Sections 3.6 and 5.6) has no Welcome: its membership begins
//     with that commit, which it receives back as its echo;
//  4. everything a client received in a room (its own echoes included) is
//     in the hub log, within its membership, and in the hub log's order;
//     a Welcome only that of a commit that added it, at most once;
//  5. with CheckInput.Removed, a client reports its removal exactly at
//     the commit that ended each of its memberships (as received), and at
//     no other message.
func Check(in CheckInput) *CheckReport {
	rep := &CheckReport{}
	add := func(p Problem) { rep.Problems = append(rep.Problems, p) }

	// The hub log, indexed by message digest.
	byMsg := map[digest][]*LogEntry{}
	welcomes := map[digest]*LogEntry{}
	rooms := map[string][]*LogEntry{}
	for i := range in.Log {
		e := &in.Log[i]
		rooms[e.Room] = append(rooms[e.Room], e)
		if e.Message != nil {
			h := sha256.Sum256(e.Message)
			byMsg[h] = append(byMsg[h], e)
		}
		if e.Welcome != nil {
			welcomes[sha256.Sum256(e.Welcome)] = e
		}
		switch e.Kind {
		case KindMessage:
			rep.HubMessages++
		case KindProposal:
			rep.HubProposals++
		}
	}
	roomIDs := make([]string, 0, len(rooms))
	for r := range rooms {
		roomIDs = append(roomIDs, r)
	}
	sort.Strings(roomIDs)

	// 1. Submissions against the hub log.
	submitted := map[digest]*Submit{}
	checkSubmit := func(s *Submit, kind EntryKind) {
		h := sha256.Sum256(s.Message)
		submitted[h] = s
		retried := s.Attempts > 1
		n := 0
		for _, e := range byMsg[h] {
			if e.Kind == kind && e.Room == s.Room {
				n++
			}
		}
		what := fmt.Sprintf("%s %q (%d attempt(s))", kind, s.Label, s.Attempts)
		switch {
		case s.Acked && n == 0:
			add(Problem{Kind: ProblemLostAtHub, Client: s.Client, Room: s.Room, Message: short(s.Message), Retried: retried,
				Detail: what + " acknowledged, not in the hub log"})
		case n > 1:
			add(Problem{Kind: ProblemDuplicateAtHub, Client: s.Client, Room: s.Room, Message: short(s.Message), Retried: retried,
				Detail: fmt.Sprintf("%s (acked=%v) is in the hub log %d times", what, s.Acked, n)})
		case s.Refusal != "" && n > 0:
			e := byMsg[h][0]
			add(Problem{Kind: ProblemRefusedAtHub, Client: s.Client, Room: s.Room, Message: short(s.Message), Retried: retried,
				Detail: fmt.Sprintf("%s was answered %s, but the hub log holds it at room seq %d (log seq %d, epoch %d)", what, s.Refusal, e.RoomSeq, e.Seq, e.Epoch)})
		}
	}
	for i := range in.Submits {
		s := &in.Submits[i]
		checkSubmit(s, KindMessage)
		retried := s.Attempts > 1
		if retried {
			rep.Retried++
		}
		if s.Acked {
			rep.Acked++
			if retried {
				rep.AckedRetried++
			}
		} else {
			rep.Unacked++
		}
	}
	for i := range in.Commits {
		s := &in.Commits[i]
		checkSubmit(s, KindCommit)
		if s.Acked {
			rep.CommitsAcked++
		}
		if s.Attempts > 1 {
			rep.CommitsRetried++
		}
	}
	for i := range in.Proposals {
		s := &in.Proposals[i]
		checkSubmit(s, KindProposal)
		if s.Acked {
			rep.ProposalsAcked++
		}
	}
	for i := range in.Log {
		e := &in.Log[i]
		if e.Kind != KindCreated {
			if _, ok := submitted[sha256.Sum256(e.Message)]; !ok {
				add(Problem{Kind: ProblemPhantomAtHub, Room: e.Room, Message: short(e.Message),
					Detail: fmt.Sprintf("%s at log seq %d room seq %d, sender %s", e.Kind, e.Seq, e.RoomSeq, e.Sender)})
			}
		}
	}

	// 2. Epochs, and the proposals of each epoch in the commit ending
	// it.
	for _, r := range roomIDs {
		var epoch uint64
		var proposals []*LogEntry
		for _, e := range rooms[r] {
			if e.Kind == KindCreated {
				epoch = e.Epoch
				continue
			}
			if e.Epoch != epoch {
				add(Problem{Kind: ProblemEpoch, Room: r, Message: short(e.Message),
					Detail: fmt.Sprintf("%s at room seq %d (log seq %d) is of epoch %d, the room is at epoch %d", e.Kind, e.RoomSeq, e.Seq, e.Epoch, epoch)})
			}
			switch e.Kind {
			case KindProposal:
				proposals = append(proposals, e)
			case KindCommit:
				for _, p := range proposals {
					if !slices.ContainsFunc(e.Refs, func(ref []byte) bool { return bytes.Equal(ref, p.ProposalRef) }) {
						add(Problem{Kind: ProblemProposalDropped, Room: r, Message: short(p.Message),
							Detail: fmt.Sprintf("the proposal at room seq %d (epoch %d, sender %s) is not in the commit at room seq %d that ended its epoch", p.RoomSeq, p.Epoch, p.Sender, e.RoomSeq)})
					}
				}
				proposals = nil
				epoch = e.Epoch + 1
			}
		}
	}

	// 3 and 4. Every client against the log.
	clients := make([]string, 0, len(in.Received))
	for c := range in.Received {
		clients = append(clients, c)
	}
	sort.Strings(clients)
	for _, c := range clients {
		recv := in.Received[c]
		own := func(e *LogEntry) bool {
			if e.Sender == c {
				return true
			}
			s, ok := submitted[sha256.Sum256(e.Message)]
			return ok && s.Client == c
		}
		ms := map[string][]membership{}
		for _, r := range roomIDs {
			ms[r] = memberships(rooms[r], c, own)
		}
		// Welcomes: only those of commits that added the client, at most
		// once each; everything else grouped by room.
		seenWelcome := map[digest]int{}
		byRoom := map[string][]Delivery{}
		for _, d := range recv {
			h := sha256.Sum256(d.Message)
			if e, ok := welcomes[h]; ok {
				seenWelcome[h]++
				switch {
				case seenWelcome[h] > 1:
					add(Problem{Kind: ProblemDuplicate, Client: c, Room: d.Room, Message: short(d.Message), Detail: fmt.Sprintf("Welcome received again at inbox position %d", d.Pos)})
				case d.Room != e.Room || !slices.ContainsFunc(ms[e.Room], func(m membership) bool { return m.join == e.RoomSeq }):
					add(Problem{Kind: ProblemUnknown, Client: c, Room: d.Room, Message: short(d.Message),
						Detail: fmt.Sprintf("inbox position %d: the Welcome of the commit at room seq %d of %s, which did not add the client", d.Pos, e.RoomSeq, e.Room)})
				}
				continue
			}
			byRoom[d.Room] = append(byRoom[d.Room], d)
		}
		for r := range byRoom {
			if _, ok := rooms[r]; !ok {
				for _, d := range byRoom[r] {
					add(Problem{Kind: ProblemUnknown, Client: c, Room: r, Message: short(d.Message), Detail: fmt.Sprintf("inbox position %d: the hub log has no such room", d.Pos)})
				}
			}
		}
		for _, r := range roomIDs {
			entries, mem := rooms[r], ms[r]
			for _, m := range mem {
				if m.external {
					rep.Joins++
					rep.ExternalJoins++
				}
				if m.welcome != nil {
					rep.Joins++
					rep.DeliveriesChecked++
					if seenWelcome[sha256.Sum256(m.welcome)] == 0 {
						add(Problem{Kind: ProblemLost, Client: c, Room: r, Message: short(m.welcome),
							Detail: fmt.Sprintf("the Welcome of the commit at room seq %d that added the client never received", m.join)})
					}
				}
				if m.leave != 0 {
					rep.Removals++
				}
			}
			left := leftSpans(entries, c)
			inWindow := func(e *LogEntry) bool {
				if e.Kind == KindMessage && slices.ContainsFunc(left, func(s [2]uint64) bool { return e.RoomSeq > s[0] && (s[1] == 0 || e.RoomSeq < s[1]) }) {
					return false
				}
				return slices.ContainsFunc(mem, func(m membership) bool { return m.holds(e.RoomSeq) })
			}
			// What was received, in the hub's terms; pos maps the room seq
			// of each event received within the memberships to its inbox
			// position.
			count := map[digest]int{}
			pos := map[uint64]uint64{}
			var lastRS uint64
			var lastPos uint64
			for _, d := range byRoom[r] {
				h := sha256.Sum256(d.Message)
				var le *LogEntry
				for _, e := range byMsg[h] {
					if e.Room == r {
						le = e
						break
					}
				}
				count[h]++
				switch {
				case le == nil:
					add(Problem{Kind: ProblemUnknown, Client: c, Room: r, Message: short(d.Message), Detail: fmt.Sprintf("inbox position %d: not in the hub log", d.Pos)})
					continue
				case !inWindow(le):
					add(Problem{Kind: ProblemUnknown, Client: c, Room: r, Message: short(d.Message), Detail: fmt.Sprintf("inbox position %d: %s at room seq %d is outside the client's memberships %s", d.Pos, le.Kind, le.RoomSeq, formatMemberships(mem))})
					continue
				case count[h] > 1:
					s := submitted[h]
					add(Problem{Kind: ProblemDuplicate, Client: c, Room: r, Message: short(d.Message), Retried: s != nil && s.Attempts > 1,
						Detail: fmt.Sprintf("%s room seq %d received %d times (again at inbox position %d)", le.Kind, le.RoomSeq, count[h], d.Pos)})
					continue
				}
				if le.RoomSeq <= lastRS {
					add(Problem{Kind: ProblemReordered, Client: c, Room: r, Message: short(d.Message),
						Detail: fmt.Sprintf("room seq %d at inbox position %d after room seq %d at position %d", le.RoomSeq, d.Pos, lastRS, lastPos)})
				}
				lastRS, lastPos = max(lastRS, le.RoomSeq), d.Pos
				pos[le.RoomSeq] = d.Pos
			}
			if in.Removed != nil {
				checkRemovals(c, r, mem, pos, in.Removed[c], add)
			}
			// Everything of the memberships, except own application
			// messages, must be there.
			for _, e := range entries {
				if e.Message == nil || !inWindow(e) || (e.Kind == KindMessage && own(e)) {
					continue
				}
				rep.DeliveriesChecked++
				if count[sha256.Sum256(e.Message)] == 0 {
					s := submitted[sha256.Sum256(e.Message)]
					add(Problem{Kind: ProblemLost, Client: c, Room: r, Message: short(e.Message), Retried: s != nil && s.Attempts > 1,
						Detail: fmt.Sprintf("%s at room seq %d (log seq %d) never received", e.Kind, e.RoomSeq, e.Seq)})
				}
			}
		}
	}
	return rep
}

// leftSpans returns the spans of a room, in room sequence numbers, in
// which client c has left the participant list but is still a member
// (Section 3.5): from each proposal that names it in Leaving to the next
// commit (0 if none came).
func leftSpans(entries []*LogEntry, c string) [][2]uint64 {
	var out [][2]uint64
	open := false
	for _, e := range entries {
		switch {
		case e.Kind == KindProposal && !open && slices.Contains(e.Leaving, c):
			out = append(out, [2]uint64{e.RoomSeq, 0})
			open = true
		case e.Kind == KindCommit && open:
			out[len(out)-1][1] = e.RoomSeq
			open = false
		}
	}
	return out
}

// checkRemovals compares the removals from room r that client c reported
// with the ends of its memberships mem (rule 5 of Check): each commit that
// ended one and that c received (pos: room seq to inbox position) must be
// reported at its inbox position, and nothing else.
func checkRemovals(c, r string, mem []membership, pos map[uint64]uint64, reported []Removal, add func(Problem)) {
	ends := map[uint64]uint64{} // inbox position -> room seq
	for _, m := range mem {
		if p, ok := pos[m.leave]; m.leave != 0 && ok {
			ends[p] = m.leave
		}
	}
	seen := map[uint64]bool{}
	for _, rm := range reported {
		if rm.Room != r {
			continue
		}
		if _, ok := ends[rm.Pos]; !ok || seen[rm.Pos] {
			add(Problem{Kind: ProblemRemoval, Client: c, Room: r,
				Detail: fmt.Sprintf("removal reported at inbox position %d, which is not (or again) a commit that ended a membership %s", rm.Pos, formatMemberships(mem))})
		}
		seen[rm.Pos] = true
	}
	for _, p := range slices.Sorted(maps.Keys(ends)) {
		if !seen[p] {
			add(Problem{Kind: ProblemRemoval, Client: c, Room: r,
				Detail: fmt.Sprintf("the commit at room seq %d (inbox position %d) ended the membership, but no removal was reported", ends[p], p)})
		}
	}
}

// formatMemberships formats memberships as (join, leave] intervals.
func formatMemberships(ms []membership) string {
	if len(ms) == 0 {
		return "(none)"
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		leave := "now"
		if m.leave != 0 {
			leave = fmt.Sprint(m.leave)
		}
		open := "("
		if m.external {
			open = "["
		}
		parts[i] = fmt.Sprintf("%s%d, %s]", open, m.join, leave)
	}
	return strings.Join(parts, " ")
}
