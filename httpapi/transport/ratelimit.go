package transport

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Default per-peer request rate limit applied by Authenticate when
// ServerConfig.RateLimit is the zero value. A hostile or broken peer
// provider (authenticated per draft-ralston-mimi-protocol-02, Section 4.1)
// is held to a sustained DefaultRatePerSecond requests per second with
// bursts of DefaultRateBurst. The values sit well above what one provider
// sustains from one peer on a two-core machine (about 2,000
// /submitMessage per second, docs/benchmarks.md), so that only a flood
// is refused; deployments size them to their hardware.
const (
	DefaultRatePerSecond float64 = 5000
	DefaultRateBurst     int     = 5000
)

// maxTrackedPeers bounds the number of per-peer buckets kept; past it, the
// buckets of peers that are back to a full bucket are dropped (dropping a
// full bucket loses nothing).
const maxTrackedPeers = 10000

// ErrRateLimited: the authenticated peer provider exceeded its request
// rate (429 Too Many Requests, RFC 6585, Section 4). It is passed to
// ServerConfig.OnRefuse, wrapped with detail.
var ErrRateLimited = errors.New("transport: peer rate limit exceeded")

// RateLimit configures the per-peer token bucket of Authenticate: each
// authenticated source provider domain (draft-ralston-mimi-protocol-02,
// Section 4.1) has a bucket of Burst tokens refilled at PerSecond tokens per
// second; a request takes one token, and a request finding the bucket empty
// is refused with 429 Too Many Requests and a Retry-After header
// (RFC 6585, Section 4; RFC 9110, Section 10.2.3) before its body is read.
// The zero value means DefaultRatePerSecond and DefaultRateBurst.
type RateLimit struct {
	// Disabled turns rate limiting off.
	Disabled bool
	// PerSecond is the sustained rate in requests per second; 0 means
	// DefaultRatePerSecond. Must not be negative.
	PerSecond float64
	// Burst is the bucket size; 0 means DefaultRateBurst (or, when
	// PerSecond is set, max(1, ceil(PerSecond))). Must not be negative.
	Burst int
	// Now, if non-nil, replaces time.Now (for tests).
	Now func() time.Time
}

// rateLimiter holds the per-peer token buckets. It is safe for concurrent
// use.
type rateLimiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// newRateLimiter validates cfg; it returns nil when limiting is disabled.
func newRateLimiter(cfg RateLimit) (*rateLimiter, error) {
	if cfg.Disabled {
		return nil, nil
	}
	if cfg.PerSecond < 0 || math.IsNaN(cfg.PerSecond) || math.IsInf(cfg.PerSecond, 0) {
		return nil, fmt.Errorf("transport: rate limit: bad PerSecond %v", cfg.PerSecond)
	}
	if cfg.Burst < 0 {
		return nil, fmt.Errorf("transport: rate limit: negative Burst %d", cfg.Burst)
	}
	rate, burst := cfg.PerSecond, cfg.Burst
	if rate == 0 {
		rate = DefaultRatePerSecond
		if burst == 0 {
			burst = DefaultRateBurst
		}
	}
	if burst == 0 {
		burst = max(1, int(math.Ceil(rate)))
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &rateLimiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}, nil
}

// allow takes one token from peer's bucket. If the bucket is empty it
// returns false and how long until a token is available.
func (l *rateLimiter) allow(peer string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[peer]
	if !ok {
		if len(l.buckets) >= maxTrackedPeers {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[peer] = b
	} else {
		l.refill(b, now)
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

func (l *rateLimiter) refill(b *bucket, now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el.Seconds()*l.rate)
		b.last = now
	}
}

// prune drops the buckets that have refilled completely.
func (l *rateLimiter) prune(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// retryAfter is the Retry-After value in whole seconds, at least 1
// (RFC 9110, Section 10.2.3, delay-seconds).
func retryAfter(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// limit applies the rate limit for source; if the request is refused it
// has written 429 and returns false.
func (s *Server) limit(w http.ResponseWriter, r *http.Request, source string) bool {
	if s.limiter == nil {
		return true
	}
	ok, wait := s.limiter.allow(source)
	if ok {
		return true
	}
	w.Header().Set("Retry-After", retryAfter(wait))
	s.refuse(w, r, http.StatusTooManyRequests,
		fmt.Errorf("%w: %s, retry in %v", ErrRateLimited, source, wait), "too many requests")
	return false
}
