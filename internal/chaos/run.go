package chaos

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/eventlog"
	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/mls/wire"
)

// ProblemDivergence: the nodes of a clustered provider (the hub, or
// b.example with TopologyConfig.ClusteredFollower) hold different logs or
// digests, or an audit (ReplayVerify) failed on one of them.
const ProblemDivergence ProblemKind = "hub-nodes-diverge"

// Config configures Run. Zero values take the defaults named.
type Config struct {
	// Dir is the work directory (data directories, dev CA, logs).
	// Required.
	Dir string
	// Bin is the mimid binary; empty builds ./cmd/mimid into Dir.
	Bin string
	// Seed drives every random choice of the harness (timing, victims,
	// rooms); 0 picks one from the clock (Result.Seed reports it).
	Seed uint64
	// Duration is the minimum time the load runs, and Kills the minimum
	// number of node kills; the run ends when both are reached (defaults
	// 20 s and 5).
	Duration time.Duration
	Kills    int
	// UpMin..UpMax is how long every node runs between two kills,
	// DownMin..DownMax how long a killed node stays down (defaults
	// 1–4 s and 0.2–2 s).
	UpMin, UpMax     time.Duration
	DownMin, DownMax time.Duration
	// LeaderShare is the probability that a kill of a clustered
	// provider's node targets its current Raft leader rather than a node
	// drawn uniformly from its three (default 0.4; negative: always
	// uniform).
	LeaderShare float64
	// FollowerShare is the probability that a kill targets a node of a
	// follower provider (drawn uniformly from b.example's and c.example's
	// nodes: the leader, with LeaderShare, when it is b.example's cluster)
	// instead of a hub node (default 0.25; negative: hub nodes only). A
	// killed follower node loses its in-flight /notify and client API
	// calls; the hub's fanout retries and its clients' senders resend
	// (draft-ralston-mimi-protocol-02, Section 5.5).
	FollowerShare float64
	// QuorumLossShare is the probability that a kill of a hub node takes
	// a second hub node down with it, so that the hub cluster has no
	// quorum until they are back (default 0: never). Writes then fail
	// (503 after apply_timeout) and are retried by the senders.
	QuorumLossShare float64
	// FreezeShare is the probability that a turn of the chaos loop
	// freezes a node instead of killing one: SIGSTOP, then SIGCONT after
	// FreezeMin..FreezeMax (default 1–8 s). The node is drawn as a kill's
	// victim (FollowerShare, LeaderShare); it keeps its connections open
	// but answers nothing, so a frozen leader must be replaced and step
	// down when it resumes. Default 0: never.
	FreezeShare          float64
	FreezeMin, FreezeMax time.Duration
	// PartitionShare is the probability that a turn of the chaos loop
	// cuts the network between a.example and b.example or c.example
	// (Topology.Link) for PartitionMin..PartitionMax (default 2–8 s)
	// instead of killing a node: both directions or one, refused or
	// black-holed with equal odds (Cut), or only the answers of the
	// requests in flight; or one node of the hub's cluster or of a
	// clustered b.example from its peers (PartitionMode). Default 0:
	// never.
	PartitionShare             float64
	PartitionMin, PartitionMax time.Duration
	// ClientLinkShare is the probability that a turn of the chaos loop
	// that neither freezes a node nor partitions providers cuts the link between the clients of a.example, b.example or
	// c.example and their provider's client API for
	// ClientLinkMin..ClientLinkMax (default 2–8 s) instead of killing a
	// node: refused or black-holed (odds 1/4 each), or losing every
	// answer (odds 1/2: the provider processes each request, the client
	// gets a transport error; ClientCut). With a positive share every
	// client reaches its provider through that provider's link and sends
	// each request once, so that the SDK's own resends of the same bytes
	// (client.ErrOutcomeUnknown) are the only ones, and the receive-only
	// clients read their inbox during the load too. Default 0: no links.
	ClientLinkShare              float64
	ClientLinkMin, ClientLinkMax time.Duration
	// RaceCommitters is the number of admins whose commits race in a
	// membership race (OpRace; default 2).
	RaceCommitters int
	// Rooms is the number of rooms hosted by a.example (default 2);
	// Senders and Receivers the number of sending and receive-only clients
	// at each of the three providers (defaults 1 and 1).
	Rooms, Senders, Receivers int
	// SendPause is the maximum random pause of a sender between two
	// messages (default 30 ms).
	SendPause time.Duration
	// AttemptTimeout bounds one SubmitMessage call, GiveUp all retries of
	// one message (defaults 10 s and 60 s).
	AttemptTimeout, GiveUp time.Duration
	// MembershipEvery, when positive, gives every room a membership actor
	// (draft-ralston-mimi-protocol-02, Sections 3.2 to 3.6, 5.3 and 5.6):
	// an admin client of its own (room i's at a.example, b.example and
	// c.example in turn) that, every MembershipEvery on average, makes one
	// of MembershipOps: adds the client of a new user at a random
	// provider, removes a user it added, has such a user leave or a new
	// client of it join by external commit, or has two other admins
	// commit at the same moment, while the load and the kills go on. 0: no
	// membership changes after the setup.
	MembershipEvery time.Duration
	// MembershipOps are the operations the membership actors draw from
	// (default: all, MembershipOps()).
	MembershipOps []MembershipOp
	// UnpinnedSetup sends the setup calls of a clustered provider's
	// clients through its client API proxy to any node instead of the
	// leader. It reproduces the read-your-writes gap of a forwarded write
	// (docs/reliability.md): setup then usually fails with "client not
	// registered".
	UnpinnedSetup bool
	// Topology tunes the daemons (Raft timing, snapshots, log level) and
	// chooses whether b.example is clustered.
	Topology TopologyConfig
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	def(&c.Duration, 20*time.Second)
	defInt(&c.Kills, 5)
	def(&c.UpMin, time.Second)
	def(&c.UpMax, 4*time.Second)
	def(&c.DownMin, 200*time.Millisecond)
	def(&c.DownMax, 2*time.Second)
	def(&c.FreezeMin, time.Second)
	def(&c.FreezeMax, 8*time.Second)
	def(&c.PartitionMin, 2*time.Second)
	def(&c.PartitionMax, 8*time.Second)
	def(&c.ClientLinkMin, 2*time.Second)
	def(&c.ClientLinkMax, 8*time.Second)
	defInt(&c.RaceCommitters, 2)
	if c.LeaderShare == 0 {
		c.LeaderShare = 0.4
	}
	if c.FollowerShare == 0 {
		c.FollowerShare = 0.25
	}
	defInt(&c.Rooms, 2)
	defInt(&c.Senders, 1)
	defInt(&c.Receivers, 1)
	def(&c.SendPause, 30*time.Millisecond)
	def(&c.AttemptTimeout, 10*time.Second)
	def(&c.GiveUp, 60*time.Second)
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// Kill is one SIGKILL of a hub node or a follower provider's node.
type Kill struct {
	Node, Domain string
	// Also is a second node of the same cluster killed with Node (a loss
	// of quorum), or empty.
	Also string
	// WasLeader: the node was its cluster's Raft leader.
	WasLeader bool
	Follower  bool // a follower provider's node, not a hub node
	// At is the time since the load started; Down how long the node was
	// down; Rejoin how long it took from restart to ready.
	At, Down, Rejoin time.Duration
}

// Result holds the figures of a run and the checker's report.
type Result struct {
	Seed uint64
	// Elapsed is the whole run, Load the time the senders ran, Drain the
	// time from the end of the load until every hub node had applied
	// everything and the fanout backlog was empty.
	Elapsed, Load, Drain time.Duration
	// BacklogAtStop is the leader's fanout backlog (all destinations) when
	// the load stopped, if a leader answered.
	BacklogAtStop uint64
	Kills         []Kill
	// LeaderKills counts the kills of a node that was its cluster's
	// leader, FollowerKills those of a follower provider's node,
	// QuorumLosses the kills that took a second hub node down too.
	LeaderKills, FollowerKills, QuorumLosses int
	// Freezes and Partitions are the freezes and partitions made;
	// LeaderFreezes counts the freezes of a cluster's leader,
	// FollowerFreezes those of a follower provider's node, BlackHoles the
	// partitions that were black-holed (the others refused).
	Freezes                        []Freeze
	Partitions                     []Partition
	LeaderFreezes, FollowerFreezes int
	BlackHoles                     int
	// ClientFaults are the client link faults made (Config.ClientLinkShare).
	ClientFaults []ClientFault
	// AmbiguousAnswers counts the wrongEpoch answers to a commit or
	// proposals sent again after a try without an answer: the hub may
	// have taken them, so they are recorded as no answer.
	AmbiguousAnswers int
	// ByDomain counts the kills per provider.
	ByDomain map[string]DomainKills
	// LeaderChanges counts the changes of a cluster leader's identity seen
	// by polling the admin API every 250 ms, Terms the distinct Raft terms
	// seen with a leader, both summed over the clusters.
	LeaderChanges, Terms int
	// Sent messages, of which Acked, OutcomeUnknown (the retries gave up)
	// and Refused (another answer than SubmitAccepted, or an error).
	Sent, Acked, OutcomeUnknown, Refused int
	Refusals                             map[string]int
	// SubmitCalls and SubmitFailures count SubmitMessage calls.
	SubmitCalls, SubmitFailures int
	// MeanAckLatency and MaxAckLatency of acknowledged Sends, retries
	// included.
	MeanAckLatency, MaxAckLatency time.Duration
	// Decrypted counts the application messages the clients decrypted to
	// the plaintext their sender encrypted.
	Decrypted int
	// Adds and Removes count the membership actors' changes made,
	// MembershipCalls their SDK calls (AddUser, RemoveUser, Commit, Leave,
	// JoinNewDevice), MembershipFailures the failed calls and enrollments
	// by cause, and MembershipGaveUp the changes abandoned after GiveUp.
	Adds, Removes, MembershipCalls, MembershipGaveUp int
	MembershipFailures                               map[string]int
	// Leaves counts the leaves completed, DeviceJoins the clients joined
	// by external commit, Races the races of Config.RaceCommitters admins'
	// commits, and WrongEpochs the wrongEpoch answers to the actors'
	// clients' updates. RaceLosers counts the racing admins answered
	// wrongEpoch, RaceRecovered those of them that then made their change,
	// RacesFull the races whose commits were all made in one epoch.
	Leaves, DeviceJoins, Races, WrongEpochs int
	// VoidLeaves counts the leaves whose proposals never reached the hub
	// (client.EventLeaveVoid); the user is then present again.
	VoidLeaves                           int
	RaceLosers, RaceRecovered, RacesFull int
	// StatesChecked counts the (member, room) states compared with the
	// hub's room state at the end.
	StatesChecked int
	// HubEvents is the length of the hub's log; every cluster's nodes'
	// logs are byte-identical and their digests equal when NodesAgree;
	// Digest is the hub's.
	HubEvents  int
	NodesAgree bool
	Digest     string
	// ProxyConnections and ProxyFailovers count the proxies' connections
	// and those whose first backend refused.
	ProxyConnections, ProxyFailovers int64
	// Report is the checker's report, with the divergence and
	// decryption problems the harness found added.
	Report *CheckReport
}

// DomainKills counts the kills of one provider's nodes (a hub or a
// follower of draft-ralston-mimi-protocol-02, Section 5.5).
type DomainKills struct {
	// Kills of its nodes, LeaderKills of those that were its cluster's
	// leader.
	Kills, LeaderKills int
}

// byDomain formats the kills per provider, sorted by domain.
func (r *Result) byDomain() string {
	var parts []string
	for _, d := range slices.Sorted(maps.Keys(r.ByDomain)) {
		parts = append(parts, fmt.Sprintf("%s %d/%d", d, r.ByDomain[d].Kills, r.ByDomain[d].LeaderKills))
	}
	return strings.Join(parts, ", ")
}

// alsoNote names the second node of a quorum loss in a log line.
func alsoNote(also string) string {
	if also == "" {
		return ""
	}
	return " and " + also
}

// Summary is a one-line summary of the figures.
func (r *Result) Summary() string {
	rep := r.Report
	if rep == nil {
		rep = &CheckReport{}
	}
	failures := 0
	for _, n := range r.MembershipFailures {
		failures += n
	}
	return fmt.Sprintf("seed=%d elapsed=%s load=%s drain=%s backlog_at_stop=%d kills=%d (leader %d, follower %d, quorum losses %d; per domain all/leader: %s) leader_changes=%d terms=%d sent=%d acked=%d acked_after_retry=%d outcome_unknown=%d refused=%d submit_calls=%d submit_failures=%d hub_messages=%d deliveries_checked=%d decrypted=%d adds=%d removes=%d membership_calls=%d membership_failures=%d membership_gave_up=%d commits_acked=%d commits_retried=%d joins=%d removals=%d states_checked=%d hub_events=%d nodes_agree=%v problems=%d lost_at_hub=%d dup_at_hub=%d refused_at_hub=%d lost=%d dup=%d reordered=%d unknown=%d member_state=%d mean_ack=%s max_ack=%s proxy_conns=%d proxy_failovers=%d",
		r.Seed, r.Elapsed.Round(time.Millisecond), r.Load.Round(time.Millisecond), r.Drain.Round(time.Millisecond), r.BacklogAtStop, len(r.Kills), r.LeaderKills, r.FollowerKills, r.QuorumLosses, r.byDomain(), r.LeaderChanges, r.Terms,
		r.Sent, r.Acked, rep.AckedRetried, r.OutcomeUnknown, r.Refused, r.SubmitCalls, r.SubmitFailures,
		rep.HubMessages, rep.DeliveriesChecked, r.Decrypted,
		r.Adds, r.Removes, r.MembershipCalls, failures, r.MembershipGaveUp, rep.CommitsAcked, rep.CommitsRetried, rep.Joins, rep.Removals, r.StatesChecked,
		r.HubEvents, r.NodesAgree, len(rep.Problems),
		rep.Count(ProblemLostAtHub), rep.Count(ProblemDuplicateAtHub), rep.Count(ProblemRefusedAtHub), rep.Count(ProblemLost), rep.Count(ProblemDuplicate),
		rep.Count(ProblemReordered), rep.Count(ProblemUnknown), rep.Count(ProblemMemberState), r.MeanAckLatency.Round(time.Millisecond), r.MaxAckLatency.Round(time.Millisecond),
		r.ProxyConnections, r.ProxyFailovers) +
		fmt.Sprintf(" freezes=%d (leader %d, follower %d) partitions=%d (black-holed %d; by mode: %s)",
			len(r.Freezes), r.LeaderFreezes, r.FollowerFreezes, len(r.Partitions), r.BlackHoles, r.partitionModes()) +
		fmt.Sprintf(" leaves=%d void_leaves=%d device_joins=%d external_joins=%d races=%d wrong_epoch=%d proposals_acked=%d hub_proposals=%d proposal_dropped=%d removal_unreported=%d",
			r.Leaves, r.VoidLeaves, r.DeviceJoins, rep.ExternalJoins, r.Races, r.WrongEpochs, rep.ProposalsAcked, rep.HubProposals, rep.Count(ProblemProposalDropped), rep.Count(ProblemRemoval)) +
		r.clientFaultSummary()
}

// Run runs the scenario: it starts the topology, sets up the clients and
// rooms, runs the senders while killing random hub nodes with SIGKILL and
// restarting them, then heals, syncs every client and checks. It returns
// an error when the harness itself could not proceed (a node did not come
// back, setup failed); violations of the delivery guarantees are in
// Result.Report.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	if cfg.Dir == "" {
		return nil, errors.New("chaos: Config.Dir is required")
	}
	res := &Result{Seed: cfg.Seed}
	began := time.Now()
	defer func() { res.Elapsed = time.Since(began) }()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	uniform := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	logf := cfg.Logf
	logf("chaos: seed %d", cfg.Seed)

	if cfg.Bin == "" {
		logf("chaos: building mimid")
		bin, err := BuildMimid(ctx, cfg.Dir)
		if err != nil {
			return res, err
		}
		cfg.Bin = bin
	}
	tc := cfg.Topology
	tc.Dir, tc.Bin = cfg.Dir, cfg.Bin
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	topo, err := StartTopology(sctx, tc)
	scancel()
	if err != nil {
		return res, err
	}
	defer topo.Close()
	defer func() {
		for _, p := range topo.Proxies() {
			res.ProxyConnections += p.Connections.Load()
			res.ProxyFailovers += p.Failovers.Load()
		}
	}()
	var layout []string
	for _, c := range topo.Clusters {
		layout = append(layout, fmt.Sprintf("%s: nodes %s..%s, fed proxy %s, client proxy %s",
			c.Domain, c.Nodes[0].ID, c.Nodes[len(c.Nodes)-1].ID, c.FedProxy.Addr(), c.ClientProxy.Addr()))
	}
	for _, n := range topo.Followers {
		layout = append(layout, n.Domain+": single node")
	}
	logf("chaos: topology up in %s (%s)", time.Since(began).Round(time.Millisecond), strings.Join(layout, "; "))

	// Clients and rooms.
	rec := newRecorder()
	setupCtx, setupCancel := context.WithTimeout(ctx, 3*time.Minute)
	defer setupCancel()
	// Setup runs against each cluster's leader: a write answered by a
	// follower node is applied there only later, so a client's next call
	// through another (or the same) node may not see it yet (see
	// docs/reliability.md).
	for _, c := range topo.Clusters {
		if n, _ := c.Leader(ctx); n != nil && !cfg.UnpinnedSetup {
			c.ClientProxy.Prefer(slices.Index(c.Nodes, n))
		}
	}
	fl, err := newFleet(topo, rec, rng, cfg.AttemptTimeout, cfg.GiveUp, cfg.ClientLinkShare > 0)
	if err != nil {
		return res, err
	}
	defer fl.close()
	clients, err := newClients(setupCtx, fl, cfg.Senders, cfg.Receivers, cfg.Rooms+1)
	if err != nil {
		return res, err
	}
	var rooms []string
	for i := 1; i <= cfg.Rooms; i++ {
		rooms = append(rooms, fmt.Sprintf("mimi://%s/r/chaos-%d", HubDomain, i))
	}
	var admins []*simClient
	if cfg.MembershipEvery > 0 {
		for i := range rooms {
			a, err := fl.client([]string{HubDomain, BDomain, CDomain}[i%3], fmt.Sprintf("admin%d", i+1), false)
			if err != nil {
				return res, err
			}
			if err := a.c.Enroll(setupCtx, 1); err != nil {
				return res, fmt.Errorf("chaos: %w", err)
			}
			admins = append(admins, a)
		}
	}
	if err := setupRooms(setupCtx, clients, rooms, admins); err != nil {
		return res, err
	}
	clients = append(clients, admins...)
	for _, c := range topo.Clusters {
		c.ClientProxy.Prefer(-1)
		fl.hc[c.Domain].CloseIdleConnections()
	}
	logf("chaos: %d clients in %d rooms after %s", len(clients), len(rooms), time.Since(began).Round(time.Millisecond))

	// Leader watcher.
	watchCtx, watchCancel := context.WithCancel(ctx)
	var watchWG sync.WaitGroup
	var watchMu sync.Mutex
	type domainTerm struct {
		domain string
		term   uint64
	}
	terms := map[domainTerm]bool{}
	lastLeader := map[string]string{}
	watchWG.Go(func() {
		for watchCtx.Err() == nil {
			for _, c := range topo.Clusters {
				n, st := c.Leader(watchCtx)
				if n == nil {
					continue
				}
				watchMu.Lock()
				terms[domainTerm{c.Domain, st.GetTerm()}] = true
				if last := lastLeader[c.Domain]; last != "" && last != n.ID {
					res.LeaderChanges++
				}
				lastLeader[c.Domain] = n.ID
				watchMu.Unlock()
			}
			select {
			case <-watchCtx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	stopWatch := func() {
		watchCancel()
		watchWG.Wait()
		watchMu.Lock()
		res.Terms = len(terms)
		watchMu.Unlock()
	}
	defer stopWatch()

	// Load.
	stop := make(chan struct{})
	var st loadStats
	var mst membershipStats
	var workers sync.WaitGroup
	loadCtx, loadCancel := context.WithCancel(ctx)
	defer loadCancel()
	loadStart := time.Now()
	for _, sc := range clients {
		if !sc.sender {
			if fl.links != nil {
				workers.Go(func() { runReader(loadCtx, sc, stop) })
			}
			continue
		}
		srng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		workers.Go(func() { runSender(loadCtx, sc, rooms, rec, srng, cfg.SendPause, stop, &st) })
	}
	var actors []*actor
	ops := cfg.MembershipOps
	if len(ops) == 0 {
		ops = MembershipOps()
	}
	for i, a := range admins {
		ac := &actor{room: rooms[i], num: i + 1, admin: a, fleet: fl, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())),
			ops: ops, every: cfg.MembershipEvery, giveUp: cfg.GiveUp, st: &mst, logf: logf, racing: cfg.RaceCommitters}
		actors = append(actors, ac)
		workers.Go(func() { ac.run(loadCtx, stop) })
	}

	// Chaos: SIGKILL a random node, restart it after a random pause, wait
	// for it to rejoin. One node is down at a time, so every cluster keeps
	// its quorum, except when QuorumLossShare takes a second hub node down
	// with the first.
	followerNodes := topo.All()[len(topo.Hub().Nodes):]
	fx := &faults{cfg: &cfg, topo: topo, rng: rng, res: res, logf: logf, start: loadStart, acked: func() int {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.acked
	}}
	lx := &linkFaults{faults: fx, links: fl.links}
	res.ByDomain = map[string]DomainKills{}
	var chaosErr error
	for chaosErr == nil && (len(res.Kills) < cfg.Kills || time.Since(loadStart) < cfg.Duration) {
		select {
		case <-ctx.Done():
			chaosErr = ctx.Err()
			continue
		case <-time.After(uniform(cfg.UpMin, cfg.UpMax)):
		}
		for _, n := range topo.All() {
			if !n.Proc.Running() {
				chaosErr = fmt.Errorf("chaos: %s exited on its own; log:\n%s", n.ID, n.Proc.LogTail(6000))
			}
		}
		if chaosErr != nil {
			break
		}
		// Some turns freeze a node or partition two providers instead
		// (faults_*.go).
		if done, err := fx.turn(ctx); done || err != nil {
			chaosErr = err
			continue
		}
		if done, err := lx.turn(ctx); done || err != nil {
			chaosErr = err
			continue
		}
		nodes := topo.Hub().Nodes
		follower := len(followerNodes) > 0 && rng.Float64() < cfg.FollowerShare
		if follower {
			nodes = followerNodes
		}
		victim := nodes[rng.IntN(len(nodes))]
		wasLeader := false
		if c := topo.Cluster(victim.Domain); c != nil {
			leader, _ := c.Leader(ctx)
			if leader != nil && rng.Float64() < cfg.LeaderShare {
				victim = leader
			}
			wasLeader = leader == victim
		}
		k := Kill{Node: victim.ID, Domain: victim.Domain, WasLeader: wasLeader, Follower: follower, At: time.Since(loadStart)}
		down := []*Node{victim}
		if !follower && rng.Float64() < cfg.QuorumLossShare {
			others := slices.DeleteFunc(slices.Clone(topo.Hub().Nodes), func(n *Node) bool { return n == victim })
			second := others[rng.IntN(len(others))]
			k.Also = second.ID
			down = append(down, second)
		}
		for _, n := range down {
			if err := n.Proc.Kill(); err != nil {
				chaosErr = err
			}
		}
		if chaosErr != nil {
			break
		}
		killedAt := time.Now()
		select {
		case <-ctx.Done():
		case <-time.After(uniform(cfg.DownMin, cfg.DownMax)):
		}
		for _, n := range down {
			if err := n.Proc.Start(); err != nil {
				chaosErr = err
			}
		}
		if chaosErr != nil {
			break
		}
		k.Down = time.Since(killedAt)
		restarted := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
		for _, n := range down {
			if err := n.Proc.WaitReady(rctx); err != nil {
				chaosErr = fmt.Errorf("%w; log:\n%s", err, n.Proc.LogTail(6000))
				break
			}
		}
		rcancel()
		if chaosErr != nil {
			break
		}
		k.Rejoin = time.Since(restarted)
		if k.Also != "" {
			res.QuorumLosses++
		}
		res.Kills = append(res.Kills, k)
		dk := res.ByDomain[k.Domain]
		dk.Kills++
		if k.WasLeader {
			res.LeaderKills++
			dk.LeaderKills++
		}
		res.ByDomain[k.Domain] = dk
		if k.Follower {
			res.FollowerKills++
		}
		st.mu.Lock()
		acked := st.acked
		st.mu.Unlock()
		logf("chaos: kill %d: %s%s of %s (leader=%v follower=%v) at %s, down %s, ready %s after restart; %d messages acknowledged and %d membership changes made so far",
			len(res.Kills), k.Node, alsoNote(k.Also), k.Domain, k.WasLeader, k.Follower, k.At.Round(time.Millisecond), k.Down.Round(time.Millisecond), k.Rejoin.Round(time.Millisecond), acked, mst.changes())
	}
	close(stop)
	workersDone := make(chan struct{})
	go func() { workers.Wait(); close(workersDone) }()
	select {
	case <-workersDone:
	case <-time.After(cfg.GiveUp + 30*time.Second):
		loadCancel()
		<-workersDone
	}
	res.Load = time.Since(loadStart)
	for _, ac := range actors {
		clients = append(clients, ac.guests...)
	}
	mst.mu.Lock()
	res.Adds, res.Removes, res.MembershipCalls, res.MembershipGaveUp, res.MembershipFailures = mst.adds, mst.removes, mst.calls, mst.gaveUp, mst.failures
	res.Leaves, res.DeviceJoins, res.Races, res.WrongEpochs, res.VoidLeaves = mst.leaves, mst.joins, mst.races, mst.wrongEpochs, mst.voidLeaves
	res.RaceLosers, res.RaceRecovered, res.RacesFull = mst.raceLosers, mst.raceRecovered, mst.racesFull
	membershipProblems := mst.problems
	proposals := copySubmits(mst.proposals)
	mst.mu.Unlock()
	st.mu.Lock()
	res.Sent, res.Acked, res.OutcomeUnknown, res.Refused, res.Refusals = st.sent, st.acked, st.unknown, st.refused, st.refusals
	if st.latencyN > 0 {
		res.MeanAckLatency = st.sumLatency / time.Duration(st.latencyN)
	}
	res.MaxAckLatency = st.maxLatency
	firstErr := st.firstError
	st.mu.Unlock()
	for _, s := range rec.Submits() {
		res.SubmitCalls += s.Attempts
		res.SubmitFailures += s.Attempts
		if !s.Answered.IsZero() {
			res.SubmitFailures--
		}
	}
	stopWatch()
	if chaosErr != nil {
		return res, chaosErr
	}
	if firstErr != nil {
		logf("chaos: first unexpected send error: %v", firstErr)
	}
	logf("chaos: load stopped after %s: %d sent, %d acknowledged, %d outcome unknown, %d refused (by response code: %v); %d users added, %d removed (failed calls by cause: %v)",
		res.Load.Round(time.Millisecond), res.Sent, res.Acked, res.OutcomeUnknown, res.Refused, res.Refusals, res.Adds, res.Removes, res.MembershipFailures)

	// Heal and check: the fanout backlog, the log reads and the audits
	// grow with the length of the run.
	fctx, fcancel := context.WithTimeout(ctx, 5*time.Minute+cfg.Duration)
	defer fcancel()
	if err := finish(fctx, topo, clients, rooms, rec, proposals, append(membershipProblems, fx.problems...), res, logf); err != nil {
		return res, err
	}
	return res, nil
}

// finish waits for the hub to converge and its fanout to drain and for
// every other cluster to converge, syncs every client, compares the
// clients' room states with the hub's, reads and compares each cluster's
// nodes' logs, and runs the checker (proposals are those the membership
// actors' clients submitted); its report gets the problems the harness
// found, extra among them. When there are any, the trace of the
// run is written into the work directory.
func finish(ctx context.Context, topo *Topology, clients []*simClient, rooms []string, rec *recorder, proposals []Submit, extra []Problem, res *Result, logf func(string, ...any)) error {
	healStart := time.Now()
	res.BacklogAtStop = fanoutBacklog(ctx, topo)
	if _, err := topo.Hub().WaitConverged(ctx); err != nil {
		return err
	}
	if err := waitFanoutDrained(ctx, topo); err != nil {
		return err
	}
	res.Drain = time.Since(healStart)
	logf("chaos: hub converged and fanout drained %s after the load stopped", res.Drain.Round(time.Millisecond))
	// Every node of a follower cluster answers its clients' inbox reads:
	// each must have applied every /notify its leader acknowledged.
	for _, c := range topo.Clusters[1:] {
		if _, err := c.WaitConverged(ctx); err != nil {
			return err
		}
	}
	for _, sc := range clients {
		// One Sync processes a bounded number of inbox pages: sync until a
		// Sync reads nothing new.
		for {
			before := rec.count(sc.id)
			if err := retry(ctx, func() error { return sc.sync(ctx) }); err != nil {
				return err
			}
			if rec.count(sc.id) == before {
				break
			}
		}
	}
	// The clients' acknowledgements are writes too.
	var heads []string
	for _, c := range topo.Clusters {
		head, err := c.WaitConverged(ctx)
		if err != nil {
			return err
		}
		heads = append(heads, fmt.Sprintf("%s at Raft index %d", c.Domain, head))
	}
	logf("chaos: converged (%s); comparing the room states and reading the logs", strings.Join(heads, ", "))
	states, checked, err := stateCheck(ctx, topo, clients, rooms)
	if err != nil {
		return err
	}
	res.StatesChecked = checked

	var divergence []Problem
	var hubLog []*adminv1.Event
	for i, c := range topo.Clusters {
		log, digest, problems, err := clusterAgree(ctx, c)
		if err != nil {
			return err
		}
		divergence = append(divergence, problems...)
		if i == 0 {
			hubLog, res.Digest = log, digest
		}
		logf("chaos: %s: %d events, digest %s, %d divergences between its nodes", c.Domain, len(log), digest, len(problems))
	}
	res.HubEvents = len(hubLog)
	res.NodesAgree = len(divergence) == 0

	entries, err := logEntries(hubLog)
	if err != nil {
		return err
	}
	rep := Check(CheckInput{Log: entries, Submits: rec.Submits(), Commits: rec.Commits(), Proposals: proposals, Received: rec.Received(), Removed: removals(clients)})
	rep.Problems = append(rep.Problems, divergence...)
	rep.Problems = append(rep.Problems, states...)
	rep.Problems = append(rep.Problems, extra...)
	rep.Problems = append(rep.Problems, decryptCheck(clients, rec, res)...)
	rep.Problems = append(rep.Problems, inboxCheck(clients, rec)...)
	res.AmbiguousAnswers = rec.ambiguousAnswers()
	res.Report = rep
	if !rep.OK() {
		if err := writeTrace(topo.Dir, hubLog, entries, rec); err != nil {
			return fmt.Errorf("chaos: writing the trace: %w", err)
		}
		logf("chaos: %d problems; the hub log, the submissions and the inboxes are in %s", len(rep.Problems), filepath.Join(topo.Dir, "trace-*.txt"))
	}
	return nil
}

// clusterAgree reads every node's log of a cluster and audits it
// (ReplayVerify): it returns the first node's log and live digest, and a
// divergence problem for every log or digest that differs from the first
// node's and every failed audit.
func clusterAgree(ctx context.Context, c *Cluster) ([]*adminv1.Event, string, []Problem, error) {
	logs := make([][]*adminv1.Event, len(c.Nodes))
	for i, n := range c.Nodes {
		var err error
		if logs[i], err = n.ReadLog(ctx); err != nil {
			return nil, "", nil, err
		}
	}
	var divergence []Problem
	for i := 1; i < len(logs); i++ {
		if d := compareLogs(logs[0], logs[i]); d != "" {
			divergence = append(divergence, Problem{Kind: ProblemDivergence, Detail: fmt.Sprintf("%s vs %s: %s", c.Nodes[0].ID, c.Nodes[i].ID, d)})
		}
	}
	var digests []string
	for _, n := range c.Nodes {
		vctx, vcancel := context.WithTimeout(ctx, 10*time.Minute)
		resp, err := n.AdminAPI.ReplayVerify(vctx, connect.NewRequest(&adminv1.ReplayVerifyRequest{}))
		vcancel()
		if err != nil {
			return nil, "", nil, fmt.Errorf("chaos: %s: ReplayVerify: %w", n.ID, err)
		}
		v := resp.Msg
		if !v.GetOk() {
			divergence = append(divergence, Problem{Kind: ProblemDivergence, Detail: fmt.Sprintf("%s: audit failed: log ok=%v replay ok=%v (%s)", n.ID, v.GetLog().GetOk(), v.GetReplay().GetOk(), v.GetReplay().GetError())})
		}
		digests = append(digests, hex.EncodeToString(v.GetReplay().GetLiveDigest()))
	}
	for i := 1; i < len(digests); i++ {
		if digests[i] != digests[0] {
			divergence = append(divergence, Problem{Kind: ProblemDivergence, Detail: fmt.Sprintf("digest of %s %s, of %s %s", c.Nodes[0].ID, digests[0], c.Nodes[i].ID, digests[i])})
		}
	}
	return logs[0], digests[0], divergence, nil
}

// retry calls f until it succeeds or ctx ends.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitFanoutDrained waits until the leader reports no fanout backlog for
// any destination (draft-ralston-mimi-protocol-02, Section 5.5).
func waitFanoutDrained(ctx context.Context, topo *Topology) error {
	for {
		if n, _ := topo.Hub().Leader(ctx); n != nil {
			fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			resp, err := n.AdminAPI.FanoutStatus(fctx, connect.NewRequest(&adminv1.FanoutStatusRequest{}))
			cancel()
			if err == nil {
				pending := false
				for _, d := range resp.Msg.GetDestinations() {
					if d.GetBacklog() > 0 || d.GetAcked() < d.GetEnqueued() {
						pending = true
					}
				}
				if !pending {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: fanout did not drain: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fanoutBacklog returns the leader's fanout backlog over all destinations
// (0 if no leader answers).
func fanoutBacklog(ctx context.Context, topo *Topology) uint64 {
	n, _ := topo.Hub().Leader(ctx)
	if n == nil {
		return 0
	}
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := n.AdminAPI.FanoutStatus(fctx, connect.NewRequest(&adminv1.FanoutStatusRequest{}))
	if err != nil {
		return 0
	}
	var sum uint64
	for _, d := range resp.Msg.GetDestinations() {
		sum += d.GetBacklog()
	}
	return sum
}

// compareLogs describes the first difference of two nodes' logs, or "".
func compareLogs(a, b []*adminv1.Event) string {
	for i := range min(len(a), len(b)) {
		if a[i].GetSeq() != b[i].GetSeq() || !bytes.Equal(a[i].GetRaw(), b[i].GetRaw()) {
			return fmt.Sprintf("event %d differs (%s vs %s)", a[i].GetSeq(), a[i].GetType(), b[i].GetType())
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d events vs %d", len(a), len(b))
	}
	return ""
}

// logEntries decodes the room events the checker compares from a node's
// log (package eventlog).
func logEntries(evs []*adminv1.Event) ([]LogEntry, error) {
	var out []LogEntry
	for _, ae := range evs {
		if ae.GetRoom() == "" {
			continue
		}
		ev, err := eventlog.Decode(ae.GetRaw())
		if err != nil {
			return nil, fmt.Errorf("chaos: decoding event %d: %w", ae.GetSeq(), err)
		}
		e := LogEntry{Seq: ae.GetSeq(), RoomSeq: ae.GetRoomSeq(), Room: ae.GetRoom()}
		switch b := ev.Body.(type) {
		case *eventlog.RoomCreated:
			e.Kind, e.Epoch, e.Members, e.Sender = KindCreated, b.Epoch, b.Members, ""
		case *eventlog.CommitAccepted:
			e.Kind, e.Message, e.Welcome, e.Members, e.Sender = KindCommit, b.Commit, b.Welcome, b.Members, b.Sender
		case *eventlog.ProposalAccepted:
			e.Kind, e.Message, e.Sender, e.ProposalRef = KindProposal, b.Message, b.Sender, b.ProposalRef
		case *eventlog.ApplicationMessageAccepted:
			e.Kind, e.Message, e.Sender = KindMessage, b.Message, b.Sender
		default:
			continue
		}
		if e.Message != nil {
			// The epoch the sender put in the message, not the hub's
			// bookkeeping (RFC 9420, Section 6).
			m, err := wire.UnmarshalMLSMessage(e.Message)
			switch {
			case err != nil:
				return nil, fmt.Errorf("chaos: decoding the message of event %d: %w", ae.GetSeq(), err)
			case m.PublicMessage != nil:
				e.Epoch = m.PublicMessage.Content.Epoch
				if c := m.PublicMessage.Content.Commit; c != nil {
					for _, p := range c.Proposals {
						if p.Type == wire.ProposalOrRefReference {
							e.Refs = append(e.Refs, p.Reference)
						}
					}
					e.External = m.PublicMessage.Content.Sender.Type == wire.SenderNewMemberCommit
				}
			case m.PrivateMessage != nil:
				e.Epoch = m.PrivateMessage.Epoch
			}
		}
		out = append(out, e)
	}
	return out, markLeaving(evs, out)
}

// decryptCheck checks what the clients' Syncs made of the messages of
// others: each must decrypt to the plaintext its sender encrypted (RFC
// 9420, Section 6.3). Errors on a client's own echoes are expected (a
// sender cannot decrypt its own PrivateMessage) and ignored.
func decryptCheck(clients []*simClient, rec *recorder, res *Result) []Problem {
	subs := map[string]Submit{}
	for _, s := range rec.Submits() {
		subs[string(s.Message)] = s
	}
	recv := rec.Received()
	var out []Problem
	for _, sc := range clients {
		byPos := map[uint64]Delivery{}
		for _, d := range recv[sc.id] {
			byPos[d.Pos] = d
		}
		for _, ev := range sc.events {
			d, ok := byPos[ev.Seq]
			if !ok {
				continue
			}
			s, isMsg := subs[string(d.Message)]
			switch ev.Type {
			case client.EventMessage:
				if !isMsg || s.Label != string(ev.Data) {
					out = append(out, Problem{Kind: ProblemUndecryptable, Client: sc.id, Room: ev.Room, Message: short(d.Message),
						Detail: fmt.Sprintf("inbox position %d decrypted to %q, sent as %q", ev.Seq, truncate(ev.Data), s.Label)})
					continue
				}
				res.Decrypted++
			case client.EventError:
				if isMsg && s.Client == sc.id {
					continue
				}
				out = append(out, Problem{Kind: ProblemUndecryptable, Client: sc.id, Room: ev.Room, Message: short(d.Message),
					Detail: fmt.Sprintf("inbox position %d: %v", ev.Seq, ev.Err)})
			}
		}
	}
	return out
}

func truncate(b []byte) string {
	s := string(b)
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// DumpLogs returns the tail of every process log (for a failed run).
func DumpLogs(dir string, n int64) string {
	var b strings.Builder
	paths, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, path := range paths {
		p := &Proc{LogPath: path}
		fmt.Fprintf(&b, "==== %s (tail)\n%s\n", filepath.Base(path), p.LogTail(n))
	}
	return b.String()
}
