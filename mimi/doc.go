// Package mimi implements the MIMI protocol of draft-ralston-mimi-protocol-02
// without transport or storage: identifier URIs (Section 3), the
// TLS-presentation-language bodies of every provider-to-provider endpoint
// (Section 5), and the room state carried in MLS application state
// (Sections 4.3, 6 and 7).
package mimi
