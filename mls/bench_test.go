package mls

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/framing"
	"github.com/openmimi/mimi/mls/keyschedule"
	"github.com/openmimi/mimi/mls/tree"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// Large groups for benchmarks are built directly rather than by n
// sequential commits:
//
//   - member i gets deterministic keys (Ed25519 seed and HPKE key derived
//     from SHA-256 of i) and a signed key_package leaf, added with
//     tree.AddLeaf;
//   - every even leaf then runs tree.GenerateUpdatePath (unencrypted, with
//     a deterministic leaf secret), as a commit would: this fills every
//     parent with a real key and a valid parent hash, so the tree passes
//     the joiner's full validation and each copath resolution holds one
//     node, as in a group in steady state;
//   - the private TreeKEM state of the two tracked members (the committer
//     at leaf 0 and a receiver at the far end) follows the path secrets;
//   - both members get the same GroupContext (epoch 1, the tree's hash, a
//     random transcript) and epoch secrets derived from one random joiner
//     secret, exactly as if they had processed the same commit.
type bigGroup struct {
	n         int
	committer *groupState
	receiver  *groupState
	suite     *cipher.Suite
}

var (
	bigMu     sync.Mutex
	bigGroups = map[int]*bigGroup{}
)

func benchSeed(label string, i int) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	h := sha256.Sum256(append([]byte(label), b[:]...))
	return h[:]
}

func getBigGroup(tb testing.TB, n int) *bigGroup {
	tb.Helper()
	bigMu.Lock()
	defer bigMu.Unlock()
	if bg := bigGroups[n]; bg != nil {
		return bg
	}
	start := time.Now()
	s, _ := cipher.Lookup(testSuite)
	gid := []byte("benchmark group")
	now := time.Now()
	lt := &wire.Lifetime{NotBefore: uint64(now.Add(-time.Hour).Unix()), NotAfter: uint64(now.Add(24 * time.Hour).Unix())}
	t := tree.New(s)
	sigPrivs := make([][]byte, n)
	encPrivs := make([][]byte, n)
	for i := 0; i < n; i++ {
		sigPrivs[i] = benchSeed("sig", i)
		sigPub, err := s.SignaturePublicKey(sigPrivs[i])
		if err != nil {
			tb.Fatal(err)
		}
		encPriv, encPub, err := s.DeriveHPKEKey(benchSeed("enc", i))
		if err != nil {
			tb.Fatal(err)
		}
		encPrivs[i] = encPriv
		ln := &wire.LeafNode{
			EncryptionKey: encPub,
			SignatureKey:  sigPub,
			Credential:    wire.Credential{Type: wire.CredentialBasic, Identity: fmt.Appendf(nil, "member-%d", i)},
			Capabilities:  DefaultCapabilities(testSuite, wire.CredentialBasic),
			Source:        wire.LeafNodeSourceKeyPackage,
			Lifetime:      lt,
		}
		if err := ln.Sign(s, sigPrivs[i], nil, 0); err != nil {
			tb.Fatal(err)
		}
		if _, err := t.AddLeaf(ln); err != nil {
			tb.Fatal(err)
		}
	}
	type tracked struct {
		leaf     treemath.LeafIndex
		leafPriv []byte
		priv     *tree.PrivateState
		secrets  map[treemath.NodeIndex][]byte
	}
	var tr []*tracked
	for _, l := range []treemath.LeafIndex{0, treemath.LeafIndex(n - 1)} {
		p, err := tree.NewPrivateState(s, l, encPrivs[l])
		if err != nil {
			tb.Fatal(err)
		}
		tr = append(tr, &tracked{leaf: l, leafPriv: encPrivs[l], priv: p, secrets: map[treemath.NodeIndex][]byte{}})
	}
	for c := 0; c < n; c += 2 {
		from := treemath.LeafIndex(c)
		pp, err := t.GenerateUpdatePath(&tree.PathParams{Leaf: from, SignaturePriv: sigPrivs[c], GroupID: gid, LeafSecret: benchSeed("leaf secret", c)})
		if err != nil {
			tb.Fatal(err)
		}
		for _, m := range tr {
			if m.leaf == from {
				m.priv = pp.PrivateState()
				m.leafPriv = m.priv.PrivateKey(from.Node())
				m.secrets = map[treemath.NodeIndex][]byte{}
				for _, x := range pp.FilteredDirectPath() {
					m.secrets[x] = pp.PathSecret(x)
				}
				continue
			}
			m.priv.Prune(t)
			for _, x := range pp.FilteredDirectPath() {
				if treemath.IsAncestor(x, m.leaf.Node()) {
					if err := m.priv.SetPathSecret(x, pp.PathSecret(x)); err != nil {
						tb.Fatal(err)
					}
					m.secrets[x] = pp.PathSecret(x)
				}
			}
			m.secrets = keptPathSecrets(m.secrets, m.priv)
		}
	}
	th, err := t.TreeHash()
	if err != nil {
		tb.Fatal(err)
	}
	ctx := &wire.GroupContext{Version: wire.MLS10, CipherSuite: testSuite, GroupID: gid, Epoch: 1, TreeHash: th,
		ConfirmedTranscriptHash: benchSeed("transcript", 0)}
	gc, _ := encodedContext(ctx)
	es, err := keyschedule.FromJoiner(s, benchSeed("joiner", 0), nil, gc)
	if err != nil {
		tb.Fatal(err)
	}
	tag := framing.ConfirmationTag(s, es.ConfirmationKey, ctx.ConfirmedTranscriptHash)
	interim, _ := framing.InterimTranscriptHash(s, ctx.ConfirmedTranscriptHash, tag)
	bg := &bigGroup{n: n, suite: s}
	for i, m := range tr {
		if err := m.priv.Check(t); err != nil {
			tb.Fatalf("tracked member %d: %v", m.leaf, err)
		}
		st := &groupState{
			ctx: ctx, tree: t, me: m.leaf, sigPriv: sigPrivs[m.leaf], leafPriv: m.leafPriv,
			pathSecrets: m.secrets, priv: m.priv, secrets: keepSecrets(es), interim: interim, confTag: tag,
			keys:       newEpochKeys(s, es.EncryptionSecret, t.LeafCount(), &Config{}),
			resumption: []resumptionEntry{{epoch: 1, psk: es.ResumptionPSK}},
		}
		if i == 0 {
			bg.committer = st
		} else {
			bg.receiver = st
		}
	}
	bigGroups[n] = bg
	tb.Logf("built a %d-member group in %v", n, time.Since(start))
	return bg
}

// group returns a Group over state st (shared, never modified by commits:
// processing builds new states).
func (bg *bigGroup) group(st *groupState) *Group {
	return &Group{suite: bg.suite, s: st}
}

func benchKP(b *testing.B) *KeyPackageBundle {
	s := iSigner(b, testSuite, "new member")
	kp, err := NewKeyPackage(testSuite, s.Credential, s.SignaturePriv, nil)
	if err != nil {
		b.Fatal(err)
	}
	return kp
}

// BenchmarkAddMember measures adding one member to groups of 10 to
// 10,000 members (suite 1): "create" is Commit (proposal-list validation,
// UpdatePath generation and encryption, key schedule, signed GroupInfo with
// external_pub, Welcome without the tree); "process" is Process of that
// commit at another member (signature and membership tag, validation, path
// merge and decryption, key schedule, confirmation tag).
func BenchmarkAddMember(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		var kp *KeyPackageBundle
		opts := func() *CommitOptions {
			if kp == nil {
				kp = benchKP(b)
			}
			return &CommitOptions{Proposals: []*wire.Proposal{addProposal(kp.KeyPackage)}}
		}
		b.Run(fmt.Sprintf("create/members=%d", n), func(b *testing.B) {
			bg := getBigGroup(b, n)
			g := bg.group(bg.committer)
			o := opts()
			for b.Loop() {
				pc, err := g.Commit(o)
				if err != nil {
					b.Fatal(err)
				}
				pc.Discard()
			}
		})
		b.Run(fmt.Sprintf("process/members=%d", n), func(b *testing.B) {
			bg := getBigGroup(b, n)
			pc, err := bg.group(bg.committer).Commit(opts())
			if err != nil {
				b.Fatal(err)
			}
			msg, err := wire.UnmarshalMLSMessage(mustMarshal(b, pc.Message))
			if err != nil {
				b.Fatal(err)
			}
			g := bg.group(bg.receiver)
			for b.Loop() {
				if _, err := g.Process(msg); err != nil {
					b.Fatal(err)
				}
				g.s = bg.receiver // back to the old epoch for the next round
			}
		})
	}
}

// BenchmarkJoinWelcome measures JoinFromWelcome into groups of 1,000 and
// 10,000 members, with the tree out of band (as MIMI hands it out) and in
// the Welcome's ratchet_tree extension: decryption, full tree validation
// (every leaf signature, parent hashes, tree hash), GroupInfo signature,
// path secret and key schedule.
func BenchmarkJoinWelcome(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, inline := range []bool{false, true} {
			name := "tree-in-welcome"
			if !inline {
				name = "tree-out-of-band"
			}
			b.Run(fmt.Sprintf("%s/members=%d", name, n), func(b *testing.B) {
				bg := getBigGroup(b, n)
				kp := benchKP(b)
				pc, err := bg.group(bg.committer).Commit(&CommitOptions{Proposals: []*wire.Proposal{addProposal(kp.KeyPackage)}, WelcomeRatchetTree: inline})
				if err != nil {
					b.Fatal(err)
				}
				wb := mustMarshal(b, pc.Welcome)
				var rt wire.RatchetTree
				if !inline {
					rtb, err := pc.next.tree.RatchetTree().MarshalBinary()
					if err != nil {
						b.Fatal(err)
					}
					if rt, err = wire.UnmarshalRatchetTree(rtb); err != nil {
						b.Fatal(err)
					}
				}
				for b.Loop() {
					w, err := wire.UnmarshalMLSMessage(wb)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := JoinFromWelcome(w, kp, &JoinOptions{RatchetTree: rt}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func mustMarshal(tb testing.TB, m *wire.MLSMessage) []byte {
	tb.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestBigGroupSanity checks the benchmark construction on a small group:
// an Add by the committer is processed by the receiver, and the Welcome
// joins, all agreeing on the epoch authenticator.
func TestBigGroupSanity(t *testing.T) {
	bg := getBigGroup(t, 37)
	kp := func() *KeyPackageBundle {
		s := iSigner(t, testSuite, "new member")
		kp, err := NewKeyPackage(testSuite, s.Credential, s.SignaturePriv, nil)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}()
	c, r := bg.group(bg.committer), bg.group(bg.receiver)
	pc, err := c.Commit(&CommitOptions{Proposals: []*wire.Proposal{addProposal(kp.KeyPackage)}, WelcomeRatchetTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Process(pc.Message); err != nil {
		t.Fatal(err)
	}
	if err := pc.Merge(); err != nil {
		t.Fatal(err)
	}
	j, err := JoinFromWelcome(pc.Welcome, kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameEpoch(t, []*Group{c, r, j})
	if j.MemberCount() != 38 {
		t.Fatalf("%d members", j.MemberCount())
	}
}
