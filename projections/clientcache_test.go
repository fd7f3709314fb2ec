package projections_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// Client reads through a cache of client records; every change of a
// record, by Apply or ApplyBatch, shows in the next read.
func TestClientCacheFollowsChanges(t *testing.T) {
	h := newHarness(t)
	const c = "mimi://a.example/d/alice1"
	register := func(key string) projections.Op {
		return ev("", 1, &eventlog.ClientRegistered{User: "mimi://a.example/u/alice", Client: c, SignatureKey: []byte(key)})
	}
	key := func() string {
		t.Helper()
		rec, err := h.m.Client(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(rec.SignatureKey)
	}
	if _, err := h.m.Client(c); !errors.Is(err, projections.ErrUnknownClient) {
		t.Fatalf("before registration: %v", err)
	}
	h.ok(nil, register("k1"))
	if got := key(); got != "k1" {
		t.Fatalf("key %q, want k1", got)
	}
	if got := key(); got != "k1" { // from the cache
		t.Fatalf("cached key %q, want k1", got)
	}
	// A re-registration replaces the key (Apply).
	h.ok(nil, register("k2"))
	if got := key(); got != "k2" {
		t.Fatalf("after re-registration: key %q, want k2", got)
	}
	// The same through ApplyBatch, with a refused command after it in
	// the same batch.
	h.idx++
	ok := encodeCmd(t, &projections.Command{Ops: []projections.Op{register("k3")}})
	h.idx++
	bad := encodeCmd(t, &projections.Command{Conditions: conds(projections.ClientNotRegistered(c)), Ops: []projections.Op{register("k4")}})
	res := h.m.ApplyBatch([]projections.Entry{{Index: h.idx - 1, Cmd: ok}, {Index: h.idx, Cmd: bad}})
	if res[0].Err != nil || res[1].Err == nil {
		t.Fatalf("batch results: %v, %v", res[0].Err, res[1].Err)
	}
	if got := key(); got != "k3" {
		t.Fatalf("after ApplyBatch: key %q, want k3", got)
	}
	// Removal.
	h.ok(nil, ev("", 2, &eventlog.ClientRemoved{Client: c}))
	if _, err := h.m.Client(c); !errors.Is(err, projections.ErrUnknownClient) {
		t.Fatalf("after removal: %v", err)
	}
	// A caller changing the record it got does not change the next read.
	h.ok(nil, register("k5"))
	rec, err := h.m.Client(c)
	if err != nil {
		t.Fatal(err)
	}
	copy(rec.SignatureKey, "xx")
	if again, _ := h.m.Client(c); !bytes.Equal(again.SignatureKey, []byte("k5")) {
		t.Fatalf("cached record changed by a caller: %q", again.SignatureKey)
	}
}
