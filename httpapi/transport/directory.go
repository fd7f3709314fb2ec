package transport

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/openmimi/mimi/mimi"
)

// Endpoint names one of the endpoints listed in the MIMI directory
// (draft-ralston-mimi-protocol-02, Section 5.1); the value is the JSON
// member name.
type Endpoint string

// The endpoints of draft-ralston-mimi-protocol-02, Sections 5.2 to 5.6.
const (
	KeyMaterial   Endpoint = "keyMaterial"   // Section 5.2, POST /keyMaterial/{targetUser}
	Update        Endpoint = "update"        // Section 5.3, POST /update/{roomId}
	SubmitMessage Endpoint = "submitMessage" // Section 5.4, POST /submitMessage/{roomId}
	Notify        Endpoint = "notify"        // Section 5.5, POST /notify/{roomId}
	GroupInfo     Endpoint = "groupInfo"     // Section 5.6, POST /groupInfo/{roomId}
)

// Endpoints lists every Endpoint (draft-ralston-mimi-protocol-02, Section
// 5.1).
var Endpoints = []Endpoint{KeyMaterial, Update, SubmitMessage, Notify, GroupInfo}

// ErrUnknownEndpoint is returned for an Endpoint value that is not one of
// the constants.
var ErrUnknownEndpoint = errors.New("transport: unknown endpoint")

// Template returns the endpoint's URL template from d
// (draft-ralston-mimi-protocol-02, Section 5.1).
func (e Endpoint) Template(d *mimi.Directory) (string, error) {
	switch e {
	case KeyMaterial:
		return d.KeyMaterial, nil
	case Update:
		return d.Update, nil
	case SubmitMessage:
		return d.SubmitMessage, nil
	case Notify:
		return d.Notify, nil
	case GroupInfo:
		return d.GroupInfo, nil
	}
	return "", fmt.Errorf("%w %q", ErrUnknownEndpoint, string(e))
}

// Path returns the path prefix under which DefaultDirectory places the
// endpoint, e.g. "/v1/keyMaterial/"; the identifier (mimi.PathID) follows
// it. Routers register "POST " + e.Path() + "{id...}".
func (e Endpoint) Path() string { return DefaultPathPrefix + string(e) + "/" }

// DefaultPathPrefix is the path prefix of the default endpoint URLs,
// following the example directory of draft-ralston-mimi-protocol-02,
// Section 5.1.
const DefaultPathPrefix = "/v1/"

// DefaultDirectory returns the directory (draft-ralston-mimi-protocol-02,
// Section 5.1) whose endpoints are baseURL + Endpoint.Path() + placeholder,
// e.g. "https://a.example/v1/notify/{roomId}". Trailing slashes of baseURL
// are ignored.
func DefaultDirectory(baseURL string) *mimi.Directory {
	b := strings.TrimRight(baseURL, "/")
	return &mimi.Directory{
		KeyMaterial:   b + KeyMaterial.Path() + "{targetUser}",
		Update:        b + Update.Path() + "{roomId}",
		Notify:        b + Notify.Path() + "{roomId}",
		SubmitMessage: b + SubmitMessage.Path() + "{roomId}",
		GroupInfo:     b + GroupInfo.Path() + "{roomId}",
	}
}

// DirectoryHandler serves the directory document of the requested domain
// at /.well-known/mimi-protocol-directory (draft-ralston-mimi-protocol-02,
// Section 5.1) as application/json. The domain is the target stored by
// Authenticate if the handler sits behind it, else the Host header (port
// ignored; 421 if not served or not the TLS server name). GET and HEAD are
// allowed; other methods get 405 with an Allow header; other paths 404.
//
// The draft does not say whether the directory needs an authenticated
// peer; mounting it behind Authenticate is recommended (Client always
// authenticates), mounting it bare also works.
func (s *Server) DirectoryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != mimi.WellKnownDirectory {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "mimi: method not allowed", http.StatusMethodNotAllowed)
			return
		}
		target, ok := TargetFromContext(r.Context())
		if !ok {
			var err error
			if target, err = s.target(r); err != nil {
				s.refuse(w, r, http.StatusMisdirectedRequest, err, "Host is not served on this connection")
				return
			}
		}
		d, ok := s.domains[target]
		if !ok {
			s.refuse(w, r, http.StatusMisdirectedRequest, fmt.Errorf("%w: %q", ErrMisdirected, target), "Host is not served on this connection")
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(d.dirJSON)))
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(d.dirJSON)
		}
	})
}
