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
// is dialled, until the cut heals; AnswersBlackHoled and AnswersReset let
// requests through but lose their answers. SetCutFrom cuts only the
// connections dialled by one source (SetSources names them).
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
	// dial) a BlackHoled cut held, Lost the connections whose answers an
	// AnswersBlackHoled or AnswersReset cut dropped.
	Resets, Stalls, Lost atomic.Int64

	mu sync.Mutex
	// flows are the open connections.
	flows  map[*flow]struct{}
	closed bool
	// cut is the state of the whole path, from that of the connections
	// dialled by a named source (Connected ones are not kept).
	cut  Cut
	from map[string]Cut
	// sources names the dialler of an accepted connection (SetSources).
	sources func(net.Conn) string
	// changed is closed and replaced whenever a cut changes: black-holed
	// transfers wait on it.
	changed chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// flow is one proxied connection: the accepted peer side and the dialled
// backend side (nil until dialled), with the state an answer-losing cut
// keeps for it. Its fields other than peer and source are guarded by
// Proxy.mu.
type flow struct {
	peer, backend net.Conn
	// source names the peer's dialler, or "".
	source string
	// doomed: the connection was open when an answer-losing cut began;
	// asked: a request byte crossed it since; lost: an answer of it was
	// dropped, so its stream is broken for good.
	doomed, asked, lost bool
}

// Cut is the state of a Proxy's path: connected or partitioned, in one of
// the ways a network fails.
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
	// AnswersBlackHoled: on every connection open when the cut begins,
	// the peer's requests reach the backend, which processes them, but
	// from the first byte the backend sends after a request on, nothing
	// it sends reaches the peer; the peer's timeouts end its calls. When
	// the cut heals those connections are reset (their streams lost
	// bytes). New connections are not affected.
	AnswersBlackHoled
	// AnswersReset: on every connection open when the cut begins, what
	// the backend sends after a request is dropped, from the first byte
	// on, and answerResetDelay later the connection is reset, both
	// sides: the backend had the time to process what it was sent (an
	// HTTP/2 server may send flow-control frames before it answers), the
	// peer sees its calls fail. New connections are not affected.
	AnswersReset
)

// answerResetDelay is how long an AnswersReset cut waits after dropping
// a connection's first answer bytes before it resets the connection.
const answerResetDelay = 500 * time.Millisecond

// String names the cut.
func (c Cut) String() string {
	switch c {
	case Connected:
		return "connected"
	case Refused:
		return "refused"
	case BlackHoled:
		return "black-holed"
	case AnswersBlackHoled:
		return "answers-black-holed"
	case AnswersReset:
		return "answers-reset"
	}
	return fmt.Sprintf("Cut(%d)", int(c))
}

// losesAnswers reports whether the cut lets requests through and drops
// their answers.
func (c Cut) losesAnswers() bool { return c == AnswersBlackHoled || c == AnswersReset }

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
	p := &Proxy{ln: ln, backends: backends, healthy: make([]atomic.Bool, len(backends)),
		flows: map[*flow]struct{}{}, from: map[string]Cut{}, changed: make(chan struct{}), cancel: cancel}
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

// SetSources makes the proxy name the dialler of every connection it
// accepts from then on with f ("" when unknown), for SetCutFrom.
func (p *Proxy) SetSources(f func(net.Conn) string) {
	p.mu.Lock()
	p.sources = f
	p.mu.Unlock()
}

// SetCut changes the state of the proxy's path. Cutting with Refused
// resets every open connection; healing a BlackHoled cut (with
// Connected or Refused) releases what it held; an answer-losing cut
// applies to the connections open when it begins, and healing it resets
// those whose answers it dropped. A cut of a source (SetCutFrom) takes
// precedence for that source's connections.
func (p *Proxy) SetCut(c Cut) {
	p.change(func() { p.cut = c })
}

// SetCutFrom changes the state of the path for the connections dialled
// by source (as named by SetSources) alone, as SetCut does for all;
// Connected heals it, leaving them to the whole path's cut.
func (p *Proxy) SetCutFrom(source string, c Cut) {
	p.change(func() {
		if c == Connected {
			delete(p.from, source)
		} else {
			p.from[source] = c
		}
	})
}

// cutOf is the cut a connection is subject to; p.mu must be held.
func (p *Proxy) cutOf(f *flow) Cut {
	if c, ok := p.from[f.source]; ok && f.source != "" {
		return c
	}
	return p.cut
}

// change applies set to the cuts and moves every open connection to its
// new cut: a connection newly Refused is reset, one newly under an
// answer-losing cut is doomed, and one leaving such a cut is reset if its
// answers were dropped. It wakes the black-holed transfers.
func (p *Proxy) change(set func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	old := make(map[*flow]Cut, len(p.flows))
	for f := range p.flows {
		old[f] = p.cutOf(f)
	}
	set()
	for f, was := range old {
		now := p.cutOf(f)
		switch {
		case now == was:
		case now == Refused:
			p.Resets.Add(1)
			f.reset()
		case now.losesAnswers() && !was.losesAnswers():
			f.doomed, f.asked = f.backend != nil, false
		case was.losesAnswers() && !now.losesAnswers():
			if f.lost {
				f.reset()
			}
			f.doomed = false
		}
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// reset closes both sides of a connection with a TCP reset.
func (f *flow) reset() {
	reset(f.peer)
	if f.backend != nil {
		reset(f.backend)
	}
}

// reset closes a connection with a TCP reset rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// verdict is what a splice does with what it read from one side.
type verdict int

const (
	deliver verdict = iota
	// drop discards the bytes (an answer lost).
	drop
	// sever resets the connection: the path is Refused, or the proxy is
	// closed.
	sever
)

// judge decides what becomes of what was read from one side of f (up:
// from the peer towards the backend; data: bytes, else the end of the
// stream), waiting while f's path is BlackHoled. A wait counts as a
// stall.
func (p *Proxy) judge(f *flow, up, data bool) verdict {
	stalled := false
	for {
		p.mu.Lock()
		cut, changed := p.cutOf(f), p.changed
		v := deliver
		switch {
		case p.closed || cut == Refused:
			v = sever
		case f.lost && data && !up:
			v = drop
		case cut.losesAnswers() && f.doomed && data && up:
			f.asked = true
		case cut.losesAnswers() && f.doomed && data && f.asked:
			p.Lost.Add(1)
			f.lost, v = true, drop
			if cut == AnswersReset {
				time.AfterFunc(answerResetDelay, func() {
					p.mu.Lock()
					defer p.mu.Unlock()
					f.reset()
				})
			}
		}
		p.mu.Unlock()
		if cut != BlackHoled || v == sever {
			return v
		}
		if !stalled {
			p.Stalls.Add(1)
			stalled = true
		}
		<-changed
	}
}

// Close stops accepting, closes every proxied connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	close(p.changed)
	p.changed = make(chan struct{})
	for f := range p.flows {
		_ = f.peer.Close()
		if f.backend != nil {
			_ = f.backend.Close()
		}
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

// open registers an accepted connection, naming its dialler. It returns
// nil, and the connection must not be used, when the proxy is closed or
// the connection's path Refused (the connection is reset then).
func (p *Proxy) open(in net.Conn) *flow {
	p.mu.Lock()
	sources := p.sources
	p.mu.Unlock()
	f := &flow{peer: in}
	if sources != nil {
		f.source = sources(in)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil
	case p.cutOf(f) == Refused:
		p.Resets.Add(1)
		reset(in)
		return nil
	}
	p.flows[f] = struct{}{}
	return f
}

// attach sets a connection's dialled backend side. It reports false, and
// the connection must be closed, when the proxy is closed or the
// connection's path Refused meanwhile.
func (p *Proxy) attach(f *flow, out net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.cutOf(f) == Refused {
		return false
	}
	f.backend = out
	return true
}

func (p *Proxy) serve(in net.Conn) {
	f := p.open(in)
	if f == nil {
		in.Close()
		return
	}
	defer func() {
		p.mu.Lock()
		delete(p.flows, f)
		p.mu.Unlock()
	}()
	defer in.Close()
	// A new connection waits out a black hole before reaching a backend
	// (a refusing cut meanwhile resets it).
	if p.judge(f, true, false) == sever {
		return
	}
	out, err := p.dial()
	if err != nil {
		return
	}
	defer out.Close()
	if !p.attach(f, out) {
		return
	}
	done := make(chan struct{}, 2)
	splice := func(dst, src net.Conn, up bool) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				v := p.judge(f, up, true)
				if v == sever {
					reset(dst)
					reset(src)
					break
				}
				if v == deliver {
					if _, werr := dst.Write(buf[:n]); werr != nil {
						break
					}
				}
			}
			if err != nil {
				// A black hole holds the close too.
				p.judge(f, up, false)
				break
			}
		}
		// Either direction ending ends the connection: a killed backend
		// must not leave the peer waiting on a half-open stream.
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go splice(out, in, true)
	go splice(in, out, false)
	<-done
	<-done
}
