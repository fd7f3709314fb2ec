package transport

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/openmimi/mimi/mimi"
)

// ErrDomainMismatch is wrapped by VerifyDomain when a certificate does not
// authenticate a provider domain (draft-ralston-mimi-protocol-02, Section
// 4.1; RFC 6125, Section 6).
var ErrDomainMismatch = errors.New("transport: certificate does not authenticate domain")

// MatchDNSID reports whether the DNS-ID presented in a certificate
// authenticates the reference identifier domain, following RFC 6125,
// Section 6.4:
//
//   - comparison is case-insensitive, ASCII only (RFC 6125, Section 6.4.1);
//     a presented identifier with any non-ASCII byte never matches, so
//     Unicode case folding cannot turn, say, U+212A KELVIN SIGN into "k";
//   - the reference must be a valid provider domain (mimi.ValidateDomain
//     after ASCII lower-casing, and a top-level label that is not all
//     digits, RFC 3696, Section 2);
//   - a wildcard is honoured only as the entire left-most label "*." and
//     matches exactly one non-empty label (RFC 6125, Section 6.4.3); partial
//     ("a*.example", "*a.example"), embedded ("a.*.example") and bare ("*")
//     wildcards never match, nor does a wildcard whose remainder is not
//     itself a valid domain of at least two labels ("*.example");
//   - no trailing-dot or other normalisation is applied: "a.example." does
//     not match "a.example".
func MatchDNSID(presented, reference string) bool {
	ref := asciiLower(reference)
	if validDomain(ref) != nil {
		return false
	}
	p := asciiLower(presented)
	if p == "" {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] >= 0x80 {
			return false
		}
	}
	if !strings.Contains(p, "*") {
		return p == ref
	}
	rest, ok := strings.CutPrefix(p, "*.")
	if !ok || strings.Contains(rest, "*") || validDomain(rest) != nil {
		return false
	}
	first, ok := strings.CutSuffix(ref, "."+rest)
	return ok && first != "" && !strings.Contains(first, ".")
}

// VerifyDomain checks that cert authenticates domain by a DNS-ID in its
// subjectAltName extension (RFC 6125, Section 6.4, via MatchDNSID), as
// draft-ralston-mimi-protocol-02, Section 4.1 requires of both the client
// and the server certificate. The subject common name is never consulted
// (RFC 6125, Section 6.4.4 allows it only as a fallback, which we do not
// take). The error wraps ErrDomainMismatch.
func VerifyDomain(cert *x509.Certificate, domain string) error {
	if cert == nil {
		return fmt.Errorf("%w %q: no certificate", ErrDomainMismatch, domain)
	}
	for _, n := range cert.DNSNames {
		if MatchDNSID(n, domain) {
			return nil
		}
	}
	return fmt.Errorf("%w %q: no matching DNS subjectAltName", ErrDomainMismatch, domain)
}

// asciiLower lower-cases ASCII letters only.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// canonicalDomain lower-cases s (ASCII) and validates it as a provider
// domain (draft-ralston-mimi-protocol-02, Section 3).
// Beyond mimi.ValidateDomain, the last label must not be all digits (RFC
// 3696, Section 2), so that an IPv4 address is never taken for a domain.
func canonicalDomain(s string) (string, error) {
	d := asciiLower(s)
	if err := validDomain(d); err != nil {
		return "", err
	}
	return d, nil
}

// validDomain is mimi.ValidateDomain plus the rule that the top-level label
// is not all-numeric (RFC 3696, Section 2).
func validDomain(d string) error {
	if err := mimi.ValidateDomain(d); err != nil {
		return err
	}
	if allDigits(d[strings.LastIndexByte(d, '.')+1:]) {
		return errors.New("top-level label is all digits")
	}
	return nil
}

// withinDomain reports whether host (lower-case) is domain or a subdomain
// of it.
func withinDomain(host, domain string) bool {
	return host == domain || strings.HasSuffix(host, "."+domain)
}
