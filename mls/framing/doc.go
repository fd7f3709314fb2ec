// Package framing implements MLS message framing and protection (RFC 9420,
// Section 6): signing and verifying AuthenticatedContent (6.1), the
// PublicMessage membership tag (6.2), PrivateMessage content and sender
// data encryption (6.3), the transcript hashes and confirmation tag (8.2,
// 6.1), and Welcome encryption and decryption (12.4.3.1).
//
// The package holds no group state. What it needs from one epoch of a group
// (cipher suite, GroupContext, membership key, sender data secret, secret
// tree and a lookup of members) is passed in an Epoch value, so the group
// state machine can plug in its own state.
//
// Messages from the network are hostile: every function here returns an
// error, never panics, on malformed or forged input.
package framing
