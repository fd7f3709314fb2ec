package remote_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/remote"
	"github.com/openmimi/mimi/client/remote/clientauth"
	clientv1 "github.com/openmimi/mimi/gen/mimi/client/v1"
	"github.com/openmimi/mimi/gen/mimi/client/v1/clientv1connect"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

const (
	suite = cipher.X25519_AES128GCM_SHA256_Ed25519
	user  = "mimi://a.example/u/alice"
	cl    = "mimi://a.example/d/alice1"
)

// nopProvider is a client.Provider that is never called.
type nopProvider struct{ client.Provider }

func newSDKClient(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(user, cl, suite, nopProvider{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSignerFor: the signer read from a client's saved state is the
// client's key.
func TestSignerFor(t *testing.T) {
	c := newSDKClient(t)
	s, err := remote.SignerFor(c)
	if err != nil {
		t.Fatal(err)
	}
	if s.Client != cl || s.Suite != suite || string(s.PublicKey()) != string(c.SignaturePublicKey()) {
		t.Fatalf("%+v", s)
	}
	st, _ := c.Save()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("mimi-client-state"),
		"truncated": st[:30],
		"version":   func() []byte { b := append([]byte{}, st...); b[18] = 9; return b }(),
	} {
		if _, err := remote.SignerFromState(b); !errors.Is(err, remote.ErrInvalidSigner) {
			t.Errorf("%s: %v", name, err)
		}
	}
	v1 := append([]byte{}, st...)
	v1[18] = 1 // the header of a version 1 state is the same
	if s1, err := remote.SignerFromState(v1); err != nil || string(s1.PublicKey()) != string(s.PublicKey()) {
		t.Errorf("version 1 state: %v", err)
	}
	for name, f := range map[string]func() error{
		"bad URI":   func() error { _, err := remote.NewSigner(user, suite, s.Priv); return err },
		"bad suite": func() error { _, err := remote.NewSigner(cl, 0x7777, s.Priv); return err },
		"bad key":   func() error { _, err := remote.NewSigner(cl, suite, []byte{1}); return err },
	} {
		if err := f(); !errors.Is(err, remote.ErrInvalidSigner) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzSignerFromState: a client's saved state (a local file, possibly
// corrupt) yields a Signer or an error wrapping ErrInvalidSigner, never a
// panic, and an accepted Signer is one NewSigner accepts with the same
// public key. Only a prefix of the state is read, so bytes are not
// compared.
func FuzzSignerFromState(f *testing.F) {
	st, err := newSDKClient(f).Save()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(st)
	f.Add(st[:60])
	f.Add([]byte("mimi-client-state"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := remote.SignerFromState(b)
		if err != nil {
			if !errors.Is(err, remote.ErrInvalidSigner) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		s2, err := remote.NewSigner(s.Client, s.Suite, s.Priv)
		if err != nil || string(s2.PublicKey()) != string(s.PublicKey()) {
			t.Fatalf("accepted signer %+v is not valid: %v", s, err)
		}
	})
}

// stub is a ClientService that checks every call's signature with the
// client's key, and answers from fixed scripts.
type stub struct {
	clientv1connect.UnimplementedClientServiceHandler
	t   *testing.T
	pub []byte
	mu  sync.Mutex
	ts  []uint64
}

func (s *stub) check(spec connect.Spec, h http.Header, msg proto.Message) error {
	a, err := clientauth.Parse(h.Get(clientauth.HeaderName))
	if err != nil {
		return connect.NewError(connect.CodeUnauthenticated, err)
	}
	rb, err := clientauth.RequestBytes(msg)
	if err != nil {
		return err
	}
	if _, err := a.Verify(s.pub, spec.Procedure, rb); err != nil {
		return connect.NewError(connect.CodeUnauthenticated, err)
	}
	s.mu.Lock()
	s.ts = append(s.ts, a.Timestamp)
	s.mu.Unlock()
	return nil
}

func (s *stub) Ack(_ context.Context, req *connect.Request[clientv1.AckRequest]) (*connect.Response[clientv1.AckResponse], error) {
	if err := s.check(req.Spec(), req.Header(), req.Msg); err != nil {
		return nil, err
	}
	if c := connect.Code(req.Msg.GetUpTo()); c != 0 {
		return nil, connect.NewError(c, errors.New("scripted"))
	}
	return connect.NewResponse(&clientv1.AckResponse{}), nil
}

func (s *stub) HubSender(_ context.Context, req *connect.Request[clientv1.HubSenderRequest]) (*connect.Response[clientv1.HubSenderResponse], error) {
	if err := s.check(req.Spec(), req.Header(), req.Msg); err != nil {
		return nil, err
	}
	if req.Msg.GetRoom() == "mimi://a.example/r/garbage" {
		return connect.NewResponse(&clientv1.HubSenderResponse{ExternalSender: []byte{9}}), nil
	}
	es := wire.ExternalSender{SignatureKey: []byte("hub key"), Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte("mimi://a.example")}}
	b, err := codec.Marshal(&es)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&clientv1.HubSenderResponse{ExternalSender: b}), nil
}

func (s *stub) KeyMaterial(_ context.Context, req *connect.Request[clientv1.KeyMaterialRequest]) (*connect.Response[clientv1.KeyMaterialResponse], error) {
	if err := s.check(req.Spec(), req.Header(), req.Msg); err != nil {
		return nil, err
	}
	return connect.NewResponse(&clientv1.KeyMaterialResponse{Body: []byte{0xff}}), nil
}

// Inbox sends the entries a scripted inbox holds from the position asked,
// with a heartbeat first; from 100 it sends an undecodable entry.
func (s *stub) Inbox(_ context.Context, req *connect.Request[clientv1.InboxRequest], st *connect.ServerStream[clientv1.InboxResponse]) error {
	if err := s.check(req.Spec(), req.Header(), req.Msg); err != nil {
		return err
	}
	if err := st.Send(&clientv1.InboxResponse{Next: req.Msg.GetFrom()}); err != nil {
		return err
	}
	if req.Msg.GetFrom() == 100 {
		return st.Send(&clientv1.InboxResponse{Entry: &clientv1.InboxEntry{Seq: 100, Room: "r", FanoutMessage: []byte{1}}})
	}
	sent := uint32(0)
	for n := req.Msg.GetFrom(); n < 5; n++ {
		if req.Msg.GetLimit() != 0 && sent == req.Msg.GetLimit() {
			break
		}
		fm := mimi.FanoutMessage{Timestamp: n, Message: wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPrivateMessage, PrivateMessage: &wire.PrivateMessage{GroupID: []byte("g"), ContentType: wire.ContentApplication}}}
		b, err := mimi.Encode(&fm)
		if err != nil {
			return err
		}
		if err := st.Send(&clientv1.InboxResponse{Entry: &clientv1.InboxEntry{Seq: n, Room: "mimi://a.example/r/x", FanoutMessage: b}, Next: n + 1}); err != nil {
			return err
		}
		sent++
	}
	return nil
}

// TestProviderCalls: calls are signed with strictly increasing timestamps
// and verify; Connect codes map to the sentinels; undecodable answers are
// ErrInvalidResponse; Inbox honours from and limit.
func TestProviderCalls(t *testing.T) {
	c := newSDKClient(t)
	s, err := remote.SignerFor(c)
	if err != nil {
		t.Fatal(err)
	}
	st := &stub{t: t, pub: s.PublicKey()}
	path, h := clientv1connect.NewClientServiceHandler(st)
	mux := http.NewServeMux()
	mux.Handle(path, h)
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	p, err := remote.New(srv.URL, srv.Client(), s)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	for code, want := range map[connect.Code]error{
		0:                             nil,
		connect.CodeInvalidArgument:   remote.ErrInvalidArgument,
		connect.CodeNotFound:          remote.ErrNotFound,
		connect.CodePermissionDenied:  remote.ErrPermissionDenied,
		connect.CodeUnauthenticated:   remote.ErrUnauthenticated,
		connect.CodeUnavailable:       remote.ErrUnavailable,
		connect.CodeResourceExhausted: nil,
	} {
		err := p.Ack(ctx, cl, uint64(code))
		if code == 0 && err != nil {
			t.Fatalf("ack: %v", err)
		}
		if code == 0 {
			continue
		}
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != code {
			t.Fatalf("code %v: %v", code, err)
		}
		if want != nil && !errors.Is(err, want) {
			t.Fatalf("code %v: %v, want %v", code, err, want)
		}
	}
	es, err := p.HubSender(ctx, "mimi://a.example/r/x")
	if err != nil || string(es.SignatureKey) != "hub key" {
		t.Fatalf("hub sender %+v %v", es, err)
	}
	if _, err := p.HubSender(ctx, "mimi://a.example/r/garbage"); !errors.Is(err, remote.ErrInvalidResponse) {
		t.Fatalf("garbage hub sender: %v", err)
	}
	if _, err := p.KeyMaterial(ctx, cl, &mimi.KeyMaterialRequest{Protocol: mimi.ProtocolMLS10, RequestingUser: user, TargetUser: user, RoomID: "mimi://a.example/r/x", AcceptableCiphersuites: []cipher.SuiteID{suite}}); !errors.Is(err, remote.ErrInvalidResponse) {
		t.Fatalf("garbage key material: %v", err)
	}
	got, err := p.Inbox(ctx, cl, 1, 0)
	if err != nil || len(got) != 4 || got[0].Seq != 1 || got[3].Seq != 4 || got[3].Message.Timestamp != 4 {
		t.Fatalf("inbox from 1: %+v %v", got, err)
	}
	got, err = p.Inbox(ctx, cl, 0, 2)
	if err != nil || len(got) != 2 || got[1].Seq != 1 {
		t.Fatalf("inbox limit 2: %+v %v", got, err)
	}
	if _, err := p.Inbox(ctx, cl, 100, 0); !errors.Is(err, remote.ErrInvalidResponse) {
		t.Fatalf("garbage entry: %v", err)
	}
	// Watch stops when the callback says so.
	var seen []uint64
	var beats int
	err = p.Watch(ctx, cl, 0, func(e client.InboxEntry) error {
		seen = append(seen, e.Seq)
		if len(seen) == 3 {
			return remote.ErrStop
		}
		return nil
	}, func(uint64) { beats++ })
	if err != nil || len(seen) != 3 || beats != 1 {
		t.Fatalf("watch: %v %v %d", err, seen, beats)
	}
	// Without a signer, nothing is sent.
	if err := p.Ack(ctx, "mimi://a.example/d/other", 1); !errors.Is(err, remote.ErrNoSigner) {
		t.Fatalf("no signer: %v", err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for i := 1; i < len(st.ts); i++ {
		if st.ts[i] <= st.ts[i-1] {
			t.Fatalf("timestamps not increasing: %v", st.ts)
		}
	}
}
