package clientapi

import (
	"errors"
	"testing"
)

// TestReplayCache: a digest is refused while remembered, forgotten once
// its expiry passed, and a cache full of live entries refuses new ones
// instead of evicting (which would re-open a replay).
func TestReplayCache(t *testing.T) {
	c := newReplayCache(2)
	steps := []struct {
		key     string
		expiry  uint64
		now     uint64
		want    error
		wantLen int
	}{
		{"a", 100, 0, nil, 1},
		{"a", 100, 50, ErrReplay, 1},
		{"b", 150, 60, nil, 2},
		{"c", 200, 70, ErrReplayCacheFull, 2},
		{"b", 150, 99, ErrReplay, 2},
		{"c", 200, 100, nil, 2}, // a expired at 100
		{"a", 300, 101, ErrReplayCacheFull, 2},
		{"a", 300, 150, nil, 2}, // b expired; a was forgotten (the skew window refuses its old timestamp anyway)
	}
	for i, s := range steps {
		err := c.add([]byte(s.key), s.expiry, s.now)
		if !errors.Is(err, s.want) || (s.want == nil && err != nil) {
			t.Fatalf("step %d (%s at %d): %v, want %v", i, s.key, s.now, err, s.want)
		}
		if c.len() != s.wantLen {
			t.Fatalf("step %d: %d entries, want %d", i, c.len(), s.wantLen)
		}
	}
}
