package eventlog

import (
	"encoding/binary"
	"errors"
)

// Key prefixes of the log inside the shared Pebble keyspace. Everything the
// log writes starts with Prefix.
var (
	// Prefix is the common prefix of every log key.
	Prefix = []byte("e/")

	prefixGlobal   = []byte("e/g/") // + be64(seq) -> record
	prefixRoomIdx  = []byte("e/i/") // + component(room) + be64(roomSeq) -> be64(seq)
	prefixRoomHead = []byte("e/h/") // + component(room) -> be64(last roomSeq)
	keyHead        = []byte("e/H")  // -> be64(last seq) || hash[32]
)

// PrefixEnd returns the smallest key greater than every key with prefix p,
// for use as an exclusive upper bound.
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// AppendKeyComponent appends s to dst in an order-preserving, prefix-free
// escaping: every 0x00 byte becomes 0x00 0xff, and the component ends with
// 0x00 0x01. Comparing two encoded components bytewise orders them as the
// raw strings, and no encoded component is a prefix of another, so variable
// length fields can be concatenated inside keys.
func AppendKeyComponent(dst []byte, s []byte) []byte {
	for _, c := range s {
		if c == 0 {
			dst = append(dst, 0, 0xff)
		} else {
			dst = append(dst, c)
		}
	}
	return append(dst, 0, 1)
}

// AppendKeyString is AppendKeyComponent for a string.
func AppendKeyString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 {
			dst = append(dst, 0, 0xff)
		} else {
			dst = append(dst, c)
		}
	}
	return append(dst, 0, 1)
}

// ErrBadKey reports a key that does not parse.
var ErrBadKey = errors.New("eventlog: malformed key")

// ReadKeyComponent decodes a component written by AppendKeyComponent from
// the front of b, returning it and the rest of b.
func ReadKeyComponent(b []byte) (comp, rest []byte, err error) {
	var out []byte
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			out = append(out, b[i])
			continue
		}
		if i+1 >= len(b) {
			return nil, nil, ErrBadKey
		}
		switch b[i+1] {
		case 0xff:
			out = append(out, 0)
			i++
		case 1:
			if out == nil {
				out = []byte{}
			}
			return out, b[i+2:], nil
		default:
			return nil, nil, ErrBadKey
		}
	}
	return nil, nil, ErrBadKey
}

// AppendUint64 appends v big-endian, so numeric order is key order.
func AppendUint64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }

func globalKey(seq uint64) []byte {
	return AppendUint64(append(make([]byte, 0, len(prefixGlobal)+8), prefixGlobal...), seq)
}

func roomIdxPrefix(room string) []byte {
	return AppendKeyString(append(make([]byte, 0, len(prefixRoomIdx)+len(room)+10), prefixRoomIdx...), room)
}

func roomIdxKey(room string, roomSeq uint64) []byte {
	return AppendUint64(roomIdxPrefix(room), roomSeq)
}

func roomHeadKey(room string) []byte {
	return AppendKeyString(append([]byte(nil), prefixRoomHead...), room)
}

// parseGlobalKey returns the sequence number of a global record key.
func parseGlobalKey(k []byte) (uint64, bool) {
	if len(k) != len(prefixGlobal)+8 || string(k[:len(prefixGlobal)]) != string(prefixGlobal) {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[len(prefixGlobal):]), true
}

// parseRoomIdxKey splits a room index key into room and room sequence.
func parseRoomIdxKey(k []byte) (string, uint64, bool) {
	if len(k) < len(prefixRoomIdx) || string(k[:len(prefixRoomIdx)]) != string(prefixRoomIdx) {
		return "", 0, false
	}
	room, rest, err := ReadKeyComponent(k[len(prefixRoomIdx):])
	if err != nil || len(rest) != 8 {
		return "", 0, false
	}
	return string(room), binary.BigEndian.Uint64(rest), true
}
