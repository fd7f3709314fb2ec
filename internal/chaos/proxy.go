package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Backend is one node behind a Proxy: the address connections are
// forwarded to and the plain-HTTP address of its /readyz health check
// (empty: no health check).
type Backend struct {
	Addr   string
	Health string
}

// Proxy is a layer-4 TCP load balancer in TLS passthrough mode, the way an
// HA hub cluster is exposed under its one domain
// (draft-ralston-mimi-protocol-02, Section 5.1: peers reach a provider by
// the URLs of its directory). Every node holds the domain's certificate;
// the proxy never looks inside the stream. For each accepted connection it
// dials the backends in round-robin order, those that answered their last
// /readyz check first, and splices the two connections until either side
// closes. A backend that dies takes its spliced connections with it; the
// peer reconnects and is sent to a live node.
//
// SetCut partitions the proxy's path: Refused resets every connection
// through it and every new one, BlackHoled holds every byte (and every
// close) in both directions, and every new connection before its backend
// is dialled, until the cut heals.
type Proxy struct {
	ln       net.Listener
	backends []Backend

	healthy []atomic.Bool
	next    atomic.Uint32
	prefer  atomic.Int32 // backend index dialled first, or -1
	// Connections counts accepted connections, Failovers the connections
	// for which a first choice of backend refused.
	Connections, Failovers atomic.Int64
	// Resets counts the accepted connections a Refused cut reset, Stalls
	// the transfers (a connection's direction, or a new connection's
	// dial) a BlackHoled cut held.
	Resets, Stalls atomic.Int64

	mu sync.Mutex
	// conns are the open connections, each marked true when accepted
	// (the peer's side) and false when dialled (the backend's side).
	conns  map[net.Conn]bool
	closed bool
	cut    Cut
	// healed is closed when a BlackHoled cut ends.
	healed chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Cut is the state of a Proxy's path: connected or partitioned, in one of
// the two ways a network fails.
type Cut int

const (
	// Connected: traffic flows.
	Connected Cut = iota
	// Refused: connections are reset, as by a firewall that rejects with
	// a TCP reset; peers see their calls fail at once.
	Refused
	// BlackHoled: packets are dropped; connections hang, and what was
	// sent arrives only after the cut heals (as TCP retransmits), unless
	// a peer gave up first. Only the peers' timeouts end a call.
	BlackHoled
)

// String names the cut.
func (c Cut) String() string {
	switch c {
	case Connected:
		return "connected"
	case Refused:
		return "refused"
	case BlackHoled:
		return "black-holed"
	}
	return fmt.Sprintf("Cut(%d)", int(c))
}

// MarshalText names the cut in JSON (tools/chaos -json).
func (c Cut) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// NewProxy listens on addr ("127.0.0.1:0" for any port) and starts
// proxying to backends, checking their health every 200 ms.
func NewProxy(addr string, backends []Backend) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, backends: backends, healthy: make([]atomic.Bool, len(backends)), conns: map[net.Conn]bool{}, cancel: cancel}
	for i := range p.healthy {
		p.healthy[i].Store(true)
	}
	p.prefer.Store(-1)
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.accept() }()
	go func() { defer p.wg.Done(); p.check(ctx) }()
	return p, nil
}

// Addr is the proxy's listen address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Prefer makes new connections try backend i first (i < 0: no
// preference), as a balancer with session affinity would.
func (p *Proxy) Prefer(i int) { p.prefer.Store(int32(i)) }

// SetCut changes the state of the proxy's path. Cutting with Refused
// resets every open connection; healing a BlackHoled cut (with
// Connected or Refused) releases what it held.
func (p *Proxy) SetCut(c Cut) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c == p.cut || p.closed {
		return
	}
	if p.cut == BlackHoled {
		close(p.healed)
	}
	p.cut = c
	switch c {
	case BlackHoled:
		p.healed = make(chan struct{})
	case Refused:
		for conn, accepted := range p.conns {
			if accepted {
				p.Resets.Add(1)
			}
			reset(conn)
		}
	}
}

// reset closes a connection with a TCP reset rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// pass waits while the path is BlackHoled and reports whether traffic may
// flow (false: Refused, or the proxy is closed). A wait counts as a stall.
func (p *Proxy) pass() bool {
	stalled := false
	for {
		p.mu.Lock()
		cut, healed, closed := p.cut, p.healed, p.closed
		p.mu.Unlock()
		switch {
		case closed || cut == Refused:
			return false
		case cut == Connected:
			return true
		}
		if !stalled {
			p.Stalls.Add(1)
			stalled = true
		}
		<-healed
	}
}

// Close stops accepting, closes every proxied connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	if p.cut == BlackHoled {
		close(p.healed)
		p.cut = Connected
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) check(ctx context.Context) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		for i, b := range p.backends {
			if b.Health != "" {
				p.healthy[i].Store(Ready(ctx, b.Health))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// track registers an open connection (accepted: the peer's side). It
// reports false, and the connection must not be used, when the proxy is
// closed or its path Refused (the connection is reset then).
func (p *Proxy) track(c net.Conn, accepted bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return false
	case p.cut == Refused:
		if accepted {
			p.Resets.Add(1)
		}
		reset(c)
		return false
	}
	p.conns[c] = accepted
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.Connections.Add(1)
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.serve(c) }()
	}
}

// dial connects to a backend: the preferred one, then healthy ones, then
// the others, in round-robin order.
func (p *Proxy) dial() (net.Conn, error) {
	n := len(p.backends)
	start := int(p.next.Add(1)) % n
	var order []int
	pref := int(p.prefer.Load())
	if pref >= 0 && pref < n {
		order = append(order, pref)
	}
	for pass := 0; pass < 2; pass++ {
		for k := 0; k < n; k++ {
			i := (start + k) % n
			if i != pref && p.healthy[i].Load() == (pass == 0) {
				order = append(order, i)
			}
		}
	}
	var last error
	for k, i := range order {
		c, err := net.DialTimeout("tcp", p.backends[i].Addr, time.Second)
		if err == nil {
			if k > 0 {
				p.Failovers.Add(1)
			}
			return c, nil
		}
		last = err
	}
	return nil, last
}

func (p *Proxy) serve(in net.Conn) {
	if !p.track(in, true) {
		in.Close()
		return
	}
	defer p.untrack(in)
	defer in.Close()
	// A new connection waits out a black hole before reaching a backend
	// (a refusing cut meanwhile resets it).
	if !p.pass() {
		return
	}
	out, err := p.dial()
	if err != nil {
		return
	}
	if !p.track(out, false) {
		out.Close()
		return
	}
	defer p.untrack(out)
	defer out.Close()
	done := make(chan struct{}, 2)
	splice := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if !p.pass() {
					break
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				// A black hole holds the close too.
				p.pass()
				break
			}
		}
		// Either direction ending ends the connection: a killed backend
		// must not leave the peer waiting on a half-open stream.
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go splice(out, in)
	go splice(in, out)
	<-done
	<-done
}
