package mimi

import (
	"fmt"

	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// FanoutMessage (draft-ralston-mimi-protocol-02, Section 5.5): the hub's
// acceptance time and an MLSMessage (PrivateMessage, PublicMessage or
// Welcome); a Welcome is followed by a RatchetTreeOption.
type FanoutMessage struct {
	Timestamp         uint64 // milliseconds since the Unix epoch
	Message           wire.MLSMessage
	RatchetTreeOption *RatchetTreeOption // Welcome only
}

// MarshalMLS implements codec.Marshaler.
func (m *FanoutMessage) MarshalMLS(w *codec.Writer) {
	w.U64(m.Timestamp)
	m.Message.MarshalMLS(w)
	if m.Message.WireFormat == wire.WireFormatWelcome {
		if m.RatchetTreeOption == nil {
			w.Fail(fmt.Errorf("mimi: FanoutMessage Welcome without RatchetTreeOption"))
			return
		}
		m.RatchetTreeOption.MarshalMLS(w)
	}
}

// UnmarshalMLS implements codec.Unmarshaler. Only PrivateMessage,
// PublicMessage and Welcome may be fanned out.
func (m *FanoutMessage) UnmarshalMLS(r *codec.Reader) {
	*m = FanoutMessage{}
	m.Timestamp = r.U64("FanoutMessage.timestamp")
	m.Message.UnmarshalMLS(r)
	if r.Err() != nil {
		return
	}
	switch m.Message.WireFormat {
	case wire.WireFormatWelcome:
		m.RatchetTreeOption = new(RatchetTreeOption)
		m.RatchetTreeOption.UnmarshalMLS(r)
	case wire.WireFormatPrivateMessage, wire.WireFormatPublicMessage:
	default:
		r.Fail("FanoutMessage.message.wire_format", fmt.Errorf("%w: %d cannot be fanned out", codec.ErrInvalidValue, m.Message.WireFormat))
	}
}

// MaxFanoutBatch bounds how many FanoutMessages one /notify body may hold.
const MaxFanoutBatch = 4096

// MarshalFanout concatenates FanoutMessages into one /notify body
// (draft-ralston-mimi-protocol-02, Section 5.5).
func MarshalFanout(msgs []FanoutMessage) ([]byte, error) {
	w := codec.NewWriter()
	for i := range msgs {
		msgs[i].MarshalMLS(w)
	}
	return w.Bytes()
}

// UnmarshalFanout decodes a /notify body of one or more concatenated
// FanoutMessages. An empty body is an error.
func UnmarshalFanout(b []byte) ([]FanoutMessage, error) {
	msgs, _, err := SplitFanout(b)
	return msgs, err
}

// SplitFanout decodes a /notify body like UnmarshalFanout and also returns
// the bytes of each FanoutMessage (subslices of b), which identify a
// message across bodies however the hub batches it
// (draft-ralston-mimi-protocol-02, Section 5.5).
func SplitFanout(b []byte) ([]FanoutMessage, [][]byte, error) {
	r := codec.NewReader(b)
	var out []FanoutMessage
	var raw [][]byte
	for !r.Empty() {
		if len(out) == MaxFanoutBatch {
			r.Fail("FanoutMessage", fmt.Errorf("%w: more than %d messages", codec.ErrInvalidValue, MaxFanoutBatch))
			break
		}
		start := r.Offset()
		var m FanoutMessage
		m.UnmarshalMLS(r)
		out = append(out, m)
		raw = append(raw, b[start:r.Offset():r.Offset()])
	}
	if err := r.Err(); err != nil {
		return nil, nil, err
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("mimi: empty /notify body: %w", codec.ErrTruncated)
	}
	return out, raw, nil
}
