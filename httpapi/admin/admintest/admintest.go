// Package admintest builds a complete, real test bed for the admin API of
// package httpapi/admin: a projections.Machine driven by a standalone
// raftnode.Node, filled with real events whose MLS content (RFC 9420) is
// produced by the member-side mls package (signed GroupInfos, Add and
// Remove commits with UpdatePaths, a proposal by reference, an application
// message), and the admin server on a real TLS listener with a bearer token
// and an admin client CA. It is for tests only.
package admintest

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/go-hclog"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/gen/mimi/admin/v1/adminv1connect"
	"github.com/openmimi/mimi/httpapi/admin"
	"github.com/openmimi/mimi/internal/testpki"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
	"github.com/openmimi/mimi/raftnode"
)

// Token is the fixture's admin bearer token.
const Token = "admintest-token-0123456789abcdef"

// Names used by the scenario.
const (
	Hub         = "hub.example"
	Remote      = "b.example"
	RoomA       = "mimi://hub.example/r/ops"
	RoomB       = "mimi://hub.example/r/lobby"
	AliceUser   = "mimi://hub.example/u/alice"
	AliceClient = "mimi://hub.example/d/alice-phone"
	BobUser     = "mimi://b.example/u/bob"
	BobClient   = "mimi://b.example/d/bob-laptop"
	CarolUser   = "mimi://b.example/u/carol"
	CarolClient = "mimi://b.example/d/carol-tablet"
)

// Suite is the MLS cipher suite of the scenario.
const Suite = cipher.X25519_AES128GCM_SHA256_Ed25519

// BaseTime is the timestamp of the first event; event i (1-based) of the
// scenario has BaseTime + i seconds. Now is the service clock.
var (
	BaseTime = time.UnixMilli(1_750_000_000_000)
	Now      = BaseTime.Add(time.Hour)
)

// History records where the scenario's events landed in the log.
type History struct {
	// RoomACreated .. RoomAPending are global sequence numbers of room A's
	// events: creation, the commit adding Bob (epoch 1), the application
	// message, the Remove proposal, the commit removing Bob (epoch 2) and
	// the Add proposal left cached in epoch 2.
	RoomACreated, AddCommit, AppMessage, RemoveProposal, RemoveCommit, PendingProposal uint64
	// RoomBCreated is the creation of room B.
	RoomBCreated uint64
	// Last is the last sequence number; Events the number of events.
	Last uint64
	// AddCommitBytes is the Commit MLSMessage of AddCommit as stored.
	AddCommitBytes []byte
	// Timestamps by sequence number.
	Timestamps map[uint64]uint64
	// EpochOf room A after the scenario.
	RoomAEpoch uint64
}

// Options tune New.
type Options struct {
	// Fanout is the worker status source, if any.
	Fanout admin.FanoutStatusSource
	// Cluster overrides the Raft node as the service's Cluster.
	Cluster admin.Cluster
}

// Fixture is a running test bed.
type Fixture struct {
	t       testing.TB
	opts    Options
	Dir     string
	Machine *projections.Machine
	Node    *raftnode.Node[projections.Result]
	Service *admin.Service
	Server  *admin.Server
	// URL is the admin API base URL (https://127.0.0.1:port).
	URL string
	// ServerCA issued the server certificate; AdminCA is the admin client
	// CA; AdminCert is a client certificate from it and RogueCert one
	// from an unrelated CA.
	ServerCA, AdminCA, RogueCA *testpki.CA
	ServerCert                 tls.Certificate
	AdminCert, RogueCert       tls.Certificate
	History                    History

	ts     uint64 // timestamp of the next event
	served chan error
}

// New opens a machine and a standalone Raft node in a temporary directory,
// fills them with the scenario, and serves the admin API on 127.0.0.1.
// Everything is closed when the test ends.
func New(t testing.TB, opts Options) *Fixture {
	t.Helper()
	f := &Fixture{t: t, opts: opts, Dir: t.TempDir(), ts: uint64(BaseTime.UnixMilli())}
	f.ServerCA = testpki.MustNew(t, "admintest server CA")
	f.AdminCA = testpki.MustNew(t, "admintest admin CA")
	f.RogueCA = testpki.MustNew(t, "admintest rogue CA")
	f.ServerCert = f.ServerCA.MustIssue(t, "127.0.0.1", "localhost")
	var err error
	if f.AdminCert, err = f.AdminCA.IssueFor(testpki.ClientOnly, "admin@hub.example"); err != nil {
		t.Fatal(err)
	}
	if f.RogueCert, err = f.RogueCA.IssueFor(testpki.ClientOnly, "admin@hub.example"); err != nil {
		t.Fatal(err)
	}
	f.openNode()
	t.Cleanup(f.Close)
	f.fill()
	f.serve(admin.ForNode(f.Machine, f.Node, opts.Fanout))
	return f
}

// StateDir is the machine's directory.
func (f *Fixture) StateDir() string { return filepath.Join(f.Dir, "machine") }

func (f *Fixture) openNode() {
	t := f.t
	m, err := projections.Open(f.StateDir())
	if err != nil {
		t.Fatal(err)
	}
	f.Machine = m
	n, err := raftnode.Open[projections.Result](raftnode.Config{
		DataDir:            filepath.Join(f.Dir, "raft"),
		HeartbeatTimeout:   100 * time.Millisecond,
		ElectionTimeout:    100 * time.Millisecond,
		LeaderLeaseTimeout: 80 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		Logger:             hclog.NewNullLogger(),
	}, m, nil)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	f.Node = n
}

// serve starts the service and the TLS server over b.
func (f *Fixture) serve(b admin.Backend) {
	t := f.t
	if f.opts.Cluster != nil {
		b.Cluster = f.opts.Cluster
	}
	svc, err := admin.NewService(admin.ServiceConfig{Backend: b, Now: func() time.Time { return Now }, PollInterval: 200 * time.Millisecond, HeartbeatInterval: time.Second, ScratchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := admin.NewServer(admin.ServerConfig{
		Service: svc, Token: Token, ClientCAs: f.AdminCA.Pool(),
		TLS: &tls.Config{Certificates: []tls.Certificate{f.ServerCert}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.Service, f.Server, f.URL = svc, srv, "https://"+ln.Addr().String()
	f.served = make(chan error, 1)
	go func() { f.served <- srv.Serve(ln) }()
}

// stopServer shuts the admin server down.
func (f *Fixture) stopServer() {
	if f.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Server.Shutdown(ctx); err != nil {
		f.t.Errorf("admin server shutdown: %v", err)
	}
	if err := <-f.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		f.t.Errorf("admin server: %v", err)
	}
	f.Server = nil
}

// Close stops the server, the node and the machine (idempotent).
func (f *Fixture) Close() {
	f.stopServer()
	if f.Node != nil {
		if err := f.Node.Shutdown(); err != nil {
			f.t.Errorf("raft shutdown: %v", err)
		}
		f.Node = nil
	}
	if f.Machine != nil {
		if err := f.Machine.Close(); err != nil {
			f.t.Errorf("machine close: %v", err)
		}
		f.Machine = nil
	}
}

// ReopenWithoutRaft closes everything and serves the admin API again over
// the machine alone (no Raft node), e.g. after tampering with its store.
func (f *Fixture) ReopenWithoutRaft() {
	f.Close()
	m, err := projections.Open(f.StateDir())
	if err != nil {
		f.t.Fatal(err)
	}
	f.Machine = m
	f.serve(admin.Backend{State: m, Auditor: m, Fanout: f.opts.Fanout})
}

// Apply replicates one command made of ops through the Raft node and fails
// the test if it is rejected. Each event gets the next scenario timestamp.
func (f *Fixture) Apply(ops ...projections.Op) projections.Result {
	f.t.Helper()
	for i := range ops {
		if ops[i].Event != nil && ops[i].Event.Timestamp == 0 {
			f.ts += 1000
			ops[i].Event.Timestamp = f.ts
		}
	}
	cmd, err := projections.EncodeCommand(&projections.Command{Ops: ops})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := f.Node.Apply(ctx, cmd)
	if err != nil {
		f.t.Fatalf("raft apply: %v", err)
	}
	if res.Err != nil {
		f.t.Fatalf("command rejected: %v", res.Err)
	}
	if f.History.Timestamps == nil {
		f.History.Timestamps = map[uint64]uint64{}
	}
	for _, ev := range res.Events {
		f.History.Timestamps[ev.Seq] = ev.Timestamp
		f.History.Last = ev.Seq
	}
	return res
}

// Op builds an event operation with the next timestamp.
func Op(room string, body eventlog.Body) projections.Op { return projections.EventOp(room, 0, body) }

// must panics on error; fill turns the panic into a test failure.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func marshal(_ testing.TB, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	return must(m.MarshalBinary())
}

// signer returns an MLS signer with the MIMI identity of user/client.
func signer(t testing.TB, user, client string) mls.Signer {
	t.Helper()
	s := must(cipher.Lookup(Suite))
	priv, _, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	id := &mimi.ClientIdentity{User: user, Client: client}
	return mls.Signer{Credential: must(id.Credential()), SignaturePriv: priv}
}

// roomExtensions returns the application_states extension carrying a MIMI
// room with the given participants (draft-ralston-mimi-protocol-02,
// Section 7) and the encodings the hub stores.
func roomExtensions(t testing.TB, room string, ps []mimi.Participant) (ext wire.Extension, policy, participants []byte) {
	t.Helper()
	rm := &mimi.Room{
		Policy: mimi.Policy{RoomID: room, Roles: []mimi.Role{
			{Name: "admin", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanRemoveUser, mimi.CanSetUserRole, mimi.CanSendMessage, mimi.CanSetPolicy}},
			{Name: "member", Permissions: []mimi.Permission{mimi.CanSendMessage}},
		}},
		Participants: ps,
	}
	st := must(rm.ApplicationStates())
	ext = must(wire.NewApplicationStatesExtension(st))
	// The encodings the provider stores: the policy state and the whole
	// participant list application state.
	policy = st.Get(mimi.AppIDRoomPolicy).State
	participants = must(codec.Marshal(st.Get(mimi.AppIDParticipantList)))
	return ext, policy, participants
}

// fill runs the scenario.
func (f *Fixture) fill() {
	t := f.t
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("scenario: %v", r)
		}
	}()
	h := &f.History
	alice := signer(t, AliceUser, AliceClient)
	aliceCred := marshal(t, &alice.Credential)
	s := must(cipher.Lookup(Suite))
	alicePub := must(s.SignaturePublicKey(alice.SignaturePriv))

	// Alice registers and publishes a KeyPackage.
	aliceKP := must(mls.NewKeyPackage(Suite, alice.Credential, alice.SignaturePriv, nil))
	f.Apply(
		Op("", &eventlog.ClientRegistered{User: AliceUser, Client: AliceClient, SignatureKey: alicePub, Credential: aliceCred}),
		Op("", &eventlog.KeyPackagesUploaded{Client: AliceClient, KeyPackages: []eventlog.KeyPackage{{
			Ref: must(aliceKP.Ref()), CipherSuite: uint16(Suite), NotAfter: aliceKP.KeyPackage.LeafNode.Lifetime.NotAfter,
			Data: marshal(t, aliceKP.KeyPackage),
		}}}),
	)

	// Room A: created by Alice at epoch 0.
	ext, policy, parts := roomExtensions(t, RoomA, []mimi.Participant{{User: AliceUser, Role: "admin"}})
	g := must(mls.CreateGroup(Suite, []byte(RoomA), alice, &mls.CreateOptions{Extensions: []wire.Extension{ext}}))
	res := f.Apply(Op(RoomA, &eventlog.RoomCreated{
		Hub: Hub, Creator: AliceUser, Epoch: 0, Policy: policy, Participants: parts,
		GroupInfo: marshal(t, must(g.GroupInfo(false))), RatchetTree: marshal(t, g.RatchetTree()),
		Members: []string{AliceClient},
	}))
	h.RoomACreated = res.Events[0].Seq

	// Bob's KeyPackage is fetched from b.example, and Alice adds him.
	bob := signer(t, BobUser, BobClient)
	bobKP := must(mls.NewKeyPackage(Suite, bob.Credential, bob.SignaturePriv, nil))
	bobRef := must(bobKP.Ref())
	pc := must(g.Commit(&mls.CommitOptions{Proposals: []*wire.Proposal{{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *bobKP.KeyPackage}}}}))
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	h.AddCommitBytes = marshal(t, pc.Message)
	res = f.Apply(
		Op(RoomA, &eventlog.KeyPackageRouted{Ref: bobRef, Provider: Remote, User: BobUser}),
		Op(RoomA, &eventlog.CommitAccepted{
			Epoch: 1, Commit: h.AddCommitBytes, Welcome: marshal(t, pc.Welcome),
			WelcomeRoutes: []eventlog.WelcomeRoute{{Ref: bobRef, Provider: Remote}},
			GroupInfo:     marshal(t, pc.GroupInfo), RatchetTree: marshal(t, g.RatchetTree()),
			Members: []string{AliceClient, BobClient}, Sender: AliceClient,
		}),
		Op(RoomA, &eventlog.FanoutEnqueued{Destinations: []string{Remote}, Back: 1, Part: eventlog.PartMessage}),
		Op(RoomA, &eventlog.FanoutEnqueued{Destinations: []string{Remote}, Back: 2, Part: eventlog.PartWelcome}),
	)
	h.AddCommit = res.Events[1].Seq

	// An application message (a PrivateMessage: not verifiable by a server).
	msg := must(g.ProtectApplication([]byte("hello"), nil))
	res = f.Apply(Op(RoomA, &eventlog.ApplicationMessageAccepted{Epoch: 1, Message: marshal(t, msg), Sender: AliceClient}))
	h.AppMessage = res.Events[0].Seq

	// Alice proposes to remove Bob, then commits the proposal by reference.
	rp := must(g.ProposeRemove(1, nil))
	res = f.Apply(Op(RoomA, &eventlog.ProposalAccepted{Epoch: 1, Message: marshal(t, rp.Message), ProposalRef: rp.Ref, Sender: AliceClient}))
	h.RemoveProposal = res.Events[0].Seq
	pc = must(g.Commit(nil))
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	res = f.Apply(Op(RoomA, &eventlog.CommitAccepted{
		Epoch: 2, Commit: marshal(t, pc.Message), GroupInfo: marshal(t, pc.GroupInfo), RatchetTree: marshal(t, g.RatchetTree()),
		Members: []string{AliceClient}, Sender: AliceClient,
	}))
	h.RemoveCommit = res.Events[0].Seq

	// A proposal to add Carol stays cached in epoch 2.
	carol := signer(t, CarolUser, CarolClient)
	carolKP := must(mls.NewKeyPackage(Suite, carol.Credential, carol.SignaturePriv, nil))
	ap := must(g.ProposeAdd(carolKP.KeyPackage, nil))
	res = f.Apply(Op(RoomA, &eventlog.ProposalAccepted{Epoch: 2, Message: marshal(t, ap.Message), ProposalRef: ap.Ref, Sender: AliceClient}))
	h.PendingProposal = res.Events[0].Seq
	h.RoomAEpoch = g.Epoch()

	// b.example acknowledged the commit but not the Welcome yet.
	f.Apply(Op("", &eventlog.FanoutDelivered{Destination: Remote, UpTo: 1}))

	// Room B: a second room, just created, whose group does not carry the
	// room state in application_states (participants in ascending URI
	// order, the canonical map order).
	_, policy, parts = roomExtensions(t, RoomB, []mimi.Participant{{User: CarolUser, Role: "member"}, {User: AliceUser, Role: "admin"}})
	g2 := must(mls.CreateGroup(Suite, []byte(RoomB), alice, nil))
	res = f.Apply(Op(RoomB, &eventlog.RoomCreated{
		Hub: Hub, Creator: AliceUser, Policy: policy, Participants: parts,
		GroupInfo: marshal(t, must(g2.GroupInfo(false))), RatchetTree: marshal(t, g2.RatchetTree()),
		Members: []string{AliceClient},
	}))
	h.RoomBCreated = res.Events[0].Seq
}

// Client returns a Connect client of the admin API. With token the bearer
// token is sent; cert, if not nil, is presented as client certificate.
func (f *Fixture) Client(token string, cert *tls.Certificate) adminv1connect.AdminServiceClient {
	return adminv1connect.NewAdminServiceClient(f.HTTPClient(token, cert), f.URL)
}

// HTTPClient returns an HTTP client trusting the fixture's server CA.
func (f *Fixture) HTTPClient(token string, cert *tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: f.ServerCA.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	var rt http.RoundTripper = &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	if token != "" {
		rt = bearer{token, rt}
	}
	return &http.Client{Transport: rt, Timeout: 30 * time.Second}
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// Files are credential files for mimictl.
type Files struct {
	CACert, Token, Cert, Key string
}

// WriteFiles writes the server CA, the token and the admin client
// certificate and key into a temporary directory.
func (f *Fixture) WriteFiles() Files {
	t := f.t
	dir := t.TempDir()
	fl := Files{
		CACert: filepath.Join(dir, "ca.pem"), Token: filepath.Join(dir, "token"),
		Cert: filepath.Join(dir, "admin.pem"), Key: filepath.Join(dir, "admin-key.pem"),
	}
	key, err := testpki.KeyPEM(f.AdminCert)
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range map[string][]byte{fl.CACert: f.ServerCA.CertPEM, fl.Token: []byte(Token + "\n"), fl.Cert: testpki.CertPEM(f.AdminCert), fl.Key: key} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return fl
}

// quietLogger drops Pebble's informational output.
type quietLogger struct{ t testing.TB }

func (quietLogger) Infof(string, ...any)                {}
func (l quietLogger) Errorf(format string, args ...any) { l.t.Logf("pebble: "+format, args...) }
func (l quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// RewriteRecords passes every stored log record, in sequence order, to fn
// and stores what it returns, then rewrites the log head ("e/H": last seq
// and the chain hash of the last record) to match — what an attacker with
// write access to the store could do. The machine must be closed.
func RewriteRecords(t testing.TB, stateDir string, fn func(seq uint64, record []byte) []byte) {
	t.Helper()
	db, err := pebble.Open(filepath.Join(stateDir, projections.StateDir), &pebble.Options{Logger: quietLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	prefix := []byte("e/g/")
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: eventlog.PrefixEnd(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	var last uint64
	var lastRec []byte
	for ok := it.First(); ok; ok = it.Next() {
		seq := binary.BigEndian.Uint64(it.Key()[len(prefix):])
		rec := fn(seq, append([]byte(nil), it.Value()...))
		if err := b.Set(append([]byte(nil), it.Key()...), rec, nil); err != nil {
			t.Fatal(err)
		}
		last, lastRec = seq, rec
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	head := binary.BigEndian.AppendUint64(nil, last)
	head = append(head, lastRec[:eventlog.HashSize]...)
	if err := b.Set([]byte("e/H"), head, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// CorruptEvent flips the bits mask of the byte at offset off of the stored
// record of event seq (offsets count from the record's start: 32-byte
// chain hash, be64 seq, be64 room seq, then the event encoding; see
// package eventlog). The machine must be closed; it opens the Pebble DB
// directly.
func CorruptEvent(t testing.TB, stateDir string, seq uint64, off func(record []byte) int, mask byte) {
	t.Helper()
	db, err := pebble.Open(filepath.Join(stateDir, projections.StateDir), &pebble.Options{Logger: quietLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	key := binary.BigEndian.AppendUint64([]byte("e/g/"), seq)
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatalf("read record %d: %v", seq, err)
	}
	rec := append([]byte(nil), v...)
	closer.Close()
	i := off(rec)
	if i < 0 || i >= len(rec) {
		t.Fatalf("corrupt offset %d outside record of %d bytes", i, len(rec))
	}
	rec[i] ^= mask
	if err := db.Set(key, rec, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}
