package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

// netSplit cuts the network between the nodes of a test cluster. Every
// node dials its peers (Raft and forwarding) through dialer(node): a dial
// across a cut fails, and cutting closes the connections already open
// across it, whichever side dialed them.
type netSplit struct {
	mu    sync.Mutex
	node  map[string]string // cluster address -> node ID
	cut   map[[2]string]bool
	conns []splitConn
}

type splitConn struct {
	from, addr string
	c          net.Conn
}

func newNetSplit() *netSplit {
	return &netSplit{node: map[string]string{}, cut: map[[2]string]bool{}}
}

// link is the unordered pair of two node IDs.
func link(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// add names the node listening on addr.
func (s *netSplit) add(id, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node[addr] = id
}

// dialer returns node from's Config.RaftDialContext.
func (s *netSplit) dialer(from string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if err := s.check(from, addr); err != nil {
			return nil, err
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cut[link(from, s.node[addr])] {
			_ = c.Close()
			return nil, fmt.Errorf("netsplit: %s cannot reach %s", from, addr)
		}
		s.conns = append(s.conns, splitConn{from: from, addr: addr, c: c})
		return c, nil
	}
}

func (s *netSplit) check(from, addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cut[link(from, s.node[addr])] {
		return fmt.Errorf("netsplit: %s cannot reach %s", from, addr)
	}
	return nil
}

// isolate cuts node id off from every other node.
func (s *netSplit) isolate(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, other := range s.node {
		if other != id {
			s.cut[link(id, other)] = true
		}
	}
	live := s.conns[:0]
	for _, sc := range s.conns {
		if s.cut[link(sc.from, s.node[sc.addr])] {
			_ = sc.c.Close()
			continue
		}
		live = append(live, sc)
	}
	s.conns = live
}

// heal restores every link.
func (s *netSplit) heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.cut)
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterPartitionedLeader cuts the Raft leader of a three-node hub
// cluster off from the other two (Raft paper, Sections 5.2 and 5.4): the
// majority elects a new leader and keeps accepting writes; the isolated
// node steps down, reports unready, and a write through it fails with
// provider.ErrUnavailable (503 at the federation endpoints) and is never
// applied anywhere, not even after the partition heals. Once healed, the
// old leader catches up to the same digest and accepts writes again
// (forwarded to the new leader).
func TestClusterPartitionedLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const applyTimeout = time.Second
	split := newNetSplit()
	c := startDevCluster(t, ctx, func(cfg *Config) {
		cfg.ApplyTimeout = Duration(applyTimeout)
		split.add(cfg.Raft.NodeID, cfg.Raft.Bind)
		cfg.RaftDialContext = split.dialer(cfg.Raft.NodeID)
	}, false)
	alice := providertest.NewClient(t, "a.example", "alice", "alice1")
	if _, err := c.ds[0].Provider().RegisterClient(ctx, alice.Cred, alice.Pub); err != nil {
		t.Fatal(err)
	}
	c.agree(t, ctx, alice.Client)

	old := c.leader(t)
	var majority []*Daemon
	for _, d := range c.ds {
		if d != old {
			majority = append(majority, d)
		}
	}
	split.isolate(old.Node().ID())

	var next *Daemon
	waitFor(t, 15*time.Second, "the majority elects no new leader", func() bool {
		for _, d := range majority {
			if d.Node().IsLeader() {
				next = d
				return true
			}
		}
		return false
	})
	waitFor(t, 15*time.Second, "the isolated leader neither steps down nor reports unready", func() bool {
		ready, _ := old.Ready()
		return !old.Node().IsLeader() && !ready
	})

	bob := providertest.NewClient(t, "a.example", "bob", "bob1")
	if _, err := old.Provider().RegisterClient(ctx, bob.Cred, bob.Pub); !errors.Is(err, provider.ErrUnavailable) {
		t.Fatalf("write through the isolated node: %v, want ErrUnavailable", err)
	}
	carol := providertest.NewClient(t, "a.example", "carol", "carol1")
	other := majority[0]
	if other == next {
		other = majority[1]
	}
	if _, err := other.Provider().RegisterClient(ctx, carol.Cred, carol.Pub); err != nil {
		t.Fatalf("write through the majority's follower: %v", err)
	}

	split.heal()
	if err := old.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c.agree(t, ctx, carol.Client)
	for _, d := range c.ds {
		if _, err := d.Machine().Client(bob.Client); !errors.Is(err, projections.ErrUnknownClient) {
			t.Fatalf("%s: the write refused during the partition: %v, want ErrUnknownClient", d.Node().ID(), err)
		}
	}
	if _, err := old.Provider().RegisterClient(ctx, bob.Cred, bob.Pub); err != nil {
		t.Fatalf("write through the old leader after healing: %v", err)
	}
	c.agree(t, ctx, bob.Client)
}
