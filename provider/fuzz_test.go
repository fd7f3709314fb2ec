package provider_test

import (
	"testing"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/provider"
	"github.com/openmimi/mimi/provider/providertest"
)

// FuzzHub feeds hostile bodies to the hub's update, submitMessage and
// groupInfo logic and a follower's notify: whatever decodes must be
// answered or refused, never panic.
func FuzzHub(f *testing.F) {
	w := newWorld(f)
	w.createRoom()
	w.aliceAddsBob("admin")
	_, up := providertest.Commit(f, w.bobG, nil)
	sp, err := w.bobG.ProposeSelfRemove(nil)
	if err != nil {
		f.Fatal(err)
	}
	w.bobG.SetConfig(mls.Config{AllowAppDataWithPendingProposals: true})
	seed := func(kind byte, m codec.Marshaler) {
		b, err := mimi.Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{kind}, b...))
	}
	seed(0, up)
	seed(0, providertest.Proposals(sp.Message))
	seed(1, providertest.Message(f, w.bobG, "x"))
	seed(2, providertest.GroupInfoRequest(f, w.bob))
	if resp, err := w.a.P.LocalSubmitMessage(w.ctx, w.alice.Client, room, providertest.Message(f, w.aliceG, "x")); err != nil || resp.Code != mimi.SubmitAccepted {
		f.Fatal(err, resp)
	}
	pending, _ := w.a.M.FanoutPending("b.example", 0)
	for _, d := range pending {
		fm, err := provider.ResolveDelivery(w.a.M, d)
		if err != nil {
			f.Fatal(err)
		}
		b, err := mimi.MarshalFanout([]mimi.FanoutMessage{*fm})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{3}, b...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		body := data[1:]
		switch data[0] % 4 {
		case 0:
			var req mimi.UpdateRequest
			if mimi.Decode(body, "UpdateRequest", &req) == nil {
				_, _ = w.a.P.Update(w.ctx, "b.example", room, &req)
			}
		case 1:
			var req mimi.SubmitMessageRequest
			if mimi.Decode(body, "SubmitMessageRequest", &req) == nil {
				_, _ = w.a.P.SubmitMessage(w.ctx, "b.example", room, &req)
			}
		case 2:
			var req mimi.GroupInfoRequest
			if mimi.Decode(body, "GroupInfoRequest", &req) == nil {
				_, _ = w.a.P.GroupInfo(w.ctx, "b.example", room, &req)
			}
		case 3:
			_ = w.b.P.Notify(w.ctx, "a.example", room, body)
		}
	})
}
