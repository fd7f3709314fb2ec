package provider_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

// TestKeyMaterialTarget covers every user and client code of
// draft-ralston-mimi-protocol-02, Section 5.2, answered by c.example as
// the target provider to the hub a.example.
func TestKeyMaterialTarget(t *testing.T) {
	consent := map[string]mimi.KeyMaterialUserCode{}
	var mu sync.Mutex
	c := providertest.New(t, "c.example", providertest.Options{Consent: func(_ context.Context, peer string, req *mimi.KeyMaterialRequest) mimi.KeyMaterialUserCode {
		mu.Lock()
		defer mu.Unlock()
		if code, ok := consent[req.TargetUser]; ok {
			return code
		}
		return mimi.UserSuccess
	}})
	mk := func(user, client string, kps int) *providertest.Client {
		cl := providertest.NewClient(t, "c.example", user, client)
		cl.Register(t, c)
		if kps > 0 {
			cl.Upload(t, c, kps)
		}
		return cl
	}
	mk("full", "full1", 2)
	mk("full", "full2", 2)
	mk("partial", "partial1", 1)
	mk("partial", "partial2", 0)
	mk("empty", "empty1", 0)
	mk("shy", "shy1", 1)
	mk("gone", "gone1", 1)
	mk("elsewhere", "elsewhere1", 1)
	consent["mimi://c.example/u/shy"] = mimi.UserNoConsent
	consent["mimi://c.example/u/gone"] = mimi.UserDeleted
	consent["mimi://c.example/u/elsewhere"] = mimi.UserNoConsentForThisRoom

	type want struct {
		user    mimi.KeyMaterialUserCode
		clients []mimi.KeyMaterialClientCode
		caps    bool
	}
	cases := []struct {
		name   string
		target string
		edit   func(*mimi.KeyMaterialRequest)
		want   want
	}{
		{"success", "full", nil, want{mimi.UserSuccess, []mimi.KeyMaterialClientCode{mimi.ClientSuccess, mimi.ClientSuccess}, false}},
		{"partialSuccess", "partial", nil, want{mimi.UserPartialSuccess, []mimi.KeyMaterialClientCode{mimi.ClientSuccess, mimi.ClientKeyMaterialExhausted}, false}},
		{"exhausted", "empty", nil, want{mimi.UserNoCompatibleMaterial, []mimi.KeyMaterialClientCode{mimi.ClientKeyMaterialExhausted}, false}},
		{"userUnknown", "nobody", nil, want{mimi.UserUnknown, nil, false}},
		{"noConsent", "shy", nil, want{mimi.UserNoConsent, nil, false}},
		{"userDeleted", "gone", nil, want{mimi.UserDeleted, nil, false}},
		{"noConsentForThisRoom", "elsewhere", nil, want{mimi.UserNoConsentForThisRoom, nil, false}},
		{"nothingCompatible extension", "full", func(r *mimi.KeyMaterialRequest) {
			r.RequiredCapabilities.ExtensionTypes = []wire.ExtensionType{0xF999}
		}, want{mimi.UserNoCompatibleMaterial, []mimi.KeyMaterialClientCode{mimi.ClientNothingCompatible, mimi.ClientNothingCompatible}, true}},
		{"nothingCompatible suite", "full", func(r *mimi.KeyMaterialRequest) {
			r.AcceptableCiphersuites = []cipher.SuiteID{3}
		}, want{mimi.UserNoCompatibleMaterial, []mimi.KeyMaterialClientCode{mimi.ClientNothingCompatible, mimi.ClientNothingCompatible}, true}},
		{"compatible capabilities", "full", func(r *mimi.KeyMaterialRequest) {
			r.RequiredCapabilities = wire.RequiredCapabilities{
				ExtensionTypes:  []wire.ExtensionType{wire.ExtensionApplicationStates, wire.ExtensionExternalSenders},
				ProposalTypes:   []wire.ProposalType{wire.ProposalAppSync, wire.ProposalRemove},
				CredentialTypes: []wire.CredentialType{wire.CredentialBasic},
			}
		}, want{mimi.UserSuccess, []mimi.KeyMaterialClientCode{mimi.ClientSuccess, mimi.ClientSuccess}, false}},
	}
	// "full" has two KeyPackages per client: one for "success", one for
	// "compatible capabilities"; the cases in between find them
	// incompatible.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := providertest.KeyMaterialRequest("mimi://b.example/u/bob", "mimi://c.example/u/"+tc.target, room)
			if tc.edit != nil {
				tc.edit(req)
			}
			resp, err := c.P.KeyMaterial(context.Background(), hubDomain, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.UserStatus != tc.want.user || resp.UserURI != req.TargetUser {
				t.Fatalf("user status %d (%s), want %d", resp.UserStatus, resp.UserURI, tc.want.user)
			}
			if len(resp.Clients) != len(tc.want.clients) {
				t.Fatalf("%d clients, want %d", len(resp.Clients), len(tc.want.clients))
			}
			for i, ck := range resp.Clients {
				if ck.Status != tc.want.clients[i] {
					t.Fatalf("client %d (%s): status %d, want %d", i, ck.ClientURI, ck.Status, tc.want.clients[i])
				}
				if (ck.Status == mimi.ClientSuccess) != (ck.KeyPackage != nil) {
					t.Fatalf("client %d: KeyPackage presence wrong", i)
				}
				if tc.want.caps && ck.Capabilities == nil {
					t.Fatalf("client %d: capabilities missing", i)
				}
				if ck.Status == mimi.ClientSuccess {
					ref, _ := ck.KeyPackage.Ref(mustSuite(t))
					tr, err := c.M.TargetRoute(ref)
					if err != nil || tr.Client != ck.ClientURI || tr.Room != room || tr.Claimer != req.RequestingUser {
						t.Fatalf("target route of %s: %+v %v", ck.ClientURI, tr, err)
					}
				}
			}
			// The response encodes per the draft.
			if _, err := mimi.Encode(resp); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func mustSuite(t testing.TB) *cipher.Suite {
	s, err := cipher.Lookup(providertest.Suite)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKeyMaterialOnceAndNotExpired: a KeyPackage is returned at most once
// and never after its not_after (Section 5.2).
func TestKeyMaterialOnceAndNotExpired(t *testing.T) {
	c := providertest.New(t, "c.example", providertest.Options{})
	cathy := providertest.NewClient(t, "c.example", "cathy", "cathy1")
	cathy.Register(t, c)
	short := cathy.KeyPackage(t, providertest.Lifetime(c.Clock, time.Hour))
	long1 := cathy.KeyPackage(t, providertest.Lifetime(c.Clock, 48*time.Hour))
	long2 := cathy.KeyPackage(t, providertest.Lifetime(c.Clock, 48*time.Hour))
	if _, err := c.P.UploadKeyPackages(context.Background(), cathy.Client, []*wire.KeyPackage{short, long1, long2}); err != nil {
		t.Fatal(err)
	}
	c.Clock.Advance(2 * time.Hour) // short is expired now
	seen := map[string]bool{}
	req := providertest.KeyMaterialRequest("mimi://b.example/u/bob", cathy.User, room)
	for i := 0; i < 2; i++ {
		resp, err := c.P.KeyMaterial(context.Background(), hubDomain, req)
		if err != nil || resp.UserStatus != mimi.UserSuccess {
			t.Fatalf("claim %d: %v %+v", i, err, resp)
		}
		ref, _ := resp.Clients[0].KeyPackage.Ref(mustSuite(t))
		if seen[string(ref)] {
			t.Fatalf("KeyPackage %x returned twice", ref)
		}
		seen[string(ref)] = true
	}
	shortRef, _ := short.Ref(mustSuite(t))
	if seen[string(shortRef)] {
		t.Fatal("an expired KeyPackage was returned")
	}
	resp, err := c.P.KeyMaterial(context.Background(), hubDomain, req)
	if err != nil || resp.UserStatus != mimi.UserNoCompatibleMaterial || resp.Clients[0].Status != mimi.ClientKeyMaterialExhausted {
		t.Fatalf("after two claims: %v %+v", err, resp)
	}
}

// TestKeyMaterialConcurrent: 20 concurrent requests for a user with one
// KeyPackage; exactly one gets it (the claim is decided inside the Raft
// state machine).
func TestKeyMaterialConcurrent(t *testing.T) {
	c := providertest.New(t, "c.example", providertest.Options{})
	cathy := providertest.NewClient(t, "c.example", "cathy", "cathy1")
	cathy.Register(t, c)
	cathy.Upload(t, c, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, exhausted := 0, 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.P.KeyMaterial(context.Background(), hubDomain, providertest.KeyMaterialRequest("mimi://b.example/u/bob", cathy.User, room))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("request: %v", err)
			case resp.UserStatus == mimi.UserSuccess:
				wins++
			case resp.UserStatus == mimi.UserNoCompatibleMaterial && resp.Clients[0].Status == mimi.ClientKeyMaterialExhausted:
				exhausted++
			default:
				t.Errorf("unexpected answer %+v", resp)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || exhausted != 19 {
		t.Fatalf("%d wins, %d exhausted; want 1 and 19", wins, exhausted)
	}
}

// TestKeyMaterialRelay: Bob (b.example) asks the hub a.example for
// Cathy's key material at c.example (Section 3.3); the hub records the
// route to c.example and c.example the route to Cathy's client.
func TestKeyMaterialRelay(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	w.aliceAddsBob("admin")
	resp, err := w.b.P.LocalKeyMaterial(w.ctx, w.bob.Client, providertest.KeyMaterialRequest("", w.cathy.User, room))
	if err != nil || resp.UserStatus != mimi.UserSuccess || len(resp.Clients) != 1 {
		t.Fatalf("relay: %v %+v", err, resp)
	}
	ref, _ := resp.Clients[0].KeyPackage.Ref(mustSuite(t))
	hr, err := w.a.M.HubRoute(ref)
	if err != nil || hr.Provider != "c.example" || hr.Room != room || hr.User != w.cathy.User {
		t.Fatalf("hub route: %+v %v", hr, err)
	}
	tr, err := w.c.M.TargetRoute(ref)
	if err != nil || tr.Client != w.cathy.Client || tr.Claimer != w.bob.User {
		t.Fatalf("target route: %+v %v", tr, err)
	}
	if _, err := w.b.M.HubRoute(ref); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("b.example is not the hub and records nothing: %v", err)
	}
}

// TestKeyMaterialForbidden covers the requests a provider refuses.
func TestKeyMaterialForbidden(t *testing.T) {
	w := newWorld(t)
	w.createRoom()
	ctx := w.ctx
	cases := []struct {
		name string
		at   *providertest.Node
		peer string
		req  *mimi.KeyMaterialRequest
	}{
		// Section 5.2: key material must be requested through the hub.
		{"not via the hub", w.c, "b.example", providertest.KeyMaterialRequest(w.bob.User, w.cathy.User, room)},
		{"neither target nor hub", w.a, "b.example", providertest.KeyMaterialRequest(w.bob.User, w.cathy.User, "mimi://d.example/r/x")},
		{"requester not a participant", w.a, "b.example", providertest.KeyMaterialRequest(w.bob.User, w.cathy.User, room)},
		{"peer speaks for another provider's user", w.a, "b.example", providertest.KeyMaterialRequest(w.alice.User, w.cathy.User, room)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.at.Digest(t)
			_, err := tc.at.P.KeyMaterial(ctx, tc.peer, tc.req)
			if !errors.Is(err, provider.ErrForbidden) {
				t.Fatalf("got %v, want ErrForbidden", err)
			}
			if string(before) != string(tc.at.Digest(t)) {
				t.Fatal("state changed")
			}
		})
	}
	if _, err := w.a.P.KeyMaterial(ctx, "b.example", providertest.KeyMaterialRequest(w.bob.User, w.cathy.User, "mimi://a.example/r/none")); !errors.Is(err, provider.ErrNoSuchRoom) {
		t.Fatalf("unknown room: %v", err)
	}
}

// TestUploadKeyPackages checks the local publication rules.
func TestUploadKeyPackages(t *testing.T) {
	c := providertest.New(t, "c.example", providertest.Options{})
	cathy := providertest.NewClient(t, "c.example", "cathy", "cathy1")
	other := providertest.NewClient(t, "c.example", "cathy", "cathy2")
	ctx := context.Background()
	if _, err := c.P.UploadKeyPackages(ctx, cathy.Client, []*wire.KeyPackage{cathy.KeyPackage(t, nil)}); !errors.Is(err, provider.ErrUnknownClient) {
		t.Fatalf("unregistered: %v", err)
	}
	// Nor has an unregistered client an inbox to read or acknowledge.
	before := c.Digest(t)
	if _, err := c.P.Inbox(cathy.Client, 0, 0); !errors.Is(err, provider.ErrUnknownClient) {
		t.Fatalf("inbox of an unregistered client: %v", err)
	}
	if err := c.P.Ack(ctx, cathy.Client, 0); !errors.Is(err, provider.ErrUnknownClient) {
		t.Fatalf("ack of an unregistered client: %v", err)
	}
	if string(before) != string(c.Digest(t)) {
		t.Fatal("state changed")
	}
	cathy.Register(t, c)
	if es, err := c.P.Inbox(cathy.Client, 0, 0); err != nil || len(es) != 0 {
		t.Fatalf("empty inbox: %v %v", es, err)
	}
	if _, err := c.P.UploadKeyPackages(ctx, cathy.Client, []*wire.KeyPackage{other.KeyPackage(t, nil)}); !errors.Is(err, provider.ErrInvalid) {
		t.Fatalf("another client's KeyPackage: %v", err)
	}
	kp := cathy.KeyPackage(t, nil)
	bad := *kp
	bad.Signature = append([]byte{}, kp.Signature...)
	bad.Signature[0] ^= 1
	if _, err := c.P.UploadKeyPackages(ctx, cathy.Client, []*wire.KeyPackage{&bad}); !errors.Is(err, provider.ErrInvalid) {
		t.Fatalf("bad signature: %v", err)
	}
	if _, err := c.P.UploadKeyPackages(ctx, cathy.Client, []*wire.KeyPackage{kp}); err != nil {
		t.Fatal(err)
	}
	// The same upload again (its answer was lost) changes nothing; one
	// that also carries a new KeyPackage stores only the new one.
	stored := c.Digest(t)
	if _, err := c.P.UploadKeyPackages(ctx, cathy.Client, []*wire.KeyPackage{kp}); err != nil {
		t.Fatalf("the same upload again: %v", err)
	}
	if string(stored) != string(c.Digest(t)) {
		t.Fatal("uploading a stored KeyPackage again changed the state")
	}
	kp2 := cathy.KeyPackage(t, nil)
	if _, err := c.P.UploadKeyPackages(ctx, cathy.Client, []*wire.KeyPackage{kp, kp2}); err != nil {
		t.Fatalf("a stored and a new KeyPackage: %v", err)
	}
	if kps, err := c.M.ClaimableKeyPackages(cathy.Client, 0, uint64(time.Now().UnixMilli())); err != nil || len(kps) != 2 {
		t.Fatalf("claimable after the uploads: %d, %v; want 2", len(kps), err)
	}
	// Registering a client of another provider, or with a non-MIMI
	// credential, is refused.
	stranger := providertest.NewClient(t, "b.example", "bob", "bob1")
	if _, err := c.P.RegisterClient(ctx, stranger.Cred, stranger.Pub); !errors.Is(err, provider.ErrInvalid) {
		t.Fatalf("foreign client: %v", err)
	}
	if _, err := c.P.RegisterClient(ctx, wire.Credential{Type: wire.CredentialBasic, Identity: []byte("x")}, stranger.Pub); !errors.Is(err, provider.ErrInvalid) {
		t.Fatalf("non-MIMI credential: %v", err)
	}
}
