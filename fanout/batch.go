package fanout

import (
	"fmt"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/projections"
)

// Default limits of one round (draft-ralston-mimi-protocol-02, Section
// 5.5): DefaultMaxBatchMessages deliveries in all, DefaultMaxBatchBytes
// per /notify body, which stays well below the 4 MiB request body limit of
// httpapi/transport servers; a single message larger than the byte limit
// is still sent, alone in its body.
const (
	DefaultMaxBatchMessages = 64
	DefaultMaxBatchBytes    = 1 << 20
)

// Limits bounds one round (draft-ralston-mimi-protocol-02, Section 5.5):
// MaxMessages the deliveries of the round, MaxBytes each /notify body.
// Zero fields take the defaults; MaxMessages is at most
// mimi.MaxFanoutBatch, the most a follower decodes from one body.
type Limits struct {
	MaxMessages int
	MaxBytes    int
}

func (l Limits) messages() int {
	switch {
	case l.MaxMessages <= 0:
		return DefaultMaxBatchMessages
	case l.MaxMessages > mimi.MaxFanoutBatch:
		return mimi.MaxFanoutBatch
	}
	return l.MaxMessages
}

func (l Limits) bytes() int {
	if l.MaxBytes <= 0 {
		return DefaultMaxBatchBytes
	}
	return l.MaxBytes
}

// Batch is one /notify request (draft-ralston-mimi-protocol-02, Section
// 5.5): the deliveries of one room in a round, in queue order, encoded as
// concatenated FanoutMessages in Body. First and Last are the queue
// positions of its first and last delivery.
type Batch struct {
	Destination string
	Room        string
	First, Last uint64
	Deliveries  []projections.Delivery
	Body        []byte
}

// Count returns the number of FanoutMessages in the batch.
func (b *Batch) Count() int { return len(b.Deliveries) }

// Round is what the fanout sends a destination at once: its oldest
// pending deliveries, queue positions First..Last, as one Batch per room
// (a /notify body carries the messages of one room, Section 5.5), in the
// order of each room's first delivery. The bodies go out together and the
// round is acknowledged as a whole, once every body was answered 201: the
// order within a room is the queue's, and rooms do not wait for each
// other.
type Round struct {
	Destination string
	First, Last uint64
	Batches     []*Batch
}

// Count returns the number of deliveries in the round.
func (r *Round) Count() int {
	n := 0
	for _, b := range r.Batches {
		n += b.Count()
	}
	return n
}

// BuildRound builds the next round for dest from the oldest pending
// deliveries of s (draft-ralston-mimi-protocol-02, Section 5.5): up to
// lim.MaxMessages of them, ending early before a delivery that would take
// its room's body past lim.MaxBytes (a single delivery larger than that is
// still sent, alone in its body) and before one whose payload cannot be
// read or encoded (which fails only when it heads the round: it is never
// skipped). It returns nil if nothing is pending.
//
// The bodies depend only on the queue positions the round covers and
// their payloads, so building the same pending range twice gives the same
// bytes (a follower recognises a re-sent body as a byte-exact duplicate).
func BuildRound(s Store, dest string, lim Limits) (*Round, error) {
	pend, err := s.Pending(dest, lim.messages())
	if err != nil {
		return nil, fmt.Errorf("fanout: pending deliveries for %s: %w", dest, err)
	}
	return buildRound(s, dest, pend, lim)
}

// buildRound builds the round starting at pend[0].
func buildRound(s Store, dest string, pend []projections.Delivery, lim Limits) (*Round, error) {
	if len(pend) == 0 {
		return nil, nil
	}
	maxMsgs, maxBytes := lim.messages(), lim.bytes()
	r := &Round{Destination: dest, First: pend[0].N}
	byRoom := map[string]*Batch{}
	for i, d := range pend {
		if i == maxMsgs {
			break
		}
		if i > 0 && d.N != r.Last+1 {
			return nil, fmt.Errorf("%w: queue of %s jumps from position %d to %d", ErrPermanent, dest, r.Last, d.N)
		}
		p, err := s.Payload(d)
		if err != nil {
			if i > 0 {
				break // the deliveries before it go out; it heads the next round
			}
			return nil, fmt.Errorf("fanout: payload of delivery %d to %s (event %d): %w", d.N, dest, d.SourceSeq, err)
		}
		b := byRoom[d.Room]
		if b != nil && len(b.Body)+8+len(p.Message) > maxBytes {
			// The encoding is at least the timestamp and the message.
			break
		}
		if b == nil {
			b = &Batch{Destination: dest, Room: d.Room, First: d.N,
				Body: make([]byte, 0, min(maxBytes, max(len(pend)-i, 1)*(8+len(p.Message))))}
		}
		n := len(b.Body)
		b.Body, err = AppendMessage(b.Body, d, p)
		if err != nil {
			if i > 0 {
				break // as above
			}
			return nil, fmt.Errorf("fanout: delivery %d to %s (event %d): %w", d.N, dest, d.SourceSeq, err)
		}
		if b.Count() > 0 && len(b.Body) > maxBytes {
			b.Body = b.Body[:n]
			break
		}
		if b.Count() == 0 {
			byRoom[d.Room] = b
			r.Batches = append(r.Batches, b)
		}
		b.Deliveries = append(b.Deliveries, d)
		b.Last = d.N
		r.Last = d.N
	}
	return r, nil
}

// AppendMessage appends the FanoutMessage of one delivery
// (draft-ralston-mimi-protocol-02, Section 5.5) to dst, with the bytes
// EncodeMessage returns. The common case, a stored PrivateMessage, takes
// mimi.AppendFanoutPrivateMessage's fast path (the timestamp, then the
// stored MLSMessage as it is, which is its canonical encoding); anything
// else is decoded and encoded again by EncodeMessage. On error dst is
// returned unchanged.
func AppendMessage(dst []byte, d projections.Delivery, p Payload) ([]byte, error) {
	if d.Part == eventlog.PartMessage {
		if out, ok := mimi.AppendFanoutPrivateMessage(dst, d.Timestamp, p.Message); ok {
			return out, nil
		}
	}
	enc, err := EncodeMessage(d, p)
	if err != nil {
		return dst, err
	}
	return append(dst, enc...), nil
}

// EncodeMessage encodes the FanoutMessage of one delivery
// (draft-ralston-mimi-protocol-02, Section 5.5): the source event's hub
// acceptance timestamp and its MLSMessage, followed for a Welcome by a
// RatchetTreeOption carrying the full ratchet tree. PartMessage must be a
// PublicMessage or PrivateMessage, PartWelcome a Welcome with a ratchet
// tree; anything else fails with ErrPermanent.
func EncodeMessage(d projections.Delivery, p Payload) ([]byte, error) {
	var msg wire.MLSMessage
	if err := codec.Unmarshal(p.Message, "MLSMessage", &msg); err != nil {
		return nil, fmt.Errorf("%w: stored message does not decode: %w", ErrPermanent, err)
	}
	fm := mimi.FanoutMessage{Timestamp: d.Timestamp, Message: msg}
	switch d.Part {
	case eventlog.PartMessage:
		if msg.WireFormat != wire.WireFormatPublicMessage && msg.WireFormat != wire.WireFormatPrivateMessage {
			return nil, fmt.Errorf("%w: message part has wire format %d, want a PublicMessage or PrivateMessage", ErrPermanent, msg.WireFormat)
		}
	case eventlog.PartWelcome:
		if msg.WireFormat != wire.WireFormatWelcome {
			return nil, fmt.Errorf("%w: Welcome part has wire format %d", ErrPermanent, msg.WireFormat)
		}
		if len(p.RatchetTree) == 0 {
			return nil, fmt.Errorf("%w: Welcome without a ratchet tree", ErrPermanent)
		}
		var tree wire.RatchetTree
		if err := codec.Unmarshal(p.RatchetTree, "ratchet_tree", &tree); err != nil {
			return nil, fmt.Errorf("%w: stored ratchet tree does not decode: %w", ErrPermanent, err)
		}
		fm.RatchetTreeOption = &mimi.RatchetTreeOption{Representation: mimi.RatchetTreeFull, Tree: tree}
	default:
		return nil, fmt.Errorf("%w: unknown part %d", ErrPermanent, d.Part)
	}
	b, err := mimi.MarshalFanout([]mimi.FanoutMessage{fm})
	if err != nil {
		return nil, fmt.Errorf("%w: encode FanoutMessage: %w", ErrPermanent, err)
	}
	return b, nil
}
