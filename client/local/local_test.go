package local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/local"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

const room = "mimi://a.example/r/clubhouse"

// pair is two providers federated in process: a.example (the hub of room)
// and b.example.
type pair struct {
	t    testing.TB
	net  *providertest.Net
	a, b *providertest.Node
}

func newPair(t testing.TB) *pair {
	p := &pair{t: t, net: providertest.NewNet()}
	clock := providertest.NewClock()
	p.a = providertest.New(t, "a.example", providertest.Options{Remote: p.net.Remote("a.example"), Clock: clock})
	p.b = providertest.New(t, "b.example", providertest.Options{Remote: p.net.Remote("b.example"), Clock: clock})
	p.net.Add(p.a.P)
	p.net.Add(p.b.P)
	return p
}

// deliver runs the hub's fanout once (Section 5.5), standing in for the
// fanout worker.
func (p *pair) deliver() {
	providertest.Deliver(p.t, p.a, func(ctx context.Context, target, room string, body []byte) error {
		return p.net.Notify(ctx, p.a.Domain, target, room, body)
	})
}

func enc(t testing.TB, m codec.Marshaler) []byte {
	t.Helper()
	b, err := mimi.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMapsToProvider drives every client.Provider method of local.Provider
// against real providers (package provider) and checks that each reaches
// the provider operation it stands for, with its results, its response
// codes (as responses, not errors) and its error sentinels; once sharing
// bodies and once with Options.Isolate.
func TestMapsToProvider(t *testing.T) {
	for _, isolate := range []bool{false, true} {
		t.Run(fmt.Sprintf("isolate=%v", isolate), func(t *testing.T) {
			testMapsToProvider(t, isolate)
		})
	}
}

func testMapsToProvider(t *testing.T, isolate bool) {
	ctx := context.Background()
	p := newPair(t)
	opts := &local.Options{Isolate: isolate}
	la, lb := local.New(p.a.P, opts), local.New(p.b.P, opts)
	if la.Domain() != "a.example" || lb.Domain() != "b.example" {
		t.Fatalf("domains %q %q", la.Domain(), lb.Domain())
	}
	alice := providertest.NewClient(t, "a.example", "alice", "ClientA1")
	bob := providertest.NewClient(t, "b.example", "bob", "ClientB1")

	// RegisterClient -> provider.RegisterClient.
	if err := la.RegisterClient(ctx, alice.Cred, alice.Pub); err != nil {
		t.Fatal(err)
	}
	if err := lb.RegisterClient(ctx, alice.Cred, alice.Pub); !errors.Is(err, provider.ErrInvalid) {
		t.Fatalf("registering an a.example client at b.example: %v", err)
	}

	// UploadKeyPackages -> provider.UploadKeyPackages.
	kp := bob.KeyPackage(t, nil)
	if err := lb.UploadKeyPackages(ctx, bob.Client, []*wire.KeyPackage{kp}); !errors.Is(err, provider.ErrUnknownClient) {
		t.Fatalf("upload before registering: %v", err)
	}
	if err := lb.RegisterClient(ctx, bob.Cred, bob.Pub); err != nil {
		t.Fatal(err)
	}
	if err := lb.UploadKeyPackages(ctx, bob.Client, []*wire.KeyPackage{kp}); err != nil {
		t.Fatal(err)
	}

	// HubSender -> provider.HubSender, for rooms hosted here only.
	hs, err := la.HubSender(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	want := p.a.P.HubSender()
	if !bytes.Equal(enc(t, &hs), enc(t, &want)) {
		t.Fatal("HubSender differs from the provider's")
	}
	if _, err := lb.HubSender(ctx, room); !errors.Is(err, local.ErrNotHosted) || !errors.Is(err, provider.ErrNoSuchRoom) {
		t.Fatalf("hub sender of a room hosted elsewhere: %v", err)
	}
	if _, err := la.HubSender(ctx, "mimi://a.example/u/alice"); !errors.Is(err, provider.ErrInvalid) {
		t.Fatalf("hub sender of a user URI: %v", err)
	}

	// CreateRoom -> provider.CreateRoom.
	g := providertest.CreateGroup(t, alice, hs, providertest.Room(room, map[string]string{alice.User: "admin"}))
	gi, err := g.GroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := la.CreateRoom(ctx, alice.Client, room, gi.GroupInfo, g.RatchetTree()); err != nil {
		t.Fatal(err)
	}
	rec, err := p.a.M.Room(room)
	if err != nil || rec.Epoch != g.Epoch() || !slices.Equal(rec.Members, []string{alice.Client}) {
		t.Fatalf("hub's room after CreateRoom: %v %+v", err, rec)
	}
	if err := la.CreateRoom(ctx, alice.Client, room, gi.GroupInfo, g.RatchetTree()); err == nil {
		t.Fatal("creating the room twice succeeded")
	}

	// KeyMaterial -> provider.LocalKeyMaterial (claimed at b.example
	// through the hub).
	km, err := la.KeyMaterial(ctx, alice.Client, providertest.KeyMaterialRequest(alice.User, bob.User, room))
	if err != nil {
		t.Fatal(err)
	}
	if km.UserStatus != mimi.UserSuccess || len(km.Clients) != 1 || km.Clients[0].ClientURI != bob.Client ||
		!bytes.Equal(enc(t, km.Clients[0].KeyPackage), enc(t, kp)) {
		t.Fatalf("key material: %+v", km)
	}
	km, err = la.KeyMaterial(ctx, alice.Client, providertest.KeyMaterialRequest(alice.User, "mimi://b.example/u/nobody", room))
	if err != nil || km.UserStatus != mimi.UserUnknown {
		t.Fatalf("key material of an unknown user: %v %+v (want the response, not an error)", err, km)
	}

	// Update -> provider.LocalUpdate.
	props := []*wire.Proposal{
		providertest.AppSync(&mimi.ChangeSet{Add: []mimi.Participant{{User: bob.User, Role: "member"}}}),
		providertest.Add(kp),
	}
	pc, req := providertest.Commit(t, g, &mls.CommitOptions{Proposals: props})
	ur, err := la.Update(ctx, alice.Client, room, req)
	if err != nil || ur.Code != mimi.UpdateSuccess {
		t.Fatalf("commit: %v %+v", err, ur)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	acceptedAt := ur.AcceptedTimestamp
	ur, err = la.Update(ctx, alice.Client, room, req)
	if err != nil || ur.Code != mimi.UpdateSuccess || ur.AcceptedTimestamp != acceptedAt {
		t.Fatalf("replayed commit: %v %+v (want its first success as a response)", err, ur)
	}
	// A commit for the epoch before: wrongEpoch, as a response.
	stale := *req
	stale.ProposalOrCommit.Content.Epoch--
	ur, err = la.Update(ctx, alice.Client, room, &stale)
	if err != nil || ur.Code != mimi.UpdateWrongEpoch || ur.CurrentEpoch != g.Epoch() {
		t.Fatalf("stale commit: %v %+v (want wrongEpoch as a response)", err, ur)
	}
	if _, err := la.Update(ctx, "mimi://a.example/d/nobody", room, req); !errors.Is(err, provider.ErrUnknownClient) {
		t.Fatalf("update from an unknown client: %v", err)
	}

	// Inbox -> provider.Inbox: the Welcome, with the provider's positions.
	p.deliver()
	es, err := lb.Inbox(ctx, bob.Client, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	pes, err := p.b.P.Inbox(bob.Client, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || len(pes) != 1 {
		t.Fatalf("bob's inbox: %d entries, provider %d", len(es), len(pes))
	}
	if es[0].Seq != pes[0].N || es[0].Room != room || !bytes.Equal(enc(t, &es[0].Message), enc(t, &pes[0].Message)) {
		t.Fatalf("inbox entry %+v differs from the provider's %+v", es[0], pes[0])
	}
	bg := bob.Join(t, &es[0].Message)
	if bg.Epoch() != g.Epoch() {
		t.Fatalf("bob joined epoch %d, alice is at %d", bg.Epoch(), g.Epoch())
	}

	// SubmitMessage -> provider.LocalSubmitMessage (forwarded to the hub).
	for _, text := range []string{"hello alice", "again"} {
		sm, err := lb.SubmitMessage(ctx, bob.Client, room, providertest.Message(t, bg, text))
		if err != nil || sm.Code != mimi.SubmitAccepted {
			t.Fatalf("submit: %v %+v", err, sm)
		}
	}
	p.deliver()
	// Alice's inbox: the echo of her commit (Section 5.5), then Bob's
	// messages.
	es, err = la.Inbox(ctx, alice.Client, 0, 0)
	if err != nil || len(es) != 3 {
		t.Fatalf("alice's inbox: %v %d", err, len(es))
	}
	if pm := es[0].Message.Message.PublicMessage; pm == nil || pm.Content.ContentType != wire.ContentCommit || pm.Content.Epoch != g.Epoch()-1 {
		t.Fatalf("alice's first inbox entry is not her commit: %+v", es[0].Message.Message)
	}
	if err := la.Ack(ctx, alice.Client, es[0].Seq); err != nil {
		t.Fatal(err)
	}
	es = es[1:]
	for i, text := range []string{"hello alice", "again"} {
		pr, err := g.Process(&es[i].Message.Message)
		if err != nil || string(pr.ApplicationData) != text {
			t.Fatalf("alice processes entry %d: %v %+v", i, err, pr)
		}
	}

	// Inbox paging and Ack -> provider.Ack.
	first, err := la.Inbox(ctx, alice.Client, 0, 1)
	if err != nil || len(first) != 1 || first[0].Seq != es[0].Seq {
		t.Fatalf("inbox limit 1: %v %+v", err, first)
	}
	rest, err := la.Inbox(ctx, alice.Client, first[0].Seq+1, 0)
	if err != nil || len(rest) != 1 || rest[0].Seq != es[1].Seq {
		t.Fatalf("inbox from %d: %v %+v", first[0].Seq+1, err, rest)
	}
	if err := la.Ack(ctx, alice.Client, es[0].Seq); err != nil {
		t.Fatal(err)
	}
	if left, err := la.Inbox(ctx, alice.Client, 0, 0); err != nil || len(left) != 1 || left[0].Seq != es[1].Seq {
		t.Fatalf("after acknowledging one entry: %v %+v", err, left)
	}
	if err := la.Ack(ctx, alice.Client, es[1].Seq); err != nil {
		t.Fatal(err)
	}
	if left, err := p.a.P.Inbox(alice.Client, 0, 0); err != nil || len(left) != 0 {
		t.Fatalf("provider inbox after acknowledging everything: %v %d", err, len(left))
	}

	// GroupInfo -> provider.LocalGroupInfo (fetched from the hub), then an
	// external commit through Update.
	bob2 := providertest.NewClient(t, "b.example", "bob", "ClientB2")
	if err := lb.RegisterClient(ctx, bob2.Cred, bob2.Pub); err != nil {
		t.Fatal(err)
	}
	gr, err := lb.GroupInfo(ctx, bob2.Client, room, providertest.GroupInfoRequest(t, bob2))
	if err != nil || gr.Status != mimi.GroupInfoSuccess {
		t.Fatalf("group info: %v %+v", err, gr)
	}
	if err := gr.Verify(); err != nil {
		t.Fatal(err)
	}
	if gr.GroupInfo.GroupContext.Epoch != g.Epoch() {
		t.Fatalf("group info of epoch %d, want %d", gr.GroupInfo.GroupContext.Epoch, g.Epoch())
	}
	_, req = providertest.ExternalJoin(t, bob2, gr)
	if ur, err := lb.Update(ctx, bob2.Client, room, req); err != nil || ur.Code != mimi.UpdateSuccess {
		t.Fatalf("external commit: %v %+v", err, ur)
	}
	if rec, err := p.a.M.Room(room); err != nil || rec.Epoch != g.Epoch()+1 || !slices.Contains(rec.Members, bob2.Client) {
		t.Fatalf("hub's room after the external commit: %v %+v", err, rec)
	}
	carol := providertest.NewClient(t, "b.example", "carol", "ClientB3")
	if err := lb.RegisterClient(ctx, carol.Cred, carol.Pub); err != nil {
		t.Fatal(err)
	}
	gr, err = lb.GroupInfo(ctx, carol.Client, room, providertest.GroupInfoRequest(t, carol))
	if err != nil || gr.Status != mimi.GroupInfoNotAuthorized {
		t.Fatalf("group info for a non-participant: %v %+v (want notAuthorized as a response)", err, gr)
	}
}

// TestRefusals: nil bodies, a negative limit, a cancelled context and a
// Provider without a provider are errors with the documented sentinels,
// never panics.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	p := newPair(t)
	const cl = "mimi://a.example/d/ClientA1"
	for _, isolate := range []bool{false, true} {
		l := local.New(p.a.P, &local.Options{Isolate: isolate})
		var zero local.Provider
		var nilp *local.Provider
		for _, tc := range []struct {
			name string
			call func(*local.Provider) error
		}{
			{"RegisterClient", func(l *local.Provider) error { return l.RegisterClient(ctx, wire.Credential{}, nil) }},
			{"UploadKeyPackages", func(l *local.Provider) error { return l.UploadKeyPackages(ctx, cl, []*wire.KeyPackage{nil}) }},
			{"KeyMaterial", func(l *local.Provider) error { _, err := l.KeyMaterial(ctx, cl, nil); return err }},
			{"CreateRoom", func(l *local.Provider) error { return l.CreateRoom(ctx, cl, room, nil, nil) }},
			{"Update", func(l *local.Provider) error { _, err := l.Update(ctx, cl, room, nil); return err }},
			{"SubmitMessage", func(l *local.Provider) error { _, err := l.SubmitMessage(ctx, cl, room, nil); return err }},
			{"GroupInfo", func(l *local.Provider) error { _, err := l.GroupInfo(ctx, cl, room, nil); return err }},
			{"Inbox", func(l *local.Provider) error { _, err := l.Inbox(ctx, cl, 0, -1); return err }},
			{"HubSender", func(l *local.Provider) error { _, err := l.HubSender(ctx, "not a uri"); return err }},
		} {
			t.Run(fmt.Sprintf("%s/isolate=%v", tc.name, isolate), func(t *testing.T) {
				if err := tc.call(l); !errors.Is(err, provider.ErrInvalid) {
					t.Fatalf("want provider.ErrInvalid, got %v", err)
				}
				if err := tc.call(&zero); !errors.Is(err, local.ErrNoProvider) {
					t.Fatalf("zero Provider: want ErrNoProvider, got %v", err)
				}
				if err := tc.call(nilp); !errors.Is(err, local.ErrNoProvider) {
					t.Fatalf("nil *Provider: want ErrNoProvider, got %v", err)
				}
			})
		}
	}
	l := local.New(p.a.P, nil)
	if err := (&local.Provider{}).Ack(ctx, cl, 1); !errors.Is(err, local.ErrNoProvider) {
		t.Fatalf("Ack without a provider: %v", err)
	}
	if err := l.Ack(ctx, cl, 1); !errors.Is(err, provider.ErrUnknownClient) {
		t.Fatalf("Ack of an unknown client: %v", err)
	}
	if _, err := l.Inbox(ctx, cl, 0, 0); !errors.Is(err, provider.ErrUnknownClient) {
		t.Fatalf("Inbox of an unknown client: %v", err)
	}
	alice := providertest.NewClient(t, "a.example", "alice", "ClientA1")
	alice.Register(t, p.a)
	if err := l.Ack(ctx, cl, 1); !errors.Is(err, provider.ErrInvalid) {
		t.Fatalf("Ack beyond the queue: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Inbox(cancelled, cl, 0, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Inbox with a cancelled context: %v", err)
	}
	if _, err := l.HubSender(cancelled, room); !errors.Is(err, context.Canceled) {
		t.Fatalf("HubSender with a cancelled context: %v", err)
	}
}

// TestIsolateEncoding: with Options.Isolate a request that does not
// survive its wire encoding fails with ErrEncoding before reaching the
// provider; without it the provider judges the request itself.
func TestIsolateEncoding(t *testing.T) {
	ctx := context.Background()
	p := newPair(t)
	alice := providertest.NewClient(t, "a.example", "alice", "ClientA1")
	alice.Register(t, p.a)
	bad := providertest.KeyMaterialRequest(alice.User, "not a user URI", room)
	_, err := local.New(p.a.P, &local.Options{Isolate: true}).KeyMaterial(ctx, alice.Client, bad)
	if !errors.Is(err, local.ErrEncoding) || !errors.Is(err, provider.ErrInvalid) {
		t.Fatalf("isolated: %v", err)
	}
	_, err = local.New(p.a.P, nil).KeyMaterial(ctx, alice.Client, bad)
	if err == nil || errors.Is(err, local.ErrEncoding) {
		t.Fatalf("shared: %v", err)
	}
}

// TestBeforeInbox: the hook runs before every Inbox call and its error
// fails the call.
func TestBeforeInbox(t *testing.T) {
	ctx := context.Background()
	p := newPair(t)
	alice := providertest.NewClient(t, "a.example", "alice", "ClientA1")
	alice.Register(t, p.a)
	calls := 0
	boom := errors.New("boom")
	var fail bool
	l := local.New(p.a.P, &local.Options{BeforeInbox: func(context.Context) error {
		calls++
		if fail {
			return boom
		}
		return nil
	}})
	if es, err := l.Inbox(ctx, alice.Client, 0, 0); err != nil || len(es) != 0 || calls != 1 {
		t.Fatalf("%v %d %d", err, len(es), calls)
	}
	fail = true
	if _, err := l.Inbox(ctx, alice.Client, 0, 0); !errors.Is(err, boom) || calls != 2 {
		t.Fatalf("%v %d", err, calls)
	}
}

// TestSDK runs the SDK (package client) over local.Provider: Alice creates
// a room at the hub and adds Bob of b.example, whose client joins by the
// Welcome the hub fanned out (draft-ralston-mimi-protocol-02, Sections
// 3.1, 3.2 and 5.5) and sends a message Alice decrypts; both agree on the
// epoch authenticator.
// The SDK tests' users.
const aliceURI, bobURI = "mimi://a.example/u/alice", "mimi://b.example/u/bob"

// sdkClients registers SDK clients of alice at a.example and bob at
// b.example (bob with one KeyPackage published); wrapB, if set, wraps
// bob's provider.
func sdkClients(t *testing.T, p *pair, wrapB func(client.Provider) client.Provider) (a1, b1 *client.Client) {
	t.Helper()
	ctx := context.Background()
	pump := func(context.Context) error { p.deliver(); return nil }
	opts := &local.Options{Isolate: true, BeforeInbox: pump}
	var la, lb client.Provider = local.New(p.a.P, opts), local.New(p.b.P, opts)
	if wrapB != nil {
		lb = wrapB(lb)
	}
	a1, err := client.New(aliceURI, "mimi://a.example/d/ClientA1", providertest.Suite, la, nil)
	if err != nil {
		t.Fatal(err)
	}
	b1, err = client.New(bobURI, "mimi://b.example/d/ClientB1", providertest.Suite, lb, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{a1, b1} {
		if err := c.Register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b1.PublishKeyPackages(ctx, 1); err != nil {
		t.Fatal(err)
	}
	return a1, b1
}

func TestSDK(t *testing.T) {
	ctx := context.Background()
	a1, b1 := sdkClients(t, newPair(t), nil)
	policy := mimi.Policy{Roles: []mimi.Role{
		{Name: "admin", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanRemoveUser, mimi.CanSendMessage}},
		{Name: "member", Permissions: []mimi.Permission{mimi.CanSendMessage}},
	}}
	if err := a1.CreateRoom(ctx, room, policy, []mimi.Participant{{User: aliceURI, Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	if err := a1.AddUser(ctx, room, bobURI, "member"); err != nil {
		t.Fatal(err)
	}
	evs, err := b1.Sync(ctx)
	if err != nil || len(evs) == 0 || evs[0].Type != client.EventJoined {
		t.Fatalf("bob's sync: %v %+v", err, evs)
	}
	if _, err := b1.Send(ctx, room, []byte("hi alice")); err != nil {
		t.Fatal(err)
	}
	evs, err = a1.Sync(ctx)
	if err != nil || len(evs) != 1 || evs[0].Type != client.EventMessage || string(evs[0].Data) != "hi alice" {
		t.Fatalf("alice's sync: %v %+v", err, evs)
	}
	ea, err := a1.EpochAuthenticator(room)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b1.EpochAuthenticator(room)
	if err != nil || !bytes.Equal(ea, eb) {
		t.Fatalf("epoch authenticators differ: %v", err)
	}
}

// lossy loses the answer to the next lose SubmitMessage calls (loseUpdates
// Update calls) after the provider processed them, as a dropped connection
// would.
type lossy struct {
	client.Provider
	lose, loseUpdates int
	calls, updates    int
}

func (l *lossy) Update(ctx context.Context, cl, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	l.updates++
	resp, err := l.Provider.Update(ctx, cl, room, req)
	if err == nil && l.loseUpdates > 0 {
		l.loseUpdates--
		return nil, errors.New("connection reset")
	}
	return resp, err
}

func (l *lossy) SubmitMessage(ctx context.Context, cl, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	l.calls++
	resp, err := l.Provider.SubmitMessage(ctx, cl, room, req)
	if err == nil && l.lose > 0 {
		l.lose--
		return nil, errors.New("connection reset")
	}
	return resp, err
}

// TestSDKResendAfterLostAnswer: when the answer to a submitted message is
// lost (twice), the SDK sends the same bytes again; the hub accepts the
// message once (draft-ralston-mimi-protocol-02, Section 5.4), so Send
// succeeds and the other member receives it exactly once.
func TestSDKResendAfterLostAnswer(t *testing.T) {
	ctx := context.Background()
	var lb *lossy
	a1, b1 := sdkClients(t, newPair(t), func(p client.Provider) client.Provider {
		lb = &lossy{Provider: p}
		return lb
	})
	policy := mimi.Policy{Roles: []mimi.Role{{Name: "member", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanSendMessage}}}}
	if err := a1.CreateRoom(ctx, room, policy, []mimi.Participant{{User: aliceURI, Role: "member"}}); err != nil {
		t.Fatal(err)
	}
	if err := a1.AddUser(ctx, room, bobURI, "member"); err != nil {
		t.Fatal(err)
	}
	if _, err := b1.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	lb.lose = 2
	ts, err := b1.Send(ctx, room, []byte("once"))
	if err != nil || ts == 0 {
		t.Fatalf("Send: %d %v", ts, err)
	}
	if lb.calls != 3 {
		t.Fatalf("%d submissions, want 3 (two answers lost)", lb.calls)
	}
	evs, err := a1.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		if ev.Type == client.EventMessage {
			got = append(got, string(ev.Data))
		}
	}
	if fmt.Sprint(got) != "[once]" {
		t.Fatalf("alice received %q, want it once", got)
	}
	// A commit whose answer is lost twice: sent again, the hub answers with
	// its first success; bob merges it, and alice processes it once and
	// reaches the same epoch.
	lb.loseUpdates, lb.updates = 2, 0
	if err := b1.Commit(ctx, room); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if lb.updates != 3 {
		t.Fatalf("%d update calls, want 3 (two answers lost)", lb.updates)
	}
	if _, err := a1.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ea, err := a1.EpochAuthenticator(room)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := b1.EpochAuthenticator(room)
	if err != nil || !bytes.Equal(ea, eb) {
		t.Fatalf("after the resent commit the members disagree: %v", err)
	}
	// And a message whose answer is never seen is ErrOutcomeUnknown.
	lb.lose = 10
	if _, err := b1.Send(ctx, room, []byte("unknown")); !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("no answer at all: %v", err)
	}
}
