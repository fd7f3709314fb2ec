package commit_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/wire"
)

// TestApplyRejects has one case per MUST: each must fail with its own
// sentinel and leave the input tree and GroupContext unchanged.
func TestApplyRejects(t *testing.T) {
	s := suite(t)
	c0 := member(0)
	type tc struct {
		name  string
		n     int // members (default 4)
		build func(t *testing.T, f *fixture) *commit.Params
		want  error
		also  error // a second error the result must wrap, if any
		index int   // expected ProposalError.Index, -1 for a bare error
	}
	newcomer := func(t *testing.T, id int) *wire.KeyPackage {
		return newClient(t, s, id).KeyPackage(t, s, fullCaps())
	}
	cases := []tc{
		{name: "nil tree", want: commit.ErrInvalidParams, index: -1, build: func(t *testing.T, f *fixture) *commit.Params {
			p := f.params(c0, true)
			p.Tree = nil
			return p
		}},
		{name: "committer out of range", want: commit.ErrInvalidCommitter, index: -1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(member(9), true)
		}},
		{name: "committer external", want: commit.ErrInvalidCommitter, index: -1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(external(0), true)
		}},
		{name: "empty commit without path", want: commit.ErrPathRequired, index: -1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, false)
		}},
		{name: "remove without path", want: commit.ErrPathRequired, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, false, byValue(c0, f.psk("x")), byValue(c0, &wire.Remove{Removed: 1}))
		}},
		{name: "update without path", want: commit.ErrPathRequired, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, false, byRef(member(1), &wire.Update{LeafNode: *f.clients[1].updateLeaf(t, s, 1)}))
		}},
		{name: "GCE without path", want: commit.ErrPathRequired, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, false, byValue(c0, &wire.GroupContextExtensions{Extensions: f.ctx.Extensions}))
		}},
		{name: "SelfRemove without path", want: commit.ErrPathRequired, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, false, byRef(member(2), &wire.SelfRemove{}))
		}},
		{name: "malformed proposal", want: commit.ErrMalformedProposal, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, commit.SourcedProposal{Proposal: &wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Remove{Removed: 1}}, Sender: c0})
		}},
		{name: "nil proposal", want: commit.ErrMalformedProposal, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, commit.SourcedProposal{Sender: c0})
		}},
		{name: "by value from another member", want: commit.ErrInvalidSender, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(member(1), &wire.Remove{Removed: 2}))
		}},
		{name: "by reference from new_member_commit", want: commit.ErrInvalidSender, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(newMemberCommit, &wire.Remove{Removed: 2}))
		}},
		{name: "by reference from unknown sender type", want: commit.ErrInvalidSender, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(wire.Sender{Type: 9}, &wire.Remove{Removed: 2}))
		}},
		{name: "member sender out of range", want: commit.ErrUnknownSender, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(member(17), &wire.Remove{Removed: 2}))
		}},
		{name: "member sender blank", n: 3, want: commit.ErrUnknownSender, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(member(3), &wire.Remove{Removed: 2}))
		}},
		{name: "external sender not listed", want: commit.ErrUnknownExternalSender, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(external(1), &wire.Remove{Removed: 2}))
		}},
		{name: "external sender without extension", want: commit.ErrUnknownExternalSender, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			f.ctx.Extensions = f.ctx.Extensions[1:]
			return f.params(c0, true, byRef(external(0), &wire.Remove{Removed: 2}))
		}},
		{name: "external sender Update", want: commit.ErrExternalSenderProposalType, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(external(0), &wire.Update{LeafNode: *f.clients[1].updateLeaf(t, s, 1)}))
		}},
		{name: "new_member_proposal Remove", want: commit.ErrNewMemberProposalType, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(wire.Sender{Type: wire.SenderNewMemberProposal}, &wire.Remove{Removed: 2}))
		}},
		{name: "AppSync unsupported by a member", want: commit.ErrUnsupportedProposalType, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			caps := fullCaps()
			caps.Proposals = nil
			kp := newClient(t, s, 50).KeyPackage(t, s, caps)
			if err := f.t.UpdateLeaf(3, &kp.LeafNode); err != nil {
				t.Fatal(err)
			}
			return f.params(c0, true, byValue(c0, appSync(7, appsync.OrderedArray)))
		}},
		{name: "invalid KeyPackage signature", want: commit.ErrInvalidKeyPackage, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			kp := newcomer(t, 60)
			kp.Signature[0] ^= 1
			return f.params(c0, false, byValue(c0, &wire.Add{KeyPackage: *kp}))
		}},
		{name: "KeyPackage version", want: commit.ErrInvalidKeyPackage, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			kp := newcomer(t, 60)
			kp.Version = 2
			return f.params(c0, false, byValue(c0, &wire.Add{KeyPackage: *kp}))
		}},
		{name: "Add leaf lacks credential type", want: commit.ErrInvalidLeafNode, also: tree.ErrUnsupportedCredential, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			caps := fullCaps()
			caps.Credentials = []wire.CredentialType{wire.CredentialX509}
			kp := newClient(t, s, 61).KeyPackage(t, s, caps)
			return f.params(c0, false, byValue(c0, &wire.Add{KeyPackage: *kp}))
		}},
		{name: "Add expired", want: commit.ErrInvalidLeafNode, also: tree.ErrLifetimeInvalid, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			p := f.params(c0, false, byValue(c0, &wire.Add{KeyPackage: *newcomer(t, 62)}))
			p.Now = time.Unix(10, 0)
			return p
		}},
		{name: "Add lacks group extension", want: commit.ErrUnsupportedGroupExtension, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			caps := fullCaps()
			caps.Extensions = nil
			kp := newClient(t, s, 63).KeyPackage(t, s, caps)
			return f.params(c0, false, byValue(c0, &wire.Add{KeyPackage: *kp}))
		}},
		{name: "Add lacks required capability", want: commit.ErrInvalidLeafNode, also: tree.ErrMissingRequiredCapability, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			rc, err := wire.NewRequiredCapabilitiesExtension(&wire.RequiredCapabilities{ProposalTypes: []wire.ProposalType{wire.ProposalSelfRemove}})
			if err != nil {
				t.Fatal(err)
			}
			caps := fullCaps()
			caps.Proposals = []wire.ProposalType{wire.ProposalAppSync}
			kp := newClient(t, s, 64).KeyPackage(t, s, caps)
			exts := append([]wire.Extension{rc}, f.ctx.Extensions...)
			return f.params(c0, true, byValue(c0, &wire.GroupContextExtensions{Extensions: exts}), byValue(c0, &wire.Add{KeyPackage: *kp}))
		}},
		{name: "two Adds for one client", want: commit.ErrDuplicateAdd, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			c := newClient(t, s, 65)
			return f.params(c0, false, byValue(c0, &wire.Add{KeyPackage: *c.KeyPackage(t, s, fullCaps())}), byValue(c0, &wire.Add{KeyPackage: *c.KeyPackage(t, s, fullCaps())}))
		}},
		{name: "two Adds for one client (application rule)", want: commit.ErrDuplicateAdd, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			p := f.params(c0, false, byValue(c0, &wire.Add{KeyPackage: *newcomer(t, 66)}), byValue(c0, &wire.Add{KeyPackage: *newcomer(t, 67)}))
			p.SameClient = func(a, b *wire.LeafNode) bool {
				return bytes.HasPrefix(a.Credential.Identity, []byte("client-6")) && bytes.HasPrefix(b.Credential.Identity, []byte("client-6"))
			}
			return p
		}},
		{name: "Add of an existing client", want: commit.ErrAddExistingClient, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			kp := f.clients[2].KeyPackage(t, s, fullCaps())
			return f.params(c0, false, byValue(c0, &wire.Add{KeyPackage: *kp}))
		}},
		{name: "Add of an existing client removed by someone else's Update", want: commit.ErrAddExistingClient, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			kp := f.clients[2].KeyPackage(t, s, fullCaps())
			return f.params(c0, true, byRef(member(2), &wire.Update{LeafNode: *f.clients[2].updateLeaf(t, s, 2)}), byValue(c0, &wire.Add{KeyPackage: *kp}))
		}},
		{name: "Update by value", want: commit.ErrUpdateByValue, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(c0, &wire.Update{LeafNode: *f.clients[0].updateLeaf(t, s, 0)}))
		}},
		{name: "Update from the committer", want: commit.ErrUpdateByCommitter, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(c0, &wire.Update{LeafNode: *f.clients[0].updateLeaf(t, s, 0)}))
		}},
		{name: "two Updates for one leaf", want: commit.ErrDuplicateUpdateRemove, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(member(1), &wire.Update{LeafNode: *f.clients[1].updateLeaf(t, s, 1)}), byRef(member(1), &wire.Update{LeafNode: *f.clients[1].updateLeaf(t, s, 1)}))
		}},
		{name: "Update and Remove of one leaf", want: commit.ErrDuplicateUpdateRemove, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(member(1), &wire.Update{LeafNode: *f.clients[1].updateLeaf(t, s, 1)}), byValue(c0, &wire.Remove{Removed: 1}))
		}},
		{name: "two Removes of one leaf", want: commit.ErrDuplicateUpdateRemove, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(c0, &wire.Remove{Removed: 1}), byRef(member(2), &wire.Remove{Removed: 1}))
		}},
		{name: "Update and SelfRemove of one leaf", want: commit.ErrDuplicateUpdateRemove, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(member(1), &wire.Update{LeafNode: *f.clients[1].updateLeaf(t, s, 1)}), byRef(member(1), &wire.SelfRemove{}))
		}},
		{name: "Update with a bad leaf signature", want: commit.ErrInvalidLeafNode, also: tree.ErrLeafSignature, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(member(1), &wire.Update{LeafNode: *f.clients[1].updateLeaf(t, s, 2)}))
		}},
		{name: "Update with a key_package leaf", want: commit.ErrInvalidLeafNode, also: tree.ErrWrongLeafSource, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(member(1), &wire.Update{LeafNode: f.clients[1].KeyPackage(t, s, fullCaps()).LeafNode}))
		}},
		{name: "Remove out of range", want: commit.ErrRemoveOutOfRange, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(c0, &wire.Remove{Removed: 4}))
		}},
		{name: "Remove of a blank leaf", n: 3, want: commit.ErrRemoveBlankLeaf, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(c0, &wire.Remove{Removed: 3}))
		}},
		{name: "Remove of the committer", want: commit.ErrRemoveCommitter, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(member(1), &wire.Remove{Removed: 0}))
		}},
		{name: "Remove of a self-removing leaf", want: commit.ErrRemoveSelfRemoved, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(member(2), &wire.SelfRemove{}), byValue(c0, &wire.Remove{Removed: 2}))
		}},
		{name: "Remove before SelfRemove of the leaf", want: commit.ErrRemoveSelfRemoved, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(c0, &wire.Remove{Removed: 2}), byRef(member(2), &wire.SelfRemove{}))
		}},
		{name: "duplicate PSK", want: commit.ErrDuplicatePSK, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			p2 := f.psk("x")
			p2.PSK.Nonce = bytes.Repeat([]byte{7}, s.HashSize())
			return f.params(c0, false, byValue(c0, f.psk("x")), byRef(member(1), p2))
		}},
		{name: "PSK nonce length", want: commit.ErrPSKNonceLength, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			p := f.psk("x")
			p.PSK.Nonce = p.PSK.Nonce[:5]
			return f.params(c0, false, byValue(c0, p))
		}},
		{name: "PSK resumption reinit usage", want: commit.ErrPSKUsage, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			p := &wire.PreSharedKey{PSK: wire.PreSharedKeyID{Type: wire.PSKResumption, Usage: wire.ResumptionReInit, PSKGroupID: groupID, PSKEpoch: 1, Nonce: make([]byte, s.HashSize())}}
			return f.params(c0, false, byValue(c0, p))
		}},
		{name: "PSK resumption branch usage", want: commit.ErrPSKUsage, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			p := &wire.PreSharedKey{PSK: wire.PreSharedKeyID{Type: wire.PSKResumption, Usage: wire.ResumptionBranch, PSKGroupID: groupID, PSKEpoch: 1, Nonce: make([]byte, s.HashSize())}}
			return f.params(c0, false, byValue(c0, p))
		}},
		{name: "ReInit with another proposal", want: commit.ErrReInitNotAlone, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, false, byValue(c0, f.psk("x")), byValue(c0, &wire.ReInit{GroupID: []byte("g2"), Version: wire.MLS10, CipherSuite: s.ID()}))
		}},
		{name: "ReInit to lower version", want: commit.ErrReInitVersion, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, false, byValue(c0, &wire.ReInit{GroupID: []byte("g2"), Version: 0, CipherSuite: s.ID()}))
		}},
		{name: "ExternalInit in a regular Commit", want: commit.ErrExternalInitNotAllowed, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(c0, &wire.ExternalInit{KEMOutput: []byte("kem")}))
		}},
		{name: "ExternalInit by reference in a regular Commit", want: commit.ErrExternalInitNotAllowed, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(member(1), &wire.ExternalInit{KEMOutput: []byte("kem")}))
		}},
		{name: "two GCEs", want: commit.ErrMultipleGCE, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(c0, &wire.GroupContextExtensions{}), byRef(external(0), &wire.GroupContextExtensions{}))
		}},
		{name: "GCE with a repeated extension", want: commit.ErrInvalidExtensions, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			e := f.ctx.Extensions[0]
			return f.params(c0, true, byValue(c0, &wire.GroupContextExtensions{Extensions: []wire.Extension{e, e}}))
		}},
		{name: "GCE with a malformed external_senders", want: commit.ErrInvalidExtensions, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(c0, &wire.GroupContextExtensions{Extensions: []wire.Extension{{Type: wire.ExtensionExternalSenders, Data: []byte{9}}}}))
		}},
		{name: "GCE with an unsupported extension", want: commit.ErrGCEUnsupportedExtension, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(c0, &wire.GroupContextExtensions{Extensions: []wire.Extension{{Type: 0xF00F, Data: []byte{}}}}))
		}},
		{name: "GCE with unmet required capabilities", want: commit.ErrGCERequiredCapabilities, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			rc, err := wire.NewRequiredCapabilitiesExtension(&wire.RequiredCapabilities{ProposalTypes: []wire.ProposalType{0xF0F0}})
			if err != nil {
				t.Fatal(err)
			}
			return f.params(c0, true, byValue(c0, &wire.GroupContextExtensions{Extensions: []wire.Extension{rc}}))
		}},
		{name: "SelfRemove by value", want: commit.ErrSelfRemoveByValue, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(c0, &wire.SelfRemove{}))
		}},
		{name: "SelfRemove from external sender", want: commit.ErrSelfRemoveSender, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(external(0), &wire.SelfRemove{}))
		}},
		{name: "SelfRemove from new member", want: commit.ErrNewMemberProposalType, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(wire.Sender{Type: wire.SenderNewMemberProposal}, &wire.SelfRemove{}))
		}},
		{name: "two SelfRemoves from one member", want: commit.ErrDuplicateSelfRemove, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(member(2), &wire.SelfRemove{}), byRef(member(2), &wire.SelfRemove{}))
		}},
		{name: "SelfRemove of the committer", want: commit.ErrRemoveCommitter, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byRef(c0, &wire.SelfRemove{}))
		}},
		{name: "AppSync with GCE", want: commit.ErrAppSyncWithGCE, also: appsync.ErrAppSyncWithGCE, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, true, byValue(c0, &wire.GroupContextExtensions{Extensions: f.ctx.Extensions}), byValue(c0, appSync(7, appsync.OrderedArray)))
		}},
		{name: "two AppSyncs for one application", want: commit.ErrDuplicateAppSync, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, false, byValue(c0, appSync(7, appsync.OrderedArray)), byRef(external(0), appSync(7, appsync.OrderedArray)))
		}},
		{name: "AppSync with a bad index", want: commit.ErrAppSyncFailed, also: appsync.ErrIndexOutOfRange, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			a := appSync(7, appsync.OrderedArray)
			a.RemovedIndices = []uint32{5}
			return f.params(c0, false, byValue(c0, appSync(8, appsync.Irreducible)), byValue(c0, a))
		}},
		{name: "AppSync with the wrong state type", want: commit.ErrAppSyncFailed, also: appsync.ErrStateTypeMismatch, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(c0, false, byValue(c0, appSync(7, appsync.Map)))
		}},
		// External Commits (RFC 9420, Sections 12.2 and 12.4.3.2).
		{name: "external without ExternalInit", want: commit.ErrExternalInitCount, index: -1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byValue(newMemberCommit, f.psk("x")))
		}},
		{name: "external with two ExternalInits", want: commit.ErrExternalInitCount, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}), byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("b")}))
		}},
		{name: "external with Add", want: commit.ErrExternalCommitProposalType, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}), byValue(newMemberCommit, &wire.Add{KeyPackage: *newcomer(t, 70)}))
		}},
		{name: "external with GCE", want: commit.ErrExternalCommitProposalType, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}), byValue(newMemberCommit, &wire.GroupContextExtensions{}))
		}},
		{name: "external with ReInit", want: commit.ErrExternalCommitProposalType, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}), byValue(newMemberCommit, &wire.ReInit{Version: wire.MLS10}))
		}},
		{name: "external with AppSync", want: commit.ErrExternalCommitProposalType, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}), byValue(newMemberCommit, appSync(7, appsync.OrderedArray)))
		}},
		{name: "external with Update", want: commit.ErrUpdateByValue, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}), byValue(newMemberCommit, &wire.Update{LeafNode: *f.clients[1].updateLeaf(t, s, 1)}))
		}},
		{name: "external with Remove by reference", want: commit.ErrExternalCommitByReference, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}), byRef(member(1), &wire.Remove{Removed: 2}))
		}},
		{name: "external with ExternalInit by reference", want: commit.ErrExternalSenderProposalType, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byRef(external(0), &wire.ExternalInit{KEMOutput: []byte("a")}))
		}},
		{name: "external with SelfRemove by value", want: commit.ErrSelfRemoveByValue, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}), byValue(newMemberCommit, &wire.SelfRemove{}))
		}},
		{name: "external with two Removes", want: commit.ErrExternalCommitRemove, index: 2, build: func(t *testing.T, f *fixture) *commit.Params {
			p := f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}), byValue(newMemberCommit, &wire.Remove{Removed: 1}), byValue(newMemberCommit, &wire.Remove{Removed: 2}))
			p.PathLeaf = f.t.Leaf(1)
			return p
		}},
		{name: "external removing someone else", want: commit.ErrExternalCommitRemove, index: 1, build: func(t *testing.T, f *fixture) *commit.Params {
			p := f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}), byValue(newMemberCommit, &wire.Remove{Removed: 1}))
			p.PathLeaf = f.t.Leaf(2)
			return p
		}},
		{name: "external Remove without PathLeaf", want: commit.ErrMissingPathLeaf, index: -1, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}), byValue(newMemberCommit, &wire.Remove{Removed: 1}))
		}},
		{name: "external without path", want: commit.ErrPathRequired, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, false, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("a")}))
		}},
		{name: "external with by-value proposal from another sender", want: commit.ErrInvalidSender, index: 0, build: func(t *testing.T, f *fixture) *commit.Params {
			return f.params(newMemberCommit, true, byValue(member(1), &wire.ExternalInit{KEMOutput: []byte("a")}))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := c.n
			if n == 0 {
				n = 4
			}
			f := newFixture(t, n)
			p := c.build(t, f)
			before := f.snapshot(t)
			res, err := commit.Apply(p)
			if err == nil {
				t.Fatalf("Apply accepted: %+v", res)
			}
			if res != nil {
				t.Errorf("result returned with error")
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if c.also != nil && !errors.Is(err, c.also) {
				t.Errorf("error %v does not wrap %v", err, c.also)
			}
			var pe *commit.ProposalError
			isPE := errors.As(err, &pe)
			switch {
			case c.index < 0 && isPE:
				t.Errorf("unexpected ProposalError %v", pe)
			case c.index >= 0 && !isPE:
				t.Errorf("no ProposalError in %v", err)
			case c.index >= 0:
				if pe.Index != c.index {
					t.Errorf("ProposalError.Index %d, want %d", pe.Index, c.index)
				}
				if !bytes.Equal(pe.Ref, p.Proposals[pe.Index].Ref) {
					t.Errorf("ProposalError.Ref %x, want %x", pe.Ref, p.Proposals[pe.Index].Ref)
				}
			}
			if p.Tree != nil && !bytes.Equal(before, f.snapshot(t)) {
				t.Errorf("input tree or context modified")
			}
		})
	}
}

// applyOK runs Apply and checks that the inputs are unchanged.
func applyOK(t *testing.T, f *fixture, p *commit.Params) *commit.Result {
	t.Helper()
	before := f.snapshot(t)
	res, err := commit.Apply(p)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !bytes.Equal(before, f.snapshot(t)) {
		t.Fatalf("input tree or context modified")
	}
	if res.Tree == f.t {
		t.Fatalf("result tree is the input tree")
	}
	return res
}

func TestApplyAccepts(t *testing.T) {
	s := suite(t)
	c0 := member(0)
	t.Run("empty commit with path", func(t *testing.T) {
		f := newFixture(t, 4)
		res := applyOK(t, f, f.params(c0, true))
		if !res.PathRequired || res.Tree.MemberCount() != 4 {
			t.Errorf("PathRequired %v, members %d", res.PathRequired, res.Tree.MemberCount())
		}
	})
	t.Run("Add without path", func(t *testing.T) {
		f := newFixture(t, 3)
		kp := newClient(t, s, 10).KeyPackage(t, s, fullCaps())
		res := applyOK(t, f, f.params(c0, false, byValue(c0, &wire.Add{KeyPackage: *kp})))
		if res.PathRequired || len(res.Added) != 1 || res.Added[0] != 3 || !bytes.Equal(res.AddedKeyPackages[0].InitKey, kp.InitKey) {
			t.Fatalf("Added %v, PathRequired %v", res.Added, res.PathRequired)
		}
		if !bytes.Equal(res.Tree.Leaf(3).SignatureKey, kp.LeafNode.SignatureKey) {
			t.Errorf("leaf 3 is not the new member")
		}
		refs, err := res.KeyPackageRefs(s)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := kp.Ref(s)
		if len(refs) != 1 || !bytes.Equal(refs[0], want) {
			t.Errorf("KeyPackageRefs %x, want %x", refs, want)
		}
	})
	t.Run("Add extends the tree", func(t *testing.T) {
		f := newFixture(t, 4)
		res := applyOK(t, f, f.params(c0, false, byRef(external(0), &wire.Add{KeyPackage: *newClient(t, s, 11).KeyPackage(t, s, fullCaps())}),
			byRef(wire.Sender{Type: wire.SenderNewMemberProposal}, &wire.Add{KeyPackage: *newClient(t, s, 12).KeyPackage(t, s, fullCaps())})))
		if len(res.Added) != 2 || res.Added[0] != 4 || res.Added[1] != 5 || res.Tree.LeafCount() != 8 {
			t.Errorf("Added %v, leaves %d", res.Added, res.Tree.LeafCount())
		}
	})
	t.Run("Update", func(t *testing.T) {
		f := newFixture(t, 4)
		ln := f.clients[2].updateLeaf(t, s, 2)
		res := applyOK(t, f, f.params(c0, true, byRef(member(2), &wire.Update{LeafNode: *ln})))
		if !bytes.Equal(res.Tree.Leaf(2).EncryptionKey, ln.EncryptionKey) || len(res.Updated) != 1 || res.Updated[0] != 2 {
			t.Errorf("update not applied: %v", res.Updated)
		}
	})
	t.Run("Remove", func(t *testing.T) {
		f := newFixture(t, 4)
		res := applyOK(t, f, f.params(c0, true, byRef(external(0), &wire.Remove{Removed: 3})))
		if len(res.Removed) != 1 || res.Removed[0] != 3 || res.Tree.LeafCount() != 4 || res.Tree.Leaf(3) != nil {
			t.Errorf("Removed %v, leaves %d", res.Removed, res.Tree.LeafCount())
		}
		if res.RemovedLeaves[0] != f.t.Leaf(3) {
			t.Errorf("RemovedLeaves wrong")
		}
	})
	t.Run("Remove truncates", func(t *testing.T) {
		f := newFixture(t, 3)
		res := applyOK(t, f, f.params(c0, true, byValue(c0, &wire.Remove{Removed: 2})))
		if res.Tree.LeafCount() != 2 {
			t.Errorf("leaves %d, want 2", res.Tree.LeafCount())
		}
	})
	t.Run("PSK ReInit", func(t *testing.T) {
		f := newFixture(t, 2)
		res := applyOK(t, f, f.params(c0, false, byValue(c0, f.psk("a")), byRef(member(1), f.psk("b"))))
		if len(res.PSKs) != 2 || string(res.PSKs[1].PSKID) != "b" || res.PathRequired {
			t.Errorf("PSKs %v", res.PSKs)
		}
		ri := &wire.ReInit{GroupID: []byte("new"), Version: wire.MLS10, CipherSuite: s.ID()}
		res = applyOK(t, f, f.params(c0, false, byRef(external(0), ri)))
		if res.ReInit != ri {
			t.Errorf("ReInit not returned")
		}
		p := &wire.PreSharedKey{PSK: wire.PreSharedKeyID{Type: wire.PSKResumption, Usage: wire.ResumptionApplication, PSKGroupID: groupID, PSKEpoch: 3, Nonce: make([]byte, s.HashSize())}}
		applyOK(t, f, f.params(c0, false, byValue(c0, p)))
	})
	t.Run("GCE", func(t *testing.T) {
		f := newFixture(t, 3)
		rc, err := wire.NewRequiredCapabilitiesExtension(&wire.RequiredCapabilities{ProposalTypes: []wire.ProposalType{wire.ProposalAppSync}, CredentialTypes: []wire.CredentialType{wire.CredentialBasic}})
		if err != nil {
			t.Fatal(err)
		}
		exts := []wire.Extension{rc, f.ctx.Extensions[1]}
		kp := newClient(t, s, 13).KeyPackage(t, s, fullCaps())
		res := applyOK(t, f, f.params(c0, true, byRef(external(0), &wire.GroupContextExtensions{Extensions: exts}), byValue(c0, &wire.Add{KeyPackage: *kp})))
		if len(res.Extensions) != 2 || res.Extensions[0].Type != wire.ExtensionRequiredCapabilities || !bytes.Equal(res.Extensions[1].Data, f.ctx.Extensions[1].Data) {
			t.Errorf("extensions %v", res.Extensions)
		}
		// The external_senders extension is gone after this GCE.
		if _, found, _ := wire.ExternalSendersExtension(res.Extensions); found {
			t.Errorf("GCE is not a wholesale replacement")
		}
	})
	t.Run("SelfRemove", func(t *testing.T) {
		f := newFixture(t, 4)
		res := applyOK(t, f, f.params(c0, true, byRef(member(1), &wire.SelfRemove{})))
		if len(res.Removed) != 1 || res.Removed[0] != 1 || res.Tree.Leaf(1) != nil {
			t.Errorf("Removed %v", res.Removed)
		}
	})
	t.Run("AppSync", func(t *testing.T) {
		f := newFixture(t, 2)
		a := appSync(7, appsync.OrderedArray)
		a.AppendedEntries = [][]byte{[]byte("c")}
		n := appSync(9, appsync.Irreducible)
		n.NewState = []byte("state 9")
		res := applyOK(t, f, f.params(c0, false, byRef(external(0), a), byValue(c0, n)))
		if res.PathRequired || len(res.AppSyncs) != 2 {
			t.Fatalf("PathRequired %v, AppSyncs %d", res.PathRequired, len(res.AppSyncs))
		}
		st, found, err := wire.ApplicationStatesExtension(res.Extensions)
		if err != nil || !found {
			t.Fatal(err, found)
		}
		if got := st.Get(7).Elements; len(got) != 3 || string(got[2]) != "c" {
			t.Errorf("app 7: %q", got)
		}
		if string(st.Get(9).State) != "state 9" {
			t.Errorf("app 9: %q", st.Get(9).State)
		}
		if res.ApplicationStates.Get(9) == nil {
			t.Errorf("Result.ApplicationStates not set")
		}
		// The extension stays in place.
		if res.Extensions[1].Type != wire.ExtensionApplicationStates || len(res.Extensions) != 2 {
			t.Errorf("extension order changed: %v", res.Extensions)
		}
	})
	t.Run("AppSync creates application_states", func(t *testing.T) {
		f := newFixture(t, 2)
		f.ctx.Extensions = f.ctx.Extensions[:1]
		a := appSync(3, appsync.Map)
		a.NewOrUpdatedElements = []appsync.MapEntry{{Name: []byte("k"), Value: []byte("v")}}
		res := applyOK(t, f, f.params(c0, false, byValue(c0, a)))
		if len(res.Extensions) != 2 || res.Extensions[1].Type != wire.ExtensionApplicationStates {
			t.Fatalf("extensions %v", res.Extensions)
		}
		st, _, _ := wire.ApplicationStatesExtension(res.Extensions)
		if e := st.Get(3); e == nil || len(e.Entries) != 1 {
			t.Errorf("state %v", e)
		}
	})
	t.Run("Remove then re-Add the same client", func(t *testing.T) {
		f := newFixture(t, 4)
		kp := f.clients[2].KeyPackage(t, s, fullCaps())
		res := applyOK(t, f, f.params(c0, true, byValue(c0, &wire.Add{KeyPackage: *kp}), byRef(member(1), &wire.Remove{Removed: 2})))
		if len(res.Added) != 1 || res.Added[0] != 2 || len(res.Removed) != 1 {
			t.Errorf("Added %v Removed %v", res.Added, res.Removed)
		}
	})
	t.Run("SelfRemove then re-Add", func(t *testing.T) {
		f := newFixture(t, 4)
		kp := f.clients[3].KeyPackage(t, s, fullCaps())
		applyOK(t, f, f.params(c0, true, byRef(member(3), &wire.SelfRemove{}), byValue(c0, &wire.Add{KeyPackage: *kp})))
	})
	t.Run("everything in RFC order", func(t *testing.T) {
		f := newFixture(t, 4)
		upd := f.clients[1].updateLeaf(t, s, 1)
		kpA := newClient(t, s, 20).KeyPackage(t, s, fullCaps())
		kpB := newClient(t, s, 21).KeyPackage(t, s, fullCaps())
		as := appSync(7, appsync.OrderedArray)
		as.RemovedIndices = []uint32{0}
		p := f.params(c0, true,
			byValue(c0, &wire.Add{KeyPackage: *kpA}),
			byRef(member(3), &wire.Remove{Removed: 2}),
			byRef(member(1), &wire.Update{LeafNode: *upd}),
			byValue(c0, f.psk("p")),
			byRef(member(3), &wire.SelfRemove{}),
			byRef(external(0), as),
			byValue(c0, &wire.Add{KeyPackage: *kpB}),
		)
		res := applyOK(t, f, p)
		// SelfRemove of 3 and Remove of 2 truncate the tree to 2 leaves;
		// the Adds then fill leaves 2 and 3.
		if len(res.Removed) != 2 || res.Removed[0] != 3 || res.Removed[1] != 2 {
			t.Errorf("Removed %v", res.Removed)
		}
		if len(res.Added) != 2 || res.Added[0] != 2 || res.Added[1] != 3 {
			t.Errorf("Added %v", res.Added)
		}
		if !bytes.Equal(res.Tree.Leaf(1).EncryptionKey, upd.EncryptionKey) {
			t.Errorf("Update not applied")
		}
		if !bytes.Equal(res.Tree.Leaf(2).SignatureKey, kpA.LeafNode.SignatureKey) {
			t.Errorf("first Add not at leaf 2")
		}
		if len(res.PSKs) != 1 || len(res.AppSyncs) != 1 || res.ApplicationStates.Get(7).Elements[0][0] != 'b' {
			t.Errorf("PSKs %v AppSyncs %v", res.PSKs, res.AppSyncs)
		}
	})
	t.Run("external join", func(t *testing.T) {
		f := newFixture(t, 3)
		res := applyOK(t, f, f.params(newMemberCommit, true, byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("kem")}), byValue(newMemberCommit, f.psk("q"))))
		if res.ExternalInit == nil || !res.PathRequired || len(res.PSKs) != 1 {
			t.Errorf("%+v", res)
		}
	})
	t.Run("external resync with SelfRemoves", func(t *testing.T) {
		f := newFixture(t, 4)
		newLeaf := *f.t.Leaf(1)
		p := f.params(newMemberCommit, true,
			byRef(member(3), &wire.SelfRemove{}),
			byValue(newMemberCommit, &wire.Remove{Removed: 1}),
			byValue(newMemberCommit, &wire.ExternalInit{KEMOutput: []byte("kem")}),
			byRef(member(2), &wire.SelfRemove{}))
		p.PathLeaf = &newLeaf
		res := applyOK(t, f, p)
		if len(res.Removed) != 3 || res.Removed[0] != 3 || res.Removed[1] != 2 || res.Removed[2] != 1 {
			t.Errorf("Removed %v", res.Removed)
		}
		if free := res.Tree.LeftmostBlankLeaf(); free != 1 {
			t.Errorf("joiner would go to leaf %d", free)
		}
	})
}

// TestAppSyncWithUserClients adds the clients of a user together with the
// AppSync that puts the user into a participant list, in one Commit
// without an UpdatePath (the MIMI "add user" flow).
func TestAppSyncWithUserClients(t *testing.T) {
	s := suite(t)
	f := newFixture(t, 2)
	const participants = 0xF0000002
	a := appSync(participants, appsync.Map)
	a.NewOrUpdatedElements = []appsync.MapEntry{{Name: []byte("mimi://b.example/u/bob"), Value: []byte{2}}}
	c0 := member(0)
	var props []commit.SourcedProposal
	props = append(props, byRef(external(0), a))
	var kps []*wire.KeyPackage
	for i := 0; i < 3; i++ {
		kp := newClient(t, s, 100+i).KeyPackage(t, s, fullCaps())
		kps = append(kps, kp)
		props = append(props, byRef(external(0), &wire.Add{KeyPackage: *kp}))
	}
	res := applyOK(t, f, f.params(c0, false, props...))
	if len(res.Added) != 3 || res.Tree.MemberCount() != 5 {
		t.Fatalf("Added %v", res.Added)
	}
	refs, err := res.KeyPackageRefs(s)
	if err != nil {
		t.Fatal(err)
	}
	for i, kp := range kps {
		want, _ := kp.Ref(s)
		if !bytes.Equal(refs[i], want) {
			t.Errorf("ref %d mismatch", i)
		}
	}
	st := res.ApplicationStates.Get(participants)
	if st == nil || len(st.Entries) != 1 || string(st.Entries[0].Name) != "mimi://b.example/u/bob" {
		t.Errorf("participant list %+v", st)
	}
	// The new extension encodes the same states.
	got, _, err := wire.ApplicationStatesExtension(res.Extensions)
	if err != nil || got.Get(participants) == nil || got.Get(7) == nil {
		t.Errorf("application_states extension: %v", err)
	}
}

func TestValidateProposal(t *testing.T) {
	s := suite(t)
	f := newFixture(t, 3)
	ok := []struct {
		name   string
		sender wire.Sender
		p      wire.ProposalBody
	}{
		{"add from member", member(1), &wire.Add{KeyPackage: *newClient(t, s, 30).KeyPackage(t, s, fullCaps())}},
		{"add from new member", wire.Sender{Type: wire.SenderNewMemberProposal}, &wire.Add{KeyPackage: *newClient(t, s, 31).KeyPackage(t, s, fullCaps())}},
		{"re-add of a member's client", external(0), &wire.Add{KeyPackage: *f.clients[1].KeyPackage(t, s, fullCaps())}},
		{"update", member(2), &wire.Update{LeafNode: *f.clients[2].updateLeaf(t, s, 2)}},
		{"remove from external", external(0), &wire.Remove{Removed: 1}},
		{"psk", member(0), f.psk("z")},
		{"reinit", external(0), &wire.ReInit{Version: wire.MLS10}},
		{"gce", member(1), &wire.GroupContextExtensions{Extensions: f.ctx.Extensions}},
		{"self remove", member(2), &wire.SelfRemove{}},
		{"appsync from external", external(0), appSync(7, appsync.OrderedArray)},
	}
	for _, c := range ok {
		if err := commit.ValidateProposal(s, f.t, f.ctx, c.sender, prop(c.p), time.Unix(5000, 0)); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	bad := []struct {
		name   string
		sender wire.Sender
		p      *wire.Proposal
		want   error
	}{
		{"external init", member(1), prop(&wire.ExternalInit{}), commit.ErrExternalInitNotAllowed},
		{"update from external", external(0), prop(&wire.Update{LeafNode: *f.clients[2].updateLeaf(t, s, 2)}), commit.ErrExternalSenderProposalType},
		{"self remove from external", external(0), prop(&wire.SelfRemove{}), commit.ErrSelfRemoveSender},
		{"unknown external sender", external(4), prop(&wire.Remove{Removed: 1}), commit.ErrUnknownExternalSender},
		{"blank member sender", member(3), prop(&wire.Remove{Removed: 1}), commit.ErrUnknownSender},
		{"new member remove", wire.Sender{Type: wire.SenderNewMemberProposal}, prop(&wire.Remove{Removed: 1}), commit.ErrNewMemberProposalType},
		{"new_member_commit sender", newMemberCommit, prop(&wire.Remove{Removed: 1}), commit.ErrInvalidSender},
		{"remove blank", member(1), prop(&wire.Remove{Removed: 3}), commit.ErrRemoveBlankLeaf},
		{"remove out of range", member(1), prop(&wire.Remove{Removed: 4}), commit.ErrRemoveOutOfRange},
		{"update bad signature", member(2), prop(&wire.Update{LeafNode: *f.clients[2].updateLeaf(t, s, 1)}), commit.ErrInvalidLeafNode},
		{"add bad kp", member(1), func() *wire.Proposal {
			kp := newClient(t, s, 32).KeyPackage(t, s, fullCaps())
			kp.InitKey = kp.LeafNode.EncryptionKey
			return prop(&wire.Add{KeyPackage: *kp})
		}(), commit.ErrInvalidKeyPackage},
		{"add expired", member(1), prop(&wire.Add{KeyPackage: *newClient(t, s, 33).KeyPackage(t, s, fullCaps())}), nil},
		{"psk nonce", member(1), prop(&wire.PreSharedKey{PSK: wire.PreSharedKeyID{Type: wire.PSKExternal, PSKID: []byte("x")}}), commit.ErrPSKNonceLength},
		{"reinit version", member(1), prop(&wire.ReInit{Version: 0}), commit.ErrReInitVersion},
		{"gce unsupported", member(1), prop(&wire.GroupContextExtensions{Extensions: []wire.Extension{{Type: 0xFF00}}}), commit.ErrGCEUnsupportedExtension},
		{"appsync failing", member(1), prop(appSync(7, appsync.Irreducible)), commit.ErrAppSyncFailed},
		{"malformed", member(1), &wire.Proposal{Type: wire.ProposalRemove}, commit.ErrMalformedProposal},
	}
	for _, c := range bad {
		now := time.Unix(5000, 0)
		want := c.want
		if want == nil { // the expiry case
			now, want = time.Unix(10, 0), commit.ErrInvalidLeafNode
		}
		before := f.snapshot(t)
		err := commit.ValidateProposal(s, f.t, f.ctx, c.sender, c.p, now)
		if !errors.Is(err, want) {
			t.Errorf("%s: error %v, want %v", c.name, err, want)
		}
		var pe *commit.ProposalError
		if err != nil && !errors.As(err, &pe) {
			t.Errorf("%s: not a ProposalError", c.name)
		}
		if !bytes.Equal(before, f.snapshot(t)) {
			t.Errorf("%s: tree or context modified", c.name)
		}
	}
	// A non-default type that a member does not support.
	caps := fullCaps()
	caps.Proposals = nil
	kp := newClient(t, s, 40).KeyPackage(t, s, caps)
	if _, err := f.t.AddLeaf(&kp.LeafNode); err != nil {
		t.Fatal(err)
	}
	if err := commit.ValidateProposal(s, f.t, f.ctx, member(0), prop(appSync(7, appsync.OrderedArray)), time.Time{}); !errors.Is(err, commit.ErrUnsupportedProposalType) {
		t.Errorf("unsupported type: %v", err)
	}
}

// TestPathRequired pins the "Path Required" column (RFC 9420, Section
// 17.4; draft-ietf-mls-extensions; draft-ralston-mimi-protocol-02).
func TestPathRequired(t *testing.T) {
	want := map[wire.ProposalType]bool{
		wire.ProposalAdd: false, wire.ProposalUpdate: true, wire.ProposalRemove: true,
		wire.ProposalPreSharedKey: false, wire.ProposalReInit: false, wire.ProposalExternalInit: true,
		wire.ProposalGroupContextExtensions: true, wire.ProposalSelfRemove: true, wire.ProposalAppSync: false,
	}
	for pt, w := range want {
		if commit.PathRequired(pt) != w {
			t.Errorf("PathRequired(%d) = %v", pt, !w)
		}
	}
	ext := map[wire.ProposalType]bool{
		wire.ProposalAdd: true, wire.ProposalUpdate: false, wire.ProposalRemove: true,
		wire.ProposalPreSharedKey: true, wire.ProposalReInit: true, wire.ProposalExternalInit: false,
		wire.ProposalGroupContextExtensions: true, wire.ProposalSelfRemove: false, wire.ProposalAppSync: true,
	}
	for pt, w := range ext {
		if commit.ExternalSenderAllowed(pt) != w {
			t.Errorf("ExternalSenderAllowed(%d) = %v", pt, !w)
		}
	}
}
