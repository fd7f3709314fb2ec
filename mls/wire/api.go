// Top-level encoding and decoding entry points for every wire type.

package wire

import "github.com/openmimi/mimi/mls/codec"

// UnmarshalMLSMessage decodes exactly one MLSMessage (RFC 9420, Section 6) from b,
// rejecting trailing bytes.
func UnmarshalMLSMessage(b []byte) (*MLSMessage, error) {
	v := new(MLSMessage)
	if err := codec.Unmarshal(b, "MLSMessage", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 6);
// it implements encoding.BinaryMarshaler.
func (v *MLSMessage) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one MLSMessage (RFC 9420, Section 6) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *MLSMessage) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "MLSMessage", v) }

// UnmarshalKeyPackage decodes exactly one KeyPackage (RFC 9420, Section 10) from b,
// rejecting trailing bytes.
func UnmarshalKeyPackage(b []byte) (*KeyPackage, error) {
	v := new(KeyPackage)
	if err := codec.Unmarshal(b, "KeyPackage", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 10);
// it implements encoding.BinaryMarshaler.
func (v *KeyPackage) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one KeyPackage (RFC 9420, Section 10) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *KeyPackage) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "KeyPackage", v) }

// UnmarshalWelcome decodes exactly one Welcome (RFC 9420, Section 12.4.3.1) from b,
// rejecting trailing bytes.
func UnmarshalWelcome(b []byte) (*Welcome, error) {
	v := new(Welcome)
	if err := codec.Unmarshal(b, "Welcome", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.4.3.1);
// it implements encoding.BinaryMarshaler.
func (v *Welcome) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Welcome (RFC 9420, Section 12.4.3.1) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Welcome) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Welcome", v) }

// UnmarshalGroupInfo decodes exactly one GroupInfo (RFC 9420, Section 12.4.3) from b,
// rejecting trailing bytes.
func UnmarshalGroupInfo(b []byte) (*GroupInfo, error) {
	v := new(GroupInfo)
	if err := codec.Unmarshal(b, "GroupInfo", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.4.3);
// it implements encoding.BinaryMarshaler.
func (v *GroupInfo) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one GroupInfo (RFC 9420, Section 12.4.3) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *GroupInfo) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "GroupInfo", v) }

// UnmarshalGroupSecrets decodes exactly one GroupSecrets (RFC 9420, Section 12.4.3.1) from b,
// rejecting trailing bytes.
func UnmarshalGroupSecrets(b []byte) (*GroupSecrets, error) {
	v := new(GroupSecrets)
	if err := codec.Unmarshal(b, "GroupSecrets", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.4.3.1);
// it implements encoding.BinaryMarshaler.
func (v *GroupSecrets) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one GroupSecrets (RFC 9420, Section 12.4.3.1) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *GroupSecrets) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "GroupSecrets", v) }

// UnmarshalLeafNode decodes exactly one LeafNode (RFC 9420, Section 7.2) from b,
// rejecting trailing bytes.
func UnmarshalLeafNode(b []byte) (*LeafNode, error) {
	v := new(LeafNode)
	if err := codec.Unmarshal(b, "LeafNode", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 7.2);
// it implements encoding.BinaryMarshaler.
func (v *LeafNode) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one LeafNode (RFC 9420, Section 7.2) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *LeafNode) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "LeafNode", v) }

// UnmarshalParentNode decodes exactly one ParentNode (RFC 9420, Section 7.1) from b,
// rejecting trailing bytes.
func UnmarshalParentNode(b []byte) (*ParentNode, error) {
	v := new(ParentNode)
	if err := codec.Unmarshal(b, "ParentNode", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 7.1);
// it implements encoding.BinaryMarshaler.
func (v *ParentNode) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one ParentNode (RFC 9420, Section 7.1) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *ParentNode) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "ParentNode", v) }

// UnmarshalNode decodes exactly one Node (RFC 9420, Section 7.8) from b,
// rejecting trailing bytes.
func UnmarshalNode(b []byte) (*Node, error) {
	v := new(Node)
	if err := codec.Unmarshal(b, "Node", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 7.8);
// it implements encoding.BinaryMarshaler.
func (v *Node) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Node (RFC 9420, Section 7.8) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Node) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Node", v) }

// UnmarshalUpdatePath decodes exactly one UpdatePath (RFC 9420, Section 7.6) from b,
// rejecting trailing bytes.
func UnmarshalUpdatePath(b []byte) (*UpdatePath, error) {
	v := new(UpdatePath)
	if err := codec.Unmarshal(b, "UpdatePath", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 7.6);
// it implements encoding.BinaryMarshaler.
func (v *UpdatePath) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one UpdatePath (RFC 9420, Section 7.6) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *UpdatePath) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "UpdatePath", v) }

// UnmarshalGroupContext decodes exactly one GroupContext (RFC 9420, Section 8.1) from b,
// rejecting trailing bytes.
func UnmarshalGroupContext(b []byte) (*GroupContext, error) {
	v := new(GroupContext)
	if err := codec.Unmarshal(b, "GroupContext", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 8.1);
// it implements encoding.BinaryMarshaler.
func (v *GroupContext) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one GroupContext (RFC 9420, Section 8.1) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *GroupContext) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "GroupContext", v) }

// UnmarshalPreSharedKeyID decodes exactly one PreSharedKeyID (RFC 9420, Section 8.4) from b,
// rejecting trailing bytes.
func UnmarshalPreSharedKeyID(b []byte) (*PreSharedKeyID, error) {
	v := new(PreSharedKeyID)
	if err := codec.Unmarshal(b, "PreSharedKeyID", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 8.4);
// it implements encoding.BinaryMarshaler.
func (v *PreSharedKeyID) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one PreSharedKeyID (RFC 9420, Section 8.4) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *PreSharedKeyID) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "PreSharedKeyID", v)
}

// UnmarshalCredential decodes exactly one Credential (RFC 9420, Section 5.3) from b,
// rejecting trailing bytes.
func UnmarshalCredential(b []byte) (*Credential, error) {
	v := new(Credential)
	if err := codec.Unmarshal(b, "Credential", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 5.3);
// it implements encoding.BinaryMarshaler.
func (v *Credential) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Credential (RFC 9420, Section 5.3) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Credential) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Credential", v) }

// UnmarshalCapabilities decodes exactly one Capabilities (RFC 9420, Section 7.2) from b,
// rejecting trailing bytes.
func UnmarshalCapabilities(b []byte) (*Capabilities, error) {
	v := new(Capabilities)
	if err := codec.Unmarshal(b, "Capabilities", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 7.2);
// it implements encoding.BinaryMarshaler.
func (v *Capabilities) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Capabilities (RFC 9420, Section 7.2) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Capabilities) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Capabilities", v) }

// UnmarshalExtension decodes exactly one Extension (RFC 9420, Section 13) from b,
// rejecting trailing bytes.
func UnmarshalExtension(b []byte) (*Extension, error) {
	v := new(Extension)
	if err := codec.Unmarshal(b, "Extension", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 13);
// it implements encoding.BinaryMarshaler.
func (v *Extension) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Extension (RFC 9420, Section 13) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Extension) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Extension", v) }

// UnmarshalProposal decodes exactly one Proposal (RFC 9420, Section 12.1) from b,
// rejecting trailing bytes.
func UnmarshalProposal(b []byte) (*Proposal, error) {
	v := new(Proposal)
	if err := codec.Unmarshal(b, "Proposal", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.1);
// it implements encoding.BinaryMarshaler.
func (v *Proposal) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Proposal (RFC 9420, Section 12.1) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Proposal) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Proposal", v) }

// UnmarshalCommit decodes exactly one Commit (RFC 9420, Section 12.4) from b,
// rejecting trailing bytes.
func UnmarshalCommit(b []byte) (*Commit, error) {
	v := new(Commit)
	if err := codec.Unmarshal(b, "Commit", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.4);
// it implements encoding.BinaryMarshaler.
func (v *Commit) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Commit (RFC 9420, Section 12.4) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Commit) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Commit", v) }

// UnmarshalFramedContent decodes exactly one FramedContent (RFC 9420, Section 6) from b,
// rejecting trailing bytes.
func UnmarshalFramedContent(b []byte) (*FramedContent, error) {
	v := new(FramedContent)
	if err := codec.Unmarshal(b, "FramedContent", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 6);
// it implements encoding.BinaryMarshaler.
func (v *FramedContent) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one FramedContent (RFC 9420, Section 6) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *FramedContent) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "FramedContent", v)
}

// UnmarshalAuthenticatedContent decodes exactly one AuthenticatedContent (RFC 9420, Section 6.1) from b,
// rejecting trailing bytes.
func UnmarshalAuthenticatedContent(b []byte) (*AuthenticatedContent, error) {
	v := new(AuthenticatedContent)
	if err := codec.Unmarshal(b, "AuthenticatedContent", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 6.1);
// it implements encoding.BinaryMarshaler.
func (v *AuthenticatedContent) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one AuthenticatedContent (RFC 9420, Section 6.1) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *AuthenticatedContent) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "AuthenticatedContent", v)
}

// UnmarshalPublicMessage decodes exactly one PublicMessage (RFC 9420, Section 6.2) from b,
// rejecting trailing bytes.
func UnmarshalPublicMessage(b []byte) (*PublicMessage, error) {
	v := new(PublicMessage)
	if err := codec.Unmarshal(b, "PublicMessage", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 6.2);
// it implements encoding.BinaryMarshaler.
func (v *PublicMessage) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one PublicMessage (RFC 9420, Section 6.2) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *PublicMessage) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "PublicMessage", v)
}

// UnmarshalPrivateMessage decodes exactly one PrivateMessage (RFC 9420, Section 6.3) from b,
// rejecting trailing bytes.
func UnmarshalPrivateMessage(b []byte) (*PrivateMessage, error) {
	v := new(PrivateMessage)
	if err := codec.Unmarshal(b, "PrivateMessage", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 6.3);
// it implements encoding.BinaryMarshaler.
func (v *PrivateMessage) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one PrivateMessage (RFC 9420, Section 6.3) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *PrivateMessage) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "PrivateMessage", v)
}

// UnmarshalSenderData decodes exactly one SenderData (RFC 9420, Section 6.3.2) from b,
// rejecting trailing bytes.
func UnmarshalSenderData(b []byte) (*SenderData, error) {
	v := new(SenderData)
	if err := codec.Unmarshal(b, "SenderData", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 6.3.2);
// it implements encoding.BinaryMarshaler.
func (v *SenderData) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one SenderData (RFC 9420, Section 6.3.2) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *SenderData) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "SenderData", v) }

// UnmarshalPrivateContentAAD decodes exactly one PrivateContentAAD (RFC 9420, Section 6.3.1) from b,
// rejecting trailing bytes.
func UnmarshalPrivateContentAAD(b []byte) (*PrivateContentAAD, error) {
	v := new(PrivateContentAAD)
	if err := codec.Unmarshal(b, "PrivateContentAAD", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 6.3.1);
// it implements encoding.BinaryMarshaler.
func (v *PrivateContentAAD) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one PrivateContentAAD (RFC 9420, Section 6.3.1) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *PrivateContentAAD) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "PrivateContentAAD", v)
}

// UnmarshalSenderDataAAD decodes exactly one SenderDataAAD (RFC 9420, Section 6.3.2) from b,
// rejecting trailing bytes.
func UnmarshalSenderDataAAD(b []byte) (*SenderDataAAD, error) {
	v := new(SenderDataAAD)
	if err := codec.Unmarshal(b, "SenderDataAAD", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 6.3.2);
// it implements encoding.BinaryMarshaler.
func (v *SenderDataAAD) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one SenderDataAAD (RFC 9420, Section 6.3.2) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *SenderDataAAD) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "SenderDataAAD", v)
}

// UnmarshalExternalSender decodes exactly one ExternalSender (RFC 9420, Section 12.1.8.1) from b,
// rejecting trailing bytes.
func UnmarshalExternalSender(b []byte) (*ExternalSender, error) {
	v := new(ExternalSender)
	if err := codec.Unmarshal(b, "ExternalSender", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.1.8.1);
// it implements encoding.BinaryMarshaler.
func (v *ExternalSender) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one ExternalSender (RFC 9420, Section 12.1.8.1) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *ExternalSender) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "ExternalSender", v)
}

// UnmarshalRequiredCapabilities decodes exactly one RequiredCapabilities (RFC 9420, Section 11.1) from b,
// rejecting trailing bytes.
func UnmarshalRequiredCapabilities(b []byte) (*RequiredCapabilities, error) {
	v := new(RequiredCapabilities)
	if err := codec.Unmarshal(b, "RequiredCapabilities", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 11.1);
// it implements encoding.BinaryMarshaler.
func (v *RequiredCapabilities) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one RequiredCapabilities (RFC 9420, Section 11.1) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *RequiredCapabilities) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "RequiredCapabilities", v)
}

// UnmarshalHPKECiphertext decodes exactly one HPKECiphertext (RFC 9420, Section 7.6) from b,
// rejecting trailing bytes.
func UnmarshalHPKECiphertext(b []byte) (*HPKECiphertext, error) {
	v := new(HPKECiphertext)
	if err := codec.Unmarshal(b, "HPKECiphertext", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 7.6);
// it implements encoding.BinaryMarshaler.
func (v *HPKECiphertext) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one HPKECiphertext (RFC 9420, Section 7.6) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *HPKECiphertext) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "HPKECiphertext", v)
}

// UnmarshalEncryptedGroupSecrets decodes exactly one EncryptedGroupSecrets (RFC 9420, Section 12.4.3.1) from b,
// rejecting trailing bytes.
func UnmarshalEncryptedGroupSecrets(b []byte) (*EncryptedGroupSecrets, error) {
	v := new(EncryptedGroupSecrets)
	if err := codec.Unmarshal(b, "EncryptedGroupSecrets", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.4.3.1);
// it implements encoding.BinaryMarshaler.
func (v *EncryptedGroupSecrets) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one EncryptedGroupSecrets (RFC 9420, Section 12.4.3.1) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *EncryptedGroupSecrets) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "EncryptedGroupSecrets", v)
}

// UnmarshalLifetime decodes exactly one Lifetime (RFC 9420, Section 7.2) from b,
// rejecting trailing bytes.
func UnmarshalLifetime(b []byte) (*Lifetime, error) {
	v := new(Lifetime)
	if err := codec.Unmarshal(b, "Lifetime", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 7.2);
// it implements encoding.BinaryMarshaler.
func (v *Lifetime) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Lifetime (RFC 9420, Section 7.2) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Lifetime) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Lifetime", v) }

// UnmarshalUpdatePathNode decodes exactly one UpdatePathNode (RFC 9420, Section 7.6) from b,
// rejecting trailing bytes.
func UnmarshalUpdatePathNode(b []byte) (*UpdatePathNode, error) {
	v := new(UpdatePathNode)
	if err := codec.Unmarshal(b, "UpdatePathNode", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 7.6);
// it implements encoding.BinaryMarshaler.
func (v *UpdatePathNode) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one UpdatePathNode (RFC 9420, Section 7.6) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *UpdatePathNode) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "UpdatePathNode", v)
}

// UnmarshalProposalOrRef decodes exactly one ProposalOrRef (RFC 9420, Section 12.4) from b,
// rejecting trailing bytes.
func UnmarshalProposalOrRef(b []byte) (*ProposalOrRef, error) {
	v := new(ProposalOrRef)
	if err := codec.Unmarshal(b, "ProposalOrRef", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.4);
// it implements encoding.BinaryMarshaler.
func (v *ProposalOrRef) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one ProposalOrRef (RFC 9420, Section 12.4) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *ProposalOrRef) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "ProposalOrRef", v)
}

// UnmarshalSender decodes exactly one Sender (RFC 9420, Section 6) from b,
// rejecting trailing bytes.
func UnmarshalSender(b []byte) (*Sender, error) {
	v := new(Sender)
	if err := codec.Unmarshal(b, "Sender", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 6);
// it implements encoding.BinaryMarshaler.
func (v *Sender) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Sender (RFC 9420, Section 6) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Sender) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Sender", v) }

// UnmarshalAdd decodes exactly one Add (RFC 9420, Section 12.1.1) from b,
// rejecting trailing bytes.
func UnmarshalAdd(b []byte) (*Add, error) {
	v := new(Add)
	if err := codec.Unmarshal(b, "Add", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.1.1);
// it implements encoding.BinaryMarshaler.
func (v *Add) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Add (RFC 9420, Section 12.1.1) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Add) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Add", v) }

// UnmarshalUpdate decodes exactly one Update (RFC 9420, Section 12.1.2) from b,
// rejecting trailing bytes.
func UnmarshalUpdate(b []byte) (*Update, error) {
	v := new(Update)
	if err := codec.Unmarshal(b, "Update", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.1.2);
// it implements encoding.BinaryMarshaler.
func (v *Update) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Update (RFC 9420, Section 12.1.2) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Update) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Update", v) }

// UnmarshalRemove decodes exactly one Remove (RFC 9420, Section 12.1.3) from b,
// rejecting trailing bytes.
func UnmarshalRemove(b []byte) (*Remove, error) {
	v := new(Remove)
	if err := codec.Unmarshal(b, "Remove", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.1.3);
// it implements encoding.BinaryMarshaler.
func (v *Remove) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one Remove (RFC 9420, Section 12.1.3) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *Remove) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "Remove", v) }

// UnmarshalPreSharedKey decodes exactly one PreSharedKey (RFC 9420, Section 12.1.4) from b,
// rejecting trailing bytes.
func UnmarshalPreSharedKey(b []byte) (*PreSharedKey, error) {
	v := new(PreSharedKey)
	if err := codec.Unmarshal(b, "PreSharedKey", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.1.4);
// it implements encoding.BinaryMarshaler.
func (v *PreSharedKey) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one PreSharedKey (RFC 9420, Section 12.1.4) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *PreSharedKey) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "PreSharedKey", v) }

// UnmarshalReInit decodes exactly one ReInit (RFC 9420, Section 12.1.5) from b,
// rejecting trailing bytes.
func UnmarshalReInit(b []byte) (*ReInit, error) {
	v := new(ReInit)
	if err := codec.Unmarshal(b, "ReInit", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.1.5);
// it implements encoding.BinaryMarshaler.
func (v *ReInit) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one ReInit (RFC 9420, Section 12.1.5) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *ReInit) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "ReInit", v) }

// UnmarshalExternalInit decodes exactly one ExternalInit (RFC 9420, Section 12.1.6) from b,
// rejecting trailing bytes.
func UnmarshalExternalInit(b []byte) (*ExternalInit, error) {
	v := new(ExternalInit)
	if err := codec.Unmarshal(b, "ExternalInit", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.1.6);
// it implements encoding.BinaryMarshaler.
func (v *ExternalInit) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one ExternalInit (RFC 9420, Section 12.1.6) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *ExternalInit) UnmarshalBinary(b []byte) error { return codec.Unmarshal(b, "ExternalInit", v) }

// UnmarshalGroupContextExtensions decodes exactly one GroupContextExtensions (RFC 9420, Section 12.1.7) from b,
// rejecting trailing bytes.
func UnmarshalGroupContextExtensions(b []byte) (*GroupContextExtensions, error) {
	v := new(GroupContextExtensions)
	if err := codec.Unmarshal(b, "GroupContextExtensions", v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.1.7);
// it implements encoding.BinaryMarshaler.
func (v *GroupContextExtensions) MarshalBinary() ([]byte, error) { return codec.Marshal(v) }

// UnmarshalBinary decodes exactly one GroupContextExtensions (RFC 9420, Section 12.1.7) from b into v;
// it implements encoding.BinaryUnmarshaler.
func (v *GroupContextExtensions) UnmarshalBinary(b []byte) error {
	return codec.Unmarshal(b, "GroupContextExtensions", v)
}

// UnmarshalRatchetTree decodes exactly one RatchetTree (RFC 9420, Section 12.4.3.3) from b,
// rejecting trailing bytes.
func UnmarshalRatchetTree(b []byte) (RatchetTree, error) {
	var v RatchetTree
	if err := codec.Unmarshal(b, "ratchet_tree", &v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.4.3.3);
// it implements encoding.BinaryMarshaler.
func (v RatchetTree) MarshalBinary() ([]byte, error) { return codec.Marshal(&v) }

// UnmarshalExternalSenders decodes exactly one ExternalSenders (RFC 9420, Section 12.1.8.1) from b,
// rejecting trailing bytes.
func UnmarshalExternalSenders(b []byte) (ExternalSenders, error) {
	var v ExternalSenders
	if err := codec.Unmarshal(b, "external_senders", &v); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the encoding of v (RFC 9420, Section 12.1.8.1);
// it implements encoding.BinaryMarshaler.
func (v ExternalSenders) MarshalBinary() ([]byte, error) { return codec.Marshal(&v) }
