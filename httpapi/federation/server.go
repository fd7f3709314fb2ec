package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/provider"
)

// Handler serves the federation endpoints of one provider
// (draft-ralston-mimi-protocol-02, Section 5) behind the transport's
// authentication (Section 4.1): the directory at
// /.well-known/mimi-protocol-directory and POST {prefix}{endpoint}/{id...}
// for keyMaterial, update, submitMessage, notify and groupInfo at the
// paths of transport.Endpoint.Path (the default directory's). See the
// package documentation for the status codes.
type Handler struct {
	p   *provider.Provider
	srv *transport.Server
	log *slog.Logger
	mux *http.ServeMux
}

// NewHandler returns the federation handler of p on srv, which must serve
// p's domain. logger may be nil (slog.Default()).
func NewHandler(p *provider.Provider, srv *transport.Server, logger *slog.Logger) (*Handler, error) {
	if p == nil || srv == nil {
		return nil, errors.New("federation: provider and transport server are required")
	}
	if !srv.Serves(p.Domain()) {
		return nil, fmt.Errorf("federation: the transport server does not serve %s", p.Domain())
	}
	if logger == nil {
		logger = slog.Default()
	}
	h := &Handler{p: p, srv: srv, log: logger, mux: http.NewServeMux()}
	h.mux.Handle(mimi.WellKnownDirectory, srv.Authenticate(srv.DirectoryHandler()))
	route := func(ep transport.Endpoint, f http.HandlerFunc) {
		h.mux.Handle("POST "+ep.Path()+"{id...}", srv.Authenticate(f))
	}
	route(transport.KeyMaterial, h.keyMaterial)
	route(transport.Update, roomEndpoint(h, "UpdateRequest", p.Update))
	route(transport.SubmitMessage, roomEndpoint(h, "SubmitMessageRequest", p.SubmitMessage))
	route(transport.Notify, h.notify)
	route(transport.GroupInfo, roomEndpoint(h, "GroupInfoRequest", p.GroupInfo))
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// request holds what every endpoint starts with: the authenticated peer,
// the identifier from the path and the body.
type request struct {
	peer string
	id   mimi.URI
	body []byte
}

// begin checks the target, parses the path identifier and reads the body;
// on failure it has written the response.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request, kind mimi.URIKind) (*request, bool) {
	peer, ok := transport.PeerFromContext(r.Context())
	if !ok {
		h.text(w, http.StatusUnauthorized, "unauthenticated peer")
		return nil, false
	}
	if target, _ := transport.TargetFromContext(r.Context()); target != h.p.Domain() {
		h.text(w, http.StatusMisdirectedRequest, "this server does not handle "+target)
		return nil, false
	}
	id, err := mimi.ParsePathID(r.PathValue("id"), kind)
	if err != nil {
		h.text(w, http.StatusBadRequest, "bad identifier in path: "+err.Error())
		return nil, false
	}
	body, err := transport.ReadBody(w, r)
	if err != nil {
		return nil, false
	}
	return &request{peer: peer.Domain, id: id, body: body}, true
}

// decode decodes a body; on failure it writes 400 naming the structure.
func (h *Handler) decode(w http.ResponseWriter, rq *request, name string, u codec.Unmarshaler) bool {
	if err := mimi.Decode(rq.body, name, u); err != nil {
		h.text(w, http.StatusBadRequest, "malformed "+name+": "+err.Error())
		return false
	}
	return true
}

func (h *Handler) keyMaterial(w http.ResponseWriter, r *http.Request) {
	rq, ok := h.begin(w, r, mimi.KindUser)
	if !ok {
		return
	}
	var req mimi.KeyMaterialRequest
	if err := mimi.Decode(rq.body, "KeyMaterialRequest", &req); err != nil {
		if errors.Is(err, mimi.ErrUnsupportedProtocol) && otherProtocol(rq.body, rq.id.String()) {
			// Section 5.2: incompatibleProtocol.
			h.reply(w, http.StatusOK, &mimi.KeyMaterialResponse{Protocol: mimi.ProtocolMLS10,
				UserStatus: mimi.UserIncompatibleProtocol, UserURI: rq.id.String()})
			return
		}
		h.text(w, http.StatusBadRequest, "malformed KeyMaterialRequest: "+err.Error())
		return
	}
	if req.TargetUser != rq.id.String() {
		h.text(w, http.StatusBadRequest, "targetUser differs from the path")
		return
	}
	resp, err := h.p.KeyMaterial(r.Context(), rq.peer, &req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.reply(w, http.StatusOK, resp)
}

func (h *Handler) notify(w http.ResponseWriter, r *http.Request) {
	rq, ok := h.begin(w, r, mimi.KindRoom)
	if !ok {
		return
	}
	if err := h.p.Notify(r.Context(), rq.peer, rq.id.String(), rq.body); err != nil {
		h.fail(w, r, err)
		return
	}
	// Section 5.5: the response has no body; 201 for accepted (and for a
	// duplicate).
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// roomEndpoint serves an endpoint whose path names a room and whose body is
// one MIMI request answered by one MIMI response with 200
// (draft-ralston-mimi-protocol-02, Sections 5.3, 5.4 and 5.6): update,
// submitMessage and groupInfo.
func roomEndpoint[Req any, PReq interface {
	*Req
	codec.Unmarshaler
}, Resp codec.Marshaler](h *Handler, name string, call func(ctx context.Context, peer, room string, req PReq) (Resp, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rq, ok := h.begin(w, r, mimi.KindRoom)
		if !ok {
			return
		}
		req := PReq(new(Req))
		if !h.decode(w, rq, name, req) {
			return
		}
		resp, err := call(r.Context(), rq.peer, rq.id.String(), req)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.reply(w, http.StatusOK, resp)
	}
}

// reply writes a MIMI body.
func (h *Handler) reply(w http.ResponseWriter, status int, m codec.Marshaler) {
	b, err := mimi.Encode(m)
	if err != nil {
		h.log.Error("federation: encoding a response", "err", err)
		h.text(w, http.StatusInternalServerError, "internal error")
		return
	}
	w.Header().Set("Content-Type", transport.MediaType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// text writes a short text/plain error.
func (h *Handler) text(w http.ResponseWriter, status int, msg string) {
	if len(msg) > 512 {
		msg = msg[:512]
	}
	http.Error(w, "mimi: "+msg, status)
}

// Status returns the HTTP status for a provider error: 400 ErrInvalid,
// 403 ErrForbidden, 404 ErrNoSuchRoom and ErrUnknownClient, 502 ErrPeer,
// 503 ErrUnavailable, 500 anything else.
func Status(err error) int {
	switch {
	case errors.Is(err, provider.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, provider.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, provider.ErrNoSuchRoom), errors.Is(err, provider.ErrUnknownClient):
		return http.StatusNotFound
	case errors.Is(err, provider.ErrPeer):
		return http.StatusBadGateway
	case errors.Is(err, provider.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// fail writes the status of a provider error; internal errors are logged
// and not described to the peer.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := Status(err)
	switch status {
	case http.StatusInternalServerError:
		h.log.Error("federation: request failed", "path", r.URL.Path, "err", err)
		h.text(w, status, "internal error")
		return
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	if status >= 500 {
		h.log.Warn("federation: request failed", "path", r.URL.Path, "status", status, "err", err)
	}
	h.text(w, status, err.Error())
}

// otherProtocol reports whether body is a KeyMaterialRequest for a
// protocol other than mls10 (and not reserved(0)) whose protocol-independent
// part is well formed: the requesting user, the target user (that of the
// path) and the room (draft-ralston-mimi-protocol-02, Section 5.2). Such a
// request gets incompatibleProtocol; anything else is malformed.
func otherProtocol(body []byte, target string) bool {
	r := codec.NewReader(body)
	if p := r.U8("KeyMaterialRequest.protocol"); p == uint8(mimi.ProtocolReserved) || p == uint8(mimi.ProtocolMLS10) {
		return false
	}
	var ids [3]string
	for i, k := range []mimi.URIKind{mimi.KindUser, mimi.KindUser, mimi.KindRoom} {
		b := r.Opaque("KeyMaterialRequest.uri")
		if r.Err() != nil {
			return false
		}
		if _, err := mimi.ParseURIKind(string(b), k); err != nil {
			return false
		}
		ids[i] = string(b)
	}
	return ids[1] == target
}
