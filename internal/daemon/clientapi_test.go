package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/remote"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
)

// TestClientAPI starts a dev daemon with its client API and drives it with
// the SDK over TLS: a device registers, publishes KeyPackages and creates a
// room the hub then holds.
func TestClientAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	d, err := Start(ctx, Config{
		Domain: "a.example", DataDir: filepath.Join(dir, "a"), Dev: true,
		Listen: "127.0.0.1:0", ClientAPI: ClientAPIConfig{Listen: "127.0.0.1:0"},
		ShutdownTimeout: Duration(5 * time.Second), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	info := d.Info()
	if info.ClientAPIAddr == "" {
		t.Fatal("client API address not reported")
	}
	caPEM, err := os.ReadFile(info.DevCACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "a.example"}}}
	p, err := remote.New("https://"+info.ClientAPIAddr, hc)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := client.New("mimi://a.example/u/alice", "mimi://a.example/d/alice1", cipher.X25519_AES128GCM_SHA256_Ed25519, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := remote.SignerFor(alice)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AddSigner(signer); err != nil {
		t.Fatal(err)
	}
	if err := alice.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.PublishKeyPackages(ctx, 2); err != nil {
		t.Fatal(err)
	}
	policy := mimi.Policy{RoomID: "mimi://a.example/r/clubhouse", Roles: []mimi.Role{{Name: "admin", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanSendMessage}}}}
	if err := alice.CreateRoom(ctx, "mimi://a.example/r/clubhouse", policy, []mimi.Participant{{User: "mimi://a.example/u/alice", Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	rooms, err := d.Machine().Rooms()
	if err != nil || len(rooms) != 1 || rooms[0] != "mimi://a.example/r/clubhouse" {
		t.Fatalf("hub rooms %v, %v", rooms, err)
	}
}
