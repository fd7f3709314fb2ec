package chaos

import (
	"context"
	"errors"
	"io"
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
type Proxy struct {
	ln       net.Listener
	backends []Backend

	healthy []atomic.Bool
	next    atomic.Uint32
	prefer  atomic.Int32 // backend index dialled first, or -1
	// Connections counts accepted connections, Failovers the connections
	// for which a first choice of backend refused.
	Connections, Failovers atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewProxy listens on addr ("127.0.0.1:0" for any port) and starts
// proxying to backends, checking their health every 200 ms.
func NewProxy(addr string, backends []Backend) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, backends: backends, healthy: make([]atomic.Bool, len(backends)), conns: map[net.Conn]struct{}{}, cancel: cancel}
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

// Close stops accepting, closes every proxied connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
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

func (p *Proxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.closed {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
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
	defer p.track(in, false)
	defer in.Close()
	out, err := p.dial()
	if err != nil {
		return
	}
	if !p.track(out, true) {
		out.Close()
		return
	}
	defer p.track(out, false)
	defer out.Close()
	done := make(chan struct{}, 2)
	splice := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
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
