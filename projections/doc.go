// Package projections is the hub's deterministic state machine: it applies
// Raft-ordered commands to the event log (package eventlog) and derives all
// queryable MIMI provider state from that log (draft-ralston-mimi-protocol-02,
// Sections 4-6): rooms with their epoch, participant list, policy, latest
// GroupInfo and ratchet tree, member clients and the proposals cached for
// the current epoch; the KeyPackage inventory with one-time claims; the
// KeyPackageRef routes at the target and at the hub; per-destination fanout
// queues and cursors; the accepted application messages of each hosted
// room's current epoch; the inbound notify dedup set and the group of each
// followed room; per-client inboxes.
//
// # Commands
//
// A Command is a list of conditions and a list of operations (literal
// events, or claim requests resolved inside Apply). Machine.Apply decodes
// it, checks every condition, validates and applies each event in order,
// appends it to the log and records the Raft index, all in one Pebble batch
// (committed with pebble.Sync by Apply; ApplyBatch commits without an fsync,
// see below). Any failure discards the batch and commits
// only the applied index, with a typed error in Result.Err.
//
// # Durability of ApplyBatch
//
// Machine.Apply commits with pebble.Sync. Machine.ApplyBatch, which is how
// raftnode drives the Machine, commits without an fsync (pebble.NoSync),
// and the Raft log's fsync is the only one on the path of a command. This
// is safe because:
//
//   - Raft applies only committed entries, and an entry is committed on a
//     node only once it is in that node's Raft log, which raftnode's log
//     store writes with pebble.Sync before acknowledging it (Raft paper,
//     Sections 5.3 and 5.4). Every command the Machine applies is therefore
//     already durable, in order, in the Raft log.
//   - Apply is deterministic, so applying the same entries again to the
//     same state gives the same events, projections and results.
//   - Pebble writes each batch as one record of its write-ahead log; after
//     a crash the recovered database holds a prefix of the committed
//     batches. Since m/applied is written in the batch it describes, the
//     recovered AppliedIndex names exactly the last commit that survived.
//   - raftnode.Open reads AppliedIndex and re-applies every log entry after
//     it; if the log was compacted past it, it restores the latest Raft
//     snapshot first (an image that may be newer than its index, which is
//     fine since older entries are skipped). Snapshot images themselves are
//     written and fsynced by Raft's snapshot store.
//
// Nothing observed before the crash is contradicted afterwards: anything a
// reader saw (a fanout queue entry, an inbox message, a cursor) was derived
// from durable log entries and is re-derived identically, at the same
// positions. A clean Close syncs Pebble's log, so only a crash of the
// process or machine leaves a tail to re-apply.
// TestProjectionsLostUnsyncedTail in raftnode checks the argument: a state
// directory put back to an older copy catches up from the log (or a
// snapshot) to the same Digest.
//
// # Replay and audit
//
// Replay rebuilds a complete store (log copy and projections) from a log;
// ReplayProjections rebuilds the projections only. Both re-derive every
// position and chain hash and require the same record-by-record chain.
// Machine.Audit runs eventlog.Verify and a projections-only replay on one
// snapshot and compares digests. Snapshot/Restore stream a checksummed dump
// of the whole keyspace.
//
// # Key layout (one Pebble DB, in dir/state)
//
// "c(x)" is eventlog.AppendKeyComponent(x) (order-preserving, prefix-free);
// integers are big-endian. The log lives under "e/" (see package eventlog).
//
//	m/applied                               last applied Raft index
//	p/room/c(room)                          Room (without GroupInfo/tree)
//	p/grp/c(room)                           epoch, GroupInfo, ratchet tree
//	p/prop/c(room)be32(i)                   Proposal i of the current epoch
//	p/pref/c(room)c(ref)                    be32(i) of the cached proposal ref
//	p/memb/c(client)c(room)                 client is a member of room
//	p/cli/c(client)                         Client
//	p/ucl/c(user)c(client)                  user has client
//	p/kp/c(ref)                             KeyPackage and its claim state
//	p/kpa/c(client)be16(suite)be64(notAfter)be64(uploadSeq)be32(i) -> ref
//	                                        unclaimed KeyPackages, claim order
//	p/kpx/be64(notAfter)c(ref)              unclaimed KeyPackages by expiry
//	p/hrt/c(ref)                            HubRoute (ref -> provider)
//	p/amsg/c(room)be64(epoch)c(sha256(msg)) application message accepted
//	                                        in the current epoch (dedup)
//	p/ntf/c(hub)c(NotifyHash(room, msg))    notify dedup entry, one per
//	                                        FanoutMessage
//	p/ntfq/be64(seq)c(hub)c(hash)           the same in acceptance order,
//	                                        with its timestamp (pruning)
//	p/fgrp/c(hub)c(groupID)  p/frg/c(room)  a followed room's MLS group
//	                                        (GroupBound), both ways
//	p/fcur/c(dest)  p/fq/c(dest)be64(n)     fanout cursor and queue
//	p/icur/c(client) p/iq/c(client)be64(n)  inbox cursor and queue
//	p/hubkey                                be16(suite) + the hub's
//	                                        signature key (HubKeyDeclared)
//	p/call/c(digest)                        a client API call taken, until
//	p/callx/be64(expiry)c(digest)           its expiry (ClientCallAccepted)
//
// # Invariants
//
//   - Everything under "p/" is a pure function of the log: Apply and Replay
//     share one function (applyEvent) per event type, which reads only the
//     state and the event (never a clock, randomness or map order). Digest
//     hashes exactly the "p/" keyspace, so equal logs give equal digests.
//   - A rejected command changes nothing but m/applied. Apply keeps a cache
//     of committed values across commands; a rejected command's writes
//     never reach it, so it only ever saves reads (Options.NoCache turns it
//     off, and the tests check both agree).
//   - Events, their projection updates and m/applied are written in the
//     same batch: after a crash, state and applied index agree.
//   - A KeyPackage is claimed at most once and never after its not_after
//     (checked against the event's timestamp inside Apply); an unclaimed
//     KeyPackage has exactly one p/kpa entry, a claimed one none.
//   - A queue's entries are exactly positions Acked+1..Enqueued of its
//     cursor; positions are never reused. The queue reads seek straight to
//     Acked+1 (the acknowledged entries are deletion tombstones), and the
//     fanout and inbox cursors are served from an in-memory copy of the
//     committed ones, updated after each commit and reloaded from the DB
//     by Open, Restore and replay.
//   - Proposals under p/prop are those of the room's current epoch;
//     CommitAccepted (epoch+1 only) clears them.
package projections
