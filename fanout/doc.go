// Package fanout is the hub's delivery engine for /notify
// (draft-ralston-mimi-protocol-02, Section 5.5 "Fanout Messages and Room
// Events"): it takes the per-destination fanout queues kept by package
// projections (filled by FanoutEnqueued events) and delivers every queued
// MLS message to its destination provider, in queue order, acknowledging
// progress with a FanoutDelivered event replicated through Raft.
//
// # Boundaries
//
// The engine talks to the rest of the hub through three interfaces so that
// tests can fake them:
//
//   - Store, the read side (projections.Machine via NewMachineStore):
//     destinations, cursors, pending deliveries and their payloads;
//   - Acker, which records "destination D acknowledged up to position N"
//     (raftnode + projections via NewRaftAcker);
//   - Sender, which POSTs a /notify body for a room to a destination
//     (httpapi/transport via NewTransportSender).
//
// # Delivery
//
// Each destination with pending deliveries gets its own goroutine (a
// worker), started by Kick, KickAll or the periodic scan. At most
// Config.MaxConcurrent workers build, send and acknowledge at the same time;
// a worker waiting out a backoff holds no slot.
//
// A worker reads the oldest pending deliveries and sends them strictly in
// queue order. Consecutive deliveries for the same room are batched into
// one /notify body of concatenated FanoutMessages (Section 5.5: "The hub can
// include multiple concatenated FanoutMessage objects relevant to the same
// room"), capped by Config.Limits (messages and bytes per body); a room
// change starts a new body. Each FanoutMessage carries the hub acceptance
// timestamp of its source event, and a Welcome carries the RatchetTreeOption
// (representation "full") with the ratchet tree of the epoch the commit
// created (the CommitAccepted event's RatchetTree).
//
// A worker has at most one request in flight: Section 5.5 lets the hub send
// the next FanoutMessage before the previous one is answered, but waiting
// keeps the destination's order strict and its cursor exact.
//
// Only HTTP 201 counts as success (Section 5.5). The worker then acknowledges
// the batch's last queue position through the Acker; since the cursor lives
// in the replicated state, a new leader resumes exactly after the last
// acknowledged position. Any other outcome is retried, never skipped:
//
//   - transport errors, timeouts, 408, 425, 429, 5xx: exponential backoff
//     with full jitter, delay uniform in [0, min(Cap, Base*2^(n-1))) for the
//     n-th consecutive failure;
//   - other statuses (4xx, 3xx, 2xx other than 201) and payloads that cannot
//     be encoded (ErrPermanent): retried at the cap, delay uniform in
//     [Cap/2, Cap), and logged at error level, because the hub must not
//     drop a message it accepted;
//   - a Retry-After header (delta-seconds or HTTP-date, RFC 9110, Section
//     10.2.3) is a minimum delay, bounded by Config.MaxRetryAfter.
//
// # Duplicates and determinism
//
// A delivery may be sent again after a failed acknowledgement, a crash or a
// leader change. Section 5.5 makes the follower answer 201 to a byte-exact
// duplicate body and ignore it, so bodies are a deterministic function of
// the pending range: BuildBatch on the same queue positions yields the same
// bytes. Within one process a batch that was attempted is pinned and
// retried byte for byte until it is acknowledged, even if more deliveries
// were queued meanwhile. Across a leader change the new leader rebuilds the
// batch from the acknowledged cursor; if the queue grew in the meantime its
// first batch may cover more positions than the one the old leader sent, and
// the follower then receives some messages twice (Section 5.5 requires
// clients and providers to be prepared for such duplicates after failover).
//
// # Leadership
//
// The engine sends only while Config.IsLeader reports true: workers check it
// before each attempt and Run stops them all when it turns false; when it
// turns true again they restart from the replicated cursor.
package fanout
