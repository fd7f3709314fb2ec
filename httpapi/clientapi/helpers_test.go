package clientapi_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/remote"
	"github.com/openmimi/mimi/client/remote/clientauth"
	"github.com/openmimi/mimi/gen/mimi/client/v1/clientv1connect"
	"github.com/openmimi/mimi/httpapi/clientapi"
	"github.com/openmimi/mimi/internal/testpki"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

const suite = providertest.Suite

// api is one provider's client API served over TLS on loopback.
type api struct {
	domain string
	url    string
	hc     *http.Client
	svc    *clientapi.Service
	rpc    clientv1connect.ClientServiceClient
}

// serveAPI serves the client API of p over TLS with a certificate for
// p's domain from ca, and returns it with an HTTP client trusting ca.
func serveAPI(t testing.TB, ca *testpki.CA, p *provider.Provider, cfg clientapi.Config) *api {
	t.Helper()
	svc, err := clientapi.New(p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	path, h := svc.Handler()
	mux := http.NewServeMux()
	mux.Handle(path, h)
	cert := ca.MustIssue(t, p.Domain())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{
		Handler:           mux,
		TLSConfig:         clientapi.TLSConfig(cert),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve client API of %s: %v", p.Domain(), err)
		}
	}()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), ServerName: p.Domain(), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}
	hc := &http.Client{Transport: tr}
	a := &api{domain: p.Domain(), url: "https://" + ln.Addr().String(), hc: hc, svc: svc}
	a.rpc = clientv1connect.NewClientServiceClient(hc, a.url)
	t.Cleanup(func() {
		svc.Close()
		tr.CloseIdleConnections()
		_ = hs.Close()
		<-done
	})
	return a
}

// single is one provider (a.example) on a standalone Raft node with its
// client API.
type single struct {
	t    *testing.T
	ctx  context.Context
	node *providertest.Node
	api  *api
}

func newSingle(t *testing.T, cfg clientapi.Config) *single {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	ca := testpki.MustNew(t, "mimi test CA")
	n := providertest.New(t, "a.example", providertest.Options{})
	if cfg.Applied == nil {
		cfg.Applied = n.Raft
	}
	return &single{t: t, ctx: ctx, node: n, api: serveAPI(t, ca, n.P, cfg)}
}

// sdkClient is a client of the SDK talking to its provider through a
// remote.Provider of its own.
type sdkClient struct {
	*client.Client
	rp *remote.Provider
	s  *remote.Signer
}

// newClient makes, registers and publishes kps KeyPackages for the client
// mimi://<domain>/d/<name> of user, through the client API a.
func newClient(t testing.TB, ctx context.Context, a *api, user, name string, kps int) *sdkClient {
	t.Helper()
	rp, err := remote.New(a.url, a.hc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(user, "mimi://"+a.domain+"/d/"+name, suite, rp, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := remote.SignerFor(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := rp.AddSigner(s); err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx); err != nil {
		t.Fatalf("register %s: %v", c.ID(), err)
	}
	if kps > 0 {
		if _, err := c.PublishKeyPackages(ctx, kps); err != nil {
			t.Fatalf("publish KeyPackages of %s: %v", c.ID(), err)
		}
	}
	return &sdkClient{Client: c, rp: rp, s: s}
}

// signed builds a request signed by s at time at for procedure.
func signed[T any](t testing.TB, s *remote.Signer, procedure string, msg *T, at time.Time) *connect.Request[T] {
	t.Helper()
	req := connect.NewRequest(msg)
	rb, err := clientauth.RequestBytes(any(msg).(proto.Message))
	if err != nil {
		t.Fatal(err)
	}
	a, err := clientauth.Sign(s.Priv, s.Suite, procedure, s.Client, uint64(at.UnixMilli()), rb)
	if err != nil {
		t.Fatal(err)
	}
	req.Header().Set(clientauth.HeaderName, a.String())
	return req
}

// newSigner returns a fresh key for a client URI (not registered).
func newSigner(t testing.TB, clientURI string) *remote.Signer {
	t.Helper()
	s, err := cipher.Lookup(suite)
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	sg, err := remote.NewSigner(clientURI, suite, priv)
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

// wantCode fails unless err is a Connect error with code.
func wantCode(t testing.TB, what string, err error, code connect.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %v", what, code)
	}
	if got := connect.CodeOf(err); got != code {
		t.Fatalf("%s: code %v (%v), want %v", what, got, err, code)
	}
}

func clientURI(domain, name string) string { return "mimi://" + domain + "/d/" + name }
func userURI(domain, name string) string   { return "mimi://" + domain + "/u/" + name }

// flowPolicy is the room policy of the Section 3 flows.
func flowPolicy() mimi.Policy {
	return mimi.Policy{Roles: []mimi.Role{
		{Name: "admin", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanRemoveUser, mimi.CanSetUserRole, mimi.CanSendMessage}},
		{Name: "member", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanSendMessage}},
		{Name: "reader"},
	}}
}

// find returns the first event of a type.
func find(evs []client.Event, typ client.EventType) *client.Event {
	for i := range evs {
		if evs[i].Type == typ {
			return &evs[i]
		}
	}
	return nil
}
