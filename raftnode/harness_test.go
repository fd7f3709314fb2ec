package raftnode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/openmimi/mimi/internal/testpki"
	"github.com/openmimi/mimi/raftnode"
)

// testLogger is silent unless RAFTNODE_LOG is set (e.g. RAFTNODE_LOG=debug).
func testLogger() hclog.Logger {
	if lvl := os.Getenv("RAFTNODE_LOG"); lvl != "" {
		return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.LevelFromString(lvl), Output: os.Stderr})
	}
	return hclog.NewNullLogger()
}

// fastTiming sets short Raft timeouts for tests.
func fastTiming(c *raftnode.Config) {
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 150 * time.Millisecond
	c.CommitTimeout = 20 * time.Millisecond
	c.Logger = testLogger()
}

// waitFor polls cond every 10ms until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type tnode struct {
	id   string
	dir  string
	addr string // fixed after the first start so restarts reuse it
	cfg  raftnode.Config
	sm   *testSM
	n    *raftnode.Node[testResult]
}

type tcluster struct {
	t     testing.TB
	ca    *testpki.CA
	nodes []*tnode
	tune  func(*raftnode.Config)
}

// newCluster prepares (does not start) n nodes with certificates from a
// fresh test CA; node names are n0, n1, ...
func newCluster(t testing.TB, n int, tune func(*raftnode.Config)) *tcluster {
	c := &tcluster{t: t, ca: testpki.MustNew(t, "cluster CA"), tune: tune}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	for i := 0; i < n; i++ {
		cert := c.ca.MustIssue(t, names[i], "127.0.0.1")
		cfg := raftnode.Config{
			ID:      names[i],
			DataDir: filepath.Join(t.TempDir(), "raft"),
			TLS: &raftnode.TLSConfig{
				CAs:         c.ca.Pool(),
				Certificate: cert,
				VerifyPeer:  raftnode.AllowPeerNames(names...),
			},
		}
		fastTiming(&cfg)
		if tune != nil {
			tune(&cfg)
		}
		c.nodes = append(c.nodes, &tnode{id: names[i], dir: filepath.Dir(cfg.DataDir), cfg: cfg})
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *tcluster) start(i int) *tnode {
	c.t.Helper()
	tn := c.nodes[i]
	sm, err := openTestSM(filepath.Join(tn.dir, "sm"))
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := tn.cfg
	cfg.BindAddr = tn.addr
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1:0"
	}
	// Restarting on the old port may briefly race its release.
	var n *raftnode.Node[testResult]
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err = raftnode.Open[testResult](cfg, sm, nil)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		_ = sm.Close()
		c.t.Fatalf("open %s: %v", tn.id, err)
	}
	tn.sm, tn.n, tn.addr = sm, n, n.Addr()
	return tn
}

func (c *tcluster) stop(i int) {
	tn := c.nodes[i]
	if tn.n == nil {
		return
	}
	if err := tn.n.Shutdown(); err != nil {
		c.t.Errorf("shutdown %s: %v", tn.id, err)
	}
	if err := tn.sm.Close(); err != nil {
		c.t.Errorf("close sm %s: %v", tn.id, err)
	}
	tn.n, tn.sm = nil, nil
}

func (c *tcluster) stopAll() {
	for i := range c.nodes {
		c.stop(i)
	}
}

// leader waits until exactly one running node is leader and every running
// node agrees on it; it returns its position.
func (c *tcluster) leader(timeout time.Duration) int {
	c.t.Helper()
	idx := -1
	waitFor(c.t, timeout, "a leader all running nodes agree on", func() bool {
		idx = -1
		for i, tn := range c.nodes {
			if tn.n != nil && tn.n.IsLeader() {
				if idx >= 0 {
					return false
				}
				idx = i
			}
		}
		if idx < 0 {
			return false
		}
		for _, tn := range c.nodes {
			if tn.n == nil {
				continue
			}
			if addr, _ := tn.n.Leader(); addr != c.nodes[idx].addr {
				return false
			}
		}
		return true
	})
	return idx
}

// follower returns a running non-leader node position (not in skip).
func (c *tcluster) follower(skip ...int) int {
	for i, tn := range c.nodes {
		if tn.n == nil || tn.n.IsLeader() || containsInt(skip, i) {
			continue
		}
		return i
	}
	c.t.Fatal("no running follower")
	return -1
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// converged waits until all running nodes applied the leader's index and
// have identical digests, and checks each state machine's invariant.
func (c *tcluster) converged(timeout time.Duration) []byte {
	c.t.Helper()
	var digest []byte
	waitFor(c.t, timeout, "all running nodes to converge", func() bool {
		digest = nil
		var target uint64
		for _, tn := range c.nodes {
			if tn.n != nil {
				target = max(target, tn.n.AppliedIndex())
			}
		}
		for _, tn := range c.nodes {
			if tn.n == nil {
				continue
			}
			if tn.n.AppliedIndex() != target {
				return false
			}
			d, err := tn.sm.Digest()
			if err != nil {
				c.t.Fatal(err)
			}
			if digest == nil {
				digest = d
			} else if !bytes.Equal(digest, d) {
				return false
			}
		}
		return true
	})
	for _, tn := range c.nodes {
		if tn.n != nil {
			if _, err := tn.sm.Check(); err != nil {
				c.t.Fatalf("%s: %v", tn.id, err)
			}
		}
	}
	return digest
}

// applyN applies n commands named prefix-i through node tn and returns
// them; it fails the test on any error.
func applyN(t testing.TB, tn *tnode, prefix string, n int) []string {
	t.Helper()
	var cmds []string
	for i := 0; i < n; i++ {
		cmd := fmt.Sprintf("%s-%d", prefix, i)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := tn.n.Apply(ctx, []byte(cmd))
		cancel()
		if err != nil {
			t.Fatalf("apply %s via %s: %v", cmd, tn.id, err)
		}
		if res.Index == 0 || res.Skipped {
			t.Fatalf("apply %s via %s: bad result %+v", cmd, tn.id, res)
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// addVoters adds nodes to the cluster through whichever node leads,
// retrying across leader changes (AddVoter is idempotent).
func (c *tcluster) addVoters(idx ...int) {
	c.t.Helper()
	for _, i := range idx {
		deadline := time.Now().Add(20 * time.Second)
		for {
			l := -1
			waitFor(c.t, 10*time.Second, "a leader", func() bool {
				for j, tn := range c.nodes {
					if tn.n != nil && tn.n.IsLeader() {
						l = j
						return true
					}
				}
				return false
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.nodes[l].n.AddVoter(ctx, c.nodes[i].id, c.nodes[i].addr)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("AddVoter %s: %v", c.nodes[i].id, err)
			}
			c.t.Logf("AddVoter %s: %v (retrying)", c.nodes[i].id, err)
		}
	}
}

// isNotLeader reports whether err is an ErrNotLeader and returns it.
func isNotLeader(err error) (raftnode.ErrNotLeader, bool) {
	var nl raftnode.ErrNotLeader
	ok := errors.As(err, &nl)
	return nl, ok
}
