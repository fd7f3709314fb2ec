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
// A worker works in rounds (Round). A round is the oldest pending
// deliveries, up to Config.Limits.MaxMessages, split into one /notify body
// per room (Section 5.5: "The hub can include multiple concatenated
// FanoutMessage objects relevant to the same room"). Each body holds its
// room's deliveries in queue order, as concatenated FanoutMessages, and is
// capped by Config.Limits.MaxBytes; a delivery that would pass the cap ends
// the round. Each FanoutMessage carries the hub acceptance timestamp of its
// source event, and a Welcome carries the RatchetTreeOption (representation
// "full") with the ratchet tree of the epoch the commit created (the
// CommitAccepted event's RatchetTree).
//
// The bodies of a round are sent at the same time, one request per room,
// and a worker starts its next round only when the whole round is
// acknowledged. So the order within a room is the queue's, and the queue's
// cursor stays exact. Rooms do not wait for each other: with many rooms
// interleaved, a round still carries up to MaxMessages messages instead
// of one room's short run. A room gets the next FanoutMessage only after
// the previous one was answered, although Section 5.5 lets the hub send it
// earlier.
//
// Only HTTP 201 counts as success (Section 5.5). Once every body of the
// round got it, the worker acknowledges the round's last queue position
// through the Acker (a failed acknowledgement is retried without sending
// the bodies again); since the cursor lives in the replicated state, a new
// leader resumes exactly after the last acknowledged position. Any other outcome is retried, never skipped:
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
// A delivery may be sent again after a failure of its room's body, a crash
// or a leader change. Section 5.5 makes the follower answer 201 to a byte-exact
// duplicate body and ignore it, so bodies are a deterministic function of
// the pending range: BuildRound on the same queue positions yields the same
// bytes. Within one process a round that was attempted is pinned: its bodies
// not yet answered 201 are retried byte for byte until the round is
// acknowledged, even if more deliveries were queued meanwhile. Across a
// leader change the new leader rebuilds the round from the acknowledged
// cursor; if the queue grew in the meantime its first round may cover more
// positions than the one the old leader sent, and the follower then
// receives some messages twice in other bodies, which its per-message
// dedup absorbs (Section 5.5 requires clients and providers to be prepared
// for such duplicates after failover).
//
// # Leadership
//
// The engine sends only while Config.IsLeader reports true: workers check it
// before each attempt and Run stops them all when it turns false; when it
// turns true again they restart from the replicated cursor.
package fanout
