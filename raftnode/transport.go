package raftnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Connection kinds: the first byte a dialer sends after the TLS handshake
// selects the service on the shared port.
const (
	muxRaft    byte = 'R' // raft.NetworkTransport stream
	muxForward byte = 'F' // command forwarding RPCs (forward.go)
)

// defaultHandshakeTimeout bounds a TLS handshake plus the service byte.
const defaultHandshakeTimeout = 10 * time.Second

// ErrPeerRejected is returned (wrapped) when a peer's certificate does not
// chain to the cluster CA or fails TLSConfig.VerifyPeer.
var ErrPeerRejected = errors.New("raftnode: peer certificate rejected")

// TLSConfig configures the mutually authenticated TLS 1.3 (RFC 8446) used
// between cluster nodes for Raft RPCs and command forwarding. Both ends
// present certificates and both verify that the other's chains to CAs
// (RFC 5280, Section 6 path validation), with the serverAuth extended key
// usage required of the accepting side and clientAuth of the dialing side
// (RFC 5280, Section 4.2.1.12).
//
// Host names are not checked against Raft addresses (these are usually IP
// addresses); node identity is "holds a certificate from the cluster CA",
// optionally narrowed by VerifyPeer (see AllowPeerNames).
type TLSConfig struct {
	// CAs is the cluster CA pool; required.
	CAs *x509.CertPool
	// Certificate is this node's certificate chain and key; required. It
	// is presented in both directions, so it should carry both the
	// serverAuth and clientAuth extended key usages (or none).
	Certificate tls.Certificate
	// VerifyPeer, if set, is called with the verified leaf certificate of
	// every peer, in both directions; a non-nil error rejects the peer.
	VerifyPeer func(leaf *x509.Certificate) error
	// HandshakeTimeout bounds a connection's TLS handshake; default 10s.
	HandshakeTimeout time.Duration
	// DialContext, if set, opens the TCP connections to peers (Raft and
	// forwarding) instead of a net.Dialer: a proxy, or a test that cuts
	// the network between nodes.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// AllowPeerNames returns a TLSConfig.VerifyPeer function accepting only
// peers whose certificate carries one of names as a DNS or URI subject
// alternative name (RFC 5280, Section 4.2.1.6), for example the node IDs
// of the cluster.
func AllowPeerNames(names ...string) func(leaf *x509.Certificate) error {
	allowed := make(map[string]bool, len(names))
	for _, n := range names {
		allowed[n] = true
	}
	return func(leaf *x509.Certificate) error {
		for _, d := range leaf.DNSNames {
			if allowed[d] {
				return nil
			}
		}
		for _, u := range leaf.URIs {
			if allowed[u.String()] {
				return nil
			}
		}
		return fmt.Errorf("%w: no allowed name in %v %v", ErrPeerRejected, leaf.DNSNames, leaf.URIs)
	}
}

func (c *TLSConfig) validate() error {
	if c.CAs == nil {
		return errors.New("raftnode: TLS.CAs is required")
	}
	if len(c.Certificate.Certificate) == 0 || c.Certificate.PrivateKey == nil {
		return errors.New("raftnode: TLS.Certificate is required")
	}
	return nil
}

func (c *TLSConfig) handshakeTimeout() time.Duration {
	if c.HandshakeTimeout > 0 {
		return c.HandshakeTimeout
	}
	return defaultHandshakeTimeout
}

// verifyChain validates a peer chain against the cluster CAs for the given
// key usage and applies VerifyPeer.
func (c *TLSConfig) verifyChain(certs []*x509.Certificate, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return fmt.Errorf("%w: no certificate presented", ErrPeerRejected)
	}
	inter := x509.NewCertPool()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         c.CAs,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrPeerRejected, err)
	}
	if c.VerifyPeer != nil {
		if err := c.VerifyPeer(certs[0]); err != nil {
			return fmt.Errorf("%w: %w", ErrPeerRejected, err)
		}
	}
	return nil
}

// serverConfig is the configuration of the accepting side.
func (c *TLSConfig) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.Certificate},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.CAs,
		VerifyConnection: func(cs tls.ConnectionState) error {
			// The chain was verified by crypto/tls (ClientCAs, clientAuth
			// usage); apply the identity hook.
			if c.VerifyPeer == nil || len(cs.PeerCertificates) == 0 {
				return nil
			}
			if err := c.VerifyPeer(cs.PeerCertificates[0]); err != nil {
				return fmt.Errorf("%w: %w", ErrPeerRejected, err)
			}
			return nil
		},
	}
}

// clientConfig is the configuration of the dialing side. Standard host
// name verification is replaced by chain verification against the cluster
// CAs (InsecureSkipVerify only disables the host-name-based default; the
// peer still proves possession of the certified key in the handshake).
func (c *TLSConfig) clientConfig() *tls.Config {
	cert := c.Certificate
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Always present the node certificate, even if the server's
		// CertificateRequest names other CAs, so a mismatch is reported as
		// such by the server rather than as a missing certificate.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			return c.verifyChain(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
		},
	}
}

// dialTLS dials addr, completes the TLS handshake and sends the service
// byte.
func dialTLS(ctx context.Context, c *TLSConfig, addr string, kind byte) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.handshakeTimeout())
	defer cancel()
	dial := c.DialContext
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("raftnode: dial %s: %w", addr, err)
	}
	conn := tls.Client(raw, c.clientConfig())
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("raftnode: TLS handshake with %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(dl)
	}
	if _, err := conn.Write([]byte{kind}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("raftnode: write service byte to %s: %w", addr, err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// muxListener accepts TLS connections on one port and dispatches them by
// their first byte to the Raft stream layer or the forwarding handler.
type muxListener struct {
	ln        net.Listener
	tls       *TLSConfig
	serverCfg *tls.Config
	advertise net.Addr

	raftCh  chan net.Conn
	forward func(net.Conn) // runs in its own goroutine per connection

	closeOnce sync.Once
	closed    chan struct{}
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

func newMuxListener(bind, advertise string, c *TLSConfig, forward func(net.Conn)) (*muxListener, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("raftnode: listen %s: %w", bind, err)
	}
	var adv net.Addr = ln.Addr()
	if advertise != "" {
		tcp, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("raftnode: advertise address %q: %w", advertise, err)
		}
		adv = tcp
	}
	if tcp, ok := adv.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		_ = ln.Close()
		return nil, fmt.Errorf("raftnode: advertise address %s is unspecified; set AdvertiseAddr", adv)
	}
	m := &muxListener{
		ln:        ln,
		tls:       c,
		serverCfg: c.serverConfig(),
		advertise: adv,
		raftCh:    make(chan net.Conn),
		forward:   forward,
		closed:    make(chan struct{}),
		conns:     make(map[net.Conn]struct{}),
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

func (m *muxListener) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.closed:
		return false
	default:
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *muxListener) untrack(c net.Conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

func (m *muxListener) acceptLoop() {
	defer m.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		raw, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(backoff) // transient (e.g. EMFILE)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !m.track(raw) {
			_ = raw.Close()
			return
		}
		m.wg.Add(1)
		go m.handle(raw)
	}
}

func (m *muxListener) handle(raw net.Conn) {
	defer m.wg.Done()
	conn := tls.Server(raw, m.serverCfg)
	_ = raw.SetDeadline(time.Now().Add(m.tls.handshakeTimeout()))
	var kind [1]byte
	if err := conn.Handshake(); err != nil {
		m.drop(raw)
		return
	}
	if _, err := io.ReadFull(conn, kind[:]); err != nil {
		m.drop(raw)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	tc := &trackedConn{Conn: conn, raw: raw, m: m}
	switch kind[0] {
	case muxRaft:
		select {
		case m.raftCh <- tc:
		case <-m.closed:
			_ = tc.Close()
		}
	case muxForward:
		m.forward(tc)
	default:
		m.drop(raw)
	}
}

func (m *muxListener) drop(raw net.Conn) {
	_ = raw.Close()
	m.untrack(raw)
}

// trackedConn removes itself from the listener's set when closed.
type trackedConn struct {
	net.Conn
	raw  net.Conn
	m    *muxListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.m.untrack(c.raw) })
	return err
}

// close stops accepting and closes every accepted connection.
func (m *muxListener) close() error {
	var err error
	m.closeOnce.Do(func() {
		m.mu.Lock()
		close(m.closed)
		conns := m.conns
		m.conns = map[net.Conn]struct{}{}
		m.mu.Unlock()
		err = m.ln.Close()
		for c := range conns {
			_ = c.Close()
		}
	})
	return err
}

// wait blocks until all connection handlers have returned.
func (m *muxListener) wait() { m.wg.Wait() }

// streamLayer is the raft.StreamLayer view of a muxListener.
type streamLayer struct {
	m *muxListener
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// Accept returns the next authenticated Raft connection.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.m.raftCh:
		return c, nil
	case <-s.m.closed:
		return nil, net.ErrClosed
	}
}

// Close closes the shared listener (and so the forwarding service too).
func (s *streamLayer) Close() error { return s.m.close() }

// Addr returns the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.m.advertise }

// Dial opens an authenticated Raft connection to a peer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return dialTLS(ctx, s.m.tls, string(address), muxRaft)
}
