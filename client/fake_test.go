package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/wire"
)

const suite = cipher.X25519_AES128GCM_SHA256_Ed25519

// fakeNet is an in-memory stand-in for every provider and hub of a test:
// it keeps KeyPackages, routes Welcomes by KeyPackageRef, follows each
// room's group in a public view (so it orders, validates and caches
// proposals like a hub), hands out hub-signed GroupInfo, and queues
// FanoutMessages per client. It enforces no room policy (the real
// provider does); it does check that commits include the cached proposals
// and that the GroupInfo and tree a committer sends are the new epoch's.
type fakeNet struct {
	t  testing.TB
	mu sync.Mutex

	hubs    map[string]*fakeHub // by domain
	clients map[string]string   // client URI -> user URI
	order   []string            // clients in registration order
	kps     map[string][]*wire.KeyPackage
	routes  map[string]string // KeyPackageRef -> client
	rooms   map[string]*fakeRoom
	inbox   map[string][]client.InboxEntry
	seq     uint64
	ts      uint64

	// echo also delivers a client's own messages back to it (Section 5.5:
	// clients must be prepared for that).
	echo bool
	// updateHook, when set, may replace the answer to an update: it is
	// called before the hub handles it; a non-nil response or error is
	// returned instead. after is called with the hub's answer.
	updateHook func(client string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error)
	afterHook  func(client string, resp *mimi.UpdateRoomResponse) (*mimi.UpdateRoomResponse, error)
	// keyMaterialHook and groupInfoHook may alter answers.
	keyMaterialHook func(resp *mimi.KeyMaterialResponse)
	groupInfoHook   func(resp *mimi.GroupInfoResponse)
	// calls counts provider calls by method.
	calls map[string]int
}

type fakeHub struct {
	priv   []byte
	sender wire.ExternalSender
}

type fakeRoom struct {
	view *publicgroup.View
	gi   *wire.GroupInfo
	tree wire.RatchetTree
}

func newFakeNet(t testing.TB) *fakeNet {
	return &fakeNet{
		t: t, hubs: map[string]*fakeHub{}, clients: map[string]string{}, kps: map[string][]*wire.KeyPackage{},
		routes: map[string]string{}, rooms: map[string]*fakeRoom{}, inbox: map[string][]client.InboxEntry{},
		calls: map[string]int{},
	}
}

func (n *fakeNet) hub(domain string) *fakeHub {
	if h := n.hubs[domain]; h != nil {
		return h
	}
	s, err := cipher.Lookup(suite)
	if err != nil {
		n.t.Fatal(err)
	}
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		n.t.Fatal(err)
	}
	h := &fakeHub{priv: priv, sender: wire.ExternalSender{SignatureKey: pub,
		Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte("mimi://" + domain)}}}
	n.hubs[domain] = h
	return h
}

// provider returns the Provider of one domain's clients.
func (n *fakeNet) provider(domain string) client.Provider { return &fakeProvider{n: n, domain: domain} }

func domainOf(uri string) string {
	u, err := mimi.ParseURI(uri)
	if err != nil {
		return ""
	}
	return u.Provider
}

// roundTrip encodes and decodes a body, as a network API would.
func roundTrip[T any, P interface {
	*T
	codec.Marshaler
	codec.Unmarshaler
}](t testing.TB, v P) P {
	b, err := mimi.Encode(v)
	if err != nil {
		t.Fatalf("encoding %T: %v", v, err)
	}
	out := P(new(T))
	if err := mimi.Decode(b, fmt.Sprintf("%T", v), out); err != nil {
		t.Fatalf("decoding %T: %v", v, err)
	}
	return out
}

func (n *fakeNet) deliver(to, room string, fm mimi.FanoutMessage) {
	n.seq++
	n.inbox[to] = append(n.inbox[to], client.InboxEntry{Seq: n.seq, Room: room, Message: fm})
}

func (n *fakeNet) memberClients(v *publicgroup.View) []string {
	var out []string
	for _, m := range v.Members() {
		id, err := mimi.IdentityFromCredential(&m.Credential)
		if err != nil {
			n.t.Fatalf("member without identity: %v", err)
		}
		out = append(out, id.Client)
	}
	return out
}

// fanout queues msg for every client in to (deduplicated) except the sender
// (unless echo).
func (n *fakeNet) fanout(room, sender string, to []string, msg *wire.MLSMessage) {
	n.ts++
	seen := map[string]bool{}
	for _, c := range to {
		if seen[c] || (c == sender && !n.echo) {
			continue
		}
		seen[c] = true
		n.deliver(c, room, mimi.FanoutMessage{Timestamp: n.ts, Message: *msg})
	}
}

type fakeProvider struct {
	n      *fakeNet
	domain string
}

func (p *fakeProvider) own(client string) error {
	if domainOf(client) != p.domain {
		return fmt.Errorf("fake: client %s is not at %s", client, p.domain)
	}
	if _, ok := p.n.clients[client]; !ok {
		return fmt.Errorf("fake: unknown client %s", client)
	}
	return nil
}

func (p *fakeProvider) RegisterClient(_ context.Context, cred wire.Credential, sigPub []byte) error {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls["RegisterClient"]++
	id, err := mimi.IdentityFromCredential(&cred)
	if err != nil {
		return err
	}
	if domainOf(id.Client) != p.domain || len(sigPub) == 0 {
		return fmt.Errorf("fake: bad registration of %s", id.Client)
	}
	if _, ok := n.clients[id.Client]; !ok {
		n.order = append(n.order, id.Client)
	}
	n.clients[id.Client] = id.User
	return nil
}

func (p *fakeProvider) UploadKeyPackages(_ context.Context, cl string, kps []*wire.KeyPackage) error {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls["UploadKeyPackages"]++
	if err := p.own(cl); err != nil {
		return err
	}
	s, _ := cipher.Lookup(suite)
	for _, kp := range kps {
		if err := kp.Verify(s); err != nil {
			return err
		}
		id, err := mimi.IdentityFromCredential(&kp.LeafNode.Credential)
		if err != nil || id.Client != cl {
			return fmt.Errorf("fake: KeyPackage of another client")
		}
	}
	n.kps[cl] = append(n.kps[cl], kps...)
	return nil
}

func (p *fakeProvider) KeyMaterial(_ context.Context, cl string, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error) {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls["KeyMaterial"]++
	if err := p.own(cl); err != nil {
		return nil, err
	}
	req = roundTrip(n.t, req)
	if n.clients[cl] != req.RequestingUser {
		return nil, fmt.Errorf("fake: %s speaks for %s", cl, req.RequestingUser)
	}
	resp := &mimi.KeyMaterialResponse{Protocol: mimi.ProtocolMLS10, UserURI: req.TargetUser}
	got := 0
	for _, c := range n.order {
		if n.clients[c] != req.TargetUser {
			continue
		}
		ckm := mimi.ClientKeyMaterial{ClientURI: c, Status: mimi.ClientKeyMaterialExhausted}
		for i, kp := range n.kps[c] {
			if !slices.Contains(req.AcceptableCiphersuites, kp.CipherSuite) {
				continue
			}
			s, _ := cipher.Lookup(kp.CipherSuite)
			ref, err := kp.Ref(s)
			if err != nil {
				return nil, err
			}
			n.routes[string(ref)] = c
			n.kps[c] = slices.Delete(n.kps[c], i, i+1)
			ckm.Status, ckm.KeyPackage = mimi.ClientSuccess, kp
			got++
			break
		}
		resp.Clients = append(resp.Clients, ckm)
	}
	switch {
	case len(resp.Clients) == 0:
		resp.UserStatus = mimi.UserUnknown
	case got == len(resp.Clients):
		resp.UserStatus = mimi.UserSuccess
	case got > 0:
		resp.UserStatus = mimi.UserPartialSuccess
	default:
		resp.UserStatus = mimi.UserNoCompatibleMaterial
	}
	if n.keyMaterialHook != nil {
		n.keyMaterialHook(resp)
	}
	return roundTrip(n.t, resp), nil
}

func (p *fakeProvider) CreateRoom(_ context.Context, cl, room string, gi *wire.GroupInfo, tree wire.RatchetTree) error {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls["CreateRoom"]++
	if err := p.own(cl); err != nil {
		return err
	}
	if domainOf(room) != p.domain || n.rooms[room] != nil {
		return fmt.Errorf("fake: cannot create %s", room)
	}
	s, _ := cipher.Lookup(gi.GroupContext.CipherSuite)
	v, err := publicgroup.New(s, gi, tree)
	if err != nil {
		return err
	}
	h := n.hub(p.domain)
	listed := false
	for _, es := range v.ExternalSenders() {
		if bytes.Equal(es.SignatureKey, h.sender.SignatureKey) {
			listed = true
		}
	}
	if !listed {
		return fmt.Errorf("fake: external_senders does not list the hub")
	}
	rm, err := mimi.RoomFromStates(v.ApplicationStates())
	if err != nil || rm.Policy.RoomID != room {
		return fmt.Errorf("fake: bad room state: %v", err)
	}
	if _, found, _ := wire.RatchetTreeExtension(gi.Extensions); found {
		return fmt.Errorf("fake: GroupInfo with a tree")
	}
	n.rooms[room] = &fakeRoom{view: v, gi: gi, tree: tree}
	return nil
}

func (p *fakeProvider) Update(_ context.Context, cl, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls["Update"]++
	if err := p.own(cl); err != nil {
		return nil, err
	}
	if n.updateHook != nil {
		resp, err := n.updateHook(cl, req)
		if resp != nil || err != nil {
			return resp, err
		}
	}
	resp, err := n.update(cl, room, roundTrip(n.t, req))
	if err != nil {
		return nil, err
	}
	resp = roundTrip(n.t, resp)
	if n.afterHook != nil {
		return n.afterHook(cl, resp)
	}
	return resp, nil
}

func notAllowed(format string, args ...any) *mimi.UpdateRoomResponse {
	return &mimi.UpdateRoomResponse{Code: mimi.UpdateNotAllowed, ErrorDescription: fmt.Sprintf(format, args...)}
}

func (n *fakeNet) update(cl, roomID string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	r := n.rooms[roomID]
	if r == nil {
		return nil, fmt.Errorf("fake: no room %s", roomID)
	}
	wrongEpoch := &mimi.UpdateRoomResponse{Code: mimi.UpdateWrongEpoch, CurrentEpoch: r.view.Epoch()}
	if !req.IsCommit() {
		work := r.view.Clone()
		msgs := append([]wire.PublicMessage{req.ProposalOrCommit}, req.MoreProposals...)
		for i := range msgs {
			if msgs[i].Content.Epoch != work.Epoch() {
				return wrongEpoch, nil
			}
			if _, err := work.HandleProposal(&msgs[i]); err != nil {
				ref, _ := publicgroup.ProposalRef(work.Suite(), &msgs[i])
				return &mimi.UpdateRoomResponse{Code: mimi.UpdateInvalidProposal, InvalidProposals: [][]byte{ref}, ErrorDescription: err.Error()}, nil
			}
		}
		r.view = work
		to := n.memberClients(work)
		for i := range msgs {
			n.fanout(roomID, cl, to, &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: &msgs[i]})
		}
		return &mimi.UpdateRoomResponse{Code: mimi.UpdateSuccess, AcceptedTimestamp: n.ts}, nil
	}
	pm := &req.ProposalOrCommit
	if pm.Content.Epoch != r.view.Epoch() {
		return wrongEpoch, nil
	}
	res, err := r.view.HandleCommit(pm)
	if err != nil {
		var pe *commit.ProposalError
		if errors.As(err, &pe) {
			return &mimi.UpdateRoomResponse{Code: mimi.UpdateInvalidProposal, InvalidProposals: [][]byte{pe.Ref}, ErrorDescription: err.Error()}, nil
		}
		return notAllowed("commit: %v", err), nil
	}
	included := map[string]bool{}
	for _, ref := range res.ProposalRefs {
		included[string(ref)] = true
	}
	for _, pp := range r.view.PendingProposals() {
		if !included[string(pp.Ref)] {
			return notAllowed("the commit omits cached proposal %x", pp.Ref), nil
		}
	}
	if req.GroupInfo == nil || req.RatchetTreeOption == nil {
		return notAllowed("no GroupInfo or tree"), nil
	}
	if _, found, _ := wire.RatchetTreeExtension(req.GroupInfo.Extensions); found {
		return notAllowed("GroupInfo with a tree"), nil
	}
	if err := res.CheckGroupInfo(req.GroupInfo); err != nil {
		return notAllowed("GroupInfo: %v", err), nil
	}
	next := res.View()
	nt := next.RatchetTree()
	a, _ := codec.Marshal(&nt)
	b, _ := codec.Marshal(&req.RatchetTreeOption.Tree)
	if !bytes.Equal(a, b) {
		return notAllowed("the tree is not the new epoch's"), nil
	}
	if (len(res.Added) > 0) != (req.Welcome != nil) {
		return notAllowed("Welcome and Adds disagree"), nil
	}
	before := n.memberClients(r.view)
	if err := r.view.Accept(res); err != nil {
		return nil, err
	}
	r.gi, r.tree = req.GroupInfo, nt
	after := n.memberClients(r.view)
	added := map[string]bool{}
	for _, ad := range res.Added {
		c := n.routes[string(ad.KeyPackageRef)]
		if c == "" {
			return nil, fmt.Errorf("fake: no route for an added KeyPackage")
		}
		added[c] = true
	}
	var to []string
	for _, c := range append(before, after...) {
		if !added[c] {
			to = append(to, c)
		}
	}
	n.fanout(roomID, cl, to, &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: pm})
	if req.Welcome != nil {
		wm := wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatWelcome, Welcome: req.Welcome}
		for _, c := range after {
			if added[c] {
				n.deliver(c, roomID, mimi.FanoutMessage{Timestamp: n.ts, Message: wm,
					RatchetTreeOption: &mimi.RatchetTreeOption{Representation: mimi.RatchetTreeFull, Tree: nt}})
			}
		}
	}
	return &mimi.UpdateRoomResponse{Code: mimi.UpdateSuccess, AcceptedTimestamp: n.ts}, nil
}

func (p *fakeProvider) SubmitMessage(_ context.Context, cl, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls["SubmitMessage"]++
	if err := p.own(cl); err != nil {
		return nil, err
	}
	req = roundTrip(n.t, req)
	r := n.rooms[room]
	if r == nil {
		return nil, fmt.Errorf("fake: no room %s", room)
	}
	pm := req.AppMessage.PrivateMessage
	switch {
	case pm.Epoch < r.view.Epoch():
		return &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitEpochTooOld, CurrentEpoch: r.view.Epoch()}, nil
	case pm.Epoch > r.view.Epoch() || !slices.Contains(n.memberClients(r.view), cl):
		return &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitNotAllowed}, nil
	}
	n.fanout(room, cl, n.memberClients(r.view), &req.AppMessage)
	return roundTrip(n.t, &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitAccepted, AcceptedTimestamp: n.ts}), nil
}

func (p *fakeProvider) GroupInfo(_ context.Context, cl, room string, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error) {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls["GroupInfo"]++
	if err := p.own(cl); err != nil {
		return nil, err
	}
	req = roundTrip(n.t, req)
	if err := req.Verify(); err != nil {
		return &mimi.GroupInfoResponse{Version: mimi.ProtocolMLS10, Status: mimi.GroupInfoNotAuthorized}, nil
	}
	r := n.rooms[room]
	if r == nil {
		return &mimi.GroupInfoResponse{Version: mimi.ProtocolMLS10, Status: mimi.GroupInfoNoSuchRoom}, nil
	}
	h := n.hub(domainOf(room))
	resp := &mimi.GroupInfoResponse{
		Version: mimi.ProtocolMLS10, Status: mimi.GroupInfoSuccess, CipherSuite: suite, RoomID: []byte(room),
		HubSender: h.sender, GroupInfo: *r.gi, RatchetTreeOption: mimi.RatchetTreeOption{Representation: mimi.RatchetTreeFull, Tree: r.tree},
	}
	if err := resp.Sign(h.priv); err != nil {
		return nil, err
	}
	if n.groupInfoHook != nil {
		n.groupInfoHook(resp)
	}
	return roundTrip(n.t, resp), nil
}

func (p *fakeProvider) Inbox(_ context.Context, cl string, from uint64, limit int) ([]client.InboxEntry, error) {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls["Inbox"]++
	if err := p.own(cl); err != nil {
		return nil, err
	}
	var out []client.InboxEntry
	for _, e := range n.inbox[cl] {
		if e.Seq >= from && (limit <= 0 || len(out) < limit) {
			fm := roundTrip(n.t, &e.Message)
			out = append(out, client.InboxEntry{Seq: e.Seq, Room: e.Room, Message: *fm})
		}
	}
	return out, nil
}

func (p *fakeProvider) Ack(_ context.Context, cl string, upTo uint64) error {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls["Ack"]++
	if err := p.own(cl); err != nil {
		return err
	}
	q := n.inbox[cl]
	for len(q) > 0 && q[0].Seq <= upTo {
		q = q[1:]
	}
	n.inbox[cl] = q
	return nil
}

func (p *fakeProvider) HubSender(_ context.Context, room string) (wire.ExternalSender, error) {
	n := p.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if domainOf(room) != p.domain {
		return wire.ExternalSender{}, fmt.Errorf("fake: %s is not hosted at %s", room, p.domain)
	}
	return n.hub(p.domain).sender, nil
}

// pending returns how many inbox entries a client has.
func (n *fakeNet) pending(cl string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.inbox[cl])
}

// epoch returns the hub's epoch of a room.
func (n *fakeNet) epoch(room string) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rooms[room].view.Epoch()
}
