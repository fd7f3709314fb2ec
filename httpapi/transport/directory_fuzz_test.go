package transport

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/openmimi/mimi/mimi"
)

// FuzzFetchedDirectory runs a peer's directory document through the checks
// of a fetch (draft-ralston-mimi-protocol-02, Section 5.1): mimi.ParseDirectory
// and checkDirectoryHosts. They must never panic, and an accepted
// directory must send every request, whatever the identifier, to an https
// URL on the target or its subdomains.
func FuzzFetchedDirectory(f *testing.F) {
	const target = "b.example"
	for _, d := range []*mimi.Directory{
		DefaultDirectory("https://b.example"),
		DefaultDirectory("https://mimi.b.example:8443/api"),
		DefaultDirectory("https://b.example.evil.example"),
		{KeyMaterial: "https://{targetUser}", Update: "https://b.example/u/{roomId}", Notify: "https://{roomId}@b.example/",
			SubmitMessage: "https://b.example{roomId}", GroupInfo: "https://B.EXAMPLE/g/{roomId}"},
	} {
		b, err := json.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ids := []mimi.URI{
		{Kind: mimi.KindUser, Provider: "b.example", ID: "bob"},
		{Kind: mimi.KindRoom, Provider: "evil.example", ID: "x"},
		{Kind: mimi.KindRoom, Provider: "a.example", ID: "x.b.example"},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := mimi.ParseDirectory(b)
		if err != nil || checkDirectoryHosts(d, target) != nil {
			return
		}
		for _, e := range Endpoints {
			tmpl, err := e.Template(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				raw := mimi.Expand(tmpl, id)
				u, err := url.Parse(raw)
				if err != nil || u.Scheme != "https" || !withinDomain(asciiLower(u.Hostname()), target) {
					t.Fatalf("accepted %s template %q sends %s to %q (%v)", e, tmpl, id, raw, err)
				}
			}
		}
	})
}
