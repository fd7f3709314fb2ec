package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Engine defaults (draft-ralston-mimi-protocol-02, Section 5.5 leaves the
// retry schedule to the hub, "respecting any guidance provided by the
// server in HTTP header fields such as Retry-After").
const (
	DefaultMaxConcurrent = 16
	DefaultBackoffBase   = 250 * time.Millisecond
	DefaultBackoffCap    = 2 * time.Minute
	DefaultMaxRetryAfter = time.Hour
	DefaultScanInterval  = 5 * time.Second
	DefaultSendTimeout   = 30 * time.Second
	DefaultAckTimeout    = 15 * time.Second
)

// Config configures an Engine (draft-ralston-mimi-protocol-02, Section
// 5.5). Store, Acker, Sender and IsLeader are required; zero values of the
// other fields take the defaults.
type Config struct {
	Store  Store
	Acker  Acker
	Sender Sender
	// IsLeader reports whether this node is the Raft leader; the engine
	// sends only while it returns true. It is called often and must be
	// cheap (raftnode.Node.IsLeader).
	IsLeader func() bool

	// MaxConcurrent bounds the destinations building, sending or
	// acknowledging a batch at the same time.
	MaxConcurrent int
	// Limits bounds one /notify body.
	Limits Limits
	// BackoffBase and BackoffCap parameterise the exponential backoff
	// with full jitter; BackoffCap must not be below BackoffBase.
	BackoffBase time.Duration
	BackoffCap  time.Duration
	// MaxRetryAfter bounds the delay a follower can ask for with
	// Retry-After.
	MaxRetryAfter time.Duration
	// ScanInterval is the period of the scan that starts workers for
	// destinations with a backlog and checks leadership.
	ScanInterval time.Duration
	// SendTimeout bounds one POST; AckTimeout one acknowledgement.
	SendTimeout time.Duration
	AckTimeout  time.Duration

	// Rand draws backoff jitter (seed it in tests); default a randomly
	// seeded PCG. The engine serialises its use.
	Rand *rand.Rand
	// Now is the clock (for Retry-After dates and Status); default
	// time.Now.
	Now func() time.Time
	// Logger receives the engine's logs; default slog.Default().
	Logger *slog.Logger
	// Metrics receives measurements; default none.
	Metrics Metrics
}

// Engine delivers the hub's fanout queues to destination providers
// (draft-ralston-mimi-protocol-02, Section 5.5); see the package
// documentation. Kick, KickAll and Status are safe for concurrent use and
// may be called whether or not Run is running.
type Engine struct {
	cfg     Config
	bo      *backoff
	log     *slog.Logger
	metrics Metrics
	slots   chan struct{}
	wake    chan struct{} // Kick
	rescan  chan struct{} // KickAll, worker saw leadership loss
	running atomic.Bool

	mu      sync.Mutex
	dests   map[string]*destState
	kickSet map[string]struct{}
}

// destState is the engine's in-memory state of one destination (guarded
// by Engine.mu).
type destState struct {
	running, kicked bool
	attempts        int
	total           uint64
	delivered       uint64
	lastStatus      int
	lastErr         string
	lastAttempt     time.Time
	lastSuccess     time.Time
	nextRetry       time.Time
	// pinned is the round being attempted, its bodies re-sent byte for
	// byte until the round is acknowledged; sent[i] is set once
	// pinned.Batches[i] was answered 201.
	pinned *Round
	sent   []bool
	// pokeable: the last attempt got no HTTP answer at all, so Poke may
	// cut its backoff short, once; poke wakes the sleeping worker.
	pokeable bool
	poke     chan struct{}
}

type noMetrics struct{}

func (noMetrics) Delivered(string, int, int)              {}
func (noMetrics) Retry(string, int, error, time.Duration) {}
func (noMetrics) Backlog(string, uint64)                  {}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// New validates cfg and returns an Engine; call Run to start it.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Acker == nil || cfg.Sender == nil || cfg.IsLeader == nil {
		return nil, fmt.Errorf("%w: Store, Acker, Sender and IsLeader are required", ErrConfig)
	}
	for _, c := range []struct {
		name string
		d    time.Duration
	}{
		{"BackoffBase", cfg.BackoffBase}, {"BackoffCap", cfg.BackoffCap}, {"MaxRetryAfter", cfg.MaxRetryAfter},
		{"ScanInterval", cfg.ScanInterval}, {"SendTimeout", cfg.SendTimeout}, {"AckTimeout", cfg.AckTimeout},
	} {
		if c.d < 0 {
			return nil, fmt.Errorf("%w: negative %s", ErrConfig, c.name)
		}
	}
	if cfg.MaxConcurrent < 0 {
		return nil, fmt.Errorf("%w: negative MaxConcurrent", ErrConfig)
	}
	cfg.MaxConcurrent = orDefault(cfg.MaxConcurrent, DefaultMaxConcurrent)
	cfg.BackoffCap = orDefault(cfg.BackoffCap, DefaultBackoffCap)
	cfg.BackoffBase = orDefault(cfg.BackoffBase, min(DefaultBackoffBase, cfg.BackoffCap))
	cfg.MaxRetryAfter = orDefault(cfg.MaxRetryAfter, DefaultMaxRetryAfter)
	cfg.ScanInterval = orDefault(cfg.ScanInterval, DefaultScanInterval)
	cfg.SendTimeout = orDefault(cfg.SendTimeout, DefaultSendTimeout)
	cfg.AckTimeout = orDefault(cfg.AckTimeout, DefaultAckTimeout)
	if cfg.BackoffCap < cfg.BackoffBase {
		return nil, fmt.Errorf("%w: BackoffCap %v below BackoffBase %v", ErrConfig, cfg.BackoffCap, cfg.BackoffBase)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engine{
		cfg:     cfg,
		bo:      &backoff{base: cfg.BackoffBase, cap: cfg.BackoffCap, rnd: cfg.Rand},
		log:     cfg.Logger,
		metrics: cfg.Metrics,
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		wake:    make(chan struct{}, 1),
		rescan:  make(chan struct{}, 1),
		dests:   make(map[string]*destState),
		kickSet: make(map[string]struct{}),
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.metrics == nil {
		e.metrics = noMetrics{}
	}
	return e, nil
}

// Kick tells the engine that deliveries were queued for dest
// (draft-ralston-mimi-protocol-02, Section 5.5); the provider calls it
// after appending FanoutEnqueued events. It never blocks.
func (e *Engine) Kick(dest string) {
	if dest == "" {
		return
	}
	e.mu.Lock()
	st := e.state(dest)
	st.kicked = true
	if !st.running {
		e.kickSet[dest] = struct{}{}
	}
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Poke tells the engine that dest has just reached this provider (an
// authenticated request from it): if dest's last delivery got no HTTP
// answer at all (the peer was down or unreachable), the retry is made now
// instead of at the end of its backoff, once per failure. A wait the peer
// asked for (Retry-After) or a backoff after an HTTP error is kept
// (draft-ralston-mimi-protocol-02, Section 5.5).
func (e *Engine) Poke(dest string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.dests[dest]
	if st == nil || !st.pokeable {
		return
	}
	st.pokeable = false
	select {
	case st.poke <- struct{}{}:
	default:
	}
	e.log.Info("fanout: peer reached us; retrying the delivery now", "dest", dest)
}

// KickAll makes Run check leadership and scan every destination now (for
// example on a leadership change). It never blocks.
func (e *Engine) KickAll() {
	select {
	case e.rescan <- struct{}{}:
	default:
	}
}

// state returns dest's state, creating it. The caller holds e.mu.
func (e *Engine) state(dest string) *destState {
	st := e.dests[dest]
	if st == nil {
		st = &destState{poke: make(chan struct{}, 1)}
		e.dests[dest] = st
	}
	return st
}

// Run runs the engine until ctx ends, then stops every worker and returns
// nil. While Config.IsLeader reports true it runs workers for the
// destinations with a backlog (found by Kick and by a scan every
// Config.ScanInterval); when it turns false the workers are stopped.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer e.running.Store(false)
	ticker := time.NewTicker(e.cfg.ScanInterval)
	defer ticker.Stop()

	var (
		term context.Context
		stop context.CancelFunc
		wg   sync.WaitGroup
	)
	startTerm := func() {
		t, c := context.WithCancel(ctx)
		term, stop = t, c
	}
	endTerm := func() {
		if stop != nil {
			stop()
			wg.Wait()
			term, stop = nil, nil
		}
	}
	defer endTerm()

	scan := true
	for {
		if ctx.Err() != nil {
			return nil
		}
		switch leader := e.cfg.IsLeader(); {
		case leader && term == nil:
			e.log.Info("fanout: leader, starting delivery")
			startTerm()
			e.scan(term, &wg)
		case leader && scan:
			e.scan(term, &wg)
		case leader:
			e.startKicked(term, &wg)
		case term != nil:
			e.log.Info("fanout: not the leader, stopping delivery")
			endTerm()
			e.dropKicked()
		default:
			e.dropKicked()
		}
		scan = false
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			scan = true
		case <-e.rescan:
			scan = true
		case <-e.wake:
		}
	}
}

func (e *Engine) dropKicked() {
	e.mu.Lock()
	clear(e.kickSet)
	e.mu.Unlock()
}

// startKicked starts workers for the destinations kicked since the last
// call.
func (e *Engine) startKicked(term context.Context, wg *sync.WaitGroup) {
	e.mu.Lock()
	set := e.kickSet
	e.kickSet = make(map[string]struct{})
	e.mu.Unlock()
	for dest := range set {
		e.spawn(term, wg, dest)
	}
}

// scan starts workers for every destination with a backlog and reports
// backlogs.
func (e *Engine) scan(term context.Context, wg *sync.WaitGroup) {
	e.startKicked(term, wg)
	dests, err := e.cfg.Store.Destinations()
	if err != nil {
		e.log.Warn("fanout: listing destinations", "err", err)
		return
	}
	for _, d := range dests {
		backlog := d.Cursor.Pending()
		e.metrics.Backlog(d.Destination, backlog)
		if backlog > 0 {
			e.spawn(term, wg, d.Destination)
		}
	}
}

// spawn starts dest's worker unless it is running.
func (e *Engine) spawn(term context.Context, wg *sync.WaitGroup, dest string) {
	e.mu.Lock()
	st := e.state(dest)
	if st.running {
		e.mu.Unlock()
		return
	}
	st.running = true
	e.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.work(term, dest, st)
	}()
}

// work is dest's worker: it delivers batches until the queue is empty, the
// term ends or leadership is lost.
func (e *Engine) work(ctx context.Context, dest string, st *destState) {
	exit := func() {
		e.mu.Lock()
		st.running = false
		e.mu.Unlock()
	}
	for {
		e.mu.Lock()
		st.kicked, st.pokeable = false, false
		select {
		case <-st.poke: // a poke for an attempt that is over
		default:
		}
		e.mu.Unlock()
		if ctx.Err() != nil {
			exit()
			return
		}
		if !e.cfg.IsLeader() {
			exit()
			e.KickAll() // let Run notice and stop the others
			return
		}
		delay, idle := e.attempt(ctx, dest, st)
		if ctx.Err() != nil {
			exit()
			return
		}
		if idle {
			e.mu.Lock()
			if st.kicked {
				// Something was queued after we looked.
				e.mu.Unlock()
				continue
			}
			st.running = false
			e.mu.Unlock()
			return
		}
		if delay > 0 && !sleep(ctx, delay, st.poke) {
			exit()
			return
		}
	}
}

// sleep waits d, or until poke; it reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration, poke <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-poke:
		return true
	case <-ctx.Done():
		return false
	}
}

// attempt sends (or re-sends) dest's next round and acknowledges it. It
// returns idle when nothing is pending, else the delay before the next
// attempt (0 after a success).
func (e *Engine) attempt(ctx context.Context, dest string, st *destState) (delay time.Duration, idle bool) {
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, false
	}
	defer func() { <-e.slots }()

	pend, err := e.cfg.Store.Pending(dest, e.cfg.Limits.messages())
	if err != nil {
		return e.failed(dest, st, nil, 0, "", fmt.Errorf("fanout: pending deliveries for %s: %w", dest, err)), false
	}
	if len(pend) == 0 {
		e.mu.Lock()
		st.pinned, st.sent, st.nextRetry = nil, nil, time.Time{}
		e.mu.Unlock()
		e.metrics.Backlog(dest, 0)
		return 0, true
	}
	e.mu.Lock()
	r := st.pinned
	e.mu.Unlock()
	if r == nil || r.First != pend[0].N {
		// A new round (a pinned one that no longer starts the queue was
		// acknowledged, by us or by another leader).
		if r, err = buildRound(e.cfg.Store, dest, pend, e.cfg.Limits); err != nil {
			return e.failed(dest, st, nil, 0, "", err), false
		}
		e.mu.Lock()
		st.pinned, st.sent = r, make([]bool, len(r.Batches))
		e.mu.Unlock()
	}
	if !e.cfg.IsLeader() {
		return 0, false
	}

	now := e.cfg.Now()
	e.mu.Lock()
	st.total++
	st.lastAttempt = now
	sent := slices.Clone(st.sent)
	e.mu.Unlock()
	results := e.send(ctx, dest, r, sent)
	if ctx.Err() != nil {
		return 0, false // stopping: not a failure of the destination
	}
	fi := -1 // the failure reported
	e.mu.Lock()
	for i, o := range results {
		switch {
		case sent[i]:
		case o.err == nil && o.res.StatusCode == http.StatusCreated:
			st.sent[i] = true
		case fi < 0 || (results[fi].res.RetryAfter == "" && o.res.RetryAfter != ""):
			// The first failure, or one that says when to come back.
			fi = i
		}
	}
	e.mu.Unlock()
	if fi >= 0 {
		b, fail := r.Batches[fi], results[fi]
		if fail.err != nil {
			return e.failed(dest, st, b, 0, "", fmt.Errorf("fanout: POST /notify to %s for %s: %w", dest, b.Room, fail.err)), false
		}
		serr := &StatusError{Destination: dest, Room: b.Room, StatusCode: fail.res.StatusCode, RetryAfter: fail.res.RetryAfter}
		return e.failed(dest, st, b, fail.res.StatusCode, fail.res.RetryAfter, serr), false
	}

	actx, cancel := context.WithTimeout(ctx, e.cfg.AckTimeout)
	err = e.cfg.Acker.Ack(actx, dest, r.Last)
	cancel()
	if ctx.Err() != nil {
		return 0, false
	}
	if err != nil {
		// The next attempt re-reads the cursor: if the acknowledgement
		// went through after all it moves on, else it acknowledges the
		// pinned round again (its bodies were all answered 201).
		return e.failed(dest, st, nil, http.StatusCreated, "", fmt.Errorf("fanout: acknowledge %s up to %d: %w", dest, r.Last, err)), false
	}
	size := 0
	for _, b := range r.Batches {
		size += len(b.Body)
		e.metrics.Delivered(dest, b.Count(), len(b.Body))
	}
	e.mu.Lock()
	st.attempts = 0
	st.pinned, st.sent = nil, nil
	st.lastStatus, st.lastErr = http.StatusCreated, ""
	st.lastSuccess, st.nextRetry = now, time.Time{}
	st.delivered += uint64(r.Count())
	e.mu.Unlock()
	if cur, err := e.cfg.Store.Cursor(dest); err == nil {
		e.metrics.Backlog(dest, cur.Pending())
	}
	e.log.Debug("fanout: delivered", "dest", dest, "rooms", len(r.Batches), "first", r.First, "last", r.Last, "bytes", size)
	return 0, false
}

// sendOutcome is the answer to one body of a round.
type sendOutcome struct {
	res SendResult
	err error
}

// send posts the bodies of r not yet answered 201 (sent), each to its
// room's /notify endpoint, at the same time, and returns every outcome
// (indexed like r.Batches; zero for the bodies skipped).
func (e *Engine) send(ctx context.Context, dest string, r *Round, sent []bool) []sendOutcome {
	out := make([]sendOutcome, len(r.Batches))
	var wg sync.WaitGroup
	for i, b := range r.Batches {
		if sent[i] {
			continue
		}
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, e.cfg.SendTimeout)
			out[i].res, out[i].err = e.cfg.Sender.Send(sctx, dest, b.Room, b.Body)
			cancel()
		})
	}
	wg.Wait()
	return out
}

// failed records a failed attempt and returns the delay before the next
// one.
func (e *Engine) failed(dest string, st *destState, b *Batch, status int, retryAfter string, err error) time.Duration {
	class := transient
	switch {
	case errors.Is(err, ErrPermanent):
		class = capped
	case status != 0 && status != http.StatusCreated:
		class = classifyStatus(status)
	}
	e.mu.Lock()
	st.attempts++
	n := st.attempts
	e.mu.Unlock()
	d := e.bo.delay(n, class)
	now := e.cfg.Now()
	if ra, ok := ParseRetryAfter(retryAfter, now, e.cfg.MaxRetryAfter); ok && ra > d {
		d = ra
	}
	e.mu.Lock()
	st.lastStatus, st.lastErr, st.nextRetry = status, err.Error(), now.Add(d)
	st.pokeable = status == 0 && class == transient
	e.mu.Unlock()
	e.metrics.Retry(dest, status, err, d)

	attrs := []any{"dest", dest, "status", status, "attempt", n, "retry_in", d, "err", err}
	if b != nil {
		attrs = append(attrs, "room", b.Room, "first", b.First, "last", b.Last)
	}
	if class == capped {
		// Never dropped: an accepted message must eventually reach the
		// group (draft-ralston-mimi-protocol-02, Section 5.5), so an
		// operator has to look at this.
		e.log.Error("fanout: delivery refused; retrying at the backoff cap, not skipping", attrs...)
	} else {
		e.log.Warn("fanout: delivery failed; retrying", attrs...)
	}
	return d
}

// Status reports every destination's delivery state, sorted by
// destination, for the admin API (draft-ralston-mimi-protocol-02, Section
// 5.5).
func (e *Engine) Status() ([]DestinationStatus, error) {
	dests, err := e.cfg.Store.Destinations()
	if err != nil {
		return nil, fmt.Errorf("fanout: status: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]DestinationStatus, 0, len(dests))
	seen := make(map[string]bool, len(dests))
	for _, d := range dests {
		seen[d.Destination] = true
		s := DestinationStatus{Destination: d.Destination, Acked: d.Cursor.Acked, Enqueued: d.Cursor.Enqueued, Backlog: d.Cursor.Pending()}
		e.fill(&s)
		out = append(out, s)
	}
	for dest := range e.dests {
		if !seen[dest] {
			s := DestinationStatus{Destination: dest}
			e.fill(&s)
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out, nil
}

// fill copies the in-memory state into s. The caller holds e.mu.
func (e *Engine) fill(s *DestinationStatus) {
	st := e.dests[s.Destination]
	if st == nil {
		return
	}
	s.Active = st.running
	s.Attempts = st.attempts
	s.TotalAttempts = st.total
	s.Delivered = st.delivered
	s.LastStatus, s.LastError = st.lastStatus, st.lastErr
	s.LastAttempt, s.LastSuccess, s.NextRetry = st.lastAttempt, st.lastSuccess, st.nextRetry
	if st.pinned != nil {
		s.InFlightFirst, s.InFlightLast = st.pinned.First, st.pinned.Last
	}
}
