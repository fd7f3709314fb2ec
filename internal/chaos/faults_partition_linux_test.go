package chaos

import (
	"net"
	"os"
	"testing"
)

// TestSocketOwner: the dialler of a loopback connection is named by its
// process ID, and nothing is named when no listed process holds it.
func TestSocketOwner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if got := socketOwner(in, map[int]string{os.Getpid(): "me"}); got != "me" {
		t.Fatalf("socketOwner = %q, want me", got)
	}
	if got := socketOwner(in, map[int]string{}); got != "" {
		t.Fatalf("socketOwner with no candidates = %q", got)
	}
}
