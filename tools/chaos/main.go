// Command chaos runs the long version of the hub crash-fault scenario of
// package internal/chaos (issue #8): a.example as a three-node Raft
// cluster of real `mimid serve` processes behind a TCP proxy (TLS
// passthrough), b.example and c.example as single-node followers, SDK
// clients at all three providers submitting application messages
// continuously (draft-ralston-mimi-protocol-02, Section 5.4) while random
// hub nodes, leader or not, are SIGKILLed at random times and restarted.
// At the end every client syncs and the checker compares every client's
// received sequence with the hub's log (Section 5.5: exactly once, in
// room order), and the three hub nodes' logs and digests with each other.
//
// With -clustered-follower, b.example runs as a three-node cluster behind
// proxies too (nodes b1, b2 and b3), and the follower kills (-follower-share)
// also hit its nodes, its leader with -leader-share, so that its leader
// dies in the middle of a /notify (Section 5.5: a follower answers a
// duplicate request with 201 and processes only the first); its three
// nodes' logs and digests must agree as well.
//
// Usage (from the repository root):
//
//	go run ./tools/chaos -duration 10m [-kills N] [-seed N] [-dir DIR] [-rooms 2]
//	    [-senders 1] [-receivers 1] [-pause 30ms] [-up 1s-4s] [-down 200ms-2s]
//	    [-leader-share 0.4] [-follower-share 0.25] [-quorum-loss-share 0] [-membership-every 2s]
//	    [-membership-ops add,remove,leave,join,race]
//	    [-freeze-share 0] [-freeze 1s-8s] [-partition-share 0] [-partition 2s-8s]
//	    [-client-link-share 0] [-client-link 2s-8s] [-race-committers 2]
//	    [-clustered-follower] [-log-level info] [-json]
//
// With -membership-every D > 0, every room also has an admin client that
// every D on average makes one of the -membership-ops (default all):
// add the client of a new user at a random provider, remove a user it
// added (Sections 3.2, 3.3, 3.5 and 5.3), have such a user leave
// (proposals the next commit completes, Section 3.5), have a new client of
// such a user join by external commit (Sections 3.6 and 5.6), or have two
// other admins commit at the same moment (one gets wrongEpoch and commits
// again, Section 5.3), through the kills; the checker then also requires
// each client to receive exactly the room events of its membership, and at
// the end every member's MLS epoch, participant list and members to agree
// with the hub's room state.
//
// With -freeze-share P, a turn of the chaos loop freezes a node (SIGSTOP,
// SIGCONT after -freeze) with probability P instead of killing one: its
// connections stay open but it answers nothing, so a frozen leader must
// be replaced and step down once resumed. With -partition-share P, a turn
// cuts the network between a.example and b.example or c.example, both
// directions or one, refused or black-holed, or loses the answers of the
// requests in flight between them (processed, never answered), or cuts a
// node of a.example (or, with -clustered-follower, of either cluster)
// from its Raft peers, for -partition, with probability P. With -client-link-share P, a turn
// that does neither cuts, with probability P, the link between the
// clients of one provider and its client API for -client-link: refused,
// black-holed, or losing every answer (the provider processes the
// request, the client never learns); every client then sends each
// request once, so the SDK's own resends with the same bytes are the
// only ones. -race-committers N makes N admins commit in the same epoch
// in a race instead of two.
//
// The run lasts at least -duration and at least -kills kills. It prints
// one progress line per kill and a FIGURES line, and exits 0 when no
// violation was found, 1 when one was (each is printed) or the harness
// failed, and 2 on a usage error. -dir keeps the data directories and the
// daemons' logs (otherwise a temporary directory is removed at the end);
// -seed reproduces the random choices (not the scheduling).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/openmimi/mimi/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// span parses "lo-hi" durations.
func span(s string) (lo, hi time.Duration, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	if lo, err = time.ParseDuration(a); err != nil {
		return 0, 0, err
	}
	if hi, err = time.ParseDuration(b); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("%s: upper bound below lower bound", s)
	}
	return lo, hi, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 10*time.Minute, "minimum time the load runs")
	kills := fs.Int("kills", 5, "minimum number of node kills")
	seed := fs.Uint64("seed", 0, "random seed (0: from the clock)")
	dir := fs.String("dir", "", "work directory to keep (data, logs); default a temporary directory, removed")
	rooms := fs.Int("rooms", 2, "rooms hosted by a.example")
	senders := fs.Int("senders", 1, "sending clients per provider")
	receivers := fs.Int("receivers", 1, "receive-only clients per provider")
	pause := fs.Duration("pause", 30*time.Millisecond, "maximum random pause of a sender between messages")
	up := fs.String("up", "1s-4s", "how long nodes run between kills (lo-hi)")
	down := fs.String("down", "200ms-2s", "how long a killed node stays down (lo-hi)")
	leaderShare := fs.Float64("leader-share", 0.4, "probability that a kill of a cluster's node targets its current leader (else a uniform draw)")
	followerShare := fs.Float64("follower-share", 0.25, "probability that a kill targets a follower provider's node (b.example or c.example) instead of a hub node; negative: hub nodes only")
	quorumLoss := fs.Float64("quorum-loss-share", 0, "probability that a hub node kill takes a second hub node down with it (the hub loses its quorum until both are back)")
	freezeShare := fs.Float64("freeze-share", 0, "probability that a turn freezes a node (SIGSTOP, then SIGCONT) instead of killing one")
	freeze := fs.String("freeze", "1s-8s", "how long a frozen node stays stopped (lo-hi)")
	partitionShare := fs.Float64("partition-share", 0, "probability that a turn cuts the network between a.example and b.example or c.example (both ways or one, refused or black-holed, or answers lost), or a node of a.example or of a clustered b.example from its Raft peers, instead of killing a node")
	partition := fs.String("partition", "2s-8s", "how long a partition lasts (lo-hi)")
	clientLinkShare := fs.Float64("client-link-share", 0, "probability that a turn that neither freezes nor partitions cuts the link between one provider's clients and its client API (refused, black-holed, or answers lost) instead of killing a node; > 0 routes every client through such a link, with no retries but the SDK's")
	clientLink := fs.String("client-link", "2s-8s", "how long a client link fault lasts (lo-hi)")
	raceCommitters := fs.Int("race-committers", 2, "admins whose commits race in the same epoch in a race membership change")
	clustered := fs.Bool("clustered-follower", false, "run b.example as a three-node Raft cluster behind proxies too")
	membershipEvery := fs.Duration("membership-every", 0, "mean pause between two membership changes of each room's admin (see -membership-ops); 0: none")
	membershipOps := fs.String("membership-ops", "all", "the membership changes drawn from, comma-separated: add (a new user), remove (an added user), leave (an added user leaves), join (a new client of an added user joins by external commit), race (-race-committers admins commit at once); or all")
	logLevel := fs.String("log-level", "info", "daemons' log level")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	unpinned := fs.Bool("unpinned-setup", false, "route the setup through any hub node, not the leader (reproduces the read-your-writes gap)")
	bin := fs.String("mimid", "", "mimid binary to use (default: go build ./cmd/mimid)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	upLo, upHi, err := span(*up)
	if err != nil {
		fmt.Fprintln(stderr, "chaos: -up:", err)
		return 2
	}
	downLo, downHi, err := span(*down)
	if err != nil {
		fmt.Fprintln(stderr, "chaos: -down:", err)
		return 2
	}
	freezeLo, freezeHi, err := span(*freeze)
	if err != nil {
		fmt.Fprintln(stderr, "chaos: -freeze:", err)
		return 2
	}
	partitionLo, partitionHi, err := span(*partition)
	if err != nil {
		fmt.Fprintln(stderr, "chaos: -partition:", err)
		return 2
	}
	clientLinkLo, clientLinkHi, err := span(*clientLink)
	if err != nil {
		fmt.Fprintln(stderr, "chaos: -client-link:", err)
		return 2
	}
	if *raceCommitters < 2 {
		fmt.Fprintln(stderr, "chaos: -race-committers: at least 2")
		return 2
	}
	ops, err := chaos.ParseMembershipOps(*membershipOps)
	if err != nil {
		fmt.Fprintln(stderr, "chaos: -membership-ops:", err)
		return 2
	}
	if *leaderShare == 0 {
		*leaderShare = -1 // Config's zero value means the default
	}
	work := *dir
	if work == "" {
		if work, err = os.MkdirTemp("", "mimi-chaos-"); err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 1
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o700); err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 1
	}
	cfg := chaos.Config{
		Dir: work, Bin: *bin, Seed: *seed, Duration: *duration, Kills: *kills,
		UpMin: upLo, UpMax: upHi, DownMin: downLo, DownMax: downHi, LeaderShare: *leaderShare, FollowerShare: *followerShare, QuorumLossShare: *quorumLoss,
		FreezeShare: *freezeShare, FreezeMin: freezeLo, FreezeMax: freezeHi,
		PartitionShare: *partitionShare, PartitionMin: partitionLo, PartitionMax: partitionHi,
		ClientLinkShare: *clientLinkShare, ClientLinkMin: clientLinkLo, ClientLinkMax: clientLinkHi, RaceCommitters: *raceCommitters,
		UnpinnedSetup: *unpinned, MembershipEvery: *membershipEvery, MembershipOps: ops,
		Rooms: *rooms, Senders: *senders, Receivers: *receivers, SendPause: *pause,
		Topology: chaos.TopologyConfig{LogLevel: *logLevel, ClusteredFollower: *clustered},
		Logf: func(format string, a ...any) {
			fmt.Fprintf(stdout, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
		},
	}
	res, err := chaos.Run(ctx, cfg)
	code := 0
	if err != nil {
		fmt.Fprintln(stderr, "run failed:", err)
		fmt.Fprintln(stderr, chaos.DumpLogs(work, 4000))
		code = 1
	}
	if res == nil {
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	}
	fmt.Fprintf(stdout, "FIGURES %s\n", res.Summary())
	if res.Report != nil {
		for _, p := range res.Report.Problems {
			fmt.Fprintln(stdout, "PROBLEM", p)
			code = 1
		}
	}
	if code == 0 {
		fmt.Fprintln(stdout, "chaos: PASS: no acknowledged message or commit lost or duplicated, every member received every room event of its membership once and in order, members agree with the hub's room state, every cluster's nodes agree")
	} else {
		fmt.Fprintln(stdout, "chaos: FAIL")
	}
	return code
}
