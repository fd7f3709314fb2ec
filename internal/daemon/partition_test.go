package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

// netSplit cuts the network between the nodes of a test cluster. Every
// node dials its peers (Raft and forwarding) through dialer(node). A cut
// either refuses (a dial across it fails at once and the connections
// already open across it are closed, as after a crash of the other side)
// or black-holes (dials hang until the link heals or their deadline, and
// open connections stay open but carry nothing either way until the link
// heals, as when packets are dropped; see splitConn).
type netSplit struct {
	blackhole bool
	closed    chan struct{} // closeAll fails hanging dials

	mu     sync.Mutex
	node   map[string]string // cluster address -> node ID
	cut    map[[2]string]bool
	conns  []*splitConn
	healed chan struct{} // closed by the next heal
}

// splitConn is a connection dialed by node from to addr. While it is
// silenced nothing crosses it, as while a network drops packets: its
// writes are held back and its reads wait (up to their deadline); when the
// link heals the held bytes go out in order, as TCP retransmits them.
// Nothing is lost, so the TLS stream stays intact.
type splitConn struct {
	net.Conn
	from, addr string

	mu       sync.Mutex
	silent   bool
	held     []byte
	healed   chan struct{} // closed when silent ends
	deadline time.Time     // the read deadline
	// moved is closed when the read deadline changes, waking a silenced
	// Read as a socket's deadline change wakes a blocked read.
	moved chan struct{}
}

// setDeadline records a new read deadline; the caller holds c.mu.
func (c *splitConn) setDeadline(t time.Time) {
	c.deadline = t
	if c.moved != nil {
		close(c.moved)
	}
	c.moved = make(chan struct{})
}

func (c *splitConn) silence(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case on && !c.silent:
		c.silent, c.healed = true, make(chan struct{})
	case !on && c.silent:
		c.silent = false
		close(c.healed)
		if len(c.held) > 0 {
			_, _ = c.Conn.Write(c.held)
			c.held = nil
		}
	}
}

func (c *splitConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.silent {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *splitConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.setDeadline(t)
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *splitConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.setDeadline(t)
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *splitConn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		if c.moved == nil {
			c.moved = make(chan struct{})
		}
		silent, healed, deadline, moved := c.silent, c.healed, c.deadline, c.moved
		c.mu.Unlock()
		if !silent {
			return c.Conn.Read(b)
		}
		if deadline.IsZero() {
			select {
			case <-healed:
			case <-moved:
			}
			continue
		}
		if !deadline.After(time.Now()) {
			return 0, os.ErrDeadlineExceeded
		}
		tm := time.NewTimer(time.Until(deadline))
		select {
		case <-healed:
		case <-moved:
		case <-tm.C:
			return 0, os.ErrDeadlineExceeded
		}
		tm.Stop()
	}
}

func newNetSplit(blackhole bool) *netSplit {
	return &netSplit{blackhole: blackhole, closed: make(chan struct{}), healed: make(chan struct{}),
		node: map[string]string{}, cut: map[[2]string]bool{}}
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

// state reports whether the link from node from to addr is cut, and the
// channel heal closes.
func (s *netSplit) state(from, addr string) (healed <-chan struct{}, cut bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.healed, s.cut[link(from, s.node[addr])]
}

// dialer returns node from's Config.RaftDialContext.
func (s *netSplit) dialer(from string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		for {
			healed, cut := s.state(from, addr)
			if !cut {
				break
			}
			if !s.blackhole {
				return nil, fmt.Errorf("netsplit: %s cannot reach %s", from, addr)
			}
			// The SYN is lost; it is retransmitted once the link heals.
			select {
			case <-healed:
			case <-ctx.Done():
				return nil, fmt.Errorf("netsplit: dial %s from %s: %w", addr, from, ctx.Err())
			case <-s.closed:
				return nil, fmt.Errorf("netsplit: closed")
			}
		}
		var d net.Dialer
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := &splitConn{Conn: raw, from: from, addr: addr}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.conns = append(s.conns, c)
		s.apply(c)
		return c, nil
	}
}

// apply enforces the current cuts on c; the caller holds s.mu.
func (s *netSplit) apply(c *splitConn) {
	cut := s.cut[link(c.from, s.node[c.addr])]
	if cut && !s.blackhole {
		_ = c.Close()
	}
	c.silence(cut)
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
	for _, c := range s.conns {
		s.apply(c)
	}
}

// closeAll closes every connection dialed through s and fails hanging
// dials, so that the nodes' shutdown does not wait for black-holed ones to
// time out.
func (s *netSplit) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.closed)
	for _, c := range s.conns {
		_ = c.Close()
	}
}

// heal restores every link; black-holed connections deliver what they
// held back.
func (s *netSplit) heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.cut)
	close(s.healed)
	s.healed = make(chan struct{})
	for _, c := range s.conns {
		s.apply(c)
	}
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
// cluster off from the other two (Raft paper, Sections 5.2 and 5.4), once
// with refused connections and once with a black hole (nothing arrives,
// nothing fails): the majority elects a new leader and keeps accepting
// writes; the isolated node steps down, reports unready, and a write
// through it fails with provider.ErrUnavailable (503 at the federation
// endpoints) and is never applied anywhere, not even after the partition
// heals. Once healed, the old leader catches up to the same digest and
// accepts writes again (forwarded to the new leader).
func TestClusterPartitionedLeader(t *testing.T) {
	for _, tc := range []struct {
		name      string
		blackhole bool
	}{{"refused", false}, {"black-holed", true}} {
		t.Run(tc.name, func(t *testing.T) { testPartitionedLeader(t, newNetSplit(tc.blackhole)) })
	}
}

func testPartitionedLeader(t *testing.T, split *netSplit) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const applyTimeout = time.Second
	c := startDevCluster(t, ctx, func(cfg *Config) {
		cfg.ApplyTimeout = Duration(applyTimeout)
		split.add(cfg.Raft.NodeID, cfg.Raft.Bind)
		cfg.RaftDialContext = split.dialer(cfg.Raft.NodeID)
	}, false)
	t.Cleanup(split.closeAll) // runs before the cluster's cleanup
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
	// Right after the election the write may be refused as unavailable
	// (the follower still learning the new leader, the leader still
	// committing its first entry): a client retries, as on any 503.
	registerRetrying(t, ctx, other, carol)

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
	registerRetrying(t, ctx, old, bob)
	c.agree(t, ctx, bob.Client)
}

// registerRetrying registers cl through d, retrying while d answers
// provider.ErrUnavailable for up to 15 s; registering is idempotent.
func registerRetrying(t *testing.T, ctx context.Context, d *Daemon, cl *providertest.Client) {
	t.Helper()
	for attempt, deadline := 1, time.Now().Add(15*time.Second); ; attempt++ {
		_, err := d.Provider().RegisterClient(ctx, cl.Cred, cl.Pub)
		if err == nil {
			if attempt > 1 {
				t.Logf("registered %s through %s at attempt %d", cl.Client, d.Node().ID(), attempt)
			}
			return
		}
		if !errors.Is(err, provider.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("register %s through %s (attempt %d): %v", cl.Client, d.Node().ID(), attempt, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterForwardToLostLeader: a write taken by a follower node is
// forwarded to the leader it knows; when that leader is black-holed (as
// when it freezes: connections stay open, nothing comes back), the write
// ends as soon as the follower learns of the new leader, with an unknown
// outcome (provider.ErrUnavailable, 503), rather than at apply_timeout.
// The client's resend then goes to the new leader.
func TestClusterForwardToLostLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const applyTimeout = 30 * time.Second
	split := newNetSplit(true)
	c := startDevCluster(t, ctx, func(cfg *Config) {
		cfg.ApplyTimeout = Duration(applyTimeout)
		split.add(cfg.Raft.NodeID, cfg.Raft.Bind)
		cfg.RaftDialContext = split.dialer(cfg.Raft.NodeID)
	}, false)
	t.Cleanup(split.closeAll)
	alice := providertest.NewClient(t, "a.example", "alice", "alice1")
	if _, err := c.ds[0].Provider().RegisterClient(ctx, alice.Cred, alice.Pub); err != nil {
		t.Fatal(err)
	}
	c.agree(t, ctx, alice.Client)

	old := c.leader(t)
	var other *Daemon
	for _, d := range c.ds {
		if d != old {
			other = d
			break
		}
	}
	split.isolate(old.Node().ID())
	bob := providertest.NewClient(t, "a.example", "bob", "bob1")
	start := time.Now()
	_, err := other.Provider().RegisterClient(ctx, bob.Cred, bob.Pub)
	took := time.Since(start)
	t.Logf("write forwarded to the lost leader: %v after %v", err, took)
	if err == nil || !errors.Is(err, provider.ErrUnavailable) {
		t.Fatalf("write forwarded to the lost leader: %v, want ErrUnavailable", err)
	}
	if took >= applyTimeout/2 {
		t.Fatalf("the write waited %v for a leader that was replaced (apply_timeout %v)", took, applyTimeout)
	}
	registerRetrying(t, ctx, other, bob)
	split.heal()
	c.agree(t, ctx, bob.Client)
}
