package codec

import (
	"bytes"
	"errors"
	"testing"
)

func TestVarintRFCExamples(t *testing.T) {
	// RFC 9420, Section 2.1.2 examples.
	tests := []struct {
		enc []byte
		v   uint64
	}{
		{[]byte{0x9d, 0x7f, 0x3e, 0x7d}, 494878333},
		{[]byte{0x7b, 0xbd}, 15293},
		{[]byte{0x25}, 37},
		{[]byte{0x00}, 0},
		{[]byte{0x3f}, 63},
		{[]byte{0x40, 0x40}, 64},
		{[]byte{0x7f, 0xff}, 16383},
		{[]byte{0x80, 0x00, 0x40, 0x00}, 16384},
		{[]byte{0xbf, 0xff, 0xff, 0xff}, MaxVarint},
	}
	for _, tc := range tests {
		r := NewReader(tc.enc)
		if v := r.Varint("v"); v != tc.v || r.Done("v") != nil {
			t.Errorf("decode %x = %d (%v), want %d", tc.enc, v, r.Err(), tc.v)
		}
		w := NewWriter()
		w.Varint(tc.v)
		if b, _ := w.Bytes(); !bytes.Equal(b, tc.enc) {
			t.Errorf("encode %d = %x, want %x", tc.v, b, tc.enc)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		read  func(r *Reader)
		want  error
		field string
	}{
		{"non-minimal 2-byte", []byte{0x40, 0x25}, func(r *Reader) { r.Varint("len") }, ErrNonMinimalVarint, "len"},
		{"non-minimal 4-byte", []byte{0x80, 0x00, 0x3f, 0xff}, func(r *Reader) { r.Varint("len") }, ErrNonMinimalVarint, "len"},
		{"prefix 11", []byte{0xc0, 0, 0, 0, 0, 0, 0, 1}, func(r *Reader) { r.Varint("len") }, ErrInvalidVarintPrefix, "len"},
		{"truncated varint", []byte{0x80, 0x01}, func(r *Reader) { r.Varint("len") }, ErrTruncated, "len"},
		{"empty varint", nil, func(r *Reader) { r.Varint("len") }, ErrTruncated, "len"},
		{"opaque past input", []byte{0x05, 1, 2}, func(r *Reader) { r.Opaque("data") }, ErrTruncated, "data"},
		{"u32 truncated", []byte{1, 2, 3}, func(r *Reader) { r.U32("n") }, ErrTruncated, "n"},
		{"trailing", []byte{0x01, 0xaa, 0xbb}, func(r *Reader) { r.Opaque("data"); r.Done("Thing") }, ErrTrailingData, "Thing"},
		{"optional 2", []byte{0x02}, func(r *Reader) { r.Optional("opt", func(r *Reader) {}) }, ErrInvalidOptional, "opt"},
		{"bool 2", []byte{0x02}, func(r *Reader) { r.Bool("flag") }, ErrInvalidValue, "flag"},
		{"element overruns vector", []byte{0x03, 0x00, 0x01, 0x00, 0xff}, func(r *Reader) {
			r.Vector("list", func(r *Reader) { r.U16("elem") })
		}, ErrTruncated, "elem"},
		{"vector length past input", []byte{0x04, 0x00, 0x01}, func(r *Reader) {
			r.Vector("list", func(r *Reader) { r.U16("elem") })
		}, ErrTruncated, "list"},
		{"element consumes nothing", []byte{0x01, 0x00}, func(r *Reader) {
			r.Vector("list", func(r *Reader) {})
		}, ErrInvalidValue, "list"},
	}
	for _, tc := range tests {
		r := NewReader(tc.in)
		tc.read(r)
		err := r.Err()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			continue
		}
		var de *DecodeError
		if !errors.As(err, &de) || de.Field != tc.field {
			t.Errorf("%s: error %v does not name field %q", tc.name, err, tc.field)
		}
	}
}

func TestStickyError(t *testing.T) {
	r := NewReader([]byte{0xc0})
	r.Varint("first")
	if v := r.U8("second"); v != 0 {
		t.Fatal("read after error returned data")
	}
	var de *DecodeError
	if !errors.As(r.Err(), &de) || de.Field != "first" {
		t.Fatalf("first error not kept: %v", r.Err())
	}
}

func TestNestedVectorOffsets(t *testing.T) {
	// The offset in an error inside a nested vector is relative to the
	// outermost input.
	in := []byte{0xaa, 0x02, 0x05, 0x01}
	r := NewReader(in)
	r.U8("pad")
	r.Vector("outer", func(r *Reader) { r.Opaque("inner") })
	var de *DecodeError
	if !errors.As(r.Err(), &de) || de.Offset != 3 {
		t.Fatalf("err %v", r.Err())
	}
	// After a vector (nested or not), reading resumes behind it and
	// offsets are again those of the outer input.
	in = []byte{0xaa, 0x04, 0x01, 0x07, 0x01, 0x08, 0x01}
	r = NewReader(in)
	r.U8("pad")
	var got []byte
	r.Vector("outer", func(r *Reader) { r.Vector("inner", func(r *Reader) { got = append(got, r.U8("e")) }) })
	if r.Err() != nil || !bytes.Equal(got, []byte{7, 8}) || r.Offset() != 6 || r.Len() != 1 {
		t.Fatalf("after vector: %v %x offset %d len %d", r.Err(), got, r.Offset(), r.Len())
	}
	r.U16("tail")
	if !errors.As(r.Err(), &de) || de.Field != "tail" || de.Offset != 6 {
		t.Fatalf("err after vector %v", r.Err())
	}
}

func TestWriterVectorAndOptional(t *testing.T) {
	w := NewWriter()
	w.Vector(func(w *Writer) {
		for i := 0; i < 100; i++ {
			w.U8(byte(i))
		}
	})
	w.Optional(true, func(w *Writer) { w.U16(0x0102) })
	w.Optional(false, nil)
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[:2], []byte{0x40, 100}) || b[2] != 0 || b[101] != 99 {
		t.Fatalf("vector header wrong: %x", b[:4])
	}
	if !bytes.Equal(b[102:], []byte{1, 1, 2, 0}) {
		t.Fatalf("optional encoding wrong: %x", b[102:])
	}
	r := NewReader(b)
	n := 0
	r.Vector("v", func(r *Reader) { r.U8("e"); n++ })
	var got uint16
	if !r.Optional("o", func(r *Reader) { got = r.U16("x") }) || got != 0x0102 {
		t.Fatal("optional present")
	}
	if r.Optional("o2", func(r *Reader) { t.Fatal("absent optional read") }) {
		t.Fatal("optional absent")
	}
	if err := r.Done("all"); err != nil || n != 100 {
		t.Fatalf("%v %d", err, n)
	}
}

func TestWriterTooLarge(t *testing.T) {
	w := NewWriter()
	w.Varint(MaxVarint + 1)
	if _, err := w.Bytes(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v", err)
	}
}

func TestOpaqueCopies(t *testing.T) {
	in := []byte{0x02, 'h', 'i'}
	r := NewReader(in)
	b := r.Opaque("o")
	in[1] = 'X'
	if string(b) != "hi" {
		t.Fatal("Opaque aliases its input")
	}
	r = NewReader([]byte{0x00})
	if b := r.Opaque("o"); b == nil || len(b) != 0 || r.Err() != nil {
		t.Fatal("empty opaque should be non-nil and empty")
	}
}

// marshalFunc adapts a function to Marshaler.
type marshalFunc func(w *Writer)

func (f marshalFunc) MarshalMLS(w *Writer) { f(w) }

func TestMarshalOwnsResult(t *testing.T) {
	enc := func(s string) Marshaler { return marshalFunc(func(w *Writer) { w.OpaqueString(s) }) }
	a, err := Marshal(enc("first"))
	if err != nil {
		t.Fatal(err)
	}
	// Later encodings reuse pooled buffers: they must not show through a.
	for i := 0; i < 10; i++ {
		if _, err := Marshal(enc("XXXXXXXXXXXXXXXX")); err != nil {
			t.Fatal(err)
		}
	}
	if string(a) != "\x05first" {
		t.Fatalf("Marshal = %q", a)
	}
	if b, err := Marshal(marshalFunc(func(*Writer) {})); b != nil || err != nil {
		t.Fatalf("empty encoding = %v, %v", b, err)
	}
	tooLarge := marshalFunc(func(w *Writer) { w.Varint(MaxVarint + 1) })
	if b, err := Marshal(tooLarge); b != nil || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("failed encoding = %v, %v", b, err)
	}
	// The failed Writer went back to the pool clean.
	if b, err := Marshal(enc("ok")); err != nil || string(b) != "\x02ok" {
		t.Fatalf("after failure: %q, %v", b, err)
	}
}

func TestAppendMarshal(t *testing.T) {
	m := marshalFunc(func(w *Writer) { w.U8(7); w.Opaque([]byte("ab")) })
	dst := make([]byte, 2, 16)
	dst[0], dst[1] = 'h', 'i'
	out, err := AppendMarshal(dst, m)
	if err != nil || string(out) != "hi\x07\x02ab" || &out[0] != &dst[0] {
		t.Fatalf("AppendMarshal = %q, %v (in place %v)", out, err, &out[0] == &dst[0])
	}
	want, _ := Marshal(m)
	if out, _ := AppendMarshal(nil, m); !bytes.Equal(out, want) {
		t.Fatalf("AppendMarshal(nil) = %x, Marshal = %x", out, want)
	}
	bad := marshalFunc(func(w *Writer) { w.U8(1); w.Varint(MaxVarint + 1) })
	if out, err := AppendMarshal(dst, bad); !errors.Is(err, ErrTooLarge) || string(out) != "hi" {
		t.Fatalf("failed AppendMarshal = %q, %v", out, err)
	}
}

func TestOpaqueString(t *testing.T) {
	for _, s := range []string{"", "room", string(bytes.Repeat([]byte{'x'}, 100))} {
		w1, w2 := NewWriter(), NewWriter()
		w1.Opaque([]byte(s))
		w2.OpaqueString(s)
		b1, _ := w1.Bytes()
		b2, _ := w2.Bytes()
		if !bytes.Equal(b1, b2) {
			t.Fatalf("OpaqueString(%q) = %x, Opaque = %x", s, b2, b1)
		}
		r := NewReader(b2)
		if got := r.OpaqueString("s"); got != s || r.Done("s") != nil {
			t.Fatalf("read %q, %v", got, r.Err())
		}
	}
	r := NewReader([]byte{0x05, 'a'})
	if got := r.OpaqueString("s"); got != "" || !errors.Is(r.Err(), ErrTruncated) {
		t.Fatalf("truncated: %q, %v", got, r.Err())
	}
}

func FuzzVarint(f *testing.F) {
	for _, s := range [][]byte{{0x25}, {0x7b, 0xbd}, {0x9d, 0x7f, 0x3e, 0x7d}, {0x40, 0x01}, {0xc0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(b)
		v := r.Varint("v")
		if r.Err() != nil {
			return
		}
		enc, ok := AppendVarint(nil, v)
		if !ok || !bytes.Equal(enc, b[:len(enc)]) {
			t.Fatalf("decoded %d from %x, which re-encodes as %x", v, b, enc)
		}
	})
}

// benchMsg is shaped like an accepted application message: an epoch, a
// 1 KiB ciphertext and a sender URI, inside a vector.
type benchMsg struct {
	epoch  uint64
	msg    []byte
	sender []byte
}

func (m *benchMsg) MarshalMLS(w *Writer) {
	w.U16(1)
	w.Vector(func(w *Writer) {
		w.U64(m.epoch)
		w.Opaque(m.msg)
		w.Opaque(m.sender)
	})
}

func (m *benchMsg) UnmarshalMLS(r *Reader) {
	r.U16("version")
	r.Vector("body", func(r *Reader) {
		m.epoch = r.U64("epoch")
		m.msg = r.Opaque("msg")
		m.sender = r.Opaque("sender")
	})
}

func newBenchMsg() *benchMsg {
	return &benchMsg{epoch: 3, msg: bytes.Repeat([]byte{0xa5}, 1024), sender: []byte("mimi://c.example/u/sender/d/1")}
}

func BenchmarkMarshal(b *testing.B) {
	m := newBenchMsg()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	enc := MustMarshal(newBenchMsg())
	b.ReportAllocs()
	for b.Loop() {
		var m benchMsg
		if err := Unmarshal(enc, "m", &m); err != nil {
			b.Fatal(err)
		}
	}
}
