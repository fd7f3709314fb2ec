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
	"strings"
	"sync"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/remote"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// recorder records, for the checker, every application message and
// commit the clients submit (with its outcome and number of attempts) and
// every inbox entry their Syncs read (draft-ralston-mimi-protocol-02,
// Sections 5.3 to 5.5).
type recorder struct {
	mu      sync.Mutex
	label   map[string]string // client -> plaintext of the Send, or the change, in progress
	submits []*Submit
	commits []*Submit
	inbox   map[string]map[uint64]Delivery
	// sent maps a client and the bytes it sent (sentKey) to their record:
	// the SDK sends the same bytes again when no answer came (its own
	// resends, and a commit it settles later), and they are one
	// submission.
	sent map[string]*Submit
	// ambiguous counts the wrongEpoch answers to a commit or proposals
	// sent again after a try without an answer (see judgeUpdate).
	ambiguous int
}

func newRecorder() *recorder {
	return &recorder{label: map[string]string{}, inbox: map[string]map[uint64]Delivery{}, sent: map[string]*Submit{}}
}

// ambiguousAnswers returns the number of answers that settled nothing
// (recorder.ambiguous).
func (r *recorder) ambiguousAnswers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ambiguous
}

// sentKey is the key of a request of client cl carrying msg in
// recorder.sent.
func sentKey(cl string, msg []byte) string { return cl + "\x00" + string(msg) }

// submitted returns the record of the request of cl carrying msg to room:
// the one made when these bytes were first sent, or a new one (fresh),
// which is appended to list if list is not nil. The caller holds r.mu.
func (r *recorder) submitted(list *[]*Submit, cl, room string, msg []byte) (s *Submit, fresh bool) {
	k := sentKey(cl, msg)
	if s := r.sent[k]; s != nil {
		return s, false
	}
	s = &Submit{Client: cl, Room: room, Message: msg, Label: r.label[cl], Sent: time.Now()}
	r.sent[k] = s
	if list != nil {
		*list = append(*list, s)
	}
	return s, true
}

func (r *recorder) setLabel(client, label string) {
	r.mu.Lock()
	r.label[client] = label
	r.mu.Unlock()
}

// Submits returns a copy of the recorded application message
// submissions.
func (r *recorder) Submits() []Submit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return copySubmits(r.submits)
}

// Commits returns a copy of the recorded commits.
func (r *recorder) Commits() []Submit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return copySubmits(r.commits)
}

func copySubmits(ss []*Submit) []Submit {
	out := make([]Submit, len(ss))
	for i, s := range ss {
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
// client API (package client/remote) with a provider's retry of
// SubmitMessage, Update and UploadKeyPackages. A call that fails or times
// out is sent again with the same bytes, as a provider retries a
// /submitMessage or /update whose answer it did not get
// (draft-ralston-mimi-protocol-02, Sections 5.3 and 5.4), until it is
// answered or GiveUp has passed. Submissions, commits and inbox reads are
// recorded.
type retrying struct {
	client.Provider
	rec *recorder
	// AttemptTimeout bounds one call; GiveUp all attempts of one request
	// (0: one attempt, the SDK's own resends being the only ones).
	AttemptTimeout, GiveUp time.Duration
	rng                    *rand.Rand
	rngMu                  sync.Mutex
}

// SubmitMessage implements client.Provider with retries of the same
// request (draft-ralston-mimi-protocol-02, Section 5.4: the hub answers a
// message it accepted with its first acceptance).
func (p *retrying) SubmitMessage(ctx context.Context, cl, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	b, err := codec.Marshal(&req.AppMessage)
	if err != nil {
		return nil, err
	}
	s := p.record(&p.rec.submits, cl, room, b)
	return resend(ctx, p, s, func(ctx context.Context) (*mimi.SubmitMessageResponse, answerOutcome, error) {
		resp, err := p.Provider.SubmitMessage(ctx, cl, room, req)
		switch {
		case err != nil || resp == nil:
			return resp, answerOutcome{}, err
		case resp.Code == mimi.SubmitAccepted:
			return resp, answerOutcome{acked: true}, nil
		}
		return resp, answerOutcome{refusal: fmt.Sprintf("response code %d (hub at epoch %d)", resp.Code, resp.CurrentEpoch)}, nil
	})
}

// answerOutcome is what an answer tells of a request: accepted (acked),
// refused (refusal says how), or neither (both zero).
type answerOutcome struct {
	acked   bool
	refusal string
}

// judgeUpdate judges the answer to an update request (a commit, or
// proposals) recorded in s. The hub answers a commit or proposal it took
// and that is no longer the room's last with wrongEpoch, like one it never
// took (draft-ralston-mimi-protocol-02, Section 5.3): after a try without
// an answer that answer settles nothing (the SDK keeps an unresolved
// commit pending until its echo or the commit that won arrives), so it is
// recorded as no answer. The caller holds p.rec.mu.
func (p *retrying) judgeUpdate(s *Submit, resp *mimi.UpdateRoomResponse) answerOutcome {
	switch {
	case resp.Code == mimi.UpdateSuccess:
		return answerOutcome{acked: true}
	case resp.Code == mimi.UpdateWrongEpoch && s != nil && s.Attempts > 0 && s.Answered.IsZero():
		p.rec.ambiguous++
		return answerOutcome{}
	}
	return answerOutcome{refusal: fmt.Sprintf("response code %d (hub at epoch %d): %q", resp.Code, resp.CurrentEpoch, resp.ErrorDescription)}
}

// Update implements client.Provider with retries of the same request
// (draft-ralston-mimi-protocol-02, Section 5.3: the hub answers the commit
// it accepted last with its first success). Commits are recorded.
func (p *retrying) Update(ctx context.Context, cl, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	var s *Submit
	if req.IsCommit() {
		b, err := codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: &req.ProposalOrCommit})
		if err != nil {
			return nil, err
		}
		s = p.record(&p.rec.commits, cl, room, b)
	}
	return p.update(ctx, s, cl, room, req)
}

// errUnansweredThenWrongEpoch is what the SDK sees of a commit that
// retrying sent again itself after a try without an answer, and that was
// then answered wrongEpoch.
var errUnansweredThenWrongEpoch = errors.New("chaos: a try of the commit went unanswered, the next was answered wrongEpoch")

// update sends an update request with retries, recording its outcome in
// s (if not nil; see judgeUpdate). When one of its own tries of a commit
// went unanswered and a later one was answered wrongEpoch, it returns
// errUnansweredThenWrongEpoch rather than the answer: the hub may have
// taken the first try (judgeUpdate), and the SDK keeps such a commit
// unresolved only if it knows that a try of its went unanswered; given
// the bare wrongEpoch, it would discard a commit the hub took and then
// fail on its echo. The SDK then sends the commit again, and the answer
// to that try reaches it.
func (p *retrying) update(ctx context.Context, s *Submit, cl, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	lost := false
	resp, err := resend(ctx, p, s, func(ctx context.Context) (*mimi.UpdateRoomResponse, answerOutcome, error) {
		resp, err := p.Provider.Update(ctx, cl, room, req)
		if err != nil || resp == nil {
			lost = true
			return resp, answerOutcome{}, err
		}
		p.rec.mu.Lock()
		defer p.rec.mu.Unlock()
		return resp, p.judgeUpdate(s, resp), nil
	})
	if err == nil && lost && req.IsCommit() && resp != nil && resp.Code == mimi.UpdateWrongEpoch {
		return nil, errUnansweredThenWrongEpoch
	}
	return resp, err
}

// UploadKeyPackages implements client.Provider with retries of the same
// KeyPackages (draft-ralston-mimi-protocol-02, Section 4.3.1). The
// provider stores a KeyPackage once and refuses it again as an invalid
// argument ("already uploaded"), so that refusal of a resend means an
// earlier attempt whose answer was lost stored them. (The SDK keeps the
// private keys only when the upload is answered: without this resend, a
// lost answer leaves KeyPackages at the provider that no Welcome for them
// can use.)
func (p *retrying) UploadKeyPackages(ctx context.Context, cl string, kps []*wire.KeyPackage) error {
	resent := false
	_, err := resend(ctx, p, nil, func(ctx context.Context) (struct{}, answerOutcome, error) {
		err := p.Provider.UploadKeyPackages(ctx, cl, kps)
		if resent && errors.Is(err, remote.ErrInvalidArgument) && strings.Contains(err.Error(), "already uploaded") {
			err = nil
		}
		resent = true
		return struct{}{}, answerOutcome{acked: true}, err
	})
	return err
}

// record returns the record of a request (see recorder.submitted).
func (p *retrying) record(list *[]*Submit, cl, room string, msg []byte) *Submit {
	p.rec.mu.Lock()
	defer p.rec.mu.Unlock()
	s, _ := p.rec.submitted(list, cl, room, msg)
	return s
}

// resend makes call, again after a failure (with jittered backoff), until
// it is answered, ctx ends or p.GiveUp has passed, each call bounded by
// p.AttemptTimeout. call returns the answer and what it tells of the
// request. The outcome and the attempts (over every call with the same
// bytes) are recorded in s, if not nil.
func resend[T any](ctx context.Context, p *retrying, s *Submit, call func(context.Context) (T, answerOutcome, error)) (T, error) {
	deadline := time.Now().Add(p.GiveUp)
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.AttemptTimeout)
		resp, v, err := call(actx)
		cancel()
		if s != nil {
			p.rec.mu.Lock()
			s.Attempts++
			if err == nil && (v.acked || v.refusal != "") {
				s.Acked, s.Refusal, s.Answered = v.acked, v.refusal, time.Now()
			}
			p.rec.mu.Unlock()
		}
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return resp, err
		}
		// Backoff with full jitter, 50 ms .. 1 s.
		p.rngMu.Lock()
		d := time.Duration(p.rng.Int64N(int64(min(time.Second, 50*time.Millisecond<<min(attempt, 5))))) + 10*time.Millisecond
		p.rngMu.Unlock()
		select {
		case <-ctx.Done():
			return resp, err
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
	read := time.Now()
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
		if _, ok := m[e.Seq]; !ok {
			m[e.Seq] = Delivery{Pos: e.Seq, Room: e.Room, Message: b, Read: read}
		}
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
// with the domain's certificate (through the proxy for a cluster).
func clientAPIHTTP(t *Topology, domain string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		ForceAttemptHTTP2:   true,
		TLSClientConfig:     &tls.Config{RootCAs: t.CAPool, ServerName: domain, MinVersion: tls.VersionTLS13},
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		TLSHandshakeTimeout: 3 * time.Second,
	}}
}

// fleet creates the scenario's clients: one client API connection per
// provider (package client/remote, at a cluster through its client API
// proxy, at a single node directly), behind a retrying Provider. With
// client links, each provider's connection goes through its link
// (clientLink), and every request is sent once: the SDK's own resends
// (client.ErrOutcomeUnknown) are the only ones.
type fleet struct {
	rec    *recorder
	remote map[string]*remote.Provider
	prov   map[string]*retrying
	// hc is the HTTP client of each provider's client API.
	hc map[string]*http.Client
	// links are the client links by provider (nil without them).
	links map[string]*clientLink
}

func newFleet(t *Topology, rec *recorder, rng *rand.Rand, attemptTimeout, giveUp time.Duration, linked bool) (_ *fleet, err error) {
	addr := map[string]string{}
	for _, c := range t.Clusters {
		addr[c.Domain] = c.ClientProxy.Addr()
	}
	for _, f := range t.Followers {
		addr[f.Domain] = f.Client
	}
	f := &fleet{rec: rec, remote: map[string]*remote.Provider{}, prov: map[string]*retrying{}, hc: map[string]*http.Client{}}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	for _, dom := range []string{HubDomain, BDomain, CDomain} {
		hc := clientAPIHTTP(t, dom)
		if linked {
			l, err := newClientLink(addr[dom], hc.Transport, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())))
			if err != nil {
				return nil, err
			}
			if f.links == nil {
				f.links = map[string]*clientLink{}
			}
			f.links[dom], addr[dom], hc.Transport = l, l.addr(), l
		}
		f.hc[dom] = hc
		rp, err := remote.New("https://"+addr[dom], hc)
		if err != nil {
			return nil, err
		}
		f.remote[dom] = rp
		p := &retrying{Provider: rp, rec: rec, AttemptTimeout: attemptTimeout, GiveUp: giveUp, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))}
		if linked {
			p.GiveUp = 0
		}
		f.prov[dom] = p
	}
	return f, nil
}

// close stops the client links.
func (f *fleet) close() {
	for _, l := range f.links {
		l.close()
	}
}

// client creates the client mimi://dom/d/<name>1 of user mimi://dom/u/<name>
// (draft-ralston-mimi-protocol-02, Section 3) and gives its signing key to
// the provider connection; it is not registered yet.
func (f *fleet) client(dom, name string, sender bool) (*simClient, error) {
	sc := &simClient{user: "mimi://" + dom + "/u/" + name, id: "mimi://" + dom + "/d/" + name + "1", domain: dom, sender: sender}
	var err error
	if sc.c, err = client.New(sc.user, sc.id, cipher.X25519_AES128GCM_SHA256_Ed25519, f.prov[dom], nil); err != nil {
		return nil, err
	}
	s, err := remote.SignerFor(sc.c)
	if err != nil {
		return nil, err
	}
	if err := f.remote[dom].AddSigner(s); err != nil {
		return nil, err
	}
	return sc, nil
}

// newClients creates, registers and publishes KeyPackages for senders and
// receivers at every provider.
func newClients(ctx context.Context, f *fleet, senders, receivers, keyPackages int) ([]*simClient, error) {
	names := map[string][]string{HubDomain: {"alice", "amy", "ann", "abe"}, BDomain: {"bob", "ben", "bea", "bud"}, CDomain: {"carol", "cid", "cy", "cat"}}
	var out []*simClient
	for _, dom := range []string{HubDomain, BDomain, CDomain} {
		for i := 0; i < senders+receivers; i++ {
			var name string
			if i < len(names[dom]) {
				name = names[dom][i]
			} else {
				name = fmt.Sprintf("%s%d", names[dom][0], i)
			}
			sc, err := f.client(dom, name, i < senders)
			if err != nil {
				return nil, err
			}
			if err := sc.c.Enroll(ctx, keyPackages); err != nil {
				return nil, fmt.Errorf("chaos: %w", err)
			}
			out = append(out, sc)
		}
	}
	return out, nil
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
// every other user of cs, each in its own commit with a Welcome
// (draft-ralston-mimi-protocol-02, Sections 3.1 to 3.3), and the room's
// admin, if any (admins[i] for rooms[i]), with the role admin; then it syncs every client until it is in each of its rooms at
// the creator's epoch.
func setupRooms(ctx context.Context, cs []*simClient, rooms []string, admins []*simClient) error {
	creator := cs[0]
	for i, room := range rooms {
		if err := creator.c.CreateRoom(ctx, room, roomPolicy(room), []mimi.Participant{{User: creator.user, Role: "admin"}}); err != nil {
			return fmt.Errorf("chaos: create %s: %w", room, err)
		}
		for _, sc := range cs[1:] {
			if err := creator.c.AddUser(ctx, room, sc.user, "member"); err != nil {
				return fmt.Errorf("chaos: add %s to %s: %w", sc.user, room, err)
			}
		}
		if i < len(admins) {
			if err := creator.c.AddUser(ctx, room, admins[i].user, "admin"); err != nil {
				return fmt.Errorf("chaos: add %s to %s: %w", admins[i].user, room, err)
			}
		}
	}
	joined := func(sc *simClient, rooms []string) error {
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
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("chaos: %s did not join every room: %w", sc.id, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	for _, sc := range cs {
		if err := joined(sc, rooms); err != nil {
			return err
		}
	}
	for i, a := range admins {
		if err := joined(a, rooms[i:i+1]); err != nil {
			return err
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

// runReader syncs a receive-only client every readEvery until stop is
// closed (draft-ralston-mimi-protocol-02, Section 5.5), so that faults of
// its client link hit its inbox reads and acknowledgements; a failed Sync
// is tried again at the next round.
func runReader(ctx context.Context, sc *simClient, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(readEvery):
		}
		_ = sc.sync(ctx)
	}
}

// readEvery is the pause of a receive-only client between two Syncs
// during the load, with client links.
const readEvery = 250 * time.Millisecond

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
