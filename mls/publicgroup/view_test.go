package publicgroup_test

import (
	"bytes"
	"errors"
	"github.com/openmimi/mimi/internal/mlstest"
	"testing"

	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/wire"
)

func TestCommitLifecycle(t *testing.T) {
	f := newFixture(t, 4)
	v := f.v
	s := f.s
	ref, err := v.HandleProposal(f.memberProposal(t, 1, &wire.Remove{Removed: 2}))
	if err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	if ref2, err := v.HandleProposal(f.memberProposal(t, 1, &wire.Remove{Removed: 2})); err != nil || !bytes.Equal(ref, ref2) {
		t.Fatalf("second HandleProposal: %v", err)
	}
	if pp := v.PendingProposals(); len(pp) != 1 || !bytes.Equal(pp[0].Ref, ref) || pp[0].Sender.Index != 1 {
		t.Fatalf("pending %+v", pp)
	}
	newcomer := newClient(t, s, 50)
	kp := newcomer.KeyPackage(t, s, mlstest.Caps())
	msg := f.makeCommit(t, 0, []wire.ProposalOrRef{byRef(ref), byValue(&wire.Add{KeyPackage: *kp})}, commitOpts{})
	before := viewBytes(t, v)
	r, err := v.HandleCommit(msg)
	if err != nil {
		t.Fatalf("HandleCommit: %v", err)
	}
	if !bytes.Equal(before, viewBytes(t, v)) {
		t.Fatal("HandleCommit changed the view")
	}
	if r.Epoch != 4 || r.Committer.Index != 0 || r.CommitterLeaf != 0 || r.External {
		t.Errorf("result %+v", r)
	}
	if len(r.Removed) != 1 || r.Removed[0].Leaf != 2 || string(r.Removed[0].Credential.Identity) != "client-2" {
		t.Errorf("Removed %+v", r.Removed)
	}
	wantRef, _ := kp.Ref(s)
	if len(r.Added) != 1 || r.Added[0].Leaf != 2 || !bytes.Equal(r.Added[0].KeyPackageRef, wantRef) || string(r.Added[0].Credential.Identity) != "client-50" {
		t.Errorf("Added %+v", r.Added)
	}
	if len(r.ProposalRefs) != 1 || !bytes.Equal(r.ProposalRefs[0], ref) {
		t.Errorf("ProposalRefs %x", r.ProposalRefs)
	}
	// The GroupInfo a committer would upload.
	gi := f.groupInfo(t, r.GroupContext, r.ConfirmationTag, 0, f.clients[0].SigPriv)
	if err := r.CheckGroupInfo(gi); err != nil {
		t.Fatalf("CheckGroupInfo: %v", err)
	}
	for name, bad := range map[string]*wire.GroupInfo{
		"wrong tag":       f.groupInfo(t, r.GroupContext, []byte("x"), 0, f.clients[0].SigPriv),
		"wrong signer":    f.groupInfo(t, r.GroupContext, r.ConfirmationTag, 1, f.clients[0].SigPriv),
		"removed signer":  f.groupInfo(t, r.GroupContext, r.ConfirmationTag, 3, f.clients[2].SigPriv),
		"old context":     f.groupInfo(t, v.GroupContext(), r.ConfirmationTag, 0, f.clients[0].SigPriv),
		"blank signer ix": f.groupInfo(t, r.GroupContext, r.ConfirmationTag, 9, f.clients[0].SigPriv),
	} {
		if err := r.CheckGroupInfo(bad); !errors.Is(err, publicgroup.ErrGroupInfoMismatch) {
			t.Errorf("%s: %v", name, err)
		}
	}
	withTree := *gi
	rt := r.View().RatchetTree()
	ext, _ := wire.NewRatchetTreeExtension(rt)
	withTree.Extensions = []wire.Extension{ext}
	if err := withTree.Sign(s, f.clients[0].SigPriv); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckGroupInfo(&withTree); err != nil {
		t.Errorf("GroupInfo with ratchet_tree: %v", err)
	}
	stale := *r
	if err := v.Accept(r); err != nil {
		t.Fatal(err)
	}
	if v.Epoch() != 4 || len(v.PendingProposals()) != 0 || !bytes.Equal(v.InterimTranscriptHash(), r.InterimTranscriptHash) {
		t.Fatalf("after Accept: epoch %d", v.Epoch())
	}
	if err := v.CheckGroupInfo(gi); err != nil {
		t.Errorf("view CheckGroupInfo: %v", err)
	}
	if err := v.Accept(&stale); !errors.Is(err, publicgroup.ErrStaleResult) {
		t.Errorf("second Accept: %v", err)
	}
	ms := v.Members()
	if len(ms) != 4 || string(ms[2].Credential.Identity) != "client-50" {
		t.Errorf("members %+v", ms)
	}
	// A second commit, from the new member, without proposals.
	f.clients = append(f.clients[:2], newcomer, f.clients[3])
	r2, err := v.HandleCommit(f.makeCommit(t, 2, nil, commitOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Accept(r2); err != nil {
		t.Fatal(err)
	}
	if v.Epoch() != 5 {
		t.Errorf("epoch %d", v.Epoch())
	}
}

func TestExternalSenderProposals(t *testing.T) {
	f := newFixture(t, 3)
	v, s := f.v, f.s
	kp := newClient(t, s, 60).KeyPackage(t, s, mlstest.Caps())
	as := &wire.AppSync{AppSync: appsync.AppSync{ApplicationID: 0xF0000002, Type: appsync.Map,
		NewOrUpdatedElements: []appsync.MapEntry{{Name: []byte("mimi://x/u/alice"), Value: []byte{1}}}}}
	var refs []wire.ProposalOrRef
	for _, b := range []wire.ProposalBody{&wire.Add{KeyPackage: *kp}, &wire.Remove{Removed: 1}, as} {
		ref, err := v.HandleProposal(f.hubProposal(t, b))
		if err != nil {
			t.Fatalf("%T: %v", b, err)
		}
		refs = append(refs, byRef(ref))
	}
	// Not in external_senders: another key, or an out-of-range index.
	other := newClient(t, s, 61)
	ctx := v.GroupContext()
	forged, err := publicgroup.SignExternalProposal(s, ctx.GroupID, ctx.Epoch, 0, prop(&wire.Remove{Removed: 2}), ctx, other.SigPriv)
	if err != nil {
		t.Fatal(err)
	}
	before := viewBytes(t, v)
	if _, err := v.HandleProposal(forged); !errors.Is(err, publicgroup.ErrBadSignature) {
		t.Errorf("forged: %v", err)
	}
	out, err := publicgroup.SignExternalProposal(s, ctx.GroupID, ctx.Epoch, 1, prop(&wire.Remove{Removed: 2}), ctx, f.hub.SigPriv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.HandleProposal(out); !errors.Is(err, publicgroup.ErrUnknownExternalSender) {
		t.Errorf("out of range: %v", err)
	}
	if !bytes.Equal(before, viewBytes(t, v)) {
		t.Errorf("rejected proposals changed the view")
	}
	// Types an external sender may not send.
	for _, b := range []wire.ProposalBody{&wire.SelfRemove{}, &wire.Update{}, &wire.ExternalInit{}} {
		if _, err := publicgroup.SignExternalProposal(s, ctx.GroupID, ctx.Epoch, 0, prop(b), ctx, f.hub.SigPriv); !errors.Is(err, commit.ErrExternalSenderProposalType) {
			t.Errorf("%T: %v", b, err)
		}
	}
	if _, err := publicgroup.SignExternalProposal(s, ctx.GroupID, ctx.Epoch+1, 0, prop(&wire.Remove{Removed: 2}), ctx, f.hub.SigPriv); err == nil {
		t.Errorf("context mismatch accepted")
	}
	// The members' commit of the hub's proposals.
	r, err := v.HandleCommit(f.makeCommit(t, 0, refs, commitOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.AppSyncs) != 1 || len(r.Added) != 1 || len(r.Removed) != 1 || r.Removed[0].Leaf != 1 {
		t.Fatalf("result %+v", r)
	}
	if st := r.ApplicationStates.Get(0xF0000002); st == nil || len(st.Entries) != 1 {
		t.Errorf("application states %+v", st)
	}
	if err := v.Accept(r); err != nil {
		t.Fatal(err)
	}
	if st := v.ApplicationStates().Get(0xF0000002); st == nil || len(st.Entries) != 1 {
		t.Errorf("view application states %+v", st)
	}
	if len(v.ExternalSenders()) != 1 {
		t.Errorf("external senders %v", v.ExternalSenders())
	}
}

func TestExternalCommit(t *testing.T) {
	f := newFixture(t, 3)
	v, s := f.v, f.s
	joiner := newClient(t, s, 70)
	sr, err := v.HandleProposal(f.memberProposal(t, 1, &wire.SelfRemove{}))
	if err != nil {
		t.Fatal(err)
	}
	msg := f.makeCommit(t, 0, []wire.ProposalOrRef{byValue(&wire.ExternalInit{KEMOutput: []byte("kem")}), byRef(sr)}, commitOpts{external: joiner})
	r, err := v.HandleCommit(msg)
	if err != nil {
		t.Fatalf("HandleCommit: %v", err)
	}
	if !r.External || r.CommitterLeaf != 1 || len(r.Removed) != 1 || r.Removed[0].Leaf != 1 {
		t.Fatalf("result: external %v leaf %d removed %+v", r.External, r.CommitterLeaf, r.Removed)
	}
	if err := v.Accept(r); err != nil {
		t.Fatal(err)
	}
	m, ok := v.Member(1)
	if !ok || !bytes.Equal(m.SignatureKey, joiner.SigPub) {
		t.Errorf("joiner not at leaf 1")
	}
}

// TestHandleRejects: every rejection leaves the view's bytes unchanged.
func TestHandleRejects(t *testing.T) {
	type tc struct {
		name   string
		commit bool
		msg    func(t *testing.T, f *fixture) *wire.PublicMessage
		want   error
	}
	cases := []tc{
		{"wrong epoch", false, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.memberProposal(t, 1, &wire.Remove{Removed: 2})
			m.Content.Epoch++
			return m
		}, publicgroup.ErrWrongEpoch},
		{"wrong group", false, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.memberProposal(t, 1, &wire.Remove{Removed: 2})
			m.Content.GroupID = []byte("other")
			return m
		}, publicgroup.ErrWrongGroup},
		{"bad signature", false, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.memberProposal(t, 1, &wire.Remove{Removed: 2})
			m.Auth.Signature[3] ^= 1
			return m
		}, publicgroup.ErrBadSignature},
		{"signed by another member", false, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.memberProposal(t, 1, &wire.Remove{Removed: 2})
			m.Content.Sender.Index = 3
			return m
		}, publicgroup.ErrBadSignature},
		{"unknown sender leaf", false, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.memberProposal(t, 1, &wire.Remove{Removed: 2})
			m.Content.Sender.Index = 12
			return m
		}, publicgroup.ErrUnknownSender},
		{"external sender not listed", false, func(t *testing.T, f *fixture) *wire.PublicMessage {
			ctx := f.v.GroupContext()
			m, err := publicgroup.SignExternalProposal(f.s, ctx.GroupID, ctx.Epoch, 5, prop(&wire.Remove{Removed: 2}), nil, f.hub.SigPriv)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}, publicgroup.ErrUnknownExternalSender},
		{"missing membership tag", false, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.memberProposal(t, 1, &wire.Remove{Removed: 2})
			m.MembershipTag = nil
			return m
		}, publicgroup.ErrMalformedMessage},
		{"invalid proposal", false, func(t *testing.T, f *fixture) *wire.PublicMessage {
			return f.memberProposal(t, 1, &wire.Remove{Removed: 9})
		}, commit.ErrRemoveOutOfRange},
		{"commit to HandleProposal", false, func(t *testing.T, f *fixture) *wire.PublicMessage {
			return f.makeCommit(t, 0, nil, commitOpts{})
		}, publicgroup.ErrNotProposal},
		{"new_member_proposal Remove", false, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.memberProposal(t, 1, &wire.Remove{Removed: 2})
			m.Content.Sender = wire.Sender{Type: wire.SenderNewMemberProposal}
			m.MembershipTag = nil
			return m
		}, publicgroup.ErrInvalidSender},
		{"commit: wrong epoch", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.makeCommit(t, 0, nil, commitOpts{})
			m.Content.Epoch--
			return m
		}, publicgroup.ErrWrongEpoch},
		{"commit: bad signature", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.makeCommit(t, 0, nil, commitOpts{})
			m.Auth.Signature[0] ^= 1
			return m
		}, publicgroup.ErrBadSignature},
		{"commit: unknown sender leaf", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.makeCommit(t, 0, nil, commitOpts{})
			m.Content.Sender.Index = 7
			return m
		}, publicgroup.ErrUnknownSender},
		{"commit: external sender", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.makeCommit(t, 0, nil, commitOpts{})
			m.Content.Sender = wire.Sender{Type: wire.SenderExternal}
			m.MembershipTag = nil
			return m
		}, publicgroup.ErrInvalidSender},
		{"commit: unknown proposal ref", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			return f.makeCommit(t, 0, []wire.ProposalOrRef{byRef(make([]byte, 32))}, commitOpts{})
		}, publicgroup.ErrUnknownProposalRef},
		{"commit: invalid proposal list", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			return f.makeCommit(t, 0, []wire.ProposalOrRef{byValue(&wire.Remove{Removed: 0})}, commitOpts{})
		}, commit.ErrRemoveCommitter},
		{"commit: missing path", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			return f.makeCommit(t, 0, nil, commitOpts{noPath: true})
		}, commit.ErrPathRequired},
		{"commit: tampered path", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.makeCommit(t, 0, nil, commitOpts{})
			m.Content.Commit.Path.Nodes[0].EncryptionKey = m.Content.Commit.Path.Nodes[1].EncryptionKey
			ac := m.AuthenticatedContent()
			if err := ac.Sign(f.s, f.clients[0].SigPriv, f.v.GroupContext()); err != nil {
				t.Fatal(err)
			}
			m.Auth.Signature = ac.Auth.Signature
			return m
		}, tree.ErrDuplicateEncryptionKey},
		{"commit: proposal to HandleCommit", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			return f.memberProposal(t, 1, &wire.Remove{Removed: 2})
		}, publicgroup.ErrNotCommit},
		{"commit: external without path", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.makeCommit(t, 0, []wire.ProposalOrRef{byValue(&wire.ExternalInit{})}, commitOpts{external: newClient(t, f.s, 80)})
			m.Content.Commit.Path = nil
			return m
		}, publicgroup.ErrMalformedMessage},
		{"commit: missing confirmation tag", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.makeCommit(t, 0, nil, commitOpts{})
			m.Auth.ConfirmationTag = nil
			return m
		}, publicgroup.ErrMalformedMessage},
		{"commit: short confirmation tag", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.makeCommit(t, 0, nil, commitOpts{})
			m.Auth.ConfirmationTag = m.Auth.ConfirmationTag[:5]
			return m
		}, publicgroup.ErrMalformedMessage},
		{"application data", true, func(t *testing.T, f *fixture) *wire.PublicMessage {
			m := f.memberProposal(t, 1, &wire.Remove{Removed: 2})
			m.Content.ContentType, m.Content.Proposal, m.Content.ApplicationData = wire.ContentApplication, nil, []byte("hi")
			return m
		}, publicgroup.ErrMalformedMessage},
		{"nil message", true, func(t *testing.T, f *fixture) *wire.PublicMessage { return nil }, publicgroup.ErrMalformedMessage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, 4)
			// A cached proposal, so that the cache is part of the bytes.
			if _, err := f.v.HandleProposal(f.hubProposal(t, &wire.Remove{Removed: 3})); err != nil {
				t.Fatal(err)
			}
			m := c.msg(t, f)
			before := viewBytes(t, f.v)
			var err error
			if c.commit {
				var r *publicgroup.CommitResult
				r, err = f.v.HandleCommit(m)
				if r != nil {
					t.Errorf("result with error")
				}
			} else {
				_, err = f.v.HandleProposal(m)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if !bytes.Equal(before, viewBytes(t, f.v)) {
				t.Fatalf("view changed")
			}
		})
	}
}

func TestUnknownRefIsProposalError(t *testing.T) {
	f := newFixture(t, 3)
	ref := bytes.Repeat([]byte{7}, 32)
	_, err := f.v.HandleCommit(f.makeCommit(t, 0, []wire.ProposalOrRef{byValue(&wire.Remove{Removed: 1}), byRef(ref)}, commitOpts{}))
	var pe *commit.ProposalError
	if !errors.As(err, &pe) || pe.Index != 1 || !bytes.Equal(pe.Ref, ref) {
		t.Fatalf("error %v", err)
	}
}

func TestMarshalCloneNew(t *testing.T) {
	f := newFixture(t, 4)
	v := f.v
	if _, err := v.HandleProposal(f.hubProposal(t, &wire.Remove{Removed: 3})); err != nil {
		t.Fatal(err)
	}
	if _, err := v.HandleProposal(f.memberProposal(t, 2, &wire.SelfRemove{})); err != nil {
		t.Fatal(err)
	}
	b := viewBytes(t, v)
	if !bytes.Equal(b, viewBytes(t, v)) {
		t.Fatal("Marshal not deterministic")
	}
	u, err := publicgroup.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, viewBytes(t, u)) || len(u.PendingProposals()) != 2 {
		t.Fatal("round trip differs")
	}
	c := v.Clone()
	r, err := c.HandleCommit(f.makeCommit(t, 0, nil, commitOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Accept(r); !errors.Is(err, publicgroup.ErrStaleResult) {
		t.Errorf("result of a clone accepted by the original: %v", err)
	}
	if err := c.Accept(r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, viewBytes(t, v)) || c.Epoch() != v.Epoch()+1 {
		t.Fatal("Clone is not independent")
	}
	for i := range b {
		if i%7 != 0 {
			continue
		}
		bad := bytes.Clone(b)
		bad[i] ^= 0x55
		if u, err := publicgroup.Unmarshal(bad); err == nil {
			if !bytes.Equal(viewBytes(t, u), bad) {
				t.Errorf("byte %d: accepted and re-encoded differently", i)
			}
		} else if !errors.Is(err, publicgroup.ErrInvalidEncoding) {
			t.Errorf("byte %d: error %v", i, err)
		}
	}
	if _, err := publicgroup.Unmarshal(b[:len(b)-1]); !errors.Is(err, publicgroup.ErrInvalidEncoding) {
		t.Errorf("truncated: %v", err)
	}
	// New from a signed GroupInfo with the tree in an extension.
	ctx := v.GroupContext()
	gi := f.groupInfo(t, ctx, v.ConfirmationTag(), 1, f.clients[1].SigPriv)
	nv, err := publicgroup.New(f.s, gi, v.RatchetTree())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(nv.InterimTranscriptHash(), v.InterimTranscriptHash()) || nv.Epoch() != v.Epoch() {
		t.Errorf("New differs from NewFromState")
	}
	ext, _ := wire.NewRatchetTreeExtension(v.RatchetTree())
	gi.Extensions = []wire.Extension{ext}
	if err := gi.Sign(f.s, f.clients[1].SigPriv); err != nil {
		t.Fatal(err)
	}
	if _, err := publicgroup.New(f.s, gi, nil); err != nil {
		t.Errorf("New with ratchet_tree extension: %v", err)
	}
	gi.Signature[0] ^= 1
	if _, err := publicgroup.New(f.s, gi, nil); !errors.Is(err, publicgroup.ErrInvalidGroupInfo) {
		t.Errorf("bad GroupInfo signature: %v", err)
	}
	bad := f.groupInfo(t, ctx, v.ConfirmationTag(), 1, f.clients[1].SigPriv)
	bad.GroupContext.TreeHash = make([]byte, 32)
	if err := bad.Sign(f.s, f.clients[1].SigPriv); err != nil {
		t.Fatal(err)
	}
	if _, err := publicgroup.New(f.s, bad, v.RatchetTree()); !errors.Is(err, publicgroup.ErrInvalidTree) || !errors.Is(err, tree.ErrTreeHashMismatch) {
		t.Errorf("tree hash mismatch: %v", err)
	}
}
