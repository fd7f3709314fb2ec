package admin_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/openmimi/mimi/eventlog"
	adminv1 "github.com/openmimi/mimi/gen/mimi/admin/v1"
	"github.com/openmimi/mimi/gen/mimi/admin/v1/adminv1connect"
	"github.com/openmimi/mimi/httpapi/admin"
	"github.com/openmimi/mimi/httpapi/admin/admintest"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/raftnode"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeFanout is a fanout worker's status.
type fakeFanout struct {
	st []admin.FanoutDestinationStatus
}

func (f fakeFanout) Status() []admin.FanoutDestinationStatus { return f.st }

var retryAt = admintest.Now.Add(30 * time.Second)

func newFixture(t *testing.T) *admintest.Fixture {
	return admintest.New(t, admintest.Options{Fanout: fakeFanout{st: []admin.FanoutDestinationStatus{
		{Destination: admintest.Remote, LastError: "HTTP 503 from b.example", LastAttempt: admintest.Now.Add(-time.Second), NextRetry: retryAt, ConsecutiveFailures: 3},
		{Destination: "c.example", Enqueued: 5, Acked: 2, LastSuccess: admintest.Now.Add(-time.Minute)},
	}}})
}

// TestAdminAPI runs every call against the real scenario over TLS with the
// Connect client.
func TestAdminAPI(t *testing.T) {
	f := newFixture(t)
	h := f.History
	c := f.Client(admintest.Token, nil)
	ctx := ctxT(t)

	t.Run("ListRooms", func(t *testing.T) {
		resp, err := c.ListRooms(ctx, connect.NewRequest(&adminv1.ListRoomsRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		rooms := resp.Msg.GetRooms()
		if len(rooms) != 2 || rooms[0].GetId() != admintest.RoomB || rooms[1].GetId() != admintest.RoomA {
			t.Fatalf("rooms = %v", rooms)
		}
		a := rooms[1]
		if a.GetEpoch() != 2 || a.GetMemberClients() != 1 || a.GetCachedProposals() != 1 || a.GetHub() != admintest.Hub || a.GetClosed() {
			t.Errorf("room A summary = %v", a)
		}
		if got, want := a.GetLastCommitAt().AsTime().UnixMilli(), int64(h.Timestamps[h.RemoveCommit]); got != want {
			t.Errorf("last commit at %d, want %d", got, want)
		}
		// Paging.
		resp, err = c.ListRooms(ctx, connect.NewRequest(&adminv1.ListRoomsRequest{Limit: 1}))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Msg.GetRooms()) != 1 || resp.Msg.GetNextAfter() != admintest.RoomB {
			t.Fatalf("page 1 = %v", resp.Msg)
		}
		resp, err = c.ListRooms(ctx, connect.NewRequest(&adminv1.ListRoomsRequest{After: resp.Msg.GetNextAfter()}))
		if err != nil || len(resp.Msg.GetRooms()) != 1 || resp.Msg.GetRooms()[0].GetId() != admintest.RoomA || resp.Msg.GetNextAfter() != "" {
			t.Fatalf("page 2 = %v, %v", resp, err)
		}
	})

	t.Run("GetRoom", func(t *testing.T) {
		resp, err := c.GetRoom(ctx, connect.NewRequest(&adminv1.GetRoomRequest{Room: admintest.RoomA, IncludeRaw: true}))
		if err != nil {
			t.Fatal(err)
		}
		r := resp.Msg.GetRoom()
		if r.GetEpoch() != 2 || r.GetCreator() != admintest.AliceUser || r.GetCreatedSeq() != h.RoomACreated || r.GetLastCommitSeq() != h.RemoveCommit {
			t.Errorf("room = %v", r)
		}
		if fmt.Sprint(r.GetMemberClients()) != fmt.Sprint([]string{admintest.AliceClient}) {
			t.Errorf("member clients = %v", r.GetMemberClients())
		}
		if r.GetPolicySource() != "group_info" || r.GetParticipantsSource() != "group_info" {
			t.Errorf("sources = %q, %q", r.GetPolicySource(), r.GetParticipantsSource())
		}
		if ps := r.GetParticipants(); len(ps) != 1 || ps[0].GetUser() != admintest.AliceUser || ps[0].GetRole() != "admin" {
			t.Errorf("participants = %v", ps)
		}
		roles := r.GetPolicy().GetRoles()
		if len(roles) != 2 || roles[0].GetName() != "admin" || len(roles[0].GetPermissions()) != 5 || roles[1].GetPermissions()[0] != "canSendMessage" {
			t.Errorf("policy = %v", r.GetPolicy())
		}
		gi := r.GetGroupInfo()
		setAt := h.Timestamps[h.RemoveCommit]
		if gi.GetSetSeq() != h.RemoveCommit || uint64(gi.GetSetAt().AsTime().UnixMilli()) != setAt || gi.GetEpoch() != 2 || gi.GetDecodeError() != "" {
			t.Errorf("group info = %v", gi)
		}
		if want := admintest.Now.Sub(time.UnixMilli(int64(setAt))); gi.GetAge().AsDuration() != want {
			t.Errorf("GroupInfo age %v, want %v", gi.GetAge().AsDuration(), want)
		}
		if ls := r.GetLeaves(); len(ls) != 1 || ls[0].GetIndex() != 0 || ls[0].GetIdentity() != admintest.AliceClient || ls[0].GetCredentialType() != "basic" {
			t.Errorf("leaves = %v", ls)
		}
		ps := r.GetProposals()
		if len(ps) != 1 || ps[0].GetSeq() != h.PendingProposal || ps[0].GetProposalType() != "add" || ps[0].GetEpoch() != 2 || ps[0].GetSender() != admintest.AliceClient {
			t.Errorf("proposals = %v", ps)
		}
		if len(r.GetGroupInfoRaw()) == 0 || len(r.GetRatchetTreeRaw()) == 0 || len(r.GetPolicyRaw()) == 0 {
			t.Error("raw bytes missing")
		}

		// Room B: never committed, GroupInfo from RoomCreated.
		resp, err = c.GetRoom(ctx, connect.NewRequest(&adminv1.GetRoomRequest{Room: admintest.RoomB}))
		if err != nil {
			t.Fatal(err)
		}
		rb := resp.Msg.GetRoom()
		if rb.GetGroupInfo().GetSetSeq() != h.RoomBCreated || rb.GetLastCommitAt() != nil || len(rb.GetGroupInfoRaw()) != 0 {
			t.Errorf("room B = %v", rb)
		}
		// Its group carries no room state: decoded from the hub's encodings.
		if rb.GetPolicySource() != "projection" || rb.GetParticipantsSource() != "projection" || len(rb.GetPolicy().GetRoles()) != 2 {
			t.Errorf("room B policy from %q: %v", rb.GetPolicySource(), rb.GetPolicy())
		}
		if ps := rb.GetParticipants(); len(ps) != 2 || ps[0].GetUser() != admintest.CarolUser || ps[0].GetRole() != "member" {
			t.Errorf("room B participants from %q: %v", rb.GetParticipantsSource(), ps)
		}

		_, err = c.GetRoom(ctx, connect.NewRequest(&adminv1.GetRoomRequest{Room: "mimi://hub.example/r/none"}))
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("unknown room: %v", err)
		}
		_, err = c.GetRoom(ctx, connect.NewRequest(&adminv1.GetRoomRequest{}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("empty room: %v", err)
		}
	})

	t.Run("StreamEvents", func(t *testing.T) {
		evs := collect(t, c, &adminv1.StreamEventsRequest{IncludeRaw: true})
		if uint64(len(evs)) != h.Last {
			t.Fatalf("%d events, want %d", len(evs), h.Last)
		}
		for i, ev := range evs {
			if ev.GetSeq() != uint64(i+1) {
				t.Fatalf("event %d has seq %d", i, ev.GetSeq())
			}
			if ev.GetTimestamp().AsTime().UnixMilli() != int64(h.Timestamps[ev.GetSeq()]) {
				t.Errorf("seq %d timestamp %v", ev.GetSeq(), ev.GetTimestamp().AsTime())
			}
			dec, err := eventlog.Decode(ev.GetRaw())
			if err != nil {
				t.Fatalf("seq %d raw: %v", ev.GetSeq(), err)
			}
			if dec.Type().String() != ev.GetType() || uint32(dec.Type()) != ev.GetTypeCode() || dec.Room != ev.GetRoom() {
				t.Errorf("seq %d: raw decodes to %s/%s", ev.GetSeq(), dec.Type(), dec.Room)
			}
			if ev.GetSummary() == "" {
				t.Errorf("seq %d has no summary", ev.GetSeq())
			}
		}
		commit := evs[h.AddCommit-1]
		if commit.GetType() != "CommitAccepted" || commit.GetRoom() != admintest.RoomA || commit.GetRoomSeq() == 0 ||
			!strings.Contains(commit.GetSummary(), "epoch=1") || !strings.Contains(commit.GetSummary(), "commit [add]") ||
			!strings.Contains(commit.GetSummary(), "->["+admintest.Remote+"]") {
			t.Errorf("commit event = %v", commit)
		}

		// One room from a sequence number, without raw bytes, bounded.
		evs = collect(t, c, &adminv1.StreamEventsRequest{Room: admintest.RoomA, FromSeq: h.AddCommit})
		if len(evs) == 0 || evs[0].GetSeq() != h.AddCommit || len(evs[0].GetRaw()) != 0 {
			t.Fatalf("room events from %d = %v", h.AddCommit, evs)
		}
		for _, ev := range evs {
			if ev.GetRoom() != admintest.RoomA {
				t.Errorf("room filter leaked %v", ev)
			}
		}
		if last := evs[len(evs)-1].GetSeq(); last != h.PendingProposal {
			t.Errorf("last room A event %d, want %d", last, h.PendingProposal)
		}
		evs = collect(t, c, &adminv1.StreamEventsRequest{FromSeq: 2, Limit: 3})
		if len(evs) != 3 || evs[0].GetSeq() != 2 || evs[2].GetSeq() != 4 {
			t.Errorf("limited stream = %v", evs)
		}
	})

	t.Run("FanoutStatus", func(t *testing.T) {
		resp, err := c.FanoutStatus(ctx, connect.NewRequest(&adminv1.FanoutStatusRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		ds := resp.Msg.GetDestinations()
		if !resp.Msg.GetWorkerAttached() || len(ds) != 2 {
			t.Fatalf("fanout = %v", resp.Msg)
		}
		b := ds[0]
		if b.GetDestination() != admintest.Remote || b.GetEnqueued() != 2 || b.GetAcked() != 1 || b.GetBacklog() != 1 ||
			b.GetLastError() != "HTTP 503 from b.example" || !b.GetNextRetry().AsTime().Equal(retryAt) || b.GetConsecutiveFailures() != 3 {
			t.Errorf("b.example = %v", b)
		}
		if c := ds[1]; c.GetDestination() != "c.example" || c.GetBacklog() != 3 || c.GetLastSuccess() == nil {
			t.Errorf("c.example = %v", c)
		}
	})

	t.Run("ReplayVerify", func(t *testing.T) {
		resp, err := c.ReplayVerify(ctx, connect.NewRequest(&adminv1.ReplayVerifyRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		r := resp.Msg
		if !r.GetOk() || !r.GetLog().GetOk() || r.GetLog().GetRecords() != h.Last || r.GetHeadSeq() != h.Last {
			t.Fatalf("verify = %v", r)
		}
		rp := r.GetReplay()
		if !rp.GetRan() || !rp.GetOk() || rp.GetEvents() != h.Last || len(rp.GetLiveDigest()) != 32 || !bytes.Equal(rp.GetLiveDigest(), rp.GetReplayDigest()) {
			t.Errorf("replay = %v", rp)
		}
		if len(r.GetRooms()) != 2 {
			t.Fatalf("rooms = %v", r.GetRooms())
		}
		a := roomResult(t, r, admintest.RoomA)
		// GroupInfo at creation; two commits and their GroupInfos; two
		// proposals.
		if !a.GetOk() || a.GetSignaturesVerified() != 1+2*2+2 || a.GetUnverifiable() != 1 || a.GetEpoch() != h.RoomAEpoch || a.GetEventsChecked() < 6 {
			t.Errorf("room A = %v", a)
		}
		if b := roomResult(t, r, admintest.RoomB); !b.GetOk() || b.GetSignaturesVerified() != 1 || b.GetEventsChecked() != 1 {
			t.Errorf("room B = %v", b)
		}

		// Options: signatures of one room only, no replay.
		resp, err = c.ReplayVerify(ctx, connect.NewRequest(&adminv1.ReplayVerifyRequest{Rooms: []string{admintest.RoomB}, SkipReplay: true}))
		if err != nil {
			t.Fatal(err)
		}
		if r := resp.Msg; !r.GetOk() || r.GetReplay().GetRan() || !r.GetLog().GetOk() || len(r.GetRooms()) != 1 {
			t.Errorf("verify room B = %v", r)
		}
		resp, err = c.ReplayVerify(ctx, connect.NewRequest(&adminv1.ReplayVerifyRequest{SkipSignatures: true}))
		if err != nil || !resp.Msg.GetOk() || len(resp.Msg.GetRooms()) != 0 || !resp.Msg.GetReplay().GetOk() {
			t.Errorf("verify without signatures = %v, %v", resp, err)
		}
		// A room that does not exist fails its re-verification.
		resp, err = c.ReplayVerify(ctx, connect.NewRequest(&adminv1.ReplayVerifyRequest{Rooms: []string{"mimi://hub.example/r/none"}, SkipReplay: true}))
		if err != nil || resp.Msg.GetOk() || resp.Msg.GetRooms()[0].GetFirstFailure() == nil {
			t.Errorf("verify unknown room = %v, %v", resp, err)
		}
	})

	t.Run("ClusterStatus", func(t *testing.T) {
		resp, err := c.ClusterStatus(ctx, connect.NewRequest(&adminv1.ClusterStatusRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		s := resp.Msg.GetStatus()
		if s.GetId() != "local" || s.GetState() != "Leader" || s.GetLeaderId() != "local" || s.GetTerm() == 0 ||
			s.GetStateMachineIndex() < 9 || s.GetLastLogIndex() < s.GetStateMachineIndex() || s.GetAppliedIndex() < s.GetStateMachineIndex() {
			t.Errorf("status = %v", s)
		}
		if ns := s.GetNodes(); len(ns) != 1 || ns[0].GetId() != "local" || !ns[0].GetLeader() || ns[0].GetSuffrage() != "Voter" {
			t.Errorf("nodes = %v", ns)
		}
		// A standalone node cannot change membership.
		_, err = c.AddNode(ctx, connect.NewRequest(&adminv1.AddNodeRequest{Id: "n2", Addr: "127.0.0.1:7401"}))
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "standalone") {
			t.Errorf("AddNode on standalone: %v", err)
		}
		_, err = c.RemoveNode(ctx, connect.NewRequest(&adminv1.RemoveNodeRequest{Id: "n2"}))
		if connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Errorf("RemoveNode on standalone: %v", err)
		}
		_, err = c.AddNode(ctx, connect.NewRequest(&adminv1.AddNodeRequest{Id: "n2"}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("AddNode without addr: %v", err)
		}
	})
}

func collect(t *testing.T, c adminv1connect.AdminServiceClient, req *adminv1.StreamEventsRequest) []*adminv1.Event {
	t.Helper()
	stream, err := c.StreamEvents(ctxT(t), connect.NewRequest(req))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var out []*adminv1.Event
	for stream.Receive() {
		if stream.Msg().GetEvent() == nil {
			t.Fatalf("heartbeat in a stream that does not follow: %v", stream.Msg())
		}
		out = append(out, stream.Msg().GetEvent())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func roomResult(t *testing.T, r *adminv1.ReplayVerifyResponse, room string) *adminv1.RoomVerification {
	t.Helper()
	for _, rv := range r.GetRooms() {
		if rv.GetRoom() == room {
			return rv
		}
	}
	t.Fatalf("no result for room %s", room)
	return nil
}

// TestStreamEventsFollows checks that a following stream delivers events
// appended after it started, and ends when the server shuts down.
func TestStreamEventsFollows(t *testing.T) {
	f := newFixture(t)
	c := f.Client(admintest.Token, nil)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	stream, err := c.StreamEvents(ctx, connect.NewRequest(&adminv1.StreamEventsRequest{FromSeq: f.History.Last, Follow: true}))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *adminv1.Event, 16)
	done := make(chan error, 1)
	beats := make(chan uint64, 64)
	go func() {
		for stream.Receive() {
			if ev := stream.Msg().GetEvent(); ev != nil {
				got <- ev
			} else {
				beats <- stream.Msg().GetHeadSeq()
			}
		}
		done <- stream.Err()
	}()
	next := func() *adminv1.Event {
		t.Helper()
		select {
		case ev := <-got:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
			return nil
		}
	}
	if ev := next(); ev.GetSeq() != f.History.Last {
		t.Fatalf("first event %d, want %d", ev.GetSeq(), f.History.Last)
	}
	for i := 0; i < 3; i++ {
		start := time.Now()
		res := f.Apply(admintest.Op("", &eventlog.ClientRegistered{User: admintest.AliceUser, Client: fmt.Sprintf("mimi://hub.example/d/extra-%d", i)}))
		ev := next()
		if ev.GetSeq() != res.Events[0].Seq || ev.GetType() != "ClientRegistered" {
			t.Fatalf("followed event = %v, want seq %d", ev, res.Events[0].Seq)
		}
		t.Logf("append %d delivered after %v", i, time.Since(start))
	}
	// A room filter follows too.
	rs, err := c.StreamEvents(ctx, connect.NewRequest(&adminv1.StreamEventsRequest{Room: admintest.RoomB, FromSeq: f.History.Last + 1, Follow: true}))
	if err != nil {
		t.Fatal(err)
	}
	roomGot := make(chan *adminv1.Event, 1)
	go func() {
		for rs.Receive() {
			if ev := rs.Msg().GetEvent(); ev != nil {
				roomGot <- ev
				break
			}
		}
		close(roomGot)
	}()
	res := f.Apply(admintest.Op(admintest.RoomB, &eventlog.RoomClosed{Sender: admintest.AliceUser, Reason: "done"}))
	select {
	case ev := <-roomGot:
		if ev.GetSeq() != res.Events[0].Seq || ev.GetRoom() != admintest.RoomB || ev.GetType() != "RoomClosed" {
			t.Fatalf("room follow = %v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("room follow: no event")
	}
	rs.Close()
	if ev := next(); ev.GetType() != "RoomClosed" {
		t.Fatalf("global follow = %v", ev)
	}
	// Idle followers get heartbeats carrying the head.
	select {
	case head := <-beats:
		for len(beats) > 0 {
			head = <-beats
		}
		if head > f.History.Last+4 || head < f.History.Last {
			t.Errorf("heartbeat head %d", head)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat")
	}
	// Shutting the server down ends the stream.
	f.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not end on shutdown")
	}
}

// TestAuthentication checks that the API refuses calls without a valid
// credential, accepts either credential, and cannot start without one.
func TestAuthentication(t *testing.T) {
	f := newFixture(t)
	ctx := ctxT(t)
	call := func(c adminv1connect.AdminServiceClient) error {
		_, err := c.ListRooms(ctx, connect.NewRequest(&adminv1.ListRoomsRequest{}))
		return err
	}
	stream := func(c adminv1connect.AdminServiceClient) error {
		s, err := c.StreamEvents(ctx, connect.NewRequest(&adminv1.StreamEventsRequest{}))
		if err != nil {
			return err
		}
		defer s.Close()
		for s.Receive() {
		}
		return s.Err()
	}
	adminCert := f.AdminCert
	// The client would not offer a certificate the server's CA list does
	// not name: force it, as an attacker would.
	rogueTLS := &tls.Config{RootCAs: f.ServerCA.Pool(), GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &f.RogueCert, nil
	}}
	rogue := adminv1connect.NewAdminServiceClient(&http.Client{Transport: &http.Transport{TLSClientConfig: rogueTLS}}, f.URL)
	for _, tc := range []struct {
		name   string
		client adminv1connect.AdminServiceClient
		code   connect.Code // 0: success
		tlsErr bool
	}{
		{"no credential", f.Client("", nil), connect.CodeUnauthenticated, false},
		{"wrong token", f.Client(strings.Replace(admintest.Token, "0", "1", 1), nil), connect.CodeUnauthenticated, false},
		{"token prefix", f.Client(admintest.Token[:len(admintest.Token)-1], nil), connect.CodeUnauthenticated, false},
		{"token", f.Client(admintest.Token, nil), 0, false},
		{"admin certificate", f.Client("", &adminCert), 0, false},
		{"certificate from another CA", rogue, 0, true},
		{"certificate from another CA, not offered", f.Client("", &f.RogueCert), connect.CodeUnauthenticated, false},
		{"certificate from another CA with a wrong token", f.Client("not-the-token-but-long-enough", &f.RogueCert), connect.CodeUnauthenticated, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, fn := range map[string]func(adminv1connect.AdminServiceClient) error{"unary": call, "stream": stream} {
				err := fn(tc.client)
				switch {
				case tc.tlsErr:
					if !tlsRefused(err) {
						t.Errorf("%s: want a TLS failure, got %v", name, err)
					}
				case tc.code == 0:
					if err != nil {
						t.Errorf("%s: %v", name, err)
					}
				default:
					if connect.CodeOf(err) != tc.code {
						t.Errorf("%s: got %v, want %v", name, err, tc.code)
					}
				}
			}
		})
	}

	// A non-Bearer scheme and gRPC protocol clients are refused too.
	grpc := adminv1connect.NewAdminServiceClient(f.HTTPClient("", nil), f.URL, connect.WithGRPC())
	if err := call(grpc); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("gRPC without credential: %v", err)
	}

	svc, err := admin.NewService(admin.ServiceConfig{Backend: admin.Backend{State: f.Machine}})
	if err != nil {
		t.Fatal(err)
	}
	certs := &tls.Config{Certificates: []tls.Certificate{f.ServerCert}}
	for _, tc := range []struct {
		name string
		cfg  admin.ServerConfig
		want error
	}{
		{"no credential", admin.ServerConfig{Service: svc, TLS: certs}, admin.ErrNoCredential},
		{"weak token", admin.ServerConfig{Service: svc, Token: "short", TLS: certs}, admin.ErrWeakToken},
		{"no certificate", admin.ServerConfig{Service: svc, Token: admintest.Token}, admin.ErrNoTLS},
		{"no service", admin.ServerConfig{Token: admintest.Token, TLS: certs}, admin.ErrNoService},
	} {
		if _, err := admin.NewServer(tc.cfg); !errors.Is(err, tc.want) {
			t.Errorf("%s: NewServer error %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := admin.NewService(admin.ServiceConfig{}); !errors.Is(err, admin.ErrNoState) {
		t.Errorf("NewService without state: %v", err)
	}
	// CA only: the listener requires a client certificate.
	srv, err := admin.NewServer(admin.ServerConfig{Service: svc, ClientCAs: f.AdminCA.Pool(), TLS: certs})
	if err != nil {
		t.Fatal(err)
	}
	if tc := srv.TLSConfig(); tc.ClientAuth != tls.RequireAndVerifyClientCert || tc.MinVersion < tls.VersionTLS12 {
		t.Errorf("CA-only TLS config: client auth %v, min version %x", tc.ClientAuth, tc.MinVersion)
	}
}

// fakeCluster records membership changes.
type fakeCluster struct {
	mu      sync.Mutex
	servers []raftnode.ServerInfo
	err     error
}

func (c *fakeCluster) Status() raftnode.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return raftnode.Status{ID: "n1", State: "Leader", Term: 7, LeaderID: "n1", Servers: append([]raftnode.ServerInfo(nil), c.servers...)}
}

func (c *fakeCluster) AddVoter(_ context.Context, id, addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.servers = append(c.servers, raftnode.ServerInfo{ID: id, Addr: addr, Suffrage: "Voter"})
	return nil
}

func (c *fakeCluster) RemoveServer(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	for i, s := range c.servers {
		if s.ID == id {
			c.servers = append(c.servers[:i], c.servers[i+1:]...)
		}
	}
	return nil
}

// TestClusterMembership drives AddNode/RemoveNode through a Cluster double
// and checks the error mapping.
func TestClusterMembership(t *testing.T) {
	fc := &fakeCluster{servers: []raftnode.ServerInfo{{ID: "n1", Addr: "10.0.0.1:7400", Suffrage: "Voter"}}}
	f := admintest.New(t, admintest.Options{Cluster: fc})
	c := f.Client(admintest.Token, nil)
	ctx := ctxT(t)
	resp, err := c.AddNode(ctx, connect.NewRequest(&adminv1.AddNodeRequest{Id: "n2", Addr: "10.0.0.2:7400"}))
	if err != nil {
		t.Fatal(err)
	}
	if ns := resp.Msg.GetStatus().GetNodes(); len(ns) != 2 || ns[1].GetId() != "n2" || ns[1].GetAddr() != "10.0.0.2:7400" || !ns[0].GetLeader() || ns[1].GetLeader() {
		t.Errorf("after add: %v", ns)
	}
	rresp, err := c.RemoveNode(ctx, connect.NewRequest(&adminv1.RemoveNodeRequest{Id: "n2"}))
	if err != nil {
		t.Fatal(err)
	}
	if ns := rresp.Msg.GetStatus().GetNodes(); len(ns) != 1 {
		t.Errorf("after remove: %v", ns)
	}
	for _, tc := range []struct {
		err  error
		code connect.Code
	}{
		{raftnode.ErrNotLeader{LeaderID: "n3", LeaderAddr: "10.0.0.3:7400"}, connect.CodeFailedPrecondition},
		{raftnode.ErrNoLeader, connect.CodeUnavailable},
		{fmt.Errorf("x: %w", raftnode.ErrOutcomeUnknown), connect.CodeDeadlineExceeded},
		{errors.New("disk on fire"), connect.CodeInternal},
	} {
		fc.mu.Lock()
		fc.err = tc.err
		fc.mu.Unlock()
		_, err := c.RemoveNode(ctx, connect.NewRequest(&adminv1.RemoveNodeRequest{Id: "n1"}))
		if connect.CodeOf(err) != tc.code {
			t.Errorf("%v: got %v, want %v", tc.err, err, tc.code)
		}
	}
}

// TestReplayVerifyFindsCorruptedEvent flips one byte of a stored commit in
// Pebble and checks that the audit names exactly that event.
func TestReplayVerifyFindsCorruptedEvent(t *testing.T) {
	f := newFixture(t)
	h := f.History
	f.Close()
	target := h.AddCommit
	admintest.CorruptEvent(t, f.StateDir(), target, func(rec []byte) int {
		i := bytes.Index(rec, h.AddCommitBytes)
		if i < 0 {
			t.Fatal("commit bytes not found in the record")
		}
		return i + len(h.AddCommitBytes)/2 // inside the signed FramedContent
	}, 0x01)
	f.ReopenWithoutRaft()

	c := f.Client(admintest.Token, nil)
	resp, err := c.ReplayVerify(ctxT(t), connect.NewRequest(&adminv1.ReplayVerifyRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Msg
	if r.GetOk() {
		t.Fatal("verify passed a corrupted log")
	}
	if seqs := r.GetLog().GetCorruptSeqs(); len(seqs) != 1 || seqs[0] != target {
		t.Fatalf("corrupt seqs = %v, want [%d]; corruptions %v", seqs, target, r.GetLog().GetCorruptions())
	}
	if cs := r.GetLog().GetCorruptions(); len(cs) != 1 || cs[0].GetSeq() != target || cs[0].GetKind() != eventlog.HashMismatch.String() {
		t.Errorf("corruptions = %v", cs)
	}
	if rp := r.GetReplay(); rp.GetOk() || !strings.Contains(rp.GetError(), fmt.Sprintf("seq %d", target)) {
		t.Errorf("replay = %v", rp)
	}
	a := roomResult(t, r, admintest.RoomA)
	if a.GetOk() || a.GetFirstFailure().GetSeq() != target || a.GetFirstFailure().GetEventType() != "CommitAccepted" {
		t.Errorf("room A = %v", a)
	}
	if a.GetSignaturesVerified() != 1 {
		t.Errorf("room A verified %d signatures before the failure, want 1", a.GetSignaturesVerified())
	}
	t.Logf("room A first failure: %s", a.GetFirstFailure().GetError())
	if b := roomResult(t, r, admintest.RoomB); !b.GetOk() {
		t.Errorf("room B = %v", b)
	}
	// Cluster calls have no node now.
	_, err = c.ClusterStatus(ctxT(t), connect.NewRequest(&adminv1.ClusterStatusRequest{}))
	if connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Errorf("ClusterStatus without node: %v", err)
	}
}

// TestReplayVerifyFindsTamperedSignatureOnly corrupts a commit and repairs
// the chain hashes, as an attacker with write access to the store would:
// the log walk and the replay then pass, and only the signature
// re-verification finds the forgery.
func TestReplayVerifyFindsForgedCommit(t *testing.T) {
	f := newFixture(t)
	h := f.History
	f.Close()
	resealed := rewriteLog(t, f.StateDir(), h.AddCommit, h.AddCommitBytes)
	if !resealed {
		t.Fatal("record not rewritten")
	}
	f.ReopenWithoutRaft()
	resp, err := f.Client(admintest.Token, nil).ReplayVerify(ctxT(t), connect.NewRequest(&adminv1.ReplayVerifyRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	r := resp.Msg
	if !r.GetLog().GetOk() || !r.GetReplay().GetOk() {
		t.Fatalf("resealed log should pass the integrity walk and the replay: log %v replay %v", r.GetLog(), r.GetReplay())
	}
	a := roomResult(t, r, admintest.RoomA)
	if r.GetOk() || a.GetOk() || a.GetFirstFailure().GetSeq() != h.AddCommit || !strings.Contains(a.GetFirstFailure().GetError(), "signature") {
		t.Fatalf("room A = %v", a)
	}
}

// rewriteLog flips one byte of the commit inside record seq and recomputes
// every chain hash from there on and the head (see package eventlog's key
// layout), so that only the MLS signature betrays the change.
func rewriteLog(t *testing.T, stateDir string, seq uint64, commit []byte) bool {
	t.Helper()
	var prev [eventlog.HashSize]byte
	ok := false
	admintest.RewriteRecords(t, stateDir, func(s uint64, rec []byte) []byte {
		if s == seq {
			i := bytes.Index(rec, commit)
			if i < 0 {
				t.Fatal("commit not found")
			}
			// The last byte of the signature: the PublicMessage ends with
			// signature, confirmation_tag (32) and membership_tag (32),
			// each with a one-byte length.
			rec[i+len(commit)-1-32-1-32-1] ^= 0x80
			ok = true
		}
		h := eventlog.ChainHash(prev, rec[eventlog.HashSize:])
		copy(rec, h[:])
		prev = h
		return rec
	})
	return ok
}

// TestServiceWithoutAuditor runs ReplayVerify with only the signature
// re-verification, and checks that followers poll without a node.
func TestServiceWithoutAuditor(t *testing.T) {
	f := newFixture(t)
	svc, err := admin.NewService(admin.ServiceConfig{Backend: admin.Backend{State: f.Machine}, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := svc.ReplayVerify(ctxT(t), connect.NewRequest(&adminv1.ReplayVerifyRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.Msg; !r.GetOk() || r.GetLog() != nil || r.GetReplay() != nil || len(r.GetRooms()) != 2 {
		t.Errorf("verify without auditor = %v", r)
	}
	fr, err := svc.FanoutStatus(ctxT(t), connect.NewRequest(&adminv1.FanoutStatusRequest{}))
	if err != nil || fr.Msg.GetWorkerAttached() || len(fr.Msg.GetDestinations()) != 1 || fr.Msg.GetDestinations()[0].GetLastError() != "" {
		t.Errorf("fanout without worker = %v, %v", fr, err)
	}
	_, err = svc.ClusterStatus(ctxT(t), connect.NewRequest(&adminv1.ClusterStatusRequest{}))
	if connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Errorf("cluster without node: %v", err)
	}
	// Reference to keep the projections import honest for the adapter.
	var _ admin.State = (*projections.Machine)(nil)
}

// tlsRefused reports whether err is the client's view of a handshake the
// server refused. In TLS 1.3 the client finishes its side of the
// handshake before the server checks the client certificate, so the
// server's alert reaches the client as a certificate error, or, when the
// client's HTTP/2 read loop saw the alert first and closed the connection,
// as a failed write on it. Either way the call never reached the
// service's authentication, which would have answered Unauthenticated.
func tlsRefused(err error) bool {
	if err == nil || connect.CodeOf(err) == connect.CodeUnauthenticated {
		return false
	}
	msg := err.Error()
	for _, s := range []string{"certificate", "use of closed network connection", "connection reset by peer", "broken pipe"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
