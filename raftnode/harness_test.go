package raftnode_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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

// node is one Raft node of a test cluster, over a state machine of type S
// with results R.
type node[R any, S io.Closer] struct {
	id    string
	dir   string
	addr  string // fixed after the first start so restarts reuse it
	cfg   raftnode.Config
	batch bool       // apply with ApplyBatch (projections clusters)
	stats batchStats // of ApplyBatch, over all starts
	sm    S
	n     *raftnode.Node[R]
}

// cluster is a test cluster of n nodes (n0, n1, ...) with certificates
// from a fresh test CA. open opens a node's state machine and returns it
// with what raftnode runs and the result codec; state returns what every
// converged node must agree on (a digest, and anything else as a string);
// applied, if set, is the state machine's own applied index, which must
// reach the leader's; check, if set, checks a converged node's invariants.
type cluster[R any, S io.Closer] struct {
	t       testing.TB
	nodes   []*node[R, S]
	open    func(tn *node[R, S]) (S, raftnode.StateMachine[R], raftnode.ResultCodec[R], error)
	state   func(S) (digest []byte, rest string, err error)
	applied func(S) uint64
	check   func(S) error
}

// tcluster runs testSM; pcluster (projections_cluster_test.go) runs
// projections.Machine.
type (
	tnode    = node[testResult, *testSM]
	tcluster = cluster[testResult, *testSM]
)

// newNodes prepares (does not start) n nodes; batch, if set, says which
// apply with ApplyBatch.
func newNodes[R any, S io.Closer](c *cluster[R, S], caName string, n int, batch func(int) bool, tune func(*raftnode.Config)) *cluster[R, S] {
	t := c.t
	ca := testpki.MustNew(t, caName)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i)
	}
	for i := 0; i < n; i++ {
		cfg := raftnode.Config{
			ID:      names[i],
			DataDir: filepath.Join(t.TempDir(), "raft"),
			TLS: &raftnode.TLSConfig{
				CAs:         ca.Pool(),
				Certificate: ca.MustIssue(t, names[i], "127.0.0.1"),
				VerifyPeer:  raftnode.AllowPeerNames(names...),
			},
		}
		fastTiming(&cfg)
		if tune != nil {
			tune(&cfg)
		}
		c.nodes = append(c.nodes, &node[R, S]{id: names[i], dir: filepath.Dir(cfg.DataDir), cfg: cfg, batch: batch != nil && batch(i)})
	}
	t.Cleanup(c.stopAll)
	return c
}

// newCluster prepares (does not start) n testSM nodes.
func newCluster(t testing.TB, n int, tune func(*raftnode.Config)) *tcluster {
	return newNodes(&tcluster{
		t: t,
		open: func(tn *tnode) (*testSM, raftnode.StateMachine[testResult], raftnode.ResultCodec[testResult], error) {
			sm, err := openTestSM(filepath.Join(tn.dir, "sm"))
			return sm, sm, nil, err
		},
		state: func(sm *testSM) ([]byte, string, error) {
			d, err := sm.Digest()
			return d, "", err
		},
		check: func(sm *testSM) error { _, err := sm.Check(); return err },
	}, "cluster CA", n, nil, tune)
}

func (c *cluster[R, S]) start(i int) *node[R, S] {
	c.t.Helper()
	tn := c.nodes[i]
	sm, rsm, codec, err := c.open(tn)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := tn.cfg
	cfg.BindAddr = tn.addr
	if cfg.BindAddr == "" {
		cfg.BindAddr = "127.0.0.1:0"
	}
	// Restarting on the old port may briefly race its release.
	var n *raftnode.Node[R]
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err = raftnode.Open[R](cfg, rsm, codec)
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

func (c *cluster[R, S]) stop(i int) {
	tn := c.nodes[i]
	if tn.n == nil {
		return
	}
	if err := tn.n.Shutdown(); err != nil {
		c.t.Errorf("shutdown %s: %v", tn.id, err)
	}
	if err := tn.sm.Close(); err != nil {
		c.t.Errorf("close state machine %s: %v", tn.id, err)
	}
	var zero S
	tn.n, tn.sm = nil, zero
}

func (c *cluster[R, S]) stopAll() {
	for i := range c.nodes {
		c.stop(i)
	}
}

// leader waits until exactly one running node is leader and every running
// node agrees on it; it returns its position.
func (c *cluster[R, S]) leader(timeout time.Duration) int {
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
func (c *cluster[R, S]) follower(skip ...int) int {
	for i, tn := range c.nodes {
		if tn.n == nil || tn.n.IsLeader() || slices.Contains(skip, i) {
			continue
		}
		return i
	}
	c.t.Fatal("no running follower")
	return -1
}

// followers returns the running non-leader positions.
func (c *cluster[R, S]) followers() []int {
	var out []int
	for i, tn := range c.nodes {
		if tn.n != nil && !tn.n.IsLeader() {
			out = append(out, i)
		}
	}
	return out
}

// converged waits until all running nodes applied the leader's index and
// agree on their state (c.state), checks each state machine (c.check) and
// returns the digest.
func (c *cluster[R, S]) converged(timeout time.Duration) []byte {
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
		var rest string
		first := true
		for _, tn := range c.nodes {
			if tn.n == nil {
				continue
			}
			if tn.n.AppliedIndex() != target || (c.applied != nil && c.applied(tn.sm) != target) {
				return false
			}
			d, r, err := c.state(tn.sm)
			if err != nil {
				c.t.Fatal(err)
			}
			if first {
				digest, rest, first = d, r, false
			} else if !bytes.Equal(digest, d) || r != rest {
				return false
			}
		}
		return true
	})
	for _, tn := range c.nodes {
		if tn.n != nil && c.check != nil {
			if err := c.check(tn.sm); err != nil {
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
func (c *cluster[R, S]) addVoters(idx ...int) {
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
