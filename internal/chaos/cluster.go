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
	"net"
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
	// ID is the Raft node ID of a clustered provider's node (also the
	// name of its data directory and log), or the domain of a single-node
	// follower.
	ID     string
	Domain string
	Proc   *Proc
	// Fed, Client, Admin and Raft are listen addresses (Raft only for
	// clustered nodes).
	Fed, Client, Admin, Raft string
	// AdminAPI calls the node's admin API.
	AdminAPI adminv1connect.AdminServiceClient
	// RaftProxy, in a cluster, is the address the node advertises to its
	// peers (-raft-advertise), in front of Raft: their Raft RPCs and
	// forwarded writes to it go through it (Cluster.CutRaft). Nil for
	// single nodes.
	RaftProxy *Proxy
}

// Cluster is a provider run as three Raft nodes behind FedProxy
// (federation) and ClientProxy (client API): its one domain's URLs
// (draft-ralston-mimi-protocol-02, Section 5.1) lead to any live node.
type Cluster struct {
	Domain string
	Nodes  []*Node
	// FedProxy fronts the nodes' federation listeners, ClientProxy their
	// client API listeners.
	FedProxy, ClientProxy *Proxy
}

// Topology is the running scenario: the clustered providers (the hub
// a.example first, then b.example with TopologyConfig.ClusteredFollower)
// and the single-node followers.
type Topology struct {
	Dir      string
	Clusters []*Cluster
	// Followers are the follower providers run as single nodes.
	Followers []*Node
	// links[{from, to}] is the path by which provider from reaches
	// provider to (Link).
	links map[[2]string]*Proxy
	// CAPool trusts the dev CA that issued every certificate.
	CAPool *x509.CertPool
}

// TopologyConfig configures StartTopology.
type TopologyConfig struct {
	// Dir holds every data directory, the dev CA and the logs.
	Dir string
	// Bin is the mimid binary.
	Bin string
	// ClusteredFollower runs the follower provider b.example as a
	// three-node Raft cluster behind proxies too (nodes b1, b2 and b3), so
	// that its leader can die in the middle of a /notify
	// (draft-ralston-mimi-protocol-02, Section 5.5: a follower answers a
	// duplicate with 201 and processes only the first).
	ClusteredFollower bool
	// HeartbeatTimeout and ElectionTimeout of the clusters' Raft (default
	// 500 ms each).
	HeartbeatTimeout, ElectionTimeout time.Duration
	// SnapshotThreshold and SnapshotInterval of the clusters' Raft
	// (default 1024 entries, 5 s): frequent snapshots make kills land
	// during snapshotting and restarts install or restore snapshots.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// FanoutSendTimeout bounds one /notify POST of the hub's fanout
	// (default 4 s, against the daemon's 30 s, so that a frozen follower
	// or a black-holed partition of a few seconds outlasts it: the hub
	// times out and sends again, and the follower must not deliver
	// twice).
	FanoutSendTimeout time.Duration
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
// the cluster of n1, n2 and n3), the follower b.example (with
// ClusteredFollower the three nodes b1, b2 and b3, b1 bootstrapping; the
// nodes of a cluster share its hub key, every node the dev CA) and the
// follower c.example, and waits until every node is ready. Every node
// reaches another provider through the link proxy of the pair (Link),
// and a clustered one through its federation proxy behind that; the
// nodes of a cluster reach each other's Raft ports through a proxy per
// node (Node.RaftProxy). On error everything started is stopped.
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
	if cfg.FanoutSendTimeout == 0 {
		cfg.FanoutSendTimeout = 4 * time.Second
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
	raftCfg := filepath.Join(cfg.Dir, "raft.json")
	rc, _ := json.Marshal(map[string]any{"raft": map[string]any{
		"heartbeat_timeout":  time.Duration(cfg.HeartbeatTimeout).String(),
		"election_timeout":   time.Duration(cfg.ElectionTimeout).String(),
		"snapshot_threshold": cfg.SnapshotThreshold,
		"snapshot_interval":  time.Duration(cfg.SnapshotInterval).String(),
	}, "fanout": map[string]any{"send_timeout": cfg.FanoutSendTimeout.String()}})
	if err := os.WriteFile(raftCfg, rc, 0o600); err != nil {
		return nil, err
	}
	adminHC := &http.Client{Transport: bearer{token: token, rt: &http.Transport{
		ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: t.CAPool, MinVersion: tls.VersionTLS13},
	}}}

	var addrErr error
	addr := func() string {
		a, e := freeAddr()
		if e != nil && addrErr == nil {
			addrErr = e
		}
		return a
	}
	newNode := func(id, domain string, clustered bool) *Node {
		n := &Node{ID: id, Domain: domain, Fed: addr(), Client: addr(), Admin: addr()}
		if clustered {
			n.Raft = addr()
		}
		n.Proc = &Proc{Name: id, Bin: cfg.Bin, Metrics: addr(), LogPath: filepath.Join(cfg.Dir, id+".log")}
		n.AdminAPI = adminv1connect.NewAdminServiceClient(adminHC, "https://"+n.Admin)
		return n
	}
	// fed is every provider's federation address: a cluster's proxy or a
	// single node.
	fed := map[string]string{}
	// Every provider has one single-backend link proxy per peer provider
	// in front of the peer's federation address.
	t.links = map[[2]string]*Proxy{}
	link := func(from, to string) (*Proxy, error) {
		if l := t.links[[2]string{from, to}]; l != nil {
			return l, nil
		}
		l, err := NewProxy("127.0.0.1:0", []Backend{{Addr: fed[to]}})
		if err != nil {
			return nil, err
		}
		t.links[[2]string{from, to}] = l
		return l, nil
	}
	// newCluster starts a cluster's proxies, a Raft proxy per node among
	// them.
	newCluster := func(domain, prefix string) (*Cluster, error) {
		c := &Cluster{Domain: domain}
		t.Clusters = append(t.Clusters, c)
		var fedB, cliB []Backend
		var err error
		for i := 1; i <= 3; i++ {
			n := newNode(fmt.Sprintf("%s%d", prefix, i), domain, true)
			c.Nodes = append(c.Nodes, n)
			fedB = append(fedB, Backend{Addr: n.Fed, Health: n.Proc.Metrics})
			cliB = append(cliB, Backend{Addr: n.Client, Health: n.Proc.Metrics})
			if n.RaftProxy, err = NewProxy("127.0.0.1:0", []Backend{{Addr: n.Raft}}); err != nil {
				return nil, err
			}
			n.RaftProxy.SetSources(c.dialler)
		}
		if c.FedProxy, err = NewProxy("127.0.0.1:0", fedB); err != nil {
			return nil, err
		}
		if c.ClientProxy, err = NewProxy("127.0.0.1:0", cliB); err != nil {
			return nil, err
		}
		fed[domain] = c.FedProxy.Addr()
		return c, nil
	}
	newSingle := func(domain string) {
		n := newNode(domain, domain, false)
		t.Followers = append(t.Followers, n)
		fed[domain] = n.Fed
	}
	if _, err := newCluster(HubDomain, "n"); err != nil {
		return nil, err
	}
	if cfg.ClusteredFollower {
		if _, err := newCluster(BDomain, "b"); err != nil {
			return nil, err
		}
	} else {
		newSingle(BDomain)
	}
	newSingle(CDomain)
	if addrErr != nil {
		return nil, addrErr
	}

	args := func(n *Node) ([]string, error) {
		a := []string{"serve", "-dev", "-dev-ca", caDir, "-domain", n.Domain,
			"-data", filepath.Join(cfg.Dir, n.ID),
			"-listen", n.Fed, "-client-listen", n.Client, "-admin-listen", n.Admin,
			"-admin-token-file", tokenFile, "-metrics-listen", n.Proc.Metrics,
			"-log-level", cfg.LogLevel, "-shutdown-timeout", "5s"}
		for _, d := range []string{HubDomain, BDomain, CDomain} {
			if d != n.Domain {
				l, err := link(n.Domain, d)
				if err != nil {
					return nil, err
				}
				a = append(a, "-peer", d+"="+l.Addr())
			}
		}
		return a, nil
	}
	for _, c := range t.Clusters {
		for i, n := range c.Nodes {
			a, err := args(n)
			if err != nil {
				return nil, err
			}
			n.Proc.Args = append(a, "-config", raftCfg, "-raft-id", n.ID, "-raft-bind", n.Raft, "-hub-key", c.hubKey(cfg.Dir),
				"-raft-advertise", n.RaftProxy.Addr())
			if i == 0 {
				n.Proc.Args = append(n.Proc.Args, "-raft-bootstrap")
				for _, p := range c.Nodes[1:] {
					n.Proc.Args = append(n.Proc.Args, "-raft-peer", p.ID+"="+p.RaftProxy.Addr())
				}
			}
		}
	}
	for _, n := range t.Followers {
		if n.Proc.Args, err = args(n); err != nil {
			return nil, err
		}
	}

	// Each cluster's bootstrapping node first: it generates the cluster's
	// hub key, which the other nodes must share (mimid refuses to start a
	// clustered node that neither bootstraps nor has it).
	for _, c := range t.Clusters {
		if err := c.Nodes[0].Proc.Start(); err != nil {
			return nil, err
		}
	}
	for _, c := range t.Clusters {
		if err := c.waitHubKey(ctx, cfg.Dir); err != nil {
			return nil, err
		}
		for _, n := range c.Nodes[1:] {
			if err := n.Proc.Start(); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range t.Followers {
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

// hubKey is the path of the cluster's shared hub signing key (-hub-key).
func (c *Cluster) hubKey(dir string) string {
	return filepath.Join(dir, c.Domain+"-hub-key.pem")
}

// waitHubKey waits until the cluster's bootstrapping node has written the
// shared hub key.
func (c *Cluster) waitHubKey(ctx context.Context, dir string) error {
	n := c.Nodes[0]
	for {
		if _, err := os.Stat(c.hubKey(dir)); err == nil {
			return nil
		}
		if !n.Proc.Running() {
			return fmt.Errorf("chaos: %s exited during startup; log:\n%s", n.ID, n.Proc.LogTail(4000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Hub returns the hub's cluster.
func (t *Topology) Hub() *Cluster { return t.Clusters[0] }

// Cluster returns the cluster of a domain, or nil if the domain runs as a
// single node.
func (t *Topology) Cluster(domain string) *Cluster {
	for _, c := range t.Clusters {
		if c.Domain == domain {
			return c
		}
	}
	return nil
}

// All returns every node, the clusters' first (the hub's first of all).
func (t *Topology) All() []*Node {
	var out []*Node
	for _, c := range t.Clusters {
		out = append(out, c.Nodes...)
	}
	return append(out, t.Followers...)
}

// Link returns the proxy through which provider from reaches provider to's
// federation address: every node of from posts its requests to to there
// (draft-ralston-mimi-protocol-02, Section 5.1), the hub's /notify
// fanout to a follower and a follower's relayed submissions to the hub
// among them. Cutting it (Proxy.SetCut) cuts that direction of the path
// between the two providers, and nothing else.
func (t *Topology) Link(from, to string) *Proxy {
	return t.links[[2]string{from, to}]
}

// Proxies returns every cluster's proxies, its nodes' Raft proxies
// included.
func (t *Topology) Proxies() []*Proxy {
	var out []*Proxy
	for _, c := range t.Clusters {
		out = append(out, c.FedProxy, c.ClientProxy)
		for _, n := range c.Nodes {
			out = append(out, n.RaftProxy)
		}
	}
	return out
}

// CanCutRaft reports whether CutRaft can cut the cluster's nodes from
// each other: the dialler of a connection to a node's Raft proxy can be
// named on this system.
func (c *Cluster) CanCutRaft() bool {
	return nameDiallers
}

// CutRaft cuts node n from the other nodes of the cluster, both ways, as
// cut (Refused or BlackHoled; Connected heals): what its peers dial to
// it (through its Raft proxy) and what it dials to them (through theirs,
// the connections it dialled alone). Raft RPCs and forwarded writes
// between them stop; its federation and client API stay reachable. It
// requires CanCutRaft.
func (c *Cluster) CutRaft(n *Node, cut Cut) {
	for _, m := range c.Nodes {
		if m == n {
			m.RaftProxy.SetCut(cut)
		} else {
			m.RaftProxy.SetCutFrom(n.ID, cut)
		}
	}
}

// dialler names the node of the cluster that dialled c, a connection
// accepted by one of its Raft proxies ("" if none is found).
func (c *Cluster) dialler(conn net.Conn) string {
	pids := map[int]string{}
	for _, n := range c.Nodes {
		n.Proc.mu.Lock()
		if n.Proc.cmd != nil && n.Proc.cmd.Process != nil {
			pids[n.Proc.cmd.Process.Pid] = n.ID
		}
		n.Proc.mu.Unlock()
	}
	return socketOwner(conn, pids)
}

// Close stops every process (SIGTERM, then SIGKILL after 10 s), the
// proxies and the links.
func (t *Topology) Close() {
	for _, n := range t.All() {
		if n != nil && n.Proc != nil {
			_ = n.Proc.Stop(10 * time.Second)
		}
	}
	for _, p := range t.Proxies() {
		if p != nil {
			_ = p.Close()
		}
	}
	for _, l := range t.links {
		_ = l.Close()
	}
}

// ClusterStatus asks a clustered node for its Raft status.
func (n *Node) ClusterStatus(ctx context.Context) (*adminv1.ClusterStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := n.AdminAPI.ClusterStatus(ctx, connect.NewRequest(&adminv1.ClusterStatusRequest{}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetStatus(), nil
}

// Leader returns the node of the cluster that reports itself leader, if
// any running node does.
func (c *Cluster) Leader(ctx context.Context) (*Node, *adminv1.ClusterStatus) {
	for _, n := range c.Nodes {
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

// WaitConverged waits until every node of the cluster runs, one is
// leader, and every node has applied the leader's commit index, twice in a
// row 300 ms apart with the same index (nothing more is being written).
func (c *Cluster) WaitConverged(ctx context.Context) (uint64, error) {
	var last uint64
	stable := 0
	for {
		idx, ok := c.appliedEverywhere(ctx)
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
			return 0, fmt.Errorf("chaos: %s nodes did not converge: %w", c.Domain, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func (c *Cluster) appliedEverywhere(ctx context.Context) (uint64, bool) {
	_, lst := c.Leader(ctx)
	if lst == nil {
		return 0, false
	}
	for _, n := range c.Nodes {
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
