package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

var negPSKs = map[string][]byte{"known": []byte("known psk")}

func negConfig() Config { return Config{ExternalPSK: StaticPSKs(negPSKs)} }

func newKPFor(t testing.TB, name string) *KeyPackageBundle {
	t.Helper()
	s := iSigner(t, testSuite, name)
	kp, err := NewKeyPackage(testSuite, s.Credential, s.SignaturePriv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func pskProposal(t testing.TB, id wire.PreSharedKeyID) *wire.Proposal {
	return &wire.Proposal{Type: wire.ProposalPreSharedKey, Body: &wire.PreSharedKey{PSK: id}}
}

func externalPSK(t testing.TB, name string) wire.PreSharedKeyID {
	t.Helper()
	id, err := NewExternalPSKID(testSuite, []byte(name))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// forgeExternal builds an external commit for gs[0]'s group whose proposal
// list is edit(default list), bypassing validation on the sending side.
func forgeExternal(t testing.TB, g *Group, signer Signer, opts *ExternalJoinOptions, edit func(in *commitInput)) *wire.MLSMessage {
	t.Helper()
	gi, err := g.GroupInfo(true)
	if err != nil {
		t.Fatal(err)
	}
	eg, in, err := prepareExternal(gi, signer, opts)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(in)
	}
	old := applyProposals
	applyProposals = naiveApply
	defer func() { applyProposals = old }()
	pc, err := eg.buildCommit(eg.s, in)
	if err != nil {
		t.Fatalf("forging external commit: %v", err)
	}
	return pc.Message
}

func byValue(in *commitInput, p *wire.Proposal) {
	in.proposals = append(in.proposals, commit.SourcedProposal{Proposal: p, Sender: in.sender})
	in.ors = append(in.ors, wire.ProposalOrRef{Type: wire.ProposalOrRefProposal, Proposal: p})
}

// reprotect re-encodes a PublicMessage commit of g (not yet merged) after
// edit changed its auth data, with a fresh membership tag.
func reprotect(t testing.TB, g *Group, msg *wire.MLSMessage, edit func(*wire.AuthenticatedContent)) *wire.MLSMessage {
	t.Helper()
	ac := msg.PublicMessage.AuthenticatedContent()
	edit(ac)
	g.mu.Lock()
	defer g.mu.Unlock()
	pm, err := framing.ProtectPublic(g.framingEpoch(g.s), ac)
	if err != nil {
		t.Fatal(err)
	}
	return &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: pm}
}

// TestNegativeCommits checks every MUST of RFC 9420, Sections 12.2 and
// 12.4.2 (and 12.4.3.2 for external commits) that a Group can meet on
// receipt: each invalid message is rejected with the rule's specific
// error, and the receivers' state is byte-for-byte unchanged.
func TestNegativeCommits(t *testing.T) {
	type build func(t *testing.T, gs []*Group) *wire.MLSMessage
	cases := []struct {
		name  string
		build build
		want  error
	}{
		{"two Adds with the same KeyPackage", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			kp := newKPFor(t, "dup")
			return forge(t, gs[0], []*wire.Proposal{addProposal(kp.KeyPackage), addProposal(kp.KeyPackage)}, nil, nil).Message
		}, commit.ErrDuplicateAdd},
		{"two Adds with the same KeyPackage (PrivateMessage)", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			kp := newKPFor(t, "dup")
			return forge(t, gs[0], []*wire.Proposal{addProposal(kp.KeyPackage), addProposal(kp.KeyPackage)}, nil,
				&CommitOptions{Send: SendOptions{Private: true}}).Message
		}, commit.ErrDuplicateAdd},
		{"Add of an existing member", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			s := Signer{Credential: wire.Credential{Type: wire.CredentialBasic, Identity: []byte("m2")}, SignaturePriv: gs[2].s.sigPriv}
			kp, err := NewKeyPackage(testSuite, s.Credential, s.SignaturePriv, nil)
			if err != nil {
				t.Fatal(err)
			}
			return forge(t, gs[0], []*wire.Proposal{addProposal(kp.KeyPackage)}, nil, nil).Message
		}, commit.ErrAddExistingClient},
		{"Remove of a blank leaf", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			pc, err := gs[0].Commit(&CommitOptions{Proposals: []*wire.Proposal{removeProposal(1)}})
			if err != nil {
				t.Fatal(err)
			}
			deliver(t, gs, 0, pc.Message)
			if err := pc.Merge(); err != nil {
				t.Fatal(err)
			}
			gs[1] = nil
			return forge(t, gs[0], []*wire.Proposal{removeProposal(1)}, nil, nil).Message
		}, commit.ErrRemoveBlankLeaf},
		{"Remove outside the tree", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			return forge(t, gs[0], []*wire.Proposal{removeProposal(100)}, nil, nil).Message
		}, commit.ErrRemoveOutOfRange},
		{"two Removes of one leaf", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			return forge(t, gs[0], []*wire.Proposal{removeProposal(2), removeProposal(2)}, nil, nil).Message
		}, commit.ErrDuplicateUpdateRemove},
		{"Update and Remove of one leaf", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			sp, err := gs[2].ProposeUpdate(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			deliver(t, gs, 2, sp.Message)
			return forge(t, gs[0], []*wire.Proposal{removeProposal(2)}, [][]byte{sp.Ref}, nil).Message
		}, commit.ErrDuplicateUpdateRemove},
		{"Remove of the committer", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			return forge(t, gs[0], []*wire.Proposal{removeProposal(0)}, nil, nil).Message
		}, commit.ErrRemoveCommitter},
		{"Update from the committer", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			sp, err := gs[0].ProposeUpdate(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			deliver(t, gs, 0, sp.Message)
			return forge(t, gs[0], nil, [][]byte{sp.Ref}, nil).Message
		}, commit.ErrUpdateByCommitter},
		{"Update by value", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			sp, err := gs[0].ProposeUpdate(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return forge(t, gs[0], []*wire.Proposal{sp.Proposal}, nil, &CommitOptions{SkipPending: true}).Message
		}, commit.ErrUpdateByValue},
		{"SelfRemove by value", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			return forge(t, gs[0], []*wire.Proposal{{Type: wire.ProposalSelfRemove, Body: &wire.SelfRemove{}}}, nil, nil).Message
		}, commit.ErrSelfRemoveByValue},
		{"ExternalInit in a member commit", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			kem := make([]byte, 32)
			rand.Read(kem)
			return forge(t, gs[0], []*wire.Proposal{{Type: wire.ProposalExternalInit, Body: &wire.ExternalInit{KEMOutput: kem}}}, nil, nil).Message
		}, commit.ErrExternalInitNotAllowed},
		{"two GroupContextExtensions", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			gce := &wire.Proposal{Type: wire.ProposalGroupContextExtensions, Body: &wire.GroupContextExtensions{}}
			return forge(t, gs[0], []*wire.Proposal{gce, gce}, nil, nil).Message
		}, commit.ErrMultipleGCE},
		{"ReInit with another proposal", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			ri := &wire.Proposal{Type: wire.ProposalReInit, Body: &wire.ReInit{GroupID: []byte("new"), Version: wire.MLS10, CipherSuite: testSuite}}
			return forge(t, gs[0], []*wire.Proposal{ri, removeProposal(2)}, nil, nil).Message
		}, commit.ErrReInitNotAlone},
		{"the same PSK twice", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			p := pskProposal(t, externalPSK(t, "known"))
			return forge(t, gs[0], []*wire.Proposal{p, p}, nil, nil).Message
		}, commit.ErrDuplicatePSK},
		{"resumption PSK with usage reinit", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			id, err := NewResumptionPSKID(testSuite, wire.ResumptionReInit, gs[0].GroupID(), gs[0].Epoch())
			if err != nil {
				t.Fatal(err)
			}
			return forge(t, gs[0], []*wire.Proposal{pskProposal(t, id)}, nil, nil).Message
		}, commit.ErrPSKUsage},
		{"psk_nonce of the wrong length", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			id := externalPSK(t, "known")
			id.Nonce = id.Nonce[:5]
			return forge(t, gs[0], []*wire.Proposal{pskProposal(t, id)}, nil, nil).Message
		}, commit.ErrPSKNonceLength},
		{"unavailable PSK", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			cfg := gs[0].Config()
			cfg.ExternalPSK = StaticPSKs(map[string][]byte{"secret": []byte("only the committer has it")})
			gs[0].SetConfig(cfg)
			return forge(t, gs[0], []*wire.Proposal{pskProposal(t, externalPSK(t, "secret"))}, nil, nil).Message
		}, ErrMissingPSK},
		{"AppSync with GroupContextExtensions", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			a := &wire.Proposal{Type: wire.ProposalAppSync, Body: &wire.AppSync{AppSync: appsync.AppSync{ApplicationID: 1, Type: appsync.Irreducible, NewState: []byte("x")}}}
			gce := &wire.Proposal{Type: wire.ProposalGroupContextExtensions, Body: &wire.GroupContextExtensions{}}
			return forge(t, gs[0], []*wire.Proposal{a, gce}, nil, nil).Message
		}, commit.ErrAppSyncWithGCE},
		{"path missing where required (Remove)", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			return forge(t, gs[0], []*wire.Proposal{removeProposal(2)}, nil, &CommitOptions{NoPath: true}).Message
		}, ErrPathRequired},
		{"path missing on an empty commit", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			return forge(t, gs[0], nil, nil, &CommitOptions{NoPath: true}).Message
		}, ErrPathRequired},
		{"unknown proposal reference", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			ref := make([]byte, 32)
			rand.Read(ref)
			return forge(t, gs[0], nil, [][]byte{ref}, nil).Message
		}, ErrUnknownProposal},
		{"wrong epoch (replayed commit)", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			pc, err := gs[0].Commit(nil)
			if err != nil {
				t.Fatal(err)
			}
			deliver(t, gs, 0, pc.Message)
			if err := pc.Merge(); err != nil {
				t.Fatal(err)
			}
			return pc.Message
		}, ErrWrongEpoch},
		{"bad confirmation tag", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			pc, err := gs[0].Commit(nil)
			if err != nil {
				t.Fatal(err)
			}
			return reprotect(t, gs[0], pc.Message, func(ac *wire.AuthenticatedContent) { ac.Auth.ConfirmationTag[0] ^= 1 })
		}, ErrBadConfirmationTag},
		{"bad signature", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			pc, err := gs[0].Commit(nil)
			if err != nil {
				t.Fatal(err)
			}
			return reprotect(t, gs[0], pc.Message, func(ac *wire.AuthenticatedContent) { ac.Auth.Signature[3] ^= 1 })
		}, ErrBadSignature},
		{"bad membership tag", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			pc, err := gs[0].Commit(nil)
			if err != nil {
				t.Fatal(err)
			}
			m := *pc.Message.PublicMessage
			m.MembershipTag = bytes.Clone(m.MembershipTag)
			m.MembershipTag[0] ^= 1
			return &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: &m}
		}, ErrBadMembershipTag},
		{"wrong group", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			pc, err := gs[0].Commit(nil)
			if err != nil {
				t.Fatal(err)
			}
			m := *pc.Message.PublicMessage
			m.Content.GroupID = []byte("another group")
			return &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: &m}
		}, ErrWrongGroup},
		{"sender is a blank leaf", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			pc, err := gs[0].Commit(nil)
			if err != nil {
				t.Fatal(err)
			}
			m := *pc.Message.PublicMessage
			m.Content.Sender.Index = 7
			return &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: &m}
		}, ErrUnknownSender},
		{"external commit without ExternalInit", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			return forgeExternal(t, gs[0], iSigner(t, testSuite, "ext"), nil, func(in *commitInput) {
				in.proposals, in.ors = nil, nil
			})
		}, commit.ErrExternalInitCount},
		{"external commit with two ExternalInits", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			return forgeExternal(t, gs[0], iSigner(t, testSuite, "ext"), nil, func(in *commitInput) {
				byValue(in, in.proposals[0].Proposal)
			})
		}, commit.ErrExternalInitCount},
		{"external commit with an Add", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			kp := newKPFor(t, "extra")
			return forgeExternal(t, gs[0], iSigner(t, testSuite, "ext"), nil, func(in *commitInput) {
				byValue(in, addProposal(kp.KeyPackage))
			})
		}, commit.ErrExternalCommitProposalType},
		{"external commit with a proposal by reference", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			sp, err := gs[1].ProposeRemove(2, nil)
			if err != nil {
				t.Fatal(err)
			}
			deliver(t, gs, 1, sp.Message)
			return forgeExternal(t, gs[0], iSigner(t, testSuite, "ext"), nil, func(in *commitInput) {
				in.proposals = append(in.proposals, commit.SourcedProposal{Proposal: sp.Proposal, Sender: wire.Sender{Type: wire.SenderMember, Index: 1}, Ref: sp.Ref})
				in.ors = append(in.ors, wire.ProposalOrRef{Type: wire.ProposalOrRefReference, Reference: sp.Ref})
			})
		}, commit.ErrExternalCommitByReference},
		{"external commit removing another client", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			l := treemath.LeafIndex(2)
			return forgeExternal(t, gs[0], iSigner(t, testSuite, "impostor"), &ExternalJoinOptions{RemoveLeaf: &l}, nil)
		}, commit.ErrExternalCommitRemove},
		{"external commit without path", func(t *testing.T, gs []*Group) *wire.MLSMessage {
			m := forgeExternal(t, gs[0], iSigner(t, testSuite, "ext"), nil, nil)
			pm := *m.PublicMessage
			c := *pm.Content.Commit
			c.Path = nil
			pm.Content.Commit = &c
			return &wire.MLSMessage{Version: wire.MLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: &pm}
		}, ErrPathRequired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gs := iGroup(t, 4, negConfig())
			msg := tc.build(t, gs)
			b, err := msg.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			checked := 0
			for i, g := range gs {
				if i == 0 || g == nil {
					continue
				}
				m, err := wire.UnmarshalMLSMessage(b)
				if err != nil {
					t.Fatal(err)
				}
				before := mustState(t, g)
				_, err = g.Process(m)
				if err == nil {
					t.Fatalf("member %d accepted the message", i)
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("member %d: error %v, want %v", i, err, tc.want)
				}
				if after := mustState(t, g); !bytes.Equal(before, after) {
					t.Fatalf("member %d: state changed by a rejected message", i)
				}
				checked++
			}
			if checked == 0 {
				t.Fatal("no receiver")
			}
			// The group still works: a valid commit from a receiver.
			var live []*Group
			for _, g := range gs {
				if g != nil {
					live = append(live, g)
				}
			}
			pc, err := live[1].Commit(&CommitOptions{SkipPending: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range live {
				if g == live[1] {
					continue
				}
				if _, err := g.Process(pc.Message); err != nil {
					t.Fatalf("valid commit after the rejected one: %v", err)
				}
			}
		})
	}
}

func mustState(t testing.TB, g *Group) []byte {
	t.Helper()
	b, err := g.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
