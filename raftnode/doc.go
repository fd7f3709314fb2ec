// Package raftnode replicates the MIMI hub's event-sourced state with Raft
// (Ongaro & Ousterhout, "In Search of an Understandable Consensus
// Algorithm", 2014; cited below as "Raft paper") using
// github.com/hashicorp/raft.
//
// Every accepted command becomes one Raft log entry. The log and Raft's
// stable state live in a Pebble database (LogStore, every write synced);
// committed entries are applied, in order, to a caller-supplied
// StateMachine (in the hub: projections.Machine, which writes a batch of
// events and their projections in one atomic Pebble batch, unsynced);
// snapshots stream the state machine's own image into a
// raft.FileSnapshotStore. Because the state machine persists its applied
// index atomically with its effects, entries replayed by Raft after a
// restart are skipped instead of being applied twice, and entries whose
// effects a crash lost (the state machine's writes need not be synced,
// see StateMachine) are applied again from the log.
//
// Nodes talk over one TCP port secured with mutual TLS 1.3: each connection
// starts with a service byte selecting either Raft's NetworkTransport or
// the command forwarding protocol, so a follower can hand a client's
// command to the leader (the default) instead of refusing it with
// ErrNotLeader.
//
// The embedded default is a standalone single-node cluster: Open with only
// Config.DataDir uses Raft's in-memory transport (no socket) and bootstraps
// itself.
package raftnode
