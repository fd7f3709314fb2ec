package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/internal/devpki"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/provider/providertest"
)

// testLogger logs warnings and errors through t.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(&tWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *tWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// node is one daemon of a test fabric with its fixed addresses.
type node struct {
	domain, dir       string
	addr, metricsAddr string
	d                 *Daemon
}

// fabric is three dev-mode providers on loopback sharing one dev CA.
type fabric struct {
	t       *testing.T
	ctx     context.Context
	caDir   string
	resolve map[string]string
	nodes   map[string]*node
	http    *http.Client
	// hook, if set, adjusts a domain's configuration at every start
	// (fault injection, clocks, fanout timing).
	hook func(domain string, c *Config)
}

func listenLoopback(t *testing.T, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // a just-closed port may take a moment to be free
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

func newFabric(t *testing.T, ctx context.Context, domains ...string) *fabric {
	tmp := t.TempDir()
	f := &fabric{
		t: t, ctx: ctx, caDir: filepath.Join(tmp, "ca"),
		resolve: map[string]string{}, nodes: map[string]*node{},
		http: &http.Client{Timeout: 10 * time.Second},
	}
	t.Cleanup(f.http.CloseIdleConnections)
	lns := map[string][2]net.Listener{}
	for _, d := range domains {
		fl, ml := listenLoopback(t, "127.0.0.1:0"), listenLoopback(t, "127.0.0.1:0")
		lns[d] = [2]net.Listener{fl, ml}
		f.resolve[d] = fl.Addr().String()
		f.nodes[d] = &node{domain: d, dir: filepath.Join(tmp, d), addr: fl.Addr().String(), metricsAddr: ml.Addr().String()}
	}
	for _, d := range domains {
		f.start(d, lns[d][0], lns[d][1])
	}
	for _, d := range domains {
		if err := f.nodes[d].d.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// start starts the daemon of domain on the given listeners (new ones on
// its fixed addresses if nil).
func (f *fabric) start(domain string, fl, ml net.Listener) {
	f.t.Helper()
	n := f.nodes[domain]
	if fl == nil {
		fl, ml = listenLoopback(f.t, n.addr), listenLoopback(f.t, n.metricsAddr)
	}
	cfg := Config{
		Domain: domain, DataDir: n.dir, Dev: true, DevCADir: f.caDir,
		Listener: fl, MetricsListener: ml, Resolve: f.resolve,
		ShutdownTimeout: Duration(5 * time.Second),
		Logger:          testLogger(f.t),
	}
	if f.hook != nil {
		f.hook(domain, &cfg)
	}
	d, err := Start(f.ctx, cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	n.d = d
}

func (f *fabric) closeAll() {
	for _, n := range f.nodes {
		if n.d != nil {
			if err := n.d.Close(); err != nil {
				f.t.Errorf("close %s: %v", n.domain, err)
			}
		}
	}
}

// get fetches a metrics-listener path.
func (f *fabric) get(n *node, path string) (int, string) {
	f.t.Helper()
	resp, err := f.http.Get("http://" + n.metricsAddr + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitGoroutines waits for the goroutine count to drop to at most max.
func waitGoroutines(t *testing.T, max int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= max {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines left, want at most %d:\n%s", n, max, buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const room = "mimi://a.example/r/lounge"

// TestThreeProviders runs a.example, b.example and c.example in one
// process with a shared dev CA: directories over mutual TLS between every
// pair, health, readiness and metrics, a room at a.example whose Welcome
// for bob@b.example is delivered by a.example's fanout engine, a restart
// of b.example that keeps its state and hub key, and a clean Close.
func TestThreeProviders(t *testing.T) {
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	f := newFabric(t, ctx, "a.example", "b.example", "c.example")
	closed := false
	defer func() {
		if !closed {
			f.closeAll()
		}
	}()
	a, b := f.nodes["a.example"], f.nodes["b.example"]

	// Every provider fetches every other's directory over mutual TLS
	// (draft-ralston-mimi-protocol-02, Sections 4.1 and 5.1).
	for _, x := range f.nodes {
		for _, y := range f.nodes {
			if x == y {
				continue
			}
			dir, err := x.d.Transport().Directory(ctx, y.domain)
			if err != nil {
				t.Fatalf("%s -> %s directory: %v", x.domain, y.domain, err)
			}
			want := transport.DefaultDirectory("https://" + y.domain)
			if dir.Notify != want.Notify || dir.KeyMaterial != want.KeyMaterial {
				t.Fatalf("%s's directory: %+v", y.domain, dir)
			}
		}
	}
	if got, want := a.d.Info().DirectoryURL, "https://a.example"+mimi.WellKnownDirectory; got != want {
		t.Fatalf("DirectoryURL %q, want %q", got, want)
	}

	// A client without a certificate gets 401; one with a certificate of
	// another CA fails the handshake.
	ca, _, err := devpki.LoadOrCreate(f.caDir, "")
	if err != nil {
		t.Fatal(err)
	}
	bare := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "a.example"}}}
	resp, err := bare.Get("https://" + a.addr + mimi.WellKnownDirectory)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	bare.CloseIdleConnections()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no client certificate: status %d", resp.StatusCode)
	}
	other, _, err := devpki.LoadOrCreate(filepath.Join(t.TempDir(), "other"), "")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := other.Issue("b.example")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := transport.NewClient(transport.ClientConfig{
		Source: "b.example", Certificate: pair, RootCAs: ca.Pool(), Resolver: transport.StaticResolver(f.resolve),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rogue.Directory(ctx, "a.example"); err == nil {
		t.Fatal("a certificate from a foreign CA was accepted")
	}
	rogue.CloseIdleConnections()

	// Health and readiness.
	for _, n := range f.nodes {
		if code, body := f.get(n, "/healthz"); code != 200 {
			t.Fatalf("%s /healthz: %d %s", n.domain, code, body)
		}
		if code, body := f.get(n, "/readyz"); code != 200 {
			t.Fatalf("%s /readyz: %d %s", n.domain, code, body)
		}
	}

	// alice@a creates a room and adds bob@b: key material is claimed at
	// b.example over HTTPS, and a.example's fanout engine delivers the
	// Welcome to b.example's /notify.
	alice := providertest.NewClient(t, "a.example", "alice", "alice1")
	bob := providertest.NewClient(t, "b.example", "bob", "bob1")
	register(t, ctx, a, alice, 1)
	register(t, ctx, b, bob, 2)
	rm := providertest.Room(room, map[string]string{alice.User: "admin"})
	g := providertest.CreateGroup(t, alice, a.d.Provider().HubSender(), rm)
	gi, err := g.GroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.d.Provider().CreateRoom(ctx, alice.Client, room, gi.GroupInfo, g.RatchetTree()); err != nil {
		t.Fatal(err)
	}
	km, err := a.d.Provider().LocalKeyMaterial(ctx, alice.Client, providertest.KeyMaterialRequest(alice.User, bob.User, room))
	if err != nil || km.UserStatus != mimi.UserSuccess || len(km.Clients) != 1 {
		t.Fatalf("key material: %v %+v", err, km)
	}
	props := []*wire.Proposal{
		providertest.AppSync(&mimi.ChangeSet{Add: []mimi.Participant{{User: bob.User, Role: "member"}}}),
		providertest.Add(km.Clients[0].KeyPackage),
	}
	pc, req := providertest.Commit(t, g, &mls.CommitOptions{Proposals: props})
	ur, err := a.d.Provider().LocalUpdate(ctx, alice.Client, room, req)
	if err != nil || ur.Code != mimi.UpdateSuccess {
		t.Fatalf("commit: %v %+v", err, ur)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	var inbox []mimi.FanoutMessage
	for deadline := time.Now().Add(30 * time.Second); ; {
		es, err := b.d.Provider().Inbox(bob.Client, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) > 0 {
			for _, e := range es {
				inbox = append(inbox, e.Message)
			}
			break
		}
		if time.Now().After(deadline) {
			st, _ := a.d.Fanout().Status()
			t.Fatalf("no Welcome at b.example; fanout status %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(inbox) != 1 {
		t.Fatalf("bob's inbox: %d messages", len(inbox))
	}
	bg := bob.Join(t, &inbox[0])
	if bg.Epoch() != g.Epoch() {
		t.Fatalf("bob joined epoch %d, alice is at %d", bg.Epoch(), g.Epoch())
	}
	// The cursor is acknowledged through Raft.
	for deadline := time.Now().Add(10 * time.Second); ; {
		cur, err := a.d.Machine().FanoutCursor("b.example")
		if err != nil {
			t.Fatal(err)
		}
		if cur.Enqueued > 0 && cur.Pending() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fanout cursor not acknowledged: %+v", cur)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Metrics.
	_, text := f.get(a, "/metrics")
	for _, name := range []string{
		MetricRequests, MetricRequestDuration, MetricApplyDuration,
		MetricFanoutBacklog, MetricFanoutDelivered, MetricFanoutBatches, MetricFanoutBytes,
		MetricRaftState, MetricRaftTerm, MetricRaftCommitIndex, MetricRaftAppliedIndex, MetricRaftMachineIndex,
		MetricRaftLastLogIndex, MetricRaftSnapshotIndex, MetricRaftLeaderKnown, MetricRaftServers,
		MetricReady, MetricStorageFailed, "go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(text, "\n"+name) {
			t.Errorf("/metrics of a.example lacks %s", name)
		}
	}
	for _, want := range []string{
		MetricRequests + `{code="200",endpoint="directory"}`,
		MetricRaftState + `{state="Leader"} 1`,
		MetricReady + " 1",
		MetricStorageFailed + " 0",
		MetricFanoutDelivered + `{destination="b.example"} `,
		MetricFanoutBacklog + `{destination="b.example"} 0`,
		MetricApplyDuration + `_count{outcome="applied"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics of a.example lacks %q", want)
		}
	}
	if _, text := f.get(b, "/metrics"); !strings.Contains(text, MetricRequests+`{code="201",endpoint="notify"} 1`) ||
		!strings.Contains(text, MetricRequests+`{code="200",endpoint="keyMaterial"} 1`) {
		t.Errorf("/metrics of b.example lacks the notify and keyMaterial requests:\n%s", grep(text, MetricRequests))
	}

	// Restart b.example on the same data directory: same projections,
	// same hub key.
	digest, err := b.d.Machine().Digest()
	if err != nil {
		t.Fatal(err)
	}
	hubKey := b.d.Provider().HubSender().SignatureKey
	if err := b.d.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, reason := b.d.Ready(); ok || reason != "shutting down" {
		t.Fatalf("closed daemon ready: %v %q", ok, reason)
	}
	f.start("b.example", nil, nil)
	if err := b.d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if b.d.Info().HubKeyCreated || b.d.Info().DevCACreated {
		t.Fatalf("restart re-created keys: %+v", b.d.Info())
	}
	digest2, err := b.d.Machine().Digest()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(digest, digest2) {
		t.Fatal("projections digest changed across the restart")
	}
	if !bytes.Equal(hubKey, b.d.Provider().HubSender().SignatureKey) {
		t.Fatal("hub key changed across the restart")
	}
	if es, err := b.d.Provider().Inbox(bob.Client, 0, 0); err != nil || len(es) != 1 {
		t.Fatalf("bob's inbox after restart: %v %d", err, len(es))
	}

	// Stop b.example again; alice's next message is accepted by the hub
	// and queued, a.example's fanout retries it (connection refused), and
	// it arrives once b.example is back.
	if err := b.d.Close(); err != nil {
		t.Fatal(err)
	}
	sm, err := a.d.Provider().LocalSubmitMessage(ctx, alice.Client, room, providertest.Message(t, g, "hello bob"))
	if err != nil || sm.Code != mimi.SubmitAccepted {
		t.Fatalf("submit: %v %+v", err, sm)
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, text := f.get(a, "/metrics"); strings.Contains(text, MetricFanoutRetries+`{code="0",destination="b.example"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no fanout retry counted while b.example is down")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.start("b.example", nil, nil)
	if err := b.d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		es, err := b.d.Provider().Inbox(bob.Client, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 2 {
			p, err := bg.Process(&es[1].Message.Message)
			if err != nil || string(p.ApplicationData) != "hello bob" {
				t.Fatalf("bob processes: %v %+v", err, p)
			}
			break
		}
		if time.Now().After(deadline) {
			st, _ := a.d.Fanout().Status()
			t.Fatalf("message not delivered after b's restart: %d entries; fanout %+v", len(es), st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.d.Transport().Invalidate("b.example")
	if _, err := a.d.Transport().Directory(ctx, "b.example"); err != nil {
		t.Fatalf("a -> restarted b: %v", err)
	}

	closed = true
	f.closeAll()
	for _, n := range f.nodes {
		if err := n.d.Close(); err != nil { // idempotent
			t.Fatal(err)
		}
	}
	f.http.CloseIdleConnections()
	waitGoroutines(t, base+8)
}

// register registers c at n and uploads count KeyPackages.
func register(t *testing.T, ctx context.Context, n *node, c *providertest.Client, count int) {
	t.Helper()
	if _, err := n.d.Provider().RegisterClient(ctx, c.Cred, c.Pub); err != nil {
		t.Fatal(err)
	}
	var kps []*wire.KeyPackage
	for range count {
		kps = append(kps, c.KeyPackage(t, nil))
	}
	if _, err := n.d.Provider().UploadKeyPackages(ctx, c.Client, kps); err != nil {
		t.Fatal(err)
	}
}

func grep(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
