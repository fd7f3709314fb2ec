package clientapi_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	clientv1 "github.com/openmimi/mimi/gen/mimi/client/v1"
	"github.com/openmimi/mimi/gen/mimi/client/v1/clientv1connect"
	"github.com/openmimi/mimi/httpapi/clientapi"
	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls/cipher"
)

// TestMalformedBytes: authenticated calls whose bytes fields do not decode
// (or decode to something the provider finds inconsistent) are refused
// with InvalidArgument and change no state: the projections digest is
// unchanged.
func TestMalformedBytes(t *testing.T) {
	e := newSingle(t, clientapi.Config{})
	alice := userURI("a.example", "alice")
	a1 := newClient(t, e.ctx, e.api, alice, "alice1", 1)
	if err := a1.CreateRoom(e.ctx, room, flowPolicy(), []mimi.Participant{{User: alice, Role: "admin"}}); err != nil {
		t.Fatal(err)
	}
	km, err := mimi.Encode(&mimi.KeyMaterialRequest{Protocol: mimi.ProtocolMLS10, RequestingUser: alice, TargetUser: alice, RoomID: room, AcceptableCiphersuites: nil})
	if err != nil {
		t.Fatal(err)
	}
	garbage := []byte{0xff, 0x00, 0x13, 0x37}
	rpc := e.api.rpc
	s := a1.s
	P := func(name string) string { return "/" + clientv1connect.ClientServiceName + "/" + name }
	cases := []struct {
		name string
		call func(ctx context.Context, now time.Time) error
	}{
		{"RegisterClient credential", func(ctx context.Context, now time.Time) error {
			_, err := rpc.RegisterClient(ctx, signed(t, s, P("RegisterClient"), &clientv1.RegisterClientRequest{Credential: garbage, SignatureKey: s.PublicKey()}, now))
			return err
		}},
		{"UploadKeyPackages none", func(ctx context.Context, now time.Time) error {
			_, err := rpc.UploadKeyPackages(ctx, signed(t, s, P("UploadKeyPackages"), &clientv1.UploadKeyPackagesRequest{}, now))
			return err
		}},
		{"UploadKeyPackages garbage", func(ctx context.Context, now time.Time) error {
			_, err := rpc.UploadKeyPackages(ctx, signed(t, s, P("UploadKeyPackages"), &clientv1.UploadKeyPackagesRequest{KeyPackages: [][]byte{garbage}}, now))
			return err
		}},
		{"KeyMaterial garbage", func(ctx context.Context, now time.Time) error {
			_, err := rpc.KeyMaterial(ctx, signed(t, s, P("KeyMaterial"), &clientv1.KeyMaterialRequest{Body: garbage}, now))
			return err
		}},
		{"KeyMaterial no suites", func(ctx context.Context, now time.Time) error {
			_, err := rpc.KeyMaterial(ctx, signed(t, s, P("KeyMaterial"), &clientv1.KeyMaterialRequest{Body: km}, now))
			return err
		}},
		{"KeyMaterial trailing bytes", func(ctx context.Context, now time.Time) error {
			good, _ := mimi.Encode(&mimi.KeyMaterialRequest{Protocol: mimi.ProtocolMLS10, RequestingUser: alice, TargetUser: alice, RoomID: room, AcceptableCiphersuites: []cipher.SuiteID{suite}})
			_, err := rpc.KeyMaterial(ctx, signed(t, s, P("KeyMaterial"), &clientv1.KeyMaterialRequest{Body: append(good, 0)}, now))
			return err
		}},
		{"CreateRoom GroupInfo", func(ctx context.Context, now time.Time) error {
			_, err := rpc.CreateRoom(ctx, signed(t, s, P("CreateRoom"), &clientv1.CreateRoomRequest{Room: "mimi://a.example/r/other", GroupInfo: garbage}, now))
			return err
		}},
		{"CreateRoom tree", func(ctx context.Context, now time.Time) error {
			gi := groupInfoBytes(t, e)
			_, err := rpc.CreateRoom(ctx, signed(t, s, P("CreateRoom"), &clientv1.CreateRoomRequest{Room: "mimi://a.example/r/other", GroupInfo: gi, RatchetTree: garbage}, now))
			return err
		}},
		{"CreateRoom existing", func(ctx context.Context, now time.Time) error {
			rec, _ := e.node.M.Room(room)
			_, err := rpc.CreateRoom(ctx, signed(t, s, P("CreateRoom"), &clientv1.CreateRoomRequest{Room: room, GroupInfo: rec.GroupInfo, RatchetTree: rec.RatchetTree}, now))
			return err
		}},
		{"Update garbage", func(ctx context.Context, now time.Time) error {
			_, err := rpc.Update(ctx, signed(t, s, P("Update"), &clientv1.UpdateRequest{Room: room, Body: garbage}, now))
			return err
		}},
		{"Update empty", func(ctx context.Context, now time.Time) error {
			_, err := rpc.Update(ctx, signed(t, s, P("Update"), &clientv1.UpdateRequest{Room: room}, now))
			return err
		}},
		{"SubmitMessage garbage", func(ctx context.Context, now time.Time) error {
			_, err := rpc.SubmitMessage(ctx, signed(t, s, P("SubmitMessage"), &clientv1.SubmitMessageRequest{Room: room, Body: garbage}, now))
			return err
		}},
		{"GroupInfo garbage", func(ctx context.Context, now time.Time) error {
			_, err := rpc.GroupInfo(ctx, signed(t, s, P("GroupInfo"), &clientv1.GroupInfoRequest{Room: room, Body: garbage}, now))
			return err
		}},
		{"HubSender not a room", func(ctx context.Context, now time.Time) error {
			_, err := rpc.HubSender(ctx, signed(t, s, P("HubSender"), &clientv1.HubSenderRequest{Room: "mimi://a.example/u/alice"}, now))
			return err
		}},
		{"Ack beyond the inbox", func(ctx context.Context, now time.Time) error {
			_, err := rpc.Ack(ctx, signed(t, s, P("Ack"), &clientv1.AckRequest{UpTo: 1 << 40}, now))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.node.Digest(t)
			wantCode(t, tc.name, tc.call(e.ctx, time.Now()), connect.CodeInvalidArgument)
			if after := e.node.Digest(t); !bytes.Equal(before, after) {
				t.Fatal("the state changed")
			}
		})
	}
}

// groupInfoBytes returns the hub's stored GroupInfo of the room.
func groupInfoBytes(t *testing.T, e *single) []byte {
	t.Helper()
	rec, err := e.node.M.Room(room)
	if err != nil {
		t.Fatal(err)
	}
	return rec.GroupInfo
}
