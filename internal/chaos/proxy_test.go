package chaos

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echoBackend answers every line with "<name> <line>", and closes the
// connection on "bye" (as a killed node's kernel does).
func echoBackend(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if sc.Text() == "bye" {
						return
					}
					if _, err := fmt.Fprintf(c, "%s %s\n", name, sc.Text()); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln
}

func roundTrip(t *testing.T, addr, line string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, line); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return strings.TrimSpace(got)
}

// TestProxy: the proxy splices connections to its backends round-robin,
// honours Prefer, fails over to a live backend when one refuses, and
// closes a proxied connection when its backend goes away.
func TestProxy(t *testing.T) {
	b0, b1 := echoBackend(t, "b0"), echoBackend(t, "b1")
	defer b1.Close()
	p, err := NewProxy("127.0.0.1:0", []Backend{{Addr: b0.Addr().String()}, {Addr: b1.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	seen := map[string]bool{}
	for i := range 4 {
		got := roundTrip(t, p.Addr(), fmt.Sprint("x", i))
		seen[strings.Fields(got)[0]] = true
	}
	if !seen["b0"] || !seen["b1"] {
		t.Fatalf("round robin reached %v", seen)
	}
	p.Prefer(0)
	for range 3 {
		if got := roundTrip(t, p.Addr(), "pinned"); got != "b0 pinned" {
			t.Fatalf("preferred backend not used: %q", got)
		}
	}
	p.Prefer(-1)

	// A held connection to b0 ends when b0's side closes.
	p.Prefer(0)
	held, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	fmt.Fprintln(held, "hello")
	r := bufio.NewReader(held)
	if got, err := r.ReadString('\n'); err != nil || strings.TrimSpace(got) != "b0 hello" {
		t.Fatalf("held connection: %q %v", got, err)
	}
	b0.Close() // no new connections to b0
	// b0 closes the held connection: the proxy must end the client side
	// too, though the client has not closed its own.
	fmt.Fprintln(held, "bye")
	_ = held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("held connection did not end with its backend: %q %v", rest, err)
	}

	// b0 refuses now: every connection fails over to b1, even preferred.
	for range 3 {
		if got := roundTrip(t, p.Addr(), "after"); got != "b1 after" {
			t.Fatalf("no failover: %q", got)
		}
	}
	if p.Failovers.Load() == 0 {
		t.Fatal("failovers not counted")
	}
	if p.Connections.Load() < 11 {
		t.Fatalf("connections counted: %d", p.Connections.Load())
	}
}

// expectSilence fails unless nothing arrives on c for d.
func expectSilence(t *testing.T, r *bufio.Reader, c net.Conn, d time.Duration, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	if got, err := r.ReadString('\n'); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: got %q %v, want nothing (a timeout)", what, got, err)
	}
}

// expectLine reads the next line from c.
func expectLine(t *testing.T, r *bufio.Reader, c net.Conn, want, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := r.ReadString('\n')
	if err != nil || strings.TrimSpace(got) != want {
		t.Fatalf("%s: got %q %v, want %q", what, got, err, want)
	}
}

// oneBackendProxy starts a proxy to addr, closed at the end of the test.
func oneBackendProxy(t *testing.T, addr string) *Proxy {
	t.Helper()
	p, err := NewProxy("127.0.0.1:0", []Backend{{Addr: addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// connectedThrough opens a connection through p to an echoBackend named
// "b" and checks one line goes through; the connection is closed at the
// end of the test.
func connectedThrough(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	held, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	r := bufio.NewReader(held)
	fmt.Fprintln(held, "before")
	expectLine(t, r, held, "b before", "before the cut")
	return held, r
}

// TestProxyRefused: a Refused cut resets the open connections and every
// new one; healed, the proxy forwards again.
func TestProxyRefused(t *testing.T) {
	b := echoBackend(t, "b")
	defer b.Close()
	p := oneBackendProxy(t, b.Addr().String())
	held, r := connectedThrough(t, p)

	p.SetCut(Refused)
	_ = held.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("open connection after the cut: %v, want a reset", err)
	}
	for range 2 {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			continue // refused outright is fine too
		}
		fmt.Fprintln(c, "during")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("new connection during the cut: %q %v, want it reset", got, err)
		}
	}
	if got := p.Resets.Load(); got != 3 {
		t.Fatalf("Resets = %d, want 3 (the open connection and two new ones)", got)
	}

	p.SetCut(Connected)
	if got := roundTrip(t, p.Addr(), "after"); got != "b after" {
		t.Fatalf("after healing: %q", got)
	}
	if b, err := json.Marshal([]Cut{Refused, BlackHoled}); err != nil || string(b) != `["refused","black-holed"]` {
		t.Fatalf("cuts in JSON: %s %v", b, err)
	}
}

// TestProxyBlackHoled: a BlackHoled cut holds what the open connections
// send, and new connections, without closing anything; healed, what was
// held arrives. A close is held too: the backend sees its peer go only
// after the cut heals.
func TestProxyBlackHoled(t *testing.T) {
	b := echoBackend(t, "b")
	defer b.Close()
	// closes reports when a connection to watcher ends.
	watcher, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	closes := make(chan struct{}, 1)
	go func() {
		c, err := watcher.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
		c.Close()
		closes <- struct{}{}
	}()
	p := oneBackendProxy(t, b.Addr().String())
	pw := oneBackendProxy(t, watcher.Addr().String())

	held, r := connectedThrough(t, p)
	leaving, err := net.Dial("tcp", pw.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(leaving, "hello")

	p.SetCut(BlackHoled)
	pw.SetCut(BlackHoled)
	fmt.Fprintln(held, "during")
	expectSilence(t, r, held, 300*time.Millisecond, "open connection during the cut")
	late, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	lr := bufio.NewReader(late)
	fmt.Fprintln(late, "new")
	expectSilence(t, lr, late, 300*time.Millisecond, "new connection during the cut")
	leaving.Close()
	select {
	case <-closes:
		t.Fatal("a close crossed the black hole")
	case <-time.After(300 * time.Millisecond):
	}
	if got := p.Stalls.Load(); got != 2 {
		t.Fatalf("Stalls = %d, want 2 (a transfer and a new connection)", got)
	}

	p.SetCut(Connected)
	pw.SetCut(Connected)
	expectLine(t, r, held, "b during", "open connection after healing")
	expectLine(t, lr, late, "b new", "new connection after healing")
	select {
	case <-closes:
	case <-time.After(5 * time.Second):
		t.Fatal("the held close never arrived")
	}
	if p.Resets.Load() != 0 {
		t.Fatalf("a black hole reset %d connections", p.Resets.Load())
	}

	// Closing a black-holed proxy releases what it holds.
	p.SetCut(BlackHoled)
	fmt.Fprintln(held, "stuck")
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a black hole")
	}
}

// recordingBackend is an echoBackend named "b" that also reports every
// line it processed on the returned channel.
func recordingBackend(t *testing.T) (net.Listener, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					got <- sc.Text()
					if _, err := fmt.Fprintf(c, "b %s\n", sc.Text()); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln, got
}

// expectProcessed waits for the backend to report line.
func expectProcessed(t *testing.T, got <-chan string, want string) {
	t.Helper()
	select {
	case line := <-got:
		if line != want {
			t.Fatalf("backend processed %q, want %q", line, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("backend never processed %q", want)
	}
}

// expectBroken fails unless reading c ends in an error or EOF.
func expectBroken(t *testing.T, r *bufio.Reader, c net.Conn, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: got %q %v, want the connection reset", what, got, err)
	}
}

// TestProxyAnswersBlackHoled: on a connection open when the cut begins,
// requests reach the backend, which processes them, and their answers are
// dropped; new connections are not affected; healing resets the
// connection that lost answers.
func TestProxyAnswersBlackHoled(t *testing.T) {
	b, got := recordingBackend(t)
	p := oneBackendProxy(t, b.Addr().String())
	held, r := connectedThrough(t, p)
	expectProcessed(t, got, "before")

	p.SetCut(AnswersBlackHoled)
	for _, line := range []string{"during", "again"} {
		fmt.Fprintln(held, line)
		expectProcessed(t, got, line)
		expectSilence(t, r, held, 300*time.Millisecond, "answer during the cut")
	}
	if got := roundTrip(t, p.Addr(), "new"); got != "b new" {
		t.Fatalf("new connection during the cut: %q", got)
	}
	expectProcessed(t, got, "new")
	if n := p.Lost.Load(); n != 1 {
		t.Fatalf("Lost = %d, want 1 (one connection)", n)
	}

	p.SetCut(Connected)
	expectBroken(t, r, held, "connection that lost answers, after healing")
	if got := roundTrip(t, p.Addr(), "after"); got != "b after" {
		t.Fatalf("after healing: %q", got)
	}
	if p.Resets.Load() != 0 || p.Stalls.Load() != 0 {
		t.Fatalf("Resets = %d, Stalls = %d, want 0 (no refusing or black-holing cut)", p.Resets.Load(), p.Stalls.Load())
	}
}

// TestProxyAnswersReset: on a connection open when the cut begins, the
// answers are dropped from the first one on, requests still reach the
// backend, and the connection is reset answerResetDelay later; new
// connections pass.
func TestProxyAnswersReset(t *testing.T) {
	b, got := recordingBackend(t)
	p := oneBackendProxy(t, b.Addr().String())
	held, r := connectedThrough(t, p)
	expectProcessed(t, got, "before")

	p.SetCut(AnswersReset)
	if got := roundTrip(t, p.Addr(), "new"); got != "b new" {
		t.Fatalf("new connection during the cut: %q", got)
	}
	expectProcessed(t, got, "new")
	fmt.Fprintln(held, "during")
	expectProcessed(t, got, "during")
	fmt.Fprintln(held, "more")
	expectProcessed(t, got, "more")
	expectBroken(t, r, held, "connection whose answer was lost")
	if n := p.Lost.Load(); n != 1 {
		t.Fatalf("Lost = %d, want 1", n)
	}
	p.SetCut(Connected)
	if got := roundTrip(t, p.Addr(), "after"); got != "b after" {
		t.Fatalf("after healing: %q", got)
	}
	if b, err := json.Marshal([]Cut{AnswersBlackHoled, AnswersReset}); err != nil || string(b) != `["answers-black-holed","answers-reset"]` {
		t.Fatalf("cuts in JSON: %s %v", b, err)
	}
}

// TestProxyCutFrom: a cut of one source acts on that source's
// connections alone, open and new, and takes precedence over the whole
// path's state; healing it leaves them to the whole path's cut.
func TestProxyCutFrom(t *testing.T) {
	b := echoBackend(t, "b")
	defer b.Close()
	p := oneBackendProxy(t, b.Addr().String())
	p.SetSources(func(c net.Conn) string { return c.RemoteAddr().(*net.TCPAddr).IP.String() })
	other := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: time.Second}
	dial := func(d *net.Dialer) (net.Conn, *bufio.Reader) {
		c, err := d.Dial("tcp", p.Addr())
		if err != nil {
			t.Skipf("cannot dial from 127.0.0.2: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	cut, cr := dial(&other)
	kept, kr := dial(&net.Dialer{Timeout: time.Second})
	for _, c := range []struct {
		conn net.Conn
		r    *bufio.Reader
	}{{cut, cr}, {kept, kr}} {
		fmt.Fprintln(c.conn, "before")
		expectLine(t, c.r, c.conn, "b before", "before the cut")
	}

	p.SetCutFrom("127.0.0.2", Refused)
	expectBroken(t, cr, cut, "connection of the cut source")
	fmt.Fprintln(kept, "during")
	expectLine(t, kr, kept, "b during", "connection of another source")
	late, lr := dial(&other)
	fmt.Fprintln(late, "late")
	expectBroken(t, lr, late, "new connection of the cut source")

	// The whole path black-holed: the source's cut still refuses.
	p.SetCut(BlackHoled)
	fmt.Fprintln(kept, "held")
	expectSilence(t, kr, kept, 300*time.Millisecond, "connection of another source, black-holed")
	late, lr = dial(&other)
	fmt.Fprintln(late, "late")
	expectBroken(t, lr, late, "new connection of the cut source, path black-holed")
	if n := p.Resets.Load(); n != 3 {
		t.Fatalf("Resets = %d, want 3", n)
	}

	p.SetCut(Connected)
	expectLine(t, kr, kept, "b held", "held line after healing")
	p.SetCutFrom("127.0.0.2", Connected)
	again, ar := dial(&other)
	fmt.Fprintln(again, "after")
	expectLine(t, ar, again, "b after", "cut source after healing")
}
