package client_test

import (
	"testing"

	"github.com/openmimi/mimi/client"
)

func BenchmarkLoad(b *testing.B) {
	w := threeUsers(b)
	st, err := w.clients["ClientB1"].Save()
	if err != nil {
		b.Fatal(err)
	}
	p := w.net.provider("b.example")
	b.ResetTimer()
	for b.Loop() {
		if _, err := client.Load(st, p, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSendSync measures one application message from Alice's client
// to Bob's, through the fake hub: encrypt, submit, fan out, pull, decrypt,
// acknowledge.
func BenchmarkSendSync(b *testing.B) {
	w := threeUsers(b)
	a1, b1 := w.clients["ClientA1"], w.clients["ClientB1"]
	msg := []byte("hello, clubhouse")
	b.ResetTimer()
	for b.Loop() {
		if _, err := a1.Send(w.ctx, clubhouse, msg); err != nil {
			b.Fatal(err)
		}
		evs, err := b1.Sync(w.ctx)
		if err != nil || len(evs) != 1 {
			b.Fatalf("%v %+v", err, evs)
		}
	}
}

// BenchmarkCommit measures an empty commit (fresh UpdatePath) by Alice
// and its processing by Bob's first client, in a room of four clients.
func BenchmarkCommit(b *testing.B) {
	w := threeUsers(b)
	a1, b1 := w.clients["ClientA1"], w.clients["ClientB1"]
	b.ResetTimer()
	for b.Loop() {
		if err := a1.Commit(w.ctx, clubhouse); err != nil {
			b.Fatal(err)
		}
		if _, err := b1.Sync(w.ctx); err != nil {
			b.Fatal(err)
		}
	}
}
