package daemon

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// TestClusterFanoutAfterWriteOnOtherNode: a write that reaches a hub node
// other than the Raft leader is forwarded and applied on the leader, and
// the leader's fanout delivers it at once (draft-ralston-mimi-protocol-02,
// Section 5.5), not at its next periodic scan, which is set to an hour
// here. The state machine wakes the fanout on every node.
func TestClusterFanoutAfterWriteOnOtherNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tmp := t.TempDir()
	caDir := filepath.Join(tmp, "ca")
	fl := listenLoopback(t, "127.0.0.1:0")
	b, err := Start(ctx, Config{
		Domain: "b.example", DataDir: filepath.Join(tmp, "b"), Dev: true, DevCADir: caDir,
		Listen: "127.0.0.1:0", Listener: fl, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c := startDevCluster(t, ctx, func(cfg *Config) {
		cfg.DevCADir = caDir
		cfg.Resolve = map[string]string{"b.example": fl.Addr().String()}
		cfg.Fanout.ScanInterval = Duration(time.Hour)
	}, false)
	_, other := c.leaderAndOther(t)
	const room = "mimi://a.example/r/kick"
	cmd := roomForB(t, room)
	start := time.Now()
	if res, err := other.repl.Apply(ctx, cmd); err != nil || res.Err != nil {
		t.Fatalf("write through a non-leader node: %v, %v", err, res.Err)
	}
	waitFor(t, 10*time.Second, "b.example did not receive the message", func() bool {
		evs, err := b.Machine().RoomEvents(room, 1, 0)
		return err == nil && len(evs) > 0
	})
	t.Logf("delivered to b.example %v after the write", time.Since(start))
}

// TestClusterPokeThroughOtherNode: when a follower provider that was down
// comes back and its first request reaches a hub node other than the Raft
// leader, that node passes the news on, and the leader's fanout retries at
// once instead of waiting out its backoff (draft-ralston-mimi-protocol-02,
// Section 5.5). The backoff here is a minute.
func TestClusterPokeThroughOtherNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	caDir := filepath.Join(tmp, "ca")
	reserved := listenLoopback(t, "127.0.0.1:0")
	bAddr := reserved.Addr().String()
	reserved.Close() // b.example is down: connections are refused
	c := startDevCluster(t, ctx, func(cfg *Config) {
		cfg.DevCADir = caDir
		cfg.Resolve = map[string]string{"b.example": bAddr}
		cfg.Fanout.ScanInterval = Duration(time.Hour)
		cfg.Fanout.BackoffBase = Duration(time.Minute)
		cfg.Fanout.BackoffCap = Duration(time.Minute)
	}, false)
	leader, other := c.leaderAndOther(t)
	const room = "mimi://a.example/r/poke"
	cmd := roomForB(t, room)
	if res, err := leader.repl.Apply(ctx, cmd); err != nil || res.Err != nil {
		t.Fatalf("write: %v, %v", err, res.Err)
	}
	// Wait for a failed attempt whose retry is at least 20 s away (the
	// backoff is drawn in [0, 1 min)).
	var next time.Time
	waitFor(t, 90*time.Second, "no failed delivery to b.example with a distant retry", func() bool {
		st, err := leader.Fanout().Status()
		if err != nil {
			return false
		}
		for _, s := range st {
			if s.Destination == "b.example" && s.Attempts > 0 && time.Until(s.NextRetry) > 20*time.Second {
				next = s.NextRetry
				return true
			}
		}
		return false
	})

	fl := listenLoopback(t, bAddr)
	b, err := Start(ctx, Config{
		Domain: "b.example", DataDir: filepath.Join(tmp, "b"), Dev: true, DevCADir: caDir,
		Listen: bAddr, Listener: fl, Logger: testLogger(t),
		Resolve: map[string]string{"a.example": other.Info().FederationAddr},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// b's first request to a.example reaches the node that is not the
	// leader (any authenticated request will do).
	roomURI, err := mimi.ParseURI(room)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := b.Transport().Post(ctx, "a.example", transport.GroupInfo, roomURI, []byte{0}); err != nil {
		t.Fatalf("request from b.example: %v", err)
	}
	waitFor(t, 10*time.Second, "b.example did not receive the message before the backoff ended", func() bool {
		evs, err := b.Machine().RoomEvents(room, 1, 0)
		return err == nil && len(evs) > 0
	})
	if !time.Now().Before(next) {
		t.Fatal("delivered only at the scheduled retry")
	}
	t.Logf("delivered %v after b's request, %v before the scheduled retry", time.Since(start).Round(time.Millisecond), time.Until(next).Round(time.Second))
}

// leaderAndOther returns the cluster's Raft leader and another node.
func (c *devCluster) leaderAndOther(t *testing.T) (leader, other *Daemon) {
	leader = c.leader(t)
	for _, d := range c.ds {
		if d != leader {
			return leader, d
		}
	}
	t.Fatal("a cluster of one node")
	return nil, nil
}

// roomForB is a command creating room at a.example with one application
// message queued for b.example.
func roomForB(t *testing.T, room string) []byte {
	t.Helper()
	msg, err := codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPrivateMessage, PrivateMessage: &wire.PrivateMessage{
		GroupID: []byte(room + "-group"), ContentType: wire.ContentApplication, EncryptedSenderData: []byte{1}, Ciphertext: []byte{2},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := projections.EncodeCommand(&projections.Command{Ops: []projections.Op{
		projections.EventOp(room, 1, &eventlog.RoomCreated{Hub: "a.example", Creator: "mimi://a.example/u/alice"}),
		projections.EventOp(room, 2, &eventlog.ApplicationMessageAccepted{Message: msg, Sender: "mimi://a.example/d/alice1"}),
		projections.EventOp(room, 2, &eventlog.FanoutEnqueued{Destinations: []string{"b.example"}, Back: 1, Part: eventlog.PartMessage}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}
