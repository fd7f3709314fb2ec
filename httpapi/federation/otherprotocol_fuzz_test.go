package federation

import (
	"bytes"
	"testing"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
)

// FuzzOtherProtocol: a peer's KeyMaterialRequest body for another protocol
// (draft-ralston-mimi-protocol-02, Section 5.2) is examined without
// panicking, and is recognized only with a protocol other than reserved
// and mls10 and a well-formed protocol-independent part naming the target
// of the path.
func FuzzOtherProtocol(f *testing.F) {
	const target = "mimi://b.example/u/bob"
	req := &mimi.KeyMaterialRequest{Protocol: mimi.ProtocolMLS10, RequestingUser: "mimi://a.example/u/alice", TargetUser: target,
		RoomID: "mimi://a.example/r/clubhouse", AcceptableCiphersuites: []cipher.SuiteID{1}}
	b, err := mimi.Encode(req)
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range []byte{0, 1, 2, 255} {
		o := append([]byte{p}, b[1:]...)
		f.Add(o)
		f.Add(o[:len(o)/2])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !otherProtocol(body, target) {
			return
		}
		if p := mimi.Protocol(body[0]); p == mimi.ProtocolReserved || p == mimi.ProtocolMLS10 {
			t.Fatalf("protocol %d taken for another", p)
		}
		if !bytes.Contains(body[1:], append([]byte{byte(len(target))}, target...)) {
			t.Fatalf("body %x without the target user accepted", body)
		}
	})
}
