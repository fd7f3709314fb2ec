package mimi

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// WellKnownDirectory is the path of the directory document
// (draft-ralston-mimi-protocol-02, Section 5.1).
const WellKnownDirectory = "/.well-known/mimi-protocol-directory"

// Directory is the JSON directory document listing each endpoint's URL
// template (draft-ralston-mimi-protocol-02, Section 5.1). Templates contain
// {targetUser} or {roomId}.
type Directory struct {
	KeyMaterial   string `json:"keyMaterial"`
	Update        string `json:"update"`
	Notify        string `json:"notify"`
	SubmitMessage string `json:"submitMessage"`
	GroupInfo     string `json:"groupInfo"`
}

// maxDirectory bounds the directory document size we accept.
const maxDirectory = 64 << 10

// ParseDirectory decodes and validates a directory document: every
// endpoint must be an absolute https URL with the right placeholder.
func ParseDirectory(b []byte) (*Directory, error) {
	if len(b) > maxDirectory {
		return nil, fmt.Errorf("mimi: directory document too large")
	}
	var d Directory
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("mimi: directory: %w", err)
	}
	for _, e := range []struct{ name, tmpl, ph string }{
		{"keyMaterial", d.KeyMaterial, "{targetUser}"},
		{"update", d.Update, "{roomId}"},
		{"notify", d.Notify, "{roomId}"},
		{"submitMessage", d.SubmitMessage, "{roomId}"},
		{"groupInfo", d.GroupInfo, "{roomId}"},
	} {
		if strings.Count(e.tmpl, e.ph) != 1 {
			return nil, fmt.Errorf("mimi: directory %s: template must contain %s once", e.name, e.ph)
		}
		u, err := url.Parse(strings.Replace(e.tmpl, e.ph, "x", 1))
		if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("mimi: directory %s: %q is not an absolute https URL", e.name, e.tmpl)
		}
	}
	return &d, nil
}

// PathID is how a MIMI URI appears in an endpoint path: the URI without its
// "mimi://" scheme, as in "/notify/a.example/r/clubhouse"
// (draft-ralston-mimi-protocol-02, Section 3).
func PathID(u URI) string { return strings.TrimPrefix(u.String(), "mimi://") }

// ParsePathID parses the path form of a URI of kind k.
func ParsePathID(s string, k URIKind) (URI, error) { return ParseURIKind("mimi://"+s, k) }

// Expand fills a template's placeholder with the path form of u.
// Each placeholder is replaced once, left to right, so an identifier that
// itself contains a placeholder is not expanded again.
func Expand(template string, u URI) string {
	return expand(template, PathID(u))
}

func expand(template, id string) string {
	i := strings.IndexByte(template, '{')
	if i < 0 {
		return template
	}
	var b strings.Builder
	b.Grow(len(template) + len(id))
	for i >= 0 {
		b.WriteString(template[:i])
		template = template[i:]
		switch {
		case strings.HasPrefix(template, "{targetUser}"):
			b.WriteString(id)
			template = template[len("{targetUser}"):]
		case strings.HasPrefix(template, "{roomId}"):
			b.WriteString(id)
			template = template[len("{roomId}"):]
		default:
			b.WriteByte('{')
			template = template[1:]
		}
		i = strings.IndexByte(template, '{')
	}
	b.WriteString(template)
	return b.String()
}
