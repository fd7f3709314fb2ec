package raftnode

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Sentinel errors callers branch on.
var (
	// ErrClosed is returned by operations on a Node after Shutdown.
	ErrClosed = errors.New("raftnode: node is shut down")
	// ErrNoLeader is returned (wrapped, together with the context error)
	// when no leader became known before the context ended.
	ErrNoLeader = errors.New("raftnode: no known leader")
	// ErrOutcomeUnknown is returned (wrapped) when a command was submitted
	// but its fate is unknown: leadership was lost before it committed, the
	// context ended while waiting, or the connection to the leader broke
	// after the command was sent. The command may or may not be applied;
	// retry only if commands are idempotent (for example carry an id the
	// state machine de-duplicates).
	ErrOutcomeUnknown = errors.New("raftnode: command outcome unknown")
	// ErrStandalone is returned by membership changes on a node opened
	// without TLS (in-memory transport, single node only).
	ErrStandalone = errors.New("raftnode: standalone node has no network transport")
	// ErrCommandTooLarge is returned when a command exceeds
	// Config.MaxCommandSize.
	ErrCommandTooLarge = errors.New("raftnode: command too large")
	// ErrRemote is returned (wrapped) when the leader reported an error
	// for a forwarded request; the message is the leader's.
	ErrRemote = errors.New("raftnode: leader error")
	// ErrProtocol is returned (wrapped) for a malformed forwarding frame.
	ErrProtocol = errors.New("raftnode: forwarding protocol error")
)

// ErrNotLeader is returned by Node.Apply, Node.ReadBarrier and membership
// changes on a follower that does not forward (Config.DisableForwarding; or
// always for AddVoter/RemoveServer). It names the leader as last known by
// this node (Raft paper, Section 5.1: "if a client contacts a follower, the
// follower redirects it to the leader"); the fields are empty if no leader
// is known. Match it with
//
//	var nl raftnode.ErrNotLeader
//	if errors.As(err, &nl) { redirect to nl.LeaderAddr }
type ErrNotLeader struct {
	// LeaderAddr is the leader's Raft address, which also serves
	// forwarding RPCs; empty if unknown.
	LeaderAddr string
	// LeaderID is the leader's server ID; empty if unknown.
	LeaderID string
}

// Error implements error.
func (e ErrNotLeader) Error() string {
	if e.LeaderAddr == "" {
		return "raftnode: not the leader (leader unknown)"
	}
	return fmt.Sprintf("raftnode: not the leader (leader %s at %s)", e.LeaderID, e.LeaderAddr)
}

// ResultCodec encodes state machine results for the trip from the leader
// back to a follower that forwarded a command (Raft paper, Section 8,
// client interaction).
type ResultCodec[R any] interface {
	EncodeResult(r R) ([]byte, error)
	DecodeResult(b []byte) (R, error)
}

// JSONCodec is the default ResultCodec: encoding/json. It only suits
// result types whose information is in exported, JSON-encodable fields
// (an error-typed field, for example, does not survive); supply a custom
// codec otherwise.
type JSONCodec[R any] struct{}

// EncodeResult implements ResultCodec.
func (JSONCodec[R]) EncodeResult(r R) ([]byte, error) { return json.Marshal(r) }

// DecodeResult implements ResultCodec.
func (JSONCodec[R]) DecodeResult(b []byte) (R, error) {
	var r R
	err := json.Unmarshal(b, &r)
	return r, err
}
