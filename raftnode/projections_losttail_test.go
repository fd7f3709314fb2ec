package raftnode_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/raftnode"
)

// copyTree copies the directory src to dst (which must not exist).
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestProjectionsLostUnsyncedTail checks the safety argument for committing
// projections.Machine.ApplyBatch without an fsync (see "Durability of
// ApplyBatch" in package projections): a state machine that lost the tail
// of its commits in a crash (simulated by putting back an older copy of
// its directory, taken while the node was stopped) catches up from the
// fsynced Raft log to the same applied index and the same Digest as the
// state that was lost (Raft paper, Section 5.3: committed entries are
// applied in log order, so re-applying them reproduces the state). When
// the Raft log was compacted past the old state's applied index (Section
// 7), Open must restore the latest snapshot first.
func TestProjectionsLostUnsyncedTail(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snapshot bool // snapshot and compact after the copy
	}{
		{"replay from the log", false},
		{"log compacted past the lost tail", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			smDir := filepath.Join(dir, "sm")
			cfg := raftnode.Config{DataDir: filepath.Join(dir, "raft"), SnapshotThreshold: 1 << 30, SnapshotInterval: time.Hour, TrailingLogs: 10}
			fastTiming(&cfg)
			open := func() (*raftnode.Node[projections.Result], *projections.Machine) {
				m, err := projections.Open(smDir)
				if err != nil {
					t.Fatal(err)
				}
				n, err := raftnode.Open[projections.Result](cfg, projSM(m, true, nil), projections.ResultCodec{})
				if err != nil {
					_ = m.Close()
					t.Fatal(err)
				}
				return n, m
			}
			stop := func(n *raftnode.Node[projections.Result], m *projections.Machine) {
				if err := n.Shutdown(); err != nil {
					t.Fatal(err)
				}
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			id := 0
			applyN := func(n *raftnode.Node[projections.Result], k int) {
				t.Helper()
				for range k {
					id++
					res, err := n.Apply(ctx, pcrashCmd(t, id))
					if err != nil {
						t.Fatal(err)
					}
					if res.Err != nil {
						t.Fatalf("message %d refused: %v", id, res.Err)
					}
				}
			}

			n, m := open()
			res, err := n.Apply(ctx, mustCmd(t, nil,
				projections.EventOp(pcrashRoom, 0, &eventlog.RoomCreated{Hub: "hub.example", GroupInfo: []byte("gi")})))
			if err != nil || res.Err != nil {
				t.Fatalf("create room: %v %v", err, res.Err)
			}
			applyN(n, 30)
			oldApplied := m.AppliedIndex()
			stop(n, m)
			copyTree(t, smDir, filepath.Join(dir, "sm-old"))

			n, m = open()
			applyN(n, 60)
			if tc.snapshot {
				if err := n.Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
			wantApplied := m.AppliedIndex()
			wantDigest, err := m.Digest()
			if err != nil {
				t.Fatal(err)
			}
			wantCounts := messageCounts(t, m)
			stop(n, m)
			if tc.snapshot {
				ls, err := raftnode.OpenLogStore(filepath.Join(cfg.DataDir, "raft-log"))
				if err != nil {
					t.Fatal(err)
				}
				first, err := ls.FirstIndex()
				_ = ls.Close()
				if err != nil || first <= oldApplied+1 {
					t.Fatalf("log not compacted past the old applied index %d: first index %d, %v", oldApplied, first, err)
				}
			}

			// The crash: the state machine's unsynced commits are lost.
			if err := os.RemoveAll(smDir); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, "sm-old"), smDir); err != nil {
				t.Fatal(err)
			}

			n, m = open()
			defer stop(n, m)
			if got := m.AppliedIndex(); got != oldApplied && !tc.snapshot {
				t.Fatalf("reopened state reports applied index %d, want the old %d", got, oldApplied)
			}
			if err := n.WaitApplied(ctx, wantApplied); err != nil {
				t.Fatal(err)
			}
			if got := m.AppliedIndex(); got != wantApplied {
				t.Fatalf("applied index %d after catching up, want %d", got, wantApplied)
			}
			gotDigest, err := m.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gotDigest, wantDigest) {
				t.Fatalf("digest after catching up %x, want %x", gotDigest, wantDigest)
			}
			gotCounts := messageCounts(t, m)
			for i := 1; i <= id; i++ {
				if gotCounts[i] != 1 || wantCounts[i] != 1 {
					t.Fatalf("message %d: %d copies after catching up, %d before the crash", i, gotCounts[i], wantCounts[i])
				}
			}
			wantRestores := uint64(0)
			if tc.snapshot {
				wantRestores = 1
			}
			if got := n.Restores(); got != wantRestores {
				t.Fatalf("%d snapshot restores on start, want %d", got, wantRestores)
			}
			checkMachine(t, "caught-up state", m)
		})
	}
}
