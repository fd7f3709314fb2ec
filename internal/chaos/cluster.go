package chaos

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/gen/mimi/admin/v1/adminv1connect"
	"github.com/openmimi/mimi/internal/devpki"
)

// Provider domains of the scenario.
const (
	HubDomain = "a.example"
	BDomain   = "b.example"
	CDomain   = "c.example"
)

// Node is one mimid process of the topology with its addresses.
type Node struct {
	// ID is the Raft node ID of a hub node, or the domain of a follower.
	ID     string
	Domain string
	Proc   *Proc
	// Fed, Client, Admin and Raft are listen addresses (Raft only for hub
	// nodes).
	Fed, Client, Admin, Raft string
	// AdminAPI calls the node's admin API.
	AdminAPI adminv1connect.AdminServiceClient
}

// Topology is the running scenario: the hub's three nodes behind FedProxy
// (federation) and ClientProxy (client API), and the two followers.
type Topology struct {
	Dir       string
	Hub       []*Node
	Followers []*Node
	// FedProxy fronts the hub's federation listeners, ClientProxy their
	// client API listeners.
	FedProxy, ClientProxy *Proxy
	// CAPool trusts the dev CA that issued every certificate.
	CAPool *x509.CertPool
}

// TopologyConfig configures StartTopology.
type TopologyConfig struct {
	// Dir holds every data directory, the dev CA and the logs.
	Dir string
	// Bin is the mimid binary.
	Bin string
	// HeartbeatTimeout and ElectionTimeout of the hub's Raft (default
	// 500 ms each).
	HeartbeatTimeout, ElectionTimeout time.Duration
	// SnapshotThreshold and SnapshotInterval of the hub's Raft (default
	// 1024 entries, 5 s): frequent snapshots make kills land during
	// snapshotting and restarts install or restore snapshots.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// LogLevel of the daemons (default "info").
	LogLevel string
}

// bearer adds the admin token to every request.
type bearer struct {
	token string
	rt    http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.rt.RoundTrip(r)
}

// StartTopology starts the proxies, the three hub nodes (n1 bootstraps
// the cluster of n1, n2 and n3; all share the hub key and the dev CA) and
// the followers b.example and c.example, and waits until every node is
// ready. On error everything started is stopped.
func StartTopology(ctx context.Context, cfg TopologyConfig) (_ *Topology, err error) {
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 500 * time.Millisecond
	}
	if cfg.ElectionTimeout == 0 {
		cfg.ElectionTimeout = 500 * time.Millisecond
	}
	if cfg.SnapshotThreshold == 0 {
		cfg.SnapshotThreshold = 1024
	}
	if cfg.SnapshotInterval == 0 {
		cfg.SnapshotInterval = 5 * time.Second
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	t := &Topology{Dir: cfg.Dir}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	caDir := filepath.Join(cfg.Dir, "dev-ca")
	ca, _, err := devpki.LoadOrCreate(caDir, "mimid dev CA")
	if err != nil {
		return nil, fmt.Errorf("chaos: dev CA: %w", err)
	}
	t.CAPool = x509.NewCertPool()
	t.CAPool.AddCert(ca.Cert)
	var tok [24]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	tokenFile := filepath.Join(cfg.Dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, err
	}
	raftCfg := filepath.Join(cfg.Dir, "hub-raft.json")
	rc, _ := json.Marshal(map[string]any{"raft": map[string]any{
		"heartbeat_timeout":  time.Duration(cfg.HeartbeatTimeout).String(),
		"election_timeout":   time.Duration(cfg.ElectionTimeout).String(),
		"snapshot_threshold": cfg.SnapshotThreshold,
		"snapshot_interval":  time.Duration(cfg.SnapshotInterval).String(),
	}})
	if err := os.WriteFile(raftCfg, rc, 0o600); err != nil {
		return nil, err
	}
	adminHC := &http.Client{Transport: bearer{token: token, rt: &http.Transport{
		ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: t.CAPool, MinVersion: tls.VersionTLS13},
	}}}

	addr := func() string {
		a, e := freeAddr()
		if e != nil && err == nil {
			err = e
		}
		return a
	}
	newNode := func(id, domain string, hub bool) *Node {
		n := &Node{ID: id, Domain: domain, Fed: addr(), Client: addr(), Admin: addr()}
		if hub {
			n.Raft = addr()
		}
		n.Proc = &Proc{Name: id, Bin: cfg.Bin, Metrics: addr(), LogPath: filepath.Join(cfg.Dir, id+".log")}
		n.AdminAPI = adminv1connect.NewAdminServiceClient(adminHC, "https://"+n.Admin)
		return n
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		t.Hub = append(t.Hub, newNode(id, HubDomain, true))
	}
	b, c := newNode(BDomain, BDomain, false), newNode(CDomain, CDomain, false)
	t.Followers = []*Node{b, c}
	if err != nil {
		return nil, err
	}
	var fedB, cliB []Backend
	for _, n := range t.Hub {
		fedB = append(fedB, Backend{Addr: n.Fed, Health: n.Proc.Metrics})
		cliB = append(cliB, Backend{Addr: n.Client, Health: n.Proc.Metrics})
	}
	if t.FedProxy, err = NewProxy("127.0.0.1:0", fedB); err != nil {
		return nil, err
	}
	if t.ClientProxy, err = NewProxy("127.0.0.1:0", cliB); err != nil {
		return nil, err
	}

	common := func(n *Node) []string {
		return []string{"serve", "-dev", "-dev-ca", caDir, "-domain", n.Domain,
			"-data", filepath.Join(cfg.Dir, n.ID),
			"-listen", n.Fed, "-client-listen", n.Client, "-admin-listen", n.Admin,
			"-admin-token-file", tokenFile, "-metrics-listen", n.Proc.Metrics,
			"-log-level", cfg.LogLevel, "-shutdown-timeout", "5s"}
	}
	hubKey := filepath.Join(cfg.Dir, "a.example-hub-key.pem")
	for i, n := range t.Hub {
		args := append([]string{"serve", "-config", raftCfg}, common(n)[1:]...)
		args = append(args, "-hub-key", hubKey, "-raft-id", n.ID, "-raft-bind", n.Raft,
			"-peer", BDomain+"="+b.Fed, "-peer", CDomain+"="+c.Fed)
		if i == 0 {
			args = append(args, "-raft-bootstrap")
			for _, p := range t.Hub[1:] {
				args = append(args, "-raft-peer", p.ID+"="+p.Raft)
			}
		}
		n.Proc.Args = args
	}
	b.Proc.Args = append(common(b), "-peer", HubDomain+"="+t.FedProxy.Addr(), "-peer", CDomain+"="+c.Fed)
	c.Proc.Args = append(common(c), "-peer", HubDomain+"="+t.FedProxy.Addr(), "-peer", BDomain+"="+b.Fed)

	// n1 first: it generates the shared hub key.
	if err := t.Hub[0].Proc.Start(); err != nil {
		return nil, err
	}
	for {
		if _, e := os.Stat(hubKey); e == nil {
			break
		}
		if !t.Hub[0].Proc.Running() {
			return nil, fmt.Errorf("chaos: n1 exited during startup; log:\n%s", t.Hub[0].Proc.LogTail(4000))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	for _, n := range append(t.Hub[1:], t.Followers...) {
		if err := n.Proc.Start(); err != nil {
			return nil, err
		}
	}
	for _, n := range t.All() {
		if err := n.Proc.WaitReady(ctx); err != nil {
			return nil, fmt.Errorf("%w; log:\n%s", err, n.Proc.LogTail(4000))
		}
	}
	return t, nil
}

// All returns every node, hub nodes first.
func (t *Topology) All() []*Node { return append(append([]*Node(nil), t.Hub...), t.Followers...) }

// Close stops every process (SIGTERM, then SIGKILL after 10 s) and the
// proxies.
func (t *Topology) Close() {
	for _, n := range t.All() {
		if n != nil && n.Proc != nil {
			_ = n.Proc.Stop(10 * time.Second)
		}
	}
	for _, p := range []*Proxy{t.FedProxy, t.ClientProxy} {
		if p != nil {
			_ = p.Close()
		}
	}
}

// ClusterStatus asks a hub node for its Raft status.
func (n *Node) ClusterStatus(ctx context.Context) (*adminv1.ClusterStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := n.AdminAPI.ClusterStatus(ctx, connect.NewRequest(&adminv1.ClusterStatusRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetStatus(), nil
}

// Leader returns the hub node that reports itself leader, if any running
// node does.
func (t *Topology) Leader(ctx context.Context) (*Node, *adminv1.ClusterStatus) {
	for _, n := range t.Hub {
		if !n.Proc.Running() {
			continue
		}
		st, err := n.ClusterStatus(ctx)
		if err == nil && st.GetState() == "Leader" {
			return n, st
		}
	}
	return nil, nil
}

// WaitConverged waits until every hub node runs, one is leader, and every
// node has applied the leader's commit index, twice in a row 300 ms apart
// with the same index (nothing more is being written).
func (t *Topology) WaitConverged(ctx context.Context) (uint64, error) {
	var last uint64
	stable := 0
	for {
		idx, ok := t.appliedEverywhere(ctx)
		switch {
		case ok && idx == last:
			stable++
		case ok:
			last, stable = idx, 1
		default:
			stable = 0
		}
		if stable >= 2 {
			return idx, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("chaos: hub nodes did not converge: %w", ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func (t *Topology) appliedEverywhere(ctx context.Context) (uint64, bool) {
	_, lst := t.Leader(ctx)
	if lst == nil {
		return 0, false
	}
	for _, n := range t.Hub {
		st, err := n.ClusterStatus(ctx)
		if err != nil || st.GetAppliedIndex() != lst.GetCommitIndex() {
			return 0, false
		}
	}
	return lst.GetCommitIndex(), true
}

// ReadLog streams a node's whole event log with raw encodings.
func (n *Node) ReadLog(ctx context.Context) ([]*adminv1.Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := n.AdminAPI.StreamEvents(ctx, connect.NewRequest(&adminv1.StreamEventsRequest{FromSeq: 1, IncludeRaw: true}))
	if err != nil {
		return nil, fmt.Errorf("chaos: %s: stream events: %w", n.ID, err)
	}
	defer st.Close()
	var out []*adminv1.Event
	for st.Receive() {
		if e := st.Msg().GetEvent(); e != nil {
			out = append(out, e)
		}
	}
	if err := st.Err(); err != nil {
		return nil, fmt.Errorf("chaos: %s: stream events: %w", n.ID, err)
	}
	if !sort.SliceIsSorted(out, func(i, j int) bool { return out[i].GetSeq() < out[j].GetSeq() }) {
		return nil, errors.New("chaos: " + n.ID + ": events out of order")
	}
	return out, nil
}
