package main

import (
	"context"
	"sync/atomic"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/client/local"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/wire"
	"github.com/openmimi/mimi/provider"
)

// submitHook is told about every application message a sender submits
// (draft-ralston-mimi-protocol-02, Section 5.4) just before the provider
// call; the returned function is called with the outcome when the call
// returns.
type submitHook func(msg *wire.MLSMessage) (done func(accepted bool))

// localProvider attaches the benchmark's clients to their provider in
// process (client/local) and times their submissions through a hook.
type localProvider struct {
	*local.Provider
	hook atomic.Pointer[submitHook]
}

var _ client.Provider = (*localProvider)(nil)

func newLocalProvider(p *provider.Provider) *localProvider {
	return &localProvider{Provider: local.New(p, nil)}
}

func (l *localProvider) setHook(h submitHook) {
	if h == nil {
		l.hook.Store(nil)
		return
	}
	l.hook.Store(&h)
}

// SubmitMessage implements client.Provider, calling the hook around the
// provider's LocalSubmitMessage.
func (l *localProvider) SubmitMessage(ctx context.Context, cl, room string, req *mimi.SubmitMessageRequest) (*mimi.SubmitMessageResponse, error) {
	var done func(bool)
	if h := l.hook.Load(); h != nil && req != nil {
		done = (*h)(&req.AppMessage)
	}
	resp, err := l.Provider.SubmitMessage(ctx, cl, room, req)
	if done != nil {
		done(err == nil && resp != nil && resp.Code == mimi.SubmitAccepted)
	}
	return resp, err
}
