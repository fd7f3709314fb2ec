// Package clientapi serves the client-to-provider API of a MIMI provider:
// the Connect RPC service mimi.client.v1.ClientService (proto/mimi/client/v1,
// generated into gen/mimi/client/v1). draft-ralston-mimi-protocol-02 shows
// these steps in [[ double brackets ]] (Section 3) and leaves them to each
// provider; this is ours. The SDK side is package client/remote, which
// implements client.Provider over this service.
//
// # Calls
//
// One RPC per method of client.Provider, each calling the matching local
// operation of package provider for the authenticated client:
// RegisterClient, UploadKeyPackages, KeyMaterial (LocalKeyMaterial),
// CreateRoom, Update (LocalUpdate), SubmitMessage (LocalSubmitMessage),
// GroupInfo (LocalGroupInfo), Inbox, Ack and HubSender.
//
// MIMI and MLS objects travel as their TLS-presentation-language encodings
// (mimi.Encode / mimi.Decode, the wire types' MarshalBinary) in bytes
// fields. A refusal the draft expresses as a response code (Section 5:
// wrongEpoch, notAllowed, invalidProposal, userUnknown, noConsent,
// epochTooOld, notAuthorized, noSuchRoom, ...) is a successful call whose
// body carries the code. Connect error codes are used only for:
//
//   - InvalidArgument: bytes that do not decode, a message with unknown
//     fields, a request the provider finds inconsistent (provider.ErrInvalid);
//     such a call changes no state;
//   - NotFound: a room not hosted here where one must be (HubSender), or
//     provider.ErrNoSuchRoom / provider.ErrUnknownClient;
//   - PermissionDenied: a body that speaks for another client or user (a
//     GroupInfoRequest with another credential or key, a KeyMaterialRequest
//     with another requesting user), a registration the policy refuses,
//     provider.ErrForbidden;
//   - Unauthenticated: a missing, malformed, stale, replayed or wrongly
//     signed Mimi-Client-Auth header, an unregistered client, a request
//     that did not arrive over TLS;
//   - Unavailable: the replicated log or a peer provider could not answer
//     (provider.ErrUnavailable, provider.ErrPeer), or the replay cache is
//     full; the call may be retried;
//   - Canceled / DeadlineExceeded for the caller's context, and Internal
//     for bugs (details logged, not sent).
//
// # Authentication
//
// The scheme is package client/remote/clientauth's: every call carries a
// Mimi-Client-Auth header with the client URI, the cipher suite, a
// timestamp and SignWithLabel("MIMIClientAuth", hash of the procedure,
// client, suite, timestamp and request bytes) made with the client's MLS
// signature key (RFC 9420, Section 5.1.2). Before the request body is read,
// the header must parse, its timestamp must be within Config.MaxClockSkew of
// the provider's clock and (except for RegisterClient) the client must be
// registered here; then the signature must verify under the key stored at
// registration (the projections' client record), and the signed content must
// not have been accepted before within the window.
//
// Replays are detected with an in-memory cache of the digests of accepted
// calls, kept until their timestamp leaves the window (so memory is bounded
// by the call rate times twice the skew window, and by
// Config.ReplayCacheSize: when full of live entries, calls are refused with
// Unavailable rather than evicting one, which would re-open a replay). The
// cache is per process and a restart forgets it, so a key-material call,
// whose replay would claim KeyPackages (Section 5.2), is also recorded in
// the replicated log (eventlog.ClientCallAccepted, one Raft command per
// call) and refused on every node of a cluster. The other calls are
// idempotent or deduplicated where they change state (registration, a
// resubmitted message, proposal or commit, an acknowledgement); a call
// replayed to another node within the window repeats them harmlessly.
// Every call is bound to its client, procedure, request and time.
//
// RegisterClient is signed the same way with the key being registered,
// which proves possession of it, by the client the credential names. Then
// Config.Registration decides whether that user may register the device.
// The default, AllowAllRegistrations, lets anyone register any user of this
// provider's domain, and replace the key of an existing client: it is for
// development only. Production deployments must plug in their account
// system (for example a bearer token of the user's account session in the
// request headers, which RegistrationRequest.Header carries).
//
// The service must run on TLS (server-authenticated; client certificates
// are not used): requests that did not arrive over TLS are refused unless
// Config.AllowPlaintext is set for a handler mounted behind a trusted
// TLS-terminating proxy. TLSConfig builds a suitable server configuration.
//
// # Inbox stream
//
// Inbox streams the client's unacknowledged inbox entries (Section 5.5 as
// delivered to a client) in order from a position, each as an encoded
// FanoutMessage with its position and room. Without follow it ends once it
// has caught up. With follow it then waits for new deliveries, woken by
// Config.Applied (the Raft node's applied index) with a polling fallback,
// and sends a heartbeat (a response without an entry, carrying the next
// position) whenever it catches up: at once when there is nothing to send
// (Connect sends a server stream's response headers only with its first
// message, so a client waiting for them would otherwise block until the
// first delivery), after each burst, and after each
// Config.HeartbeatInterval of silence. Service.Close ends following
// streams.
package clientapi
