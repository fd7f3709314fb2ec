package mimi

import (
	"fmt"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// Signature labels of draft-ralston-mimi-protocol-02, Section 5.6.
const (
	LabelGroupInfoRequest  = "GroupInfoRequestTBS"
	LabelGroupInfoResponse = "GroupInfoResponseTBS"
)

// GroupInfoRequest (draft-ralston-mimi-protocol-02, Section 5.6). The
// draft's TBS has optional<opaque> joiningCode while the request carries a
// plain opaque; we treat an empty joining code as absent in both (see
// docs/wire.md).
type GroupInfoRequest struct {
	Protocol               Protocol
	CipherSuite            cipher.SuiteID
	RequestingSignatureKey []byte
	RequestingCredential   wire.Credential
	JoiningCode            []byte
	Signature              []byte
}

// TBS returns the encoded GroupInfoRequestTBS.
func (m *GroupInfoRequest) TBS() ([]byte, error) {
	w := codec.NewWriter()
	m.marshalTBS(w, true)
	return w.Bytes()
}

func (m *GroupInfoRequest) marshalTBS(w *codec.Writer, optionalCode bool) {
	w.U8(uint8(m.Protocol))
	w.U16(uint16(m.CipherSuite))
	w.Opaque(m.RequestingSignatureKey)
	m.RequestingCredential.MarshalMLS(w)
	if optionalCode {
		w.Optional(len(m.JoiningCode) > 0, func(w *codec.Writer) { w.Opaque(m.JoiningCode) })
	} else {
		w.Opaque(m.JoiningCode)
	}
}

// MarshalMLS implements codec.Marshaler.
func (m *GroupInfoRequest) MarshalMLS(w *codec.Writer) {
	m.marshalTBS(w, false)
	w.Opaque(m.Signature)
}

// UnmarshalMLS implements codec.Unmarshaler.
func (m *GroupInfoRequest) UnmarshalMLS(r *codec.Reader) {
	*m = GroupInfoRequest{}
	m.Protocol = readProtocol(r, "GroupInfoRequest.protocol")
	m.CipherSuite = cipher.SuiteID(r.U16("GroupInfoRequest.cipher_suite"))
	m.RequestingSignatureKey = r.Opaque("GroupInfoRequest.requestingSignatureKey")
	m.RequestingCredential.UnmarshalMLS(r)
	m.JoiningCode = r.Opaque("GroupInfoRequest.joiningCode")
	m.Signature = r.Opaque("GroupInfoRequest.signature")
}

// Sign signs the request with the requester's signature private key.
func (m *GroupInfoRequest) Sign(priv []byte) (err error) {
	m.Signature, err = signTBS(m.CipherSuite, m.TBS, priv, LabelGroupInfoRequest)
	return err
}

// Verify checks the signature against RequestingSignatureKey. Binding that
// key to the credential is the hub's policy decision.
func (m *GroupInfoRequest) Verify() error {
	if err := verifyTBS(m.CipherSuite, m.TBS, m.RequestingSignatureKey, LabelGroupInfoRequest, m.Signature); err != nil {
		return fmt.Errorf("mimi: GroupInfoRequest: %w", err)
	}
	return nil
}

// GroupInfoCode (draft-ralston-mimi-protocol-02, Section 5.6).
type GroupInfoCode uint8

// GroupInfo response codes (draft-ralston-mimi-protocol-02, Section 5.6).
const (
	GroupInfoSuccess       GroupInfoCode = 1
	GroupInfoNotAuthorized GroupInfoCode = 2
	GroupInfoNoSuchRoom    GroupInfoCode = 3
)

// GroupInfoResponse (draft-ralston-mimi-protocol-02, Section 5.6). The
// draft selects the body on the protocol only; since a failed request has
// no GroupInfo to carry, we encode the body and signature only for success,
// and a failure as version and status alone (see docs/wire.md).
type GroupInfoResponse struct {
	Version           Protocol
	Status            GroupInfoCode
	CipherSuite       cipher.SuiteID
	RoomID            []byte
	HubSender         wire.ExternalSender
	GroupInfo         wire.GroupInfo
	RatchetTreeOption RatchetTreeOption
	Signature         []byte
}

// TBS returns the encoded GroupInfoResponseTBS.
func (m *GroupInfoResponse) TBS() ([]byte, error) {
	w := codec.NewWriter()
	m.marshalTBS(w)
	return w.Bytes()
}

func (m *GroupInfoResponse) marshalTBS(w *codec.Writer) {
	w.U8(uint8(m.Version))
	w.U8(uint8(m.Status))
	if m.Status != GroupInfoSuccess {
		return
	}
	w.U16(uint16(m.CipherSuite))
	w.Opaque(m.RoomID)
	m.HubSender.MarshalMLS(w)
	m.GroupInfo.MarshalMLS(w)
	m.RatchetTreeOption.MarshalMLS(w)
}

// MarshalMLS implements codec.Marshaler.
func (m *GroupInfoResponse) MarshalMLS(w *codec.Writer) {
	m.marshalTBS(w)
	if m.Status == GroupInfoSuccess {
		w.Opaque(m.Signature)
	}
}

// UnmarshalMLS implements codec.Unmarshaler.
func (m *GroupInfoResponse) UnmarshalMLS(r *codec.Reader) {
	*m = GroupInfoResponse{}
	m.Version = readProtocol(r, "GroupInfoResponse.version")
	m.Status = GroupInfoCode(r.U8("GroupInfoResponse.status"))
	switch m.Status {
	case GroupInfoSuccess:
	case GroupInfoNotAuthorized, GroupInfoNoSuchRoom:
		return
	default:
		r.Fail("GroupInfoResponse.status", codec.ErrInvalidValue)
		return
	}
	m.CipherSuite = cipher.SuiteID(r.U16("GroupInfoResponse.cipher_suite"))
	m.RoomID = r.Opaque("GroupInfoResponse.room_id")
	m.HubSender.UnmarshalMLS(r)
	m.GroupInfo.UnmarshalMLS(r)
	m.RatchetTreeOption.UnmarshalMLS(r)
	m.Signature = r.Opaque("GroupInfoResponse.signature")
}

// Sign signs a success response with the hub's signature private key.
func (m *GroupInfoResponse) Sign(priv []byte) (err error) {
	m.Signature, err = signTBS(m.CipherSuite, m.TBS, priv, LabelGroupInfoResponse)
	return err
}

// Verify checks a success response's signature against the hub_sender key
// it carries. The caller must also check that hub_sender is the key it
// trusts for the hub (for example, the one in the group's external_senders).
func (m *GroupInfoResponse) Verify() error {
	if m.Status != GroupInfoSuccess {
		return nil
	}
	if err := verifyTBS(m.CipherSuite, m.TBS, m.HubSender.SignatureKey, LabelGroupInfoResponse, m.Signature); err != nil {
		return fmt.Errorf("mimi: GroupInfoResponse: %w", err)
	}
	return nil
}

// signTBS signs the encoding tbs returns with SignWithLabel (RFC 9420,
// Section 5.1.2) in the given suite.
func signTBS(id cipher.SuiteID, tbs func() ([]byte, error), priv []byte, label string) ([]byte, error) {
	s, err := cipher.Lookup(id)
	if err != nil {
		return nil, err
	}
	b, err := tbs()
	if err != nil {
		return nil, err
	}
	return s.SignWithLabel(priv, label, b)
}

// verifyTBS checks a SignWithLabel signature over the encoding tbs returns.
func verifyTBS(id cipher.SuiteID, tbs func() ([]byte, error), pub []byte, label string, sig []byte) error {
	s, err := cipher.Lookup(id)
	if err != nil {
		return err
	}
	b, err := tbs()
	if err != nil {
		return err
	}
	return s.VerifyWithLabel(pub, label, b, sig)
}
