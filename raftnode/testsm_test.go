package raftnode_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/openmimi/mimi/raftnode"
)

// testResult is what the test state machine returns per command.
type testResult struct {
	Index   uint64 // raft index the command was applied at
	Count   uint64 // counter after applying
	Skipped bool   // index was at or below the applied index
}

// testSM is a small durable state machine over Pebble: a counter plus one
// record per applied command (keyed by raft index), with the applied index
// committed in the same synced batch. Invariant: counter == #records.
type testSM struct {
	db *pebble.DB

	mu       sync.Mutex
	applied  uint64
	count    uint64
	restores int
}

// batchSM is testSM with ApplyBatch (one synced batch per raft batch).
type batchSM struct{ *testSM }

var (
	keyApplied = []byte("m/applied")
	keyCount   = []byte("m/count")
)

func recKey(index uint64) []byte { return binary.BigEndian.AppendUint64([]byte("r/"), index) }

type nopLogger struct{}

func (nopLogger) Infof(string, ...interface{})  {}
func (nopLogger) Errorf(string, ...interface{}) {}
func (nopLogger) Fatalf(f string, a ...interface{}) {
	panic(fmt.Sprintf(f, a...))
}

func openTestSM(dir string) (*testSM, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: nopLogger{}})
	if err != nil {
		return nil, err
	}
	s := &testSM{db: db}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func (s *testSM) getU64(k []byte) (uint64, error) {
	v, c, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("bad value for %s", k)
	}
	return binary.BigEndian.Uint64(v), nil
}

func (s *testSM) load() error {
	a, err := s.getU64(keyApplied)
	if err != nil {
		return err
	}
	c, err := s.getU64(keyCount)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.applied, s.count = a, c
	s.mu.Unlock()
	return nil
}

func (s *testSM) Close() error { return s.db.Close() }

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (s *testSM) applyLocked(b *pebble.Batch, index uint64, cmd []byte) testResult {
	if index <= s.applied {
		return testResult{Index: index, Count: s.count, Skipped: true}
	}
	s.count++
	s.applied = index
	_ = b.Set(recKey(index), cmd, nil)
	return testResult{Index: index, Count: s.count}
}

func (s *testSM) commit(b *pebble.Batch) {
	_ = b.Set(keyApplied, u64(s.applied), nil)
	_ = b.Set(keyCount, u64(s.count), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		panic(fmt.Sprintf("test state machine commit: %v", err)) // would diverge
	}
}

func (s *testSM) Apply(index uint64, cmd []byte) testResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	r := s.applyLocked(b, index, cmd)
	if !r.Skipped {
		s.commit(b)
	}
	return r
}

func (s batchSM) ApplyBatch(entries []raftnode.Entry) []testResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	out := make([]testResult, len(entries))
	any := false
	for i, e := range entries {
		out[i] = s.applyLocked(b, e.Index, e.Cmd)
		any = any || !out[i].Skipped
	}
	if any {
		s.commit(b)
	}
	return out
}

func (s *testSM) AppliedIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// Snapshot streams every key/value of a Pebble snapshot as
// uvarint-length-prefixed pairs, terminated by a zero-length key.
func (s *testSM) Snapshot(w io.Writer) error {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	var buf []byte
	for ok := it.First(); ok; ok = it.Next() {
		buf = binary.AppendUvarint(buf[:0], uint64(len(it.Key())))
		buf = append(buf, it.Key()...)
		buf = binary.AppendUvarint(buf, uint64(len(it.Value())))
		buf = append(buf, it.Value()...)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	_, err = w.Write([]byte{0})
	return err
}

func (s *testSM) Restore(r io.Reader) error {
	br := bufio.NewReader(r)
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange([]byte{0}, []byte{0xff}, nil); err != nil {
		return err
	}
	readN := func() ([]byte, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err
		}
		if n > 1<<20 {
			return nil, errors.New("snapshot item too large")
		}
		v := make([]byte, n)
		_, err = io.ReadFull(br, v)
		return v, err
	}
	for {
		k, err := readN()
		if err != nil {
			return fmt.Errorf("restore key: %w", err)
		}
		if len(k) == 0 {
			break
		}
		v, err := readN()
		if err != nil {
			return fmt.Errorf("restore value: %w", err)
		}
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	s.mu.Lock()
	s.restores++
	s.mu.Unlock()
	return s.load()
}

// Digest hashes the whole state (length-prefixed keys and values).
func (s *testSM) Digest() ([]byte, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	h := sha256.New()
	var buf []byte
	for ok := it.First(); ok; ok = it.Next() {
		buf = binary.AppendUvarint(buf[:0], uint64(len(it.Key())))
		buf = append(buf, it.Key()...)
		buf = binary.AppendUvarint(buf, uint64(len(it.Value())))
		buf = append(buf, it.Value()...)
		h.Write(buf)
	}
	return h.Sum(nil), it.Error()
}

// Check verifies the invariant and returns the records as cmd -> count.
func (s *testSM) Check() (map[string]int, error) {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	count := uint64(0)
	if v, c, err := snap.Get(keyCount); err == nil {
		count = binary.BigEndian.Uint64(v)
		c.Close()
	}
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte("r/"), UpperBound: []byte("r0")})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	recs := map[string]int{}
	n := uint64(0)
	for ok := it.First(); ok; ok = it.Next() {
		recs[string(bytes.Clone(it.Value()))]++
		n++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if n != count {
		return recs, fmt.Errorf("counter %d != %d records (half-applied or double-applied batch)", count, n)
	}
	return recs, nil
}

func (s *testSM) Restores() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restores
}
