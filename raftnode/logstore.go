package raftnode

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// Key layout of the log store's Pebble database. Log entries live under
// prefixLog followed by the 8-byte big-endian index, so Pebble's bytewise
// order is index order; stable-store keys live under prefixStable.
const (
	prefixLog    byte = 'l'
	prefixStable byte = 's'

	logValueVersion byte = 1
)

// ErrCorruptLog is returned (wrapped) when a stored log entry or stable
// value (Raft paper, Figure 2, persistent state) cannot be decoded.
var ErrCorruptLog = errors.New("raftnode: corrupt log store value")

// LogStore is a raft.LogStore and raft.StableStore backed by its own Pebble
// database (Raft paper, Section 5.3 "log replication" and Figure 2
// "persistent state on all servers": currentTerm, votedFor, log[]).
//
// Entries are stored under big-endian index keys; StoreLogs writes all
// entries in one batch committed with fsync, DeleteRange is a single synced
// range deletion, and FirstIndex/LastIndex are served from an in-memory cache
// that is computed with bounded iterators at open and maintained by writes.
// GetLog returns raft.ErrLogNotFound for a missing index. Every write is
// durable when the method returns.
//
// The store tolerates gaps between indexes (it does not implement
// raft.MonotonicLogStore). It is safe for concurrent use; it must not be used
// after Close.
type LogStore struct {
	db *pebble.DB

	mu    sync.Mutex // serialises writes together with cache updates
	first atomic.Uint64
	last  atomic.Uint64
}

var (
	_ raft.LogStore    = (*LogStore)(nil)
	_ raft.StableStore = (*LogStore)(nil)
)

// quietLogger drops Pebble's informational messages and forwards errors to
// Pebble's default logger.
type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{}) {}
func (quietLogger) Errorf(format string, args ...interface{}) {
	pebble.DefaultLogger.Errorf(format, args...)
}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	pebble.DefaultLogger.Fatalf(format, args...)
}

// OpenLogStore opens (creating if needed) a log store in directory dir.
// The directory must be dedicated to the store.
func OpenLogStore(dir string) (*LogStore, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		return nil, fmt.Errorf("raftnode: open log store %s: %w", dir, err)
	}
	s := &LogStore{db: db}
	if err := s.recomputeBounds(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the underlying database.
func (s *LogStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("raftnode: close log store: %w", err)
	}
	return nil
}

func logKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixLog
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

var (
	logLower = []byte{prefixLog}
	logUpper = []byte{prefixLog + 1}
)

// logKeyUpper is the exclusive upper key for an inclusive max index.
func logKeyUpper(max uint64) []byte {
	if max == math.MaxUint64 {
		return logUpper
	}
	return logKey(max + 1)
}

func indexOfKey(k []byte) (uint64, error) {
	if len(k) != 9 || k[0] != prefixLog {
		return 0, fmt.Errorf("%w: bad log key %x", ErrCorruptLog, k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// boundIndex returns the first (or last) index within [lower, upper), or
// 0 if there is none.
func (s *LogStore) boundIndex(lower, upper []byte, last bool) (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("raftnode: log store iterator: %w", err)
	}
	var ok bool
	if last {
		ok = it.Last()
	} else {
		ok = it.First()
	}
	var idx uint64
	if ok {
		idx, err = indexOfKey(it.Key())
	}
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("raftnode: log store iterator: %w", cerr)
	}
	return idx, err
}

func (s *LogStore) recomputeBounds() error {
	first, err := s.boundIndex(logLower, logUpper, false)
	if err != nil {
		return err
	}
	last, err := s.boundIndex(logLower, logUpper, true)
	if err != nil {
		return err
	}
	s.first.Store(first)
	s.last.Store(last)
	return nil
}

// FirstIndex returns the first index written, 0 for no entries.
func (s *LogStore) FirstIndex() (uint64, error) { return s.first.Load(), nil }

// LastIndex returns the last index written, 0 for no entries.
func (s *LogStore) LastIndex() (uint64, error) { return s.last.Load(), nil }

// GetLog reads the entry at index into log, or returns raft.ErrLogNotFound.
func (s *LogStore) GetLog(index uint64, log *raft.Log) error {
	v, closer, err := s.db.Get(logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raftnode: get log %d: %w", index, err)
	}
	defer closer.Close()
	if err := decodeLog(index, v, log); err != nil {
		return fmt.Errorf("raftnode: get log %d: %w", index, err)
	}
	return nil
}

// StoreLog stores one entry, durably.
func (s *LogStore) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores entries in one batch committed with fsync.
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	size := 0
	for _, l := range logs {
		size += 9 + 40 + len(l.Data) + len(l.Extensions)
	}
	b := s.db.NewBatchWithSize(size)
	defer b.Close()
	lo, hi := uint64(math.MaxUint64), uint64(0)
	for _, l := range logs {
		if err := setLog(b, l); err != nil {
			return fmt.Errorf("raftnode: store log %d: %w", l.Index, err)
		}
		lo = min(lo, l.Index)
		hi = max(hi, l.Index)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("raftnode: store logs %d..%d: %w", lo, hi, err)
	}
	if f := s.first.Load(); f == 0 || lo < f {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
	return nil
}

// DeleteRange deletes the entries with min <= index <= max, durably.
func (s *LogStore) DeleteRange(min, max uint64) error {
	if min > max {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.DeleteRange(logKey(min), logKeyUpper(max), pebble.Sync); err != nil {
		return fmt.Errorf("raftnode: delete logs %d..%d: %w", min, max, err)
	}
	first, last := s.first.Load(), s.last.Load()
	if first == 0 || max < first || min > last {
		return nil // nothing stored in the range's neighbourhood of the bounds
	}
	if min <= first {
		f, err := s.boundIndex(logKeyUpper(max), logUpper, false)
		if err != nil {
			return err
		}
		first = f
	}
	if max >= last {
		l, err := s.boundIndex(logLower, logKey(min), true)
		if err != nil {
			return err
		}
		last = l
	}
	if first == 0 || last == 0 {
		first, last = 0, 0
	}
	s.first.Store(first)
	s.last.Store(last)
	return nil
}

// setLog adds l to b under its index key, encoding key and value straight
// into the batch's buffer.
func setLog(b *pebble.Batch, l *raft.Log) error {
	op := b.SetDeferred(9, encodedLogLen(l))
	op.Key[0] = prefixLog
	binary.BigEndian.PutUint64(op.Key[1:], l.Index)
	if v := encodeLog(op.Value[:0], l); len(v) != len(op.Value) {
		// Cannot happen: encodedLogLen mirrors encodeLog.
		return fmt.Errorf("raftnode: log value of %d bytes, sized %d", len(v), len(op.Value))
	}
	return op.Finish()
}

// encodeLog appends the value encoding of l (everything but the index,
// which is the key): version, uvarint term, type, uvarint-length data,
// uvarint-length extensions, varint AppendedAt in Unix nanoseconds with 0
// meaning the zero time.
func encodeLog(dst []byte, l *raft.Log) []byte {
	dst = append(dst, logValueVersion)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	dst = append(dst, l.Extensions...)
	return binary.AppendVarint(dst, logTimestamp(l))
}

// encodedLogLen is the length of encodeLog's output for l.
func encodedLogLen(l *raft.Log) int {
	var tmp [binary.MaxVarintLen64]byte
	return 1 + len(binary.AppendUvarint(tmp[:0], l.Term)) + 1 +
		len(binary.AppendUvarint(tmp[:0], uint64(len(l.Data)))) + len(l.Data) +
		len(binary.AppendUvarint(tmp[:0], uint64(len(l.Extensions)))) + len(l.Extensions) +
		len(binary.AppendVarint(tmp[:0], logTimestamp(l)))
}

// logTimestamp is l.AppendedAt in Unix nanoseconds, 0 for the zero time.
func logTimestamp(l *raft.Log) int64 {
	if l.AppendedAt.IsZero() {
		return 0
	}
	return l.AppendedAt.UnixNano()
}

func decodeLog(index uint64, v []byte, l *raft.Log) error {
	r := bytes.NewReader(v)
	fail := func(what string) error {
		return fmt.Errorf("%w: log %d: bad %s", ErrCorruptLog, index, what)
	}
	ver, err := r.ReadByte()
	if err != nil || ver != logValueVersion {
		return fail("version")
	}
	term, err := binary.ReadUvarint(r)
	if err != nil {
		return fail("term")
	}
	typ, err := r.ReadByte()
	if err != nil {
		return fail("type")
	}
	readBytes := func(what string) ([]byte, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil || n > uint64(r.Len()) {
			return nil, fail(what)
		}
		if n == 0 {
			return nil, nil
		}
		out := make([]byte, n)
		_, _ = r.Read(out)
		return out, nil
	}
	data, err := readBytes("data")
	if err != nil {
		return err
	}
	ext, err := readBytes("extensions")
	if err != nil {
		return err
	}
	ts, err := binary.ReadVarint(r)
	if err != nil {
		return fail("timestamp")
	}
	if r.Len() != 0 {
		return fail("trailing bytes")
	}
	*l = raft.Log{Index: index, Term: term, Type: raft.LogType(typ), Data: data, Extensions: ext}
	if ts != 0 {
		l.AppendedAt = time.Unix(0, ts)
	}
	return nil
}

func stableKey(k []byte) []byte {
	out := make([]byte, 1+len(k))
	out[0] = prefixStable
	copy(out[1:], k)
	return out
}

// Set stores a stable-store value durably.
func (s *LogStore) Set(key, val []byte) error {
	if err := s.db.Set(stableKey(key), val, pebble.Sync); err != nil {
		return fmt.Errorf("raftnode: stable set %q: %w", key, err)
	}
	return nil
}

// Get returns the stable-store value for key, or an empty slice and no
// error if the key is absent (the raft.StableStore contract).
func (s *LogStore) Get(key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return []byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("raftnode: stable get %q: %w", key, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// SetUint64 stores a stable-store integer durably (8 bytes big-endian).
func (s *LogStore) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the stable-store integer for key, or 0 if absent.
func (s *LogStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) == 0 {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable key %q holds %d bytes, want 8", ErrCorruptLog, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
