package fanout_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/fanout"
	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/internal/testpki"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/raftnode"
)

const (
	hubDomain      = "hub.example"
	followerDomain = "follower.example"
	downDomain     = "down.example" // has no server
	room1          = "mimi://hub.example/r/room1"
	room2          = "mimi://hub.example/r/room2"
)

// followerServer is a follower provider's /notify endpoint over mutual TLS
// (draft-ralston-mimi-protocol-02, Sections 4.1 and 5.5). It answers its
// first request with 503 and Retry-After: 1, then 201, and processes a
// body only the first time it sees it from a hub.
type followerServer struct {
	mu       sync.Mutex
	calls    []notifyCall
	seen     map[[32]byte]bool
	accepted [][]byte
}

type notifyCall struct {
	at     time.Time
	peer   string
	id     string
	status int
	body   []byte
}

func (f *followerServer) handle(w http.ResponseWriter, r *http.Request) {
	body, err := transport.ReadBody(w, r)
	if err != nil {
		return
	}
	peer, _ := transport.PeerFromContext(r.Context())
	f.mu.Lock()
	defer f.mu.Unlock()
	c := notifyCall{at: time.Now(), peer: peer.Domain, id: r.PathValue("id"), body: body, status: http.StatusCreated}
	if _, err := mimi.UnmarshalFanout(body); err != nil {
		c.status = http.StatusBadRequest
	} else if len(f.calls) == 0 {
		c.status = http.StatusServiceUnavailable
	}
	f.calls = append(f.calls, c)
	switch c.status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	case http.StatusCreated:
		h := sha256.Sum256(body)
		if !f.seen[h] {
			f.seen[h] = true
			f.accepted = append(f.accepted, body)
		}
	}
	w.WriteHeader(c.status)
}

func (f *followerServer) snapshot() ([]notifyCall, [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls), slices.Clone(f.accepted)
}

// startFollower serves a followerServer on loopback and returns its
// address.
func startFollower(t *testing.T, ca *testpki.CA, f *followerServer) string {
	t.Helper()
	srv, err := transport.NewServer(transport.ServerConfig{
		Domains:   []transport.Domain{{Name: followerDomain, Certificate: ca.MustIssue(t, followerDomain)}},
		ClientCAs: ca.Pool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(mimi.WellKnownDirectory, srv.Authenticate(srv.DirectoryHandler()))
	mux.Handle("POST "+transport.Notify.Path()+"{id...}", srv.Authenticate(http.HandlerFunc(f.handle)))
	hs := srv.HTTPServer(mux)
	hs.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-done
	})
	return ln.Addr().String()
}

// hub is a single-node hub: a projections.Machine replicated by a
// standalone raftnode.
type hub struct {
	t    *testing.T
	m    *projections.Machine
	node *raftnode.Node[projections.Result]
	ts   uint64
}

func newHub(t *testing.T) *hub {
	t.Helper()
	dir := t.TempDir()
	m, err := projections.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := raftnode.Open[projections.Result](raftnode.Config{
		DataDir:            filepath.Join(dir, "raft"),
		HeartbeatTimeout:   200 * time.Millisecond,
		ElectionTimeout:    200 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		Logger:             hclog.NewNullLogger(),
	}, m, nil)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := node.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		m.Close()
	})
	waitFor(t, 10*time.Second, "leadership", node.IsLeader)
	return &hub{t: t, m: m, node: node, ts: 1_700_000_000_000}
}

// apply replicates one command made of events of room and returns their
// timestamp.
func (h *hub) apply(room string, bodies ...eventlog.Body) uint64 {
	h.t.Helper()
	h.ts += 1000
	var ops []projections.Op
	for _, b := range bodies {
		ops = append(ops, projections.EventOp(room, h.ts, b))
	}
	cmd, err := projections.EncodeCommand(&projections.Command{Ops: ops})
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := h.node.Apply(context.Background(), cmd)
	if err != nil || res.Err != nil {
		h.t.Fatalf("apply: %v %v", err, res.Err)
	}
	return h.ts
}

// message accepts an application message in room and queues it for dests.
func (h *hub) message(room, id string, dests ...string) uint64 {
	return h.apply(room,
		&eventlog.ApplicationMessageAccepted{Epoch: 0, Message: privMsg(h.t, id), Sender: "mimi://hub.example/d/alice-1"},
		&eventlog.FanoutEnqueued{Destinations: dests, Back: 1, Part: eventlog.PartMessage})
}

// TestEndToEnd runs the engine over a real projections.Machine replicated
// by a standalone raftnode, sending over mutual TLS with
// httpapi/transport to a follower that answers 503 with Retry-After: 1 and
// then recovers.
func TestEndToEnd(t *testing.T) {
	ca := testpki.MustNew(t, "fanout test CA")
	follower := &followerServer{seen: map[[32]byte]bool{}}
	addr := startFollower(t, ca, follower)
	client, err := transport.NewClient(transport.ClientConfig{
		Source:      hubDomain,
		Certificate: ca.MustIssue(t, hubDomain),
		RootCAs:     ca.Pool(),
		Resolver:    transport.StaticResolver(map[string]string{followerDomain: addr}),
		Timeout:     5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)

	h := newHub(t)
	tree := treeBytes(t, "epoch-1")
	for _, r := range []string{room1, room2} {
		h.apply(r, &eventlog.RoomCreated{Hub: hubDomain, Creator: "mimi://hub.example/u/alice", RatchetTree: treeBytes(t, "epoch-0")})
	}
	// Room 1: four messages, then a commit adding a follower user, with
	// its Welcome; room 2: two messages; a message for a provider that
	// is down.
	type sent struct {
		id string
		ts uint64
	}
	var want []sent
	for _, id := range []string{"r1-1", "r1-2", "r1-3", "r1-4"} {
		want = append(want, sent{id, h.message(room1, id, followerDomain)})
	}
	commitTS := h.apply(room1,
		&eventlog.CommitAccepted{Epoch: 1, Commit: privMsg(t, "r1-commit"), Welcome: welcomeMsg(t, "w1"),
			WelcomeRoutes: []eventlog.WelcomeRoute{{Ref: []byte("kp-ref-bob"), Provider: followerDomain}},
			GroupInfo:     []byte("group-info-1"), RatchetTree: tree, Members: []string{"mimi://follower.example/d/bob-1", "mimi://hub.example/d/alice-1"},
			Sender: "mimi://hub.example/d/alice-1"},
		&eventlog.FanoutEnqueued{Destinations: []string{followerDomain}, Back: 1, Part: eventlog.PartMessage},
		&eventlog.FanoutEnqueued{Destinations: []string{followerDomain}, Back: 2, Part: eventlog.PartWelcome})
	want = append(want, sent{"r1-commit", commitTS}, sent{"W:w1", commitTS})
	for _, id := range []string{"r2-1", "r2-2"} {
		want = append(want, sent{id, h.message(room2, id, followerDomain)})
	}
	h.message(room2, "r2-lost", downDomain)

	var rl retryLog
	e, err := fanout.New(fanout.Config{
		Store:        fanout.NewMachineStore(h.m),
		Acker:        fanout.NewRaftAcker(h.node),
		Sender:       fanout.NewTransportSender(client),
		IsLeader:     h.node.IsLeader,
		BackoffBase:  10 * time.Millisecond,
		BackoffCap:   100 * time.Millisecond,
		ScanInterval: time.Minute, // the start-up scan and Kick only
		SendTimeout:  5 * time.Second,
		Logger:       quietLogger(),
		Metrics:      rl.metrics(),
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := runEngine(t, e)
	cursor := func(d string) projections.Cursor {
		c, err := h.m.FanoutCursor(d)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	waitFor(t, 10*time.Second, "delivery to the follower", func() bool { return cursor(followerDomain).Acked == uint64(len(want)) })

	calls, accepted := follower.snapshot()
	// One round, a body per room sent together. The follower answers its
	// first request 503 (whichever room's body came first): that body is
	// sent again, the same bytes, no sooner than Retry-After allows; the
	// other is answered 201 once and not sent again.
	byID := map[string][]notifyCall{}
	for _, c := range calls {
		if c.peer != hubDomain {
			t.Fatalf("authenticated peer %q", c.peer)
		}
		if c.id != "hub.example/r/room1" && c.id != "hub.example/r/room2" {
			t.Fatalf("notify path %q", c.id)
		}
		byID[c.id] = append(byID[c.id], c)
	}
	refused, other := byID[calls[0].id], byID["hub.example/r/room1"]
	if calls[0].id == "hub.example/r/room1" {
		other = byID["hub.example/r/room2"]
	}
	if len(calls) != 3 || len(refused) != 2 || refused[0].status != 503 || refused[1].status != 201 || len(other) != 1 || other[0].status != 201 {
		t.Fatalf("follower saw %d calls: %+v", len(calls), calls)
	}
	if gap := refused[1].at.Sub(refused[0].at); gap < time.Second {
		t.Fatalf("retried %v after a 503 with Retry-After: 1", gap)
	} else {
		t.Logf("retry came %v after the 503 with Retry-After: 1", gap)
	}
	if !bytes.Equal(refused[0].body, refused[1].body) {
		t.Fatal("the retry after 503 sent a different body")
	}
	// Every message exactly once, in its room's order, with its
	// acceptance time; the Welcome with the new epoch's tree.
	var got []sent
	for _, b := range accepted {
		msgs, err := mimi.UnmarshalFanout(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range msgs {
			got = append(got, sent{msgID(&msgs[i]), msgs[i].Timestamp})
			if rto := msgs[i].RatchetTreeOption; rto != nil {
				enc, err := codec.Marshal(&rto.Tree)
				if err != nil || !bytes.Equal(enc, tree) {
					t.Fatalf("Welcome tree %x, want the commit's %x", enc, tree)
				}
			}
		}
	}
	// The rooms' bodies were taken in either order.
	byRoom := func(l []sent) (r1, r2 []sent) {
		for _, m := range l {
			if strings.HasPrefix(m.id, "r2-") {
				r2 = append(r2, m)
			} else {
				r1 = append(r1, m)
			}
		}
		return r1, r2
	}
	g1, g2 := byRoom(got)
	w1, w2 := byRoom(want)
	if !slices.Equal(g1, w1) || !slices.Equal(g2, w2) {
		t.Fatalf("follower processed\n %v\nwant, in each room's order,\n %v", got, want)
	}

	// The acknowledgements are FanoutDelivered events in the log.
	evs, err := h.m.Events(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var acks []uint64
	for _, ev := range evs {
		if fd, ok := ev.Body.(*eventlog.FanoutDelivered); ok && fd.Destination == followerDomain {
			acks = append(acks, fd.UpTo)
		}
	}
	if !slices.Equal(acks, []uint64{8}) {
		t.Fatalf("FanoutDelivered up to %v, want [8] (one round)", acks)
	}

	// New traffic: the provider kicks, the engine delivers at once.
	start := time.Now()
	want = append(want, sent{"r1-5", h.message(room1, "r1-5", followerDomain)})
	e.Kick(followerDomain)
	waitFor(t, 5*time.Second, "kicked delivery", func() bool { return cursor(followerDomain).Acked == uint64(len(want)) })
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("kicked delivery took %v", d)
	}

	// The provider that is down has not held anything up and keeps its
	// backlog. (The cursor moves when the acknowledgement is applied,
	// a moment before the engine records its success.)
	var st []fanout.DestinationStatus
	waitFor(t, 5*time.Second, "status", func() bool {
		if st, err = e.Status(); err != nil {
			t.Fatal(err)
		}
		return len(st) == 2 && st[1].Delivered == 9
	})
	if len(st) != 2 || st[0].Destination != downDomain || st[1].Destination != followerDomain {
		t.Fatalf("status %+v", st)
	}
	if down := st[0]; down.Backlog != 1 || down.Acked != 0 || down.Attempts == 0 || down.LastError == "" || down.NextRetry.IsZero() {
		t.Fatalf("down.example status %+v", down)
	}
	if f := st[1]; f.Backlog != 0 || f.Acked != 9 || f.Enqueued != 9 || f.LastStatus != 201 || f.Delivered != 9 || f.TotalAttempts != 3 {
		t.Fatalf("follower status %+v", f)
	}
	stop()

	// RaftAcker: a repeated acknowledgement is success, one beyond the
	// queue is an error.
	acker := fanout.NewRaftAcker(h.node)
	if err := acker.Ack(context.Background(), followerDomain, 9); err != nil {
		t.Fatalf("stale ack: %v", err)
	}
	if err := acker.Ack(context.Background(), followerDomain, 10); !errors.Is(err, projections.ErrAckBeyondQueue) {
		t.Fatalf("ack beyond the queue: %v", err)
	}
	if c := cursor(followerDomain); c.Acked != 9 {
		t.Fatalf("cursor %+v", c)
	}
}

// fakePoster records what TransportSender posts.
type fakePoster struct {
	target string
	ep     transport.Endpoint
	id     mimi.URI
	resp   *transport.Response
	err    error
}

func (p *fakePoster) Post(_ context.Context, target string, ep transport.Endpoint, id mimi.URI, _ []byte) (*transport.Response, error) {
	p.target, p.ep, p.id = target, ep, id
	return p.resp, p.err
}

func TestTransportSender(t *testing.T) {
	p := &fakePoster{resp: &transport.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"7"}}}}
	s := fanout.NewTransportSender(p)
	res, err := s.Send(context.Background(), followerDomain, room1, []byte("body"))
	if err != nil || res.StatusCode != 503 || res.RetryAfter != "7" || p.target != followerDomain || p.ep != transport.Notify || p.id.String() != room1 {
		t.Fatalf("%+v %v; posted %+v", res, err, p)
	}
	for _, room := range []string{"room1", "mimi://hub.example/u/alice", ""} {
		if _, err := s.Send(context.Background(), followerDomain, room, nil); !errors.Is(err, fanout.ErrPermanent) {
			t.Fatalf("room %q: %v", room, err)
		}
	}
	p.err = transport.ErrBadTarget
	if _, err := s.Send(context.Background(), "bad target", room1, nil); !errors.Is(err, fanout.ErrPermanent) {
		t.Fatalf("bad target: %v", err)
	}
	p.err = errors.New("connection refused")
	if _, err := s.Send(context.Background(), followerDomain, room1, nil); err == nil || errors.Is(err, fanout.ErrPermanent) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("transient error: %v", err)
	}
}
