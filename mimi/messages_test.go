package mimi

import (
	"bytes"
	"errors"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/wire"
)

// fixture holds MLS objects from the official messages.json vectors, used
// to build realistic MIMI bodies.
type fixture struct {
	KeyPackage *wire.KeyPackage
	Welcome    *wire.Welcome
	GroupInfo  *wire.GroupInfo
	Tree       wire.RatchetTree
	Proposal   *wire.PublicMessage
	Commit     *wire.PublicMessage
	Private    *wire.MLSMessage
}

func loadFixtures(t testing.TB) []fixture {
	t.Helper()
	var cases []struct {
		Welcome   vectors.Hex `json:"mls_welcome"`
		GroupInfo vectors.Hex `json:"mls_group_info"`
		KP        vectors.Hex `json:"mls_key_package"`
		Tree      vectors.Hex `json:"ratchet_tree"`
		Proposal  vectors.Hex `json:"public_message_proposal"`
		Commit    vectors.Hex `json:"public_message_commit"`
		Private   vectors.Hex `json:"private_message"`
	}
	vectors.Load(t, "messages.json", &cases)
	var out []fixture
	for _, c := range cases {
		var f fixture
		msg := func(b []byte) *wire.MLSMessage {
			m, err := wire.UnmarshalMLSMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		f.KeyPackage = msg(c.KP).KeyPackage
		f.Welcome = msg(c.Welcome).Welcome
		f.GroupInfo = msg(c.GroupInfo).GroupInfo
		f.Proposal = msg(c.Proposal).PublicMessage
		f.Commit = msg(c.Commit).PublicMessage
		f.Private = msg(c.Private)
		if err := codec.Unmarshal(c.Tree, "ratchet_tree", &f.Tree); err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

type body interface {
	codec.Marshaler
	codec.Unmarshaler
}

// roundTrip encodes in, decodes into out, re-encodes and compares.
func roundTrip(t *testing.T, name string, in, out body) []byte {
	t.Helper()
	b, err := Encode(in)
	if err != nil {
		t.Fatalf("%s: encode: %v", name, err)
	}
	if err := Decode(b, name, out); err != nil {
		t.Fatalf("%s: decode: %v", name, err)
	}
	b2, err := Encode(out)
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("%s: re-encoding differs (%v)", name, err)
	}
	// Every strict prefix fails to decode; one extra byte fails too.
	for i := 0; i < len(b); i += 1 + len(b)/64 {
		if err := Decode(b[:i], name, out); err == nil {
			t.Fatalf("%s: truncated to %d bytes decoded", name, i)
		}
	}
	if err := Decode(append(bytes.Clone(b), 0), name, out); !errors.Is(err, codec.ErrTrailingData) && err == nil {
		t.Fatalf("%s: trailing byte accepted", name)
	}
	return b
}

func TestBodiesRoundTrip(t *testing.T) {
	for _, f := range loadFixtures(t) {
		tree := &RatchetTreeOption{Representation: RatchetTreeFull, Tree: f.Tree}
		roundTrip(t, "KeyMaterialRequest", &KeyMaterialRequest{
			Protocol: ProtocolMLS10, RequestingUser: "mimi://a.example/u/alice", TargetUser: "mimi://b.example/u/bob",
			RoomID: "mimi://a.example/r/clubhouse", AcceptableCiphersuites: []cipher.SuiteID{1, 3},
			RequiredCapabilities: wire.RequiredCapabilities{ExtensionTypes: []wire.ExtensionType{5}, ProposalTypes: []wire.ProposalType{}, CredentialTypes: []wire.CredentialType{1}},
		}, new(KeyMaterialRequest))
		roundTrip(t, "KeyMaterialResponse", &KeyMaterialResponse{
			Protocol: ProtocolMLS10, UserStatus: UserPartialSuccess, UserURI: "mimi://b.example/u/bob",
			Clients: []ClientKeyMaterial{
				{Status: ClientSuccess, ClientURI: "mimi://b.example/d/b1", KeyPackage: f.KeyPackage},
				{Status: ClientKeyMaterialExhausted, ClientURI: "mimi://b.example/d/b2"},
				{Status: ClientNothingCompatible, ClientURI: "mimi://b.example/d/b3", Capabilities: &f.KeyPackage.LeafNode.Capabilities},
				{Status: ClientNothingCompatible, ClientURI: "mimi://b.example/d/b4"},
			},
		}, new(KeyMaterialResponse))
		roundTrip(t, "UpdateRequest(commit)", &UpdateRequest{ProposalOrCommit: *f.Commit, Welcome: f.Welcome, GroupInfo: f.GroupInfo, RatchetTreeOption: tree}, new(UpdateRequest))
		roundTrip(t, "UpdateRequest(commit, no welcome)", &UpdateRequest{ProposalOrCommit: *f.Commit, GroupInfo: f.GroupInfo, RatchetTreeOption: tree}, new(UpdateRequest))
		roundTrip(t, "UpdateRequest(proposals)", &UpdateRequest{ProposalOrCommit: *f.Proposal, MoreProposals: []wire.PublicMessage{*f.Proposal, *f.Proposal}}, new(UpdateRequest))
		for _, resp := range []*UpdateRoomResponse{
			{Code: UpdateSuccess, AcceptedTimestamp: 1700000000123},
			{Code: UpdateWrongEpoch, ErrorDescription: "epoch is 7", CurrentEpoch: 7},
			{Code: UpdateNotAllowed, ErrorDescription: "bob lacks canAddUser"},
			{Code: UpdateInvalidProposal, InvalidProposals: [][]byte{{1, 2, 3}, bytes.Repeat([]byte{9}, 32)}},
		} {
			roundTrip(t, "UpdateRoomResponse", resp, new(UpdateRoomResponse))
		}
		roundTrip(t, "SubmitMessageRequest", &SubmitMessageRequest{Protocol: ProtocolMLS10, AppMessage: *f.Private}, new(SubmitMessageRequest))
		for _, resp := range []*SubmitMessageResponse{
			{Protocol: ProtocolMLS10, Code: SubmitAccepted, AcceptedTimestamp: 99},
			{Protocol: ProtocolMLS10, Code: SubmitNotAllowed},
			{Protocol: ProtocolMLS10, Code: SubmitEpochTooOld, CurrentEpoch: 3},
		} {
			roundTrip(t, "SubmitMessageResponse", resp, new(SubmitMessageResponse))
		}
		welcomeMsg := wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatWelcome, Welcome: f.Welcome}
		commitMsg := wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: f.Commit}
		batch := []FanoutMessage{{Timestamp: 1, Message: *f.Private}, {Timestamp: 2, Message: welcomeMsg, RatchetTreeOption: tree}, {Timestamp: 3, Message: commitMsg}}
		b, err := MarshalFanout(batch)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalFanout(b)
		if err != nil || len(got) != 3 || got[1].RatchetTreeOption == nil || got[2].Timestamp != 3 {
			t.Fatalf("fanout batch: %v %d", err, len(got))
		}
		if b2, _ := MarshalFanout(got); !bytes.Equal(b, b2) {
			t.Fatal("fanout batch re-encoding differs")
		}
		if _, err := UnmarshalFanout(b[:len(b)-1]); err == nil {
			t.Fatal("truncated fanout batch decoded")
		}
		roundTrip(t, "GroupInfoResponse", &GroupInfoResponse{
			Version: ProtocolMLS10, Status: GroupInfoSuccess, CipherSuite: 1, RoomID: []byte("mimi://a.example/r/clubhouse"),
			HubSender: wire.ExternalSender{SignatureKey: []byte{1, 2}, Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte("a.example")}},
			GroupInfo: *f.GroupInfo, RatchetTreeOption: *tree, Signature: []byte{7},
		}, new(GroupInfoResponse))
	}
	roundTrip(t, "GroupInfoResponse(noSuchRoom)", &GroupInfoResponse{Version: ProtocolMLS10, Status: GroupInfoNoSuchRoom}, new(GroupInfoResponse))
}

func TestBodiesReject(t *testing.T) {
	fx := loadFixtures(t)[0]
	enc := func(m codec.Marshaler) []byte {
		b, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kmr := &KeyMaterialRequest{Protocol: ProtocolMLS10, RequestingUser: "mimi://a.example/u/alice", TargetUser: "mimi://b.example/u/bob",
		RoomID: "mimi://a.example/r/clubhouse", AcceptableCiphersuites: []cipher.SuiteID{1}}
	wrongProto := *kmr
	wrongProto.Protocol = 2
	noSuites := *kmr
	noSuites.AcceptableCiphersuites = nil
	roomAsUser := *kmr
	roomAsUser.TargetUser = "mimi://b.example/r/bob"
	badResp := &KeyMaterialResponse{Protocol: ProtocolMLS10, UserStatus: UserUnknown, UserURI: "mimi://b.example/u/bob",
		Clients: []ClientKeyMaterial{{Status: ClientKeyMaterialExhausted, ClientURI: "mimi://b.example/d/b1"}}}
	privAsSubmit := wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: fx.Commit}
	appUpdate := *fx.Commit
	appUpdate.Content.ContentType = wire.ContentApplication
	appUpdate.Content.Commit = nil
	appUpdate.Content.ApplicationData = []byte("hi")
	appUpdate.Auth.ConfirmationTag = nil
	tests := []struct {
		name string
		b    []byte
		into codec.Unmarshaler
		want error
	}{
		{"wrong protocol", enc(&wrongProto), new(KeyMaterialRequest), ErrUnsupportedProtocol},
		{"empty ciphersuites", enc(&noSuites), new(KeyMaterialRequest), codec.ErrInvalidValue},
		{"target not a user", enc(&roomAsUser), new(KeyMaterialRequest), codec.ErrInvalidValue},
		{"clients with userUnknown", enc(badResp), new(KeyMaterialResponse), codec.ErrInvalidValue},
		{"submit of a public message", enc(&SubmitMessageRequest{Protocol: ProtocolMLS10, AppMessage: privAsSubmit}), new(SubmitMessageRequest), codec.ErrInvalidValue},
		{"update with application data", func() []byte {
			w := codec.NewWriter()
			appUpdate.MarshalMLS(w)
			w.Vector(func(*codec.Writer) {})
			b, _ := w.Bytes()
			return b
		}(), new(UpdateRequest), nil},
		{"unknown update code", []byte{9, 0}, new(UpdateRoomResponse), codec.ErrInvalidValue},
		{"unknown groupinfo code", []byte{1, 0}, new(GroupInfoResponse), codec.ErrInvalidValue},
		{"tree option reserved", []byte{0}, new(RatchetTreeOption), codec.ErrInvalidValue},
	}
	for _, tc := range tests {
		err := Decode(tc.b, tc.name, tc.into)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := UnmarshalFanout(nil); err == nil {
		t.Error("empty fanout body accepted")
	}
}

func TestGroupInfoRequestSignature(t *testing.T) {
	s, err := cipher.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	req := &GroupInfoRequest{Protocol: ProtocolMLS10, CipherSuite: 1, RequestingSignatureKey: pub,
		RequestingCredential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte("mimi://c.example/d/c3")}, JoiningCode: []byte("code")}
	if err := req.Sign(priv); err != nil {
		t.Fatal(err)
	}
	var got GroupInfoRequest
	roundTrip(t, "GroupInfoRequest", req, &got)
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	got.JoiningCode = nil
	if err := got.Verify(); !errors.Is(err, cipher.ErrBadSignature) {
		t.Fatalf("tampered request verified: %v", err)
	}
}

func FuzzFanout(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 2})
	for _, m := range sampleBodies(f) {
		if b, err := Encode(m); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := UnmarshalFanout(b)
		if err != nil {
			return
		}
		b2, err := MarshalFanout(msgs)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("round trip differs: %v", err)
		}
		// SplitFanout's pieces are the messages' encodings, in order,
		// and make up the body.
		_, raw, err := SplitFanout(b)
		if err != nil || len(raw) != len(msgs) || !bytes.Equal(bytes.Join(raw, nil), b) {
			t.Fatalf("split: %d pieces for %d messages, %v", len(raw), len(msgs), err)
		}
		for i := range msgs {
			one, err := MarshalFanout(msgs[i : i+1])
			if err != nil || !bytes.Equal(one, raw[i]) {
				t.Fatalf("piece %d differs from the message's encoding: %v", i, err)
			}
		}
	})
}

// TestSplitFanout: the pieces of a body of concatenated FanoutMessages are
// each message's own encoding (draft-ralston-mimi-protocol-02, Section
// 5.5), and a bad body yields no pieces.
func TestSplitFanout(t *testing.T) {
	var one [][]byte
	var fms []FanoutMessage
	for _, m := range sampleBodies(t) {
		if fm, ok := m.(*FanoutMessage); ok {
			fms = append(fms, *fm)
			b, err := MarshalFanout([]FanoutMessage{*fm})
			if err != nil {
				t.Fatal(err)
			}
			one = append(one, b)
		}
	}
	body := bytes.Join([][]byte{one[1], one[0], one[1]}, nil)
	msgs, raw, err := SplitFanout(body)
	if err != nil || len(msgs) != 3 || len(raw) != 3 {
		t.Fatalf("%d messages, %d pieces, %v", len(msgs), len(raw), err)
	}
	for i, want := range [][]byte{one[1], one[0], one[1]} {
		if !bytes.Equal(raw[i], want) {
			t.Errorf("piece %d differs", i)
		}
	}
	if msgs[1].Timestamp != fms[0].Timestamp || msgs[0].Timestamp != fms[1].Timestamp {
		t.Error("messages out of order")
	}
	for _, bad := range [][]byte{nil, body[:len(body)-1], append(bytes.Clone(body), 0)} {
		if m, r, err := SplitFanout(bad); err == nil || m != nil || r != nil {
			t.Errorf("bad body of %d bytes accepted", len(bad))
		}
	}
}

// sampleBodies encodes one of each MIMI body from the official MLS
// vectors, to seed the fuzzers.
func sampleBodies(tb testing.TB) []codec.Marshaler {
	fx := loadFixtures(tb)[0]
	tree := &RatchetTreeOption{Representation: RatchetTreeFull, Tree: fx.Tree}
	welcome := wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatWelcome, Welcome: fx.Welcome}
	return []codec.Marshaler{
		&KeyMaterialRequest{Protocol: ProtocolMLS10, RequestingUser: "mimi://a.example/u/alice", TargetUser: "mimi://b.example/u/bob",
			RoomID: "mimi://a.example/r/clubhouse", AcceptableCiphersuites: []cipher.SuiteID{1}},
		&KeyMaterialResponse{Protocol: ProtocolMLS10, UserStatus: UserSuccess, UserURI: "mimi://b.example/u/bob",
			Clients: []ClientKeyMaterial{{Status: ClientSuccess, ClientURI: "mimi://b.example/d/b1", KeyPackage: fx.KeyPackage}}},
		&UpdateRequest{ProposalOrCommit: *fx.Commit, Welcome: fx.Welcome, GroupInfo: fx.GroupInfo, RatchetTreeOption: tree},
		&UpdateRequest{ProposalOrCommit: *fx.Proposal, MoreProposals: []wire.PublicMessage{*fx.Proposal}},
		&UpdateRoomResponse{Code: UpdateInvalidProposal, InvalidProposals: [][]byte{{1}}},
		&SubmitMessageRequest{Protocol: ProtocolMLS10, AppMessage: *fx.Private},
		&SubmitMessageResponse{Protocol: ProtocolMLS10, Code: SubmitEpochTooOld, CurrentEpoch: 4},
		&GroupInfoRequest{Protocol: ProtocolMLS10, CipherSuite: 1, RequestingSignatureKey: []byte{1}, RequestingCredential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte("x")}},
		&GroupInfoResponse{Version: ProtocolMLS10, Status: GroupInfoSuccess, CipherSuite: 1, RoomID: []byte("r"), GroupInfo: *fx.GroupInfo, RatchetTreeOption: *tree},
		&FanoutMessage{Timestamp: 5, Message: welcome, RatchetTreeOption: tree},
		&FanoutMessage{Timestamp: 6, Message: *fx.Private},
	}
}

func fuzzBody[T any, P interface {
	*T
	body
}](f *testing.F, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s)
	}
	for _, m := range sampleBodies(f) {
		if b, err := Encode(m); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v T
		if err := Decode(b, "body", P(&v)); err != nil {
			return
		}
		b2, err := Encode(P(&v))
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("round trip differs: %v", err)
		}
	})
}

func FuzzKeyMaterialRequest(f *testing.F) { fuzzBody[KeyMaterialRequest](f, []byte{1}) }
func FuzzKeyMaterialResponse(f *testing.F) {
	fuzzBody[KeyMaterialResponse](f, []byte{1, 4, 22, 'm', 'i', 'm', 'i', ':', '/', '/', 'b', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '/', 'u', '/', 'b', 'o', 'b', 0})
}
func FuzzUpdateRequest(f *testing.F) { fuzzBody[UpdateRequest](f, []byte{0, 1}) }
func FuzzUpdateRoomResponse(f *testing.F) {
	fuzzBody[UpdateRoomResponse](f, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
}
func FuzzSubmitMessageRequest(f *testing.F) { fuzzBody[SubmitMessageRequest](f, []byte{1, 0, 1, 0, 2}) }
func FuzzSubmitMessageResponse(f *testing.F) {
	fuzzBody[SubmitMessageResponse](f, []byte{1, 2, 0, 0, 0, 0, 0, 0, 0, 3})
}
func FuzzGroupInfoRequest(f *testing.F)  { fuzzBody[GroupInfoRequest](f, []byte{1, 0, 1, 0}) }
func FuzzGroupInfoResponse(f *testing.F) { fuzzBody[GroupInfoResponse](f, []byte{1, 3}) }
