package federation_test

import (
	"bytes"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/openmimi/mimi/httpapi/federation"
	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

func suite(t testing.TB) *cipher.Suite {
	s, err := cipher.Lookup(providertest.Suite)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHTTPKeyMaterial: the user and client codes of
// draft-ralston-mimi-protocol-02, Section 5.2 over HTTPS, from the hub
// a.example to the target c.example.
func TestHTTPKeyMaterial(t *testing.T) {
	f := newFabric(t)
	f.createRoom()
	mk := func(user, client string, kps int) {
		c := providertest.NewClient(t, "c.example", user, client)
		c.Register(t, f.c.Node)
		if kps > 0 {
			c.Upload(t, f.c.Node, kps)
		}
	}
	mk("partial", "partial1", 1)
	mk("partial", "partial2", 0)
	mk("empty", "empty1", 0)
	req := func(user string) *mimi.KeyMaterialRequest {
		return providertest.KeyMaterialRequest("mimi://b.example/u/bob", "mimi://c.example/u/"+user, room)
	}
	cases := []struct {
		name    string
		req     *mimi.KeyMaterialRequest
		user    mimi.KeyMaterialUserCode
		clients []mimi.KeyMaterialClientCode
	}{
		{"success", req("cathy"), mimi.UserSuccess, []mimi.KeyMaterialClientCode{mimi.ClientSuccess}},
		{"partialSuccess", req("partial"), mimi.UserPartialSuccess, []mimi.KeyMaterialClientCode{mimi.ClientSuccess, mimi.ClientKeyMaterialExhausted}},
		{"exhausted", req("empty"), mimi.UserNoCompatibleMaterial, []mimi.KeyMaterialClientCode{mimi.ClientKeyMaterialExhausted}},
		{"userUnknown", req("nobody"), mimi.UserUnknown, nil},
		{"nothingCompatible", func() *mimi.KeyMaterialRequest {
			r := req("cathy")
			r.RequiredCapabilities.ProposalTypes = []wire.ProposalType{0xF777}
			return r
		}(), mimi.UserNoCompatibleMaterial, []mimi.KeyMaterialClientCode{mimi.ClientNothingCompatible}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.a.fed.KeyMaterial(f.ctx, "c.example", tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.UserStatus != tc.user || len(resp.Clients) != len(tc.clients) {
				t.Fatalf("got %+v", resp)
			}
			for i, c := range resp.Clients {
				if c.Status != tc.clients[i] {
					t.Fatalf("client %d: %d", i, c.Status)
				}
				if c.Status == mimi.ClientNothingCompatible && c.Capabilities == nil {
					t.Fatal("capabilities missing")
				}
			}
		})
	}
	// A protocol other than mls10: incompatibleProtocol.
	body, err := mimi.Encode(req("cathy"))
	if err != nil {
		t.Fatal(err)
	}
	body[0] = 2
	u, _ := mimi.ParseURI("mimi://c.example/u/cathy")
	r, err := f.a.tc.Post(f.ctx, "c.example", transport.KeyMaterial, u, body)
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("protocol 2: %v %+v", err, r)
	}
	var kr mimi.KeyMaterialResponse
	if err := mimi.Decode(r.Body, "KeyMaterialResponse", &kr); err != nil || kr.UserStatus != mimi.UserIncompatibleProtocol {
		t.Fatalf("protocol 2: %v %+v", err, kr)
	}
	// The body must name the user of the path.
	body, _ = mimi.Encode(req("cathy"))
	other, _ := mimi.ParseURI("mimi://c.example/u/partial")
	if r, err := f.a.tc.Post(f.ctx, "c.example", transport.KeyMaterial, other, body); err != nil || r.StatusCode != http.StatusBadRequest {
		t.Fatalf("path mismatch: %v %+v", err, r)
	}
	// Not through the hub: 403.
	if _, err := f.b.fed.KeyMaterial(f.ctx, "c.example", req("cathy")); !errors.Is(err, provider.ErrForbidden) {
		t.Fatalf("from b.example: %v", err)
	}
}

// TestHTTPKeyMaterialRelay: Bob asks a.example for Cathy's key material at
// c.example (Section 3.3).
func TestHTTPKeyMaterialRelay(t *testing.T) {
	f := newFabric(t)
	f.createRoom()
	f.aliceAddsBob("admin")
	resp, err := f.b.P.LocalKeyMaterial(f.ctx, f.bob.Client, providertest.KeyMaterialRequest("", f.cathy.User, room))
	if err != nil || resp.UserStatus != mimi.UserSuccess {
		t.Fatalf("relay: %v %+v", err, resp)
	}
	ref, _ := resp.Clients[0].KeyPackage.Ref(suite(t))
	if hr, err := f.a.M.HubRoute(ref); err != nil || hr.Provider != "c.example" {
		t.Fatalf("hub route %+v %v", hr, err)
	}
	if tr, err := f.c.M.TargetRoute(ref); err != nil || tr.Client != f.cathy.Client {
		t.Fatalf("target route %+v %v", tr, err)
	}
}

// TestHTTPKeyMaterialConcurrent: one KeyPackage, 20 concurrent requests
// over HTTPS, exactly one winner.
func TestHTTPKeyMaterialConcurrent(t *testing.T) {
	f := newFabric(t)
	dan := providertest.NewClient(t, "c.example", "dan", "dan1")
	dan.Register(t, f.c.Node)
	dan.Upload(t, f.c.Node, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, exhausted := 0, 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := f.a.fed.KeyMaterial(f.ctx, "c.example", providertest.KeyMaterialRequest("mimi://b.example/u/bob", dan.User, room))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case resp.UserStatus == mimi.UserSuccess:
				wins++
			case resp.UserStatus == mimi.UserNoCompatibleMaterial:
				exhausted++
			}
		}()
	}
	wg.Wait()
	if wins != 1 || exhausted != 19 {
		t.Fatalf("%d wins, %d exhausted", wins, exhausted)
	}
}

// TestHTTPUpdate: the update answers of Section 5.3 over HTTPS, the leave
// flow of Section 3.5 and the rules for removed participants.
func TestHTTPUpdate(t *testing.T) {
	f := newFabric(t)
	f.createRoom()
	f.aliceAddsBob("member")

	// notAllowed: Bob (member) lacks canAddUser.
	if resp := f.addUser(f.bob, f.bobG, f.b, f.cathy, "member"); resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("bob adds cathy: %+v", resp)
	}

	// wrongEpoch: Bob's commit after Alice's.
	pa, ra := providertest.Commit(t, f.aliceG, nil)
	pb, rb := providertest.Commit(t, f.bobG, nil)
	if resp, err := f.a.P.LocalUpdate(f.ctx, f.alice.Client, room, ra); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("alice: %v %+v", err, resp)
	}
	if err := pa.Merge(); err != nil {
		t.Fatal(err)
	}
	resp, err := f.b.P.LocalUpdate(f.ctx, f.bob.Client, room, rb)
	if err != nil || resp.Code != mimi.UpdateWrongEpoch || resp.CurrentEpoch != 2 {
		t.Fatalf("bob's stale commit: %v %+v", err, resp)
	}
	pb.Discard()
	f.deliver()
	f.process(f.bobG, f.inbox(f.b, f.bob))

	// invalidProposal with the reference of a proposal the hub never saw.
	sp, err := f.bobG.ProposeSelfRemove(nil)
	if err != nil {
		t.Fatal(err)
	}
	pb, rb = providertest.Commit(t, f.aliceG, nil)
	pb.Discard()
	aliceSees, err := f.aliceG.Process(sp.Message)
	if err != nil {
		t.Fatal(err)
	}
	pc, req := providertest.Commit(t, f.aliceG, nil, sp.Message.PublicMessage)
	resp, err = f.a.P.LocalUpdate(f.ctx, f.alice.Client, room, req)
	if err != nil || resp.Code != mimi.UpdateInvalidProposal || len(resp.InvalidProposals) != 1 || !bytes.Equal(resp.InvalidProposals[0], aliceSees.ProposalRef) {
		t.Fatalf("unknown reference: %v %+v", err, resp)
	}
	pc.Discard()
	// The same with a corrupted proposal sent by Bob: its ProposalRef.
	bad := *sp.Message.PublicMessage
	bad.Auth.Signature = bytes.Clone(bad.Auth.Signature)
	bad.Auth.Signature[1] ^= 2
	badRef, _ := publicgroup.ProposalRef(suite(t), &bad)
	resp, err = f.b.P.LocalUpdate(f.ctx, f.bob.Client, room, &mimi.UpdateRequest{ProposalOrCommit: bad})
	if err != nil || resp.Code != mimi.UpdateInvalidProposal || !bytes.Equal(resp.InvalidProposals[0], badRef) {
		t.Fatalf("bad proposal: %v %+v", err, resp)
	}

	// The leave flow: Bob's AppSync(-bob) and SelfRemove are cached.
	as, err := f.bobG.ProposeAppSync((&mimi.ChangeSet{Remove: []string{f.bob.User}}).AppSync(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = f.b.P.LocalUpdate(f.ctx, f.bob.Client, room, providertest.Proposals(as.Message, sp.Message))
	if err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("leave: %v %+v", err, resp)
	}
	pending := []*wire.PublicMessage{as.Message.PublicMessage, sp.Message.PublicMessage}
	// Bob may no longer commit or send messages.
	pcb, reqb := providertest.Commit(t, f.bobG, nil, pending...)
	if resp, err := f.b.P.LocalUpdate(f.ctx, f.bob.Client, room, reqb); err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("removed participant's commit: %v %+v", err, resp)
	}
	pcb.Discard()
	f.bobG.SetConfig(mls.Config{AllowAppDataWithPendingProposals: true})
	msg := providertest.Message(t, f.bobG, "still here")
	if sr, err := f.b.fed.SubmitMessage(f.ctx, "a.example", room, msg); err != nil || sr.Code != mimi.SubmitNotAllowed {
		t.Fatalf("removed participant's message: %v %+v", err, sr)
	}
	// A commit that omits the cached proposals is refused, one that
	// includes them accepted.
	pc, req = providertest.Commit(t, f.aliceG, nil) // alice has not seen them
	if resp, err := f.a.P.LocalUpdate(f.ctx, f.alice.Client, room, req); err != nil || resp.Code != mimi.UpdateNotAllowed {
		t.Fatalf("commit without the cached proposals: %v %+v", err, resp)
	}
	pc.Discard()
	f.deliver()
	f.process(f.aliceG, f.inbox(f.a, f.alice))
	pc, req = providertest.Commit(t, f.aliceG, nil, pending...)
	if resp, err := f.a.P.LocalUpdate(f.ctx, f.alice.Client, room, req); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("commit with the cached proposals: %v %+v", err, resp)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	f.deliver()
	ps := f.process(f.bobG, f.inbox(f.b, f.bob))
	if len(ps) == 0 || ps[len(ps)-1].Commit == nil || !ps[len(ps)-1].Commit.SelfRemoved {
		t.Fatalf("bob should see his removal: %+v", ps)
	}
	// An update for a room not hosted at a.example: 404.
	if _, err := f.b.fed.Update(f.ctx, "a.example", "mimi://a.example/r/none", req); !errors.Is(err, provider.ErrNoSuchRoom) {
		t.Fatalf("unknown room: %v", err)
	}
}

// TestHTTPNotify: 201 twice for a duplicate body, processed once; 403 from
// a provider that is not the hub.
func TestHTTPNotify(t *testing.T) {
	f := newFabric(t)
	f.createRoom()
	f.aliceAddsBob("admin")
	if resp, err := f.a.P.LocalSubmitMessage(f.ctx, f.alice.Client, room, providertest.Message(t, f.aliceG, "hi")); err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatalf("submit: %v %+v", err, resp)
	}
	pending, err := f.a.M.FanoutPending("b.example", 0)
	if err != nil || len(pending) != 1 {
		t.Fatalf("%v %v", pending, err)
	}
	fm, err := provider.ResolveDelivery(f.a.M, pending[0])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := mimi.MarshalFanout([]mimi.FanoutMessage{*fm})
	u, _ := mimi.ParseURI(room)
	for i := 0; i < 2; i++ {
		r, err := f.a.tc.Post(f.ctx, "b.example", transport.Notify, u, body)
		if err != nil || r.StatusCode != http.StatusCreated || len(r.Body) != 0 {
			t.Fatalf("notify %d: %v %+v", i, err, r)
		}
	}
	got := f.inbox(f.b, f.bob)
	if len(got) != 1 {
		t.Fatalf("bob got %d messages", len(got))
	}
	if ps := f.process(f.bobG, got); string(ps[0].ApplicationData) != "hi" {
		t.Fatal("wrong message")
	}
	r, err := f.c.tc.Post(f.ctx, "b.example", transport.Notify, u, body)
	if err != nil || r.StatusCode != http.StatusForbidden {
		t.Fatalf("notify from c.example: %v %+v", err, r)
	}
}

// TestHTTPGroupInfo: success, notAuthorized and noSuchRoom (Section 5.6).
func TestHTTPGroupInfo(t *testing.T) {
	f := newFabric(t)
	f.createRoom()
	f.aliceAddsBob("admin")
	resp, err := f.b.fed.GroupInfo(f.ctx, "a.example", room, providertest.GroupInfoRequest(t, f.bob))
	if err != nil || resp.Status != mimi.GroupInfoSuccess || resp.Verify() != nil {
		t.Fatalf("success: %v %+v", err, resp)
	}
	if resp, err := f.c.fed.GroupInfo(f.ctx, "a.example", room, providertest.GroupInfoRequest(t, f.cathy)); err != nil || resp.Status != mimi.GroupInfoNotAuthorized {
		t.Fatalf("notAuthorized: %v %+v", err, resp)
	}
	if resp, err := f.b.fed.GroupInfo(f.ctx, "a.example", "mimi://a.example/r/none", providertest.GroupInfoRequest(t, f.bob)); err != nil || resp.Status != mimi.GroupInfoNoSuchRoom {
		t.Fatalf("noSuchRoom: %v %+v", err, resp)
	}
	// Bob's new device joins by external commit through b.example.
	bob2 := providertest.NewClient(t, "b.example", "bob", "bob2")
	bob2.Register(t, f.b.Node)
	gi, err := f.b.P.LocalGroupInfo(f.ctx, bob2.Client, room, providertest.GroupInfoRequest(t, bob2))
	if err != nil || gi.Status != mimi.GroupInfoSuccess {
		t.Fatalf("bob2's group info: %v %+v", err, gi)
	}
	pc, req := providertest.ExternalJoin(t, bob2, gi)
	if resp, err := f.b.P.LocalUpdate(f.ctx, bob2.Client, room, req); err != nil || resp.Code != mimi.UpdateSuccess {
		t.Fatalf("external commit: %v %+v", err, resp)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	f.deliver()
	f.process(f.aliceG, f.inbox(f.a, f.alice))
	f.process(f.bobG, f.inbox(f.b, f.bob))
	// bob2 gets its own commit back (Section 5.5).
	if got := f.inbox(f.b, bob2); len(got) != 1 || !providertest.PastHandshake(pc.Group(), &got[0].Message) {
		t.Fatalf("bob2 got %d messages, want the echo of its commit", len(got))
	}
	// bob2 is a member at b.example now: it receives Alice's messages.
	if resp, err := f.a.P.LocalSubmitMessage(f.ctx, f.alice.Client, room, providertest.Message(t, f.aliceG, "welcome bob2")); err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatalf("submit: %v %+v", err, resp)
	}
	f.deliver()
	if ps := f.process(pc.Group(), f.inbox(f.b, bob2)); len(ps) != 1 || string(ps[0].ApplicationData) != "welcome bob2" {
		t.Fatalf("bob2: %+v", ps)
	}
}

// TestHTTPMalformed: a malformed or truncated body at every endpoint is
// 400 with a readable reason, and changes no state.
func TestHTTPMalformed(t *testing.T) {
	f := newFabric(t)
	f.createRoom()
	f.aliceAddsBob("admin")
	kmBody, _ := mimi.Encode(providertest.KeyMaterialRequest("mimi://b.example/u/bob", f.cathy.User, room))
	_, upReq := providertest.Commit(t, f.bobG, nil)
	upBody, _ := mimi.Encode(upReq)
	smBody, _ := mimi.Encode(providertest.Message(t, f.bobG, "x"))
	giBody, _ := mimi.Encode(providertest.GroupInfoRequest(t, f.bob))
	resp, err := f.a.P.LocalSubmitMessage(f.ctx, f.alice.Client, room, providertest.Message(t, f.aliceG, "x"))
	if err != nil || resp.Code != mimi.SubmitAccepted {
		t.Fatal(err, resp)
	}
	pending, _ := f.a.M.FanoutPending("b.example", 0)
	fm, err := provider.ResolveDelivery(f.a.M, pending[0])
	if err != nil {
		t.Fatal(err)
	}
	ntBody, _ := mimi.MarshalFanout([]mimi.FanoutMessage{*fm})

	roomURI, _ := mimi.ParseURI(room)
	userURI, _ := mimi.ParseURI(f.cathy.User)
	endpoints := []struct {
		ep     transport.Endpoint
		from   *peer
		to     *peer
		id     mimi.URI
		valid  []byte
		target string
	}{
		{transport.KeyMaterial, f.a, f.c, userURI, kmBody, "c.example"},
		{transport.Update, f.b, f.a, roomURI, upBody, "a.example"},
		{transport.SubmitMessage, f.b, f.a, roomURI, smBody, "a.example"},
		{transport.GroupInfo, f.b, f.a, roomURI, giBody, "a.example"},
		{transport.Notify, f.a, f.b, roomURI, ntBody, "b.example"},
	}
	for _, e := range endpoints {
		bodies := map[string][]byte{
			"empty":     {},
			"garbage":   []byte("this is not a MIMI body"),
			"truncated": e.valid[:len(e.valid)-1],
			"half":      e.valid[:len(e.valid)/2],
			"trailing":  append(bytes.Clone(e.valid), 0),
		}
		for name, body := range bodies {
			t.Run(string(e.ep)+"/"+name, func(t *testing.T) {
				before := e.to.Digest(t)
				r, err := e.from.tc.Post(f.ctx, e.target, e.ep, e.id, body)
				if err != nil {
					t.Fatal(err)
				}
				if r.StatusCode != http.StatusBadRequest || !bytes.HasPrefix(r.Body, []byte("mimi: malformed")) {
					t.Fatalf("status %d %q", r.StatusCode, r.Body)
				}
				if !bytes.Equal(before, e.to.Digest(t)) {
					t.Fatal("state changed")
				}
			})
		}
	}
	// Bad identifiers in the path are 400 too; GET is 405.
	raw := func(method, path string, body []byte) int {
		req, _ := http.NewRequestWithContext(f.ctx, method, "https://a.example"+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", transport.MediaType)
		res, err := f.b.tc.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := raw(http.MethodPost, "/v1/update/a.example/u/alice", upBody); s != http.StatusBadRequest {
		t.Fatalf("user URI as room: %d", s)
	}
	if s := raw(http.MethodPost, "/v1/update/not a uri", upBody); s != http.StatusBadRequest && s != http.StatusNotFound {
		t.Fatalf("garbage path: %d", s)
	}
	if s := raw(http.MethodGet, "/v1/update/a.example/r/clubhouse", nil); s != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", s)
	}
	if s := raw(http.MethodGet, mimi.WellKnownDirectory, nil); s != http.StatusOK {
		t.Fatalf("directory: %d", s)
	}
	if federation.Status(provider.ErrUnavailable) != http.StatusServiceUnavailable {
		t.Fatal("status mapping")
	}
}
