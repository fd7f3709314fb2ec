package eventlog

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/openmimi/mimi/mls/codec"
)

// HashSize is the size of a record's chain hash (SHA-256).
const HashSize = sha256.Size

// recordHeader is the size of hash[32] || be64(seq) || be64(roomSeq).
const recordHeader = HashSize + 16

// Errors of the storage layer.
var (
	// ErrNotFound: no event at the requested position.
	ErrNotFound = errors.New("eventlog: no such event")
	// ErrCorrupt: a stored record or index entry is inconsistent. Use
	// Verify to locate every corrupted record.
	ErrCorrupt = errors.New("eventlog: corrupt log")
)

// Head is the position and chain hash of the last appended record. The zero
// Head (Seq 0, all-zero Hash) is the genesis state of an empty log.
type Head struct {
	Seq  uint64
	Hash [HashSize]byte
}

// ChainHash computes a record's chain hash: SHA-256 over the previous
// record's chain hash followed by the record (its sequence numbers and the
// event encoding).
func ChainHash(prev [HashSize]byte, record []byte) [HashSize]byte {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(record)
	var out [HashSize]byte
	h.Sum(out[:0])
	return out
}

// ReadHead returns the log's head, or the zero Head for an empty log.
func ReadHead(r pebble.Reader) (Head, error) {
	v, closer, err := r.Get(keyHead)
	if errors.Is(err, pebble.ErrNotFound) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("eventlog: read head: %w", err)
	}
	defer closer.Close()
	if len(v) != 8+HashSize {
		return Head{}, fmt.Errorf("%w: head record has %d bytes", ErrCorrupt, len(v))
	}
	var h Head
	h.Seq = binary.BigEndian.Uint64(v)
	copy(h.Hash[:], v[8:])
	return h, nil
}

// RoomHead returns the room sequence number of the last event of room, or
// 0 if the room has no events.
func RoomHead(r pebble.Reader, room string) (uint64, error) {
	v, closer, err := r.Get(roomHeadKey(room))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("eventlog: read room head: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: room head has %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Appender appends events to a Pebble batch. It is the only writer of log
// keys, and it only ever writes the next sequence number: there is no way to
// overwrite or delete a record through this package.
//
// An Appender reads the current heads from r once and then tracks them in
// memory, so r may be the DB underneath a plain batch. Use one Appender per
// batch, call Flush before committing it, and discard the Appender if the
// batch is discarded.
type Appender struct {
	r     pebble.Reader
	b     *pebble.Batch
	head  Head
	rooms map[string]uint64 // room -> last room seq; lookups only
	buf   []byte

	lookup     func(string) (uint64, error) // room head lookup (NewAppenderAt)
	dirty      bool                         // appended since the last Flush
	dirtyRooms map[string]struct{}          // rooms appended to since the last Flush
	dirtyList  []string                     // the same, in first-append order
}

// scratchPool holds the buffers Append builds keys and records in; the
// batch copies them, so one buffer serves every Append in turn.
var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

// maxScratch bounds the buffers kept in scratchPool.
const maxScratch = 256 << 10

func putScratch(b *[]byte) {
	if cap(*b) > maxScratch {
		*b = nil
	}
	scratchPool.Put(b)
}

// NewAppender returns an Appender writing to b whose starting state is read
// from r (typically the DB b will be committed to, or b itself if indexed).
// With a nil b the Appender writes nothing: it only computes positions and
// chain hashes, to check a log against itself.
func NewAppender(r pebble.Reader, b *pebble.Batch) (*Appender, error) {
	h, err := ReadHead(r)
	if err != nil {
		return nil, err
	}
	return &Appender{r: r, b: b, head: h, rooms: make(map[string]uint64), dirtyRooms: make(map[string]struct{})}, nil
}

// NewAppenderAt returns an Appender writing to b that starts at head and
// asks roomHead for the room heads it has not seen yet. Both must describe
// the state b will be committed on top of; callers that track the heads
// themselves (a long-lived state machine) use it to avoid re-reading them.
func NewAppenderAt(b *pebble.Batch, head Head, roomHead func(room string) (uint64, error)) *Appender {
	return &Appender{b: b, head: head, lookup: roomHead, rooms: make(map[string]uint64), dirtyRooms: make(map[string]struct{})}
}

// RoomHeads returns the room heads the Appender knows (looked up or
// appended to), keyed by room. The map is the Appender's own: do not
// modify it.
func (a *Appender) RoomHeads() map[string]uint64 { return a.rooms }

// Head returns the head after the events appended so far.
func (a *Appender) Head() Head { return a.head }

func (a *Appender) roomHead(room string) (uint64, error) {
	if s, ok := a.rooms[room]; ok {
		return s, nil
	}
	var s uint64
	var err error
	if a.lookup != nil {
		s, err = a.lookup(room)
	} else {
		s, err = RoomHead(a.r, room)
	}
	if err != nil {
		return 0, err
	}
	a.rooms[room] = s
	return s, nil
}

// Next returns the sequence number and room sequence number the next event
// for room would receive (roomSeq is 0 when room is empty).
func (a *Appender) Next(room string) (seq, roomSeq uint64, err error) {
	if room != "" {
		rs, err := a.roomHead(room)
		if err != nil {
			return 0, 0, err
		}
		roomSeq = rs + 1
	}
	return a.head.Seq + 1, roomSeq, nil
}

// Append assigns ev its Seq and RoomSeq, links it into the hash chain and
// writes the record and the room index entry into the batch. The heads are
// written by Flush, once per batch.
func (a *Appender) Append(ev *Event) error {
	seq, roomSeq, err := a.Next(ev.Room)
	if err != nil {
		return err
	}
	if ev.Version == 0 {
		ev.Version = SchemaVersion
	}
	// The batch copies what it is given, so the key and the record are
	// built in a pooled scratch buffer, one after the other.
	scratch := scratchPool.Get().(*[]byte)
	defer putScratch(scratch)
	key := AppendUint64(append((*scratch)[:0], prefixGlobal...), seq)
	var hdr [recordHeader]byte // the hash is filled in below
	binary.BigEndian.PutUint64(hdr[HashSize:], seq)
	binary.BigEndian.PutUint64(hdr[HashSize+8:], roomSeq)
	buf, err := codec.AppendMarshal(append(key, hdr[:]...), ev)
	*scratch = buf
	if err != nil {
		return fmt.Errorf("eventlog: encode %s: %w", ev.Type(), err)
	}
	key, rec := buf[:len(key)], buf[len(key):]
	h := ChainHash(a.head.Hash, rec[HashSize:])
	copy(rec, h[:])
	if a.b != nil {
		if err := a.b.Set(key, rec, nil); err != nil {
			return fmt.Errorf("eventlog: append %d: %w", seq, err)
		}
	}
	if ev.Room != "" {
		if a.b != nil {
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], seq)
			// The index key goes after the record, in the scratch
			// buffer's spare room when there is enough.
			idx := AppendUint64(AppendKeyString(append(buf[len(buf):], prefixRoomIdx...), ev.Room), roomSeq)
			if err := a.b.Set(idx, v[:], nil); err != nil {
				return fmt.Errorf("eventlog: append %d: %w", seq, err)
			}
			if _, ok := a.dirtyRooms[ev.Room]; !ok {
				a.dirtyRooms[ev.Room] = struct{}{}
				a.dirtyList = append(a.dirtyList, ev.Room)
			}
		}
		a.rooms[ev.Room] = roomSeq
	}
	a.head = Head{Seq: seq, Hash: h}
	a.dirty = a.b != nil
	ev.Seq, ev.RoomSeq = seq, roomSeq
	return nil
}

// Flush writes the global head and the heads of the rooms appended to
// since the last Flush into the batch. Call it before committing the
// batch: the records of a batch committed without it are reported by
// Verify as beyond the head, and the next Appender would reuse their
// sequence numbers.
func (a *Appender) Flush() error {
	if !a.dirty {
		return nil
	}
	var v [8]byte
	for _, room := range a.dirtyList {
		binary.BigEndian.PutUint64(v[:], a.rooms[room])
		if err := a.b.Set(roomHeadKey(room), v[:], nil); err != nil {
			return fmt.Errorf("eventlog: flush room head: %w", err)
		}
		delete(a.dirtyRooms, room)
	}
	a.dirtyList = a.dirtyList[:0]
	a.buf = binary.BigEndian.AppendUint64(a.buf[:0], a.head.Seq)
	a.buf = append(a.buf, a.head.Hash[:]...)
	if err := a.b.Set(keyHead, a.buf, nil); err != nil {
		return fmt.Errorf("eventlog: flush head: %w", err)
	}
	a.dirty = false
	return nil
}

// ErrUnflushed: Reset was called with appended events not yet flushed.
var ErrUnflushed = errors.New("eventlog: appender has unflushed events")

// Reset makes the Appender continue into batch b after its previous batch,
// flushed, was committed; the heads it tracks carry over, so a long run of
// batches (a replay) need not re-read them.
func (a *Appender) Reset(b *pebble.Batch) error {
	if a.dirty {
		return ErrUnflushed
	}
	a.b = b
	return nil
}

// RoomHead returns the room sequence number of room's last event,
// including events appended but not yet flushed.
func (a *Appender) RoomHead(room string) (uint64, error) { return a.roomHead(room) }

// DecodeRecord parses a stored record: its chain hash, sequence numbers and
// event. It does not check the hash against the chain (see Verify).
func DecodeRecord(v []byte) (Event, [HashSize]byte, error) {
	var h [HashSize]byte
	if len(v) < recordHeader {
		return Event{}, h, fmt.Errorf("%w: record of %d bytes", ErrCorrupt, len(v))
	}
	copy(h[:], v)
	seq := binary.BigEndian.Uint64(v[HashSize:])
	roomSeq := binary.BigEndian.Uint64(v[HashSize+8:])
	ev, err := Decode(v[recordHeader:])
	if err != nil {
		return Event{}, h, fmt.Errorf("%w: record %d: %w", ErrCorrupt, seq, err)
	}
	if (ev.Room == "") != (roomSeq == 0) {
		return Event{}, h, fmt.Errorf("%w: record %d: room sequence %d for room %q", ErrCorrupt, seq, roomSeq, ev.Room)
	}
	ev.Seq, ev.RoomSeq = seq, roomSeq
	return ev, h, nil
}

// Get returns the event with global sequence number seq.
func Get(r pebble.Reader, seq uint64) (Event, error) {
	v, closer, err := r.Get(globalKey(seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return Event{}, fmt.Errorf("%w: seq %d", ErrNotFound, seq)
	}
	if err != nil {
		return Event{}, fmt.Errorf("eventlog: get %d: %w", seq, err)
	}
	defer closer.Close()
	ev, _, err := DecodeRecord(v)
	if err != nil {
		return Event{}, err
	}
	if ev.Seq != seq {
		return Event{}, fmt.Errorf("%w: record at %d claims seq %d", ErrCorrupt, seq, ev.Seq)
	}
	return ev, nil
}

// GetRoom returns the event with room sequence number roomSeq in room.
func GetRoom(r pebble.Reader, room string, roomSeq uint64) (Event, error) {
	v, closer, err := r.Get(roomIdxKey(room, roomSeq))
	if errors.Is(err, pebble.ErrNotFound) {
		return Event{}, fmt.Errorf("%w: room %q seq %d", ErrNotFound, room, roomSeq)
	}
	if err != nil {
		return Event{}, fmt.Errorf("eventlog: get room %q seq %d: %w", room, roomSeq, err)
	}
	if len(v) != 8 {
		closer.Close()
		return Event{}, fmt.Errorf("%w: room index entry of %d bytes", ErrCorrupt, len(v))
	}
	seq := binary.BigEndian.Uint64(v)
	closer.Close()
	ev, err := Get(r, seq)
	if err != nil {
		return Event{}, err
	}
	if ev.Room != room || ev.RoomSeq != roomSeq {
		return Event{}, fmt.Errorf("%w: room index %q/%d points at seq %d of room %q/%d",
			ErrCorrupt, room, roomSeq, seq, ev.Room, ev.RoomSeq)
	}
	return ev, nil
}

// Iterator walks events in order: the whole log by global sequence, or one
// room by room sequence.
//
//	it, err := eventlog.NewIterator(db, 1)
//	for it.Next() { ev := it.Event(); ... }
//	err = it.Err(); it.Close()
type Iterator struct {
	r       pebble.Reader
	it      *pebble.Iterator
	room    string
	perRoom bool
	started bool
	ev      Event
	hash    [HashSize]byte
	err     error
}

// NewIterator returns an iterator over the global log from sequence number
// from (inclusive).
func NewIterator(r pebble.Reader, from uint64) (*Iterator, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: globalKey(from), UpperBound: PrefixEnd(prefixGlobal)})
	if err != nil {
		return nil, fmt.Errorf("eventlog: iterator: %w", err)
	}
	return &Iterator{r: r, it: it}, nil
}

// NewRoomIterator returns an iterator over room's events from room sequence
// number from (inclusive).
func NewRoomIterator(r pebble.Reader, room string, from uint64) (*Iterator, error) {
	p := roomIdxPrefix(room)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: AppendUint64(append([]byte(nil), p...), from), UpperBound: PrefixEnd(p)})
	if err != nil {
		return nil, fmt.Errorf("eventlog: room iterator: %w", err)
	}
	return &Iterator{r: r, it: it, room: room, perRoom: true}, nil
}

// Next advances to the next event, reporting false at the end or on error.
func (i *Iterator) Next() bool {
	if i.err != nil {
		return false
	}
	var ok bool
	if !i.started {
		i.started = true
		ok = i.it.First()
	} else {
		ok = i.it.Next()
	}
	if !ok {
		if err := i.it.Error(); err != nil {
			i.err = fmt.Errorf("eventlog: iterate: %w", err)
		}
		return false
	}
	if i.perRoom {
		_, roomSeq, okk := parseRoomIdxKey(i.it.Key())
		v := i.it.Value()
		if !okk || len(v) != 8 {
			i.err = fmt.Errorf("%w: room index key %x", ErrCorrupt, i.it.Key())
			return false
		}
		ev, err := Get(i.r, binary.BigEndian.Uint64(v))
		if err != nil {
			i.err = err
			return false
		}
		if ev.Room != i.room || ev.RoomSeq != roomSeq {
			i.err = fmt.Errorf("%w: room index %q/%d points at %q/%d", ErrCorrupt, i.room, roomSeq, ev.Room, ev.RoomSeq)
			return false
		}
		i.ev = ev
		return true
	}
	seq, okk := parseGlobalKey(i.it.Key())
	if !okk {
		i.err = fmt.Errorf("%w: global key %x", ErrCorrupt, i.it.Key())
		return false
	}
	v := i.it.Value()
	ev, h, err := DecodeRecord(v)
	if err != nil {
		i.err = err
		return false
	}
	if ev.Seq != seq {
		i.err = fmt.Errorf("%w: record at %d claims seq %d", ErrCorrupt, seq, ev.Seq)
		return false
	}
	i.ev, i.hash = ev, h
	return true
}

// Event returns the current event.
func (i *Iterator) Event() Event { return i.ev }

// Hash returns the current record's stored chain hash (global iteration
// only).
func (i *Iterator) Hash() [HashSize]byte { return i.hash }

// Err returns the first error met.
func (i *Iterator) Err() error { return i.err }

// Close releases the iterator.
func (i *Iterator) Close() error {
	if i.it == nil {
		return nil
	}
	err := i.it.Close()
	i.it = nil
	return err
}
