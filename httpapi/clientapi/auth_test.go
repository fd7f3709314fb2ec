package clientapi_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/remote"
	"github.com/openmimi/mimi/client/remote/clientauth"
	clientv1 "github.com/openmimi/mimi/gen/mimi/client/v1"
	"github.com/openmimi/mimi/gen/mimi/client/v1/clientv1connect"
	"github.com/openmimi/mimi/httpapi/clientapi"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

const (
	ackProc = clientv1connect.ClientServiceAckProcedure
	hubProc = clientv1connect.ClientServiceHubSenderProcedure
)

// hubReq is a cheap valid call body.
func hubReq() *clientv1.HubSenderRequest { return &clientv1.HubSenderRequest{Room: room} }

// TestAuthRefused: calls without valid authentication are refused with
// Unauthenticated (and malformed messages with InvalidArgument) before any
// state changes.
func TestAuthRefused(t *testing.T) {
	e := newSingle(t, clientapi.Config{})
	alice := newClient(t, e.ctx, e.api, userURI("a.example", "alice"), "alice1", 0)
	now := time.Now()
	stranger := newSigner(t, clientURI("a.example", "stranger"))
	impostor := newSigner(t, alice.ID()) // right URI, wrong key

	header := func(v string) *connect.Request[clientv1.HubSenderRequest] {
		r := connect.NewRequest(hubReq())
		if v != "" {
			r.Header().Set(clientauth.HeaderName, v)
		}
		return r
	}
	valid := signed(t, alice.s, hubProc, hubReq(), now).Header().Get(clientauth.HeaderName)
	fields := strings.Split(valid, " ")
	cases := []struct {
		name string
		req  *connect.Request[clientv1.HubSenderRequest]
		code connect.Code
	}{
		{"no header", header(""), connect.CodeUnauthenticated},
		{"garbage header", header("hello"), connect.CodeUnauthenticated},
		{"bad client URI", header(strings.Join(append([]string{"mimi://a.example/u/alice"}, fields[1:]...), " ")), connect.CodeUnauthenticated},
		{"bad signature encoding", header(strings.Join(append(fields[:3:3], "!!"), " ")), connect.CodeUnauthenticated},
		{"unknown suite", header(strings.Join([]string{fields[0], "65000", fields[2], fields[3]}, " ")), connect.CodeUnauthenticated},
		{"unregistered client", signed(t, stranger, hubProc, hubReq(), now), connect.CodeUnauthenticated},
		{"wrong key", signed(t, impostor, hubProc, hubReq(), now), connect.CodeUnauthenticated},
		{"stale", signed(t, alice.s, hubProc, hubReq(), now.Add(-10*time.Minute)), connect.CodeUnauthenticated},
		{"future", signed(t, alice.s, hubProc, hubReq(), now.Add(10*time.Minute)), connect.CodeUnauthenticated},
		{"other procedure", signed(t, alice.s, ackProc, hubReq(), now), connect.CodeUnauthenticated},
		{"tampered request", func() *connect.Request[clientv1.HubSenderRequest] {
			r := signed(t, alice.s, hubProc, hubReq(), now)
			r.Msg.Room = "mimi://a.example/r/other"
			return r
		}(), connect.CodeUnauthenticated},
		{"shifted timestamp", func() *connect.Request[clientv1.HubSenderRequest] {
			r := signed(t, alice.s, hubProc, hubReq(), now)
			a, _ := clientauth.Parse(r.Header().Get(clientauth.HeaderName))
			a.Timestamp++
			r.Header().Set(clientauth.HeaderName, a.String())
			return r
		}(), connect.CodeUnauthenticated},
		{"two header fields", func() *connect.Request[clientv1.HubSenderRequest] {
			r := signed(t, alice.s, hubProc, hubReq(), now)
			r.Header().Add(clientauth.HeaderName, r.Header().Get(clientauth.HeaderName))
			return r
		}(), connect.CodeUnauthenticated},
		{"unknown field", func() *connect.Request[clientv1.HubSenderRequest] {
			m := hubReq()
			m.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
			return signed(t, alice.s, hubProc, m, now)
		}(), connect.CodeInvalidArgument},
	}
	before := e.node.Digest(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.api.rpc.HubSender(e.ctx, tc.req)
			wantCode(t, tc.name, err, tc.code)
		})
	}
	// A valid call succeeds once; its replay is refused.
	req := signed(t, alice.s, hubProc, hubReq(), now)
	if _, err := e.api.rpc.HubSender(e.ctx, req); err != nil {
		t.Fatal(err)
	}
	_, err := e.api.rpc.HubSender(e.ctx, req)
	wantCode(t, "replay", err, connect.CodeUnauthenticated)
	if !strings.Contains(err.Error(), "replay") {
		t.Fatalf("replay: %v", err)
	}
	// The same call signed one millisecond later is a new call.
	if _, err := e.api.rpc.HubSender(e.ctx, signed(t, alice.s, hubProc, hubReq(), now.Add(time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	// A replayed stream call is refused too.
	ireq := signed(t, alice.s, clientv1connect.ClientServiceInboxProcedure, &clientv1.InboxRequest{}, now)
	for i, code := range []connect.Code{0, connect.CodeUnauthenticated} {
		st, err := e.api.rpc.Inbox(e.ctx, ireq)
		if err != nil {
			t.Fatal(err)
		}
		for st.Receive() {
		}
		if code == 0 && st.Err() != nil {
			t.Fatalf("inbox %d: %v", i, st.Err())
		} else if code != 0 {
			wantCode(t, "inbox replay", st.Err(), code)
		}
		st.Close()
	}
	if after := e.node.Digest(t); !bytes.Equal(before, after) {
		t.Fatal("refused calls changed the state")
	}

	// Through the SDK: a Provider without the client's signer cannot call
	// for it, and one with the wrong key is refused.
	rp, err := remote.New(e.api.url, e.api.hc, impostor)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Inbox(e.ctx, alice.ID(), 0, 0); !errors.Is(err, remote.ErrUnauthenticated) {
		t.Fatalf("impostor inbox: %v", err)
	}
	if err := rp.Ack(e.ctx, clientURI("a.example", "nobody"), 1); !errors.Is(err, remote.ErrNoSigner) {
		t.Fatalf("no signer: %v", err)
	}
}

// TestPlaintextRefused: without TLS every call is refused, unless the
// handler is configured to sit behind a TLS terminator.
func TestPlaintextRefused(t *testing.T) {
	e := newSingle(t, clientapi.Config{})
	alice := newClient(t, e.ctx, e.api, userURI("a.example", "alice"), "alice1", 0)
	for _, allow := range []bool{false, true} {
		path, h := clientapi.NewHandler(e.node.P, clientapi.Config{AllowPlaintext: allow})
		mux := http.NewServeMux()
		mux.Handle(path, h)
		srv := httptest.NewServer(mux)
		rpc := clientv1connect.NewClientServiceClient(srv.Client(), srv.URL)
		_, err := rpc.HubSender(e.ctx, signed(t, alice.s, hubProc, hubReq(), time.Now()))
		srv.Close()
		if allow && err != nil {
			t.Fatalf("plaintext allowed: %v", err)
		}
		if !allow {
			wantCode(t, "plaintext", err, connect.CodeUnauthenticated)
		}
	}
	// A handler without a provider answers Internal, never panics.
	path, h := clientapi.NewHandler(nil, clientapi.Config{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path+"Ack", strings.NewReader("{}")))
	if rec.Code == http.StatusOK {
		t.Fatalf("nil provider: %d", rec.Code)
	}
}

// TestRegistration: proof of possession of the key being registered, and
// the registration policy.
func TestRegistration(t *testing.T) {
	var policyCalls []clientapi.RegistrationRequest
	e := newSingle(t, clientapi.Config{Registration: func(_ context.Context, r *clientapi.RegistrationRequest) error {
		policyCalls = append(policyCalls, *r)
		switch {
		case r.Identity.User == userURI("a.example", "mallory"):
			return errors.New("no account")
		case r.Header.Get("Authorization") == "" && r.Identity.User == userURI("a.example", "carol"):
			return connect.NewError(connect.CodeUnauthenticated, errors.New("log in first"))
		}
		return nil
	}})
	proc := clientv1connect.ClientServiceRegisterClientProcedure
	// regReq registers keyOf's key for cl of user, signed by signer (nil:
	// keyOf).
	regReq := func(t *testing.T, user, cl string, keyOf, signer *remote.Signer) *connect.Request[clientv1.RegisterClientRequest] {
		if signer == nil {
			signer = keyOf
		}
		id := mimi.ClientIdentity{User: user, Client: cl}
		cred, err := id.Credential()
		if err != nil {
			t.Fatal(err)
		}
		cb, _ := cred.MarshalBinary()
		return signed(t, signer, proc, &clientv1.RegisterClientRequest{Credential: cb, SignatureKey: keyOf.PublicKey()}, time.Now())
	}
	bob := userURI("a.example", "bob")
	bobKey := newSigner(t, clientURI("a.example", "bob1"))
	otherKey := newSigner(t, clientURI("a.example", "bob1"))
	otherClient := newSigner(t, clientURI("a.example", "bob2"))
	before := e.node.Digest(t)
	cases := []struct {
		name string
		req  *connect.Request[clientv1.RegisterClientRequest]
		code connect.Code
	}{
		{"signed with another key", regReq(t, bob, bobKey.Client, bobKey, otherKey), connect.CodeUnauthenticated},
		{"signed for another client", regReq(t, bob, bobKey.Client, otherClient, otherClient), connect.CodeUnauthenticated},
		{"undecodable credential", signed(t, bobKey, proc, &clientv1.RegisterClientRequest{Credential: []byte{1, 2, 3}, SignatureKey: bobKey.PublicKey()}, time.Now()), connect.CodeInvalidArgument},
		{"policy refuses", regReq(t, userURI("a.example", "mallory"), clientURI("a.example", "m1"), newSigner(t, clientURI("a.example", "m1")), nil), connect.CodePermissionDenied},
		{"policy wants a login", regReq(t, userURI("a.example", "carol"), clientURI("a.example", "c1"), newSigner(t, clientURI("a.example", "c1")), nil), connect.CodeUnauthenticated},
		{"client elsewhere", regReq(t, userURI("b.example", "dan"), clientURI("b.example", "d1"), newSigner(t, clientURI("b.example", "d1")), nil), connect.CodeInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.api.rpc.RegisterClient(e.ctx, tc.req)
			wantCode(t, tc.name, err, tc.code)
		})
	}
	if after := e.node.Digest(t); !bytes.Equal(before, after) {
		t.Fatal("refused registrations changed the state")
	}
	// Valid: registered, and the policy saw a new client.
	resp, err := e.api.rpc.RegisterClient(e.ctx, regReq(t, bob, bobKey.Client, bobKey, bobKey))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Msg.GetUser() != bob || resp.Msg.GetClient() != bobKey.Client {
		t.Fatalf("registered %v", resp.Msg)
	}
	last := policyCalls[len(policyCalls)-1]
	if last.RegisteredKey != nil || !bytes.Equal(last.SignatureKey, bobKey.PublicKey()) || last.Suite != suite {
		t.Fatalf("policy saw %+v", last)
	}
	rec, err := e.node.M.Client(bobKey.Client)
	if err != nil || !bytes.Equal(rec.SignatureKey, bobKey.PublicKey()) {
		t.Fatalf("record %+v %v", rec, err)
	}
	// Replacing the key: the policy is told.
	if _, err := e.api.rpc.RegisterClient(e.ctx, regReq(t, bob, bobKey.Client, otherKey, otherKey)); err != nil {
		t.Fatal(err)
	}
	if last := policyCalls[len(policyCalls)-1]; !bytes.Equal(last.RegisteredKey, bobKey.PublicKey()) {
		t.Fatalf("policy saw %+v", last)
	}
	// The old key no longer authenticates.
	_, err = e.api.rpc.HubSender(e.ctx, signed(t, bobKey, hubProc, hubReq(), time.Now()))
	wantCode(t, "old key", err, connect.CodeUnauthenticated)
	if _, err := e.api.rpc.HubSender(e.ctx, signed(t, otherKey, hubProc, hubReq(), time.Now())); err != nil {
		t.Fatal(err)
	}
}

// TestCrossClient: a client cannot read another client's inbox, nor act
// as it, nor speak for another client or user in a body.
func TestCrossClient(t *testing.T) {
	e := newSingle(t, clientapi.Config{})
	alice := userURI("a.example", "alice")
	bob := userURI("a.example", "bob")
	a1 := newClient(t, e.ctx, e.api, alice, "alice1", 0)
	b1 := newClient(t, e.ctx, e.api, bob, "bob1", 1)
	if err := a1.CreateRoom(e.ctx, room, flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}, {User: bob, Role: "member"}}); err != nil {
		t.Fatal(err)
	}
	// Bob's inbox holds his Welcome. Alice, signing with her key, cannot
	// name Bob; signing as herself she reads her own inbox only.
	pending, err := e.node.P.Inbox(b1.ID(), 0, 0)
	if err != nil || len(pending) != 1 {
		t.Fatalf("bob's inbox: %d %v", len(pending), err)
	}
	forged := signed(t, &remote.Signer{Client: b1.ID(), Suite: suite, Priv: a1.s.Priv}, clientv1connect.ClientServiceInboxProcedure, &clientv1.InboxRequest{}, time.Now())
	st, err := e.api.rpc.Inbox(e.ctx, forged)
	if err == nil {
		for st.Receive() {
			t.Fatal("got an entry of bob's inbox")
		}
		err = st.Err()
	}
	wantCode(t, "alice reads bob's inbox", err, connect.CodeUnauthenticated)
	// Her own inbox holds the echo of her commit creating the room.
	if es, err := a1.rp.Inbox(e.ctx, a1.ID(), 0, 0); err != nil || len(es) != 1 || es[0].Message.Message.PublicMessage == nil {
		t.Fatalf("alice's own inbox: %d %v", len(es), err)
	}
	// Nor acknowledge it in Bob's name.
	_, err = e.api.rpc.Ack(e.ctx, signed(t, &remote.Signer{Client: b1.ID(), Suite: suite, Priv: a1.s.Priv}, ackProc, &clientv1.AckRequest{UpTo: pending[0].N}, time.Now()))
	wantCode(t, "alice acks bob's inbox", err, connect.CodeUnauthenticated)
	if es, _ := e.node.P.Inbox(b1.ID(), 0, 0); len(es) != 1 {
		t.Fatal("bob's inbox changed")
	}
	before := e.node.Digest(t)

	// A GroupInfoRequest in Bob's name (his credential, her key; his
	// credential and key, unsigned by him) is refused.
	gir := &mimi.GroupInfoRequest{Protocol: mimi.ProtocolMLS10, CipherSuite: suite, RequestingSignatureKey: b1.SignaturePublicKey(), RequestingCredential: b1.Credential()}
	if err := gir.Sign(a1.s.Priv); err != nil {
		t.Fatal(err)
	}
	body, _ := mimi.Encode(gir)
	_, err = e.api.rpc.GroupInfo(e.ctx, signed(t, a1.s, clientv1connect.ClientServiceGroupInfoProcedure, &clientv1.GroupInfoRequest{Room: room, Body: body}, time.Now()))
	wantCode(t, "group info in bob's name", err, connect.CodePermissionDenied)
	// A key material request for another requesting user.
	km, _ := mimi.Encode(&mimi.KeyMaterialRequest{Protocol: mimi.ProtocolMLS10, RequestingUser: bob, TargetUser: bob, RoomID: room, AcceptableCiphersuites: []cipher.SuiteID{suite}, RequiredCapabilities: client.RequiredCapabilities()})
	_, err = e.api.rpc.KeyMaterial(e.ctx, signed(t, a1.s, clientv1connect.ClientServiceKeyMaterialProcedure, &clientv1.KeyMaterialRequest{Body: km}, time.Now()))
	wantCode(t, "key material as bob", err, connect.CodePermissionDenied)
	// Bob's KeyPackage uploaded by Alice.
	kp := providerKeyPackage(t, b1)
	kb, _ := kp.MarshalBinary()
	_, err = e.api.rpc.UploadKeyPackages(e.ctx, signed(t, a1.s, clientv1connect.ClientServiceUploadKeyPackagesProcedure, &clientv1.UploadKeyPackagesRequest{KeyPackages: [][]byte{kb}}, time.Now()))
	wantCode(t, "alice uploads bob's KeyPackage", err, connect.CodeInvalidArgument)
	if after := e.node.Digest(t); !bytes.Equal(before, after) {
		t.Fatal("refused calls changed the state")
	}
	// Bob reads his own inbox, with a limit, and without follow the stream
	// ends.
	es, err := b1.rp.Inbox(e.ctx, b1.ID(), 0, 1)
	if err != nil || len(es) != 1 || es[0].Message.Message.WireFormat != wire.WireFormatWelcome || es[0].Message.RatchetTreeOption == nil {
		t.Fatalf("bob's inbox: %+v %v", es, err)
	}
	if es, err := b1.rp.Inbox(e.ctx, b1.ID(), es[0].Seq+1, 0); err != nil || len(es) != 0 {
		t.Fatalf("bob's inbox after the Welcome: %+v %v", es, err)
	}
}

// TestProtocolsAndCodecs: the signature covers the canonical binary
// encoding whatever carried the message: Connect with JSON, gRPC and
// gRPC-Web all authenticate.
func TestProtocolsAndCodecs(t *testing.T) {
	e := newSingle(t, clientapi.Config{})
	alice := newClient(t, e.ctx, e.api, userURI("a.example", "alice"), "alice1", 0)
	for name, opt := range map[string]connect.ClientOption{
		"connect+json": connect.WithProtoJSON(),
		"grpc":         connect.WithGRPC(),
		"grpc-web":     connect.WithGRPCWeb(),
	} {
		rpc := clientv1connect.NewClientServiceClient(e.api.hc, e.api.url, opt)
		resp, err := rpc.HubSender(e.ctx, signed(t, alice.s, hubProc, hubReq(), time.Now()))
		if err != nil || len(resp.Msg.GetExternalSender()) == 0 {
			t.Fatalf("%s: %v", name, err)
		}
		_, err = rpc.HubSender(e.ctx, signed(t, newSigner(t, alice.ID()), hubProc, hubReq(), time.Now()))
		wantCode(t, name+" wrong key", err, connect.CodeUnauthenticated)
	}
}
