package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

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

// TestClusterDev runs a.example as a three-node Raft cluster in dev mode
// (cluster mTLS with the federation certificates and the shared dev CA):
// one leader, every node ready, and a write on a follower forwarded to the
// leader and applied everywhere with equal digests.
func TestClusterDev(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	tmp := t.TempDir()
	ids := []string{"n1", "n2", "n3"}
	raftAddr := map[string]string{}
	for _, id := range ids {
		raftAddr[id] = freeAddr(t)
	}
	var ds []*Daemon
	defer func() {
		for _, d := range ds {
			_ = d.Close()
		}
	}()
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
		if i == 1 {
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
		ds = append(ds, d)
	}
	for _, d := range ds {
		if err := d.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		if !d.Info().Clustered {
			t.Fatal("not clustered")
		}
	}
	var leader, follower *Daemon
	for deadline := time.Now().Add(10 * time.Second); leader == nil; {
		for _, d := range ds {
			if d.Node().IsLeader() {
				leader = d
			} else {
				follower = d
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := leader.Node().Status(); len(st.Servers) != 3 {
		t.Fatalf("servers: %+v", st.Servers)
	}

	alice := providertest.NewClient(t, "a.example", "alice", "alice1")
	if _, err := follower.Provider().RegisterClient(ctx, alice.Cred, alice.Pub); err != nil {
		t.Fatalf("register through a follower: %v", err)
	}
	idx := leader.Node().AppliedIndex()
	for _, d := range ds {
		if err := d.Node().WaitApplied(ctx, idx); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Machine().Client(alice.Client); err != nil {
			t.Fatalf("%s: %v", d.Node().ID(), err)
		}
	}
	dg, err := leader.Machine().Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		g, err := d.Machine().Digest()
		if err != nil || fmt.Sprintf("%x", g) != fmt.Sprintf("%x", dg) {
			t.Fatalf("%s digest differs: %v", d.Node().ID(), err)
		}
	}
}
