// Package provider is the heart of a MIMI provider
// (draft-ralston-mimi-protocol-02): one Provider is one provider domain,
// and implements, on decoded bodies and with the authenticated peer
// domain, the semantics of every federation endpoint of Section 5 in each
// role the draft gives a provider, plus the local operations of its own
// clients. It speaks no HTTP (package httpapi/federation does, and
// implements Remote to reach peers) and keeps no state of its own beyond
// caches: every decision becomes a projections command replicated by Raft
// (package raftnode), and every answer is read from the projections.
//
// # Roles
//
// Key material publisher (Section 5.2). Local clients register
// (RegisterClient) and publish KeyPackages (UploadKeyPackages). A
// /keyMaterial request for a local user claims, for each of the user's
// clients, one unclaimed, unexpired KeyPackage with an acceptable cipher
// suite and the required capabilities; the claims are one command whose
// conditions (KeyPackageUnclaimed) are evaluated inside the state machine,
// so a KeyPackage is never handed out twice, even to concurrent requests
// on different nodes, nor after its not_after. Claims record
// KeyPackageRef -> client (the target route) for routing the Welcome. A
// consent hook decides noConsent, noConsentForThisRoom, userDeleted or
// userUnknown; a user without registered clients is userUnknown. Key
// material for a room hosted elsewhere is served only to that room's hub.
//
// Hub (Sections 5.3, 5.4, 5.6 and 6), for the rooms it hosts (CreateRoom).
// Per room it keeps a secret-free view of the MLS group
// (mls/publicgroup) at the current epoch with the proposals cached in it,
// rebuilt from the projections' latest GroupInfo, ratchet tree and cached
// proposals after a restart or leader change. It relays /keyMaterial
// requests of participants to other providers, recording KeyPackageRef ->
// provider (the hub route). It decides /update: proposals are verified,
// cached and applied to the room state at once (Section 6.1); commits are
// followed by the view and checked against the room policy, the cached
// proposals, the GroupInfo and the tree (see Update). An accepted
// commit is one command, conditioned on the room's epoch (RoomEpochIs),
// holding the CommitAccepted event, its fanout to every provider with
// participants (before or after the commit) and to the providers of
// removed members, the Welcome queued only for the providers (hub routes)
// and local clients (target routes) whose KeyPackageRefs it carries, and
// the local inbox entries; of two racing commits the loser gets
// wrongEpoch. Every hub command is also conditioned on the room's last
// room sequence number (RoomSeqIs), so a decision taken on state that
// changed meanwhile is re-taken. Application messages (Section 5.4)
// submitted concurrently for one room are group-committed: they queue per
// room, and the room's drainer decides whatever is queued when the
// previous command was applied, each message validated on its own, the
// valid ones accepted together in one command (conditioned on the
// room's epoch and its number of cached proposals, RoomProposalsAre, not
// on the room sequence: messages decided on other nodes do not conflict)
// so that its two syncs are shared; each request still gets
// its own answer, and an update of the room first decides the messages
// queued before it. The same message bytes submitted again (a provider
// retrying after a lost answer) are accepted once per epoch and answered
// with the first acceptance. It serves /groupInfo to participants' clients, signed
// with the hub key.
//
// Follower (Section 5.5), for rooms hosted elsewhere: it accepts /notify
// only from the room's hub, records each FanoutMessage once per hub and
// room (a NotifyNotSeen condition per message inside the state machine,
// so a repeated body, or the same messages re-batched by a restarted hub
// or a new hub leader after a lost answer, is acknowledged and only its
// new messages are taken, across restarts and leader changes here too),
// binds the room to the MLS group its messages name (refusing messages of
// another group, or of this group under another room), and queues each
// message for the local clients it concerns, in the same command. Local clients' updates, messages and GroupInfo requests for
// such rooms are forwarded to the hub.
//
// # Who may submit a message
//
// The hub cannot see the sender of a PrivateMessage (RFC 9420, Section
// 6.3: it is encrypted), so it cannot check the sender's permissions
// itself. The split of responsibility is:
//
//   - for a local client, the hub checks directly: the client is a member
//     of the group, and its user a participant with canSendMessage;
//   - a remote provider may submit only if at least one of its users is a
//     participant with canSendMessage; by submitting, it vouches that the
//     sending client's user is a participant with canSendMessage. The
//     hub's guarantee is thus per provider, as the draft's transport
//     authenticates providers, not clients (Section 4.1).
//
// A follower checks what it knows before relaying (the client joined the
// group and its user is a participant); it does not know the room's roles
// (the policy travels in the GroupInfo, which is encrypted in the
// Welcome), so it cannot check canSendMessage itself. The hub's check
// therefore cannot distinguish two users of one provider with different
// permissions. The same per-provider vouching applies to handshake
// messages: a provider may submit only messages authored by its own
// clients (their credentials name the provider), but those the hub
// authenticates and authorizes per client.
//
// # What a follower knows about a room
//
// A follower tracks, per followed room, which of its users are
// participants and which of its clients joined the group: a Welcome it
// routes joins the clients its KeyPackageRefs name (and makes their users
// participants); an external commit by one of its clients joins it; a
// participant-list AppSync (in a proposal, effective at once, or by value
// in a commit) adds or removes its users. Application messages go to the
// joined clients of participants; proposals and commits also to the
// clients of users removed since the last commit, so that they see their
// removal (Section 5.5). This state is derived from the room's
// NotifyAccepted events and the ClientEnqueued records that follow them,
// kept in memory and rebuilt from the log on first use after a restart.
// It does not follow Remove proposals of single clients (a leaf index
// means nothing without the tree): a client removed while its user stays
// a participant keeps receiving the room's (undecryptable) messages.
//
// The hub fans a message out to every provider with participants,
// including the one that submitted it (its other clients need it), and a
// proposal also to the providers of every MLS member (a client whose user
// was just removed from the participant list needs the proposals the
// next commit refers to). The client that submitted an application
// message does not get it back: the hub skips the local sender, and a
// follower remembers for a while which of its clients it forwarded a
// message for (in memory; after a restart an echo may reach its sender,
// which the draft says clients must tolerate). Proposals and commits do
// go back to their sender: a client whose answer was lost learns from the
// echo that the hub accepted them.
//
// # Room state encoding
//
// The hub's room state in the projections (Room.Policy and
// Room.Participants, and the matching fields of RoomCreated,
// RoomStateUpdated and CommitAccepted) is the content of the
// mimiRoomPolicy state (mimi.Policy's encoding) and the whole
// mimiParticipantList ApplicationState (docs/wire.md); RoomState decodes
// it. GroupInfo fields hold an encoded wire.GroupInfo without
// ratchet_tree, RatchetTree fields an encoded wire.RatchetTree, messages
// encoded MLSMessages. ResolveDelivery turns a queued delivery into the
// FanoutMessage to send or to hand to a client.
//
// # Not supported
//
// Joining codes (Section 5.6), proposals originated by the hub or by
// follower servers as external senders (Section 6.4; only the hub's own
// key is accepted as external sender, and nothing submits hub proposals
// yet), certificates of followers in external_senders, ReInit, and
// application states other than the two MIMI ones.
package provider
