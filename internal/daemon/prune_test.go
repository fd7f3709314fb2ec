package daemon

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// TestPruneNotifyDedup: the leader forgets notify dedup entries older than
// Config.NotifyRetention, in events of at most pruneBatch entries,
// and keeps the younger ones (draft-ralston-mimi-protocol-02, Section
// 5.5).
func TestPruneNotifyDedup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	now := time.UnixMilli(1_800_000_000_000)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d, err := Start(ctx, Config{
		Domain: "b.example", DataDir: t.TempDir(), Dev: true, Listen: "127.0.0.1:0",
		Logger: testLogger(t), Clock: clock, NotifyRetention: Duration(24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	const room = "mimi://a.example/r/pruned"
	var hashes [][]byte
	accept := func(at time.Time, n int) {
		t.Helper()
		var ops []projections.Op
		for range n {
			body := []byte(fmt.Sprint("fanout message ", len(hashes)))
			h := eventlog.NotifyHash(room, body)
			hashes = append(hashes, h)
			ops = append(ops, projections.EventOp(room, uint64(at.UnixMilli()), &eventlog.NotifyAccepted{Hub: "a.example", BodyHash: h, Body: body}))
		}
		cmd, err := projections.EncodeCommand(&projections.Command{Ops: ops})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := d.repl.Apply(ctx, cmd); err != nil || res.Err != nil {
			t.Fatal(err, res.Err)
		}
	}
	seen := func() (n int) {
		for _, h := range hashes {
			if ok, err := d.Machine().NotifySeen("a.example", h); err != nil {
				t.Fatal(err)
			} else if ok {
				n++
			}
		}
		return n
	}
	accept(now, 5)
	accept(now.Add(12*time.Hour), 2)
	if n, err := d.pruneNotifyDedup(ctx); err != nil || n != 0 {
		t.Fatalf("nothing is old yet: %d events, %v", n, err)
	}
	defer func(b uint32) { pruneBatch = b }(pruneBatch)
	pruneBatch = 2
	mu.Lock()
	now = now.Add(30 * time.Hour) // the first five are 30 h old, the two others 18 h
	mu.Unlock()
	n, err := d.pruneNotifyDedup(ctx)
	if err != nil || n != 3 {
		t.Fatalf("pruning: %d events, %v; want 3 (5 entries, 2 per event)", n, err)
	}
	if got := seen(); got != 2 {
		t.Fatalf("%d entries remembered, want the 2 younger ones", got)
	}
	if n, err := d.pruneNotifyDedup(ctx); err != nil || n != 0 {
		t.Fatalf("second pass: %d events, %v", n, err)
	}
}

// TestPruneExpiredKeyPackages: the leader withdraws unclaimed KeyPackages
// whose lifetime ended, in events of at most pruneBatch, and keeps valid
// ones (RFC 9420, Section 7.2; draft-ralston-mimi-protocol-02, Section
// 5.2).
func TestPruneExpiredKeyPackages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d, err := Start(ctx, Config{Domain: "b.example", DataDir: t.TempDir(), Dev: true, Listen: "127.0.0.1:0", Logger: testLogger(t), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var kps []eventlog.KeyPackage
	for i, life := range []time.Duration{time.Hour, time.Hour, 2 * time.Hour, 48 * time.Hour} {
		kps = append(kps, eventlog.KeyPackage{Ref: []byte(fmt.Sprint("kp", i)), CipherSuite: 1, NotAfter: uint64(now.Add(life).Unix()), Data: []byte{byte(i)}})
	}
	cmd, err := projections.EncodeCommand(&projections.Command{Ops: []projections.Op{
		projections.EventOp("", uint64(now.UnixMilli()), &eventlog.ClientRegistered{User: "mimi://b.example/u/bob", Client: "mimi://b.example/d/bob1"}),
		projections.EventOp("", uint64(now.UnixMilli()), &eventlog.KeyPackagesUploaded{Client: "mimi://b.example/d/bob1", KeyPackages: kps}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := d.repl.Apply(ctx, cmd); err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	if n, err := d.pruneExpiredKeyPackages(ctx); err != nil || n != 0 {
		t.Fatalf("nothing expired yet: %d %v", n, err)
	}
	defer func(b uint32) { pruneBatch = b }(pruneBatch)
	pruneBatch = 2
	mu.Lock()
	now = now.Add(3 * time.Hour)
	mu.Unlock()
	if n, err := d.pruneExpiredKeyPackages(ctx); err != nil || n != 2 {
		t.Fatalf("pruning: %d events, %v; want 2 (3 expired, 2 per event)", n, err)
	}
	var left []string
	for _, kp := range kps {
		if _, err := d.Machine().KeyPackage(kp.Ref); err == nil {
			left = append(left, string(kp.Ref))
		}
	}
	if fmt.Sprint(left) != "[kp3]" {
		t.Fatalf("left: %v, want [kp3]", left)
	}
}
