package providertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/mimi"
	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/wire"
)

// Client is an MLS client of a MIMI user: its identity (docs/wire.md), its
// signature key pair, and the private parts of the KeyPackages it
// published.
type Client struct {
	User, Client string
	Priv, Pub    []byte
	Cred         wire.Credential

	mu      sync.Mutex
	bundles map[string]*mls.KeyPackageBundle
}

// NewClient makes the client mimi://<domain>/d/<client> of
// mimi://<domain>/u/<user>.
func NewClient(t testing.TB, domain, user, client string) *Client {
	t.Helper()
	s, err := cipher.Lookup(Suite)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	id := mimi.ClientIdentity{User: "mimi://" + domain + "/u/" + user, Client: "mimi://" + domain + "/d/" + client}
	cred, err := id.Credential()
	if err != nil {
		t.Fatal(err)
	}
	return &Client{User: id.User, Client: id.Client, Priv: priv, Pub: pub, Cred: cred, bundles: map[string]*mls.KeyPackageBundle{}}
}

// Signer returns the client's MLS signer.
func (c *Client) Signer() mls.Signer { return mls.Signer{Credential: c.Cred, SignaturePriv: c.Priv} }

// Register registers the client at its provider.
func (c *Client) Register(t testing.TB, n *Node) {
	t.Helper()
	if _, err := n.P.RegisterClient(context.Background(), c.Cred, c.Pub); err != nil {
		t.Fatal(err)
	}
}

// KeyPackage makes a KeyPackage (remembering its private keys), with
// opts (nil for defaults).
func (c *Client) KeyPackage(t testing.TB, opts *mls.KeyPackageOptions) *wire.KeyPackage {
	t.Helper()
	b, err := mls.NewKeyPackage(Suite, c.Cred, c.Priv, opts)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := b.Ref()
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.bundles[string(ref)] = b
	c.mu.Unlock()
	return b.KeyPackage
}

// Upload publishes n fresh KeyPackages at the client's provider.
func (c *Client) Upload(t testing.TB, n *Node, count int) [][]byte {
	t.Helper()
	var kps []*wire.KeyPackage
	for range count {
		kps = append(kps, c.KeyPackage(t, &mls.KeyPackageOptions{Clock: n.Clock.Now}))
	}
	refs, err := n.P.UploadKeyPackages(context.Background(), c.Client, kps)
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

// Bundle returns the private KeyPackage for a ref.
func (c *Client) Bundle(ref []byte) *mls.KeyPackageBundle {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bundles[string(ref)]
}

// Join joins a group from a Welcome FanoutMessage addressed to the client.
func (c *Client) Join(t testing.TB, fm *mimi.FanoutMessage) *mls.Group {
	t.Helper()
	if fm.Message.Welcome == nil || fm.RatchetTreeOption == nil {
		t.Fatalf("not a Welcome with a tree")
	}
	for _, s := range fm.Message.Welcome.Secrets {
		if b := c.Bundle(s.NewMember); b != nil {
			g, err := mls.JoinFromWelcome(&fm.Message, b, &mls.JoinOptions{RatchetTree: fm.RatchetTreeOption.Tree})
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
	}
	t.Fatalf("the Welcome is not for %s", c.Client)
	return nil
}

// Room returns a room with the roles
//
//	admin:  canAddUser, canRemoveUser, canSetUserRole, canSendMessage, canSetPolicy
//	member: canSendMessage
//	reader: (nothing)
//
// and the given participants (user -> role).
func Room(id string, participants map[string]string) *mimi.Room {
	rm := &mimi.Room{Policy: mimi.Policy{RoomID: id, Roles: []mimi.Role{
		{Name: "admin", Permissions: []mimi.Permission{mimi.CanAddUser, mimi.CanRemoveUser, mimi.CanSetUserRole, mimi.CanSendMessage, mimi.CanSetPolicy}},
		{Name: "member", Permissions: []mimi.Permission{mimi.CanSendMessage}},
		{Name: "reader"},
	}}}
	rm.Policy.Normalize()
	cs := &mimi.ChangeSet{}
	for u, r := range participants {
		cs.Add = append(cs.Add, mimi.Participant{User: u, Role: r})
	}
	next, err := rm.Apply(cs)
	if err != nil {
		panic(err)
	}
	return next
}

// CreateGroup creates the creator's MLS group for a room: group ID is the
// room's MLS group URI (draft-ralston-mimi-protocol-02, Section 3), with
// external_senders listing the hub and application_states holding rm.
func CreateGroup(t testing.TB, creator *Client, hub wire.ExternalSender, rm *mimi.Room) *mls.Group {
	t.Helper()
	st, err := rm.ApplicationStates()
	if err != nil {
		t.Fatal(err)
	}
	as, err := wire.NewApplicationStatesExtension(st)
	if err != nil {
		t.Fatal(err)
	}
	es, err := wire.NewExternalSendersExtension(wire.ExternalSenders{hub})
	if err != nil {
		t.Fatal(err)
	}
	ru, err := mimi.ParseURIKind(rm.Policy.RoomID, mimi.KindRoom)
	if err != nil {
		t.Fatal(err)
	}
	gid := mimi.URI{Kind: mimi.KindGroup, Provider: ru.Provider, ID: ru.ID}.String()
	g, err := mls.CreateGroup(Suite, []byte(gid), creator.Signer(), &mls.CreateOptions{Extensions: []wire.Extension{es, as}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// CreateRoom creates the room at the hub from the creator's group.
func CreateRoom(t testing.TB, hub *Node, creator *Client, g *mls.Group, room string) {
	t.Helper()
	gi, err := g.GroupInfo(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.P.CreateRoom(context.Background(), creator.Client, room, gi.GroupInfo, g.RatchetTree()); err != nil {
		t.Fatal(err)
	}
}

// AppSync wraps a change set as an AppSync proposal
// (draft-ralston-mimi-protocol-02, Sections 4.3.2 and 7).
func AppSync(cs *mimi.ChangeSet) *wire.Proposal {
	return &wire.Proposal{Type: wire.ProposalAppSync, Body: &wire.AppSync{AppSync: *cs.AppSync()}}
}

// Add wraps a KeyPackage as an Add proposal.
func Add(kp *wire.KeyPackage) *wire.Proposal {
	return &wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp}}
}

// Commit creates a commit of g with opts and builds its UpdateRequest
// (draft-ralston-mimi-protocol-02, Section 5.3): the Welcome, the new
// GroupInfo and the new ratchet tree, which it computes by following the
// commit in a public view of the current epoch that holds the pending
// proposal messages. The group is not changed (Merge the PendingCommit
// after the hub accepts).
func Commit(t testing.TB, g *mls.Group, opts *mls.CommitOptions, pending ...*wire.PublicMessage) (*mls.PendingCommit, *mimi.UpdateRequest) {
	t.Helper()
	pc, err := g.Commit(opts)
	if err != nil {
		t.Fatal(err)
	}
	gi, err := g.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cipher.Lookup(Suite)
	if err != nil {
		t.Fatal(err)
	}
	v, err := publicgroup.New(s, gi.GroupInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, pm := range pending {
		if _, err := v.HandleProposal(pm); err != nil {
			t.Fatal(err)
		}
	}
	var tree wire.RatchetTree
	if res, err := v.HandleCommit(pc.Message.PublicMessage); err == nil {
		tree = res.View().RatchetTree()
	} else {
		tree = g.RatchetTree() // an invalid commit; the hub will say why
	}
	req := &mimi.UpdateRequest{
		ProposalOrCommit:  *pc.Message.PublicMessage,
		GroupInfo:         pc.GroupInfo.GroupInfo,
		RatchetTreeOption: &mimi.RatchetTreeOption{Representation: mimi.RatchetTreeFull, Tree: tree},
	}
	if pc.Welcome != nil {
		req.Welcome = pc.Welcome.Welcome
	}
	return pc, req
}

// Proposals builds the UpdateRequest of proposal messages.
func Proposals(msgs ...*wire.MLSMessage) *mimi.UpdateRequest {
	req := &mimi.UpdateRequest{ProposalOrCommit: *msgs[0].PublicMessage}
	for _, m := range msgs[1:] {
		req.MoreProposals = append(req.MoreProposals, *m.PublicMessage)
	}
	return req
}

// Message encrypts an application message of g as a SubmitMessageRequest.
func Message(t testing.TB, g *mls.Group, text string) *mimi.SubmitMessageRequest {
	t.Helper()
	m, err := g.ProtectApplication([]byte(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &mimi.SubmitMessageRequest{Protocol: mimi.ProtocolMLS10, AppMessage: *m}
}

// KeyMaterialRequest asks for target's key material for room.
func KeyMaterialRequest(requester, target, room string) *mimi.KeyMaterialRequest {
	return &mimi.KeyMaterialRequest{
		Protocol: mimi.ProtocolMLS10, RequestingUser: requester, TargetUser: target, RoomID: room,
		AcceptableCiphersuites: []cipher.SuiteID{Suite},
	}
}

// GroupInfoRequest builds a signed GroupInfo request for c.
func GroupInfoRequest(t testing.TB, c *Client) *mimi.GroupInfoRequest {
	t.Helper()
	req := &mimi.GroupInfoRequest{Protocol: mimi.ProtocolMLS10, CipherSuite: Suite, RequestingSignatureKey: c.Pub, RequestingCredential: c.Cred}
	if err := req.Sign(c.Priv); err != nil {
		t.Fatal(err)
	}
	return req
}

// Lifetime returns KeyPackage options with a lifetime ending after d on
// the clock.
func Lifetime(clock *Clock, d time.Duration) *mls.KeyPackageOptions {
	now := clock.Now()
	return &mls.KeyPackageOptions{Clock: clock.Now, Leaf: mls.LeafOptions{Lifetime: &wire.Lifetime{
		NotBefore: uint64(now.Add(-time.Hour).Unix()), NotAfter: uint64(now.Add(d).Unix()),
	}}}
}

// ExternalJoin has c join a room's group by external commit
// (draft-ralston-mimi-protocol-02, Section 3.6) from a GroupInfoResponse,
// and builds the UpdateRequest (with the new tree, computed in a public
// view).
func ExternalJoin(t testing.TB, c *Client, resp *mimi.GroupInfoResponse) (*mls.PendingCommit, *mimi.UpdateRequest) {
	t.Helper()
	gi := &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatGroupInfo, GroupInfo: &resp.GroupInfo}
	pc, err := mls.JoinExternal(gi, c.Signer(), &mls.ExternalJoinOptions{RatchetTree: resp.RatchetTreeOption.Tree})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cipher.Lookup(resp.GroupInfo.GroupContext.CipherSuite)
	if err != nil {
		t.Fatal(err)
	}
	v, err := publicgroup.New(s, &resp.GroupInfo, resp.RatchetTreeOption.Tree)
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.HandleCommit(pc.Message.PublicMessage)
	if err != nil {
		t.Fatal(err)
	}
	return pc, &mimi.UpdateRequest{
		ProposalOrCommit:  *pc.Message.PublicMessage,
		GroupInfo:         pc.GroupInfo.GroupInfo,
		RatchetTreeOption: &mimi.RatchetTreeOption{Representation: mimi.RatchetTreeFull, Tree: res.View().RatchetTree()},
	}
}

// PastHandshake reports whether msg is a proposal or commit of an epoch
// before g's: what a client drops, as the echo of its own commit
// (draft-ralston-mimi-protocol-02, Section 5.5).
func PastHandshake(g *mls.Group, msg *wire.MLSMessage) bool {
	pm := msg.PublicMessage
	return pm != nil && pm.Content.ContentType != wire.ContentApplication && pm.Content.Epoch < g.Epoch()
}
