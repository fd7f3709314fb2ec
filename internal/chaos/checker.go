package chaos

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
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
}

// Submit is one application message a client submitted through its
// provider (draft-ralston-mimi-protocol-02, Section 5.4), with what the
// client learned of its outcome.
type Submit struct {
	Client, Room string
	// Message is the submitted MLSMessage; every retry sent these bytes.
	Message []byte
	// Label is the plaintext the client encrypted.
	Label string
	// Acked: the provider answered SubmitAccepted.
	Acked bool
	// Attempts is the number of SubmitMessage calls made (1 = no retry).
	Attempts int
}

// Delivery is one entry of a client's inbox (Section 5.5 as delivered to a
// client): its inbox position, room and MLSMessage.
type Delivery struct {
	Pos     uint64
	Room    string
	Message []byte
}

// CheckInput is what Check compares.
type CheckInput struct {
	// Log is the hub's log (every room), in log order.
	Log []LogEntry
	// Submits are all application messages the clients submitted.
	Submits []Submit
	// Received maps each client URI to its inbox entries in position
	// order. Every client of the run must be present.
	Received map[string][]Delivery
}

// ProblemKind classifies a violation found by Check.
type ProblemKind string

// Violations Check reports.
const (
	// ProblemLostAtHub: an acknowledged submission is not in the hub log.
	ProblemLostAtHub ProblemKind = "acked-not-in-hub-log"
	// ProblemDuplicateAtHub: a submission is in the hub log more than once.
	ProblemDuplicateAtHub ProblemKind = "duplicate-in-hub-log"
	// ProblemPhantomAtHub: the hub log holds an application message no
	// client submitted.
	ProblemPhantomAtHub ProblemKind = "hub-message-not-submitted"
	// ProblemLost: a member did not receive a room event.
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
	// Acked, Unacked and Retried count submissions (Retried: more than
	// one attempt; AckedRetried: of those, acknowledged).
	Acked, Unacked, Retried, AckedRetried int
	// HubMessages is the number of application messages in the hub log.
	HubMessages int
	// DeliveriesChecked is the number of (member, room event) pairs that
	// had to be received exactly once, in order.
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

// Check compares every client's received sequence with the hub's log
// (draft-ralston-mimi-protocol-02, Sections 5.4 and 5.5):
//
//  1. every acknowledged submission appears in the hub log exactly once,
//     an unacknowledged one at most once, and the log holds no
//     application message that no client submitted;
//  2. a client is a member of a room from the first created/commit entry
//     whose member list names it up to (and including) the first later
//     commit whose list does not; it must receive every message, proposal
//     and commit of the room after it joined exactly once, except its own
//     submissions and the entries the hub recorded with it as sender,
//     which it may receive at most once (echo suppression is best effort);
//  3. everything a client received in a room (its own echoes included) is
//     in the hub log, and in the hub log's order; Welcomes are matched
//     against the commits' Welcomes and may arrive at most once.
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
		if e.Kind == KindMessage {
			rep.HubMessages++
		}
	}

	// 1. Submissions against the hub log.
	submitted := map[digest]*Submit{}
	for i := range in.Submits {
		s := &in.Submits[i]
		h := sha256.Sum256(s.Message)
		submitted[h] = s
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
		n := 0
		for _, e := range byMsg[h] {
			if e.Kind == KindMessage && e.Room == s.Room {
				n++
			}
		}
		switch {
		case s.Acked && n == 0:
			add(Problem{Kind: ProblemLostAtHub, Client: s.Client, Room: s.Room, Message: short(s.Message), Retried: retried,
				Detail: fmt.Sprintf("%q acknowledged after %d attempt(s), not in the hub log", s.Label, s.Attempts)})
		case n > 1:
			add(Problem{Kind: ProblemDuplicateAtHub, Client: s.Client, Room: s.Room, Message: short(s.Message), Retried: retried,
				Detail: fmt.Sprintf("%q (acked=%v, %d attempt(s)) is in the hub log %d times", s.Label, s.Acked, s.Attempts, n)})
		}
	}
	for i := range in.Log {
		e := &in.Log[i]
		if e.Kind == KindMessage {
			if _, ok := submitted[sha256.Sum256(e.Message)]; !ok {
				add(Problem{Kind: ProblemPhantomAtHub, Room: e.Room, Message: short(e.Message),
					Detail: fmt.Sprintf("log seq %d room seq %d, sender %s", e.Seq, e.RoomSeq, e.Sender)})
			}
		}
	}

	// 2 and 3. Every client against the log.
	clients := make([]string, 0, len(in.Received))
	for c := range in.Received {
		clients = append(clients, c)
	}
	sort.Strings(clients)
	roomIDs := make([]string, 0, len(rooms))
	for r := range rooms {
		roomIDs = append(roomIDs, r)
	}
	sort.Strings(roomIDs)
	for _, c := range clients {
		recv := in.Received[c]
		own := func(e *LogEntry) bool {
			if e.Sender == c {
				return true
			}
			s, ok := submitted[sha256.Sum256(e.Message)]
			return ok && s.Client == c
		}
		// Welcomes: at most once each; everything else grouped by room.
		seenWelcome := map[digest]bool{}
		byRoom := map[string][]Delivery{}
		for _, d := range recv {
			h := sha256.Sum256(d.Message)
			if _, ok := welcomes[h]; ok {
				if seenWelcome[h] {
					add(Problem{Kind: ProblemDuplicate, Client: c, Room: d.Room, Message: short(d.Message), Detail: fmt.Sprintf("Welcome received again at inbox position %d", d.Pos)})
				}
				seenWelcome[h] = true
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
			entries := rooms[r]
			// Membership window (room seqs): (join, leave].
			var join, leave uint64
			member := false
			for _, e := range entries {
				if e.Kind != KindCreated && e.Kind != KindCommit {
					continue
				}
				in := slices.Contains(e.Members, c)
				switch {
				case !member && in && leave == 0:
					member, join = true, e.RoomSeq
				case member && !in:
					member, leave = false, e.RoomSeq
				}
			}
			joined := join > 0
			inWindow := func(e *LogEntry) bool {
				return joined && e.RoomSeq > join && (leave == 0 || e.RoomSeq <= leave)
			}
			// What was received, in the hub's terms.
			count := map[digest]int{}
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
					add(Problem{Kind: ProblemUnknown, Client: c, Room: r, Message: short(d.Message), Detail: fmt.Sprintf("inbox position %d: room seq %d is outside the client's membership (%d, %d]", d.Pos, le.RoomSeq, join, leave)})
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
			}
			// Everything of the window, except own entries, must be there.
			for _, e := range entries {
				if e.Message == nil || !inWindow(e) || own(e) {
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
