package federation_test

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/openmimi/mimi/httpapi/federation"
	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/internal/testpki"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/provider/providertest"
)

const room = "mimi://a.example/r/clubhouse"

// peer is one provider served over loopback mutual TLS.
type peer struct {
	*providertest.Node
	fed *federation.Client
	tc  *transport.Client
}

// fabric is a.example (hub), b.example and c.example, each with its own
// data directory and certificate from one test CA, reaching each other
// through transport.StaticResolver, with alice@a, bob@b and cathy@c
// registered and holding two KeyPackages each.
type fabric struct {
	t                 *testing.T
	ctx               context.Context
	a, b, c           *peer
	alice, bob, cathy *providertest.Client
	aliceG, bobG      *mls.Group
}

func newFabric(t *testing.T) *fabric { return newFabricWith(t, nil) }

// newFabricWith is newFabric with a hook on each provider's transport
// server configuration.
func newFabricWith(t *testing.T, configure func(domain string, cfg *transport.ServerConfig)) *fabric {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	ca := testpki.MustNew(t, "mimi test CA")
	domains := []string{"a.example", "b.example", "c.example"}
	lns := map[string]net.Listener{}
	addrs := map[string]string{}
	for _, d := range domains {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[d] = ln
		addrs[d] = ln.Addr().String()
	}
	f := &fabric{t: t, ctx: ctx}
	clock := providertest.NewClock()
	peers := map[string]*peer{}
	for _, d := range domains {
		cert := ca.MustIssue(t, d)
		cfg := transport.ServerConfig{
			Domains:   []transport.Domain{{Name: d, Certificate: cert}},
			ClientCAs: ca.Pool(),
		}
		if configure != nil {
			configure(d, &cfg)
		}
		srv, err := transport.NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tc, err := transport.NewClient(transport.ClientConfig{
			Source: d, Certificate: cert, RootCAs: ca.Pool(), Resolver: transport.StaticResolver(addrs),
		})
		if err != nil {
			t.Fatal(err)
		}
		fc := federation.NewClient(tc)
		node := providertest.New(t, d, providertest.Options{Remote: fc, Clock: clock})
		h, err := federation.NewHandler(node.P, srv, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		hs := srv.HTTPServer(h)
		hs.ErrorLog = log.New(io.Discard, "", 0)
		done := make(chan struct{})
		ln := lns[d]
		go func() {
			defer close(done)
			if err := hs.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("serve %s: %v", d, err)
			}
		}()
		t.Cleanup(func() {
			tc.CloseIdleConnections()
			_ = hs.Close()
			<-done
		})
		peers[d] = &peer{Node: node, fed: fc, tc: tc}
	}
	f.a, f.b, f.c = peers["a.example"], peers["b.example"], peers["c.example"]
	f.alice = providertest.NewClient(t, "a.example", "alice", "alice1")
	f.bob = providertest.NewClient(t, "b.example", "bob", "bob1")
	f.cathy = providertest.NewClient(t, "c.example", "cathy", "cathy1")
	for _, x := range []struct {
		c *providertest.Client
		p *peer
	}{{f.alice, f.a}, {f.bob, f.b}, {f.cathy, f.c}} {
		x.c.Register(t, x.p.Node)
		x.c.Upload(t, x.p.Node, 2)
	}
	return f
}

// createRoom creates the clubhouse with alice as admin.
func (f *fabric) createRoom() {
	f.t.Helper()
	rm := providertest.Room(room, map[string]string{f.alice.User: "admin"})
	f.aliceG = providertest.CreateGroup(f.t, f.alice, f.a.HubSender, rm)
	providertest.CreateRoom(f.t, f.a.Node, f.alice, f.aliceG, room)
}

// deliver runs the hub's fanout once, over HTTPS.
func (f *fabric) deliver() int {
	f.t.Helper()
	return providertest.Deliver(f.t, f.a.Node, func(ctx context.Context, target, rm string, body []byte) error {
		return f.a.fed.Notify(ctx, target, rm, body)
	})
}

// inbox returns and acknowledges a client's messages.
func (f *fabric) inbox(p *peer, c *providertest.Client) []mimi.FanoutMessage {
	f.t.Helper()
	es, err := p.P.Inbox(c.Client, 0, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []mimi.FanoutMessage
	for _, e := range es {
		out = append(out, e.Message)
	}
	if len(es) > 0 {
		if err := p.P.Ack(f.ctx, c.Client, es[len(es)-1].N); err != nil {
			f.t.Fatal(err)
		}
	}
	return out
}

func (f *fabric) process(g *mls.Group, msgs []mimi.FanoutMessage) []*mls.Processed {
	f.t.Helper()
	var out []*mls.Processed
	for i := range msgs {
		if providertest.PastHandshake(g, &msgs[i].Message) {
			continue // the echo of a commit or proposal g already applied
		}
		p, err := g.Process(&msgs[i].Message)
		if err != nil {
			f.t.Fatalf("processing message %d: %v", i, err)
		}
		out = append(out, p)
	}
	return out
}

// addUser fetches key material through the committer's provider and
// commits AppSync(+target) with the Adds.
func (f *fabric) addUser(committer *providertest.Client, g *mls.Group, at *peer, target *providertest.Client, role string) *mimi.UpdateRoomResponse {
	f.t.Helper()
	km, err := at.P.LocalKeyMaterial(f.ctx, committer.Client, providertest.KeyMaterialRequest(committer.User, target.User, room))
	if err != nil {
		f.t.Fatal(err)
	}
	if km.UserStatus != mimi.UserSuccess {
		f.t.Fatalf("key material: %+v", km)
	}
	props := []*wire.Proposal{providertest.AppSync(&mimi.ChangeSet{Add: []mimi.Participant{{User: target.User, Role: role}}})}
	for _, ck := range km.Clients {
		props = append(props, providertest.Add(ck.KeyPackage))
	}
	pc, req := providertest.Commit(f.t, g, &mls.CommitOptions{Proposals: props})
	resp, err := at.P.LocalUpdate(f.ctx, committer.Client, room, req)
	if err != nil {
		f.t.Fatal(err)
	}
	if resp.Code == mimi.UpdateSuccess {
		if err := pc.Merge(); err != nil {
			f.t.Fatal(err)
		}
	} else {
		pc.Discard()
	}
	return resp
}

// aliceAddsBob adds bob with role and has him join.
func (f *fabric) aliceAddsBob(role string) {
	f.t.Helper()
	if resp := f.addUser(f.alice, f.aliceG, f.a, f.bob, role); resp.Code != mimi.UpdateSuccess {
		f.t.Fatalf("alice adds bob: %+v", resp)
	}
	f.deliver()
	for _, m := range f.inbox(f.b, f.bob) {
		if m.Message.WireFormat == wire.WireFormatWelcome {
			f.bobG = f.bob.Join(f.t, &m)
			return
		}
	}
	f.t.Fatal("no Welcome for bob")
}
