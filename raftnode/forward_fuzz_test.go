package raftnode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// scriptedConn is a net.Conn that reads a fixed input and records what is
// written to it; deadlines are accepted and ignored.
type scriptedConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *scriptedConn) Read(b []byte) (int, error)       { return c.in.Read(b) }
func (c *scriptedConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *scriptedConn) Close() error                     { return nil }
func (c *scriptedConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptedConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptedConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptedConn) SetWriteDeadline(time.Time) error { return nil }

// forwardRequest frames a forwarding request.
func forwardRequest(op byte, timeoutMS uint32, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{op}, timeoutMS)
	return append(binary.BigEndian.AppendUint32(b, uint32(len(payload))), payload...)
}

// FuzzServeForward feeds a byte stream from a peer (the forwarding
// connection of another cluster node) to the leader's forwarding handler,
// here a standalone node. It must never panic, and must answer every
// complete request frame with exactly one well-formed response, in order,
// stopping after a request over MaxCommandSize (answered with an error).
func FuzzServeForward(f *testing.F) {
	const maxCmd = 1 << 10
	n, err := Open[int](Config{DataDir: filepath.Join(f.TempDir(), "n"), MaxCommandSize: maxCmd, Logger: nullLogger(),
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond}, &memSM{}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = n.Shutdown() })
	for deadline := time.Now().Add(10 * time.Second); !n.IsLeader(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.Fatal("no leader")
		}
	}
	apply := forwardRequest(opApply, 5000, []byte("cmd"))
	barrier := forwardRequest(opBarrier, 0, nil)
	f.Add(apply)
	f.Add(barrier)
	f.Add(append(append(append([]byte(nil), apply...), barrier...), apply[:len(apply)-1]...))
	f.Add(forwardRequest(9, 1, []byte{1}))
	f.Add(forwardRequest(opNotice, 0, []byte("poke\nb.example")))
	f.Add(forwardRequest(opApply, 1, make([]byte, maxCmd+1))[:reqHeaderLen])
	f.Fuzz(func(t *testing.T, in []byte) {
		// The frames a correct handler answers.
		var ops []byte
		for rest := in; len(rest) >= reqHeaderLen; {
			length := uint64(binary.BigEndian.Uint32(rest[5:9]))
			if length > maxCmd {
				ops = append(ops, 0)
				break
			}
			if uint64(len(rest)-reqHeaderLen) < length {
				break
			}
			ops = append(ops, rest[0])
			rest = rest[reqHeaderLen+length:]
		}
		c := &scriptedConn{in: bytes.NewReader(in)}
		n.serveForward(c)
		out := c.out.Bytes()
		for i, op := range ops {
			if len(out) < respHeaderLen {
				t.Fatalf("%d responses to %d requests", i, len(ops))
			}
			status, length := out[0], binary.BigEndian.Uint32(out[9:13])
			if uint64(len(out)-respHeaderLen) < uint64(length) {
				t.Fatalf("response %d: payload of %d bytes truncated", i, length)
			}
			payload := out[respHeaderLen : respHeaderLen+length]
			out = out[respHeaderLen+length:]
			switch {
			case status > statusUnknown:
				t.Fatalf("response %d: status %d", i, status)
			case op == opNotice && (status != statusOK || length != 0):
				t.Fatalf("response %d to a notice: status %d, %d bytes", i, status, length)
			case (op != opApply && op != opBarrier && op != opNotice) && status != statusError:
				t.Fatalf("response %d to op %d: status %d", i, op, status)
			case op == opApply && status == statusOK:
				if _, err := n.codec.DecodeResult(payload); err != nil {
					t.Fatalf("response %d: result %q: %v", i, payload, err)
				}
			}
		}
		if len(out) != 0 {
			t.Fatalf("%d bytes after %d responses", len(out), len(ops))
		}
	})
}

// FuzzForwardResponse feeds the leader's reply to a follower's forwarded
// command (its bytes, as another cluster node sent them) to forwardApply,
// with the provider's result codec. It must never panic; a result is
// returned only for a complete statusOK frame carrying a decodable result,
// and an incomplete reply is never reported as safe to retry (the leader
// may have applied the command).
func FuzzForwardResponse(f *testing.F) {
	codec := projections.ResultCodec{}
	frame := func(status byte, index uint64, payload []byte) []byte {
		b := binary.BigEndian.AppendUint64([]byte{status}, index)
		return append(binary.BigEndian.AppendUint32(b, uint32(len(payload))), payload...)
	}
	ev := eventlog.New("", 1, &eventlog.ClientRemoved{Client: "mimi://a.example/d/a1"})
	ev.Seq = 4
	for _, r := range []projections.Result{{}, {Events: []eventlog.Event{ev}}, {Err: projections.ErrNoSuchRoom}} {
		b, err := codec.EncodeResult(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame(statusOK, 4, b))
	}
	f.Add(frame(statusNotLeader, 0, []byte("n1\n127.0.0.1:7400")))
	f.Add(frame(statusError, 0, []byte("boom")))
	f.Add(frame(statusUnknown, 0, nil)[:respHeaderLen-1])
	f.Add(frame(7, 0, nil))
	cmd := []byte("command")
	f.Fuzz(func(t *testing.T, resp []byte) {
		c := &scriptedConn{in: bytes.NewReader(resp)}
		fc := newForwardClient(nil)
		defer fc.close()
		// An idle pooled connection whose watcher saw nothing.
		ic := &idleConn{c: c, done: make(chan error, 1)}
		ic.done <- os.ErrDeadlineExceeded
		fc.idle["leader"] = []*idleConn{ic}
		fs := &fsm[projections.Result]{}
		fs.applied.Store(math.MaxUint64) // every index is applied here
		n := &Node[projections.Result]{fwd: fc, codec: codec, fsm: fs, closed: make(chan struct{})}
		_, err := n.forwardApply(context.Background(), "leader", cmd)
		if req := c.out.Bytes(); !bytes.Equal(req, forwardRequest(opApply, 0, cmd)) {
			t.Fatalf("request %x", req)
		}
		complete := len(resp) >= respHeaderLen && uint64(len(resp)-respHeaderLen) >= uint64(binary.BigEndian.Uint32(resp[9:13]))
		if err == nil {
			length := binary.BigEndian.Uint32(resp[9:13])
			if !complete || resp[0] != statusOK || length > maxResultSize {
				t.Fatalf("result from reply %x", resp)
			}
			if _, err := codec.DecodeResult(resp[respHeaderLen : respHeaderLen+length]); err != nil {
				t.Fatalf("result from an undecodable payload: %v", err)
			}
			return
		}
		if errors.Is(err, errRetry) && (!complete || resp[0] != statusNotLeader) {
			t.Fatalf("reply %x taken as not applied: %v", resp, err)
		}
	})
}
