// Package clientauth is the request authentication of the client-to-provider
// API (the Connect service mimi.client.v1.ClientService): the steps
// draft-ralston-mimi-protocol-02 shows in [[ double brackets ]] and leaves
// to each provider (Section 3). It is shared by the provider side
// (package httpapi/clientapi) and the SDK side (package client/remote).
//
// # Scheme
//
// A client signs every call with its MLS signature key, the key it registered
// with its credential (RFC 9420, Section 5.1.2), using SignWithLabel
// (RFC 9420, Section 5.1.2) with the label "MIMIClientAuth" and its cipher
// suite. The signed content is the suite's hash of
//
//	struct {
//	    opaque procedure<V>;    // e.g. "/mimi.client.v1.ClientService/Update"
//	    opaque client_uri<V>;   // the calling client, mimi://<domain>/d/<id>
//	    uint16 cipher_suite;    // RFC 9420, Section 17.1
//	    uint64 timestamp;       // milliseconds since the Unix epoch
//	    opaque request<V>;      // RequestBytes of the request message
//	} ClientAuthTBS;
//
// in the TLS presentation language of RFC 9420, Section 2.1. The call
// carries it in one header field:
//
//	Mimi-Client-Auth: <client-uri> <cipher-suite> <timestamp> <signature>
//
// with the suite and timestamp in decimal and the signature in unpadded
// base64url (RFC 4648, Section 5), separated by single spaces.
//
// The request bytes are the deterministic protobuf binary encoding of the
// request message: fields in field-number order, default values omitted,
// which for the service's messages (scalars, strings and bytes, no maps) is
// canonical, so the provider recomputes them from the decoded message
// whatever codec (binary or JSON) carried it. The provider refuses messages
// with unknown fields, whose re-encoding would not be canonical.
//
// The provider checks the timestamp against its clock with a skew window
// and refuses a signed content it has already accepted within the window
// (Digest identifies it); the SDK therefore never uses the same timestamp
// twice for one client.
package clientauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
)

// Names of the scheme (see the package documentation; the label follows
// RFC 9420, Section 5.1.2).
const (
	// HeaderName is the HTTP header field carrying the authentication.
	HeaderName = "Mimi-Client-Auth"
	// Label is the SignWithLabel label (RFC 9420, Section 5.1.2; the
	// "MLS 1.0 " prefix is added by SignWithLabel).
	Label = "MIMIClientAuth"
	// MaxHeaderLength bounds the header value a provider parses.
	MaxHeaderLength = 4096
)

// Errors callers branch on with errors.Is (RFC 9420, Section 5.1.2
// signatures over the scheme's ClientAuthTBS).
var (
	// ErrMalformed: the header is missing or not of the documented form.
	ErrMalformed = errors.New("clientauth: malformed " + HeaderName + " header")
	// ErrBadSignature: the signature does not verify under the key.
	ErrBadSignature = errors.New("clientauth: signature does not verify")
	// ErrUnsupportedSuite: the cipher suite is not one we implement
	// (RFC 9420, Section 17.1).
	ErrUnsupportedSuite = errors.New("clientauth: unsupported cipher suite")
)

// Auth is the content of a Mimi-Client-Auth header: who signs, with which
// cipher suite (RFC 9420, Section 17.1), when, and the signature
// (RFC 9420, Section 5.1.2, SignWithLabel).
type Auth struct {
	Client    string
	Suite     cipher.SuiteID
	Timestamp uint64 // milliseconds since the Unix epoch
	Signature []byte
}

// String formats the header value (see the package documentation; the
// signature in base64url, RFC 4648 Section 5).
func (a *Auth) String() string {
	return a.Client + " " + strconv.FormatUint(uint64(a.Suite), 10) + " " +
		strconv.FormatUint(a.Timestamp, 10) + " " + base64.RawURLEncoding.EncodeToString(a.Signature)
}

// Parse parses a header value. The client must be a MIMI client URI
// (draft-ralston-mimi-protocol-02, Section 3). Errors wrap ErrMalformed.
func Parse(v string) (*Auth, error) {
	if v == "" {
		return nil, fmt.Errorf("%w: missing", ErrMalformed)
	}
	if len(v) > MaxHeaderLength {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(v))
	}
	parts := strings.Split(v, " ")
	if len(parts) != 4 {
		return nil, fmt.Errorf("%w: want 4 space-separated fields, got %d", ErrMalformed, len(parts))
	}
	if _, err := mimi.ParseURIKind(parts[0], mimi.KindClient); err != nil {
		return nil, fmt.Errorf("%w: client: %w", ErrMalformed, err)
	}
	suite, err := strconv.ParseUint(parts[1], 10, 16)
	if err != nil || (len(parts[1]) > 1 && parts[1][0] == '0') {
		return nil, fmt.Errorf("%w: cipher suite %q", ErrMalformed, parts[1])
	}
	ts, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil || (len(parts[2]) > 1 && parts[2][0] == '0') {
		return nil, fmt.Errorf("%w: timestamp %q", ErrMalformed, parts[2])
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[3])
	if err != nil || len(sig) == 0 {
		return nil, fmt.Errorf("%w: signature", ErrMalformed)
	}
	return &Auth{Client: parts[0], Suite: cipher.SuiteID(suite), Timestamp: ts, Signature: sig}, nil
}

// TBS returns the encoded ClientAuthTBS (see the package documentation;
// RFC 9420, Section 2.1 encoding).
func TBS(procedure, client string, suite cipher.SuiteID, timestamp uint64, request []byte) ([]byte, error) {
	w := codec.NewWriter()
	w.Opaque([]byte(procedure))
	w.Opaque([]byte(client))
	w.U16(uint16(suite))
	w.U64(timestamp)
	w.Opaque(request)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("clientauth: encoding the signed content: %w", err)
	}
	return b, nil
}

// Digest returns the signed content of a call: the suite's hash of its
// ClientAuthTBS (RFC 9420, Section 5.1.2 signs it with SignWithLabel).
// It identifies the call for replay detection.
func Digest(procedure, client string, suite cipher.SuiteID, timestamp uint64, request []byte) ([]byte, error) {
	s, err := cipher.Lookup(suite)
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %w", ErrUnsupportedSuite, suite, err)
	}
	tbs, err := TBS(procedure, client, suite, timestamp, request)
	if err != nil {
		return nil, err
	}
	return s.Hash(tbs), nil
}

// Sign signs a call of procedure by client with the client's signature
// private key priv for suite (RFC 9420, Section 5.1.2, SignWithLabel with
// Label) and returns the header content.
func Sign(priv []byte, suite cipher.SuiteID, procedure, client string, timestamp uint64, request []byte) (*Auth, error) {
	s, err := cipher.Lookup(suite)
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %w", ErrUnsupportedSuite, suite, err)
	}
	d, err := Digest(procedure, client, suite, timestamp, request)
	if err != nil {
		return nil, err
	}
	sig, err := s.SignWithLabel(priv, Label, d)
	if err != nil {
		return nil, fmt.Errorf("clientauth: signing: %w", err)
	}
	return &Auth{Client: client, Suite: suite, Timestamp: timestamp, Signature: sig}, nil
}

// Verify checks a's signature over a call of procedure with request bytes
// under the signature public key pub (RFC 9420, Section 5.1.2,
// VerifyWithLabel with Label), and returns the call's Digest. It does not
// check the timestamp: that is the provider's window.
func (a *Auth) Verify(pub []byte, procedure string, request []byte) ([]byte, error) {
	s, err := cipher.Lookup(a.Suite)
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %w", ErrUnsupportedSuite, a.Suite, err)
	}
	if err := s.ValidateSignaturePublicKey(pub); err != nil {
		return nil, fmt.Errorf("%w: the key is not a %v signature key: %w", ErrBadSignature, a.Suite, err)
	}
	d, err := Digest(procedure, a.Client, a.Suite, a.Timestamp, request)
	if err != nil {
		return nil, err
	}
	if err := s.VerifyWithLabel(pub, Label, d, a.Signature); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return d, nil
}

// RequestBytes returns the bytes a call's signature covers (the request
// field of ClientAuthTBS, signed per RFC 9420, Section 5.1.2): the
// deterministic protobuf binary encoding of the request message (see the
// package documentation).
func RequestBytes(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("clientauth: encoding the request: %w", err)
	}
	return b, nil
}
