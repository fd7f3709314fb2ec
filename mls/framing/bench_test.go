package framing

import (
	"fmt"
	"testing"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/wire"
)

// BenchmarkPrivateMessage measures one 1 KiB application message through
// Sign + ProtectPrivate on the sender and UnprotectPrivate (decryption and
// signature verification) on a receiver with its own secret tree.
func BenchmarkPrivateMessage(b *testing.B) {
	for _, id := range []cipher.SuiteID{cipher.X25519_AES128GCM_SHA256_Ed25519, cipher.P256_AES128GCM_SHA256_P256} {
		for _, n := range []uint32{2, 10000} {
			b.Run(fmt.Sprintf("suite%d/leaves%d", id, n), func(b *testing.B) {
				g := newTestGroup(b, id, n)
				send, recv := g.epoch(), g.epoch()
				c := g.content(wire.ContentApplication, n-1)
				c.ApplicationData = make([]byte, 1024)
				b.ReportAllocs()
				b.SetBytes(1024)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					ac, err := Sign(g.s, wire.WireFormatPrivateMessage, c, g.ctx, g.sigPriv)
					if err != nil {
						b.Fatal(err)
					}
					m, err := ProtectPrivate(send, ac, nil)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := UnprotectPrivate(recv, m); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
