package chaos

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/remote"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
)

// recorder records, for the checker, every application message the
// clients submit (with its outcome and number of attempts) and every inbox
// entry their Syncs read (draft-ralston-mimi-protocol-02, Sections 5.4 and
// 5.5).
type recorder struct {
	mu      sync.Mutex
	label   map[string]string // client -> plaintext of the Send in progress
	submits []*Submit
	inbox   map[string]map[uint64]Delivery
	// attempts counts SubmitMessage calls, failures the failed ones.
	attempts, failures int
}

func newRecorder() *recorder {
	return &recorder{label: map[string]string{}, inbox: map[string]map[uint64]Delivery{}}
}

func (r *recorder) setLabel(client, label string) {
	r.mu.Lock()
	r.label[client] = label
	r.mu.Unlock()
}

// Submits returns a copy of the recorded submissions.
func (r *recorder) Submits() []Submit {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Submit, len(r.submits))
	for i, s := range r.submits {
		out[i] = *s
	}
	return out
}

// count returns the number of inbox entries recorded for a client.
func (r *recorder) count(client string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inbox[client])
}

// Received returns every client's inbox entries in position order.
func (r *recorder) Received() map[string][]Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]Delivery{}
	for c, m := range r.inbox {
		ds := make([]Delivery, 0, len(m))
		for _, d := range m {
			ds = append(ds, d)
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].Pos < ds[j].Pos })
		out[c] = ds
	}
	return out
}

// retrying is the client.Provider the harness's clients use: the Connect
// client API (package client/remote) with a sender's retry of
// SubmitMessage. A submission that fails or times out is sent again with
// the same bytes, as a provider retries a /submitMessage whose answer it
// did not get (draft-ralston-mimi-protocol-02, Section 5.4), until it is
// answered or GiveUp has passed. Inbox reads are recorded.
type retrying struct {
	client.Provider
	rec *recorder
	// AttemptTimeout bounds one call; GiveUp all attempts of one message.
	AttemptTimeout, GiveUp time.Duration
	rng                    *rand.Rand
	rngMu                  sync.Mutex
}

// SubmitMessage implements client.Provider with retries of the same
// request (draft-ralston-mimi-protocol-02, Section 5.4).
func (p *retrying) SubmitMessage(ctx context.Context, cl, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	b, err := codec.Marshal(&req.AppMessage)
	if err != nil {
		return nil, err
	}
	p.rec.mu.Lock()
	s := &Submit{Client: cl, Room: room, Message: b, Label: p.rec.label[cl]}
	p.rec.submits = append(p.rec.submits, s)
	p.rec.mu.Unlock()
	deadline := time.Now().Add(p.GiveUp)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.AttemptTimeout)
		resp, err := p.Provider.SubmitMessage(actx, cl, room, req)
		cancel()
		p.rec.mu.Lock()
		s.Attempts = attempt
		p.rec.attempts++
		if err == nil && resp != nil {
			s.Acked = resp.Code == mimi.SubmitAccepted
			p.rec.mu.Unlock()
			return resp, nil
		}
		p.rec.failures++
		p.rec.mu.Unlock()
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, err
		}
		// Backoff with full jitter, 50 ms .. 1 s.
		p.rngMu.Lock()
		d := time.Duration(p.rng.Int64N(int64(min(time.Second, 50*time.Millisecond<<min(attempt, 5))))) + 10*time.Millisecond
		p.rngMu.Unlock()
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(d):
		}
	}
}

// Inbox implements client.Provider and records what it returns
// (draft-ralston-mimi-protocol-02, Section 5.5).
func (p *retrying) Inbox(ctx context.Context, cl string, from uint64, limit int) ([]client.InboxEntry, error) {
	es, err := p.Provider.Inbox(ctx, cl, from, limit)
	if err != nil {
		return nil, err
	}
	p.rec.mu.Lock()
	defer p.rec.mu.Unlock()
	m := p.rec.inbox[cl]
	if m == nil {
		m = map[uint64]Delivery{}
		p.rec.inbox[cl] = m
	}
	for _, e := range es {
		b, err := codec.Marshal(&e.Message.Message)
		if err != nil {
			return nil, fmt.Errorf("chaos: re-encoding inbox entry %d: %w", e.Seq, err)
		}
		m[e.Seq] = Delivery{Pos: e.Seq, Room: e.Room, Message: b}
	}
	return es, nil
}

// simClient is one device of the scenario.
type simClient struct {
	user, id string
	domain   string
	sender   bool
	c        *client.Client
	events   []client.Event
}

// clientAPIHTTP returns an HTTP/2 client for a provider's client API: TLS
// with the domain's certificate (through the proxy for the hub).
func clientAPIHTTP(t *Topology, domain string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		ForceAttemptHTTP2:   true,
		TLSClientConfig:     &tls.Config{RootCAs: t.CAPool, ServerName: domain, MinVersion: tls.VersionTLS13},
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		TLSHandshakeTimeout: 3 * time.Second,
	}}
}

// newClients creates, registers and publishes KeyPackages for senders and
// receivers at every provider: at the hub through the client API proxy,
// at the followers directly. It also returns the HTTP client of the hub's
// client API.
func newClients(ctx context.Context, t *Topology, rec *recorder, rng *rand.Rand, senders, receivers, keyPackages int, attemptTimeout, giveUp time.Duration) ([]*simClient, *http.Client, error) {
	base := map[string]string{HubDomain: "https://" + t.ClientProxy.Addr()}
	for _, f := range t.Followers {
		base[f.Domain] = "https://" + f.Client
	}
	names := map[string][]string{HubDomain: {"alice", "amy", "ann", "abe"}, BDomain: {"bob", "ben", "bea", "bud"}, CDomain: {"carol", "cid", "cy", "cat"}}
	var out []*simClient
	var hubHC *http.Client
	for _, dom := range []string{HubDomain, BDomain, CDomain} {
		hc := clientAPIHTTP(t, dom)
		if dom == HubDomain {
			hubHC = hc
		}
		rp, err := remote.New(base[dom], hc)
		if err != nil {
			return nil, nil, err
		}
		p := &retrying{Provider: rp, rec: rec, AttemptTimeout: attemptTimeout, GiveUp: giveUp, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))}
		for i := 0; i < senders+receivers; i++ {
			var name string
			if i < len(names[dom]) {
				name = names[dom][i]
			} else {
				name = fmt.Sprintf("%s%d", names[dom][0], i)
			}
			sc := &simClient{user: "mimi://" + dom + "/u/" + name, id: "mimi://" + dom + "/d/" + name + "1", domain: dom, sender: i < senders}
			if sc.c, err = client.New(sc.user, sc.id, cipher.X25519_AES128GCM_SHA256_Ed25519, p, nil); err != nil {
				return nil, nil, err
			}
			s, err := remote.SignerFor(sc.c)
			if err != nil {
				return nil, nil, err
			}
			if err := rp.AddSigner(s); err != nil {
				return nil, nil, err
			}
			if err := sc.c.Enroll(ctx, keyPackages); err != nil {
				return nil, nil, fmt.Errorf("chaos: %w", err)
			}
			out = append(out, sc)
		}
	}
	return out, hubHC, nil
}

// roomPolicy lets members send messages and the admin add users
// (draft-ralston-mimi-protocol-02, Section 4.3.1).
func roomPolicy(room string) mimi.Policy {
	return mimi.Policy{RoomID: room, Roles: []mimi.Role{
		{Name: "admin", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanRemoveUser, mimi.CanSetUserRole, mimi.CanSendMessage}},
		{Name: "member", Permissions: []mimi.Permission{mimi.CanSendMessage}},
	}}
}

// setupRooms has the first client (at the hub) create each room and add
// every other user, each in its own commit with a Welcome
// (draft-ralston-mimi-protocol-02, Sections 3.1 to 3.3), then syncs every
// client until it is in every room at the creator's epoch.
func setupRooms(ctx context.Context, cs []*simClient, rooms []string) error {
	creator := cs[0]
	for _, room := range rooms {
		if err := creator.c.CreateRoom(ctx, room, roomPolicy(room), []mimi.Participant{{User: creator.user, Role: "admin"}}); err != nil {
			return fmt.Errorf("chaos: create %s: %w", room, err)
		}
		for _, sc := range cs[1:] {
			if err := creator.c.AddUser(ctx, room, sc.user, "member"); err != nil {
				return fmt.Errorf("chaos: add %s to %s: %w", sc.user, room, err)
			}
		}
	}
	for _, sc := range cs {
		for {
			if err := sc.sync(ctx); err != nil {
				return err
			}
			in := 0
			for _, room := range rooms {
				want, _ := creator.c.Epoch(room)
				if e, err := sc.c.Epoch(room); err == nil && e == want {
					in++
				}
			}
			if in == len(rooms) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("chaos: %s did not join every room: %w", sc.id, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// sync runs one Sync and keeps its events.
func (sc *simClient) sync(ctx context.Context) error {
	evs, err := sc.c.Sync(ctx)
	sc.events = append(sc.events, evs...)
	if err != nil {
		return fmt.Errorf("chaos: sync %s: %w", sc.id, err)
	}
	return nil
}

// loadStats counts the senders' outcomes.
type loadStats struct {
	mu                      sync.Mutex
	sent, acked, unknown    int
	refused                 int
	refusals                map[string]int
	maxLatency, sumLatency  time.Duration
	latencyN                int
	firstError, lastUnknown error
}

// runSender sends application messages into random rooms until stop is
// closed (draft-ralston-mimi-protocol-02, Sections 3.4 and 5.4), pausing
// up to pause between them.
func runSender(ctx context.Context, sc *simClient, rooms []string, rec *recorder, rng *rand.Rand, pause time.Duration, stop <-chan struct{}, st *loadStats) {
	for n := 1; ; n++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		room := rooms[rng.IntN(len(rooms))]
		label := fmt.Sprintf("%s #%d", sc.id, n)
		rec.setLabel(sc.id, label)
		start := time.Now()
		_, err := sc.c.Send(ctx, room, []byte(label))
		lat := time.Since(start)
		st.mu.Lock()
		st.sent++
		var se *client.SubmitError
		switch {
		case err == nil:
			st.acked++
			st.sumLatency += lat
			st.latencyN++
			st.maxLatency = max(st.maxLatency, lat)
		case errors.Is(err, client.ErrOutcomeUnknown):
			st.unknown++
			st.lastUnknown = err
		case errors.As(err, &se):
			st.refused++
			if st.refusals == nil {
				st.refusals = map[string]int{}
			}
			st.refusals[fmt.Sprint(se.Code)]++
		default:
			st.refused++
			if st.firstError == nil {
				st.firstError = err
			}
		}
		st.mu.Unlock()
		if pause > 0 {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rng.Int64N(int64(pause)))):
			}
		}
	}
}
