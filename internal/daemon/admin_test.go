package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/gen/mimi/admin/v1/adminv1connect"
	"github.com/openmimi/mimi/internal/devpki"
)

// TestAdminDev starts the admin API in dev mode (generated token, dev
// certificate for the loopback addresses) and calls it.
func TestAdminDev(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	d, err := Start(ctx, Config{
		Domain: "a.example", DataDir: dir, Dev: true, Listen: "127.0.0.1:0",
		Admin: AdminConfig{Listen: "127.0.0.1:0"}, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	info := d.Info()
	token, err := os.ReadFile(info.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ca, _, err := devpki.LoadOrCreate(strings.TrimSuffix(info.DevCACert, "/"+devpki.CertFile), "")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	client := adminv1connect.NewAdminServiceClient(hc, "https://"+info.AdminAddr)

	req := connect.NewRequest(&adminv1.ClusterStatusRequest{})
	req.Header().Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := client.ClusterStatus(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.Msg.GetStatus(); st.GetState() != "Leader" || st.GetId() != "local" {
		t.Fatalf("cluster status: %+v", st)
	}
	_, err = client.ClusterStatus(ctx, connect.NewRequest(&adminv1.ClusterStatusRequest{}))
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("no token: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// The token survives restarts.
	d2, err := Start(ctx, Config{
		Domain: "a.example", DataDir: dir, Dev: true, Listen: "127.0.0.1:0",
		Admin: AdminConfig{Listen: "127.0.0.1:0"}, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if again, err := os.ReadFile(d2.Info().AdminTokenFile); err != nil || string(again) != string(token) {
		t.Fatalf("token changed: %v", err)
	}
}

// fakeAdmin is an AdminServer recording its lifecycle.
type fakeAdmin struct {
	deps         AdminDeps
	served, shut atomic.Bool
	stop         chan struct{}
}

func (f *fakeAdmin) Serve(ln net.Listener) error {
	f.served.Store(true)
	<-f.stop
	ln.Close()
	return http.ErrServerClosed
}

func (f *fakeAdmin) Shutdown(context.Context) error {
	if f.shut.CompareAndSwap(false, true) {
		close(f.stop)
	}
	return nil
}

// TestAdminFactory checks the admin hook: the factory receives the
// running parts and the credentials, and the server is served and shut
// down with the daemon.
func TestAdminFactory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fa := &fakeAdmin{stop: make(chan struct{})}
	d, err := Start(ctx, Config{
		Domain: "a.example", DataDir: t.TempDir(), Dev: true, Listen: "127.0.0.1:0",
		Admin: AdminConfig{Listen: "127.0.0.1:0", Token: "0123456789abcdef0123"},
		AdminFactory: func(deps AdminDeps) (AdminServer, error) {
			fa.deps = deps
			return fa, nil
		},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	deps := fa.deps
	if deps.Machine != d.Machine() || deps.Node != d.Node() || deps.Fanout != d.Fanout() || deps.Provider != d.Provider() ||
		deps.Token != "0123456789abcdef0123" || deps.TLS == nil || len(deps.TLS.Certificates) != 1 || deps.ScratchDir == "" {
		t.Fatalf("deps: %+v", deps)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if !fa.served.Load() || !fa.shut.Load() {
		t.Fatalf("served %v, shut down %v", fa.served.Load(), fa.shut.Load())
	}

	// A failing factory fails Start.
	boom := errors.New("boom")
	_, err = Start(ctx, Config{
		Domain: "a.example", DataDir: t.TempDir(), Dev: true, Listen: "127.0.0.1:0",
		Admin:        AdminConfig{Listen: "127.0.0.1:0"},
		AdminFactory: func(AdminDeps) (AdminServer, error) { return nil, boom },
		Logger:       testLogger(t),
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failing factory: %v", err)
	}
}
