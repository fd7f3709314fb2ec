package fanout

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// retryClass says how a failed attempt is retried.
type retryClass int

const (
	// transient: exponential backoff with full jitter.
	transient retryClass = iota
	// capped: the follower refused in a way that will not change soon (or
	// the payload cannot be sent); retry at the cap.
	capped
)

// classify maps an attempt's outcome to its retry class
// (draft-ralston-mimi-protocol-02, Section 5.5; RFC 9110, Section 15).
func classifyStatus(status int) retryClass {
	switch {
	case status == http.StatusRequestTimeout, status == http.StatusTooEarly,
		status == http.StatusTooManyRequests, status >= 500:
		return transient
	}
	return capped
}

// backoff draws retry delays.
type backoff struct {
	base, cap time.Duration
	mu        sync.Mutex
	rnd       *rand.Rand
}

// uniform returns a uniformly distributed duration in [0, d).
func (b *backoff) uniform(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Duration(b.rnd.Int64N(int64(d)))
}

// delay returns the delay before the next attempt after the n-th
// consecutive failure (n >= 1): full jitter, uniform in
// [0, min(cap, base*2^(n-1))), for transient failures; uniform in
// [cap/2, cap) for capped ones.
func (b *backoff) delay(n int, c retryClass) time.Duration {
	if c == capped {
		half := b.cap / 2
		return half + b.uniform(b.cap-half)
	}
	ceil := b.cap
	if n < 1 {
		n = 1
	}
	if shift := n - 1; shift < 62 && b.base <= math.MaxInt64>>shift {
		ceil = min(b.base<<shift, b.cap)
	}
	return b.uniform(ceil)
}

// ParseRetryAfter parses a Retry-After header value (RFC 9110, Section
// 10.2.3: delta-seconds or an HTTP-date) into a delay from now, at most
// limit. A date in the past gives 0. ok is false for an absent or invalid
// value.
func ParseRetryAfter(v string, now time.Time, limit time.Duration) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		// delta-seconds = 1*DIGIT; anything too large for the limit is
		// the limit.
		secs := int64(0)
		for i := 0; i < len(v); i++ {
			secs = secs*10 + int64(v[i]-'0')
			if time.Duration(secs) > limit/time.Second {
				return limit, true
			}
		}
		return min(time.Duration(secs)*time.Second, limit), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d = t.Sub(now)
	if d < 0 {
		return 0, true
	}
	return min(d, limit), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
