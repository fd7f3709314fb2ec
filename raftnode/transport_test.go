package raftnode

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/openmimi/mimi/internal/testpki"
)

// memSM is a minimal in-memory StateMachine for transport tests.
type memSM struct {
	mu      sync.Mutex
	applied uint64
	n       int
}

func (m *memSM) Apply(index uint64, _ []byte) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if index > m.applied {
		m.applied = index
		m.n++
	}
	return m.n
}
func (m *memSM) AppliedIndex() uint64 { m.mu.Lock(); defer m.mu.Unlock(); return m.applied }
func (m *memSM) Snapshot(w io.Writer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := w.Write(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, m.applied), uint64(m.n)))
	return err
}
func (m *memSM) Restore(r io.Reader) error {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applied, m.n = binary.BigEndian.Uint64(b[:8]), int(binary.BigEndian.Uint64(b[8:]))
	return nil
}

func startTLSNode(t *testing.T, ca *testpki.CA, id string, verify func(*testing.T) *TLSConfig) *Node[int] {
	t.Helper()
	cfg := Config{
		ID:                 id,
		DataDir:            filepath.Join(t.TempDir(), id),
		BindAddr:           "127.0.0.1:0",
		Bootstrap:          true,
		HeartbeatTimeout:   100 * time.Millisecond,
		ElectionTimeout:    100 * time.Millisecond,
		LeaderLeaseTimeout: 100 * time.Millisecond,
		Logger:             nullLogger(),
	}
	if verify != nil {
		cfg.TLS = verify(t)
	} else {
		cfg.TLS = &TLSConfig{CAs: ca.Pool(), Certificate: ca.MustIssue(t, id)}
	}
	n, err := Open[int](cfg, &memSM{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	deadline := time.Now().Add(10 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return n
}

// forwardOnce sends one barrier request over a forwarding connection made
// with cfg and returns the first error.
func forwardOnce(cfg *TLSConfig, addr string) error {
	fc := newForwardClient(cfg)
	defer fc.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	status, _, payload, err := fc.call(ctx, addr, opBarrier, nil)
	if err != nil {
		return err
	}
	if status != statusOK {
		return errors.New(string(payload))
	}
	return nil
}

func TestTransportMutualTLS(t *testing.T) {
	ca := testpki.MustNew(t, "cluster CA")
	evil := testpki.MustNew(t, "evil CA")
	n := startTLSNode(t, ca, "n0", nil)
	before := n.AppliedIndex()

	good := &TLSConfig{CAs: ca.Pool(), Certificate: ca.MustIssue(t, "n1")}
	if err := forwardOnce(good, n.Addr()); err != nil {
		t.Fatalf("good peer rejected: %v", err)
	}

	cases := []struct {
		name string
		cfg  *TLSConfig
	}{
		// Trusts the cluster CA but presents a certificate from another CA.
		{"foreign-client-cert", &TLSConfig{CAs: ca.Pool(), Certificate: evil.MustIssue(t, "n1")}},
		// Server-only certificate used as a client certificate.
		{"no-clientAuth-usage", &TLSConfig{CAs: ca.Pool(), Certificate: mustIssueFor(t, ca, testpki.ServerOnly, "n1")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := forwardOnce(tc.cfg, n.Addr())
			if err == nil {
				t.Fatal("forwarding connection accepted")
			}
			t.Logf("forwarding refused: %v", err)
			// The Raft transport is refused as well.
			ml, err := newMuxListener("127.0.0.1:0", "", tc.cfg, func(c net.Conn) { _ = c.Close() })
			if err != nil {
				t.Fatal(err)
			}
			tr := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: &streamLayer{m: ml}, MaxPool: 1, Timeout: 2 * time.Second, Logger: nullLogger()})
			defer tr.Close()
			var resp raft.RequestVoteResponse
			err = tr.RequestVote("n0", raft.ServerAddress(n.Addr()), &raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("evil"), Addr: []byte(ml.advertise.String())}, Term: 1 << 40}, &resp)
			if err == nil {
				t.Fatal("RequestVote from a rejected peer succeeded")
			}
			t.Logf("raft RPC refused: %v", err)
		})
	}

	// A client without any certificate.
	raw, err := tls.Dial("tcp", n.Addr(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}) //nolint:gosec // test
	if err == nil {
		_, _ = raw.Write([]byte{muxForward, opBarrier, 0, 0, 0, 0, 0, 0, 0, 0})
		_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := raw.Read(make([]byte, 1)); err == nil {
			t.Fatal("certificate-less client got a response")
		}
		_ = raw.Close()
	}

	// Our dialer refuses a server whose certificate is from another CA.
	evilNode := startTLSNode(t, evil, "e0", nil)
	if err := forwardOnce(good, evilNode.Addr()); !errors.Is(err, ErrPeerRejected) {
		t.Fatalf("dial to foreign-CA server = %v, want ErrPeerRejected", err)
	}

	// The node is unaffected and its term was not bumped by the bogus vote.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.Apply(ctx, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if n.AppliedIndex() <= before || n.raft.CurrentTerm() >= 1<<40 {
		t.Fatalf("node state disturbed: applied %d term %d", n.AppliedIndex(), n.raft.CurrentTerm())
	}
}

func mustIssueFor(t *testing.T, ca *testpki.CA, u testpki.Usage, names ...string) tls.Certificate {
	t.Helper()
	c, err := ca.IssueFor(u, names...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTransportPeerNames(t *testing.T) {
	ca := testpki.MustNew(t, "cluster CA")
	n := startTLSNode(t, ca, "n0", func(t *testing.T) *TLSConfig {
		return &TLSConfig{CAs: ca.Pool(), Certificate: ca.MustIssue(t, "n0"), VerifyPeer: AllowPeerNames("n0", "n1", "spiffe://mimi/n2")}
	})
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		ok   bool
	}{
		{"dns-allowed", ca.MustIssue(t, "n1"), true},
		{"uri-allowed", ca.MustIssue(t, "node-two", "spiffe://mimi/n2"), true},
		{"not-allowed", ca.MustIssue(t, "mallory"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := forwardOnce(&TLSConfig{CAs: ca.Pool(), Certificate: tc.cert}, n.Addr())
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// Client side: our dialer applies VerifyPeer to the server too.
	strict := &TLSConfig{CAs: ca.Pool(), Certificate: ca.MustIssue(t, "n1"), VerifyPeer: AllowPeerNames("someone-else")}
	if err := forwardOnce(strict, n.Addr()); !errors.Is(err, ErrPeerRejected) {
		t.Fatalf("server name check = %v, want ErrPeerRejected", err)
	}
}

// TestForwardProtocolHostile feeds malformed frames to the forwarding
// service: the node must drop the connection, not crash.
func TestForwardProtocolHostile(t *testing.T) {
	ca := testpki.MustNew(t, "cluster CA")
	n := startTLSNode(t, ca, "n0", nil)
	cfg := &TLSConfig{CAs: ca.Pool(), Certificate: ca.MustIssue(t, "n1")}
	frames := [][]byte{
		{99, 0, 0, 0, 0, 0, 0, 0, 0},                  // unknown op
		{opApply, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, // oversize length
		{opApply, 0, 0, 0, 0, 0, 0, 0, 10, 1, 2},      // truncated payload
		{opApply},                                     // truncated header
	}
	for i, f := range frames {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := dialTLS(ctx, cfg, n.Addr(), muxForward)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(f)
		_ = c.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, _ := io.ReadAll(c)
		_ = c.Close()
		cancel()
		if len(resp) >= respHeaderLen && resp[0] == statusOK {
			t.Fatalf("frame %d answered OK", i)
		}
	}
	// Unknown service byte.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := dialTLS(ctx, cfg, n.Addr(), 'Z'); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("unknown service byte got data")
		}
		_ = c.Close()
	}
	if _, err := n.Apply(ctx, []byte("still alive")); err != nil {
		t.Fatal(err)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	ca := testpki.MustNew(t, "cluster CA")
	tlsCfg := &TLSConfig{CAs: ca.Pool(), Certificate: ca.MustIssue(t, "n0")}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no-datadir", Config{}},
		{"tls-no-id", Config{DataDir: t.TempDir(), BindAddr: "127.0.0.1:0", TLS: tlsCfg}},
		{"tls-no-bind", Config{DataDir: t.TempDir(), ID: "n0", TLS: tlsCfg}},
		{"tls-no-cert", Config{DataDir: t.TempDir(), ID: "n0", BindAddr: "127.0.0.1:0", TLS: &TLSConfig{CAs: ca.Pool()}}},
		{"tls-no-ca", Config{DataDir: t.TempDir(), ID: "n0", BindAddr: "127.0.0.1:0", TLS: &TLSConfig{Certificate: tlsCfg.Certificate}}},
		{"port-busy", Config{DataDir: t.TempDir(), ID: "n0", BindAddr: busy.Addr().String(), TLS: tlsCfg}},
		{"unspecified-advertise", Config{DataDir: t.TempDir(), ID: "n0", BindAddr: "0.0.0.0:0", TLS: tlsCfg}},
		{"bad-raft-timing", Config{DataDir: t.TempDir(), ID: "n0", BindAddr: "127.0.0.1:0", TLS: tlsCfg,
			HeartbeatTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: time.Second, Logger: nullLogger()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Open[int](tc.cfg, &memSM{}, nil)
			if err == nil {
				_ = n.Shutdown()
				t.Fatal("Open succeeded")
			}
		})
	}
	if _, err := Open[int](Config{DataDir: t.TempDir()}, nil, nil); err == nil {
		t.Fatal("nil state machine accepted")
	}
}
