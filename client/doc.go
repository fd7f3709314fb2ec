// Package client is the MIMI client SDK a messaging application embeds
// (draft-ralston-mimi-protocol-02): one Client is one device of one user,
// holding its signature key and MIMI credential, the MLS state of every
// room it is in (package mls: a member-side Group per room) and its
// position in its provider's inbox. It speaks to its own provider through
// the small Provider interface (the client-to-provider steps the draft
// shows in [[ double brackets ]]); the provider relays to the rooms' hubs.
//
// The example flows of the draft's Section 3 map onto the API:
//
//   - Alice creates a room (3.1): CreateRoom, whose MLS group carries the
//     room policy and participant list in application_states (Sections 4.3
//     and 7), the hub in external_senders (Section 6.4) and
//     RequiredCapabilities.
//   - Alice adds Bob, Bob adds Cathy (3.2, 3.3): AddUser claims key
//     material for the user's clients (Section 5.2) and sends one Commit of
//     an AppSync adding the user and Add proposals for its clients, with
//     the Welcome, GroupInfo and full ratchet tree (Section 5.3).
//   - Cathy sends a message (3.4): Send (Section 5.4).
//   - Bob leaves (3.5): Leave sends Remove proposals for all of Bob's
//     clients and an AppSync removing Bob; the next committer (Commit, or
//     any commit, which always includes the cached proposals) completes it.
//   - Cathy adds a new device (3.6): JoinNewDevice (Section 5.6), an
//     external commit from the hub-signed GroupInfo.
//
// Sync pulls the inbox and turns what the hubs fanned out (Section 5.5)
// into Events: joined, message, participants/members/policy changed,
// proposal, removed. Room, Epoch and EpochAuthenticator expose the state
// the client's groups agree on; Save and Load persist it (secret).
//
// Every state change of a group waits for the hub: a commit is merged only
// once the hub accepted it, and discarded on wrongEpoch, notAllowed or
// invalidProposal (the error is an *UpdateError matching ErrWrongEpoch,
// ErrNotAllowed or ErrInvalidProposal). A request whose answer is lost is
// sent again with the same bytes; if no try is answered the outcome is
// unknown (ErrOutcomeUnknown) and the commit stays pending until its echo,
// another commit of its epoch, or the next operation's resend settles it.
// A wrongEpoch answer after a try that got none also keeps the commit
// pending (the hub recognizes only the commit it accepted last, so the
// unanswered try may have been taken before another commit).
//
// After wrongEpoch, or epochTooOld for a message, the client tries again
// once its group has caught up with the epoch the hub named: it syncs,
// polling the inbox while the commits that led there are still on their
// way (fanout is asynchronous, Section 5.5), for up to Options.EpochWait
// (DefaultEpochWait, 5 s) per operation; if they do not arrive in time
// the operation fails with ErrWrongEpoch.
package client
