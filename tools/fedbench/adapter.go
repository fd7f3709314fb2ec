package main

import (
	"context"
	"sync/atomic"
	"time"

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
	// capture, when set, receives application messages instead of the
	// provider (see captureSubmits).
	capture atomic.Pointer[captureFunc]
}

// captureFunc takes a submission that is not sent.
type captureFunc func(client string, req *mimi.SubmitMessageRequest)

// captureSubmits makes SubmitMessage hand every request to f and answer
// it as accepted without sending it, until it is called with nil. The
// benchmark uses it to have the clients encrypt their messages (RFC 9420,
// Section 6.3: each PrivateMessage is protected with the sender's next
// generation key) before the measured window, and submits the captured
// requests, in the order each client produced them, inside it.
func (l *localProvider) captureSubmits(f captureFunc) {
	if f == nil {
		l.capture.Store(nil)
		return
	}
	l.capture.Store(&f)
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
	if c := l.capture.Load(); c != nil && req != nil {
		(*c)(cl, req)
		return &mimi.SubmitMessageResponse{Protocol: mimi.ProtocolMLS10, Code: mimi.SubmitAccepted, AcceptedTimestamp: uint64(time.Now().UnixMilli())}, nil
	}
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
