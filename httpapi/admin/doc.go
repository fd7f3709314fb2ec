// Package admin is the administrative inspection API of a MIMI provider
// built as an event-sourced hub (draft-ralston-mimi-protocol-02): it serves
// the Connect RPC service mimi.admin.v1.AdminService (proto/mimi/admin/v1,
// generated into gen/mimi/admin/v1) on its own TLS listener.
//
// # Calls
//
//   - ListRooms, GetRoom: the rooms this provider hosts as hub (Sections
//     3.1, 4.3.1 and 6.1): policy, participants and roles (decoded from the
//     application_states extension of the room's GroupContext, else from
//     the hub's stored encodings), MLS epoch, member clients, the
//     proposals cached for the epoch, the ratchet tree's leaves, and the
//     age of the stored GroupInfo (server time minus the timestamp of the
//     event that set it).
//   - StreamEvents: the replicated event log (package eventlog) from a
//     sequence number, optionally one room's events, each with a decoded
//     one-line summary and, on request, its stored encoding. With follow
//     set the stream stays open and delivers events as they are applied
//     (woken by the Raft node's applied index, with a polling fallback).
//   - FanoutStatus: each fanout destination's replicated queue cursor and
//     backlog (Section 5.5), merged with what the fanout worker reports
//     through FanoutStatusSource (last error, next retry).
//   - ReplayVerify: the forensic audit. It runs the log's hash-chain
//     integrity walk (eventlog.Verify, which names the exact sequence
//     number of a corrupted record), rebuilds every projection from the
//     log into a fresh temporary store and compares digests with the live
//     state (projections.Machine.Audit), and re-runs every room's MLS
//     history from its RoomCreated GroupInfo and ratchet tree with
//     mls/publicgroup, which re-verifies the signature of every stored
//     proposal and commit PublicMessage (RFC 9420, Section 6.1) and of
//     every stored GroupInfo (Section 12.4.3), per room.
//   - ClusterStatus, AddNode, RemoveNode: the Raft node (package raftnode).
//
// # Authentication
//
// The API is never open: NewServer refuses to start without a credential.
// A caller authenticates with a bearer token (compared in constant time)
// and/or a client certificate that chains to the configured admin CA (the
// TLS listener asks for one). Every call without a valid credential is
// rejected with connect.CodeUnauthenticated before any handler runs, and
// requests that did not arrive over TLS are rejected unless explicitly
// allowed.
//
// # Backends
//
// The service reads through small interfaces (State, Auditor, Cluster,
// AppliedWaiter, FanoutStatusSource) so that it is testable;
// *projections.Machine implements State and Auditor and
// *raftnode.Node[projections.Result] implements Cluster and AppliedWaiter
// as they are (ForNode wires both).
package admin
