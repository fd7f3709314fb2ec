package clientapi_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/remote"
	"github.com/openmimi/mimi/httpapi/clientapi"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

const room = "mimi://a.example/r/clubhouse"

func syncAll(t *testing.T, ctx context.Context, cs ...*sdkClient) map[string][]client.Event {
	t.Helper()
	out := map[string][]client.Event{}
	for _, c := range cs {
		evs, err := c.Sync(ctx)
		if err != nil {
			t.Fatalf("%s: sync: %v", c.ID(), err)
		}
		for _, ev := range evs {
			if ev.Type == client.EventError {
				t.Fatalf("%s: error event: %v", c.ID(), ev.Err)
			}
		}
		out[c.ID()] = evs
	}
	return out
}

// TestEveryRPC drives every RPC of the service through the SDK over TLS on
// one provider: RegisterClient and UploadKeyPackages (Register,
// PublishKeyPackages), HubSender, CreateRoom and KeyMaterial (CreateRoom),
// KeyMaterial and Update (AddUser), Inbox and Ack (Sync), SubmitMessage
// (Send), GroupInfo and Update (JoinNewDevice).
func TestEveryRPC(t *testing.T) {
	e := newSingle(t, clientapi.Config{})
	alice := userURI("a.example", "alice")
	bob := userURI("a.example", "bob")
	a1 := newClient(t, e.ctx, e.api, alice, "alice1", 1)
	b1 := newClient(t, e.ctx, e.api, bob, "bob1", 2)

	// UploadKeyPackages returns the KeyPackageRefs.
	s, _ := cipher.Lookup(suite)
	kp := providerKeyPackage(t, b1)
	refs, err := b1.rp.UploadKeyPackageRefs(e.ctx, b1.ID(), []*wire.KeyPackage{kp})
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := kp.Ref(s); len(refs) != 1 || !bytes.Equal(refs[0], want) {
		t.Fatalf("refs %x, want %x", refs, want)
	}

	// HubSender is the provider's.
	hs, err := a1.rp.HubSender(e.ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	if want := e.node.P.HubSender(); !bytes.Equal(hs.SignatureKey, want.SignatureKey) || !bytes.Equal(hs.Credential.Identity, want.Credential.Identity) {
		t.Fatalf("hub sender %+v", hs)
	}
	if _, err := a1.rp.HubSender(e.ctx, "mimi://b.example/r/elsewhere"); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("hub sender of a room elsewhere: %v", err)
	}

	if err := a1.CreateRoom(e.ctx, room, flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	if err := a1.AddUser(e.ctx, room, bob, "member"); err != nil {
		t.Fatal(err)
	}
	evs := syncAll(t, e.ctx, a1, b1)
	if ev := find(evs[b1.ID()], client.EventJoined); ev == nil {
		t.Fatalf("bob1 did not join: %+v", evs[b1.ID()])
	}
	if _, err := b1.Send(e.ctx, room, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	evs = syncAll(t, e.ctx, a1)
	if ev := find(evs[a1.ID()], client.EventMessage); ev == nil || string(ev.Data) != "hi" {
		t.Fatalf("alice1: %+v", evs[a1.ID()])
	}

	// A new device of Bob's joins by external commit (GroupInfo, Update).
	b2 := newClient(t, e.ctx, e.api, bob, "bob2", 0)
	if err := b2.JoinNewDevice(e.ctx, room); err != nil {
		t.Fatal(err)
	}
	// b2 gets its own external commit back and drops it (Section 5.5).
	if evs := syncAll(t, e.ctx, a1, b1, b2); len(evs[b2.ID()]) != 0 {
		t.Fatalf("bob2's echo made events: %+v", evs[b2.ID()])
	}
	rec, err := e.node.M.Room(room)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*sdkClient{a1, b1, b2} {
		ep, err := c.Epoch(room)
		if err != nil || ep != rec.Epoch {
			t.Fatalf("%s at epoch %d (%v), hub at %d", c.ID(), ep, err, rec.Epoch)
		}
	}
	if !slices.Contains(rec.Members, b2.ID()) {
		t.Fatalf("hub members %v", rec.Members)
	}
	// Everything was acknowledged.
	for _, c := range []*sdkClient{a1, b1, b2} {
		if es, err := e.node.P.Inbox(c.ID(), 0, 0); err != nil || len(es) != 0 {
			t.Fatalf("%s: %d unacknowledged (%v)", c.ID(), len(es), err)
		}
	}
}

// providerKeyPackage makes a KeyPackage of c that c's SDK client does not
// know of: a copy of c (loaded from its saved state) publishes it to a
// recording provider.
func providerKeyPackage(t *testing.T, c *sdkClient) *wire.KeyPackage {
	t.Helper()
	st, err := c.Save()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingProvider{}
	cc, err := client.Load(st, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.PublishKeyPackages(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	return rec.kps[0]
}

// recordingProvider records uploaded KeyPackages and fails everything
// else.
type recordingProvider struct {
	client.Provider
	mu  sync.Mutex
	kps []*wire.KeyPackage
}

func (r *recordingProvider) UploadKeyPackages(_ context.Context, _ string, kps []*wire.KeyPackage) error {
	r.mu.Lock()
	r.kps = append(r.kps, kps...)
	r.mu.Unlock()
	return nil
}

// TestInboxLive: a following Inbox stream signals it is open with a
// heartbeat, delivers a new message as soon as the hub accepts it (woken
// by the Raft node's applied index: the poll and heartbeat intervals are
// far longer than the test), and signals each time it caught up again.
func TestInboxLive(t *testing.T) {
	e := newSingle(t, clientapi.Config{PollInterval: time.Minute, HeartbeatInterval: time.Minute})
	alice := userURI("a.example", "alice")
	bob := userURI("a.example", "bob")
	a1 := newClient(t, e.ctx, e.api, alice, "alice1", 0)
	b1 := newClient(t, e.ctx, e.api, bob, "bob1", 1)
	if err := a1.CreateRoom(e.ctx, room, flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}, {User: bob, Role: "member"}}); err != nil {
		t.Fatal(err)
	}
	syncAll(t, e.ctx, b1)
	if _, err := b1.Room(room); err != nil {
		t.Fatalf("bob1 not in the room: %v", err)
	}
	next := func() uint64 {
		es, _ := e.node.P.Inbox(b1.ID(), 0, 0)
		if len(es) == 0 {
			return 0
		}
		return es[len(es)-1].N + 1
	}
	// Bob acknowledged everything: watch from the end of the inbox.
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	entries := make(chan client.InboxEntry, 16)
	var mu sync.Mutex
	var beats []uint64
	opened := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- b1.rp.Watch(ctx, b1.ID(), next(), func(ie client.InboxEntry) error {
			entries <- ie
			return nil
		}, func(n uint64) {
			mu.Lock()
			beats = append(beats, n)
			mu.Unlock()
			once.Do(func() { close(opened) })
		})
	}()
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat when the stream opened")
	}
	for i, text := range []string{"one", "two"} {
		start := time.Now()
		if _, err := a1.Send(e.ctx, room, []byte(text)); err != nil {
			t.Fatal(err)
		}
		select {
		case ie := <-entries:
			if ie.Room != room || ie.Message.Message.WireFormat != wire.WireFormatPrivateMessage {
				t.Fatalf("entry %d: %+v", i, ie)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("entry %d took %v", i, d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not delivered live", i)
		}
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Opened, then caught up after each message.
	if len(beats) != 3 || beats[1] <= beats[0] || beats[2] != beats[1]+1 {
		t.Fatalf("heartbeats %v", beats)
	}
	// The SDK then processes both messages.
	evs := syncAll(t, e.ctx, b1)
	var got []string
	for _, ev := range evs[b1.ID()] {
		if ev.Type == client.EventMessage {
			got = append(got, string(ev.Data))
		}
	}
	if !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("bob1 got %v", got)
	}
}

// TestInboxHeartbeats: an idle following stream sends a heartbeat every
// heartbeat interval, each carrying the next position; a stream without
// follow ends once caught up; limit bounds the entries.
func TestInboxHeartbeats(t *testing.T) {
	e := newSingle(t, clientapi.Config{HeartbeatInterval: 100 * time.Millisecond})
	alice := userURI("a.example", "alice")
	a1 := newClient(t, e.ctx, e.api, alice, "alice1", 0)
	var mu sync.Mutex
	var beats []uint64
	ctx, cancel := context.WithTimeout(e.ctx, 650*time.Millisecond)
	defer cancel()
	err := a1.rp.Watch(ctx, a1.ID(), 7, func(client.InboxEntry) error {
		t.Error("unexpected entry")
		return nil
	}, func(n uint64) {
		mu.Lock()
		beats = append(beats, n)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(beats) < 4 || len(beats) > 8 {
		t.Fatalf("%d heartbeats in 650ms at 100ms: %v", len(beats), beats)
	}
	for _, b := range beats {
		if b != 7 {
			t.Fatalf("heartbeat next=%d, want 7", b)
		}
	}
}
