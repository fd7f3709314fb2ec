package chaos

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
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
