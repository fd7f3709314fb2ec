package publicgroup_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/openmimi/mimi/internal/vectors"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/codec"
	"github.com/openmimi/mimi/mls/commit"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/publicgroup"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// passiveCase is one test case of the passive-client-*.json files
// (README-test-vectors.md, "Passive Client Scenarios").
type passiveCase struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID vectors.Hex `json:"psk_id"`
		PSK   vectors.Hex `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                vectors.Hex `json:"key_package"`
	SignaturePriv             vectors.Hex `json:"signature_priv"`
	EncryptionPriv            vectors.Hex `json:"encryption_priv"`
	InitPriv                  vectors.Hex `json:"init_priv"`
	Welcome                   vectors.Hex `json:"welcome"`
	RatchetTree               vectors.Hex `json:"ratchet_tree"`
	InitialEpochAuthenticator vectors.Hex `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []vectors.Hex `json:"proposals"`
		Commit             vectors.Hex   `json:"commit"`
		EpochAuthenticator vectors.Hex   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

// memberStats counts what the test's member-side re-derivation compared.
type memberStats struct {
	epochs, compared, external int
}

// TestPublicViewPassiveVectors makes the public view follow every group of
// the passive-client vectors. The test opens the Welcome with the passive
// client's keys only to obtain the GroupInfo (which a server would get from
// the committer); the view gets nothing but that GroupInfo, the tree and
// the PublicMessages. At every epoch it checks that the view accepts the
// proposals and the Commit and advances the epoch, that its tree hash is
// the hash of its exported tree and that Marshal/Unmarshal round-trips.
// Independently the test re-derives the passive member's key schedule
// (TreeKEM decryption of the UpdatePath with the member's private keys,
// PSKs, keyschedule.Derive) over the view's new GroupContext: matching the
// vector's epoch_authenticator and the commit's confirmation_tag proves that
// the view's GroupContext (tree hash, confirmed transcript hash, extensions,
// epoch) is byte-for-byte what the members compute, and its interim
// transcript hash is compared with the member's. After an external Commit
// the member side stops (deriving the init secret from an ExternalInit
// needs the HPKE exporter, which package cipher does not offer); the view
// is still followed and its GroupContext checked by the other means.
func TestPublicViewPassiveVectors(t *testing.T) {
	for _, name := range []string{"passive-client-welcome.json", "passive-client-handling-commit.json", "passive-client-random.json"} {
		var cases []passiveCase
		vectors.Load(t, name, &cases)
		tally := vectors.NewTally("publicview", name)
		var st memberStats
		private := 0
		for i := range cases {
			c := &cases[i]
			tally.Run(t, fmt.Sprintf("case%d-suite%d", i, c.CipherSuite), func(t *testing.T) {
				if reason := privateMessages(t, c); reason != "" {
					private++
					t.Skip(reason)
				}
				followPassive(t, c, &st)
			})
		}
		tally.Report(t)
		t.Logf("publicview %s: %d skipped for private commits or proposals; member side: %d of %d epochs compared with epoch_authenticator and confirmation_tag, %d external commits not re-derived",
			name, private, st.compared, st.epochs, st.external)
	}
}

// privateMessages returns a skip reason if a commit or proposal of c is a
// PrivateMessage, which a public view cannot follow.
func privateMessages(t *testing.T, c *passiveCase) string {
	for _, e := range c.Epochs {
		for _, m := range append([]vectors.Hex{e.Commit}, e.Proposals...) {
			msg, err := wire.UnmarshalMLSMessage(m)
			if err != nil {
				t.Fatalf("decoding message: %v", err)
			}
			if msg.WireFormat != wire.WireFormatPublicMessage {
				return "private commits: a PrivateMessage handshake cannot be followed by a public view"
			}
		}
	}
	return ""
}

func publicMessage(t *testing.T, b []byte) *wire.PublicMessage {
	t.Helper()
	msg, err := wire.UnmarshalMLSMessage(b)
	if err != nil {
		t.Fatalf("decoding MLSMessage: %v", err)
	}
	if msg.PublicMessage == nil {
		t.Fatalf("not a PublicMessage")
	}
	return msg.PublicMessage
}

// member is the test's member-side re-derivation of the passive client.
type member struct {
	s          *cipher.Suite
	priv       *tree.PrivateState
	secrets    *keyschedule.EpochSecrets
	interim    []byte
	resumption map[uint64][]byte
	psks       map[string][]byte
	active     bool
}

func (m *member) pskLookup(groupID []byte) framing.PSKFunc {
	return func(id *wire.PreSharedKeyID) ([]byte, error) {
		switch id.Type {
		case wire.PSKExternal:
			if p, ok := m.psks[string(id.PSKID)]; ok {
				return p, nil
			}
		case wire.PSKResumption:
			if p, ok := m.resumption[id.PSKEpoch]; ok && bytes.Equal(id.PSKGroupID, groupID) {
				return p, nil
			}
		}
		return nil, fmt.Errorf("unknown PSK")
	}
}

func followPassive(t *testing.T, c *passiveCase, st *memberStats) {
	s, err := cipher.Lookup(cipher.SuiteID(c.CipherSuite))
	if err != nil {
		t.Fatal(err)
	}
	kpMsg, err := wire.UnmarshalMLSMessage(c.KeyPackage)
	if err != nil || kpMsg.KeyPackage == nil {
		t.Fatalf("key_package: %v", err)
	}
	kp := kpMsg.KeyPackage
	kpRef, err := kp.Ref(s)
	if err != nil {
		t.Fatal(err)
	}
	welMsg, err := wire.UnmarshalMLSMessage(c.Welcome)
	if err != nil || welMsg.Welcome == nil {
		t.Fatalf("welcome: %v", err)
	}
	// Some P-521 private keys in the vectors have their leading zero
	// octet stripped; RFC 9180's SerializePrivateKey output is 66 octets.
	initPriv, encPriv := padKey(s, c.InitPriv), padKey(s, c.EncryptionPriv)
	m := &member{s: s, resumption: map[uint64][]byte{}, psks: map[string][]byte{}, active: true}
	for _, p := range c.ExternalPSKs {
		m.psks[string(p.PSKID)] = p.PSK
	}
	// The GroupInfo the server would get from the committer.
	ow, err := framing.OpenWelcome(s, welMsg.Welcome, kpRef, initPriv, m.pskLookup(nil))
	if err != nil {
		t.Fatalf("OpenWelcome: %v", err)
	}
	gi := ow.GroupInfo
	var rt wire.RatchetTree
	if c.RatchetTree != nil {
		if rt, err = wire.UnmarshalRatchetTree(c.RatchetTree); err != nil {
			t.Fatalf("ratchet_tree: %v", err)
		}
	}
	v, err := publicgroup.New(s, gi, rt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if v.Epoch() != gi.GroupContext.Epoch {
		t.Fatalf("epoch %d, GroupInfo %d", v.Epoch(), gi.GroupContext.Epoch)
	}
	if err := v.CheckGroupInfo(gi); err != nil {
		t.Fatalf("CheckGroupInfo of the joining GroupInfo: %v", err)
	}

	// Member side: join.
	if m.secrets, m.interim, err = framing.JoinEpoch(s, gi, ow.GroupSecrets.JoinerSecret, ow.PSKSecret); err != nil {
		t.Fatalf("JoinEpoch: %v", err)
	}
	if !bytes.Equal(m.secrets.EpochAuthenticator, c.InitialEpochAuthenticator) {
		t.Fatalf("initial epoch_authenticator mismatch")
	}
	if !bytes.Equal(m.interim, v.InterimTranscriptHash()) {
		t.Fatalf("interim transcript hash: view %x, member %x", v.InterimTranscriptHash(), m.interim)
	}
	m.resumption[v.Epoch()] = m.secrets.ResumptionPSK
	mt := memberTree(t, s, v)
	me, ok := mt.FindLeaf(func(_ treemath.LeafIndex, ln *wire.LeafNode) bool {
		return bytes.Equal(ln.EncryptionKey, kp.LeafNode.EncryptionKey)
	})
	if !ok {
		t.Fatalf("passive client not in the tree")
	}
	if m.priv, err = tree.NewPrivateState(s, me, encPriv); err != nil {
		t.Fatal(err)
	}
	if ps := ow.GroupSecrets.PathSecret; ps != nil {
		x := treemath.CommonAncestor(me.Node(), treemath.LeafIndex(gi.Signer).Node())
		if err := m.priv.ImportPathSecret(mt, x, ps); err != nil {
			t.Fatalf("ImportPathSecret: %v", err)
		}
	}

	for ei, e := range c.Epochs {
		epoch := v.Epoch()
		for pi, p := range e.Proposals {
			if _, err := v.HandleProposal(publicMessage(t, p)); err != nil {
				t.Fatalf("epoch %d: proposal %d: %v", epoch, pi, err)
			}
		}
		cm := publicMessage(t, e.Commit)
		pending := v.PendingProposals()
		before, err := v.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r, err := v.HandleCommit(cm)
		if err != nil {
			t.Fatalf("epoch %d (#%d): HandleCommit: %v", epoch, ei, err)
		}
		if after, _ := v.Marshal(); !bytes.Equal(before, after) {
			t.Fatalf("HandleCommit changed the view")
		}
		if r.Epoch != epoch+1 || r.GroupContext.Epoch != epoch+1 {
			t.Fatalf("result epoch %d after %d", r.Epoch, epoch)
		}
		st.epochs++
		if m.active {
			if r.External {
				m.active = false
				st.external++
			} else {
				m.follow(t, mt, v, cm, pending, r, e.EpochAuthenticator)
				st.compared++
			}
		}
		if err := r.CheckGroupInfo(gi); err == nil {
			t.Fatalf("old GroupInfo accepted for the new epoch")
		}
		if err := v.Accept(r); err != nil {
			t.Fatalf("Accept: %v", err)
		}
		if v.Epoch() != epoch+1 || len(v.PendingProposals()) != 0 {
			t.Fatalf("after Accept: epoch %d, %d pending proposals", v.Epoch(), len(v.PendingProposals()))
		}
		mt = memberTree(t, s, v)
		if h, err := mt.TreeHash(); err != nil || !bytes.Equal(h, v.TreeHash()) {
			t.Fatalf("epoch %d: tree hash of the exported tree differs from the GroupContext's", v.Epoch())
		}
		b, err := v.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		u, err := publicgroup.Unmarshal(b)
		if err != nil {
			t.Fatalf("Unmarshal: %v", err)
		}
		if b2, _ := u.Marshal(); !bytes.Equal(b, b2) {
			t.Fatalf("Marshal/Unmarshal round trip differs")
		}
	}
}

func memberTree(t *testing.T, s *cipher.Suite, v *publicgroup.View) *tree.Tree {
	t.Helper()
	rt := v.RatchetTree()
	b, err := codec.Marshal(&rt)
	if err != nil {
		t.Fatal(err)
	}
	own, err := wire.UnmarshalRatchetTree(b)
	if err != nil {
		t.Fatal(err)
	}
	mt, err := tree.FromRatchetTree(s, own)
	if err != nil {
		t.Fatal(err)
	}
	return mt
}

// follow re-derives the member's next epoch from the Commit, using the
// view's new GroupContext, and compares the results with the vector.
func (m *member) follow(t *testing.T, mt *tree.Tree, v *publicgroup.View, msg *wire.PublicMessage, pending []publicgroup.PendingProposal, r *publicgroup.CommitResult, wantAuth []byte) {
	t.Helper()
	s := m.s
	old := v.GroupContext()
	cm := msg.Content.Commit
	props := make([]commit.SourcedProposal, len(cm.Proposals))
	for i, por := range cm.Proposals {
		if por.Type == wire.ProposalOrRefProposal {
			props[i] = commit.SourcedProposal{Proposal: por.Proposal, Sender: msg.Content.Sender}
			continue
		}
		for _, p := range pending {
			if bytes.Equal(p.Ref, por.Reference) {
				props[i] = commit.SourcedProposal{Proposal: p.Proposal, Sender: p.Sender, Ref: p.Ref}
			}
		}
	}
	res, err := commit.Apply(&commit.Params{Suite: s, Tree: mt, Context: old, Committer: msg.Content.Sender, Proposals: props, HasPath: cm.Path != nil})
	if err != nil {
		t.Fatalf("member Apply: %v", err)
	}
	nt := res.Tree
	var commitSecret []byte
	if cm.Path != nil {
		mp, err := nt.MergeUpdatePath(treemath.LeafIndex(msg.Content.Sender.Index), cm.Path, &tree.Context{GroupID: old.GroupID, Extensions: res.Extensions}, res.Added)
		if err != nil {
			t.Fatalf("member MergeUpdatePath: %v", err)
		}
		prov := *r.GroupContext
		prov.ConfirmedTranscriptHash = old.ConfirmedTranscriptHash
		pb, err := codec.Marshal(&prov)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := mp.Decrypt(m.priv, pb)
		if err != nil {
			t.Fatalf("member Decrypt: %v", err)
		}
		commitSecret, m.priv = dec.CommitSecret, dec.Private
	} else {
		m.priv.Prune(nt)
	}
	if h, _ := nt.TreeHash(); !bytes.Equal(h, r.GroupContext.TreeHash) {
		t.Fatalf("member tree hash differs from the view's")
	}
	pskSecret, err := framing.PSKSecret(s, res.PSKs, m.pskLookup(old.GroupID))
	if err != nil {
		t.Fatalf("PSKs: %v", err)
	}
	gc, err := codec.Marshal(r.GroupContext)
	if err != nil {
		t.Fatal(err)
	}
	next, err := keyschedule.Derive(s, m.secrets.InitSecret, commitSecret, pskSecret, gc)
	if err != nil {
		t.Fatal(err)
	}
	if err := framing.VerifyConfirmationTag(s, next.ConfirmationKey, r.GroupContext.ConfirmedTranscriptHash, r.ConfirmationTag); err != nil {
		t.Fatalf("epoch %d: confirmation_tag does not verify over the view's confirmed transcript hash: %v", r.Epoch, err)
	}
	if !bytes.Equal(next.EpochAuthenticator, wantAuth) {
		t.Fatalf("epoch %d: epoch_authenticator differs: the view's GroupContext is not the members'", r.Epoch)
	}
	interim, err := framing.InterimTranscriptHash(s, r.GroupContext.ConfirmedTranscriptHash, r.ConfirmationTag)
	if err != nil || !bytes.Equal(interim, r.InterimTranscriptHash) {
		t.Fatalf("interim transcript hash differs")
	}
	m.secrets = next
	m.resumption[r.Epoch] = next.ResumptionPSK
}

// padKey left-pads a P-521 HPKE private key to 66 octets.
func padKey(s *cipher.Suite, k []byte) []byte {
	if s.ID() == cipher.P521_AES256GCM_SHA512_P521 && len(k) < 66 {
		return append(make([]byte, 66-len(k)), k...)
	}
	return k
}
