package fanout_test

import (
	"bytes"
	"testing"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/fanout"
	"github.com/openmimi/mimi/projections"
)

// BenchmarkEncodeFanoutMessage compares the general encoding of one
// FanoutMessage of a 1 KiB PrivateMessage (decode the stored MLSMessage,
// encode the FanoutMessage; draft-ralston-mimi-protocol-02, Section 5.5)
// with AppendMessage's fast path into a reused body.
func BenchmarkEncodeFanoutMessage(b *testing.B) {
	d := projections.Delivery{N: 1, Part: eventlog.PartMessage, Timestamp: 1700000000000}
	p := fanout.Payload{Message: privMsg(b, string(bytes.Repeat([]byte("x"), 1024)))}
	b.Run("EncodeMessage", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fanout.EncodeMessage(d, p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("AppendMessage", func(b *testing.B) {
		b.ReportAllocs()
		body := make([]byte, 0, 4096)
		for b.Loop() {
			var err error
			if body, err = fanout.AppendMessage(body[:0], d, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
