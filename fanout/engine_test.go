package fanout_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/fanout"
)

const (
	destA = "a.example"
	destB = "b.example"
)

// retryLog records Metrics.Retry calls.
type retryLog struct {
	mu                  sync.Mutex
	delays              []time.Duration
	statuses            []int
	delivered, messages int
	backlog             map[string]uint64
}

func (l *retryLog) metrics() fanout.Metrics {
	return fanout.MetricsFuncs{
		OnRetry: func(_ string, status int, _ error, d time.Duration) {
			l.mu.Lock()
			l.delays = append(l.delays, d)
			l.statuses = append(l.statuses, status)
			l.mu.Unlock()
		},
		OnDelivered: func(_ string, messages, _ int) {
			l.mu.Lock()
			l.delivered++
			l.messages += messages
			l.mu.Unlock()
		},
		OnBacklog: func(dest string, n uint64) {
			l.mu.Lock()
			if l.backlog == nil {
				l.backlog = map[string]uint64{}
			}
			l.backlog[dest] = n
			l.mu.Unlock()
		},
	}
}

func (l *retryLog) snapshot() ([]time.Duration, []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.delays), slices.Clone(l.statuses)
}

// TestDeliverKickAndScan: queued messages are delivered in order, batched
// per room; Kick wakes an idle engine at once, and the periodic scan finds
// work nobody kicked.
func TestDeliverKickAndScan(t *testing.T) {
	s, n := newMemStore(), newFakeNet()
	var rl retryLog
	cfg := testConfig(s, n, always)
	cfg.ScanInterval = time.Hour // only Kick (and the start-up scan) wake it
	cfg.Metrics = rl.metrics()
	e, err := fanout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids("m", 1, 3) {
		s.addMsg(t, "r1", id, destA)
	}
	s.addMsg(t, "r2", "m4", destA)
	runEngine(t, e)
	waitFor(t, 5*time.Second, "start-up scan delivery", func() bool { return s.cursor(destA).Acked == 4 })
	// One round: a body per room, sent together.
	reqs := n.requests()
	slices.SortFunc(reqs, func(a, b request) int { return strings.Compare(a.room, b.room) })
	if len(reqs) != 2 || reqs[0].room != "r1" || reqs[1].room != "r2" {
		t.Fatalf("requests %+v", reqs)
	}
	if got := decodeIDs(t, reqs[0].body); !slices.Equal(got, ids("m", 1, 3)) {
		t.Fatalf("r1 body %v", got)
	}
	if got := decodeIDs(t, reqs[1].body); !slices.Equal(got, []string{"m4"}) {
		t.Fatalf("r2 body %v", got)
	}

	// Idle now; a Kick delivers new messages without waiting for a scan.
	time.Sleep(20 * time.Millisecond)
	s.addMsg(t, "r2", "m5", destA)
	e.Kick(destA)
	waitFor(t, 2*time.Second, "kicked delivery", func() bool { return s.cursor(destA).Acked == 5 })
	if got := n.received(t, destA); !inRoomOrder(got, ids("m", 1, 5), roomsOf(map[string][]string{"r1": ids("m", 1, 3), "r2": {"m4", "m5"}})) {
		t.Fatalf("received %v", got)
	}
	// The cursor moves when the acknowledgement is applied, a moment
	// before the engine records its success.
	waitFor(t, 2*time.Second, "metrics", func() bool { rl.mu.Lock(); defer rl.mu.Unlock(); return rl.messages == 5 })
	rl.mu.Lock()
	if rl.messages != 5 || rl.delivered != 3 || rl.backlog[destA] != 0 {
		t.Fatalf("metrics: %d messages in %d bodies, backlog %d", rl.messages, rl.delivered, rl.backlog[destA])
	}
	rl.mu.Unlock()
	st, err := e.Status()
	if err != nil || len(st) != 1 || st[0].Acked != 5 || st[0].Enqueued != 5 || st[0].Backlog != 0 ||
		st[0].Delivered != 5 || st[0].TotalAttempts != 2 || st[0].LastStatus != 201 || st[0].LastError != "" || st[0].Attempts != 0 {
		t.Fatalf("status %+v %v", st, err)
	}
}

// TestRetryTransient: 500, 429 and timeouts are retried with exponential
// backoff with full jitter, bounded by the cap, re-sending the same body
// until it is accepted exactly once.
func TestRetryTransient(t *testing.T) {
	const failures = 8
	for _, tc := range []struct {
		name    string
		respond func(ctx context.Context) (fanout.SendResult, error, bool)
	}{
		{"500", func(context.Context) (fanout.SendResult, error, bool) {
			return fanout.SendResult{StatusCode: http.StatusInternalServerError}, nil, false
		}},
		{"429", func(context.Context) (fanout.SendResult, error, bool) {
			return fanout.SendResult{StatusCode: http.StatusTooManyRequests}, nil, false
		}},
		{"timeout", func(ctx context.Context) (fanout.SendResult, error, bool) {
			<-ctx.Done()
			return fanout.SendResult{}, ctx.Err(), false
		}},
		{"lost response", func(context.Context) (fanout.SendResult, error, bool) {
			// Processed by the follower, but the answer never arrives.
			return fanout.SendResult{}, errors.New("connection reset"), true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, n := newMemStore(), newFakeNet()
			var rl retryLog
			cfg := testConfig(s, n, always)
			cfg.SendTimeout = 15 * time.Millisecond
			cfg.Metrics = rl.metrics()
			cfg.Rand = rand.New(rand.NewPCG(42, 1))
			n.setRespond(func(ctx context.Context, call int, _ request) (fanout.SendResult, error, bool) {
				if call <= failures {
					return tc.respond(ctx)
				}
				return ok201()
			})
			for _, id := range ids("m", 1, 3) {
				s.addMsg(t, "r1", id, destA)
			}
			e, err := fanout.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			runEngine(t, e)
			waitFor(t, 5*time.Second, "delivery", func() bool { return s.cursor(destA).Acked == 3 })

			reqs := n.requests()
			delays, _ := rl.snapshot()
			if len(reqs) != failures+1 || len(delays) != failures {
				t.Fatalf("%d requests, %d retries; want %d, %d", len(reqs), len(delays), failures+1, failures)
			}
			for i, d := range delays {
				ceil := min(cfg.BackoffCap, cfg.BackoffBase<<i)
				if d < 0 || d >= ceil {
					t.Fatalf("retry %d: delay %v outside [0, %v)", i+1, d, ceil)
				}
				if gap := reqs[i+1].at.Sub(reqs[i].at); gap < d {
					t.Fatalf("retry %d came %v after the previous attempt, before its delay %v", i+1, gap, d)
				}
				if !bytes.Equal(reqs[i+1].body, reqs[0].body) {
					t.Fatalf("retry %d sent a different body", i+1)
				}
			}
			if got := n.received(t, destA); !slices.Equal(got, ids("m", 1, 3)) {
				t.Fatalf("follower processed %v", got)
			}
		})
	}
}

// TestRetryAfterIsAMinimum: a Retry-After (seconds or HTTP-date) raises the
// delay above the backoff, up to MaxRetryAfter.
func TestRetryAfterIsAMinimum(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, header string
		maxRA        time.Duration
		min, max     time.Duration
	}{
		{"seconds", "2", 0, 2 * time.Second, 2 * time.Second},
		{"date", now.Add(90 * time.Second).Format(http.TimeFormat), 0, 90 * time.Second, 90 * time.Second},
		{"clipped", "3600", time.Minute, time.Minute, time.Minute},
		{"past date is no minimum", now.Add(-time.Hour).Format(http.TimeFormat), 0, 0, 20 * time.Millisecond},
		{"garbage is ignored", "later", 0, 0, 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, n := newMemStore(), newFakeNet()
			var rl retryLog
			cfg := testConfig(s, n, always)
			cfg.Now = func() time.Time { return now }
			cfg.MaxRetryAfter = tc.maxRA
			cfg.Metrics = rl.metrics()
			n.setRespond(func(context.Context, int, request) (fanout.SendResult, error, bool) {
				return fanout.SendResult{StatusCode: http.StatusServiceUnavailable, RetryAfter: tc.header}, nil, false
			})
			s.addMsg(t, "r1", "m1", destA)
			e, err := fanout.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			stop := runEngine(t, e)
			waitFor(t, 5*time.Second, "a retry", func() bool { d, _ := rl.snapshot(); return len(d) > 0 })
			d, st := rl.snapshot()
			if d[0] < tc.min || d[0] > tc.max || st[0] != http.StatusServiceUnavailable {
				t.Fatalf("delay %v (status %d), want in [%v, %v]", d[0], st[0], tc.min, tc.max)
			}
			if tc.min > time.Second {
				status, _ := e.Status()
				if got := status[0].NextRetry.Sub(now); got != d[0] || status[0].LastStatus != 503 || status[0].Attempts != 1 ||
					!strings.Contains(status[0].LastError, "503") || !status[0].Active || status[0].InFlightFirst != 1 || status[0].InFlightLast != 1 {
					t.Fatalf("status %+v", status[0])
				}
			}
			stop()
			if len(n.requests()) > 1 && tc.min > time.Second {
				t.Fatal("retried before Retry-After allowed")
			}
		})
	}
}

// errorLogs returns a logger counting error-level records.
func errorLogs() (*slog.Logger, func() int) {
	var mu sync.Mutex
	var n int
	h := countingHandler{Handler: slog.DiscardHandler, mu: &mu, errors: &n}
	return slog.New(h), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestRefusalsRetriedAtCap: 4xx other than 408/425/429 (and odd 2xx/3xx)
// are not success and are not dropped: they are retried at the backoff
// cap and logged at error level.
func TestRefusalsRetriedAtCap(t *testing.T) {
	for _, status := range []int{400, 403, 404, 413, 200, 202, 302} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			s, n := newMemStore(), newFakeNet()
			var rl retryLog
			logger, errorsLogged := errorLogs()
			cfg := testConfig(s, n, always)
			cfg.Metrics = rl.metrics()
			cfg.Logger = logger
			n.setRespond(func(_ context.Context, call int, _ request) (fanout.SendResult, error, bool) {
				if call <= 3 {
					return fanout.SendResult{StatusCode: status}, nil, false
				}
				return ok201()
			})
			s.addMsg(t, "r1", "m1", destA)
			s.addMsg(t, "r1", "m2", destA)
			e, err := fanout.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			runEngine(t, e)
			waitFor(t, 5*time.Second, "delivery", func() bool { return s.cursor(destA).Acked == 2 })
			delays, statuses := rl.snapshot()
			if len(delays) != 3 {
				t.Fatalf("%d retries", len(delays))
			}
			for i, d := range delays {
				if d < cfg.BackoffCap/2 || d >= cfg.BackoffCap || statuses[i] != status {
					t.Fatalf("retry %d: delay %v status %d, want [%v, %v) and %d", i, d, statuses[i], cfg.BackoffCap/2, cfg.BackoffCap, status)
				}
			}
			if errorsLogged() < 3 {
				t.Fatalf("%d error logs for 3 refusals", errorsLogged())
			}
			if got := n.received(t, destA); !slices.Equal(got, []string{"m1", "m2"}) {
				t.Fatalf("received %v", got)
			}
		})
	}
}

// TestPinnedBatchDoesNotGrow: a failed batch is retried byte for byte even
// when more messages for the room were queued meanwhile.
func TestPinnedBatchDoesNotGrow(t *testing.T) {
	s, n := newMemStore(), newFakeNet()
	failed := make(chan struct{})
	release := make(chan struct{})
	n.setRespond(func(_ context.Context, call int, _ request) (fanout.SendResult, error, bool) {
		if call == 1 {
			close(failed)
			<-release
			// Processed, but the hub sees a failure.
			return fanout.SendResult{StatusCode: http.StatusBadGateway}, nil, true
		}
		return ok201()
	})
	s.addMsg(t, "r1", "m1", destA)
	s.addMsg(t, "r1", "m2", destA)
	e, err := fanout.New(testConfig(s, n, always))
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	<-failed
	for _, id := range ids("m", 3, 5) {
		s.addMsg(t, "r1", id, destA)
	}
	e.Kick(destA)
	close(release)
	waitFor(t, 5*time.Second, "delivery", func() bool { return s.cursor(destA).Acked == 5 })
	reqs := n.requests()
	if len(reqs) != 3 || !bytes.Equal(reqs[0].body, reqs[1].body) {
		t.Fatalf("%d requests; retry identical: %v", len(reqs), len(reqs) > 1 && bytes.Equal(reqs[0].body, reqs[1].body))
	}
	if got := decodeIDs(t, reqs[2].body); !slices.Equal(got, ids("m", 3, 5)) {
		t.Fatalf("third body %v", got)
	}
	if got := n.received(t, destA); !slices.Equal(got, ids("m", 1, 5)) {
		t.Fatalf("received %v", got)
	}
}

// TestAckFailureRetriesTheAck: when the acknowledgement fails after a
// 201, the round's bodies are not sent again (they were delivered); the
// acknowledgement is retried until it goes through, and nothing is
// skipped or processed twice.
func TestAckFailureRetriesTheAck(t *testing.T) {
	s, n := newMemStore(), newFakeNet()
	var fails atomic.Int32
	s.setAckHook(func(context.Context, string, uint64) error {
		if fails.Add(1) <= 2 {
			return errors.New("raft: leadership lost")
		}
		return nil
	})
	for _, id := range ids("m", 1, 4) {
		s.addMsg(t, "r1", id, destA)
	}
	e, err := fanout.New(testConfig(s, n, always))
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	waitFor(t, 5*time.Second, "delivery", func() bool { return s.cursor(destA).Acked == 4 })
	// The body was answered 201: only the acknowledgement is tried again.
	if reqs := n.requests(); len(reqs) != 1 || fails.Load() != 3 {
		t.Fatalf("%d requests and %d acknowledgements, want 1 and 3", len(reqs), fails.Load())
	}
	if got := n.received(t, destA); !slices.Equal(got, ids("m", 1, 4)) {
		t.Fatalf("received %v", got)
	}
}

// TestPermanentPayloadIsNotSkipped: a delivery whose payload cannot be
// encoded blocks its destination (retried at the cap, never skipped) until
// it is fixed; later deliveries wait.
func TestPermanentPayloadIsNotSkipped(t *testing.T) {
	s, n := newMemStore(), newFakeNet()
	logger, errorsLogged := errorLogs()
	cfg := testConfig(s, n, always)
	cfg.Logger = logger
	s.addMsg(t, "r1", "m1", destA)
	bad := s.add("r2", 5, eventlog.PartMessage, fanout.Payload{Message: []byte("not an MLSMessage")}, destA)
	s.addMsg(t, "r2", "m3", destA)
	e, err := fanout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	waitFor(t, 5*time.Second, "first delivery and repeated failures", func() bool { return s.cursor(destA).Acked == 1 && errorsLogged() >= 3 })
	st, _ := e.Status()
	if st[0].Acked != 1 || st[0].Attempts < 3 || !strings.Contains(st[0].LastError, "permanent") {
		t.Fatalf("status %+v", st[0])
	}
	if len(n.requests()) != 1 {
		t.Fatalf("sent %d requests past a broken delivery", len(n.requests()))
	}
	s.mu.Lock()
	s.payloads[payloadKey(bad, eventlog.PartMessage)] = fanout.Payload{Message: privMsg(t, "m2")}
	s.mu.Unlock()
	waitFor(t, 5*time.Second, "delivery after repair", func() bool { return s.cursor(destA).Acked == 3 })
	if got := n.received(t, destA); !slices.Equal(got, ids("m", 1, 3)) {
		t.Fatalf("received %v", got)
	}
}

// TestOrderingTwoDestinations: many messages over interleaved rooms reach
// two destinations in order and exactly once, while each destination fails
// on its own (500, 429, timeouts, lost answers) and one is down for a
// while without holding up the other.
func TestOrderingTwoDestinations(t *testing.T) {
	const perDest = 300
	s, n := newMemStore(), newFakeNet()
	cfg := testConfig(s, n, always)
	cfg.BackoffBase, cfg.BackoffCap = time.Millisecond, 4*time.Millisecond
	cfg.SendTimeout = 10 * time.Millisecond
	cfg.Limits = fanout.Limits{MaxMessages: 8}
	cfg.Rand = rand.New(rand.NewPCG(9, 9))

	var aDown atomic.Bool
	aDown.Store(true)
	var rmu sync.Mutex
	chaos := rand.New(rand.NewPCG(1, 1))
	n.setRespond(func(ctx context.Context, _ int, r request) (fanout.SendResult, error, bool) {
		if r.dest == destA && aDown.Load() {
			return fanout.SendResult{StatusCode: http.StatusServiceUnavailable}, nil, false
		}
		rmu.Lock()
		x := chaos.IntN(10)
		rmu.Unlock()
		switch x {
		case 0:
			return fanout.SendResult{StatusCode: 500}, nil, false
		case 1:
			return fanout.SendResult{StatusCode: 429}, nil, false
		case 2:
			<-ctx.Done()
			return fanout.SendResult{}, ctx.Err(), false
		case 3:
			return fanout.SendResult{}, errors.New("answer lost"), true
		}
		return ok201()
	})
	e, err := fanout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)

	// Queue while running, kicking as a provider would. Rooms are chosen
	// at random so batches break at every room change.
	var want []string
	room := map[string]string{}
	pick := rand.New(rand.NewPCG(5, 5))
	for i := 1; i <= perDest; i++ {
		id := fmt.Sprintf("m%d", i)
		want = append(want, id)
		room[id] = fmt.Sprintf("r%d", pick.IntN(3))
		s.addMsg(t, room[id], id, destA, destB)
		if i%25 == 0 {
			e.Kick(destA)
			e.Kick(destB)
		}
	}
	e.Kick(destB)
	waitFor(t, 10*time.Second, "b.example drained", func() bool { return s.cursor(destB).Acked == perDest })
	if c := s.cursor(destA); c.Acked != 0 {
		t.Fatalf("a.example acked %d while down", c.Acked)
	}
	aDown.Store(false)
	waitFor(t, 10*time.Second, "a.example drained", func() bool { return s.cursor(destA).Acked == perDest })
	for _, d := range []string{destA, destB} {
		if got := n.received(t, d); !inRoomOrder(got, want, room) {
			t.Fatalf("%s processed %d messages, want %d, once each and in order within each room", d, len(got), len(want))
		}
	}
	// Each destination failed often and independently.
	perDestReqs := map[string]int{}
	for _, r := range n.requests() {
		perDestReqs[r.dest]++
	}
	for _, d := range []string{destA, destB} {
		n.mu.Lock()
		bodies := len(n.accepted[d])
		n.mu.Unlock()
		if perDestReqs[d] < bodies+20 {
			t.Fatalf("%s: %d requests for %d bodies: the chaos did not happen", d, perDestReqs[d], bodies)
		}
		t.Logf("%s: %d requests for %d bodies", d, perDestReqs[d], bodies)
	}
}

// roomsOf inverts room -> message IDs.
func roomsOf(byRoom map[string][]string) map[string]string {
	out := map[string]string{}
	for r, ids := range byRoom {
		for _, id := range ids {
			out[id] = r
		}
	}
	return out
}

// inRoomOrder reports whether got holds exactly the messages of want,
// each once, and within each room (room: message ID -> room) in want's
// order: /notify bodies of different rooms go out together, so only the
// order within a room is kept (draft-ralston-mimi-protocol-02,
// Section 5.5).
func inRoomOrder(got, want []string, room map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	per := func(ids []string) map[string][]string {
		m := map[string][]string{}
		for _, id := range ids {
			m[room[id]] = append(m[room[id]], id)
		}
		return m
	}
	g, w := per(got), per(want)
	if len(g) != len(w) {
		return false
	}
	for r, ids := range w {
		if !slices.Equal(g[r], ids) {
			return false
		}
	}
	return true
}

// TestLeaderOnly: nothing is sent while IsLeader is false; when it turns
// true delivery resumes from the acknowledged cursor; losing leadership
// mid-way stops sending, and regaining it resumes without skipping.
func TestLeaderOnly(t *testing.T) {
	s, n := newMemStore(), newFakeNet()
	var leader atomic.Bool
	cfg := testConfig(s, n, leader.Load)
	cfg.Limits = fanout.Limits{MaxMessages: 1}
	for _, id := range ids("m", 1, 40) {
		s.addMsg(t, "r1", id, destA)
	}
	// Positions 1..3 were acknowledged under an earlier leader.
	if err := s.Ack(context.Background(), destA, 3); err != nil {
		t.Fatal(err)
	}
	slow := make(chan struct{}, 1000)
	n.setRespond(func(context.Context, int, request) (fanout.SendResult, error, bool) {
		<-slow
		return ok201()
	})
	e, err := fanout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	e.Kick(destA)
	e.KickAll()
	time.Sleep(100 * time.Millisecond) // five scan intervals
	if len(n.requests()) != 0 {
		t.Fatal("sent while not the leader")
	}
	if st, _ := e.Status(); st[0].Active || st[0].Acked != 3 || st[0].Backlog != 37 {
		t.Fatalf("status while follower: %+v", st[0])
	}

	leader.Store(true)
	for range 10 {
		slow <- struct{}{}
	}
	waitFor(t, 5*time.Second, "ten deliveries", func() bool { return s.cursor(destA).Acked == 13 })
	if got := decodeIDs(t, n.requests()[0].body); !slices.Equal(got, []string{"m4"}) {
		t.Fatalf("first body after becoming leader: %v", got)
	}
	waitFor(t, 5*time.Second, "the next request", func() bool { return len(n.requests()) == 11 })

	// Leadership lost with a request in flight: it is answered, but no
	// further request goes out.
	leader.Store(false)
	slow <- struct{}{}
	waitFor(t, 5*time.Second, "workers to stop", func() bool { st, _ := e.Status(); return !st[0].Active })
	for range 100 {
		slow <- struct{}{}
	}
	time.Sleep(60 * time.Millisecond)
	sent := len(n.requests())
	if sent != 11 {
		t.Fatalf("%d requests after losing leadership, want 11", sent)
	}
	acked := s.cursor(destA).Acked

	leader.Store(true)
	e.KickAll()
	waitFor(t, 5*time.Second, "all delivered", func() bool { return s.cursor(destA).Acked == 40 })
	reqs := n.requests()
	first := decodeIDs(t, reqs[sent].body)
	if want := fmt.Sprintf("m%d", acked+1); first[0] != want {
		t.Fatalf("resumed with %v, want %s (acked %d)", first, want, acked)
	}
	if got := n.received(t, destA); !slices.Equal(got, ids("m", 4, 40)) {
		t.Fatalf("received %v", got)
	}
}

// TestCrashRestart: an engine stopped between a 201 and its
// acknowledgement is replaced by a new engine on the same store, which
// re-sends only the unacknowledged deliveries, starting with the
// byte-identical body the follower already processed.
func TestCrashRestart(t *testing.T) {
	s, n := newMemStore(), newFakeNet()
	cfg := testConfig(s, n, always)
	cfg.Limits = fanout.Limits{MaxMessages: 2}
	for _, id := range ids("m", 1, 10) {
		s.addMsg(t, "r1", id, destA)
	}
	stuck := make(chan struct{})
	s.setAckHook(func(ctx context.Context, _ string, upTo uint64) error {
		if upTo == 6 {
			// The process dies before this acknowledgement.
			close(stuck)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	e1, err := fanout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	crash := runEngine(t, e1)
	<-stuck
	crash()
	if c := s.cursor(destA); c.Acked != 4 {
		t.Fatalf("cursor at crash %d, want 4", c.Acked)
	}
	sentBefore := len(n.requests())
	lastBody := n.requests()[sentBefore-1].body
	s.setAckHook(nil)
	// More traffic arrives while the hub restarts.
	for _, id := range ids("m", 11, 12) {
		s.addMsg(t, "r1", id, destA)
	}

	e2, err := fanout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e2)
	waitFor(t, 5*time.Second, "delivery after restart", func() bool { return s.cursor(destA).Acked == 12 })
	after := n.requests()[sentBefore:]
	if !bytes.Equal(after[0].body, lastBody) {
		t.Fatalf("first body after restart %v, want the unacknowledged %v", decodeIDs(t, after[0].body), decodeIDs(t, lastBody))
	}
	var resent []string
	for _, r := range after {
		resent = append(resent, decodeIDs(t, r.body)...)
	}
	if !slices.Equal(resent, ids("m", 5, 12)) {
		t.Fatalf("after restart sent %v, want m5..m12", resent)
	}
	if got := n.received(t, destA); !slices.Equal(got, ids("m", 1, 12)) {
		t.Fatalf("follower processed %v", got)
	}
}

// TestConcurrencyBound: at most MaxConcurrent destinations are in flight.
func TestConcurrencyBound(t *testing.T) {
	s, n := newMemStore(), newFakeNet()
	cfg := testConfig(s, n, always)
	cfg.MaxConcurrent = 2
	cfg.Limits = fanout.Limits{MaxMessages: 1}
	n.setRespond(func(context.Context, int, request) (fanout.SendResult, error, bool) {
		time.Sleep(3 * time.Millisecond)
		return ok201()
	})
	var dests []string
	for i := range 6 {
		d := fmt.Sprintf("d%d.example", i)
		dests = append(dests, d)
		for _, id := range ids("m", 1, 4) {
			s.addMsg(t, "r1", id, d)
		}
	}
	e, err := fanout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	waitFor(t, 5*time.Second, "all destinations", func() bool {
		for _, d := range dests {
			if s.cursor(d).Acked != 4 {
				return false
			}
		}
		return true
	})
	n.mu.Lock()
	peak := n.maxInflight
	n.mu.Unlock()
	if peak != 2 {
		t.Fatalf("peak of %d concurrent sends, want 2", peak)
	}
}

func TestNewAndRunErrors(t *testing.T) {
	s, n := newMemStore(), newFakeNet()
	good := testConfig(s, n, always)
	for _, tc := range []struct {
		name string
		mod  func(*fanout.Config)
	}{
		{"no store", func(c *fanout.Config) { c.Store = nil }},
		{"no acker", func(c *fanout.Config) { c.Acker = nil }},
		{"no sender", func(c *fanout.Config) { c.Sender = nil }},
		{"no leader func", func(c *fanout.Config) { c.IsLeader = nil }},
		{"negative base", func(c *fanout.Config) { c.BackoffBase = -1 }},
		{"negative timeout", func(c *fanout.Config) { c.SendTimeout = -1 }},
		{"negative concurrency", func(c *fanout.Config) { c.MaxConcurrent = -1 }},
		{"cap below base", func(c *fanout.Config) { c.BackoffBase, c.BackoffCap = time.Second, time.Millisecond }},
	} {
		c := good
		tc.mod(&c)
		if _, err := fanout.New(c); !errors.Is(err, fanout.ErrConfig) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	e, err := fanout.New(good)
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	time.Sleep(10 * time.Millisecond)
	if err := e.Run(context.Background()); !errors.Is(err, fanout.ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
}

// TestPoke: after a delivery got no HTTP answer at all (the follower was
// down), Poke (the follower has just reached us) retries it at once
// instead of at the end of the backoff, once per failure; a wait the
// follower asked for with Retry-After is kept.
func TestPoke(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    func() (fanout.SendResult, error, bool)
		retries bool
	}{
		{"no answer", func() (fanout.SendResult, error, bool) {
			return fanout.SendResult{}, errors.New("connection refused"), false
		}, true},
		{"503 with Retry-After", func() (fanout.SendResult, error, bool) {
			return fanout.SendResult{StatusCode: http.StatusServiceUnavailable, RetryAfter: "3600"}, nil, false
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, n := newMemStore(), newFakeNet()
			cfg := testConfig(s, n, always)
			cfg.BackoffBase, cfg.BackoffCap, cfg.MaxRetryAfter = time.Hour, time.Hour, 2*time.Hour
			n.setRespond(func(_ context.Context, call int, _ request) (fanout.SendResult, error, bool) {
				if call == 1 {
					return tc.fail()
				}
				return ok201()
			})
			s.addMsg(t, "r1", "m1", destA)
			e, err := fanout.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			runEngine(t, e)
			waitFor(t, 5*time.Second, "the first attempt", func() bool {
				st, _ := e.Status()
				return len(st) == 1 && st[0].Attempts == 1
			})
			e.Poke("other.example") // unknown destinations are ignored
			e.Poke(destA)
			if !tc.retries {
				time.Sleep(100 * time.Millisecond)
				if got := len(n.requests()); got != 1 {
					t.Fatalf("%d requests after the poke; the Retry-After wait must be kept", got)
				}
				return
			}
			waitFor(t, 5*time.Second, "the poked retry", func() bool { return s.cursor(destA).Acked == 1 })
			e.Poke(destA) // nothing failed since: no effect
			time.Sleep(50 * time.Millisecond)
			if got := len(n.requests()); got != 2 {
				t.Fatalf("%d requests, want 2", got)
			}
		})
	}
}

// TestRoundsSpanRooms: messages of interleaved rooms go out as one round,
// a body per room sent at the same time, instead of one short run of a
// room per request (draft-ralston-mimi-protocol-02, Section 5.5: a body
// holds one room's messages); each room's messages stay in order.
func TestRoundsSpanRooms(t *testing.T) {
	const rooms, perRoom = 4, 10
	s, n := newMemStore(), newFakeNet()
	cfg := testConfig(s, n, always)
	cfg.ScanInterval = time.Hour
	var want []string
	room := map[string]string{}
	for i := range rooms * perRoom {
		id := fmt.Sprintf("m%d", i+1)
		room[id] = fmt.Sprintf("r%d", i%rooms)
		want = append(want, id)
		s.addMsg(t, room[id], id, destA)
	}
	// Every body waits until all four are in flight.
	var arrived sync.WaitGroup
	arrived.Add(rooms)
	n.setRespond(func(ctx context.Context, _ int, _ request) (fanout.SendResult, error, bool) {
		arrived.Done()
		done := make(chan struct{})
		go func() { arrived.Wait(); close(done) }()
		select {
		case <-done:
			return ok201()
		case <-ctx.Done():
			return fanout.SendResult{}, ctx.Err(), false
		}
	})
	e, err := fanout.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runEngine(t, e)
	waitFor(t, 5*time.Second, "delivery", func() bool { return s.cursor(destA).Acked == rooms*perRoom })
	if reqs := n.requests(); len(reqs) != rooms {
		t.Fatalf("%d requests for %d rooms", len(reqs), rooms)
	}
	if got := n.received(t, destA); !inRoomOrder(got, want, room) {
		t.Fatalf("received %v", got)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.maxInflight != rooms {
		t.Fatalf("at most %d bodies in flight, want %d", n.maxInflight, rooms)
	}
}
