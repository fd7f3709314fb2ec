package clientapi_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	clientv1 "github.com/openmimi/mimi/gen/mimi/client/v1"
	"github.com/openmimi/mimi/gen/mimi/client/v1/clientv1connect"
	"github.com/openmimi/mimi/httpapi/clientapi"
	"github.com/openmimi/mimi/internal/testpki"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/provider/providertest"
)

// A key-material call replayed to another node of the provider (here a
// second client API over the same replicated state, with its own replay
// cache) is refused: the call is recorded in the log
// (eventlog.ClientCallAccepted), and the replay claims no KeyPackage.
func TestKeyMaterialReplayAcrossNodes(t *testing.T) {
	ca := testpki.MustNew(t, "mimi test CA")
	n := providertest.New(t, "a.example", providertest.Options{})
	one := serveAPI(t, ca, n.P, clientapi.Config{Applied: n.Raft})
	two := serveAPI(t, ca, n.P, clientapi.Config{Applied: n.Raft})
	e := &single{t: t, ctx: t.Context(), node: n, api: one}
	alice, bob := userURI("a.example", "alice"), userURI("a.example", "bob")
	a1 := newClient(t, e.ctx, one, alice, "alice1", 1)
	newClient(t, e.ctx, one, bob, "bob1", 2)
	if err := a1.CreateRoom(e.ctx, room, flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	body, err := codec.Marshal(&mimi.KeyMaterialRequest{
		Protocol: mimi.ProtocolMLS10, RequestingUser: alice, TargetUser: bob, RoomID: room,
		AcceptableCiphersuites: []cipher.SuiteID{suite},
	})
	if err != nil {
		t.Fatal(err)
	}
	const proc = clientv1connect.ClientServiceKeyMaterialProcedure
	call := func(api *api, at time.Time) (mimi.KeyMaterialClientCode, error) {
		req := signed(t, a1.s, proc, &clientv1.KeyMaterialRequest{Body: body}, at)
		return claim(t, api, req)
	}
	now := time.Now()
	req := signed(t, a1.s, proc, &clientv1.KeyMaterialRequest{Body: body}, now)
	if code, err := claim(t, one, req); err != nil || code != mimi.ClientSuccess {
		t.Fatalf("first claim: %v %v", code, err)
	}
	// The same signed call on the other node, and on the first again.
	for name, api := range map[string]*api{"other node": two, "same node": one} {
		_, err := claim(t, api, req)
		if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "replay") {
			t.Fatalf("replay on the %s: %v", name, err)
		}
	}
	// Bob's second KeyPackage is still there, for a new call; then none.
	if code, err := call(two, now.Add(time.Millisecond)); err != nil || code != mimi.ClientSuccess {
		t.Fatalf("second claim: %v %v", code, err)
	}
	if code, err := call(one, now.Add(2*time.Millisecond)); err != nil || code != mimi.ClientKeyMaterialExhausted {
		t.Fatalf("third claim: %v %v, want keyMaterialExhausted", code, err)
	}
}

// claim sends a signed KeyMaterial call and returns the code of bob1's
// entry.
func claim(t *testing.T, a *api, req *connect.Request[clientv1.KeyMaterialRequest]) (mimi.KeyMaterialClientCode, error) {
	t.Helper()
	resp, err := a.rpc.KeyMaterial(t.Context(), req)
	if err != nil {
		return 0, err
	}
	var km mimi.KeyMaterialResponse
	if err := mimi.Decode(resp.Msg.GetBody(), "KeyMaterialResponse", &km); err != nil {
		t.Fatal(err)
	}
	if len(km.Clients) != 1 {
		return 0, errors.New("not one client in the answer")
	}
	return km.Clients[0].Status, nil
}
