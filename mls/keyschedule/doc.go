// Package keyschedule implements the MLS key schedule (RFC 9420, Section 8)
// and the secret tree with its per-sender hash ratchets (RFC 9420,
// Section 9).
//
// The key schedule turns the previous epoch's init_secret, the commit_secret
// and the psk_secret into the secrets of a new epoch (Derive), or, for a new
// member processing a Welcome, turns the joiner_secret into them
// (FromJoiner). PSKSecret chains pre-shared keys (Section 8.4), Export is the
// MLS-Exporter (Section 8.5), ExternalKeyPair derives the external HPKE key
// pair (Section 8.3), WelcomeKeyNonce derives the Welcome's AEAD key and
// nonce (Section 12.4.3.1) and SenderDataKeyNonce the sender-data AEAD key
// and nonce (Section 6.3.2).
//
// A SecretTree derives per-sender handshake and application keys and
// nonces from an epoch's encryption_secret. Node secrets are derived lazily
// and deleted following the deletion schedule of Section 9.2; receiving
// tolerates out-of-order generations within a bounded window.
// MarshalBinary and UnmarshalSecretTree persist a SecretTree with exactly
// the secrets it still holds, so that stored state follows the deletion
// schedule too.
//
// The package keeps no global state. Derivation functions are pure; a
// SecretTree is mutable and must be used from one goroutine at a time.
package keyschedule
