package commit_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/internal/mlstest"
	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/wire"
)

var groupID = []byte("commit test group")

func suite(tb testing.TB) *cipher.Suite { return mlstest.Suite(tb) }

var seed, fullCaps = mlstest.Seed, mlstest.Caps

// client is a test client with deterministic keys and a user name.
type client struct {
	*mlstest.Client
	user string
}

func newClient(tb testing.TB, s *cipher.Suite, id int) *client {
	tb.Helper()
	return &client{Client: mlstest.NewClient(tb, s, id), user: fmt.Sprintf("user-%d", id)}
}

// updateLeaf returns a signed update-source leaf for leaf l.
func (c *client) updateLeaf(tb testing.TB, s *cipher.Suite, l uint32) *wire.LeafNode {
	tb.Helper()
	ln := &wire.LeafNode{
		EncryptionKey: c.HPKE(tb, s),
		SignatureKey:  c.SigPub,
		Credential:    c.Credential(),
		Capabilities:  fullCaps(),
		Source:        wire.LeafNodeSourceUpdate,
	}
	if err := ln.Sign(s, c.SigPriv, groupID, l); err != nil {
		tb.Fatal(err)
	}
	return ln
}

// fixture is a group of n members at leaves 0..n-1 with a GroupContext.
type fixture struct {
	s       *cipher.Suite
	t       *tree.Tree
	ctx     *wire.GroupContext
	clients []*client
	extPriv []byte // external sender 0's signing key
}

func newFixture(tb testing.TB, n int) *fixture {
	tb.Helper()
	s := suite(tb)
	f := &fixture{s: s, t: tree.New(s)}
	for i := 0; i < n; i++ {
		c := newClient(tb, s, i)
		kp := c.KeyPackage(tb, s, fullCaps())
		if _, err := f.t.AddLeaf(&kp.LeafNode); err != nil {
			tb.Fatal(err)
		}
		f.clients = append(f.clients, c)
	}
	ext := newClient(tb, s, 1000)
	f.extPriv = ext.SigPriv
	es, err := wire.NewExternalSendersExtension(wire.ExternalSenders{{SignatureKey: ext.SigPub, Credential: ext.Credential()}})
	if err != nil {
		tb.Fatal(err)
	}
	st := &appsync.States{}
	st.Set(&appsync.ApplicationState{ApplicationID: 7, Type: appsync.OrderedArray, Elements: [][]byte{[]byte("a"), []byte("b")}})
	as, err := wire.NewApplicationStatesExtension(st)
	if err != nil {
		tb.Fatal(err)
	}
	th, err := f.t.TreeHash()
	if err != nil {
		tb.Fatal(err)
	}
	f.ctx = &wire.GroupContext{
		Version: wire.MLS10, CipherSuite: s.ID(), GroupID: groupID, Epoch: 5,
		TreeHash: th, ConfirmedTranscriptHash: bytes.Repeat([]byte{1}, 32),
		Extensions: []wire.Extension{es, as},
	}
	return f
}

func member(i uint32) wire.Sender   { return wire.Sender{Type: wire.SenderMember, Index: i} }
func external(i uint32) wire.Sender { return wire.Sender{Type: wire.SenderExternal, Index: i} }

var newMemberCommit = wire.Sender{Type: wire.SenderNewMemberCommit}

func prop(b wire.ProposalBody) *wire.Proposal { return &wire.Proposal{Type: b.ProposalType(), Body: b} }

// byValue / byRef build SourcedProposals.
func byValue(committer wire.Sender, b wire.ProposalBody) commit.SourcedProposal {
	return commit.SourcedProposal{Proposal: prop(b), Sender: committer}
}

var refCounter byte

func byRef(sender wire.Sender, b wire.ProposalBody) commit.SourcedProposal {
	refCounter++
	return commit.SourcedProposal{Proposal: prop(b), Sender: sender, Ref: bytes.Repeat([]byte{refCounter}, 32)}
}

func (f *fixture) psk(id string) *wire.PreSharedKey {
	return &wire.PreSharedKey{PSK: wire.PreSharedKeyID{Type: wire.PSKExternal, PSKID: []byte(id), Nonce: bytes.Repeat([]byte{9}, f.s.HashSize())}}
}

func (f *fixture) params(committer wire.Sender, hasPath bool, ps ...commit.SourcedProposal) *commit.Params {
	return &commit.Params{Suite: f.s, Tree: f.t, Context: f.ctx, Committer: committer, Proposals: ps, HasPath: hasPath}
}

// snapshot encodes the tree and context to detect modification.
func (f *fixture) snapshot(tb testing.TB) []byte {
	tb.Helper()
	rt := f.t.RatchetTree()
	a, err := codec.Marshal(&rt)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := codec.Marshal(f.ctx)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := f.t.TreeHash()
	if err != nil {
		tb.Fatal(err)
	}
	return append(append(a, b...), h...)
}

func appSync(id uint32, typ appsync.StateType) *wire.AppSync {
	return &wire.AppSync{AppSync: appsync.AppSync{ApplicationID: id, Type: typ}}
}
