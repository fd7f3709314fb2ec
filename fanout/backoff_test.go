package fanout

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

func TestBackoffFullJitterBounds(t *testing.T) {
	const base, cap = 10 * time.Millisecond, 300 * time.Millisecond
	b := &backoff{base: base, cap: cap, rnd: rand.New(rand.NewPCG(1, 2))}
	for n := 1; n <= 80; n++ {
		ceil := cap
		if n <= 6 {
			ceil = min(cap, base<<(n-1))
		}
		var maxSeen time.Duration
		for range 200 {
			d := b.delay(n, transient)
			if d < 0 || d >= ceil {
				t.Fatalf("attempt %d: delay %v outside [0, %v)", n, d, ceil)
			}
			maxSeen = max(maxSeen, d)
		}
		// Full jitter spreads over the whole window.
		if maxSeen < ceil/2 {
			t.Fatalf("attempt %d: max delay %v of 200 draws, window %v", n, maxSeen, ceil)
		}
	}
	// Capped retries stay in [cap/2, cap).
	for range 500 {
		if d := b.delay(1, capped); d < cap/2 || d >= cap {
			t.Fatalf("capped delay %v outside [%v, %v)", d, cap/2, cap)
		}
	}
	// Huge bases and attempt counts do not overflow.
	big := &backoff{base: time.Duration(1 << 61), cap: time.Duration(1<<62 + 5), rnd: rand.New(rand.NewPCG(3, 4))}
	for _, n := range []int{0, 1, 2, 3, 63, 64, 1000} {
		if d := big.delay(n, transient); d < 0 || d >= big.cap {
			t.Fatalf("attempt %d: delay %v", n, d)
		}
	}
}

func TestBackoffSeededIsDeterministic(t *testing.T) {
	draw := func() []time.Duration {
		b := &backoff{base: time.Millisecond, cap: time.Second, rnd: rand.New(rand.NewPCG(7, 7))}
		var out []time.Duration
		for n := 1; n < 20; n++ {
			out = append(out, b.delay(n, transient), b.delay(n, capped))
		}
		return out
	}
	a, b := draw(), draw()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("draw %d: %v != %v", i, a[i], b[i])
		}
	}
}

func TestClassifyStatus(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   retryClass
	}{
		{http.StatusRequestTimeout, transient},
		{http.StatusTooEarly, transient},
		{http.StatusTooManyRequests, transient},
		{http.StatusInternalServerError, transient},
		{http.StatusBadGateway, transient},
		{http.StatusServiceUnavailable, transient},
		{599, transient},
		{http.StatusBadRequest, capped},
		{http.StatusUnauthorized, capped},
		{http.StatusForbidden, capped},
		{http.StatusNotFound, capped},
		{http.StatusConflict, capped},
		{http.StatusRequestEntityTooLarge, capped},
		{http.StatusOK, capped},
		{http.StatusAccepted, capped},
		{http.StatusFound, capped},
	} {
		if got := classifyStatus(tc.status); got != tc.want {
			t.Errorf("status %d: class %d, want %d", tc.status, got, tc.want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const limit = time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"   ", 0, false},
		{"0", 0, true},
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"3600", time.Hour, true},
		{"3601", time.Hour, true},
		{"99999999999999999999999999", time.Hour, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"Sat, 01 Mar 2025 12:00:05 GMT", 5 * time.Second, true}, // IMF-fixdate
		{"Saturday, 01-Mar-25 12:01:00 GMT", time.Minute, true},  // RFC 850
		{"Sat Mar  1 12:00:30 2025", 30 * time.Second, true},     // asctime
		{"Sat, 01 Mar 2025 11:00:00 GMT", 0, true},               // past
		{"Sun, 02 Mar 2025 12:00:00 GMT", time.Hour, true},       // beyond limit
		{"Sat, 01 Mar 2025 12:00:05 GMT trailing", 0, false},
	} {
		got, ok := ParseRetryAfter(tc.in, now, limit)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "120", "Sat, 01 Mar 2025 12:00:05 GMT", "x", "999999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now, time.Hour)
		if d < 0 || d > time.Hour || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", s, d, ok)
		}
	})
}
