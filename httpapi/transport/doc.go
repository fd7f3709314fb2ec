// Package transport is the provider-to-provider transport layer of MIMI
// (draft-ralston-mimi-protocol-02, Section 4.1): HTTPS over mutually
// authenticated TLS, with the target provider named by the Host header and
// the source provider by a From header of the form "mimi@<domain>", and the
// directory document of Section 5.1.
//
// # Server side
//
// NewServer takes the domains this provider serves (one certificate per
// domain) and the trust anchors for peer client certificates. Its
// TLSConfig selects the certificate by SNI, requires TLS 1.3 and offers
// HTTP/2. Authenticate is the middleware every federation endpoint sits
// behind: before any request body is read it checks, in this order,
//
//   - a client certificate was presented and verified against the anchors
//     (else 401 Unauthorized),
//   - the Host header, port ignored, names a domain this server serves and
//     that was also the TLS server name of the connection (else 421
//     Misdirected Request),
//   - there is exactly one From header and it is exactly the addr-spec
//     "mimi@<domain>" (else 400 Bad Request),
//   - the client certificate authenticates that source domain by a DNS-ID
//     (RFC 6125, Section 6.4; see MatchDNSID) (else 403 Forbidden),
//   - a declared Content-Length does not exceed the body limit (else 413
//     Content Too Large);
//
// and then hands the request on with the body capped by
// http.MaxBytesReader and the authenticated Peer and target domain in the
// request context (PeerFromContext, TargetFromContext).
//
// DirectoryHandler serves GET /.well-known/mimi-protocol-directory with the
// per-domain directory (Section 5.1).
//
// # Client side
//
// NewClient builds a Client for one source domain. Its HTTP client speaks
// HTTP/2 over TLS 1.3, presents the source domain's certificate, verifies
// the target's certificate for the target domain, sends Host = target
// domain and From = mimi@source, and never follows redirects. A Resolver
// may map a target domain to a network address (loopback deployments and
// tests) without changing which name the certificate is verified for.
// Client.Directory discovers and caches a target's directory;
// Client.Post sends a MIMI body to one of its endpoints and retries once
// with a fresh directory when the cached one looks stale.
//
// # Choices the draft leaves open
//
//   - TLS 1.3 is the minimum version in both directions: it encrypts the
//     client certificate (so an observer does not learn which provider is
//     calling), and every MIMI implementation is new (RFC 9325, Section 3.1.1
//     says to prefer TLS 1.3 where implemented).
//   - The server requests but does not require a client certificate
//     (tls.VerifyClientCertIfGiven): a peer without a certificate completes
//     the handshake and gets a 401 with a readable reason instead of an
//     opaque handshake alert. A certificate that is presented but does not
//     chain to the anchors still fails the handshake.
//   - The TLS server name (SNI) is required and must be a served domain, and
//     the Host header must equal it: a request for another domain on a
//     coalesced connection gets 421, since the certificate presented on that
//     connection authenticated a different domain (draft Section 4.1
//     requires the certificates to authenticate the target domain).
//   - Request and response bodies use the media type MediaType
//     ("application/mimi"); the draft names none.
//   - Endpoint URLs in a directory must be https URLs on the target domain
//     or one of its subdomains (ErrForeignEndpoint), so a directory cannot
//     point our client at arbitrary hosts.
package transport
