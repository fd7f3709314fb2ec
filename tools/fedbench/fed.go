package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"syscall"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// Phases of a run; the phase is carried in every payload.
const (
	phaseWarmup  byte = 1
	phaseMeasure byte = 2
)

// payloadMagic starts every benchmark payload.
var payloadMagic = []byte("fdbn")

const payloadHeader = 4 + 1 + 2 + 4

// makePayload builds the application data of message seq of sender in
// phase: a header naming them and a filler derived from them, size bytes
// in all (at least the header).
func makePayload(phase byte, sender, seq, size int) []byte {
	size = max(size, payloadHeader)
	b := make([]byte, size)
	copy(b, payloadMagic)
	b[4] = phase
	binary.BigEndian.PutUint16(b[5:], uint16(sender))
	binary.BigEndian.PutUint32(b[7:], uint32(seq))
	r := rand.New(rand.NewPCG(uint64(phase)<<48|uint64(sender)<<32|uint64(seq), 0x6d696d69))
	for i := payloadHeader; i < size; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// parsePayload returns the phase, sender and sequence number of a
// benchmark payload.
func parsePayload(b []byte) (phase byte, sender, seq int, ok bool) {
	if len(b) < payloadHeader || !bytes.Equal(b[:4], payloadMagic) {
		return 0, 0, 0, false
	}
	return b[4], int(binary.BigEndian.Uint16(b[5:])), int(binary.BigEndian.Uint32(b[7:])), true
}

// msgKey identifies a submitted MLSMessage by the SHA-256 of its encoding,
// which the hub stores and fans out unchanged.
type msgKey [32]byte

func keyOf(m *wire.MLSMessage) (msgKey, error) {
	b, err := codec.Marshal(m)
	if err != nil {
		return msgKey{}, err
	}
	return sha256.Sum256(b), nil
}

// msgRec is what the tracker knows about one submitted message.
type msgRec struct {
	submit   time.Time
	accepted time.Time
	ok       bool
	seen     []time.Time // first appearance per receiver
	count    []int       // appearances per receiver
}

// tracker follows the messages of one phase from submission to their
// appearance in every receiver's inbox.
type tracker struct {
	mu        sync.Mutex
	nrecv     int
	recs      map[msgKey]*msgRec
	accepted  int
	rejected  int
	unique    []int
	dups      []int
	unknown   []int
	sendDone  bool
	done      chan struct{}
	closed    bool
	hookError error
}

func newTracker(nrecv int) *tracker {
	return &tracker{
		nrecv: nrecv, recs: map[msgKey]*msgRec{},
		unique: make([]int, nrecv), dups: make([]int, nrecv), unknown: make([]int, nrecv),
		done: make(chan struct{}),
	}
}

// hook is the submitHook of the phase.
func (t *tracker) hook(m *wire.MLSMessage) func(bool) {
	k, err := keyOf(m)
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.hookError = err
		return func(bool) {}
	}
	r := &msgRec{submit: now, seen: make([]time.Time, t.nrecv), count: make([]int, t.nrecv)}
	t.recs[k] = r
	return func(ok bool) {
		now := time.Now()
		t.mu.Lock()
		defer t.mu.Unlock()
		r.accepted, r.ok = now, ok
		if ok {
			t.accepted++
		} else {
			t.rejected++
		}
	}
}

// seen records that receiver ri found the message with key k in its
// inbox at time at.
func (t *tracker) seen(ri int, k msgKey, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.recs[k]
	if r == nil {
		t.unknown[ri]++
		return
	}
	r.count[ri]++
	if r.count[ri] > 1 {
		t.dups[ri]++
		return
	}
	r.seen[ri] = at
	t.unique[ri]++
	t.checkLocked()
}

// sendersDone records that every sender returned.
func (t *tracker) sendersDone() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sendDone = true
	t.checkLocked()
}

func (t *tracker) checkLocked() {
	if t.closed || !t.sendDone {
		return
	}
	for _, u := range t.unique {
		if u < t.accepted {
			return
		}
	}
	t.closed = true
	close(t.done)
}

// ReceiverResult is what one receiving client's provider inbox got.
type ReceiverResult struct {
	Provider string `json:"provider"`
	// Role is "hub-local" (the hub queues the message for its own clients
	// in the accepting Raft command) or "follower" (delivered by /notify,
	// draft-ralston-mimi-protocol-02, Section 5.5).
	Role   string `json:"role"`
	Client string `json:"client"`
	// Delivered counts distinct benchmark messages; Duplicates extra
	// copies; Unknown entries that are no benchmark message; Missing
	// accepted messages that never appeared; InboxEntries all entries
	// queued for the client during the phase.
	Delivered    int `json:"delivered"`
	Duplicates   int `json:"duplicates"`
	Unknown      int `json:"unknown"`
	Missing      int `json:"missing"`
	InboxEntries int `json:"inbox_entries"`
	// Latency is from the submit call at the sender's provider to the
	// message's appearance in this inbox.
	Latency Latency `json:"latency"`
	// LastSeconds is when the last message appeared, from the start.
	LastSeconds float64 `json:"last_seconds"`
}

// VerifyResult is the receiving clients' own check: each synced its inbox
// and decrypted the messages (RFC 9420, Section 6.3).
type VerifyResult struct {
	Client     string `json:"client"`
	Decrypted  int    `json:"decrypted"`
	Duplicates int    `json:"duplicates"`
	Corrupt    int    `json:"corrupt"`
	Errors     int    `json:"errors"`
	Missing    int    `json:"missing"`
}

// FedResult is the federation half of the report.
type FedResult struct {
	SetupSeconds float64 `json:"setup_seconds"`
	Senders      int     `json:"senders"`
	Submitted    int     `json:"submitted"`
	Accepted     int     `json:"accepted"`
	Rejected     int     `json:"rejected"`
	// AcceptSeconds is from the first submit to the last acceptance;
	// AcceptedPerSec the messages accepted by the hub per second.
	AcceptSeconds  float64 `json:"accept_seconds"`
	AcceptedPerSec float64 `json:"accepted_per_sec"`
	// SubmitLatency is the LocalSubmitMessage call at the sender's
	// provider: follower -> hub /submitMessage -> Raft -> response.
	SubmitLatency Latency `json:"submit_latency"`
	// SendLatency is the whole client.Send call (MLS encryption and
	// signature included).
	SendLatency Latency          `json:"send_latency"`
	Receivers   []ReceiverResult `json:"receivers"`
	// DeliveredSeconds is from the first submit until every accepted
	// message was in every receiver's inbox; DeliveredPerSec is the
	// end-to-end rate.
	DeliveredSeconds float64 `json:"delivered_seconds"`
	DeliveredPerSec  float64 `json:"delivered_per_sec"`
	// CPUSeconds is the process's user+system CPU time over the phase
	// (all three providers and the clients run in this process).
	CPUSeconds     float64        `json:"cpu_seconds"`
	CPUPerMsgMs    float64        `json:"cpu_per_message_ms"`
	Verify         []VerifyResult `json:"verify,omitempty"`
	Breakdown      *Breakdown     `json:"breakdown,omitempty"`
	CPUProfileFile string         `json:"cpu_profile,omitempty"`
}

// Breakdown is taken from the providers' own metrics over the measured
// phase.
type Breakdown struct {
	Providers []ProviderBreakdown `json:"providers"`
	// Fanout per destination, at the hub.
	Fanout []FanoutBreakdown `json:"fanout"`
}

// ProviderBreakdown is one provider's work during the phase.
type ProviderBreakdown struct {
	Provider string `json:"provider"`
	// RaftApplies and RaftApplyMeanMs: the provider's Raft appends
	// (commands) and their mean time from proposal to applied result.
	RaftApplies     int     `json:"raft_applies"`
	RaftApplyMeanMs float64 `json:"raft_apply_mean_ms"`
	// RaftEntries is the growth of the commit index.
	RaftEntries int `json:"raft_entries"`
	// Requests are the federation requests served, by endpoint.
	Requests []EndpointBreakdown `json:"requests"`
}

// EndpointBreakdown is one federation endpoint's requests at a provider.
type EndpointBreakdown struct {
	Endpoint string  `json:"endpoint"`
	Count    int     `json:"count"`
	MeanMs   float64 `json:"mean_ms"`
}

// FanoutBreakdown is the hub's /notify traffic to one destination.
type FanoutBreakdown struct {
	Destination string  `json:"destination"`
	Messages    int     `json:"messages"`
	Batches     int     `json:"batches"`
	PerBatch    float64 `json:"messages_per_batch"`
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// phaseOpts configures one phase of the federation run.
type phaseOpts struct {
	phase      byte
	messages   int
	size       int
	poll       time.Duration
	timeout    time.Duration
	cpuProfile string
	traceFile  string
	memProfile string // allocation profile of the measured phase
	verify     bool
	// preEncrypt: the senders encrypt all their messages before the
	// measured window (captureSubmits), which then only submits them.
	preEncrypt bool
}

// runPhase sends opts.messages messages spread over the room's senders
// and follows them into every receiver's inbox.
func runPhase(ctx context.Context, f *fabric, r *room, o phaseOpts) (*FedResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	tr := newTracker(len(r.receivers))

	// Inbox positions before the phase: nothing else is in flight, so
	// everything queued after them belongs to the phase.
	starts := make([]uint64, len(r.receivers))
	for i, m := range r.receivers {
		cur, err := m.node.d.Machine().InboxCursor(m.c.ID())
		if err != nil {
			return nil, err
		}
		starts[i] = cur.Enqueued
	}
	var before map[string]promText
	if o.phase == phaseMeasure {
		var err error
		if before, err = scrapeAll(ctx, f); err != nil {
			return nil, err
		}
	}
	for _, s := range r.senders {
		s.node.lp.setHook(tr.hook)
	}
	defer func() {
		for _, s := range r.senders {
			s.node.lp.setHook(nil)
		}
	}()

	// Each sender's share of the messages.
	shares := make([]int, len(r.senders))
	for si := range r.senders {
		shares[si] = o.messages / len(r.senders)
		if si < o.messages%len(r.senders) {
			shares[si]++
		}
	}
	var pre [][]*mimi.SubmitMessageRequest
	if o.preEncrypt {
		var err error
		if pre, err = preEncrypt(ctx, r, shares, o); err != nil {
			return nil, err
		}
	}

	if o.cpuProfile != "" {
		pf, err := os.Create(o.cpuProfile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return nil, err
		}
		defer func() {
			pprof.StopCPUProfile()
			pf.Close()
		}()
	}

	if o.traceFile != "" {
		tf, err := os.Create(o.traceFile)
		if err != nil {
			return nil, err
		}
		if err := trace.Start(tf); err != nil {
			tf.Close()
			return nil, err
		}
		defer func() {
			trace.Stop()
			tf.Close()
		}()
	}

	if o.memProfile != "" {
		// The allocation profile is cumulative: the snapshot taken now
		// is the base (go tool pprof -base FILE.start FILE).
		if err := writeHeapProfile(o.memProfile + ".start"); err != nil {
			return nil, err
		}
	}
	cpu0 := cpuTime()
	start := time.Now()
	var pollWG sync.WaitGroup
	pollers := make([]*poller, len(r.receivers))
	for i, m := range r.receivers {
		p := &poller{ri: i, m: m, next: starts[i] + 1, tr: tr, interval: o.poll, quit: make(chan struct{})}
		pollers[i] = p
		pollWG.Add(1)
		go func() {
			defer pollWG.Done()
			p.run(ctx)
		}()
	}

	var sendWG sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	sendLat := make([][]time.Duration, len(r.senders))
	for si, s := range r.senders {
		share := shares[si]
		sendWG.Add(1)
		go func() {
			defer sendWG.Done()
			for seq := range share {
				t0 := time.Now()
				var err error
				if pre != nil {
					err = submitPrepared(ctx, s, pre[si][seq])
				} else {
					_, err = s.c.Send(ctx, roomID, makePayload(o.phase, si, seq, o.size))
				}
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("%s: send %d: %w", s.name, seq, err)
					}
					errMu.Unlock()
					cancel()
					return
				}
				sendLat[si] = append(sendLat[si], time.Since(t0))
			}
		}()
	}
	sendWG.Wait()
	tr.sendersDone()
	select {
	case <-tr.done:
	case <-ctx.Done():
	}
	cpu1 := cpuTime()
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if o.traceFile != "" {
		trace.Stop()
	}
	if o.memProfile != "" {
		if err := writeHeapProfile(o.memProfile); err != nil {
			return nil, err
		}
	}
	if firstErr != nil {
		cancel()
		pollWG.Wait()
		return nil, firstErr
	}
	timedOut := ctx.Err() != nil
	// Let stragglers (duplicates) arrive, then look once more.
	if !timedOut {
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range pollers {
		p.stop()
	}
	pollWG.Wait()
	for _, p := range pollers {
		if err := p.drain(); err != nil {
			return nil, err
		}
	}

	res := &FedResult{Senders: len(r.senders), Submitted: len(tr.recs), CPUSeconds: (cpu1 - cpu0).Seconds()}
	tr.mu.Lock()
	if tr.hookError != nil {
		tr.mu.Unlock()
		return nil, tr.hookError
	}
	res.Accepted, res.Rejected = tr.accepted, tr.rejected
	var lastAccept, lastSeen time.Time
	var submitLat []time.Duration
	recvLat := make([][]time.Duration, len(r.receivers))
	missing := make([]int, len(r.receivers))
	lastPer := make([]time.Time, len(r.receivers))
	for _, rec := range tr.recs {
		if !rec.ok {
			continue
		}
		submitLat = append(submitLat, rec.accepted.Sub(rec.submit))
		if rec.accepted.After(lastAccept) {
			lastAccept = rec.accepted
		}
		for i := range r.receivers {
			if rec.count[i] == 0 {
				missing[i]++
				continue
			}
			recvLat[i] = append(recvLat[i], rec.seen[i].Sub(rec.submit))
			if rec.seen[i].After(lastPer[i]) {
				lastPer[i] = rec.seen[i]
			}
			if rec.seen[i].After(lastSeen) {
				lastSeen = rec.seen[i]
			}
		}
	}
	for i, m := range r.receivers {
		role := "follower"
		if m.node.domain == hubDomain {
			role = "hub-local"
		}
		rr := ReceiverResult{
			Provider: m.node.domain, Role: role, Client: m.c.ID(),
			Delivered: tr.unique[i], Duplicates: tr.dups[i], Unknown: tr.unknown[i], Missing: missing[i],
			InboxEntries: int(pollers[i].next - 1 - starts[i]),
			Latency:      summarize(recvLat[i]),
		}
		if !lastPer[i].IsZero() {
			rr.LastSeconds = lastPer[i].Sub(start).Seconds()
		}
		res.Receivers = append(res.Receivers, rr)
	}
	tr.mu.Unlock()
	res.SubmitLatency = summarize(submitLat)
	var all []time.Duration
	for _, l := range sendLat {
		all = append(all, l...)
	}
	res.SendLatency = summarize(all)
	if !lastAccept.IsZero() {
		res.AcceptSeconds = lastAccept.Sub(start).Seconds()
		res.AcceptedPerSec = float64(res.Accepted) / res.AcceptSeconds
	}
	complete := !timedOut
	for _, rr := range res.Receivers {
		if rr.Missing > 0 {
			complete = false
		}
	}
	if complete && !lastSeen.IsZero() {
		res.DeliveredSeconds = lastSeen.Sub(start).Seconds()
		res.DeliveredPerSec = float64(res.Accepted) / res.DeliveredSeconds
	}
	if res.Accepted > 0 {
		res.CPUPerMsgMs = res.CPUSeconds * 1e3 / float64(res.Accepted)
	}
	if timedOut {
		return res, fmt.Errorf("phase did not complete within %s: %w", o.timeout, context.DeadlineExceeded)
	}

	if before != nil {
		after, err := scrapeAll(context.Background(), f)
		if err != nil {
			return nil, err
		}
		res.Breakdown = breakdown(before, after)
	}
	if o.verify {
		vctx, vcancel := context.WithTimeout(context.Background(), o.timeout)
		defer vcancel()
		for _, m := range r.receivers {
			v, err := verifyReceiver(vctx, m, o.phase, r, o.messages, o.size)
			if err != nil {
				return res, err
			}
			res.Verify = append(res.Verify, *v)
		}
	}
	return res, nil
}

// poller watches one receiving client's inbox at its provider as the
// client API's Inbox stream does: it waits until the provider's state
// machine applies another command (at most interval), then reads the
// inbox cursor (one key) and fetches the new entries if it moved.
type poller struct {
	ri       int
	m        *member
	next     uint64
	tr       *tracker
	interval time.Duration
	quit     chan struct{}
	once     sync.Once
	err      error
}

func (p *poller) stop() { p.once.Do(func() { close(p.quit) }) }

func (p *poller) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	d := p.m.node.d
	for {
		applied := d.Machine().AppliedIndex()
		if err := p.step(); err != nil {
			p.err = err
			return
		}
		wctx, wcancel := context.WithTimeout(ctx, p.interval)
		d.Node().WaitApplied(wctx, applied+1)
		wcancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// step fetches whatever is new.
func (p *poller) step() error {
	cl := p.m.c.ID()
	cur, err := p.m.node.d.Machine().InboxCursor(cl)
	if err != nil {
		return err
	}
	if cur.Enqueued < p.next {
		return nil
	}
	now := time.Now()
	es, err := p.m.node.d.Provider().Inbox(cl, p.next, 0)
	if err != nil {
		return err
	}
	for i := range es {
		k, err := keyOf(&es[i].Message.Message)
		if err != nil {
			return err
		}
		p.tr.seen(p.ri, k, now)
		p.next = es[i].N + 1
	}
	return nil
}

// drain takes a last look after the poller stopped.
func (p *poller) drain() error {
	if p.err != nil {
		return p.err
	}
	return p.step()
}

// verifyReceiver syncs a receiving client and checks that it decrypts
// every message of the phase exactly once with the payload that was sent
// (RFC 9420, Section 6.3; draft-ralston-mimi-protocol-02, Section 5.5).
func verifyReceiver(ctx context.Context, m *member, phase byte, r *room, messages, size int) (*VerifyResult, error) {
	v := &VerifyResult{Client: m.c.ID()}
	got := map[[2]int]int{}
	for {
		evs, err := m.c.Sync(ctx)
		if err != nil {
			return nil, fmt.Errorf("sync %s: %w", m.name, err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			switch ev.Type {
			case client.EventError:
				v.Errors++
			case client.EventMessage:
				ph, s, seq, ok := parsePayload(ev.Data)
				if !ok {
					v.Corrupt++
					continue
				}
				if ph != phase {
					continue
				}
				if !bytes.Equal(ev.Data, makePayload(ph, s, seq, size)) {
					v.Corrupt++
					continue
				}
				got[[2]int{s, seq}]++
			}
		}
	}
	for k, n := range got {
		v.Decrypted++
		v.Duplicates += n - 1
		if k[0] >= len(r.senders) {
			v.Corrupt++
		}
	}
	v.Missing = max(0, messages-v.Decrypted)
	return v, nil
}

func scrapeAll(ctx context.Context, f *fabric) (map[string]promText, error) {
	out := map[string]promText{}
	for _, d := range domains {
		p, err := f.metrics(ctx, d)
		if err != nil {
			return nil, err
		}
		out[d] = p
	}
	return out, nil
}

// Metric names of package internal/daemon used by the breakdown.
const (
	mRequestDur  = "mimi_federation_request_duration_seconds"
	mApplyDur    = "mimi_raft_apply_duration_seconds"
	mCommitIndex = "mimi_raft_commit_index"
	mDelivered   = "mimi_fanout_delivered_messages_total"
	mBatches     = "mimi_fanout_delivered_batches_total"
)

func breakdown(before, after map[string]promText) *Breakdown {
	b := &Breakdown{}
	for _, d := range domains {
		x, y := before[d], after[d]
		delta := func(name string, match map[string]string) float64 {
			return y.sum(name, match) - x.sum(name, match)
		}
		pb := ProviderBreakdown{Provider: d}
		n := delta(mApplyDur+"_count", nil)
		pb.RaftApplies = int(n)
		if n > 0 {
			pb.RaftApplyMeanMs = round3(delta(mApplyDur+"_sum", nil) * 1e3 / n)
		}
		pb.RaftEntries = int(delta(mCommitIndex, nil))
		for _, ep := range y.labelValues(mRequestDur+"_count", "endpoint") {
			m := map[string]string{"endpoint": ep}
			c := delta(mRequestDur+"_count", m)
			if c <= 0 {
				continue
			}
			pb.Requests = append(pb.Requests, EndpointBreakdown{
				Endpoint: ep, Count: int(c), MeanMs: round3(delta(mRequestDur+"_sum", m) * 1e3 / c),
			})
		}
		b.Providers = append(b.Providers, pb)
	}
	x, y := before[hubDomain], after[hubDomain]
	for _, dest := range y.labelValues(mDelivered, "destination") {
		m := map[string]string{"destination": dest}
		fb := FanoutBreakdown{
			Destination: dest,
			Messages:    int(y.sum(mDelivered, m) - x.sum(mDelivered, m)),
			Batches:     int(y.sum(mBatches, m) - x.sum(mBatches, m)),
		}
		if fb.Batches > 0 {
			fb.PerBatch = round3(float64(fb.Messages) / float64(fb.Batches))
		}
		b.Fanout = append(b.Fanout, fb)
	}
	return b
}

func round3(x float64) float64 { return float64(int64(x*1e3+0.5)) / 1e3 }

var errIncomplete = errors.New("fedbench: not every message reached every receiver exactly once")

// check reports whether every accepted message reached every receiver
// exactly once and, when verified, was decrypted exactly once by it.
func (r *FedResult) check() error {
	if r.Rejected > 0 || r.Accepted != r.Submitted {
		return fmt.Errorf("%w: %d submitted, %d accepted, %d rejected", errIncomplete, r.Submitted, r.Accepted, r.Rejected)
	}
	for _, rr := range r.Receivers {
		if rr.Delivered != r.Accepted || rr.Duplicates != 0 || rr.Unknown != 0 || rr.Missing != 0 || rr.InboxEntries != r.Accepted {
			return fmt.Errorf("%w: %s: %+v", errIncomplete, rr.Provider, rr)
		}
	}
	for _, v := range r.Verify {
		if v.Decrypted != r.Accepted || v.Duplicates != 0 || v.Corrupt != 0 || v.Errors != 0 || v.Missing != 0 {
			return fmt.Errorf("%w: client check %+v", errIncomplete, v)
		}
	}
	return nil
}

// preEncrypt has every sender encrypt its share of the phase's messages
// (MLS PrivateMessages, RFC 9420 Section 6.3) through the client SDK
// without sending them, and returns the requests per sender in the order
// produced, for submitPrepared.
func preEncrypt(ctx context.Context, r *room, shares []int, o phaseOpts) ([][]*mimi.SubmitMessageRequest, error) {
	out := make([][]*mimi.SubmitMessageRequest, len(r.senders))
	for si, s := range r.senders {
		var got []*mimi.SubmitMessageRequest
		s.node.lp.captureSubmits(func(client string, req *mimi.SubmitMessageRequest) {
			if client == s.c.ID() {
				got = append(got, req)
			}
		})
		for seq := range shares[si] {
			if _, err := s.c.Send(ctx, roomID, makePayload(o.phase, si, seq, o.size)); err != nil {
				s.node.lp.captureSubmits(nil)
				return nil, fmt.Errorf("%s: encrypt %d: %w", s.name, seq, err)
			}
		}
		s.node.lp.captureSubmits(nil)
		if len(got) != shares[si] {
			return nil, fmt.Errorf("%s: %d messages encrypted, %d captured", s.name, shares[si], len(got))
		}
		out[si] = got
	}
	return out, nil
}

// submitPrepared submits one pre-encrypted message of sender s at its
// provider (draft-ralston-mimi-protocol-02, Section 5.4), as client.Send
// does after encrypting it.
func submitPrepared(ctx context.Context, s *member, req *mimi.SubmitMessageRequest) error {
	resp, err := s.node.lp.SubmitMessage(ctx, s.c.ID(), roomID, req)
	if err != nil {
		return err
	}
	if resp == nil || resp.Code != mimi.SubmitAccepted {
		return fmt.Errorf("submission not accepted: %+v", resp)
	}
	return nil
}

// writeHeapProfile writes the allocation profile (alloc_space and
// alloc_objects cover every sampled allocation since the rate was set).
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
