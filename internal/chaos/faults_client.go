package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openmimi/mimi/client"
)

// ProblemInboxProcessing: a client's Syncs went back in its inbox (an
// event of an inbox position below one already reported), or did not
// process an application message of another client that its provider
// delivered exactly once (no event, or more than one, at its position):
// after a lost answer to an Inbox read or an Ack, the SDK must resume
// reading where it stopped, without a gap or a repeat
// (draft-ralston-mimi-protocol-02, Section 5.5).
const ProblemInboxProcessing ProblemKind = "inbox-processing"

// errAnswerLost is what a client sees of a call whose answer a client
// link dropped: a transport failure, after the provider processed the
// request.
var errAnswerLost = errors.New("chaos: client link: the answer was lost")

// ClientCut is how a client link fault cuts the path between a provider's
// clients and its client API.
type ClientCut string

// The client link faults.
const (
	// ClientRefused: connections are reset and new ones refused; calls fail
	// at once, before reaching the provider.
	ClientRefused ClientCut = "refused"
	// ClientBlackHoled: nothing crosses until the cut heals; calls hang
	// (up to Config.AttemptTimeout) and complete after it.
	ClientBlackHoled ClientCut = "black-holed"
	// ClientAnswerLost: every request reaches the provider and is
	// processed, and its answer is dropped (every answer, or each with
	// odds 1/2: ClientFault.LossPercent): the client gets a transport
	// error, the outcome is unknown, and the SDK sends the same bytes
	// again (draft-ralston-mimi-protocol-02, Sections 5.3 and 5.4).
	ClientAnswerLost ClientCut = "answer-lost"
)

// ClientFault is one cut of the link between the clients of a provider
// and its client API (Connect over TLS), healed after a few seconds.
type ClientFault struct {
	// Domain is the provider whose clients were cut off, Cut how.
	Domain string
	Cut    ClientCut
	// LossPercent is the odds, in percent, that a ClientAnswerLost cut
	// drops an answer (100 or 50).
	LossPercent int
	// At is the time since the load started, Length how long the cut
	// lasted.
	At, Length time.Duration
	// Calls counts the client API calls that went through the link while
	// it was cut (an unanswered call sent before the cut included when
	// its answer was lost), AnswersLost those whose answer the link
	// dropped, Resets the connections a refusing cut reset, Stalls the
	// transfers a black hole held.
	Calls, AnswersLost, Resets, Stalls int64
	// AckedDuring counts the messages acknowledged (at every provider)
	// during the cut.
	AckedDuring int
	// Resumed is how long after healing the link delivered an answer
	// again (capped at resumeBound).
	Resumed time.Duration
}

// resumeBound bounds the wait for the first answer through a healed
// client link.
const resumeBound = 30 * time.Second

// clientLink is the path between the clients of one provider and its
// client API: a Proxy (refused and black-holed cuts) in front of the
// provider's address, and an HTTP transport through it that can drop
// answers (ClientAnswerLost).
type clientLink struct {
	proxy *Proxy
	base  http.RoundTripper
	// losePct is the odds, in percent, that an answer is dropped; rng
	// draws it.
	losePct atomic.Int32
	rngMu   sync.Mutex
	rng     *rand.Rand
	// Calls counts the calls made through the link, Answered those whose
	// answer reached the client, AnswersLost those whose answer was
	// dropped.
	Calls, Answered, AnswersLost atomic.Int64
}

// newClientLink starts a link to a client API at backend (a node, or a
// cluster's client proxy); base is the HTTP transport of the provider's
// client API (TLS with its domain's name), which dials the link's proxy
// when the client is given "https://" + link.addr(). rng draws the
// answers lost.
func newClientLink(backend string, base http.RoundTripper, rng *rand.Rand) (*clientLink, error) {
	p, err := NewProxy("127.0.0.1:0", []Backend{{Addr: backend}})
	if err != nil {
		return nil, err
	}
	return &clientLink{proxy: p, base: base, rng: rng}, nil
}

// addr is the address the clients dial.
func (l *clientLink) addr() string { return l.proxy.Addr() }

// RoundTrip implements http.RoundTripper: it makes the call through the
// proxy and, when the answer is to be lost, reads it to its end (the
// provider finished the call) and returns errAnswerLost instead.
func (l *clientLink) RoundTrip(req *http.Request) (*http.Response, error) {
	l.Calls.Add(1)
	resp, err := l.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if !l.loses() {
		l.Answered.Add(1)
		return resp, nil
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	l.AnswersLost.Add(1)
	return nil, errAnswerLost
}

// CloseIdleConnections closes the transport's idle connections
// (http.Client.CloseIdleConnections).
func (l *clientLink) CloseIdleConnections() {
	if c, ok := l.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// loses draws whether to drop an answer.
func (l *clientLink) loses() bool {
	pct := l.losePct.Load()
	if pct <= 0 {
		return false
	}
	l.rngMu.Lock()
	defer l.rngMu.Unlock()
	return l.rng.Int32N(100) < pct
}

// set cuts the link the way c says (ClientAnswerLost dropping answers
// with odds pct percent); "" heals it.
func (l *clientLink) set(c ClientCut, pct int) {
	switch c {
	case ClientRefused:
		l.proxy.SetCut(Refused)
	case ClientBlackHoled:
		l.proxy.SetCut(BlackHoled)
	case ClientAnswerLost:
		l.losePct.Store(int32(pct))
	default:
		l.losePct.Store(0)
		l.proxy.SetCut(Connected)
	}
}

// close stops the link's proxy.
func (l *clientLink) close() { _ = l.proxy.Close() }

// linkFaults runs the client link faults of the chaos loop
// (Config.ClientLinkShare) on the fleet's links.
type linkFaults struct {
	*faults
	links map[string]*clientLink
}

// turn draws whether this turn of the chaos loop cuts a client link (with
// Config.ClientLinkShare) and, if so, cuts one and returns true.
func (f *linkFaults) turn(ctx context.Context) (bool, error) {
	if f.cfg.ClientLinkShare <= 0 || len(f.links) == 0 || f.rng.Float64() >= f.cfg.ClientLinkShare {
		return false, nil
	}
	return true, f.cut(ctx)
}

// cut cuts the link of the clients of a.example, b.example or c.example
// for Config.ClientLinkMin to ClientLinkMax: refused or black-holed with
// odds 1/4 each, losing answers with odds 1/2 (every answer, or each with
// odds 1/2, so that some calls of an operation are answered: its Sync,
// then its commit's first try but not its resend, say). Then it heals the
// link and waits until an answer crosses it again.
func (f *linkFaults) cut(ctx context.Context) error {
	doms := slices.Sorted(maps.Keys(f.links))
	cf := ClientFault{Domain: doms[f.rng.IntN(len(doms))], At: time.Since(f.start)}
	cf.Cut = []ClientCut{ClientRefused, ClientBlackHoled, ClientAnswerLost, ClientAnswerLost}[f.rng.IntN(4)]
	if cf.Cut == ClientAnswerLost {
		cf.LossPercent = []int{100, 50}[f.rng.IntN(2)]
	}
	l := f.links[cf.Domain]
	length := f.uniform(f.cfg.ClientLinkMin, f.cfg.ClientLinkMax)
	calls, lost, resets, stalls := l.Calls.Load(), l.AnswersLost.Load(), l.proxy.Resets.Load(), l.proxy.Stalls.Load()
	acked := f.acked()
	cutAt := time.Now()
	l.set(cf.Cut, cf.LossPercent)
	sleep(ctx, length)
	l.set("", 0)
	cf.Length = time.Since(cutAt)
	cf.AckedDuring = f.acked() - acked
	cf.Calls, cf.AnswersLost = l.Calls.Load()-calls, l.AnswersLost.Load()-lost
	cf.Resets, cf.Stalls = l.proxy.Resets.Load()-resets, l.proxy.Stalls.Load()-stalls
	answered := l.Answered.Load()
	healed := time.Now()
	for l.Answered.Load() == answered && time.Since(healed) < resumeBound && ctx.Err() == nil {
		sleep(ctx, 20*time.Millisecond)
	}
	cf.Resumed = time.Since(healed)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f.res.ClientFaults = append(f.res.ClientFaults, cf)
	f.logf("chaos: client link fault %d: clients | %s %s%s at %s for %s (%d calls, %d answers lost, %d connections reset, %d transfers held); %d messages acknowledged meanwhile; answered again %s after healing; %d acknowledged so far",
		len(f.res.ClientFaults), cf.Domain, cf.Cut, lossNote(cf.LossPercent), cf.At.Round(time.Millisecond), cf.Length.Round(time.Millisecond), cf.Calls, cf.AnswersLost, cf.Resets, cf.Stalls,
		cf.AckedDuring, cf.Resumed.Round(time.Millisecond), f.acked())
	return nil
}

// lossNote describes the odds of losing an answer in a log line.
func lossNote(pct int) string {
	if pct == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d%%)", pct)
}

// clientFaultSummary formats the client link faults and the races for
// Result.Summary.
func (r *Result) clientFaultSummary() string {
	by := map[ClientCut]int{}
	var lost int64
	for _, cf := range r.ClientFaults {
		by[cf.Cut]++
		lost += cf.AnswersLost
	}
	return fmt.Sprintf(" client_faults=%d (refused %d, black-holed %d, answer-lost %d; answers lost %d) ambiguous_answers=%d race_losers=%d race_recovered=%d races_full=%d",
		len(r.ClientFaults), by[ClientRefused], by[ClientBlackHoled], by[ClientAnswerLost], lost, r.AmbiguousAnswers, r.RaceLosers, r.RaceRecovered, r.RacesFull)
}

// inboxCheck checks how each client's SDK processed its inbox
// (ProblemInboxProcessing): the events its Syncs reported never go back
// in inbox position, and every application message of another client
// its provider delivered gave exactly one event (a message, or an error)
// at its position.
func inboxCheck(clients []*simClient, rec *recorder) []Problem {
	from := map[string]string{} // application message -> its sender
	for _, s := range rec.Submits() {
		from[string(s.Message)] = s.Client
	}
	recv := rec.Received()
	var out []Problem
	for _, sc := range clients {
		events := map[uint64]int{}
		var last uint64
		for _, ev := range sc.events {
			if ev.Seq < last {
				out = append(out, Problem{Kind: ProblemInboxProcessing, Client: sc.id, Room: ev.Room,
					Detail: fmt.Sprintf("a %s event of inbox position %d after one of position %d", ev.Type, ev.Seq, last)})
			}
			last = max(last, ev.Seq)
			if ev.Type == client.EventMessage || ev.Type == client.EventError {
				events[ev.Seq]++
			}
		}
		for _, d := range recv[sc.id] {
			if s, ok := from[string(d.Message)]; !ok || s == sc.id || events[d.Pos] == 1 {
				continue
			}
			out = append(out, Problem{Kind: ProblemInboxProcessing, Client: sc.id, Room: d.Room, Message: short(d.Message),
				Detail: fmt.Sprintf("the application message of %s at inbox position %d gave %d message or error events", from[string(d.Message)], d.Pos, events[d.Pos])})
		}
	}
	return out
}
