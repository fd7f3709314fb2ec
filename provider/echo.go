package provider

import (
	"crypto/sha256"
	"sync"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// echoCache remembers, for a while, which local client sent a message we
// forwarded to a remote hub, so that when the hub fans the message back
// out to us (it goes to every provider with participants, since our other
// clients need it; draft-ralston-mimi-protocol-02, Section 5.5) it is not
// delivered to its own sender. It is in memory and bounded: after a
// restart an echo may reach its sender, which the draft says clients must
// be prepared for.
type echoCache struct {
	mu    sync.Mutex
	m     map[[32]byte]string
	order [][32]byte
}

const maxEchoes = 4096

func (e *echoCache) remember(client string, msgs ...[]byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[[32]byte]string{}
	}
	for _, b := range msgs {
		h := sha256.Sum256(b)
		if _, ok := e.m[h]; !ok {
			e.order = append(e.order, h)
		}
		e.m[h] = client
	}
	for len(e.order) > maxEchoes {
		delete(e.m, e.order[0])
		e.order = e.order[1:]
	}
}

// sender returns the local client that sent msg (an encoded MLSMessage),
// if remembered.
func (e *echoCache) sender(msg []byte) (string, [32]byte, bool) {
	h := sha256.Sum256(msg)
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.m[h]
	return c, h, ok
}

// fanoutMessageBytes returns the encoded MLSMessage of raw, the encoding
// of fm. Decoding is strict (minimal varints, no trailing data), so
// the bytes after the timestamp are the message's unique encoding unless a
// Welcome's RatchetTreeOption follows; that one is re-encoded.
func fanoutMessageBytes(fm *mimi.FanoutMessage, raw []byte) ([]byte, bool) {
	if fm.Message.WireFormat != wire.WireFormatWelcome && len(raw) >= 8 {
		return raw[8:], true
	}
	b, err := codec.Marshal(&fm.Message)
	return b, err == nil
}

func (e *echoCache) forget(hs [][32]byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, h := range hs {
		delete(e.m, h)
	}
}
