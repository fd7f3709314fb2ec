package federation

import (
	"context"
	"fmt"
	"net/http"

	"github.com/openmimi/mimi/httpapi/transport"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/provider"
)

// Client calls peer providers' federation endpoints
// (draft-ralston-mimi-protocol-02, Section 5) over a transport.Client: it
// encodes the request body, POSTs it to the endpoint found in the peer's
// directory, checks the status the draft prescribes (200, or 201 for
// /notify) and decodes the response body. It implements provider.Remote.
type Client struct {
	t *transport.Client
}

var _ provider.Remote = (*Client)(nil)

// NewClient returns a Client sending with t.
func NewClient(t *transport.Client) *Client { return &Client{t: t} }

// StatusError reports a peer's answer with an unexpected HTTP status. It
// unwraps to the provider error class of the status (404 ErrNoSuchRoom,
// 403 ErrForbidden, 400 ErrInvalid, 503 ErrUnavailable, otherwise
// ErrPeer).
type StatusError struct {
	Endpoint   transport.Endpoint
	Target     string
	StatusCode int
	// Body is the start of the response body, for diagnostics.
	Body string
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("federation: %s at %s: status %d: %q", e.Endpoint, e.Target, e.StatusCode, e.Body)
}

// Unwrap returns the provider error class of the status.
func (e *StatusError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusNotFound:
		return provider.ErrNoSuchRoom
	case http.StatusForbidden:
		return provider.ErrForbidden
	case http.StatusBadRequest:
		return provider.ErrInvalid
	case http.StatusServiceUnavailable:
		return provider.ErrUnavailable
	}
	return provider.ErrPeer
}

func (c *Client) post(ctx context.Context, target string, ep transport.Endpoint, id string, kind mimi.URIKind,
	body []byte, want int, resp codec.Unmarshaler, name string) error {
	u, err := mimi.ParseURIKind(id, kind)
	if err != nil {
		return fmt.Errorf("%w: %w", provider.ErrInvalid, err)
	}
	r, err := c.t.Post(ctx, target, ep, u, body)
	if err != nil {
		return fmt.Errorf("%w: %s at %s: %w", provider.ErrPeer, ep, target, err)
	}
	if r.StatusCode != want {
		b := r.Body
		if len(b) > 200 {
			b = b[:200]
		}
		return &StatusError{Endpoint: ep, Target: target, StatusCode: r.StatusCode, Body: string(b)}
	}
	if resp == nil {
		return nil
	}
	if err := mimi.Decode(r.Body, name, resp); err != nil {
		return fmt.Errorf("%w: %s at %s: %w", provider.ErrPeer, ep, target, err)
	}
	return nil
}

func encode(m codec.Marshaler) ([]byte, error) {
	b, err := mimi.Encode(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", provider.ErrInvalid, err)
	}
	return b, nil
}

// KeyMaterial POSTs /keyMaterial/{targetUser} to target (Section 5.2).
func (c *Client) KeyMaterial(ctx context.Context, target string, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error) {
	b, err := encode(req)
	if err != nil {
		return nil, err
	}
	var resp mimi.KeyMaterialResponse
	if err := c.post(ctx, target, transport.KeyMaterial, req.TargetUser, mimi.KindUser, b, http.StatusOK, &resp, "KeyMaterialResponse"); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Update POSTs /update/{roomId} to the hub (Section 5.3).
func (c *Client) Update(ctx context.Context, hub, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	b, err := encode(req)
	if err != nil {
		return nil, err
	}
	var resp mimi.UpdateRoomResponse
	if err := c.post(ctx, hub, transport.Update, room, mimi.KindRoom, b, http.StatusOK, &resp, "UpdateRoomResponse"); err != nil {
		return nil, err
	}
	return &resp, nil
}

// SubmitMessage POSTs /submitMessage/{roomId} to the hub (Section 5.4).
func (c *Client) SubmitMessage(ctx context.Context, hub, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	b, err := encode(req)
	if err != nil {
		return nil, err
	}
	var resp mimi.SubmitMessageResponse
	if err := c.post(ctx, hub, transport.SubmitMessage, room, mimi.KindRoom, b, http.StatusOK, &resp, "SubmitMessageResponse"); err != nil {
		return nil, err
	}
	return &resp, nil
}

// GroupInfo POSTs /groupInfo/{roomId} to the hub (Section 5.6). The
// response signature is not checked here (LocalGroupInfo checks it).
func (c *Client) GroupInfo(ctx context.Context, hub, room string, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error) {
	b, err := encode(req)
	if err != nil {
		return nil, err
	}
	var resp mimi.GroupInfoResponse
	if err := c.post(ctx, hub, transport.GroupInfo, room, mimi.KindRoom, b, http.StatusOK, &resp, "GroupInfoResponse"); err != nil {
		return nil, err
	}
	return &resp, nil
}

// Notify POSTs a /notify/{roomId} body (one or more concatenated
// FanoutMessages, built with mimi.MarshalFanout) to a follower (Section
// 5.5) and requires 201. For the fanout worker.
func (c *Client) Notify(ctx context.Context, target, room string, body []byte) error {
	return c.post(ctx, target, transport.Notify, room, mimi.KindRoom, body, http.StatusCreated, nil, "")
}
