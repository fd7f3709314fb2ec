package fanout_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/fanout"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// privMsg is an MLSMessage holding a PrivateMessage whose ciphertext is
// id, so a received FanoutMessage can be traced back.
func privMsg(t testing.TB, id string) []byte {
	t.Helper()
	b, err := codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPrivateMessage, PrivateMessage: &wire.PrivateMessage{
		GroupID: []byte("group"), Epoch: 1, ContentType: wire.ContentApplication,
		EncryptedSenderData: []byte("sender-data"), Ciphertext: []byte(id),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// welcomeMsg is an MLSMessage holding a Welcome whose encrypted GroupInfo
// is id.
func welcomeMsg(t testing.TB, id string) []byte {
	t.Helper()
	b, err := codec.Marshal(&wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatWelcome, Welcome: &wire.Welcome{
		CipherSuite: 1,
		Secrets: []wire.EncryptedGroupSecrets{{NewMember: []byte("kp-ref"),
			EncryptedGroupSecrets: wire.HPKECiphertext{KEMOutput: []byte("kem"), Ciphertext: []byte("ct")}}},
		EncryptedGroupInfo: []byte(id),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// treeBytes is an encoded ratchet tree (structurally meaningless, which
// the fanout does not care about).
func treeBytes(t testing.TB, tag string) []byte {
	t.Helper()
	tree := wire.RatchetTree{&wire.Node{Parent: &wire.ParentNode{EncryptionKey: []byte(tag), ParentHash: []byte{}}}, nil,
		&wire.Node{Parent: &wire.ParentNode{EncryptionKey: []byte(tag + "-2"), ParentHash: []byte{1}, UnmergedLeaves: []uint32{0}}}}
	b, err := codec.Marshal(&tree)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// msgID returns the id a privMsg or welcomeMsg was built with, "W:" marking
// Welcomes.
func msgID(m *mimi.FanoutMessage) string {
	switch m.Message.WireFormat {
	case wire.WireFormatPrivateMessage:
		return string(m.Message.PrivateMessage.Ciphertext)
	case wire.WireFormatWelcome:
		return "W:" + string(m.Message.Welcome.EncryptedGroupInfo)
	}
	return fmt.Sprintf("?wire_format=%d", m.Message.WireFormat)
}

// memStore is an in-memory Store and Acker with the queue semantics of
// projections (entries Acked+1..Enqueued).
type memStore struct {
	mu       sync.Mutex
	queues   map[string]*memQueue
	payloads map[uint64]fanout.Payload // by source seq*2+part
	nextSeq  uint64
	// ackHook, if set, runs before an acknowledgement and may fail it.
	ackHook func(ctx context.Context, dest string, upTo uint64) error
	acks    []string
}

type memQueue struct {
	cur   projections.Cursor
	items []projections.Delivery // position n at index n-1
}

func newMemStore() *memStore {
	return &memStore{queues: map[string]*memQueue{}, payloads: map[uint64]fanout.Payload{}}
}

func payloadKey(seq uint64, part eventlog.Part) uint64 { return seq*2 + uint64(part) }

// add stores a source event's payload and queues it for dests; it returns
// the source seq.
func (s *memStore) add(room string, ts uint64, part eventlog.Part, p fanout.Payload, dests ...string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextSeq++
	seq := s.nextSeq
	s.payloads[payloadKey(seq, part)] = p
	for _, d := range dests {
		q := s.queues[d]
		if q == nil {
			q = &memQueue{}
			s.queues[d] = q
		}
		q.cur.Enqueued++
		q.items = append(q.items, projections.Delivery{N: q.cur.Enqueued, SourceSeq: seq, Part: part, Room: room, EnqueueSeq: seq, Timestamp: ts})
	}
	return seq
}

// addMsg queues a PrivateMessage with the given id.
func (s *memStore) addMsg(t testing.TB, room, id string, dests ...string) {
	s.add(room, 1000+uint64(len(id)), eventlog.PartMessage, fanout.Payload{Message: privMsg(t, id)}, dests...)
}

func (s *memStore) Destinations() ([]projections.Destination, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []projections.Destination
	for d, q := range s.queues {
		out = append(out, projections.Destination{Destination: d, Cursor: q.cur})
	}
	slices.SortFunc(out, func(a, b projections.Destination) int { return cmpStr(a.Destination, b.Destination) })
	return out, nil
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *memStore) Cursor(dest string) (projections.Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queues[dest]; q != nil {
		return q.cur, nil
	}
	return projections.Cursor{}, nil
}

func (s *memStore) Pending(dest string, limit int) ([]projections.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[dest]
	if q == nil {
		return nil, nil
	}
	out := slices.Clone(q.items[q.cur.Acked:])
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *memStore) Payload(d projections.Delivery) (fanout.Payload, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.payloads[payloadKey(d.SourceSeq, d.Part)]
	if !ok {
		return fanout.Payload{}, fmt.Errorf("no payload for %d/%d", d.SourceSeq, d.Part)
	}
	return p, nil
}

func (s *memStore) Ack(ctx context.Context, dest string, upTo uint64) error {
	s.mu.Lock()
	hook := s.ackHook
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, dest, upTo); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[dest]
	if q == nil || upTo > q.cur.Enqueued {
		return fmt.Errorf("ack %s %d beyond queue", dest, upTo)
	}
	if upTo > q.cur.Acked {
		q.cur.Acked = upTo
	}
	s.acks = append(s.acks, fmt.Sprintf("%s:%d", dest, upTo))
	return nil
}

func (s *memStore) setAckHook(h func(ctx context.Context, dest string, upTo uint64) error) {
	s.mu.Lock()
	s.ackHook = h
	s.mu.Unlock()
}

func (s *memStore) cursor(dest string) projections.Cursor {
	c, _ := s.Cursor(dest)
	return c
}

// request is one /notify POST seen by a fakeNet.
type request struct {
	at   time.Time
	dest string
	room string
	body []byte
}

// fakeNet is a Sender in front of fake followers that deduplicate
// byte-identical bodies as Section 5.5 requires.
type fakeNet struct {
	mu                    sync.Mutex
	reqs                  []request
	seen                  map[string]map[[32]byte]bool
	accepted              map[string][][]byte // first receipts, in order
	inflight, maxInflight int
	// respond decides each answer; nil means 201. process reports whether
	// the follower processed the body (it may, and then lose the answer).
	respond func(ctx context.Context, call int, r request) (res fanout.SendResult, err error, process bool)
}

func newFakeNet() *fakeNet {
	return &fakeNet{seen: map[string]map[[32]byte]bool{}, accepted: map[string][][]byte{}}
}

func (n *fakeNet) setRespond(f func(ctx context.Context, call int, r request) (fanout.SendResult, error, bool)) {
	n.mu.Lock()
	n.respond = f
	n.mu.Unlock()
}

func (n *fakeNet) Send(ctx context.Context, dest, room string, body []byte) (fanout.SendResult, error) {
	r := request{at: time.Now(), dest: dest, room: room, body: bytes.Clone(body)}
	n.mu.Lock()
	n.reqs = append(n.reqs, r)
	call := len(n.reqs)
	n.inflight++
	n.maxInflight = max(n.maxInflight, n.inflight)
	respond := n.respond
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.inflight--
		n.mu.Unlock()
	}()
	res, err, process := fanout.SendResult{StatusCode: 201}, error(nil), true
	if respond != nil {
		res, err, process = respond(ctx, call, r)
	}
	if process {
		n.mu.Lock()
		h := sha256.Sum256(body)
		if n.seen[dest] == nil {
			n.seen[dest] = map[[32]byte]bool{}
		}
		if !n.seen[dest][h] {
			n.seen[dest][h] = true
			n.accepted[dest] = append(n.accepted[dest], r.body)
		}
		n.mu.Unlock()
	}
	return res, err
}

func (n *fakeNet) requests() []request {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.reqs)
}

// received decodes the bodies dest processed, in order, into message ids.
func (n *fakeNet) received(t testing.TB, dest string) []string {
	t.Helper()
	n.mu.Lock()
	bodies := slices.Clone(n.accepted[dest])
	n.mu.Unlock()
	return decodeIDs(t, bodies...)
}

func decodeIDs(t testing.TB, bodies ...[]byte) []string {
	t.Helper()
	var out []string
	for _, b := range bodies {
		msgs, err := mimi.UnmarshalFanout(b)
		if err != nil {
			t.Fatalf("follower cannot decode body: %v", err)
		}
		for i := range msgs {
			out = append(out, msgID(&msgs[i]))
		}
	}
	return out
}

func ok201() (fanout.SendResult, error, bool) { return fanout.SendResult{StatusCode: 201}, nil, true }

// quietLogger discards logs; errorCounter counts error records.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

type countingHandler struct {
	slog.Handler
	mu     *sync.Mutex
	errors *int
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.mu.Lock()
		*h.errors++
		h.mu.Unlock()
	}
	return nil
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

// testConfig is a fast engine configuration over s and n.
func testConfig(s *memStore, n *fakeNet, leader func() bool) fanout.Config {
	return fanout.Config{
		Store:        s,
		Acker:        s,
		Sender:       n,
		IsLeader:     leader,
		BackoffBase:  2 * time.Millisecond,
		BackoffCap:   20 * time.Millisecond,
		ScanInterval: 20 * time.Millisecond,
		SendTimeout:  2 * time.Second,
		Logger:       quietLogger(),
	}
}

func always() bool { return true }

// runEngine starts e.Run and returns a stop function that cancels it and
// waits for it to return.
func runEngine(t testing.TB, e *fanout.Engine) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ids(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}
