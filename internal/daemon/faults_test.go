package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/fanout"
	"github.com/openmimi/mimi/internal/devpki"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

// The fault scenarios of the reliability issue, with real daemons in one
// process (draft-ralston-mimi-protocol-02, Section 5.5: the hub's fanout
// to follower providers). a.example hosts the room (the hub); carol at
// c.example submits every message and commit through her provider (the
// federation path c -> a); bob at b.example only receives, and his inbox
// is checked against the hub's room log after every fault. Set
// MIMI_RELIABILITY_LONG=1 for more messages and rounds.

const faultRoom = "mimi://a.example/r/faults"

// faultSizes is the workload: messages per phase and rounds.
type faultSizes struct {
	perPhase int           // messages carol sends per phase
	rounds   int           // rounds of the fault cycles
	outage   time.Duration // how long b.example stays down
}

func sizes() faultSizes {
	if os.Getenv("MIMI_RELIABILITY_LONG") == "1" {
		return faultSizes{perPhase: 60, rounds: 3, outage: 20 * time.Second}
	}
	return faultSizes{perPhase: 8, rounds: 1, outage: 3 * time.Second}
}

// faultMode is what the fault proxy in front of b.example does with a
// request.
type faultMode int32

const (
	passThrough faultMode = iota
	answer500             // 500 without forwarding
	answer503             // 503 with Retry-After: 1, without forwarding
	answer429             // 429 without forwarding
	slow                  // wait, then forward
	lostAnswer            // forward (b processes it), then drop the connection: the hub never sees the 201
	hang                  // never answer: the hub's SendTimeout ends the request
)

func (m faultMode) String() string {
	return [...]string{"pass", "500", "503+Retry-After", "429", "slow", "lost answer", "hang"}[m]
}

// faultProxy is a loopback HTTPS server terminating mutual TLS with
// b.example's certificate and forwarding to b.example's real listener
// with a.example's client certificate, injecting faults on the way.
type faultProxy struct {
	ln       net.Listener
	mode     atomic.Int32
	srv      *http.Server
	rp       *httputil.ReverseProxy
	tr       *http.Transport
	injected [7]atomic.Int64
}

func (p *faultProxy) set(m faultMode) { p.mode.Store(int32(m)) }

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := faultMode(p.mode.Load())
	p.injected[m].Add(1)
	switch m {
	case answer500:
		http.Error(w, "injected", http.StatusInternalServerError)
	case answer503:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "injected", http.StatusServiceUnavailable)
	case answer429:
		http.Error(w, "injected", http.StatusTooManyRequests)
	case slow:
		select {
		case <-time.After(700 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		p.rp.ServeHTTP(w, r)
	case lostAnswer:
		p.rp.ServeHTTP(&discard{h: http.Header{}}, r)
		panic(http.ErrAbortHandler)
	case hang:
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
		panic(http.ErrAbortHandler)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// discard is a ResponseWriter that throws the response away.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// startProxy serves the fault proxy on ln once b.example's certificate
// exists.
func startProxy(t *testing.T, f *fabric, ln net.Listener, bAddr string) *faultProxy {
	t.Helper()
	a, b := f.nodes["a.example"], f.nodes["b.example"]
	bCert, err := tls.LoadX509KeyPair(filepath.Join(b.dir, TLSDir, "b.example.pem"), filepath.Join(b.dir, TLSDir, "b.example-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	aCert, err := tls.LoadX509KeyPair(filepath.Join(a.dir, TLSDir, "a.example.pem"), filepath.Join(a.dir, TLSDir, "a.example-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca, _, err := devpki.LoadOrCreate(f.caDir, "")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln}
	p.tr = &http.Transport{
		TLSClientConfig:   &tls.Config{Certificates: []tls.Certificate{aCert}, RootCAs: ca.Pool(), ServerName: "b.example", MinVersion: tls.VersionTLS13},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, bAddr)
		},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "https", "b.example"
			pr.Out.Host = pr.In.Host
		},
		Transport: p.tr,
	}
	p.srv = &http.Server{
		Handler:   p,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{bCert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS13},
	}
	go func() { _ = p.srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		_ = p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

// newFaultFabric is newFabric with, when proxied, a.example and c.example
// resolving b.example to a fault proxy instead of b's listener.
func newFaultFabric(t *testing.T, ctx context.Context, proxied bool, hook func(domain string, c *Config)) (*fabric, *faultProxy) {
	tmp := t.TempDir()
	f := &fabric{
		t: t, ctx: ctx, caDir: filepath.Join(tmp, "ca"),
		resolve: map[string]string{}, nodes: map[string]*node{},
		http: &http.Client{Timeout: 10 * time.Second},
		hook: hook,
	}
	t.Cleanup(f.http.CloseIdleConnections)
	domains := []string{"a.example", "b.example", "c.example"}
	lns := map[string][2]net.Listener{}
	for _, d := range domains {
		fl, ml := listenLoopback(t, "127.0.0.1:0"), listenLoopback(t, "127.0.0.1:0")
		lns[d] = [2]net.Listener{fl, ml}
		f.resolve[d] = fl.Addr().String()
		f.nodes[d] = &node{domain: d, dir: filepath.Join(tmp, d), addr: fl.Addr().String(), metricsAddr: ml.Addr().String()}
	}
	var pln net.Listener
	if proxied {
		pln = listenLoopback(t, "127.0.0.1:0")
		f.resolve["b.example"] = pln.Addr().String()
	}
	for _, d := range domains {
		f.start(d, lns[d][0], lns[d][1])
	}
	for _, d := range domains {
		if err := f.nodes[d].d.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var p *faultProxy
	if proxied {
		p = startProxy(t, f, pln, f.nodes["b.example"].addr)
	}
	return f, p
}

// faultRig is the room and its three clients.
type faultRig struct {
	t          *testing.T
	ctx        context.Context
	f          *fabric
	a, b, c    *node
	bob, carol *providertest.Client
	bg, cg     *mls.Group
	joinSeq    uint64   // bob's Welcome came with the commit at this RoomSeq
	sent       [][]byte // every MLSMessage carol had accepted, in order
	texts      []string // the plaintext of each sent application message ("" for commits)
	processed  int      // entries of bob's inbox processed by bg
	checked    int      // inbox entries compared with the hub log (cumulative)
	restarts   int
}

func newFaultRig(t *testing.T, ctx context.Context, f *fabric) *faultRig {
	r := &faultRig{t: t, ctx: ctx, f: f, a: f.nodes["a.example"], b: f.nodes["b.example"], c: f.nodes["c.example"]}
	alice := providertest.NewClient(t, "a.example", "alice", "alice1")
	r.bob = providertest.NewClient(t, "b.example", "bob", "bob1")
	r.carol = providertest.NewClient(t, "c.example", "carol", "carol1")
	register(t, ctx, r.a, alice, 1)
	register(t, ctx, r.b, r.bob, 2)
	register(t, ctx, r.c, r.carol, 2)
	rm := providertest.Room(faultRoom, map[string]string{alice.User: "admin"})
	g := providertest.CreateGroup(t, alice, r.a.d.Provider().HubSender(), rm)
	gi, err := g.GroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.a.d.Provider().CreateRoom(ctx, alice.Client, faultRoom, gi.GroupInfo, g.RatchetTree()); err != nil {
		t.Fatal(err)
	}
	props := []*wire.Proposal{providertest.AppSync(&mimi.ChangeSet{Add: []mimi.Participant{
		{User: r.bob.User, Role: "member"}, {User: r.carol.User, Role: "admin"},
	}})}
	for _, u := range []string{r.bob.User, r.carol.User} {
		km, err := r.a.d.Provider().LocalKeyMaterial(ctx, alice.Client, providertest.KeyMaterialRequest(alice.User, u, faultRoom))
		if err != nil || km.UserStatus != mimi.UserSuccess || len(km.Clients) != 1 {
			t.Fatalf("key material of %s: %v %+v", u, err, km)
		}
		props = append(props, providertest.Add(km.Clients[0].KeyPackage))
	}
	pc, req := providertest.Commit(t, g, &mls.CommitOptions{Proposals: props})
	ur, err := r.a.d.Provider().LocalUpdate(ctx, alice.Client, faultRoom, req)
	if err != nil || ur.Code != mimi.UpdateSuccess {
		t.Fatalf("commit: %v %+v", err, ur)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	evs, err := r.a.d.Machine().RoomEvents(faultRoom, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if _, ok := ev.Body.(*eventlog.CommitAccepted); ok {
			r.joinSeq = ev.RoomSeq
		}
	}
	r.bg = r.welcome(r.b, r.bob)
	r.cg = r.welcome(r.c, r.carol)
	r.processed = 1 // the Welcome
	return r
}

// welcome waits for the Welcome in c's inbox at n and joins.
func (r *faultRig) welcome(n *node, c *providertest.Client) *mls.Group {
	r.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; {
		es, err := n.d.Provider().Inbox(c.Client, 0, 0)
		if err != nil {
			r.t.Fatal(err)
		}
		if len(es) > 0 {
			return c.Join(r.t, &es[0].Message)
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no Welcome for %s", c.Client)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// send has carol submit count items through c.example: an empty commit
// (with an UpdatePath) every fourth, application messages otherwise.
func (r *faultRig) send(count int) {
	r.t.Helper()
	p := r.c.d.Provider()
	for range count {
		i := len(r.sent)
		if i%4 == 3 {
			pc, req := providertest.Commit(r.t, r.cg, &mls.CommitOptions{})
			ur, err := p.LocalUpdate(r.ctx, r.carol.Client, faultRoom, req)
			if err != nil || ur.Code != mimi.UpdateSuccess {
				r.t.Fatalf("carol's commit %d: %v %+v", i, err, ur)
			}
			if err := pc.Merge(); err != nil {
				r.t.Fatal(err)
			}
			b, err := pc.Message.MarshalBinary()
			if err != nil {
				r.t.Fatal(err)
			}
			r.sent, r.texts = append(r.sent, b), append(r.texts, "")
			continue
		}
		text := fmt.Sprintf("carol-%d", i)
		req := providertest.Message(r.t, r.cg, text)
		sm, err := p.LocalSubmitMessage(r.ctx, r.carol.Client, faultRoom, req)
		if err != nil || sm.Code != mimi.SubmitAccepted {
			r.t.Fatalf("carol's message %d: %v %+v", i, err, sm)
		}
		b, err := req.AppMessage.MarshalBinary()
		if err != nil {
			r.t.Fatal(err)
		}
		r.sent, r.texts = append(r.sent, b), append(r.texts, text)
	}
}

// hubLog returns the room's messages and commits after bob's join, from
// the hub's log (projections RoomEvents), and checks that they are
// exactly what carol had accepted, in order: nothing acknowledged was
// lost or duplicated at the hub.
func (r *faultRig) hubLog() [][]byte {
	r.t.Helper()
	evs, err := r.a.d.Machine().RoomEvents(faultRoom, r.joinSeq+1, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	var out [][]byte
	last := r.joinSeq
	for _, ev := range evs {
		if ev.RoomSeq <= last {
			r.t.Fatalf("hub log out of order: RoomSeq %d after %d", ev.RoomSeq, last)
		}
		last = ev.RoomSeq
		switch b := ev.Body.(type) {
		case *eventlog.ApplicationMessageAccepted:
			out = append(out, b.Message)
		case *eventlog.CommitAccepted:
			out = append(out, b.Commit)
		}
	}
	if len(out) != len(r.sent) {
		r.t.Fatalf("hub log has %d messages and commits after the join, carol had %d accepted", len(out), len(r.sent))
	}
	for i := range out {
		if !bytes.Equal(out[i], r.sent[i]) {
			r.t.Fatalf("hub log entry %d differs from carol's %d-th accepted item", i, i)
		}
	}
	return out
}

// waitDelivered waits until bob's inbox holds everything in the hub's log
// and a.example's cursor for b.example is fully acknowledged, then checks
// exactly-once, in-order delivery against the hub log and has bob's MLS
// group process the new entries (decrypting each message, applying each
// commit).
func (r *faultRig) waitDelivered(timeout time.Duration) {
	r.t.Helper()
	want := r.hubLog()
	deadline := time.Now().Add(timeout)
	for {
		r.a.d.Fanout().Kick("b.example")
		cur, err := r.a.d.Machine().FanoutCursor("b.example")
		if err != nil {
			r.t.Fatal(err)
		}
		es, err := r.b.d.Provider().Inbox(r.bob.Client, 0, 0)
		if err != nil {
			r.t.Fatal(err)
		}
		if cur.Pending() == 0 && len(es) >= len(want)+1 {
			r.checkInbox(es, want)
			return
		}
		if time.Now().After(deadline) {
			st, _ := r.a.d.Fanout().Status()
			r.t.Fatalf("bob has %d of %d entries after %v; cursor %+v; fanout %+v", len(es)-1, len(want), timeout, cur, st)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (r *faultRig) checkInbox(es []provider.InboxEntry, want [][]byte) {
	r.t.Helper()
	if es[0].Message.Message.Welcome == nil {
		r.t.Fatal("bob's first inbox entry is not the Welcome")
	}
	got := es[1:]
	if len(got) != len(want) {
		r.t.Fatalf("bob's inbox has %d entries after the Welcome, the hub log %d: duplicates or losses", len(got), len(want))
	}
	var prevN uint64
	for i, e := range got {
		if e.N <= prevN || e.Room != faultRoom {
			r.t.Fatalf("inbox entry %d: N %d after %d, room %q", i, e.N, prevN, e.Room)
		}
		prevN = e.N
		b, err := e.Message.Message.MarshalBinary()
		if err != nil {
			r.t.Fatal(err)
		}
		if !bytes.Equal(b, want[i]) {
			r.t.Fatalf("bob's inbox entry %d is not the hub's %d-th message or commit (order or content)", i, i)
		}
	}
	r.checked += len(got) - (r.processed - 1)
	for i := r.processed - 1; i < len(got); i++ {
		p, err := r.bg.Process(&got[i].Message.Message)
		if err != nil {
			r.t.Fatalf("bob processes entry %d: %v", i, err)
		}
		if r.texts[i] == "" {
			if p.Commit == nil {
				r.t.Fatalf("entry %d: want a commit, got content type %v", i, p.ContentType)
			}
		} else if string(p.ApplicationData) != r.texts[i] {
			r.t.Fatalf("entry %d: bob reads %q, want %q", i, p.ApplicationData, r.texts[i])
		}
	}
	r.processed = len(got) + 1
	if r.bg.Epoch() != r.cg.Epoch() {
		r.t.Fatalf("bob at epoch %d, carol at %d", r.bg.Epoch(), r.cg.Epoch())
	}
}

// restart closes the daemon of n and starts it again on the same data
// directory and addresses.
func (r *faultRig) restart(n *node, down time.Duration) {
	r.t.Helper()
	if err := n.d.Close(); err != nil {
		r.t.Fatal(err)
	}
	time.Sleep(down)
	r.f.start(n.domain, nil, nil)
	if err := n.d.WaitReady(r.ctx); err != nil {
		r.t.Fatal(err)
	}
	r.restarts++
}

// retryWatch polls the hub's fanout status for b.example and checks that
// no scheduled retry is further away than the bounded backoff allows:
// min(cap, base*2^(n-1)) after the n-th consecutive failure, or the
// Retry-After the follower asked for (at most 1 s here).
type retryWatch struct {
	mu          sync.Mutex
	maxAttempts int
	maxWait     time.Duration
	violations  []string
	stop        chan struct{}
	stopOnce    sync.Once
	done        chan struct{}
}

// halt stops the watcher (idempotent); defer it after the fabric's
// closeAll so it runs first.
func (w *retryWatch) halt() {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
}

func watchRetries(get func() *Daemon) *retryWatch {
	w := &retryWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			d := get()
			if d == nil {
				continue
			}
			sts, err := d.Fanout().Status()
			if err != nil {
				continue
			}
			now := time.Now()
			for _, s := range sts {
				if s.Destination != "b.example" || s.NextRetry.IsZero() {
					continue
				}
				wait := s.NextRetry.Sub(now)
				bound := fanout.DefaultBackoffCap
				if n := s.Attempts; n >= 1 && n < 40 {
					bound = min(bound, fanout.DefaultBackoffBase<<(n-1))
				}
				bound = max(bound, time.Second) + 50*time.Millisecond
				w.mu.Lock()
				w.maxAttempts = max(w.maxAttempts, s.Attempts)
				w.maxWait = max(w.maxWait, wait)
				if wait > bound {
					w.violations = append(w.violations, fmt.Sprintf("attempt %d (status %d): next retry in %v, bound %v", s.Attempts, s.LastStatus, wait, bound))
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *retryWatch) finish(t *testing.T) (attempts int, maxWait time.Duration) {
	t.Helper()
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.violations) > 0 {
		t.Errorf("retries beyond the bounded backoff: %s", strings.Join(w.violations, "; "))
	}
	return w.maxAttempts, w.maxWait
}

// retriesTotal sums mimi_fanout_retries_total for b.example on a's
// metrics listener, by status code.
func retriesTotal(f *fabric, n *node) map[string]float64 {
	_, text := f.get(n, "/metrics")
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, MetricFanoutRetries+"{") || !strings.Contains(l, `destination="b.example"`) {
			continue
		}
		i := strings.Index(l, `code="`)
		j := strings.LastIndexByte(l, ' ')
		if i < 0 || j < 0 {
			continue
		}
		code := l[i+6:]
		code = code[:strings.IndexByte(code, '"')]
		v, err := strconv.ParseFloat(l[j+1:], 64)
		if err == nil {
			out[code] += v
		}
	}
	return out
}

// faultFigures are the figures a scenario logs (collected by
// docs/reliability.md).
func (r *faultRig) figures(name string, extra string) {
	r.t.Logf("FIGURES %s: items=%d inbox entries checked=%d restarts=%d %s", name, len(r.sent), r.checked, r.restarts, extra)
}

// TestFaultFollowerOutage: b.example is down for a long outage while the
// hub keeps accepting carol's messages and commits; once b restarts on the
// same data directory bob has everything exactly once and in room order,
// and the hub's retries stayed within the bounded backoff.
func TestFaultFollowerOutage(t *testing.T) {
	sz := sizes()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f, _ := newFaultFabric(t, ctx, false, nil)
	defer f.closeAll()
	r := newFaultRig(t, ctx, f)
	r.send(sz.perPhase)
	r.waitDelivered(60 * time.Second)

	a := r.a.d // a.example is not restarted here
	w := watchRetries(func() *Daemon { return a })
	defer w.halt()
	for range sz.rounds {
		if err := r.b.d.Close(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		// Spread the sends over the outage.
		for range 4 {
			r.send(sz.perPhase / 4)
			time.Sleep(sz.outage / 4)
		}
		for time.Since(start) < sz.outage {
			time.Sleep(50 * time.Millisecond)
		}
		if retriesTotal(f, r.a)["0"] == 0 {
			t.Fatal("no fanout retry (connection refused) counted while b.example was down")
		}
		r.f.start("b.example", nil, nil)
		if err := r.b.d.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		r.restarts++
		back := time.Now()
		r.waitDelivered(3 * time.Minute)
		t.Logf("round: outage %v, caught up %v after b's restart", sz.outage, time.Since(back).Round(time.Millisecond))
	}
	attempts, maxWait := w.finish(t)
	st, _ := a.Fanout().Status()
	var total uint64
	for _, s := range st {
		if s.Destination == "b.example" {
			total = s.TotalAttempts
		}
	}
	r.figures("outage", fmt.Sprintf("rounds=%d outage=%v retries=%v max consecutive failures=%d max backoff seen=%v POSTs=%d",
		sz.rounds, sz.outage, retriesTotal(f, r.a), attempts, maxWait.Round(time.Millisecond), total))
}

// TestFaultFollowerErrors: a fault proxy in front of b.example answers
// 500, 503 with Retry-After, 429, answers slowly, and loses the answer of
// requests b did process (the hub sees a dropped connection after b
// recorded the batch, as on a timeout); after each fault stops everything
// is delivered exactly once and in order.
func TestFaultFollowerErrors(t *testing.T) {
	sz := sizes()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// The hub gives up on a /notify after 1.5 s (the slow phase's 700 ms
	// stays below it; the hang phase never answers).
	f, p := newFaultFabric(t, ctx, true, func(domain string, c *Config) {
		if domain == "a.example" {
			c.Fanout.SendTimeout = Duration(1500 * time.Millisecond)
		}
	})
	defer f.closeAll()
	r := newFaultRig(t, ctx, f)
	r.send(2)
	r.waitDelivered(60 * time.Second)

	a := r.a.d
	w := watchRetries(func() *Daemon { return a })
	defer w.halt()
	for range sz.rounds {
		for _, m := range []faultMode{answer500, answer503, answer429, slow, lostAnswer, hang} {
			before := p.injected[m].Load()
			p.set(m)
			r.send(max(sz.perPhase/2, 2))
			for deadline := time.Now().Add(20 * time.Second); p.injected[m].Load() < before+2 && m != slow && m != lostAnswer; {
				if time.Now().After(deadline) {
					t.Fatalf("mode %v: the hub made %d attempts", m, p.injected[m].Load()-before)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if m == lostAnswer {
				for deadline := time.Now().Add(20 * time.Second); p.injected[m].Load() == before; {
					if time.Now().After(deadline) {
						t.Fatal("no request reached the proxy in lost-answer mode")
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			if m != slow {
				p.set(passThrough)
			}
			r.waitDelivered(90 * time.Second)
			p.set(passThrough)
		}
	}
	attempts, maxWait := w.finish(t)
	var inj []string
	for m := answer500; m <= hang; m++ {
		inj = append(inj, fmt.Sprintf("%v=%d", m, p.injected[m].Load()))
	}
	r.figures("errors", fmt.Sprintf("rounds=%d injected[%s] retries=%v max consecutive failures=%d max backoff seen=%v",
		sz.rounds, strings.Join(inj, " "), retriesTotal(f, r.a), attempts, maxWait.Round(time.Millisecond)))
}

// TestFaultFollowerStorage: b.example's storage fails while the hub
// delivers to it. /notify answers 503 with Retry-After, b turns unready
// and its state does not change; once b is restarted with working
// storage, the hub's retries deliver everything once and in order. The
// command whose state-machine write failed is in b's Raft log and is
// re-applied at the restart, so the retried body overlaps what b has
// taken: the per-message dedup keeps bob's inbox exact.
func TestFaultFollowerStorage(t *testing.T) {
	sz := sizes()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var faulty *faultySM
	var inject atomic.Bool
	inject.Store(true)
	f, _ := newFaultFabric(t, ctx, false, func(domain string, c *Config) {
		if domain == "b.example" && inject.Load() {
			c.testWrapSM = func(m machineSM) machineSM {
				faulty = &faultySM{machineSM: m}
				return faulty
			}
		}
	})
	defer f.closeAll()
	r := newFaultRig(t, ctx, f)
	r.send(2)
	r.waitDelivered(60 * time.Second)

	before, err := r.b.d.Machine().Digest()
	if err != nil {
		t.Fatal(err)
	}
	faulty.fail.Store(true)
	r.send(sz.perPhase)
	var st fanout.DestinationStatus
	for deadline := time.Now().Add(30 * time.Second); st.LastStatus != http.StatusServiceUnavailable; {
		if time.Now().After(deadline) {
			t.Fatalf("the hub never got 503 from b.example: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
		sts, err := r.a.d.Fanout().Status()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sts {
			if s.Destination == "b.example" {
				st = s
			}
		}
	}
	if ok, reason := r.b.d.Ready(); ok || !strings.Contains(reason, "storage failure") {
		t.Fatalf("b.example Ready = %v %q", ok, reason)
	}
	after, err := r.b.d.Machine().Digest()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("b.example's state changed under a storage failure")
	}
	inject.Store(false)
	r.restart(r.b, 100*time.Millisecond)
	r.waitDelivered(90 * time.Second)
	r.figures("follower-storage", fmt.Sprintf("first refusal=%d %q", st.LastStatus, st.LastError))
}

// TestFaultHubRestart: a.example (the hub) is closed while deliveries to
// b.example are pending or in flight (slow follower, answers lost after b
// processed them, follower refusing with 500) and restarted on the same
// data directory: nothing acknowledged is lost or duplicated at bob, and
// room order holds.
func TestFaultHubRestart(t *testing.T) {
	sz := sizes()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f, p := newFaultFabric(t, ctx, true, nil)
	defer f.closeAll()
	r := newFaultRig(t, ctx, f)
	r.send(2)
	r.waitDelivered(60 * time.Second)

	for range sz.rounds {
		for _, m := range []faultMode{slow, lostAnswer, answer500} {
			before := p.injected[m].Load()
			p.set(m)
			r.send(sz.perPhase)
			// Wait for the hub to be mid-delivery.
			for deadline := time.Now().Add(20 * time.Second); p.injected[m].Load() == before; {
				if time.Now().After(deadline) {
					t.Fatalf("mode %v: no delivery attempt before the restart", m)
				}
				time.Sleep(10 * time.Millisecond)
			}
			cur, err := r.a.d.Machine().FanoutCursor("b.example")
			if err != nil {
				t.Fatal(err)
			}
			if m != slow && cur.Pending() == 0 {
				t.Fatalf("mode %v: nothing pending at the restart", m)
			}
			r.restart(r.a, 100*time.Millisecond)
			r.c.d.Transport().CloseIdleConnections()
			p.set(passThrough)
			r.waitDelivered(90 * time.Second)
			// The restarted hub accepts more from c.example.
			r.send(2)
			r.waitDelivered(60 * time.Second)
		}
	}
	r.figures("hub-restart", fmt.Sprintf("rounds=%d", sz.rounds))
}

// TestFaultKeyPackageExpiry: a KeyPackage that expires between its upload
// and a claim is never handed out (RFC 9420, Section 7.2 lifetime;
// draft-ralston-mimi-protocol-02, Section 5.2), while one claimed before
// its not_after is; one already expired at upload is refused.
func TestFaultKeyPackageExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, _ := newFaultFabric(t, ctx, false, nil)
	defer f.closeAll()
	a, b := f.nodes["a.example"], f.nodes["b.example"]
	const kpRoom = "mimi://a.example/r/kp"
	alice, clients := claimSetup(t, ctx, a, b, kpRoom, "dave", "erin")
	dave, erin := clients[0], clients[1]
	clock := providertest.NewClock()
	upload := func(c *providertest.Client, opts *mls.KeyPackageOptions) error {
		_, err := b.d.Provider().UploadKeyPackages(ctx, c.Client, []*wire.KeyPackage{c.KeyPackage(t, opts)})
		return err
	}
	// Already expired at upload (a client clock far behind): refused.
	if err := upload(dave, providertest.Lifetime(clock, -time.Minute)); err == nil {
		t.Fatal("a KeyPackage expired at upload was accepted")
	}
	short := providertest.Lifetime(clock, 4*time.Second)
	notAfter := short.Leaf.Lifetime.NotAfter
	if err := upload(dave, short); err != nil {
		t.Fatal(err)
	}
	if err := upload(dave, nil); err != nil { // default (long) lifetime
		t.Fatal(err)
	}
	if err := upload(erin, providertest.Lifetime(clock, 4*time.Second)); err != nil {
		t.Fatal(err)
	}
	claim := func(user string) *mimi.KeyMaterialResponse {
		km, err := a.d.Provider().LocalKeyMaterial(ctx, alice.Client, providertest.KeyMaterialRequest(alice.User, user, kpRoom))
		if err != nil {
			t.Fatalf("claim %s: %v", user, err)
		}
		return km
	}
	// Control: claimed before its not_after, a short-lived KeyPackage is
	// handed out (over federation, a -> b).
	if km := claim(erin.User); km.UserStatus != mimi.UserSuccess || len(km.Clients) != 1 || km.Clients[0].KeyPackage == nil ||
		km.Clients[0].KeyPackage.LeafNode.Lifetime.NotAfter != notAfter && km.Clients[0].KeyPackage.LeafNode.Lifetime.NotAfter != notAfter+1 {
		t.Fatalf("erin's unexpired short-lived KeyPackage not handed out: %+v", km)
	}
	for uint64(time.Now().Unix()) <= notAfter+1 {
		time.Sleep(100 * time.Millisecond)
	}
	// dave's short-lived KeyPackage sorts first by not_after but has
	// expired: the long-lived one is handed out, then nothing.
	km := claim(dave.User)
	if km.UserStatus != mimi.UserSuccess || len(km.Clients) != 1 || km.Clients[0].KeyPackage == nil {
		t.Fatalf("dave's long-lived KeyPackage not handed out: %+v", km)
	}
	if got := km.Clients[0].KeyPackage.LeafNode.Lifetime.NotAfter; got <= notAfter+1 {
		t.Fatalf("an expired KeyPackage (not_after %d, now %d) was handed out", got, time.Now().Unix())
	}
	km = claim(dave.User)
	for _, c := range km.Clients {
		if c.KeyPackage != nil {
			t.Fatalf("a second KeyPackage of dave was handed out (not_after %d, now %d)", c.KeyPackage.LeafNode.Lifetime.NotAfter, time.Now().Unix())
		}
	}
	// erin's second claim: her only KeyPackage was claimed; nothing.
	km = claim(erin.User)
	for _, c := range km.Clients {
		if c.KeyPackage != nil {
			t.Fatal("erin's claimed KeyPackage was handed out again")
		}
	}
	t.Logf("FIGURES kp-expiry: claims=4 expired-at-upload refused=1 expired-before-claim handed out=0")
}

// claimSetup registers alice at hub and one client per user at target, and
// has alice create room at hub, for KeyPackage claims over federation.
func claimSetup(t *testing.T, ctx context.Context, hub, target *node, room string, users ...string) (*providertest.Client, []*providertest.Client) {
	t.Helper()
	alice := providertest.NewClient(t, hub.domain, "alice", "alice1")
	register(t, ctx, hub, alice, 1)
	var clients []*providertest.Client
	for _, u := range users {
		c := providertest.NewClient(t, target.domain, u, u+"1")
		if _, err := target.d.Provider().RegisterClient(ctx, c.Cred, c.Pub); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	g := providertest.CreateGroup(t, alice, hub.d.Provider().HubSender(), providertest.Room(room, map[string]string{alice.User: "admin"}))
	gi, err := g.GroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.d.Provider().CreateRoom(ctx, alice.Client, room, gi.GroupInfo, g.RatchetTree()); err != nil {
		t.Fatal(err)
	}
	return alice, clients
}

// skewedClock is a clock offset from the real one by a settable amount.
type skewedClock struct{ off atomic.Int64 }

func (c *skewedClock) Now() time.Time         { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *skewedClock) set(skew time.Duration) { c.off.Store(int64(skew)) }

// TestFaultClockSkew: b.example's clock runs ahead of the clients' and the
// hub's (and then jumps further, as after an NTP step). b judges every
// KeyPackage lifetime by its own clock (RFC 9420, Section 7.2;
// draft-ralston-mimi-protocol-02, Section 5.2), consistently: an upload
// already expired by b's clock is refused even though it is valid by the
// client's, and a claim never returns a KeyPackage expired by b's clock,
// while one still valid by it is handed out to the hub's claim.
func TestFaultClockSkew(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bClock := &skewedClock{}
	bClock.set(2 * time.Minute)
	f, _ := newFaultFabric(t, ctx, false, func(domain string, c *Config) {
		if domain == "b.example" {
			c.Clock = bClock.Now
		}
	})
	defer f.closeAll()
	a, b := f.nodes["a.example"], f.nodes["b.example"]
	const kpRoom = "mimi://a.example/r/skew"
	alice, clients := claimSetup(t, ctx, a, b, kpRoom, "dave")
	dave := clients[0]
	clientClock := providertest.NewClock() // the real time
	upload := func(life time.Duration) (uint64, error) {
		opts := providertest.Lifetime(clientClock, life)
		_, err := b.d.Provider().UploadKeyPackages(ctx, dave.Client, []*wire.KeyPackage{dave.KeyPackage(t, opts)})
		return opts.Leaf.Lifetime.NotAfter, err
	}
	claim := func() uint64 {
		km, err := a.d.Provider().LocalKeyMaterial(ctx, alice.Client, providertest.KeyMaterialRequest(alice.User, dave.User, kpRoom))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range km.Clients {
			if c.KeyPackage != nil {
				return c.KeyPackage.LeafNode.Lifetime.NotAfter
			}
		}
		return 0
	}
	// Valid for another minute by the client's clock, expired by b's.
	if _, err := upload(time.Minute); err == nil {
		t.Fatal("b accepted a KeyPackage already expired by its own clock")
	}
	fiveMin, err := upload(5 * time.Minute)
	if err != nil {
		t.Fatalf("a KeyPackage valid by b's clock was refused: %v", err)
	}
	tenMin, err := upload(10 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// b's clock jumps to 7 minutes ahead: the 5-minute KeyPackage has
	// expired by it (not by the real time); the 10-minute one has not.
	bClock.set(7 * time.Minute)
	if got := claim(); got != tenMin {
		t.Fatalf("claim handed out not_after %d; want the 10-minute KeyPackage (%d), never the 5-minute one (%d) expired by b's clock", got, tenMin, fiveMin)
	}
	if got := claim(); got != 0 {
		t.Fatalf("a KeyPackage expired by b's clock was handed out: not_after %d (b's now %d, real now %d)", got, bClock.Now().Unix(), time.Now().Unix())
	}
	t.Logf("FIGURES clock-skew: follower clock +2 min then +7 min; uploads refused as expired by the follower's clock=1; claims=2, expired by the follower's clock handed out=0")
}
