package chaos

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/eventlog"
	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/mls/wire"
)

// ProblemDivergence: the hub nodes' logs or digests differ, or an audit
// (ReplayVerify) failed on one of them.
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
	// number of hub node kills; the run ends when both are reached
	// (defaults 20 s and 5).
	Duration time.Duration
	Kills    int
	// UpMin..UpMax is how long every hub node runs between two kills,
	// DownMin..DownMax how long a killed node stays down (defaults
	// 1–4 s and 0.2–2 s).
	UpMin, UpMax     time.Duration
	DownMin, DownMax time.Duration
	// LeaderShare is the probability that a kill targets the current
	// Raft leader rather than a node drawn uniformly from all three
	// (default 0.4; negative: always uniform).
	LeaderShare float64
	// FollowerShare is the probability that a kill targets a follower
	// provider (b.example or c.example, single nodes) instead of a hub
	// node (default 0.25; negative: hub nodes only). A killed follower
	// loses its in-flight /notify and client API calls; the hub's fanout
	// retries and its clients' senders resend.
	FollowerShare float64
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
	// (draft-ralston-mimi-protocol-02, Sections 3.2, 3.3, 3.5 and 5.3): an
	// admin client of its own (room i's at a.example, b.example and
	// c.example in turn) that, every MembershipEvery on average, adds the
	// client of a new user at a random provider, or removes a user it
	// added, while the load and the kills go on. 0: no membership changes
	// after the setup.
	MembershipEvery time.Duration
	// UnpinnedSetup sends the hub clients' setup calls through the client
	// API proxy to any node instead of the leader. It reproduces the
	// read-your-writes gap of a forwarded write (docs/reliability.md):
	// setup then usually fails with "client not registered".
	UnpinnedSetup bool
	// Topology tunes the daemons (Raft timing, snapshots, log level).
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

// Kill is one SIGKILL of a hub node or a follower provider.
type Kill struct {
	Node      string
	WasLeader bool
	Follower  bool // a follower provider, not a hub node
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
	// LeaderKills counts the kills of the node that was leader,
	// FollowerKills those of a follower provider.
	LeaderKills, FollowerKills int
	// LeaderChanges counts the changes of the leader's identity seen by
	// polling the admin API every 250 ms, Terms the distinct Raft terms
	// seen with a leader.
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
	// MembershipCalls their AddUser and RemoveUser calls,
	// MembershipFailures the failed calls and enrollments by cause, and
	// MembershipGaveUp the changes abandoned after GiveUp.
	Adds, Removes, MembershipCalls, MembershipGaveUp int
	MembershipFailures                               map[string]int
	// StatesChecked counts the (member, room) states compared with the
	// hub's room state at the end.
	StatesChecked int
	// HubEvents is the length of the hub's log; the nodes' logs are
	// byte-identical and their digests equal when NodesAgree.
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
	return fmt.Sprintf("seed=%d elapsed=%s load=%s drain=%s backlog_at_stop=%d kills=%d (leader %d, follower %d) leader_changes=%d terms=%d sent=%d acked=%d acked_after_retry=%d outcome_unknown=%d refused=%d submit_calls=%d submit_failures=%d hub_messages=%d deliveries_checked=%d decrypted=%d adds=%d removes=%d membership_calls=%d membership_failures=%d membership_gave_up=%d commits_acked=%d commits_retried=%d joins=%d removals=%d states_checked=%d hub_events=%d nodes_agree=%v problems=%d lost_at_hub=%d dup_at_hub=%d refused_at_hub=%d lost=%d dup=%d reordered=%d unknown=%d member_state=%d mean_ack=%s max_ack=%s proxy_conns=%d proxy_failovers=%d",
		r.Seed, r.Elapsed.Round(time.Millisecond), r.Load.Round(time.Millisecond), r.Drain.Round(time.Millisecond), r.BacklogAtStop, len(r.Kills), r.LeaderKills, r.FollowerKills, r.LeaderChanges, r.Terms,
		r.Sent, r.Acked, rep.AckedRetried, r.OutcomeUnknown, r.Refused, r.SubmitCalls, r.SubmitFailures,
		rep.HubMessages, rep.DeliveriesChecked, r.Decrypted,
		r.Adds, r.Removes, r.MembershipCalls, failures, r.MembershipGaveUp, rep.CommitsAcked, rep.CommitsRetried, rep.Joins, rep.Removals, r.StatesChecked,
		r.HubEvents, r.NodesAgree, len(rep.Problems),
		rep.Count(ProblemLostAtHub), rep.Count(ProblemDuplicateAtHub), rep.Count(ProblemRefusedAtHub), rep.Count(ProblemLost), rep.Count(ProblemDuplicate),
		rep.Count(ProblemReordered), rep.Count(ProblemUnknown), rep.Count(ProblemMemberState), r.MeanAckLatency.Round(time.Millisecond), r.MaxAckLatency.Round(time.Millisecond),
		r.ProxyConnections, r.ProxyFailovers)
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
		res.ProxyConnections = topo.FedProxy.Connections.Load() + topo.ClientProxy.Connections.Load()
		res.ProxyFailovers = topo.FedProxy.Failovers.Load() + topo.ClientProxy.Failovers.Load()
	}()
	logf("chaos: topology up in %s (hub nodes n1..n3, followers b.example, c.example; fed proxy %s, client proxy %s)",
		time.Since(began).Round(time.Millisecond), topo.FedProxy.Addr(), topo.ClientProxy.Addr())

	// Clients and rooms.
	rec := newRecorder()
	setupCtx, setupCancel := context.WithTimeout(ctx, 3*time.Minute)
	defer setupCancel()
	// Setup runs against the leader: a write answered by a follower node
	// is applied there only later, so a client's next call through another
	// (or the same) node may not see it yet (see docs/reliability.md).
	if n, _ := topo.Leader(ctx); n != nil && !cfg.UnpinnedSetup {
		for i, h := range topo.Hub {
			if h == n {
				topo.ClientProxy.Prefer(i)
			}
		}
	}
	fl, err := newFleet(topo, rec, rng, cfg.AttemptTimeout, cfg.GiveUp)
	if err != nil {
		return res, err
	}
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
	topo.ClientProxy.Prefer(-1)
	fl.hubHC.CloseIdleConnections()
	logf("chaos: %d clients in %d rooms after %s", len(clients), len(rooms), time.Since(began).Round(time.Millisecond))

	// Leader watcher.
	watchCtx, watchCancel := context.WithCancel(ctx)
	var watchWG sync.WaitGroup
	var watchMu sync.Mutex
	terms := map[uint64]bool{}
	lastLeader := ""
	watchWG.Go(func() {
		for watchCtx.Err() == nil {
			if n, st := topo.Leader(watchCtx); n != nil {
				watchMu.Lock()
				terms[st.GetTerm()] = true
				if lastLeader != "" && lastLeader != n.ID {
					res.LeaderChanges++
				}
				lastLeader = n.ID
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
			continue
		}
		srng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		workers.Go(func() { runSender(loadCtx, sc, rooms, rec, srng, cfg.SendPause, stop, &st) })
	}
	var actors []*actor
	for i, a := range admins {
		ac := &actor{room: rooms[i], num: i + 1, admin: a, fleet: fl, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())),
			every: cfg.MembershipEvery, giveUp: cfg.GiveUp, st: &mst, logf: logf}
		actors = append(actors, ac)
		workers.Go(func() { ac.run(loadCtx, stop) })
	}

	// Chaos: SIGKILL a random hub node, restart it after a random pause,
	// wait for it to rejoin.
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
		victim := topo.Hub[rng.IntN(len(topo.Hub))]
		leader, _ := topo.Leader(ctx)
		if leader != nil && rng.Float64() < cfg.LeaderShare {
			victim = leader
		}
		follower := len(topo.Followers) > 0 && rng.Float64() < cfg.FollowerShare
		if follower {
			victim = topo.Followers[rng.IntN(len(topo.Followers))]
		}
		k := Kill{Node: victim.ID, WasLeader: !follower && leader == victim, Follower: follower, At: time.Since(loadStart)}
		if err := victim.Proc.Kill(); err != nil {
			chaosErr = err
			break
		}
		killedAt := time.Now()
		select {
		case <-ctx.Done():
		case <-time.After(uniform(cfg.DownMin, cfg.DownMax)):
		}
		if err := victim.Proc.Start(); err != nil {
			chaosErr = err
			break
		}
		k.Down = time.Since(killedAt)
		restarted := time.Now()
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
		err := victim.Proc.WaitReady(rctx)
		rcancel()
		if err != nil {
			chaosErr = fmt.Errorf("%w; log:\n%s", err, victim.Proc.LogTail(6000))
			break
		}
		k.Rejoin = time.Since(restarted)
		res.Kills = append(res.Kills, k)
		if k.WasLeader {
			res.LeaderKills++
		}
		if k.Follower {
			res.FollowerKills++
		}
		st.mu.Lock()
		acked := st.acked
		st.mu.Unlock()
		logf("chaos: kill %d: %s (leader=%v follower=%v) at %s, down %s, ready %s after restart; %d messages acknowledged and %d membership changes made so far",
			len(res.Kills), k.Node, k.WasLeader, k.Follower, k.At.Round(time.Millisecond), k.Down.Round(time.Millisecond), k.Rejoin.Round(time.Millisecond), acked, mst.changes())
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
	membershipProblems := mst.problems
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
	if err := finish(fctx, topo, clients, rooms, rec, membershipProblems, res, logf); err != nil {
		return res, err
	}
	return res, nil
}

// finish waits for the hub to converge and its fanout to drain, syncs
// every client, compares the clients' room states with the hub's, reads
// and compares the hub nodes' logs, and runs the checker; its report gets
// the problems the harness found, extra among them. When there are any,
// the trace of the run is written into the work directory.
func finish(ctx context.Context, topo *Topology, clients []*simClient, rooms []string, rec *recorder, extra []Problem, res *Result, logf func(string, ...any)) error {
	healStart := time.Now()
	res.BacklogAtStop = fanoutBacklog(ctx, topo)
	if _, err := topo.WaitConverged(ctx); err != nil {
		return err
	}
	if err := waitFanoutDrained(ctx, topo); err != nil {
		return err
	}
	res.Drain = time.Since(healStart)
	logf("chaos: hub converged and fanout drained %s after the load stopped", res.Drain.Round(time.Millisecond))
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
	// The hub clients' acknowledgements are writes too.
	head, err := topo.WaitConverged(ctx)
	if err != nil {
		return err
	}
	logf("chaos: hub converged at Raft index %d; comparing the room states and reading the logs", head)
	states, checked, err := stateCheck(ctx, topo, clients, rooms)
	if err != nil {
		return err
	}
	res.StatesChecked = checked

	logs := make([][]*adminv1.Event, len(topo.Hub))
	for i, n := range topo.Hub {
		if logs[i], err = n.ReadLog(ctx); err != nil {
			return err
		}
	}
	res.HubEvents = len(logs[0])
	var divergence []Problem
	for i := 1; i < len(logs); i++ {
		if d := compareLogs(logs[0], logs[i]); d != "" {
			divergence = append(divergence, Problem{Kind: ProblemDivergence, Detail: fmt.Sprintf("%s vs %s: %s", topo.Hub[0].ID, topo.Hub[i].ID, d)})
		}
	}
	var digests []string
	for _, n := range topo.Hub {
		vctx, vcancel := context.WithTimeout(ctx, 10*time.Minute)
		resp, err := n.AdminAPI.ReplayVerify(vctx, connect.NewRequest(&adminv1.ReplayVerifyRequest{}))
		vcancel()
		if err != nil {
			return fmt.Errorf("chaos: %s: ReplayVerify: %w", n.ID, err)
		}
		v := resp.Msg
		if !v.GetOk() {
			divergence = append(divergence, Problem{Kind: ProblemDivergence, Detail: fmt.Sprintf("%s: audit failed: log ok=%v replay ok=%v (%s)", n.ID, v.GetLog().GetOk(), v.GetReplay().GetOk(), v.GetReplay().GetError())})
		}
		digests = append(digests, hex.EncodeToString(v.GetReplay().GetLiveDigest()))
	}
	for i := 1; i < len(digests); i++ {
		if digests[i] != digests[0] {
			divergence = append(divergence, Problem{Kind: ProblemDivergence, Detail: fmt.Sprintf("digest of %s %s, of %s %s", topo.Hub[0].ID, digests[0], topo.Hub[i].ID, digests[i])})
		}
	}
	res.NodesAgree = len(divergence) == 0
	if len(digests) > 0 {
		res.Digest = digests[0]
	}

	entries, err := logEntries(logs[0])
	if err != nil {
		return err
	}
	rep := Check(CheckInput{Log: entries, Submits: rec.Submits(), Commits: rec.Commits(), Received: rec.Received()})
	rep.Problems = append(rep.Problems, divergence...)
	rep.Problems = append(rep.Problems, states...)
	rep.Problems = append(rep.Problems, extra...)
	rep.Problems = append(rep.Problems, decryptCheck(clients, rec, res)...)
	res.Report = rep
	if !rep.OK() {
		if err := writeTrace(topo.Dir, logs[0], entries, rec); err != nil {
			return fmt.Errorf("chaos: writing the trace: %w", err)
		}
		logf("chaos: %d problems; the hub log, the submissions and the inboxes are in %s", len(rep.Problems), filepath.Join(topo.Dir, "trace-*.txt"))
	}
	return nil
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
		if n, _ := topo.Leader(ctx); n != nil {
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
	n, _ := topo.Leader(ctx)
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
			e.Kind, e.Message, e.Sender = KindProposal, b.Message, b.Sender
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
			case m.PrivateMessage != nil:
				e.Epoch = m.PrivateMessage.Epoch
			}
		}
		out = append(out, e)
	}
	return out, nil
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
	for _, id := range []string{"n1", "n2", "n3", BDomain, CDomain} {
		p := &Proc{LogPath: filepath.Join(dir, id+".log")}
		fmt.Fprintf(&b, "==== %s.log (tail)\n%s\n", id, p.LogTail(n))
	}
	return b.String()
}
