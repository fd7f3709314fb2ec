package projections_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/openmimi/mimi/projections"
)

// canonicalSnapshot re-encodes an accepted snapshot body (magic, entries,
// end tag) with minimal length varints, as Snapshot writes it.
func canonicalSnapshot(t *testing.T, body []byte) []byte {
	t.Helper()
	return rewriteSnapshot(t, body, nil)
}

// rewriteSnapshot re-encodes a snapshot body (magic, entries, end tag)
// with minimal length varints and a valid checksum, replacing each value
// by edit(key, value) if edit is not nil.
func rewriteSnapshot(t *testing.T, body []byte, edit func(k, v []byte) []byte) []byte {
	t.Helper()
	magic := []byte("MIMI-PROJECTIONS-SNAPSHOT-v1\n")
	r := bufio.NewReader(bytes.NewReader(body[len(magic):]))
	out := bytes.Clone(magic)
	field := func() []byte {
		n, err := binary.ReadUvarint(r)
		if err != nil {
			t.Fatalf("accepted snapshot has a bad length: %v", err)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			t.Fatalf("accepted snapshot is truncated: %v", err)
		}
		return b
	}
	for {
		tag, err := r.ReadByte()
		if err != nil {
			t.Fatalf("accepted snapshot has no end tag: %v", err)
		}
		out = append(out, tag)
		if tag == 0 {
			break
		}
		k, v := field(), field()
		if edit != nil {
			v = edit(k, v)
		}
		out = append(binary.AppendUvarint(out, uint64(len(k))), k...)
		out = append(binary.AppendUvarint(out, uint64(len(v))), v...)
	}
	sum := sha256.Sum256(out)
	return append(out, sum[:]...)
}

// FuzzRestore feeds snapshot streams (Raft InstallSnapshot from the
// leader, or a snapshot file) to Machine.Restore. The fuzzed bytes are the
// stream without its trailing SHA-256, which the target appends, so that
// mutations reach the entries and the state they restore instead of all
// failing the checksum. A rejected stream must be a typed error and, if
// rejected by the checks made before the commit point (ErrBadSnapshot),
// leave the Machine unchanged. An accepted stream must restore exactly its
// entries (a new Snapshot is their canonical encoding), and every read API
// and commands of the seed states must then answer or fail, never panic.
// Seeds are snapshots of random states (property_test.go's generator).
// Each run opens Pebble three times, so bound the minimization of new
// inputs, e.g. -fuzz FuzzRestore -fuzztime=30s -fuzzminimizetime=100x.
func FuzzRestore(f *testing.F) {
	var cmds [][]byte // the first commands of the last (largest) state
	for i, n := range []int{0, 10, 30} {
		h := newHarnessFS(f, vfs.NewMem(), "src")
		cmds = runRandom(f, h, uint64(i), n).cmds[:min(n, 10)]
		var buf bytes.Buffer
		if err := h.m.Snapshot(&buf); err != nil {
			f.Fatal(err)
		}
		snap := buf.Bytes()
		f.Add(snap[:len(snap)-sha256.Size])
	}
	f.Add([]byte("MIMI-PROJECTIONS-SNAPSHOT-v1\n\x01\x01a\x00\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := projections.OpenWithOptions("m", projections.Options{FS: vfs.NewMem(), CacheSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		empty := digest(t, m)
		sum := sha256.Sum256(body)
		err = m.Restore(bytes.NewReader(append(bytes.Clone(body), sum[:]...)))
		switch {
		case errors.Is(err, projections.ErrBadSnapshot):
			if m.AppliedIndex() != 0 || !bytes.Equal(digest(t, m), empty) {
				t.Fatalf("rejected stream (%v) changed the Machine", err)
			}
			return
		case errors.Is(err, projections.ErrCorruptState), errors.Is(err, projections.ErrStorage):
			return // the restored state does not open
		case err != nil:
			t.Fatalf("untyped error %v", err)
		}
		var buf bytes.Buffer
		if err := m.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		if want := canonicalSnapshot(t, body); !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("restored state differs from the stream:\n got %x\nwant %x", buf.Bytes(), want)
		}
		readAll(m)
		base := m.AppliedIndex()
		for i, c := range cmds {
			idx := base + 1 + uint64(i)
			if idx <= base {
				break // the restored applied index leaves no room
			}
			m.Apply(idx, c)
		}
		readAll(m)
	})
}

// readAll calls the Machine's read APIs over whatever state it holds,
// ignoring their errors.
func readAll(m *projections.Machine) {
	const limit = 8
	rooms, _ := m.Rooms()
	for _, id := range rooms[:min(len(rooms), limit)] {
		if r, err := m.Room(id); err == nil {
			for _, c := range r.Members[:min(len(r.Members), limit)] {
				_, _ = m.Client(c)
				_, _ = m.ClientRooms(c)
				_, _ = m.InboxCursor(c)
				if ds, err := m.ClientInbox(c, 0, limit); err == nil {
					for _, d := range ds {
						_, _ = m.Resolve(d)
					}
				}
			}
		}
		_, _ = m.RoomProposals(id)
		_, _ = m.RoomEvents(id, 0, limit)
		_, _ = m.RoomHead(id)
	}
	dests, _ := m.FanoutDestinations()
	for _, d := range dests[:min(len(dests), limit)] {
		if ds, err := m.FanoutPending(d.Destination, limit); err == nil {
			for _, d := range ds {
				_, _ = m.Payload(d)
				_, _ = m.Resolve(d)
			}
		}
	}
	_, _ = m.Events(0, limit)
	_, _ = m.LogHead()
	_, _ = m.VerifyLog()
	_, _, _, _ = m.HubKey()
	_, _, _ = m.OldestNotifyDedup()
	_, _, _ = m.EarliestKeyPackageExpiry()
	_, _ = m.Digest()
}
