package daemon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openmimi/mimi/eventlog"
)

// The first start declares the hub key in the log; a restart with the
// same key is ready again without a second declaration; a restart with
// another key stays unready and says why.
func TestHubKeyDeclaredOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFabric(t, ctx, "a.example")
	defer f.closeAll()
	n := f.nodes["a.example"]
	declared := func() int {
		t.Helper()
		evs, err := n.d.Machine().Events(1, 0)
		if err != nil {
			t.Fatal(err)
		}
		c := 0
		for _, ev := range evs {
			if ev.Type() == eventlog.TypeHubKeyDeclared {
				c++
			}
		}
		return c
	}
	suite, key, found, err := n.d.Machine().HubKey()
	if err != nil || !found || suite != uint16(n.d.hubKey.suite) || !bytes.Equal(key, n.d.hubKey.pub) {
		t.Fatalf("declared key: %d %x %v %v, want the node's", suite, key, found, err)
	}
	if c := declared(); c != 1 {
		t.Fatalf("%d HubKeyDeclared events, want 1", c)
	}

	restart := func() {
		t.Helper()
		if err := n.d.Close(); err != nil {
			t.Fatal(err)
		}
		f.start("a.example", nil, nil)
	}
	restart()
	if err := n.d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if c := declared(); c != 1 {
		t.Fatalf("after a restart: %d HubKeyDeclared events, want 1", c)
	}

	// Another key: a new one is generated when the file is missing.
	if err := n.d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(n.dir, HubKeyFile)); err != nil {
		t.Fatal(err)
	}
	f.start("a.example", nil, nil)
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	defer wcancel()
	if err := n.d.WaitReady(wctx); err == nil {
		t.Fatal("ready with another hub key")
	}
	if ok, reason := n.d.Ready(); ok || !strings.Contains(reason, "hub key mismatch") {
		t.Fatalf("Ready = %v, %q", ok, reason)
	}
	if c := declared(); c != 1 {
		t.Fatalf("with another key: %d HubKeyDeclared events, want 1", c)
	}
}
