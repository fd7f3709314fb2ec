package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// GroupInfo serves POST /groupInfo/{roomId} from peer as the room's hub
// (draft-ralston-mimi-protocol-02, Section 5.6). See hubGroupInfo.
func (p *Provider) GroupInfo(ctx context.Context, peer, room string, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error) {
	return p.hubGroupInfo(source{domain: peer}, room, req)
}

// LocalGroupInfo fetches the GroupInfo and tree of a room for a local
// client about to join by external commit (draft-ralston-mimi-protocol-02,
// Section 3.6): answered here for rooms hosted here, fetched from the hub
// otherwise (and its signature checked).
func (p *Provider) LocalGroupInfo(ctx context.Context, client, room string, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error) {
	hub, err := p.localRoomHub(client, room)
	if err != nil {
		return nil, err
	}
	if hub == p.domain {
		return p.hubGroupInfo(source{domain: p.domain, client: client}, room, req)
	}
	rem, err := p.remoteOrErr()
	if err != nil {
		return nil, err
	}
	resp, err := rem.GroupInfo(ctx, hub, room, req)
	if err != nil {
		return nil, fmt.Errorf("provider: group info via hub %s: %w", hub, err)
	}
	if err := resp.Verify(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPeer, err)
	}
	return resp, nil
}

func groupInfoStatus(code mimi.GroupInfoCode) *mimi.GroupInfoResponse {
	return &mimi.GroupInfoResponse{Version: mimi.ProtocolMLS10, Status: code}
}

// hubGroupInfo answers a GroupInfo request for a room hosted here
// (draft-ralston-mimi-protocol-02, Section 5.6). The request signature
// must verify under the requesting signature key; the requesting
// credential must carry a MIMI client identity (docs/wire.md) of a client
// of the provider asking (or, locally, be the registered client with its
// registered key); and that client's user must be a participant of the
// room (joining codes are not supported: a request with one is judged by
// the credential alone). Otherwise the answer is notAuthorized; for a room
// not hosted here, noSuchRoom. On success the hub returns the current
// GroupInfo and ratchet tree with its external sender entry, signed with
// its key.
func (p *Provider) hubGroupInfo(src source, room string, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", ErrInvalid)
	}
	rec, err := p.hostedRoom(room)
	if errors.Is(err, ErrNoSuchRoom) {
		return groupInfoStatus(mimi.GroupInfoNoSuchRoom), nil
	}
	if err != nil {
		return nil, err
	}
	if err := req.Verify(); err != nil {
		return groupInfoStatus(mimi.GroupInfoNotAuthorized), nil
	}
	id, err := identityOf(&req.RequestingCredential)
	if err != nil || providerOf(id.Client) != src.domain {
		return groupInfoStatus(mimi.GroupInfoNotAuthorized), nil
	}
	if src.client != "" {
		c, err := p.localClient(src.client)
		if err != nil {
			return nil, err
		}
		if id.Client != src.client || !bytes.Equal(c.SignatureKey, req.RequestingSignatureKey) {
			return groupInfoStatus(mimi.GroupInfoNotAuthorized), nil
		}
	}
	eff, err := effectiveRoom(rec)
	if err != nil {
		return nil, err
	}
	if rec.Closed || !isParticipant(eff, id.User) {
		return groupInfoStatus(mimi.GroupInfoNotAuthorized), nil
	}
	var gi wire.GroupInfo
	if err := codec.Unmarshal(rec.GroupInfo, "GroupInfo", &gi); err != nil {
		return nil, fmt.Errorf("provider: room %s: stored GroupInfo: %w", room, err)
	}
	var rt wire.RatchetTree
	if err := codec.Unmarshal(rec.RatchetTree, "ratchet_tree", &rt); err != nil {
		return nil, fmt.Errorf("provider: room %s: stored tree: %w", room, err)
	}
	resp := &mimi.GroupInfoResponse{
		Version:           mimi.ProtocolMLS10,
		Status:            mimi.GroupInfoSuccess,
		CipherSuite:       gi.GroupContext.CipherSuite,
		RoomID:            []byte(room),
		HubSender:         p.hubSend,
		GroupInfo:         gi,
		RatchetTreeOption: mimi.RatchetTreeOption{Representation: mimi.RatchetTreeFull, Tree: rt},
	}
	if err := resp.Sign(p.hubPriv); err != nil {
		return nil, fmt.Errorf("provider: signing GroupInfoResponse: %w", err)
	}
	return resp, nil
}
