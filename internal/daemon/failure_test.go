package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
	"github.com/openmimi/mimi/raftnode"
)

// faultySM makes every command fail with projections.ErrStorage while
// fail is set, without touching the machine (as Machine.Apply does when
// Pebble fails: nothing is recorded, not even the applied index).
type faultySM struct {
	machineSM
	fail  atomic.Bool
	calls atomic.Int64
}

func (f *faultySM) storageErr() error {
	return fmt.Errorf("%w: injected write failure", projections.ErrStorage)
}

func (f *faultySM) Apply(i uint64, cmd []byte) projections.Result {
	f.calls.Add(1)
	if f.fail.Load() {
		return projections.Result{Err: f.storageErr()}
	}
	return f.machineSM.Apply(i, cmd)
}

func (f *faultySM) ApplyBatch(es []projections.Entry) []projections.Result {
	f.calls.Add(1)
	if f.fail.Load() {
		out := make([]projections.Result, len(es))
		for i := range out {
			out[i].Err = f.storageErr()
		}
		return out
	}
	return f.machineSM.ApplyBatch(es)
}

// TestStorageFailure checks the storage failure rule: the node turns
// unready, later writes fail with provider.ErrUnavailable without reaching
// the machine, and a restart recovers every committed command.
func TestStorageFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	var faulty *faultySM
	cfg := Config{
		Domain: "a.example", DataDir: dir, Dev: true, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
		Logger: testLogger(t),
		testWrapSM: func(m machineSM) machineSM {
			faulty = &faultySM{machineSM: m}
			return faulty
		},
	}
	d, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	alice := providertest.NewClient(t, "a.example", "alice", "alice1")
	bob := providertest.NewClient(t, "a.example", "bob", "bob1")
	cathy := providertest.NewClient(t, "a.example", "cathy", "cathy1")
	if _, err := d.Provider().RegisterClient(ctx, alice.Cred, alice.Pub); err != nil {
		t.Fatal(err)
	}

	faulty.fail.Store(true)
	_, err = d.Provider().RegisterClient(ctx, bob.Cred, bob.Pub)
	if !errors.Is(err, provider.ErrUnavailable) || !errors.Is(err, projections.ErrStorage) {
		t.Fatalf("write during a storage failure: %v", err)
	}
	if ok, reason := d.Ready(); ok || !strings.Contains(reason, "storage failure") {
		t.Fatalf("Ready = %v %q", ok, reason)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + d.Info().MetricsAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz: %d", resp.StatusCode)
	}
	_, text := getText(t, client, "http://"+d.Info().MetricsAddr+"/metrics")
	if !strings.Contains(text, MetricStorageFailed+" 1") || !strings.Contains(text, MetricReady+" 0") {
		t.Fatalf("metrics after the failure:\n%s", grep(text, "mimi_"))
	}

	// The latch holds even if the storage came back: later writes are
	// refused before Raft, the machine is not called again.
	faulty.fail.Store(false)
	calls := faulty.calls.Load()
	_, err = d.Provider().RegisterClient(ctx, cathy.Cred, cathy.Pub)
	if !errors.Is(err, provider.ErrUnavailable) || !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("write after the failure: %v", err)
	}
	if faulty.calls.Load() != calls {
		t.Fatal("the machine was called after the failure")
	}
	if !strings.Contains(mustGet(t, client, "http://"+d.Info().MetricsAddr+"/metrics"), MetricApplyDuration+`_count{outcome="refused"} `) {
		t.Fatal("refused appends not counted")
	}
	var buf strings.Builder
	if err := d.sm.Snapshot(&buf); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("Snapshot after the failure: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart on the same data: Raft re-applies bob's committed
	// registration, which the failed machine never recorded.
	cfg.testWrapSM = nil
	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", ""
	d2, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*providertest.Client{alice, bob} {
		if _, err := d2.Machine().Client(c.Client); err != nil {
			t.Fatalf("%s after restart: %v", c.Client, err)
		}
	}
	if _, err := d2.Machine().Client(cathy.Client); !errors.Is(err, projections.ErrUnknownClient) {
		t.Fatalf("cathy was refused before Raft, yet: %v", err)
	}
	if _, err := d2.Provider().RegisterClient(ctx, cathy.Cred, cathy.Pub); err != nil {
		t.Fatal(err)
	}
}

func getText(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func mustGet(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	_, s := getText(t, c, url)
	return s
}

// TestStateMachineLatch checks the adapter alone: batch conversion, the
// latch on the first fatal result, refusal afterwards.
func TestStateMachineLatch(t *testing.T) {
	m, err := projections.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	faulty := &faultySM{machineSM: m}
	var failures atomic.Int64
	sm := &stateMachine{m: faulty, onFail: func(error) { failures.Add(1) }}
	var _ raftnode.BatchStateMachine[projections.Result] = sm

	// Malformed commands are rejections, not failures.
	res := sm.ApplyBatch([]raftnode.Entry{{Index: 1, Cmd: []byte{1}}, {Index: 2, Cmd: []byte{2}}})
	if len(res) != 2 || !errors.Is(res[0].Err, projections.ErrMalformedCommand) || sm.fault() != nil {
		t.Fatalf("rejections: %+v %v", res, sm.fault())
	}
	if sm.AppliedIndex() != 2 {
		t.Fatalf("applied index %d", sm.AppliedIndex())
	}
	faulty.fail.Store(true)
	res = sm.ApplyBatch([]raftnode.Entry{{Index: 3, Cmd: []byte{3}}})
	if !errors.Is(res[0].Err, projections.ErrStorage) || !errors.Is(sm.fault(), ErrStorageFailed) {
		t.Fatalf("failure: %+v %v", res, sm.fault())
	}
	faulty.fail.Store(false)
	calls := faulty.calls.Load()
	if r := sm.Apply(4, []byte{4}); !errors.Is(r.Err, projections.ErrStorage) || !errors.Is(r.Err, ErrStorageFailed) {
		t.Fatalf("Apply after the failure: %v", r.Err)
	}
	res = sm.ApplyBatch([]raftnode.Entry{{Index: 5, Cmd: []byte{5}}, {Index: 6, Cmd: []byte{6}}})
	for _, r := range res {
		if !errors.Is(r.Err, ErrStorageFailed) {
			t.Fatalf("ApplyBatch after the failure: %v", r.Err)
		}
	}
	if faulty.calls.Load() != calls || failures.Load() != 1 || sm.AppliedIndex() != 2 {
		t.Fatalf("calls %d->%d, failures %d, applied %d", calls, faulty.calls.Load(), failures.Load(), sm.AppliedIndex())
	}
	repl := &replicator{node: nil, sm: sm, observe: func(string, time.Duration) {}}
	if _, err := repl.Apply(context.Background(), nil); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("replicator.Apply: %v", err)
	}
	if err := repl.ReadBarrier(context.Background()); !errors.Is(err, ErrStorageFailed) {
		t.Fatalf("replicator.ReadBarrier: %v", err)
	}
}

// TestConfigErrors checks the validation of Start's configuration.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ok := Config{Domain: "a.example", DataDir: dir, Dev: true}
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
	}{
		{"no domain", func(c *Config) { c.Domain = "" }},
		{"bad domain", func(c *Config) { c.Domain = "localhost" }},
		{"no data", func(c *Config) { c.DataDir = "" }},
		{"no cert outside dev", func(c *Config) { c.Dev = false; c.TLS.CAFiles = []string{"x"} }},
		{"no anchors outside dev", func(c *Config) { c.Dev = false; c.TLS.CertFile, c.TLS.KeyFile = "c", "k" }},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "c" }},
		{"bad resolve", func(c *Config) { c.Resolve = map[string]string{"b.example": "nohostport"} }},
		{"bad resolve domain", func(c *Config) { c.Resolve = map[string]string{"b": "127.0.0.1:1"} }},
		{"cluster without id", func(c *Config) { c.Raft.Bind = "127.0.0.1:0" }},
		{"peers standalone", func(c *Config) { c.Raft.Peers = []RaftPeer{{ID: "x", Addr: "y:1"}} }},
		{"bootstrap standalone", func(c *Config) { c.Raft.Bootstrap = true }},
		{"cluster peer without addr", func(c *Config) {
			c.Raft.Bind, c.Raft.NodeID, c.Raft.Peers = "127.0.0.1:0", "n1", []RaftPeer{{ID: "n2"}}
		}},
		{"admin without credential outside dev", func(c *Config) {
			c.Dev, c.TLS = false, TLSFiles{CertFile: "c", KeyFile: "k", CAFiles: []string{"ca"}}
			c.Admin.Listen = "127.0.0.1:0"
		}},
		{"negative body limit", func(c *Config) { c.MaxBodyBytes = -1 }},
		{"negative peer rate", func(c *Config) { c.PeerRateLimit.PerSecond = -1 }},
		{"negative apply timeout", func(c *Config) { c.ApplyTimeout = Duration(-time.Second) }},
		{"negative peer burst", func(c *Config) { c.PeerRateLimit.Burst = -1 }},
		{"negative notify retention", func(c *Config) { c.NotifyRetention = Duration(-time.Hour) }},
		{"negative fanout timeout", func(c *Config) { c.Fanout.SendTimeout = Duration(-time.Second) }},
		{"negative fanout batch", func(c *Config) { c.Fanout.MaxBatchMessages = -1 }},
		{"fanout backoff cap below base", func(c *Config) {
			c.Fanout.BackoffBase, c.Fanout.BackoffCap = Duration(time.Second), Duration(time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			if _, err := Start(context.Background(), c); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
	c, err := ok.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultDevListen || c.BaseURL != "https://a.example" || c.DevCADir != filepath.Join(dir, DevCADir) ||
		c.HubKeyFile != filepath.Join(dir, HubKeyFile) || time.Duration(c.ShutdownTimeout) != DefaultShutdownTimeout {
		t.Fatalf("defaults: %+v", c)
	}
}

// TestStartFailureCleansUp checks that a failed Start releases what it
// opened: the same data directory can be started right after.
func TestStartFailureCleansUp(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := Config{Domain: "a.example", DataDir: dir, Dev: true, Listen: busy.Addr().String(), Logger: testLogger(t)}
	if _, err := Start(context.Background(), cfg); err == nil {
		t.Fatal("Start on a busy port succeeded")
	}
	cfg.Listen = "127.0.0.1:0"
	d, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start after a failed Start: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestHubKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k", "hub.pem")
	k, created, err := loadOrCreateHubKey(path, 0)
	if err != nil || !created || k.suite != DefaultHubSuite {
		t.Fatalf("create: %v %v %+v", err, created, k)
	}
	k2, created, err := loadOrCreateHubKey(path, 0)
	if err != nil || created || string(k2.priv) != string(k.priv) || string(k2.pub) != string(k.pub) {
		t.Fatalf("reload: %v %v", err, created)
	}
	if _, _, err := loadOrCreateHubKey(path, 2); !errors.Is(err, ErrHubKey) {
		t.Fatalf("suite conflict: %v", err)
	}
	p2 := filepath.Join(t.TempDir(), "hub.pem")
	if k, _, err := loadOrCreateHubKey(p2, 2); err != nil || k.suite != 2 {
		t.Fatalf("suite 2: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := createExclusive(bad, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateHubKey(bad, 0); !errors.Is(err, ErrHubKey) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestEndpointLabel(t *testing.T) {
	for path, want := range map[string]string{
		"/.well-known/mimi-protocol-directory": "directory",
		"/v1/keyMaterial/a.example/u/alice":    "keyMaterial",
		"/v1/notify/a.example/r/x":             "notify",
		"/v1/update/x":                         "update",
		"/v1/submitMessage/x":                  "submitMessage",
		"/v1/groupInfo/x":                      "groupInfo",
		"/v2/notify/x":                         "other",
		"/":                                    "other",
	} {
		if got := endpointLabel(path); got != want {
			t.Errorf("endpointLabel(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestResolver(t *testing.T) {
	if resolver(nil) != nil {
		t.Fatal("empty overrides should mean no resolver")
	}
	r := resolver(map[string]string{"B.example": "127.0.0.1:1"})
	if a, err := r(context.Background(), "b.EXAMPLE"); err != nil || a != "127.0.0.1:1" {
		t.Fatalf("override: %q %v", a, err)
	}
	if a, err := r(context.Background(), "c.example"); err != nil || a != "" {
		t.Fatalf("fallthrough: %q %v", a, err)
	}
}
