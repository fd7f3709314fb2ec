package transport

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// errAfter yields its data in small pieces, then err.
type errAfter struct {
	data []byte
	err  error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p[:min(len(p), 7)], e.data)
	e.data = e.data[n:]
	return n, nil
}

// readAll returns exactly the stream's bytes whatever the declared length
// claims, and its error if the stream fails.
func TestReadAllDeclaredLength(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 300) // 4,800 bytes
	boom := errors.New("boom")
	for _, tc := range []struct {
		name     string
		declared int64
		err      error
	}{
		{"unknown", -1, nil},
		{"exact", int64(len(body)), nil},
		{"claims less", 10, nil},
		{"claims zero", 0, nil},
		{"claims more", int64(len(body)) * 3, nil},
		{"claims huge", 1 << 40, nil},
		{"stream error", int64(len(body)), boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end := io.EOF
			if tc.err != nil {
				end = tc.err
			}
			got, err := readAll(&errAfter{data: bytes.Clone(body), err: end}, tc.declared)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("read %d bytes, want %d", len(got), len(body))
			}
			if cap(got) > maxPresize+len(body)*2+1 {
				t.Fatalf("buffer capacity %d for a %d-byte body", cap(got), len(body))
			}
		})
	}
}
