package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
)

// CorruptionKind classifies an integrity failure found by Verify.
type CorruptionKind uint8

// Kinds of integrity failure.
const (
	// HashMismatch: the record's stored chain hash does not match
	// SHA-256(previous hash || record): its bytes or its hash were altered.
	HashMismatch CorruptionKind = iota + 1
	// Undecodable: the record does not parse.
	Undecodable
	// SeqMismatch: the record's embedded sequence number differs from its
	// key (a record was moved or reordered).
	SeqMismatch
	// Missing: sequence numbers are absent (a gap or a truncated tail).
	Missing
	// BadKey: a key under the log prefix does not parse.
	BadKey
	// IndexMismatch: the room index entry for the record is missing or
	// points elsewhere.
	IndexMismatch
	// IndexExtra: a room index entry has no matching record.
	IndexExtra
	// HeadMismatch: the stored head disagrees with the last record (the log
	// was truncated or extended behind the appender's back).
	HeadMismatch
	// RoomHeadMismatch: a stored room head disagrees with the room's last
	// record.
	RoomHeadMismatch
)

var kindNames = [...]string{"", "hash mismatch", "undecodable", "sequence mismatch", "missing",
	"bad key", "room index mismatch", "extra room index entry", "head mismatch", "room head mismatch"}

// String names the kind.
func (k CorruptionKind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("CorruptionKind(%d)", uint8(k))
}

// Corruption is one integrity failure, attributed to a global sequence
// number where one is known (0 otherwise).
type Corruption struct {
	Seq    uint64
	Kind   CorruptionKind
	Detail string
}

// String formats the corruption for logs.
func (c Corruption) String() string {
	return fmt.Sprintf("seq %d: %s: %s", c.Seq, c.Kind, c.Detail)
}

// Report is the result of Verify.
type Report struct {
	// Records is the number of records walked.
	Records uint64
	// RoomEvents is the number of records that belong to a room.
	RoomEvents uint64
	// Head is the stored head; Last is the last record's position and
	// stored hash.
	Head, Last Head
	// Corruptions lists every failure in log order (at most
	// MaxCorruptions; Truncated says more were found).
	Corruptions []Corruption
	Truncated   bool

	named     map[uint64]bool // index of Corruptions by Seq, built lazily
	namedUpTo int
}

// MaxCorruptions caps the corruptions a Report lists.
const MaxCorruptions = 10000

// OK reports whether no corruption was found.
func (r *Report) OK() bool { return len(r.Corruptions) == 0 }

// CorruptSeqs returns the distinct sequence numbers named by corruptions, in
// ascending order (0, for failures not attributable to a record, omitted).
func (r *Report) CorruptSeqs() []uint64 {
	seen := make(map[uint64]bool)
	var out []uint64
	for _, c := range r.Corruptions {
		if c.Seq != 0 && !seen[c.Seq] {
			seen[c.Seq] = true
			out = append(out, c.Seq)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// FirstCorrupt returns the smallest corrupt sequence number.
func (r *Report) FirstCorrupt() (uint64, bool) {
	s := r.CorruptSeqs()
	if len(s) == 0 {
		return 0, false
	}
	return s[0], true
}

// Err summarises the report as an error wrapping ErrCorrupt, or nil.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("%w: %d problem(s), first %s", ErrCorrupt, len(r.Corruptions), r.Corruptions[0])
}

func (r *Report) add(seq uint64, kind CorruptionKind, format string, args ...any) {
	if len(r.Corruptions) >= MaxCorruptions {
		r.Truncated = true
		return
	}
	r.Corruptions = append(r.Corruptions, Corruption{Seq: seq, Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

// maxCandidates bounds the predecessor hashes tried after a hash failure.
const maxCandidates = 16

// Verify walks the whole log and checks its integrity:
//
//   - records are keyed by contiguous sequence numbers from 1, and each
//     record's embedded sequence number equals its key;
//   - each record's chain hash equals SHA-256(previous chain hash ||
//     record), so a flipped byte, a removed or a reordered record breaks
//     the chain at exactly that record;
//   - each room event has its room index entry, there are no others, and
//     the room heads match;
//   - the stored head names the last record and its hash, so truncating
//     the tail is detected.
//
// A record whose hash fails is reported once: later records are checked
// against both the stored and the recomputed hashes of the recent failed
// records, so a corrupted record does not also condemn its successor, and
// two swapped records are reported as exactly those two. Verify returns an
// error only if the store cannot be read; problems are in the Report.
func Verify(r pebble.Reader) (*Report, error) {
	rep := &Report{}
	head, err := ReadHead(r)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			return nil, err
		}
		rep.add(0, HeadMismatch, "%v", err)
	}
	rep.Head = head

	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefixGlobal, UpperBound: PrefixEnd(prefixGlobal)})
	if err != nil {
		return nil, fmt.Errorf("eventlog: verify: %w", err)
	}
	defer it.Close()

	var (
		expected   = uint64(1)
		prev       = [][HashSize]byte{{}}      // candidate predecessor hashes, newest last; empty: link unverifiable
		rooms      = make(map[string][]uint64) // room -> seq by roomSeq-1 (0: unknown)
		lastStored [HashSize]byte
		lastSeq    uint64
	)
	for ok := it.First(); ok; ok = it.Next() {
		key := it.Key()
		seq, okk := parseGlobalKey(key)
		if !okk {
			rep.add(0, BadKey, "key %x", key)
			continue
		}
		rep.Records++
		if seq != expected {
			rep.add(expected, Missing, "sequence numbers %d..%d missing", expected, seq-1)
			prev = prev[:0] // the link across a gap cannot be checked
		}
		expected = seq + 1
		lastSeq = seq
		v := it.Value()
		if len(v) < recordHeader {
			rep.add(seq, Undecodable, "record of %d bytes", len(v))
			prev = prev[:0]
			continue
		}
		var stored [HashSize]byte
		copy(stored[:], v)
		lastStored = stored
		body := v[HashSize:]
		hashOK := len(prev) == 0
		var recomputed [HashSize]byte
		// Try the most recent candidate first: on an intact log it is the
		// predecessor's hash and matches at once.
		for i := len(prev) - 1; i >= 0; i-- {
			c := ChainHash(prev[i], body)
			if i == len(prev)-1 {
				recomputed = c
			}
			if c == stored {
				hashOK = true
				break
			}
		}
		// Keep a window of recent stored (and, after a failure,
		// recomputed) hashes, so that a successor whose own link is
		// intact is not reported too, and two swapped records are
		// reported as exactly those two.
		prev = append(prev, stored)
		if !hashOK {
			prev = append(prev, recomputed)
		}
		if len(prev) > maxCandidates {
			prev = append(prev[:0], prev[len(prev)-maxCandidates:]...)
		}
		if !hashOK {
			rep.add(seq, HashMismatch, "stored chain hash %x does not match record", stored[:8])
			continue
		}

		ev, _, err := DecodeRecord(v)
		if err != nil {
			rep.add(seq, Undecodable, "%v", err)
			continue
		}
		if ev.Seq != seq {
			rep.add(seq, SeqMismatch, "record claims seq %d", ev.Seq)
			continue
		}
		if ev.Room == "" {
			continue
		}
		rep.RoomEvents++
		// Remember where each room event lives, by room sequence number,
		// for the merge with the room index below.
		rs := rooms[ev.Room]
		if ev.RoomSeq > uint64(len(rs)) {
			if ev.RoomSeq-uint64(len(rs)) > rep.Records+1 {
				rep.add(seq, Undecodable, "room sequence %d out of range", ev.RoomSeq)
				continue
			}
			rs = append(rs, make([]uint64, ev.RoomSeq-uint64(len(rs)))...)
		}
		rs[ev.RoomSeq-1] = seq
		rooms[ev.Room] = rs
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("eventlog: verify: %w", err)
	}
	rep.Last = Head{Seq: lastSeq, Hash: lastStored}

	switch {
	case head.Seq > lastSeq:
		rep.add(lastSeq+1, Missing, "head names seq %d but the log ends at %d (truncated)", head.Seq, lastSeq)
	case head.Seq < lastSeq:
		rep.add(head.Seq+1, HeadMismatch, "head names seq %d but records run to %d", head.Seq, lastSeq)
	case head.Hash != lastStored:
		rep.add(lastSeq, HeadMismatch, "head hash %x differs from last record's %x", head.Hash[:8], lastStored[:8])
	}

	if err := verifyIndex(r, rep, rooms); err != nil {
		return nil, err
	}
	// Log order; failures not attributable to a record last.
	sort.SliceStable(rep.Corruptions, func(i, j int) bool {
		a, b := rep.Corruptions[i].Seq, rep.Corruptions[j].Seq
		return a != 0 && (b == 0 || a < b)
	})
	return rep, nil
}

// visited marks a slot of the rooms map as matched by an index entry.
const visited = 1 << 63

// verifyIndex merges the room index and the room heads with what the chain
// walk found: every room event must have exactly its index entry, and each
// room head must name the room's last event.
func verifyIndex(r pebble.Reader, rep *Report, rooms map[string][]uint64) error {
	hit, err := r.NewIter(&pebble.IterOptions{LowerBound: prefixRoomHead, UpperBound: PrefixEnd(prefixRoomHead)})
	if err != nil {
		return fmt.Errorf("eventlog: verify: %w", err)
	}
	seenHeads := 0
	for ok := hit.First(); ok; ok = hit.Next() {
		room, rest, err := ReadKeyComponent(hit.Key()[len(prefixRoomHead):])
		if err != nil || len(rest) != 0 {
			rep.add(0, BadKey, "room head key %x", hit.Key())
			continue
		}
		seenHeads++
		v := hit.Value()
		rs, known := rooms[string(room)]
		if !known || len(v) != 8 || binary.BigEndian.Uint64(v) != uint64(len(rs)) {
			rep.add(0, RoomHeadMismatch, "room %q head %x, last record has room seq %d", room, v, len(rs))
		}
	}
	if err := hit.Close(); err != nil {
		return fmt.Errorf("eventlog: verify: %w", err)
	}
	names := sortedRooms(rooms)
	if seenHeads != len(rooms) {
		for _, room := range names {
			if _, closer, err := r.Get(roomHeadKey(room)); err == nil {
				closer.Close()
			} else {
				rep.add(0, RoomHeadMismatch, "room %q has no head", room)
			}
		}
	}

	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefixRoomIdx, UpperBound: PrefixEnd(prefixRoomIdx)})
	if err != nil {
		return fmt.Errorf("eventlog: verify: %w", err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		room, roomSeq, okk := parseRoomIdxKey(it.Key())
		v := it.Value()
		if !okk || len(v) != 8 {
			rep.add(0, BadKey, "room index key %x", it.Key())
			continue
		}
		seq := binary.BigEndian.Uint64(v)
		rs := rooms[room]
		var want uint64
		if roomSeq >= 1 && roomSeq <= uint64(len(rs)) {
			want = rs[roomSeq-1] &^ visited
			rs[roomSeq-1] |= visited
		}
		switch {
		case want == seq:
		case want != 0:
			rep.add(want, IndexMismatch, "index entry for room %q seq %d points at %d", room, roomSeq, seq)
		case !rep.names(seq):
			// No verified record has this position (or the entry's
			// record is already reported as corrupt).
			rep.add(0, IndexExtra, "room index %q/%d points at seq %d which is not that event", room, roomSeq, seq)
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("eventlog: verify: %w", err)
	}
	for _, room := range names {
		for i, s := range rooms[room] {
			if s != 0 && s&visited == 0 {
				rep.add(s, IndexMismatch, "no index entry for room %q seq %d", room, i+1)
			}
		}
	}
	return nil
}

func sortedRooms(rooms map[string][]uint64) []string {
	out := make([]string, 0, len(rooms))
	for room := range rooms {
		out = append(out, room)
	}
	sort.Strings(out)
	return out
}

// names reports whether a corruption already names seq.
func (r *Report) names(seq uint64) bool {
	if r.named == nil {
		r.named = make(map[uint64]bool, len(r.Corruptions))
	}
	for _, c := range r.Corruptions[r.namedUpTo:] {
		r.named[c.Seq] = true
	}
	r.namedUpTo = len(r.Corruptions)
	return r.named[seq]
}
