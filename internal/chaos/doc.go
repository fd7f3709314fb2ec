// Package chaos is the crash-fault harness of the reliability work (issue
// #8): it runs the hub provider a.example as a three-node Raft cluster of
// real `mimid serve` subprocesses behind an L4 TCP proxy, and the follower
// providers b.example and c.example as single nodes (b.example optionally
// as a cluster too, see below), drives SDK clients
// (packages client and client/remote over each provider's Connect client
// API) at all three providers in rooms hosted by a.example, and SIGKILLs
// random nodes at random times under load
// (draft-ralston-mimi-protocol-02, Sections 5.4 and 5.5: message submission
// and fanout).
//
// With Config.MembershipEvery set, every room also has a membership actor
// that, through the kills, makes one of Config.MembershipOps (tools/chaos
// -membership-ops; default all) every MembershipEvery on average,
// retrying as the senders do: its admin client adds the client of a new
// user at a random provider (key material claim and a commit with a
// Welcome) or removes a user it added (Sections 3.2, 3.3, 3.5, 5.2 and
// 5.3); a client of such a user leaves (Leave: proposals the hub caches,
// completed by the admin's next commit or by another member's Send); a
// new client of such a user joins by external commit (JoinNewDevice,
// Sections 3.6 and 5.6); or the room's other admins (two, or
// Config.RaceCommitters, tools/chaos -race-committers) commit a change
// each in the same epoch, so that the hub takes one and answers the others
// wrongEpoch, whose senders wait for the hub's epoch and commit again
// (each loser must make its change: race-loser-not-recovered).
//
// Some turns of the chaos loop fault a node or a link instead of killing
// one. With Config.FreezeShare (tools/chaos -freeze-share, -freeze) a
// turn freezes a node drawn as a kill's victim, hub or follower, leaders
// included, with SIGSTOP for FreezeMin..FreezeMax (1-8 s), then SIGCONT:
// its sockets stay open but it answers nothing. With
// Config.PartitionShare (-partition-share, -partition) a turn cuts the
// network between the hub and b.example or c.example for
// PartitionMin..PartitionMax (2-8 s), both directions or one (the hub's
// /notify POSTs or the follower's relayed submissions), refused
// (connections reset) or black-holed (nothing crosses and nothing fails
// until it heals) with equal odds; or it loses answers: requests in
// flight reach the other provider and are processed, their answers are
// dropped (black-holed until the heal, or the connection reset), so both
// sides send the same bytes again and must deduplicate; or it cuts one
// node of the hub's cluster or of a clustered b.example (either with
// equal odds; the cluster's leader with LeaderShare) from its two peers
// while the other providers and its clients still reach it
// (PartitionMode). Every provider reaches each peer through a link proxy
// of its own (Topology.Link), which the cut acts on, and the nodes of
// each cluster reach each other's Raft ports through a proxy per node
// (Node.RaftProxy); the hub's /notify times out after 4 s there
// (TopologyConfig.FanoutSendTimeout), so longer cuts and freezes make it
// send again. With Config.ClientLinkShare (-client-link-share,
// -client-link) every client reaches its provider's client API through a
// client link of that provider (a Proxy, and a transport that can drop
// answers) and sends each request once, leaving the resends to the SDK;
// a turn then cuts one provider's link for ClientLinkMin..ClientLinkMax
// (2-8 s): refused, black-holed, or losing the answers (every one, or
// each with odds 1/2) of requests the provider processed, so that the SDK
// gets no answer (client.ErrOutcomeUnknown), sends the same bytes again,
// settles its unresolved commits, and resumes its inbox reads; its
// receive-only clients then read their inbox during the load as well,
// and every client's Syncs must report every application message of
// another member once, at its inbox position, never going back
// (inbox-processing).
//
// At the end every client syncs its inbox and Check compares what each
// client received with the hub's event log (read through the admin API's
// StreamEvents): every acknowledged submission, commit or proposal is in
// the hub log exactly once and no refused one is, every message is of the
// room's epoch at its position, and the commit ending an epoch includes
// every proposal accepted in it. Every client receives the Welcome that
// added it and every room event of its membership (up to the commit
// removing it) exactly once and in the hub's order, its own proposals and
// commits included (only its own application messages may be missing); a
// client that joined by external commit has no Welcome and receives its
// own commit back. A client whose user left receives the epoch's remaining
// proposals and the commit removing it, but no application message
// ordered after the leave proposals, and reports EventRemoved exactly at
// that commit. Nothing is received that the hub log does not hold or that
// falls outside the client's membership. Every member's MLS epoch,
// participant list and members must agree with the hub's room state
// (admin API GetRoom), and every cluster's nodes must hold identical logs
// and digests. The fault turns add their own problems: two leaders of one
// term, or a resumed leader that still leads its old term 10 s after
// another was elected (split-brain); a leader frozen for 4 s with no
// other node elected (no-failover); and a fanout backlog for a follower
// not delivered within 60 s of a resume or heal (fanout-backlog-stuck).
// When problems are found, the hub log, the submissions and the inboxes
// are written into Config.Dir (trace-*.txt).
//
// # Deployment modelled
//
// Federation peers reach a provider by one URL from its directory
// (Section 5.1), so an HA hub runs its nodes behind a TCP load balancer in
// TLS passthrough mode: every node holds the domain's certificate, and
// the balancer only picks a live node per connection (Proxy: a connect to
// a node that answers /readyz, falling back to any node that accepts).
// The hub's client API is exposed the same way. Each node shares the
// domain's hub signing key (-hub-key) and the dev CA; any node accepts
// writes and forwards them to the Raft leader, and only the leader runs the
// fanout.
//
// Run (Config, Result) is the whole scenario; TestChaosHubKill runs a short
// version in `go test`, and tools/chaos the long one.
//
// # Clustered follower
//
// With TopologyConfig.ClusteredFollower, b.example is deployed the same
// way: three nodes b1, b2 and b3 (b1 bootstraps) behind a federation
// proxy, which the hub's fanout and c.example reach, and a client API
// proxy, which b.example's clients use. Its nodes share b.example's own hub
// key (mimid requires a joining node to have its cluster's). The follower
// kills (Config.FollowerShare) then draw from b1, b2, b3 and c.example,
// b.example's Raft leader with Config.LeaderShare, so that b.example's
// leader dies in the middle of a /notify; one node is down at a time, so
// each cluster keeps its quorum. Section 5.5 requires a follower to answer
// a duplicate /notify with 201 and to process only the first: b.example
// deduplicates each FanoutMessage in its replicated state machine, so the
// checker's guarantees must hold for its clients across its leader
// changes, and at the end its three nodes must hold identical logs and
// digests, as the hub's must.
package chaos
