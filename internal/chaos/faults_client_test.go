package chaos

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openmimi/mimi/client"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/wire"
)

// linkedServer starts a TLS server that counts the requests it processed
// and a client link in front of it, and returns an HTTP client through the
// link.
func linkedServer(t *testing.T) (*clientLink, *http.Client, string, *atomic.Int64) {
	t.Helper()
	var processed atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		processed.Add(1)
		_, _ = io.WriteString(w, "done")
	}))
	t.Cleanup(srv.Close)
	base := srv.Client().Transport.(*http.Transport).Clone()
	l, err := newClientLink(strings.TrimPrefix(srv.URL, "https://"), base, rand.New(rand.NewPCG(3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.close)
	return l, &http.Client{Transport: l, Timeout: 5 * time.Second}, "https://" + l.addr(), &processed
}

func get(hc *http.Client, url string) (string, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestClientLink checks the three client link faults: a refused link
// fails calls before they reach the provider, a black-holed one holds
// them until it heals, and an answer-losing one lets the provider process
// each request and fails the call.
func TestClientLink(t *testing.T) {
	l, hc, url, processed := linkedServer(t)
	if body, err := get(hc, url); err != nil || body != "done" {
		t.Fatalf("connected: %q, %v", body, err)
	}

	l.set(ClientAnswerLost, 100)
	before := processed.Load()
	if _, err := get(hc, url); !errors.Is(err, errAnswerLost) {
		t.Fatalf("answer lost: got %v, want errAnswerLost", err)
	}
	if processed.Load() != before+1 || l.AnswersLost.Load() != 1 {
		t.Fatalf("answer lost: processed %d (want %d), lost %d", processed.Load(), before+1, l.AnswersLost.Load())
	}
	l.set(ClientAnswerLost, 50)
	before, lostBefore := processed.Load(), l.AnswersLost.Load()
	failed := 0
	for range 40 {
		if _, err := get(hc, url); err != nil {
			failed++
		}
	}
	if processed.Load() != before+40 || l.AnswersLost.Load()-lostBefore != int64(failed) || failed == 0 || failed == 40 {
		t.Fatalf("half the answers lost: %d of 40 calls failed, %d processed, %d lost", failed, processed.Load()-before, l.AnswersLost.Load()-lostBefore)
	}
	l.set("", 0)
	if _, err := get(hc, url); err != nil {
		t.Fatalf("healed after answer lost: %v", err)
	}

	l.set(ClientRefused, 0)
	before = processed.Load()
	if _, err := get(hc, url); err == nil {
		t.Fatal("refused: the call succeeded")
	}
	if processed.Load() != before {
		t.Fatal("refused: the request reached the server")
	}
	l.set("", 0)
	hc.CloseIdleConnections()

	l.set(ClientBlackHoled, 0)
	done := make(chan error, 1)
	go func() { _, err := get(hc, url); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("black-holed: the call ended (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	l.set("", 0)
	if err := <-done; err != nil {
		t.Fatalf("black hole healed: %v", err)
	}
	if want := int64(3 + 40 - failed); l.Answered.Load() != want {
		t.Errorf("answered %d calls, want %d", l.Answered.Load(), want)
	}
}

// noAnswer in a fakeUpdates script fails the call.
const noAnswer mimi.UpdateResponseCode = 255

// fakeUpdates answers update requests from a script: an error (noAnswer)
// or a response code.
type fakeUpdates struct {
	client.Provider
	script []mimi.UpdateResponseCode
}

func (f *fakeUpdates) Update(ctx context.Context, cl, room string, req *mimi.UpdateRequest) (*mimi.UpdateRoomResponse, error) {
	code := f.script[0]
	f.script = f.script[1:]
	if code == noAnswer {
		return nil, errAnswerLost
	}
	return &mimi.UpdateRoomResponse{Code: code, CurrentEpoch: 7}, nil
}

// TestRecordResentCommit checks how a commit the SDK sends again with the
// same bytes is recorded: one record over every call, and a wrongEpoch
// answer after a try without an answer settles nothing (the hub may have
// taken the commit), while one to a first try is a refusal.
func TestRecordResentCommit(t *testing.T) {
	const wrong, success = mimi.UpdateWrongEpoch, mimi.UpdateSuccess
	rec := newRecorder()
	fake := &fakeUpdates{}
	p := &retrying{Provider: fake, rec: rec, AttemptTimeout: time.Second, rng: rand.New(rand.NewPCG(1, 2))}
	commit := func(n byte) *mimi.UpdateRequest {
		return &mimi.UpdateRequest{ProposalOrCommit: wire.PublicMessage{
			Content: wire.FramedContent{GroupID: []byte{n}, Sender: wire.Sender{Type: wire.SenderMember}, ContentType: wire.ContentCommit, Commit: &wire.Commit{}},
			Auth:    wire.FramedContentAuthData{Signature: []byte{1}, ConfirmationTag: []byte{2}}, MembershipTag: []byte{3}}}
	}
	ctx := context.Background()
	fake.script = []mimi.UpdateResponseCode{noAnswer, noAnswer, wrong, wrong, success}
	// The SDK's three tries (each one call: GiveUp 0), then a later
	// settlement of the unresolved commit.
	for range 3 {
		if _, err := p.Update(ctx, "c", "r", commit(1)); err != nil && !errors.Is(err, errAnswerLost) {
			t.Fatal(err)
		}
	}
	cs := rec.Commits()
	if len(cs) != 1 || cs[0].Attempts != 3 || cs[0].Acked || cs[0].Refusal != "" || rec.ambiguousAnswers() != 1 {
		t.Fatalf("after lost answers and wrongEpoch: %+v, ambiguous %d", cs, rec.ambiguousAnswers())
	}
	if _, err := p.Update(ctx, "c", "r", commit(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Update(ctx, "c", "r", commit(1)); err != nil {
		t.Fatal(err)
	}
	cs = rec.Commits()
	if len(cs) != 2 || cs[0].Attempts != 4 || !cs[0].Acked || cs[1].Refusal == "" || cs[1].Acked || rec.ambiguousAnswers() != 1 {
		t.Fatalf("after a refusal and an acceptance: %+v, ambiguous %d", cs, rec.ambiguousAnswers())
	}
}

// TestRetryingTellsUnanswered: when the harness's own resend of a commit
// follows a try without an answer and is answered wrongEpoch, the SDK is
// told that a try went unanswered, not handed the bare wrongEpoch (which
// would make it discard a commit the hub may have taken); the answer to
// its own next try reaches it.
func TestRetryingTellsUnanswered(t *testing.T) {
	const wrong = mimi.UpdateWrongEpoch
	fake := &fakeUpdates{script: []mimi.UpdateResponseCode{noAnswer, wrong, wrong}}
	p := &retrying{Provider: fake, rec: newRecorder(), AttemptTimeout: time.Second, GiveUp: time.Minute, rng: rand.New(rand.NewPCG(1, 2))}
	req := &mimi.UpdateRequest{ProposalOrCommit: wire.PublicMessage{
		Content: wire.FramedContent{GroupID: []byte{1}, Sender: wire.Sender{Type: wire.SenderMember}, ContentType: wire.ContentCommit, Commit: &wire.Commit{}},
		Auth:    wire.FramedContentAuthData{Signature: []byte{1}, ConfirmationTag: []byte{2}}, MembershipTag: []byte{3}}}
	ctx := context.Background()
	if resp, err := p.Update(ctx, "c", "r", req); !errors.Is(err, errUnansweredThenWrongEpoch) {
		t.Fatalf("a lost answer, then wrongEpoch: %+v, %v", resp, err)
	}
	if resp, err := p.Update(ctx, "c", "r", req); err != nil || resp.Code != wrong {
		t.Fatalf("the SDK's next try: %+v, %v", resp, err)
	}
	if cs := p.rec.Commits(); len(cs) != 1 || cs[0].Attempts != 3 || cs[0].Refusal != "" || p.rec.ambiguousAnswers() != 2 {
		t.Fatalf("record: %+v, ambiguous %d", cs, p.rec.ambiguousAnswers())
	}
}

// TestInboxCheck checks ProblemInboxProcessing: events going back in
// inbox position, and application messages of others processed twice or
// not at all.
func TestInboxCheck(t *testing.T) {
	rec := newRecorder()
	rec.submits = []*Submit{{Client: "other", Room: "r", Message: []byte("m1")}, {Client: "other", Room: "r", Message: []byte("m2")},
		{Client: "me", Room: "r", Message: []byte("own")}}
	rec.inbox["me"] = map[uint64]Delivery{
		1: {Pos: 1, Room: "r", Message: []byte("m1")}, 2: {Pos: 2, Room: "r", Message: []byte("own")}, 3: {Pos: 3, Room: "r", Message: []byte("m2")}}
	good := &simClient{id: "me", events: []client.Event{{Type: client.EventMessage, Seq: 1}, {Type: client.EventError, Seq: 3}}}
	if ps := inboxCheck([]*simClient{good}, rec); len(ps) != 0 {
		t.Fatalf("good client: %v", ps)
	}
	bad := &simClient{id: "me", events: []client.Event{{Type: client.EventMessage, Seq: 1}, {Type: client.EventMessage, Seq: 1},
		{Type: client.EventProposal, Seq: 4}, {Type: client.EventMembers, Seq: 2}}}
	ps := inboxCheck([]*simClient{bad}, rec)
	var details []string
	for _, p := range ps {
		if p.Kind != ProblemInboxProcessing {
			t.Errorf("kind %s", p.Kind)
		}
		details = append(details, p.Detail)
	}
	// Back from 4 to 2; m1 twice; m2 never.
	if len(ps) != 3 {
		t.Fatalf("bad client: %d problems, want 3: %q", len(ps), details)
	}
}

// TestGateRace checks that a gate of three holds the racing commits until
// all arrived, and tells whether they were of one epoch.
func TestGateRace(t *testing.T) {
	g := &gate{n: 3, open: make(chan struct{})}
	passed := make(chan struct{}, 3)
	for _, e := range []uint64{5, 5} {
		go func() { g.pass(context.Background(), e); passed <- struct{}{} }()
	}
	select {
	case <-passed:
		t.Fatal("a commit passed before the third arrived")
	case <-time.After(100 * time.Millisecond):
	}
	g.pass(context.Background(), 5)
	<-passed
	<-passed
	if !g.sameEpoch() {
		t.Error("three commits of epoch 5: not a full race")
	}
	g2 := &gate{n: 3, open: make(chan struct{}), epochs: []uint64{5, 6, 5}}
	if g2.sameEpoch() {
		t.Error("commits of epochs 5 and 6: a full race")
	}
}
