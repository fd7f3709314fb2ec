// Package providertest builds MIMI providers (package provider) and MLS
// clients for tests: a provider on a standalone Raft node over projections
// in a temporary directory, in-process federation between providers,
// a minimal fanout loop standing in for the fanout worker, and MLS clients
// with MIMI identities (draft-ralston-mimi-protocol-02; docs/wire.md)
// built with the member-side mls.Group.
package providertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/raftnode"
)

// Suite is the cipher suite the helpers use:
// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.
const Suite = cipher.SuiteID(1)

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at the current time, truncated to the second.
func NewClock() *Clock { return &Clock{now: time.Now().Truncate(time.Second)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// HubKey returns a fresh hub signature key pair for Suite and its
// external_senders entry with provider.HubCredential(domain).
func HubKey(t testing.TB, domain string) (priv []byte, sender wire.ExternalSender) {
	t.Helper()
	s, err := cipher.Lookup(Suite)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	return priv, wire.ExternalSender{SignatureKey: pub, Credential: provider.HubCredential(domain)}
}

// Options configure New.
type Options struct {
	// Dir holds the provider's state (default t.TempDir()); reopening the
	// same Dir restarts the provider on its state.
	Dir string
	// Remote reaches peers (default none).
	Remote provider.Remote
	// Clock (default a new Clock).
	Clock *Clock
	// HubPriv and HubSender (default HubKey).
	HubPriv   []byte
	HubSender *wire.ExternalSender
	// Consent hook.
	Consent provider.ConsentFunc
	// KickDestinations hook.
	KickDestinations func(dests []string)
	// WrapRaft, if set, wraps the Raft node the provider writes through
	// (Node.Raft stays the node itself).
	WrapRaft func(provider.Raft) provider.Raft
}

// Node is a provider with its state machine and Raft node.
type Node struct {
	Domain    string
	Dir       string
	P         *provider.Provider
	M         *projections.Machine
	Raft      *raftnode.Node[projections.Result]
	Clock     *Clock
	HubPriv   []byte
	HubSender wire.ExternalSender

	closeOnce sync.Once
}

// New opens a provider for domain on a standalone Raft node (closed at
// the end of the test).
func New(t testing.TB, domain string, o Options) *Node {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Clock == nil {
		o.Clock = NewClock()
	}
	n := &Node{Domain: domain, Dir: o.Dir, Clock: o.Clock}
	if o.HubPriv != nil && o.HubSender != nil {
		n.HubPriv, n.HubSender = o.HubPriv, *o.HubSender
	} else {
		n.HubPriv, n.HubSender = HubKey(t, domain)
	}
	m, err := projections.Open(filepath.Join(o.Dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := raftnode.Open[projections.Result](raftnode.Config{
		DataDir:            filepath.Join(o.Dir, "raft"),
		HeartbeatTimeout:   100 * time.Millisecond,
		ElectionTimeout:    100 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		Logger:             hclog.NewNullLogger(),
	}, m, projections.ResultCodec{})
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	n.M, n.Raft = m, node
	var r provider.Raft = node
	if o.WrapRaft != nil {
		r = o.WrapRaft(node)
	}
	n.P, err = provider.New(provider.Config{
		Domain: domain, Raft: r, Machine: m, Remote: o.Remote,
		HubSignaturePriv: n.HubPriv, HubSender: n.HubSender,
		Clock: o.Clock.Now, Logger: slog.New(slog.DiscardHandler), Consent: o.Consent,
		KickDestinations: o.KickDestinations,
	})
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// Close shuts the node down (idempotent).
func (n *Node) Close() {
	n.closeOnce.Do(func() {
		_ = n.Raft.Shutdown()
		_ = n.M.Close()
	})
}

// Digest returns the projections digest.
func (n *Node) Digest(t testing.TB) []byte {
	t.Helper()
	d, err := n.M.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Net connects in-process providers: the Remote of one provider serves
// requests with the target provider's methods, with the source as peer.
type Net struct {
	mu    sync.Mutex
	peers map[string]*provider.Provider
}

// NewNet returns an empty network.
func NewNet() *Net { return &Net{peers: map[string]*provider.Provider{}} }

// Add makes p reachable.
func (nt *Net) Add(p *provider.Provider) {
	nt.mu.Lock()
	nt.peers[p.Domain()] = p
	nt.mu.Unlock()
}

// Remote returns the provider.Remote of the provider at from.
func (nt *Net) Remote(from string) provider.Remote { return &netRemote{nt: nt, from: from} }

type netRemote struct {
	nt   *Net
	from string
}

func (r *netRemote) peer(target string) (*provider.Provider, error) {
	r.nt.mu.Lock()
	defer r.nt.mu.Unlock()
	p, ok := r.nt.peers[target]
	if !ok {
		return nil, fmt.Errorf("no provider %s", target)
	}
	return p, nil
}

func (r *netRemote) KeyMaterial(ctx context.Context, target string, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error) {
	p, err := r.peer(target)
	if err != nil {
		return nil, err
	}
	return p.KeyMaterial(ctx, r.from, req)
}

func (r *netRemote) Update(ctx context.Context, hub, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	p, err := r.peer(hub)
	if err != nil {
		return nil, err
	}
	return p.Update(ctx, r.from, room, req)
}

func (r *netRemote) SubmitMessage(ctx context.Context, hub, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	p, err := r.peer(hub)
	if err != nil {
		return nil, err
	}
	return p.SubmitMessage(ctx, r.from, room, req)
}

func (r *netRemote) GroupInfo(ctx context.Context, hub, room string, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error) {
	p, err := r.peer(hub)
	if err != nil {
		return nil, err
	}
	return p.GroupInfo(ctx, r.from, room, req)
}

// Notify delivers a /notify body from hub to the provider at target.
func (nt *Net) Notify(ctx context.Context, hub, target, room string, body []byte) error {
	r := &netRemote{nt: nt, from: hub}
	p, err := r.peer(target)
	if err != nil {
		return err
	}
	return p.Notify(ctx, hub, room, body)
}

// SendFunc posts a /notify body for room to the provider target.
type SendFunc func(ctx context.Context, target, room string, body []byte) error

// Deliver runs one pass of a minimal fanout worker over the hub's queues
// (draft-ralston-mimi-protocol-02, Section 5.5): for each destination it
// sends the pending entries, consecutive entries of one room concatenated
// into one /notify body, and records the acknowledgement
// (FanoutDelivered) after each accepted body. It returns the number of
// bodies sent.
func Deliver(t testing.TB, hub *Node, send SendFunc) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dests, err := hub.M.FanoutDestinations()
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, d := range dests {
		pending, err := hub.M.FanoutPending(d.Destination, 0)
		if err != nil {
			t.Fatal(err)
		}
		for len(pending) > 0 {
			room := pending[0].Room
			var batch []mimi.FanoutMessage
			var last uint64
			for len(pending) > 0 && pending[0].Room == room {
				fm, err := provider.ResolveDelivery(hub.M, pending[0])
				if err != nil {
					t.Fatal(err)
				}
				batch = append(batch, *fm)
				last = pending[0].N
				pending = pending[1:]
			}
			body, err := mimi.MarshalFanout(batch)
			if err != nil {
				t.Fatal(err)
			}
			if err := send(ctx, d.Destination, room, body); err != nil {
				t.Fatalf("notify %s: %v", d.Destination, err)
			}
			sent++
			cmd, err := projections.EncodeCommand(&projections.Command{Ops: []projections.Op{
				projections.EventOp("", uint64(hub.Clock.Now().UnixMilli()), &eventlog.FanoutDelivered{Destination: d.Destination, UpTo: last}),
			}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := hub.Raft.Apply(ctx, cmd)
			if err == nil {
				err = res.Err
			}
			if err != nil && !errors.Is(err, projections.ErrStaleAck) {
				t.Fatalf("recording delivery: %v", err)
			}
		}
	}
	return sent
}
