package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// devCluster is a.example as a three-node Raft cluster in dev mode:
// cluster mTLS with the federation certificates and the shared dev CA,
// one hub key file for all.
type devCluster struct {
	cfgs []Config
	ds   []*Daemon
}

// startDevCluster starts the three nodes (n1 bootstraps) and waits until
// each is ready; mod, if not nil, adjusts every node's configuration.
// checkJoin also checks that a joining node without the hub key is
// refused.
func startDevCluster(t *testing.T, ctx context.Context, mod func(*Config), checkJoin bool) *devCluster {
	t.Helper()
	tmp := t.TempDir()
	ids := []string{"n1", "n2", "n3"}
	raftAddr := map[string]string{}
	for _, id := range ids {
		raftAddr[id] = freeAddr(t)
	}
	c := &devCluster{}
	t.Cleanup(func() {
		for _, d := range c.ds {
			if d != nil {
				_ = d.Close()
			}
		}
	})
	for i, id := range ids {
		rc := RaftConfig{
			NodeID: id, Bind: raftAddr[id],
			HeartbeatTimeout: Duration(200 * time.Millisecond), ElectionTimeout: Duration(200 * time.Millisecond),
			AllowedNames: []string{"a.example"},
		}
		if i == 0 {
			rc.Bootstrap = true
			for _, p := range ids[1:] {
				rc.Peers = append(rc.Peers, RaftPeer{ID: p, Addr: raftAddr[p]})
			}
		}
		cfg := Config{
			Domain: "a.example", DataDir: filepath.Join(tmp, id), Dev: true, DevCADir: filepath.Join(tmp, "ca"),
			Listen: "127.0.0.1:0", Raft: rc, Logger: testLogger(t), HubKeyFile: filepath.Join(tmp, "hub-key.pem"),
		}
		if mod != nil {
			mod(&cfg)
		}
		if i == 1 && checkJoin {
			// A joining node without the cluster's hub key is refused.
			own := cfg
			own.HubKeyFile = filepath.Join(tmp, id, "own-hub-key.pem")
			if _, err := Start(ctx, own); !errors.Is(err, ErrHubKey) {
				t.Fatalf("joining node without the hub key: %v", err)
			}
		}
		d, err := Start(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.cfgs, c.ds = append(c.cfgs, cfg), append(c.ds, d)
	}
	for _, d := range c.ds {
		if err := d.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		if !d.Info().Clustered {
			t.Fatal("not clustered")
		}
	}
	return c
}

// TestClusterDev runs a.example as a three-node Raft cluster in dev mode:
// one leader, every node ready, and a write on a follower forwarded to the
// leader and applied everywhere with equal digests.
func TestClusterDev(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := startDevCluster(t, ctx, nil, true)
	leader := c.leader(t)
	var follower *Daemon
	for _, d := range c.ds {
		if d != leader {
			follower = d
		}
	}
	if st := leader.Node().Status(); len(st.Servers) != 3 {
		t.Fatalf("servers: %+v", st.Servers)
	}

	alice := providertest.NewClient(t, "a.example", "alice", "alice1")
	if _, err := follower.Provider().RegisterClient(ctx, alice.Cred, alice.Pub); err != nil {
		t.Fatalf("register through a follower: %v", err)
	}
	c.agree(t, ctx, alice.Client)
}

// leader waits (up to 10 s) for a node to lead and returns it.
func (c *devCluster) leader(t *testing.T) *Daemon {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		for _, d := range c.ds {
			if d.Node().IsLeader() {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// agree checks that every node has applied what the leader has, knows
// client, and has the leader's digest.
func (c *devCluster) agree(t *testing.T, ctx context.Context, client string) {
	t.Helper()
	leader := c.leader(t)
	idx := leader.Node().AppliedIndex()
	want, err := leader.Machine().Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range c.ds {
		if err := d.Node().WaitApplied(ctx, idx); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Machine().Client(client); err != nil {
			t.Fatalf("%s: %v", d.Node().ID(), err)
		}
		if g, err := d.Machine().Digest(); err != nil || !bytes.Equal(g, want) {
			t.Fatalf("%s digest differs: %v", d.Node().ID(), err)
		}
	}
}

// TestClusterLossOfQuorum stops two of the three nodes: the survivor
// reports unready, a write through it fails with provider.ErrUnavailable
// (503 at the federation endpoints) once Config.ApplyTimeout has passed,
// instead of waiting for its caller, and reads still answer. When the two
// come back the cluster elects a leader, the write succeeds, and the
// nodes' digests agree.
func TestClusterLossOfQuorum(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const applyTimeout = time.Second
	c := startDevCluster(t, ctx, func(cfg *Config) { cfg.ApplyTimeout = Duration(applyTimeout) }, false)
	alice := providertest.NewClient(t, "a.example", "alice", "alice1")
	if _, err := c.ds[0].Provider().RegisterClient(ctx, alice.Cred, alice.Pub); err != nil {
		t.Fatal(err)
	}
	for _, d := range c.ds {
		if err := d.Node().WaitApplied(ctx, c.ds[0].Node().AppliedIndex()); err != nil {
			t.Fatal(err)
		}
	}

	// Keep n3; stop n1 and n2 (one of them may lead).
	for _, i := range []int{0, 1} {
		if err := c.ds[i].Close(); err != nil {
			t.Fatal(err)
		}
		c.ds[i] = nil
	}
	survivor := c.ds[2]
	for deadline := time.Now().Add(10 * time.Second); ; {
		if ok, _ := survivor.Ready(); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the survivor still reports ready without a quorum")
		}
		time.Sleep(20 * time.Millisecond)
	}
	bob := providertest.NewClient(t, "a.example", "bob", "bob1")
	start := time.Now()
	_, err := survivor.Provider().RegisterClient(ctx, bob.Cred, bob.Pub)
	took := time.Since(start)
	if !errors.Is(err, provider.ErrUnavailable) {
		t.Fatalf("write without a quorum: %v, want ErrUnavailable", err)
	}
	if took < applyTimeout/2 || took > applyTimeout+5*time.Second {
		t.Fatalf("write without a quorum failed after %v, want about %v", took, applyTimeout)
	}
	if _, err := survivor.Machine().Client(alice.Client); err != nil {
		t.Fatalf("read without a quorum: %v", err)
	}

	// Both come back on their data directories.
	for _, i := range []int{0, 1} {
		d, err := Start(ctx, c.cfgs[i])
		if err != nil {
			t.Fatalf("restart %s: %v", c.cfgs[i].Raft.NodeID, err)
		}
		c.ds[i] = d
	}
	for _, d := range c.ds {
		if err := d.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := survivor.Provider().RegisterClient(ctx, bob.Cred, bob.Pub); err != nil {
		t.Fatalf("write after the quorum is back: %v", err)
	}
	c.agree(t, ctx, bob.Client)
}

// TestClusterWipedNodeRejoins stops a hub node, deletes its data
// directory, and restarts it with the same identity while the leader's
// log has been compacted past everything the node had (Raft paper,
// Section 7): the node must install the leader's snapshot (the event log
// and every projection), apply what follows, and end with the leader's
// digest and log head; its own log verifies, and it serves writes again.
func TestClusterWipedNodeRejoins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := startDevCluster(t, ctx, func(cfg *Config) {
		cfg.Raft.SnapshotThreshold = 4
		cfg.Raft.TrailingLogs = 2
	}, false)
	alice := providertest.NewClient(t, "a.example", "alice", "alice1")
	registerRetrying(t, ctx, c.ds[0], alice)
	c.agree(t, ctx, alice.Client)

	leader := c.leader(t)
	victim := 0
	for c.ds[victim] == leader {
		victim++
	}
	if err := c.ds[victim].Close(); err != nil {
		t.Fatal(err)
	}
	c.ds[victim] = nil
	if err := os.RemoveAll(c.cfgs[victim].DataDir); err != nil {
		t.Fatal(err)
	}
	// Enough writes, then a snapshot, so that the log no longer starts
	// where the wiped node must begin.
	var last *providertest.Client
	for i := range 8 {
		last = providertest.NewClient(t, "a.example", fmt.Sprintf("user%d", i), fmt.Sprintf("dev%d", i))
		registerRetrying(t, ctx, leader, last)
	}
	if err := leader.Node().Snapshot(); err != nil {
		t.Fatal(err)
	}
	if st := leader.Node().Status(); st.LastSnapshotIndex <= 2 {
		t.Fatalf("leader's snapshot at index %d; the log was not compacted", st.LastSnapshotIndex)
	}

	d, err := Start(ctx, c.cfgs[victim])
	if err != nil {
		t.Fatalf("restart with an empty data directory: %v", err)
	}
	c.ds[victim] = d
	if err := d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c.agree(t, ctx, last.Client)
	if d.Node().Restores() == 0 {
		t.Fatal("the wiped node caught up without installing a snapshot")
	}
	want, err := leader.Machine().LogHead()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.Machine().LogHead(); err != nil || got != want {
		t.Fatalf("log head %+v, %v; leader's %+v", got, err, want)
	}
	if rep, err := d.Machine().VerifyLog(); err != nil || len(rep.Corruptions) > 0 || rep.Records != want.Seq {
		t.Fatalf("the installed log does not verify: %v, %+v", err, rep)
	}
	carol := providertest.NewClient(t, "a.example", "carol", "carol1")
	registerRetrying(t, ctx, d, carol)
	c.agree(t, ctx, carol.Client)
}
