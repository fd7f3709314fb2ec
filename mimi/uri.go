package mimi

import (
	"errors"
	"fmt"
	"strings"
)

// URIKind is the kind of entity a MIMI URI names
// (draft-ralston-mimi-protocol-02, Section 3).
type URIKind uint8

// The identifier types of draft-ralston-mimi-protocol-02, Section 3.
const (
	KindProvider URIKind = iota + 1
	KindUser
	KindClient
	KindRoom
	KindGroup
)

var kindSegment = map[URIKind]string{KindUser: "u", KindClient: "d", KindRoom: "r", KindGroup: "g"}

func (k URIKind) String() string {
	switch k {
	case KindProvider:
		return "provider"
	case KindUser:
		return "user"
	case KindClient:
		return "client"
	case KindRoom:
		return "room"
	case KindGroup:
		return "group"
	}
	return fmt.Sprintf("URIKind(%d)", uint8(k))
}

// ErrInvalidURI is wrapped by every URI parsing error.
var ErrInvalidURI = errors.New("mimi: invalid URI")

// URI is a parsed MIMI URI: mimi://provider, mimi://provider/u/user,
// mimi://provider/d/client, mimi://provider/r/room or
// mimi://provider/g/group (draft-ralston-mimi-protocol-02, Section 3).
type URI struct {
	Kind     URIKind
	Provider string // lower-case DNS name, the "host" of the authority
	ID       string // the user, client, room or group name; empty for a provider
}

// Limits on URI sizes, against hostile input.
const (
	maxURILen   = 1024
	maxLabelLen = 63
	maxHostLen  = 253
)

// ParseURI parses and strictly validates a MIMI URI. The scheme must be
// exactly "mimi", the authority a DNS host name (no user info, no port), the
// path empty or one of /u/, /d/, /r/, /g/ followed by a non-empty identifier
// of unreserved characters (RFC 3986, Section 2.3); no query or fragment.
func ParseURI(s string) (URI, error) {
	fail := func(why string) (URI, error) {
		return URI{}, fmt.Errorf("%w %q: %s", ErrInvalidURI, truncate(s), why)
	}
	if len(s) > maxURILen {
		return fail("too long")
	}
	rest, ok := strings.CutPrefix(s, "mimi://")
	if !ok {
		return fail("scheme must be mimi://")
	}
	host, path, _ := strings.Cut(rest, "/")
	if err := ValidateDomain(host); err != nil {
		return fail(err.Error())
	}
	u := URI{Kind: KindProvider, Provider: host}
	if path == "" {
		if strings.HasSuffix(rest, "/") {
			return fail("trailing slash")
		}
		return u, nil
	}
	seg, id, ok := strings.Cut(path, "/")
	if !ok || id == "" {
		return fail("path must be /u/, /d/, /r/ or /g/ followed by an identifier")
	}
	switch seg {
	case "u":
		u.Kind = KindUser
	case "d":
		u.Kind = KindClient
	case "r":
		u.Kind = KindRoom
	case "g":
		u.Kind = KindGroup
	default:
		return fail("unknown path segment " + seg)
	}
	for i := 0; i < len(id); i++ {
		if !isUnreserved(id[i]) {
			return fail(fmt.Sprintf("identifier has invalid character %q", id[i]))
		}
	}
	u.ID = id
	return u, nil
}

// ParseURIKind parses s and requires it to be of kind k.
func ParseURIKind(s string, k URIKind) (URI, error) {
	u, err := ParseURI(s)
	if err != nil {
		return URI{}, err
	}
	if u.Kind != k {
		return URI{}, fmt.Errorf("%w %q: is a %s URI, want a %s URI", ErrInvalidURI, truncate(s), u.Kind, k)
	}
	return u, nil
}

// String returns the canonical form.
func (u URI) String() string {
	if u.Kind == KindProvider {
		return "mimi://" + u.Provider
	}
	return "mimi://" + u.Provider + "/" + kindSegment[u.Kind] + "/" + u.ID
}

// ProviderURI returns the URI of the provider that u belongs to.
func (u URI) ProviderURI() URI { return URI{Kind: KindProvider, Provider: u.Provider} }

// ValidateDomain checks that s is a lower-case DNS host name as used for
// provider domains: labels of letters, digits and hyphens, not starting or
// ending with a hyphen, at least two labels, and a top-level label that is
// not all digits (so no IPv4 address passes).
func ValidateDomain(s string) error {
	if s == "" {
		return errors.New("empty host")
	}
	if len(s) > maxHostLen {
		return errors.New("host too long")
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return errors.New("host must have at least two labels")
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return errors.New("all-numeric top-level label (an IP address is not a provider domain)")
	}
	for _, l := range labels {
		if l == "" || len(l) > maxLabelLen {
			return errors.New("bad host label length")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("host label starts or ends with '-'")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("host has invalid character %q (must be lower-case letters, digits, '-')", c)
			}
		}
	}
	return nil
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
