package raftnode

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Forwarding protocol, spoken on connections whose service byte is
// muxForward. Requests and responses alternate on a connection:
//
//	request:  op u8 | timeout_ms u32 | length u32 | payload
//	response: status u8 | index u64 | length u32 | payload
//
// opApply carries a command and answers with the entry index and the
// encoded result; opBarrier carries nothing and answers with the leader's
// state machine applied index after a Raft barrier; opNotice carries a
// payload for the leader's Config.OnNotice and answers with nothing.
const (
	opApply   byte = 1
	opBarrier byte = 2
	opNotice  byte = 3

	statusOK        byte = 0
	statusError     byte = 1 // payload: message; not applied
	statusNotLeader byte = 2 // payload: leader id "\n" leader addr; not applied
	statusUnknown   byte = 3 // payload: message; may have been applied

	reqHeaderLen  = 9
	respHeaderLen = 13

	// defaultForwardTimeout bounds a forwarded request that carries no
	// deadline.
	defaultForwardTimeout = time.Minute
	maxIdlePerPeer        = 4
	responseWriteTimeout  = 10 * time.Second
)

// errNotSent marks a forwarding failure that happened before the request
// was completely sent, so the leader cannot have acted on it.
var errNotSent = errors.New("raftnode: request not sent")

// serveForward handles one forwarding connection until it fails or closes.
func (n *Node[R]) serveForward(c net.Conn) {
	defer c.Close()
	select {
	case <-n.ready:
	case <-n.closed:
		return
	}
	br := bufio.NewReaderSize(c, 64<<10)
	var hdr [reqHeaderLen]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		op := hdr[0]
		tmo := time.Duration(binary.BigEndian.Uint32(hdr[1:5])) * time.Millisecond
		length := binary.BigEndian.Uint32(hdr[5:9])
		if uint64(length) > uint64(n.cfg.MaxCommandSize) {
			n.writeForwardResp(c, statusError, 0, []byte(ErrCommandTooLarge.Error()))
			return // the unread payload desynchronises the stream
		}
		payload := make([]byte, length)
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		if tmo <= 0 {
			tmo = defaultForwardTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), tmo)
		status, index, out := n.handleForward(ctx, op, payload)
		cancel()
		if !n.writeForwardResp(c, status, index, out) {
			return
		}
	}
}

func (n *Node[R]) handleForward(ctx context.Context, op byte, payload []byte) (status byte, index uint64, out []byte) {
	notLeader := func() (byte, uint64, []byte) {
		addr, id := n.raft.LeaderWithID()
		return statusNotLeader, 0, []byte(string(id) + "\n" + string(addr))
	}
	failed := func(err error) (byte, uint64, []byte) {
		switch {
		case errors.Is(err, errRetry):
			return notLeader()
		case errors.Is(err, ErrOutcomeUnknown):
			return statusUnknown, 0, []byte(err.Error())
		default:
			return statusError, 0, []byte(err.Error())
		}
	}
	if !n.IsLeader() {
		return notLeader()
	}
	switch op {
	case opApply:
		r, idx, err := n.applyOnLeader(ctx, payload)
		if err != nil {
			return failed(err)
		}
		b, err := n.codec.EncodeResult(r)
		if err != nil {
			// Applied, but the result cannot be carried back.
			return statusUnknown, idx, []byte("encode result: " + err.Error())
		}
		return statusOK, idx, b
	case opBarrier:
		idx, err := n.barrierOnLeader(ctx)
		if err != nil {
			return failed(err)
		}
		return statusOK, idx, nil
	case opNotice:
		if n.cfg.OnNotice != nil {
			n.cfg.OnNotice(payload)
		}
		return statusOK, 0, nil
	default:
		return statusError, 0, []byte(fmt.Sprintf("unknown forwarding op %d", op))
	}
}

func (n *Node[R]) writeForwardResp(c net.Conn, status byte, index uint64, payload []byte) bool {
	if len(payload) > maxResultSize {
		status, payload = statusUnknown, []byte("result too large")
	}
	buf := make([]byte, respHeaderLen, respHeaderLen+len(payload))
	buf[0] = status
	binary.BigEndian.PutUint64(buf[1:9], index)
	binary.BigEndian.PutUint32(buf[9:13], uint32(len(payload)))
	buf = append(buf, payload...)
	_ = c.SetWriteDeadline(time.Now().Add(responseWriteTimeout))
	_, err := c.Write(buf)
	_ = c.SetWriteDeadline(time.Time{})
	return err == nil
}

// forwardApply sends cmd to the leader at addr.
func (n *Node[R]) forwardApply(ctx context.Context, addr string, cmd []byte) (R, error) {
	var zero R
	fctx, done := n.whileLeader(ctx, addr)
	status, idx, payload, err := n.fwd.call(fctx, addr, opApply, cmd)
	done()
	if err != nil {
		if errors.Is(err, errNotSent) {
			return zero, fmt.Errorf("%w: %w", errRetry, err)
		}
		if context.Cause(fctx) == errLeaderMoved && ctx.Err() == nil {
			err = errLeaderMoved
		}
		return zero, fmt.Errorf("%w: forwarded to %s: %w", ErrOutcomeUnknown, addr, err)
	}
	switch status {
	case statusOK:
		r, err := n.codec.DecodeResult(payload)
		if err != nil {
			return zero, fmt.Errorf("raftnode: decode forwarded result: %w", err)
		}
		// Read your writes: answer once this node applied the entry too,
		// so that a read here after Apply sees it.
		if err := n.WaitApplied(ctx, idx); err != nil {
			return r, fmt.Errorf("raftnode: applied by the leader at index %d, not yet on this node: %w", idx, err)
		}
		return r, nil
	case statusNotLeader:
		id, hint := parseLeaderHint(payload)
		return zero, fmt.Errorf("%w: %s is not the leader (it knows %q at %q)", errRetry, addr, id, hint)
	case statusUnknown:
		return zero, fmt.Errorf("%w: leader %s: %s", ErrOutcomeUnknown, addr, payload)
	case statusError:
		return zero, fmt.Errorf("%w: %s: %s", ErrRemote, addr, payload)
	default:
		return zero, fmt.Errorf("%w: status %d from %s", ErrProtocol, status, addr)
	}
}

// forwardBarrier runs a barrier on the leader at addr and returns the
// leader's applied index.
func (n *Node[R]) forwardBarrier(ctx context.Context, addr string) (uint64, error) {
	fctx, done := n.whileLeader(ctx, addr)
	status, idx, payload, err := n.fwd.call(fctx, addr, opBarrier, nil)
	done()
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("raftnode: read barrier via %s: %w", addr, err)
		}
		return 0, fmt.Errorf("%w: %w", errRetry, err) // reads are safe to retry
	}
	switch status {
	case statusOK:
		return idx, nil
	case statusNotLeader, statusUnknown:
		return 0, fmt.Errorf("%w: barrier on %s: %s", errRetry, addr, payload)
	case statusError:
		return 0, fmt.Errorf("%w: %s: %s", ErrRemote, addr, payload)
	default:
		return 0, fmt.Errorf("%w: status %d from %s", ErrProtocol, status, addr)
	}
}

// forwardClient keeps a small pool of idle forwarding connections per peer.
// Each idle connection is watched by a goroutine blocked in Read, so a
// connection the peer closed is noticed and never reused.
type forwardClient struct {
	tls *TLSConfig

	mu     sync.Mutex
	idle   map[string][]*idleConn
	closed bool
}

type idleConn struct {
	c    net.Conn
	done chan error // the watcher's Read result
}

func newForwardClient(c *TLSConfig) *forwardClient {
	return &forwardClient{tls: c, idle: make(map[string][]*idleConn)}
}

// past is a deadline that has already expired, used to wake blocked I/O.
var past = time.Unix(1, 0)

func (fc *forwardClient) get(ctx context.Context, addr string) (net.Conn, error) {
	for {
		fc.mu.Lock()
		if fc.closed {
			fc.mu.Unlock()
			return nil, fmt.Errorf("%w: %w", errNotSent, ErrClosed)
		}
		list := fc.idle[addr]
		if len(list) == 0 {
			fc.mu.Unlock()
			break
		}
		ic := list[len(list)-1]
		fc.idle[addr] = list[:len(list)-1]
		fc.mu.Unlock()
		// Stop the watcher; a timeout means the connection is still open
		// and nothing was received.
		_ = ic.c.SetReadDeadline(past)
		if err := <-ic.done; errors.Is(err, os.ErrDeadlineExceeded) {
			_ = ic.c.SetReadDeadline(time.Time{})
			return ic.c, nil
		}
		_ = ic.c.Close()
	}
	c, err := dialTLS(ctx, fc.tls, addr, muxForward)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNotSent, err)
	}
	return c, nil
}

func (fc *forwardClient) put(addr string, c net.Conn) {
	ic := &idleConn{c: c, done: make(chan error, 1)}
	fc.mu.Lock()
	if fc.closed || len(fc.idle[addr]) >= maxIdlePerPeer {
		fc.mu.Unlock()
		_ = c.Close()
		return
	}
	fc.idle[addr] = append(fc.idle[addr], ic)
	fc.mu.Unlock()
	go func() {
		var b [1]byte
		_, err := c.Read(b[:])
		if err == nil {
			err = fmt.Errorf("%w: unsolicited data", ErrProtocol)
		}
		ic.done <- err
	}()
}

func (fc *forwardClient) close() {
	fc.mu.Lock()
	fc.closed = true
	idle := fc.idle
	fc.idle = map[string][]*idleConn{}
	fc.mu.Unlock()
	for _, list := range idle {
		for _, ic := range list {
			_ = ic.c.Close()
		}
	}
}

// call performs one request/response exchange with the peer at addr.
// Failures before the request is completely sent wrap errNotSent.
func (fc *forwardClient) call(ctx context.Context, addr string, op byte, payload []byte) (status byte, index uint64, out []byte, err error) {
	c, err := fc.get(ctx, addr)
	if err != nil {
		return 0, 0, nil, err
	}
	reuse := false
	defer func() {
		if reuse {
			fc.put(addr, c)
		} else {
			_ = c.Close()
		}
	}()
	// Bound the exchange even without a context deadline, so a leader
	// that vanished without closing the connection cannot block forever;
	// the leader itself gives up after defaultForwardTimeout.
	var tmoMS uint32
	ioDeadline := time.Now().Add(defaultForwardTimeout + responseWriteTimeout)
	if dl, ok := ctx.Deadline(); ok {
		tmoMS = uint32(min(max(time.Until(dl).Milliseconds(), 1), int64(^uint32(0))))
		ioDeadline = dl
	}
	_ = c.SetDeadline(ioDeadline)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(past) })
	req := make([]byte, reqHeaderLen, reqHeaderLen+len(payload))
	req[0] = op
	binary.BigEndian.PutUint32(req[1:5], tmoMS)
	binary.BigEndian.PutUint32(req[5:9], uint32(len(payload)))
	req = append(req, payload...)
	if _, err := c.Write(req); err != nil {
		stop()
		return 0, 0, nil, fmt.Errorf("%w: write to %s: %w", errNotSent, addr, err)
	}
	var hdr [respHeaderLen]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		stop()
		return 0, 0, nil, fmt.Errorf("raftnode: read response from %s: %w", addr, err)
	}
	length := binary.BigEndian.Uint32(hdr[9:13])
	if length > maxResultSize {
		stop()
		return 0, 0, nil, fmt.Errorf("%w: response of %d bytes from %s", ErrProtocol, length, addr)
	}
	out = make([]byte, length)
	if _, err := io.ReadFull(c, out); err != nil {
		stop()
		return 0, 0, nil, fmt.Errorf("raftnode: read response from %s: %w", addr, err)
	}
	// Reuse the connection only if the context's deadline hook never ran.
	reuse = stop() && c.SetDeadline(time.Time{}) == nil
	return hdr[0], binary.BigEndian.Uint64(hdr[1:9]), out, nil
}

// parseLeaderHint splits a statusNotLeader payload (diagnostics only).
func parseLeaderHint(b []byte) (id, addr string) {
	id, addr, _ = strings.Cut(string(b), "\n")
	return id, addr
}

// NoticeLeader hands payload to the leader's Config.OnNotice: directly on
// the leader, over the forwarding connection from another node. It is a
// hint, not a command: nothing is replicated, and it is lost if no leader
// is known, forwarding is disabled, or the leader does not answer before
// ctx ends.
func (n *Node[R]) NoticeLeader(ctx context.Context, payload []byte) error {
	if len(payload) > n.cfg.MaxCommandSize {
		return fmt.Errorf("%w: notice of %d bytes", ErrCommandTooLarge, len(payload))
	}
	if n.IsLeader() {
		if n.cfg.OnNotice != nil {
			n.cfg.OnNotice(payload)
		}
		return nil
	}
	addr, id := n.raft.LeaderWithID()
	switch {
	case addr == "" || n.mux == nil:
		return ErrNoLeader
	case n.cfg.DisableForwarding:
		return ErrNotLeader{LeaderAddr: string(addr), LeaderID: string(id)}
	}
	status, _, out, err := n.fwd.call(ctx, string(addr), opNotice, payload)
	if err != nil {
		return fmt.Errorf("raftnode: notice to %s: %w", addr, err)
	}
	if status != statusOK {
		return fmt.Errorf("%w: notice to %s: status %d: %s", ErrRemote, addr, status, out)
	}
	return nil
}
