package publicgroup_test

import (
	"bytes"
	"testing"

	"github.com/openmimi/mimi/internal/mlstest"
	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

var testGroupID = []byte("public view test group")

func testSuite(tb testing.TB) *cipher.Suite { return mlstest.Suite(tb) }

var seed, newClient = mlstest.Seed, mlstest.NewClient

// client is a test client with deterministic keys.
type client = mlstest.Client

// fixture is a group of members at leaves 0..n-1, a hub external sender
// and the public view of the group.
type fixture struct {
	s       *cipher.Suite
	clients []*client
	hub     *client
	v       *publicgroup.View
}

func newFixture(tb testing.TB, n int) *fixture {
	tb.Helper()
	s := testSuite(tb)
	f := &fixture{s: s, hub: newClient(tb, s, 999)}
	t := tree.New(s)
	for i := 0; i < n; i++ {
		c := newClient(tb, s, i)
		kp := c.KeyPackage(tb, s, mlstest.Caps())
		if _, err := t.AddLeaf(&kp.LeafNode); err != nil {
			tb.Fatal(err)
		}
		f.clients = append(f.clients, c)
	}
	es, err := wire.NewExternalSendersExtension(wire.ExternalSenders{{SignatureKey: f.hub.SigPub, Credential: f.hub.Credential()}})
	if err != nil {
		tb.Fatal(err)
	}
	st := &appsync.States{}
	st.Set(&appsync.ApplicationState{ApplicationID: 0xF0000002, Type: appsync.Map})
	as, err := wire.NewApplicationStatesExtension(st)
	if err != nil {
		tb.Fatal(err)
	}
	th, err := t.TreeHash()
	if err != nil {
		tb.Fatal(err)
	}
	ctx := &wire.GroupContext{Version: wire.MLS10, CipherSuite: s.ID(), GroupID: testGroupID, Epoch: 3,
		TreeHash: th, ConfirmedTranscriptHash: seed("cth", 0), Extensions: []wire.Extension{es, as}}
	if f.v, err = publicgroup.NewFromState(s, ctx, t.RatchetTree(), seed("tag", 0)); err != nil {
		tb.Fatal(err)
	}
	return f
}

func prop(b wire.ProposalBody) *wire.Proposal { return &wire.Proposal{Type: b.ProposalType(), Body: b} }

// memberProposal is a proposal PublicMessage from member i (with a dummy
// membership tag, which the view cannot check).
func (f *fixture) memberProposal(tb testing.TB, i uint32, b wire.ProposalBody) *wire.PublicMessage {
	tb.Helper()
	ctx := f.v.GroupContext()
	content := &wire.FramedContent{GroupID: ctx.GroupID, Epoch: ctx.Epoch, Sender: wire.Sender{Type: wire.SenderMember, Index: i},
		ContentType: wire.ContentProposal, Proposal: prop(b)}
	ac, err := framing.Sign(f.s, wire.WireFormatPublicMessage, content, ctx, f.clients[i].SigPriv)
	if err != nil {
		tb.Fatal(err)
	}
	return &wire.PublicMessage{Content: ac.Content, Auth: ac.Auth, MembershipTag: seed("mt", 0)}
}

// hubProposal is a proposal signed by the hub as external sender 0.
func (f *fixture) hubProposal(tb testing.TB, b wire.ProposalBody) *wire.PublicMessage {
	tb.Helper()
	ctx := f.v.GroupContext()
	m, err := publicgroup.SignExternalProposal(f.s, ctx.GroupID, ctx.Epoch, 0, prop(b), ctx, f.hub.SigPriv)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func byValue(b wire.ProposalBody) wire.ProposalOrRef {
	return wire.ProposalOrRef{Type: wire.ProposalOrRefProposal, Proposal: prop(b)}
}

func byRef(ref []byte) wire.ProposalOrRef {
	return wire.ProposalOrRef{Type: wire.ProposalOrRefReference, Reference: ref}
}

// commitOpts tune makeCommit.
type commitOpts struct {
	noPath   bool
	external *client // an external joiner
}

// makeCommit builds a signed Commit PublicMessage from member i (or an
// external joiner) the way a member would: it applies the proposals to the
// public tree, generates and encrypts an UpdatePath for the provisional
// GroupContext, and signs. The confirmation tag is a dummy (the view
// cannot check it).
func (f *fixture) makeCommit(tb testing.TB, i uint32, props []wire.ProposalOrRef, o commitOpts) *wire.PublicMessage {
	tb.Helper()
	ctx := f.v.GroupContext()
	sender := wire.Sender{Type: wire.SenderMember, Index: i}
	priv := []byte(nil)
	if o.external != nil {
		sender = wire.Sender{Type: wire.SenderNewMemberCommit}
		priv = o.external.SigPriv
	} else {
		priv = f.clients[i].SigPriv
	}
	cm := &wire.Commit{Proposals: props}
	if !o.noPath {
		rt := f.v.RatchetTree()
		b, _ := codec.Marshal(&rt)
		own, err := wire.UnmarshalRatchetTree(b)
		if err != nil {
			tb.Fatal(err)
		}
		t, err := tree.FromRatchetTree(f.s, own)
		if err != nil {
			tb.Fatal(err)
		}
		sps := make([]commit.SourcedProposal, len(props))
		pending := f.v.PendingProposals()
		for k, p := range props {
			if p.Type == wire.ProposalOrRefProposal {
				sps[k] = commit.SourcedProposal{Proposal: p.Proposal, Sender: sender}
				continue
			}
			for _, pp := range pending {
				if bytes.Equal(pp.Ref, p.Reference) {
					sps[k] = commit.SourcedProposal{Proposal: pp.Proposal, Sender: pp.Sender, Ref: pp.Ref}
				}
			}
		}
		var newLeaves []treemath.LeafIndex
		exts := ctx.Extensions
		if res, err := commit.Apply(&commit.Params{Suite: f.s, Tree: t, Context: ctx, Committer: sender, Proposals: sps, HasPath: true,
			SameClient: func(a, b *wire.LeafNode) bool { return false }}); err == nil {
			t, newLeaves, exts = res.Tree, res.Added, res.Extensions
		}
		pp := &tree.PathParams{Leaf: treemath.LeafIndex(i), SignaturePriv: priv, GroupID: ctx.GroupID, NewLeaves: newLeaves, LeafSecret: seed("leaf", int(ctx.Epoch)*100+int(i))}
		if o.external != nil {
			l, err := t.FreeLeaf()
			if err != nil {
				tb.Fatal(err)
			}
			kp := o.external.KeyPackage(tb, f.s, mlstest.Caps())
			pp.Leaf, pp.LeafNode = l, &kp.LeafNode
		}
		pending2, err := t.GenerateUpdatePath(pp)
		if err != nil {
			tb.Fatal(err)
		}
		th, err := t.TreeHash()
		if err != nil {
			tb.Fatal(err)
		}
		prov := &wire.GroupContext{Version: ctx.Version, CipherSuite: ctx.CipherSuite, GroupID: ctx.GroupID, Epoch: ctx.Epoch + 1,
			TreeHash: th, ConfirmedTranscriptHash: ctx.ConfirmedTranscriptHash, Extensions: exts}
		pb, err := codec.Marshal(prov)
		if err != nil {
			tb.Fatal(err)
		}
		if cm.Path, err = pending2.Encrypt(pb); err != nil {
			tb.Fatal(err)
		}
	}
	content := &wire.FramedContent{GroupID: ctx.GroupID, Epoch: ctx.Epoch, Sender: sender, ContentType: wire.ContentCommit, Commit: cm}
	ac, err := framing.Sign(f.s, wire.WireFormatPublicMessage, content, ctx, priv)
	if err != nil {
		tb.Fatal(err)
	}
	ac.Auth.ConfirmationTag = seed("confirmation", int(ctx.Epoch))
	m := &wire.PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if sender.Type == wire.SenderMember {
		m.MembershipTag = seed("mt", 1)
	}
	return m
}

// viewBytes serializes the view.
func viewBytes(tb testing.TB, v *publicgroup.View) []byte {
	tb.Helper()
	b, err := v.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// groupInfo returns a GroupInfo for ctx signed by member signer.
func (f *fixture) groupInfo(tb testing.TB, ctx *wire.GroupContext, tag []byte, signer uint32, priv []byte) *wire.GroupInfo {
	tb.Helper()
	gi := &wire.GroupInfo{GroupContext: *ctx, ConfirmationTag: tag, Signer: signer}
	if err := gi.Sign(f.s, priv); err != nil {
		tb.Fatal(err)
	}
	return gi
}
