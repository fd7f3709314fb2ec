// Package federation is the HTTP face of a MIMI provider towards other
// providers (draft-ralston-mimi-protocol-02, Section 5): Handler serves the
// five federation endpoints and the directory behind the mutual-TLS
// authentication of package transport (Section 4.1), decoding bodies with
// package mimi and calling package provider; Client calls the same
// endpoints of peers and implements provider.Remote.
//
// # Endpoints
//
// Paths are those of the default directory (transport.DefaultDirectory):
//
//	GET  /.well-known/mimi-protocol-directory   Section 5.1
//	POST /v1/keyMaterial/{targetUser}           Section 5.2
//	POST /v1/update/{roomId}                    Section 5.3
//	POST /v1/submitMessage/{roomId}             Section 5.4
//	POST /v1/notify/{roomId}                    Section 5.5
//	POST /v1/groupInfo/{roomId}                 Section 5.6
//
// where {targetUser} and {roomId} are the URI without "mimi://"
// (docs/wire.md). Every route sits behind transport.Server.Authenticate,
// so the peer provider is authenticated before the body is read, and the
// body is read with the transport's size limit. Bodies are
// application/mimi.
//
// # Status codes
//
// Answers the draft defines as bodies are 200 with the body, whatever
// their code: KeyMaterialResponse (every user status; a request for a
// protocol other than mls10 is answered incompatibleProtocol),
// UpdateRoomResponse (success, wrongEpoch, notAllowed, invalidProposal),
// SubmitMessageResponse (accepted, notAllowed, epochTooOld) and
// GroupInfoResponse (success, notAuthorized, noSuchRoom). /notify answers
// 201 Created with no body when the messages are accepted, and also for a
// byte-identical repetition of an accepted body from the same hub, which
// is not processed again (Section 5.5).
//
// Errors are text/plain "mimi: <reason>":
//
//   - 400 Bad Request: a malformed or truncated body (any endpoint; the
//     request changes no state), a path identifier that is not a MIMI URI
//     of the right kind, a keyMaterial body whose targetUser differs from
//     the path, a request the provider finds inconsistent
//     (provider.ErrInvalid); from transport: a missing or malformed From
//     header.
//   - 401 Unauthorized (transport): no client certificate.
//   - 403 Forbidden: a /notify from a provider that is not the room's hub;
//     a keyMaterial request this provider is neither the target provider
//     nor the room's hub for, or for a room hosted elsewhere that does not
//     come from that room's hub, or whose requesting user is not the
//     peer's or not a participant (provider.ErrForbidden); from transport:
//     a certificate that does not authenticate the From domain.
//   - 404 Not Found: update, submitMessage or keyMaterial (as hub) for a
//     room not hosted here (provider.ErrNoSuchRoom); an unknown path.
//   - 405 Method Not Allowed: anything but POST on an endpoint (GET/HEAD on
//     the directory).
//   - 413 Content Too Large (transport): a body over the limit.
//   - 421 Misdirected Request: a Host this server does not serve, or that
//     is not this handler's provider.
//   - 500 Internal Server Error: a bug or corrupt state (details logged,
//     not sent).
//   - 502 Bad Gateway: relaying keyMaterial, the target provider failed or
//     answered invalidly (provider.ErrPeer).
//   - 503 Service Unavailable, with Retry-After: the replicated log could
//     not take the decision (no leader, contention; provider.ErrUnavailable).
//
// Client maps statuses back: 404 to provider.ErrNoSuchRoom, 403 to
// provider.ErrForbidden, 400 to provider.ErrInvalid, 503 to
// provider.ErrUnavailable, anything else unexpected to provider.ErrPeer
// (through *StatusError).
package federation
