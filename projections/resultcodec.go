package projections

import (
	"errors"
	"fmt"

	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/mls/codec"
)

// ResultCodec encodes a Result for the trip from the Raft leader back to a
// follower that forwarded the command (it implements raftnode's
// ResultCodec[Result]). Events, claims and the rejection survive the trip:
// a decoded Err still matches its sentinel with errors.Is, and a
// *WrongEpochError or *RoomSeqError is rebuilt with its fields.
type ResultCodec struct{}

// resultSentinels lists the errors a Result may carry, in a fixed order:
// the index is the wire code, so only append to this list.
var resultSentinels = []error{
	ErrMalformedCommand, ErrInvalidEvent, ErrNoSuchRoom, ErrRoomExists, ErrRoomClosed,
	ErrWrongEpoch, ErrRoomSeqMismatch, ErrUnknownClient, ErrClientExists,
	ErrKeyPackageUnknown, ErrKeyPackageExists, ErrKeyPackageClaimed, ErrKeyPackageExpired,
	ErrNoKeyPackage, ErrDuplicateNotify, ErrStaleAck, ErrAckBeyondQueue,
	ErrStorage, ErrCorruptState, ErrClosed, ErrNotFound, ErrDuplicateMessage,
	ErrGroupBound, ErrDuplicateProposal, ErrReplayedCall, ErrHubKeyDeclared,
	ErrProposalsChanged,
}

// remoteError is a rejection decoded from the wire: its message as the
// leader wrote it, matching the sentinel it wrapped there.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

const (
	errNone uint8 = iota
	errSentinel
	errWrongEpoch
	errRoomSeq
	errOther
)

// EncodeResult implements raftnode.ResultCodec.
func (ResultCodec) EncodeResult(r Result) ([]byte, error) {
	w := codec.NewWriter()
	w.Bool(r.Duplicate)
	w.Vector(func(w *codec.Writer) {
		for i := range r.Events {
			ev := &r.Events[i]
			w.U64(ev.Seq)
			w.U64(ev.RoomSeq)
			b, err := eventlog.Encode(ev)
			if err != nil {
				w.Fail(err)
				return
			}
			w.Opaque(b)
		}
	})
	w.Vector(func(w *codec.Writer) {
		for i := range r.Claims {
			c := &r.Claims[i]
			w.Opaque([]byte(c.Client))
			w.Bool(c.Found)
			w.U64(c.Seq)
			if c.Found {
				c.KeyPackage.marshal(w)
			}
		}
	})
	encodeResultError(w, r.Err)
	return w.Bytes()
}

func encodeResultError(w *codec.Writer, err error) {
	if err == nil {
		w.U8(errNone)
		return
	}
	var we *WrongEpochError
	var se *RoomSeqError
	switch {
	case errors.As(err, &we):
		w.U8(errWrongEpoch)
		w.Opaque([]byte(we.Room))
		w.U64(we.Current)
		w.U64(we.Proposed)
	case errors.As(err, &se):
		w.U8(errRoomSeq)
		w.Opaque([]byte(se.Room))
		w.U64(se.Current)
		w.U64(se.Expected)
	default:
		for i, s := range resultSentinels {
			if errors.Is(err, s) {
				w.U8(errSentinel)
				w.U16(uint16(i))
				w.Opaque([]byte(err.Error()))
				return
			}
		}
		w.U8(errOther)
		w.Opaque([]byte(err.Error()))
	}
}

// DecodeResult implements raftnode.ResultCodec.
func (ResultCodec) DecodeResult(b []byte) (Result, error) {
	var res Result
	r := codec.NewReader(b)
	res.Duplicate = r.Bool("Result.duplicate")
	r.Vector("Result.events", func(r *codec.Reader) {
		seq, roomSeq := r.U64("Event.seq"), r.U64("Event.room_seq")
		raw := r.Opaque("Event")
		if r.Err() != nil {
			return
		}
		ev, err := eventlog.Decode(raw)
		if err != nil {
			r.Fail("Event", err)
			return
		}
		ev.Seq, ev.RoomSeq = seq, roomSeq
		res.Events = append(res.Events, ev)
	})
	r.Vector("Result.claims", func(r *codec.Reader) {
		var c ClaimResult
		c.Client = string(r.Opaque("ClaimResult.client"))
		c.Found = r.Bool("ClaimResult.found")
		c.Seq = r.U64("ClaimResult.seq")
		if c.Found {
			c.KeyPackage.unmarshal(r)
		}
		res.Claims = append(res.Claims, c)
	})
	switch kind := r.U8("Result.err"); kind {
	case errNone:
	case errWrongEpoch:
		e := &WrongEpochError{Room: string(r.Opaque("WrongEpochError.room"))}
		e.Current, e.Proposed = r.U64("WrongEpochError.current"), r.U64("WrongEpochError.proposed")
		res.Err = e
	case errRoomSeq:
		e := &RoomSeqError{Room: string(r.Opaque("RoomSeqError.room"))}
		e.Current, e.Expected = r.U64("RoomSeqError.current"), r.U64("RoomSeqError.expected")
		res.Err = e
	case errSentinel:
		i := r.U16("Result.err.code")
		msg := string(r.Opaque("Result.err.message"))
		if r.Err() == nil && int(i) >= len(resultSentinels) {
			r.Fail("Result.err.code", codec.ErrInvalidValue)
		}
		if r.Err() == nil {
			res.Err = &remoteError{sentinel: resultSentinels[i], msg: msg}
		}
	case errOther:
		res.Err = errors.New(string(r.Opaque("Result.err.message")))
	default:
		r.Fail("Result.err", codec.ErrInvalidValue)
	}
	if err := r.Done("Result"); err != nil {
		return Result{}, fmt.Errorf("projections: decoding a forwarded result: %w", err)
	}
	return res, nil
}
