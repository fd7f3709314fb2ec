package client

import (
	"context"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/wire"
)

// Provider is what a MIMI client needs from its own provider: the
// client-to-provider half of draft-ralston-mimi-protocol-02, Section 3,
// which the draft shows in [[ double brackets ]] and leaves to each
// provider. The provider relays to the room's hub (Section 5) where the
// room is hosted elsewhere.
//
// Every method names the calling client (a client URI). An implementation
// that crosses a network (the Connect API) must authenticate that the
// caller is that client; an in-process adapter over provider.Provider may
// trust it. Bodies are the draft's own structures, so an implementation
// can carry them in their wire encoding (mimi.Encode / mimi.Decode).
//
// Errors are for failures to obtain an answer (transport, unknown client,
// unavailable). A refusal the draft expresses as a response code
// (wrongEpoch, notAllowed, userUnknown, notAuthorized, ...) must be
// returned as the response, not as an error: the client branches on it.
// An implementation that retries internally must not hide a try that got
// no answer: if such a try of an update is followed by a wrongEpoch
// answer, it returns an error instead (the hub may have taken the first
// try; the client then keeps its commit pending rather than discarding
// it, see the package documentation).
type Provider interface {
	// RegisterClient registers a client of a user of this provider with
	// its MLS credential (a basic credential carrying mimi.ClientIdentity,
	// docs/wire.md) and signature public key.
	RegisterClient(ctx context.Context, cred wire.Credential, sigPub []byte) error
	// UploadKeyPackages publishes KeyPackages of a registered client
	// (Section 4.3.1, "Server State").
	UploadKeyPackages(ctx context.Context, client string, kps []*wire.KeyPackage) error
	// KeyMaterial claims KeyPackages of all the target user's clients for
	// a room (Section 5.2), through the room's hub, on behalf of client
	// (whose user is req.RequestingUser). The provider and the hub record
	// the KeyPackageRefs so that the Welcome can be routed (Section 4.3.1).
	KeyMaterial(ctx context.Context, client string, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error)
	// CreateRoom creates a room hosted by this provider (Section 3.1:
	// room creation is local to the hub) from the creator's MLS group: its
	// signed GroupInfo without the ratchet_tree extension, and its tree.
	CreateRoom(ctx context.Context, client, room string, gi *wire.GroupInfo, tree wire.RatchetTree) error
	// Update submits proposals or a commit to the room's hub
	// (Section 5.3).
	Update(ctx context.Context, client, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error)
	// SubmitMessage submits an application message to the room's hub
	// (Section 5.4).
	SubmitMessage(ctx context.Context, client, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error)
	// GroupInfo fetches the room's GroupInfo and ratchet tree from its hub
	// for an external join (Section 5.6). The response is the hub's,
	// signed by it; the client verifies it.
	GroupInfo(ctx context.Context, client, room string, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error)
	// Inbox returns up to limit (0: no limit) messages queued for the
	// client at positions >= from, oldest first: everything the hubs fanned
	// out to it (Section 5.5), in each room's hub order. Positions
	// strictly increase.
	Inbox(ctx context.Context, client string, from uint64, limit int) ([]InboxEntry, error)
	// Ack acknowledges (and lets the provider drop) every inbox entry up to
	// and including position upTo.
	Ack(ctx context.Context, client string, upTo uint64) error
	// HubSender returns the external_senders entry of the hub of a room
	// hosted by this provider (Section 6.4: every room's group lists its
	// hub as an external sender).
	HubSender(ctx context.Context, room string) (wire.ExternalSender, error)
}

// InboxEntry is one message queued for a client (draft-ralston-mimi-
// protocol-02, Section 5.5): its inbox position, the room it belongs to and
// the FanoutMessage (the hub's acceptance time, the MLSMessage, and for a
// Welcome the ratchet tree).
type InboxEntry struct {
	Seq     uint64
	Room    string
	Message mimi.FanoutMessage
}
