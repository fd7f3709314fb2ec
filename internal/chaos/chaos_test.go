package chaos

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// Environment of TestChaosHubKill.
const (
	// envSeed reproduces a run's random choices.
	envSeed = "MIMI_CHAOS_SEED"
	// envDuration and envKills lengthen the run (the long version is
	// tools/chaos; these are for a longer run under go test).
	envDuration = "MIMI_CHAOS_DURATION"
	envKills    = "MIMI_CHAOS_KILLS"
	// envUnpinned routes the setup through any hub node (Config.UnpinnedSetup).
	envUnpinned = "MIMI_CHAOS_UNPINNED_SETUP"
	// envMembership sets the membership actors' mean pause
	// (Config.MembershipEvery, a duration such as 1s; default
	// defaultMembershipEvery, 0 turns them off).
	envMembership = "MIMI_CHAOS_MEMBERSHIP"
	// envMembershipOps lists the membership actors' operations
	// (Config.MembershipOps: comma-separated, or all; default all).
	envMembershipOps = "MIMI_CHAOS_MEMBERSHIP_OPS"
	// envClustered set to "0" runs b.example as a single node instead of
	// a three-node cluster (TopologyConfig.ClusteredFollower).
	envClustered = "MIMI_CHAOS_CLUSTERED_FOLLOWER"
	// envQuorumLoss sets Config.QuorumLossShare (default
	// defaultQuorumLossShare; 0 turns quorum losses off).
	envQuorumLoss = "MIMI_CHAOS_QUORUM_LOSS"
	// envFreeze and envPartition set Config.FreezeShare and
	// Config.PartitionShare (defaults defaultFreezeShare and
	// defaultPartitionShare; 0 turns them off).
	envFreeze    = "MIMI_CHAOS_FREEZE"
	envPartition = "MIMI_CHAOS_PARTITION"
	// envClientLink sets Config.ClientLinkShare (default
	// defaultClientLinkShare; 0 turns the client links off), envRace
	// Config.RaceCommitters (default defaultRaceCommitters).
	envClientLink = "MIMI_CHAOS_CLIENT_LINK"
	envRace       = "MIMI_CHAOS_RACE_COMMITTERS"
	// envKeep keeps the work directory (logs, data) in this directory.
	envKeep = "MIMI_CHAOS_DIR"
)

// Defaults of the short test: the pause between two membership changes
// of a room, the share of hub kills that take a second hub node down, the
// shares of the chaos loop's turns that freeze a node, partition two
// providers or cut a provider's clients off (for 1-3 s) instead of
// killing a node, and the admins racing in a race.
const (
	defaultMembershipEvery = 2 * time.Second
	defaultQuorumLossShare = 0.2
	defaultFreezeShare     = 0.1
	defaultPartitionShare  = 0.1
	defaultClientLinkShare = 0.1
	defaultRaceCommitters  = 3
)

// TestChaosHubKill is the short version of the crash-fault scenario
// (issue #8, item 1): a.example as a three-node cluster of real mimid
// processes behind a TCP proxy, b.example and c.example as followers,
// senders at all three providers, and at least five SIGKILLs of random hub
// nodes (leader or not) at random times. Every acknowledged message must
// be in the hub log once and reach every other member once, in the hub's
// order; the three hub nodes must hold identical logs and digests. Each
// room's admin adds and removes users meanwhile, those users leave and
// get new clients that join by external commit, and three other admins
// commit at the same moment (membership actors, every operation at least
// once); at the end every member must agree with the hub's room state.
// b.example is a three-node cluster too, whose nodes are killed as well, and some
// hub kills take two hub nodes down at once (a loss of quorum). A small
// share of the turns freezes a node instead (SIGSTOP, then SIGCONT: a
// frozen leader must be replaced and step down) or cuts the network
// between the hub and a follower provider (both ways or one, refused or
// black-holed, or answers lost) or inside the hub's or b.example's
// cluster (a node cut from its Raft peers), or
// between a provider and its clients (refused, black-holed, or answers
// lost).
func TestChaosHubKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns five mimid processes")
	}
	cfg := Config{Logf: t.Logf}
	cfg.Seed = fromEnv(t, envSeed, 0, func(s string) (uint64, error) { return strconv.ParseUint(s, 10, 64) })
	cfg.Duration = fromEnv(t, envDuration, 20*time.Second, time.ParseDuration)
	cfg.Kills = fromEnv(t, envKills, 5, strconv.Atoi)
	cfg.MembershipEvery = fromEnv(t, envMembership, defaultMembershipEvery, time.ParseDuration)
	cfg.MembershipOps = fromEnv(t, envMembershipOps, MembershipOps(), ParseMembershipOps)
	cfg.QuorumLossShare = fromEnv(t, envQuorumLoss, defaultQuorumLossShare, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
	cfg.FreezeShare = fromEnv(t, envFreeze, defaultFreezeShare, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
	cfg.PartitionShare = fromEnv(t, envPartition, defaultPartitionShare, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
	cfg.ClientLinkShare = fromEnv(t, envClientLink, defaultClientLinkShare, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
	cfg.ClientLinkMin, cfg.ClientLinkMax = time.Second, 3*time.Second
	cfg.RaceCommitters = fromEnv(t, envRace, defaultRaceCommitters, strconv.Atoi)
	cfg.UnpinnedSetup = os.Getenv(envUnpinned) == "1"
	cfg.Topology.ClusteredFollower = os.Getenv(envClustered) != "0"
	cfg.Dir = t.TempDir()
	if d := os.Getenv(envKeep); d != "" {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg.Dir = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute+2*cfg.Duration)
	defer cancel()
	res, err := Run(ctx, cfg)
	if res != nil {
		t.Logf("set %s=%d to reproduce the timing", envSeed, res.Seed)
		for _, k := range res.Kills {
			t.Logf("kill %s of %s leader=%v at %s down %s rejoin %s", k.Node, k.Domain, k.WasLeader, k.At.Round(time.Millisecond), k.Down.Round(time.Millisecond), k.Rejoin.Round(time.Millisecond))
		}
		t.Logf("FIGURES %s", res.Summary())
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, DumpLogs(cfg.Dir, 3000))
	}
	if len(res.Kills) < cfg.Kills {
		t.Errorf("only %d kills, want at least %d", len(res.Kills), cfg.Kills)
	}
	if res.Acked == 0 || res.Report.DeliveriesChecked == 0 || res.StatesChecked == 0 {
		t.Errorf("nothing checked: %s", res.Summary())
	}
	made := map[MembershipOp]int{OpAdd: res.Adds, OpRemove: res.Removes, OpLeave: res.Leaves, OpJoin: res.DeviceJoins, OpRace: res.Races}
	for _, op := range cfg.MembershipOps {
		if cfg.MembershipEvery > 0 && made[op] == 0 {
			t.Errorf("no membership change of kind %s: %s", op, res.Summary())
		}
	}
	for _, p := range res.Report.Problems {
		t.Errorf("%s", p)
	}
	if !res.NodesAgree {
		t.Errorf("a cluster's nodes disagree")
	}
}

// fromEnv returns the environment variable name parsed with parse, or def
// if it is not set.
func fromEnv[T any](t *testing.T, name string, def T, parse func(string) (T, error)) T {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := parse(s)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}
