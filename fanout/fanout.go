package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/openmimi/mimi/projections"
)

// Store is the read side of the fanout queues
// (draft-ralston-mimi-protocol-02, Section 5.5), implemented by
// NewMachineStore over projections.Machine. Implementations must be safe
// for concurrent use.
type Store interface {
	// Destinations lists every destination provider that ever had
	// entries queued, with its cursor.
	Destinations() ([]projections.Destination, error)
	// Cursor returns a destination's cursor (zero if none).
	Cursor(dest string) (projections.Cursor, error)
	// Pending returns up to limit unacknowledged deliveries for dest,
	// oldest first (positions Acked+1, Acked+2, ...).
	Pending(dest string, limit int) ([]projections.Delivery, error)
	// Payload returns the bytes a delivery refers to.
	Payload(d projections.Delivery) (Payload, error)
}

// Payload is what a FanoutMessage carries for one delivery
// (draft-ralston-mimi-protocol-02, Section 5.5).
type Payload struct {
	// Message is the encoded MLSMessage: a PublicMessage (proposal or
	// commit), a PrivateMessage, or a Welcome.
	Message []byte
	// RatchetTree is the encoded ratchet tree (RFC 9420, Section
	// 12.4.3.3, optional<Node> ratchet_tree<V>) sent in the
	// RatchetTreeOption of a Welcome; nil for other messages.
	RatchetTree []byte
}

// Acker records that a destination acknowledged (HTTP 201) every queued
// delivery up to and including position upTo
// (draft-ralston-mimi-protocol-02, Section 5.5). In production it appends
// an eventlog.FanoutDelivered event through Raft (NewRaftAcker). An
// acknowledgement the cursor has already passed must be reported as
// success.
type Acker interface {
	Ack(ctx context.Context, dest string, upTo uint64) error
}

// SendResult is the outcome of one /notify POST
// (draft-ralston-mimi-protocol-02, Section 5.5).
type SendResult struct {
	// StatusCode is the HTTP status; only 201 means accepted.
	StatusCode int
	// RetryAfter is the raw Retry-After header, if any (RFC 9110,
	// Section 10.2.3).
	RetryAfter string
}

// Sender POSTs one /notify body for room to the destination provider
// (draft-ralston-mimi-protocol-02, Section 5.5: POST /notify/{roomId}). An
// error means no status was received (connection failure, timeout, ...);
// errors wrapping ErrPermanent mean the request cannot be sent at all.
// Implementations must be safe for concurrent use.
type Sender interface {
	Send(ctx context.Context, dest, room string, body []byte) (SendResult, error)
}

// Metrics receives the engine's measurements (the Prometheus wiring is
// elsewhere). Methods are called from worker goroutines and must be safe
// for concurrent use and quick.
type Metrics interface {
	// Delivered: one /notify body of messages (bodyBytes long) was
	// accepted with HTTP 201 and its round acknowledged
	// (draft-ralston-mimi-protocol-02, Section 5.5).
	Delivered(dest string, messages, bodyBytes int)
	// Retry: an attempt failed (status 0 if none was received; err is a
	// *StatusError for a status other than 201) and the next one is
	// delay away.
	Retry(dest string, status int, err error, delay time.Duration)
	// Backlog: the number of unacknowledged deliveries of dest.
	Backlog(dest string, backlog uint64)
}

// MetricsFuncs adapts optional callbacks to Metrics; nil fields are
// ignored.
type MetricsFuncs struct {
	OnDelivered func(dest string, messages, bodyBytes int)
	OnRetry     func(dest string, status int, err error, delay time.Duration)
	OnBacklog   func(dest string, backlog uint64)
}

// Delivered implements Metrics.
func (m MetricsFuncs) Delivered(dest string, messages, bodyBytes int) {
	if m.OnDelivered != nil {
		m.OnDelivered(dest, messages, bodyBytes)
	}
}

// Retry implements Metrics.
func (m MetricsFuncs) Retry(dest string, status int, err error, delay time.Duration) {
	if m.OnRetry != nil {
		m.OnRetry(dest, status, err, delay)
	}
}

// Backlog implements Metrics.
func (m MetricsFuncs) Backlog(dest string, backlog uint64) {
	if m.OnBacklog != nil {
		m.OnBacklog(dest, backlog)
	}
}

// Errors callers can branch on.
var (
	// ErrPermanent marks failures that will not go away by themselves: a
	// stored payload that cannot be encoded as a FanoutMessage, a room ID
	// that is not a room URI. The engine still retries them (at the
	// backoff cap, logging at error level) instead of skipping the
	// delivery (draft-ralston-mimi-protocol-02, Section 5.5: accepted
	// messages are eventually distributed).
	ErrPermanent = errors.New("fanout: permanent delivery failure")
	// ErrRunning: Run was called on an engine that is already running.
	ErrRunning = errors.New("fanout: engine already running")
	// ErrConfig: New was given an unusable configuration.
	ErrConfig = errors.New("fanout: invalid configuration")
)

// StatusError reports a /notify answered with a status other than 201
// (draft-ralston-mimi-protocol-02, Section 5.5).
type StatusError struct {
	Destination string
	Room        string
	StatusCode  int
	RetryAfter  string
}

// Error implements error.
func (e *StatusError) Error() string {
	s := fmt.Sprintf("fanout: /notify to %s for %s: status %d", e.Destination, e.Room, e.StatusCode)
	if ra := e.RetryAfter; ra != "" {
		if len(ra) > 64 { // the follower's header, of any length
			ra = ra[:64] + "..."
		}
		s += fmt.Sprintf(" (Retry-After %q)", ra)
	}
	return s
}

// DestinationStatus is the delivery state of one destination provider, for
// the admin API (draft-ralston-mimi-protocol-02, Section 5.5).
type DestinationStatus struct {
	Destination string
	// Acked and Enqueued are the replicated cursor: positions 1..Enqueued
	// were queued, 1..Acked acknowledged.
	Acked    uint64
	Enqueued uint64
	// Backlog is Enqueued - Acked.
	Backlog uint64
	// Active reports whether a worker is running for the destination.
	Active bool
	// Attempts is the number of consecutive failed attempts (0 when the
	// last attempt succeeded).
	Attempts int
	// TotalAttempts counts the POSTs this engine made to the destination.
	TotalAttempts uint64
	// Delivered counts the FanoutMessages this engine had acknowledged.
	Delivered uint64
	// LastStatus is the HTTP status of the last attempt (0 if none was
	// received); LastError describes the last failure ("" after a
	// success).
	LastStatus  int
	LastError   string
	LastAttempt time.Time
	LastSuccess time.Time
	// NextRetry is when the next attempt is due (zero unless waiting).
	NextRetry time.Time
	// InFlightFirst..InFlightLast is the range of the pinned round being
	// retried (zero if none).
	InFlightFirst, InFlightLast uint64
}
