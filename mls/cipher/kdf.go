package cipher

import (
	"crypto/hmac"
	"fmt"
)

// MAC returns HMAC(key, data) with the suite hash (RFC 9420, Section 5.2).
func (s *Suite) MAC(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// Extract is HKDF-Extract(salt, ikm) (RFC 5869, Section 2.2) with the suite
// hash. An empty salt is equivalent to Nh zero bytes.
func (s *Suite) Extract(salt, ikm []byte) []byte {
	return s.MAC(salt, ikm)
}

// Expand is HKDF-Expand(prk, info, length) (RFC 5869, Section 2.3). It
// fails if length is negative or exceeds 255*Nh.
func (s *Suite) Expand(prk, info []byte, length int) ([]byte, error) {
	if length < 0 || length > 255*s.nh {
		return nil, fmt.Errorf("mls cipher: HKDF-Expand length %d out of range [0, %d]", length, 255*s.nh)
	}
	out := make([]byte, 0, length+s.nh)
	if length == 0 {
		return out, nil
	}
	m := hmac.New(s.newHash, prk)
	var prev []byte
	for ctr := byte(1); len(out) < length; ctr++ {
		m.Reset()
		m.Write(prev)
		m.Write(info)
		m.Write([]byte{ctr})
		start := len(out)
		out = m.Sum(out)
		prev = out[start:]
	}
	return out[:length:length], nil
}

// ExpandWithLabel (RFC 9420, Section 8): Expand with KDFLabel{length,
// "MLS 1.0 " + label, context}.
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 0xffff {
		return nil, fmt.Errorf("mls cipher: ExpandWithLabel %q: length %d does not fit uint16", label, length)
	}
	info, err := kdfLabel(uint16(length), label, context)
	if err != nil {
		return nil, fmt.Errorf("mls cipher: ExpandWithLabel %q: %w", label, err)
	}
	out, err := s.Expand(secret, info, length)
	if err != nil {
		return nil, fmt.Errorf("mls cipher: ExpandWithLabel %q: %w", label, err)
	}
	return out, nil
}

// DeriveSecret (RFC 9420, Section 8) is ExpandWithLabel(secret, label, "", Nh).
func (s *Suite) DeriveSecret(secret []byte, label string) ([]byte, error) {
	return s.ExpandWithLabel(secret, label, nil, s.nh)
}

// DeriveTreeSecret (RFC 9420, Section 9) is ExpandWithLabel(secret, label,
// uint32 generation, length).
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	ctx := []byte{byte(generation >> 24), byte(generation >> 16), byte(generation >> 8), byte(generation)}
	return s.ExpandWithLabel(secret, label, ctx, length)
}
