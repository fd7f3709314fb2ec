package main

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/provider"
)

// submitHook is told about every application message a sender submits
// (draft-ralston-mimi-protocol-02, Section 5.4) just before the provider
// call; the returned function is called with the outcome when the call
// returns.
type submitHook func(msg *wire.MLSMessage) (done func(accepted bool))

// localProvider adapts an in-process *provider.Provider (the client's own
// provider, running inside an internal/daemon instance) to client.Provider,
// the client-to-provider half of draft-ralston-mimi-protocol-02, Section 3.
// It trusts the client URI it is given, as an in-process adapter may. It
// is deliberately minimal: the benchmark needs nothing more, and the
// project's own adapter package had not landed when this was written.
type localProvider struct {
	p    *provider.Provider
	hook atomic.Pointer[submitHook]
}

var _ client.Provider = (*localProvider)(nil)

func (l *localProvider) setHook(h submitHook) {
	if h == nil {
		l.hook.Store(nil)
		return
	}
	l.hook.Store(&h)
}

func (l *localProvider) RegisterClient(ctx context.Context, cred wire.Credential, sigPub []byte) error {
	_, err := l.p.RegisterClient(ctx, cred, sigPub)
	return err
}

func (l *localProvider) UploadKeyPackages(ctx context.Context, cl string, kps []*wire.KeyPackage) error {
	_, err := l.p.UploadKeyPackages(ctx, cl, kps)
	return err
}

func (l *localProvider) KeyMaterial(ctx context.Context, cl string, req *mimi.KeyMaterialRequest) (*mimi.KeyMaterialResponse, error) {
	return l.p.LocalKeyMaterial(ctx, cl, req)
}

func (l *localProvider) CreateRoom(ctx context.Context, cl, room string, gi *wire.GroupInfo, tree wire.RatchetTree) error {
	return l.p.CreateRoom(ctx, cl, room, gi, tree)
}

func (l *localProvider) Update(ctx context.Context, cl, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	return l.p.LocalUpdate(ctx, cl, room, req)
}

func (l *localProvider) SubmitMessage(ctx context.Context, cl, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	var done func(bool)
	if h := l.hook.Load(); h != nil && req != nil {
		done = (*h)(&req.AppMessage)
	}
	resp, err := l.p.LocalSubmitMessage(ctx, cl, room, req)
	if done != nil {
		done(err == nil && resp != nil && resp.Code == mimi.SubmitAccepted)
	}
	return resp, err
}

func (l *localProvider) GroupInfo(ctx context.Context, cl, room string, req *mimi.GroupInfoRequest) (*mimi.GroupInfoResponse, error) {
	return l.p.LocalGroupInfo(ctx, cl, room, req)
}

func (l *localProvider) Inbox(_ context.Context, cl string, from uint64, limit int) ([]client.InboxEntry, error) {
	es, err := l.p.Inbox(cl, from, limit)
	if err != nil {
		return nil, err
	}
	out := make([]client.InboxEntry, 0, len(es))
	for _, e := range es {
		out = append(out, client.InboxEntry{Seq: e.N, Room: e.Room, Message: e.Message})
	}
	return out, nil
}

func (l *localProvider) Ack(ctx context.Context, cl string, upTo uint64) error {
	return l.p.Ack(ctx, cl, upTo)
}

func (l *localProvider) HubSender(_ context.Context, room string) (wire.ExternalSender, error) {
	u, err := mimi.ParseURI(room)
	if err != nil {
		return wire.ExternalSender{}, fmt.Errorf("fedbench: room %q: %w", room, err)
	}
	if u.Provider != l.p.Domain() {
		return wire.ExternalSender{}, fmt.Errorf("fedbench: room %s is not hosted at %s", room, l.p.Domain())
	}
	return l.p.HubSender(), nil
}
