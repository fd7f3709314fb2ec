package mls_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/openmimi/mimi/mls"
	"github.com/openmimi/mimi/mls/appsync"
	"github.com/openmimi/mimi/mls/cipher"
	"github.com/openmimi/mimi/mls/treemath"
	"github.com/openmimi/mimi/mls/wire"
)

// Environment variables of the randomized interaction test.
const (
	// EnvInteractionSeed fixes the seed (decimal); by default it is
	// derived from the clock and logged.
	EnvInteractionSeed = "MLS_INTERACTION_SEED"
	// EnvInteractionLong, when non-empty, runs the long version: more
	// steps, up to 50 members, every cipher suite (use -timeout 60m).
	EnvInteractionLong = "MLS_INTERACTION_LONG"
)

// sim is a set of clients in one process sharing a group, driven by a
// seeded random schedule. After every step every member must agree on the
// epoch and epoch authenticator, and every message must decrypt.
type sim struct {
	t       *testing.T
	rng     *rand.Rand
	suite   cipher.SuiteID
	max     int
	clients map[int]*client // live members by client id
	nextID  int
	step    int
	stats   map[string]int
}

type client struct {
	id     int
	signer mls.Signer
	g      *mls.Group
}

// TestInteraction runs the randomized interaction test: 3 to 50 members
// adding, removing, updating, committing with and without paths, joining
// by Welcome (tree in the Welcome or out of band) and by external commit
// (and resync), proposing by reference (including SelfRemove, AppSync,
// PSKs and GroupContextExtensions), sending application messages delivered
// out of order, and persisting/restoring state.
func TestInteraction(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(EnvInteractionSeed); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s: %v", EnvInteractionSeed, err)
		}
	}
	t.Logf("seed %d (set %s=%d to reproduce)", seed, EnvInteractionSeed, seed)
	suites := []cipher.SuiteID{cipher.X25519_AES128GCM_SHA256_Ed25519}
	steps, max := 60, 12
	long := os.Getenv(EnvInteractionLong) != ""
	if long {
		// Run with -timeout 60m: the NIST and 448 suites are slow.
		suites = []cipher.SuiteID{1, 2, 3, 4, 5, 6, 7}
		max = 50
	}
	for i, suite := range suites {
		if long {
			steps = 600
			if suite != 1 && suite != 3 {
				steps = 150
			}
		}
		t.Run(fmt.Sprintf("suite%d", suite), func(t *testing.T) {
			s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, uint64(i))), suite: suite, max: max,
				clients: map[int]*client{}, stats: map[string]int{}}
			s.run(steps)
			t.Logf("stats: %v", s.stats)
		})
	}
}

func (s *sim) newClient() *client {
	c := &client{id: s.nextID, signer: newSigner(s.t, s.suite, fmt.Sprintf("client-%d", s.nextID))}
	s.nextID++
	return c
}

var psk = map[string][]byte{"shared psk": []byte("the shared external psk secret")}

func (s *sim) config() mls.Config {
	return mls.Config{ExternalPSK: mls.StaticPSKs(psk), PastEpochs: 3}
}

func (s *sim) run(steps int) {
	t := s.t
	creator := s.newClient()
	g, err := mls.CreateGroup(s.suite, []byte("interaction group"), creator.signer, &mls.CreateOptions{Config: s.config()})
	if err != nil {
		t.Fatal(err)
	}
	creator.g = g
	s.clients[creator.id] = creator
	s.addMembers(2, true)
	for s.step = 0; s.step < steps; s.step++ {
		n := len(s.clients)
		r := s.rng.IntN(100)
		switch {
		case n < 3 || (r < 18 && n < s.max):
			s.addMembers(1+s.rng.IntN(3), s.rng.IntN(2) == 0)
		case r < 28 && n > 3:
			s.removeMembers()
		case r < 36:
			s.updateByReference()
		case r < 44:
			s.emptyCommit()
		case r < 52 && n < s.max:
			s.externalJoin()
		case r < 56 && n > 3:
			s.resync()
		case r < 62 && n > 3:
			s.selfRemove()
		case r < 68:
			s.mixedByReference()
		case r < 72:
			s.appSync()
		case r < 76:
			s.persist()
		default:
			s.application()
		}
		s.check()
	}
}

// pick returns a random live client, optionally not one of except.
func (s *sim) pick(except ...int) *client {
	var ids []int
outer:
	for id := range s.clients {
		for _, e := range except {
			if id == e {
				continue outer
			}
		}
		ids = append(ids, id)
	}
	// Map iteration order is random: sort for reproducibility.
	sortInts(ids)
	return s.clients[ids[s.rng.IntN(len(ids))]]
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// ids returns the live client ids in order.
func (s *sim) ids() []int {
	var ids []int
	for id := range s.clients {
		ids = append(ids, id)
	}
	sortInts(ids)
	return ids
}

// broadcast delivers msg (proposal or commit) to every member but from,
// in client order.
func (s *sim) broadcast(from int, msg *wire.MLSMessage) {
	s.t.Helper()
	for _, id := range s.ids() {
		if id == from {
			continue
		}
		c := s.clients[id]
		res, err := c.g.Process(roundTrip(s.t, msg))
		if err != nil {
			s.t.Fatalf("step %d: client %d processing message from %d: %v", s.step, id, from, err)
		}
		if res.Commit != nil && res.Commit.SelfRemoved {
			delete(s.clients, id)
			s.stats["removed"]++
		}
	}
}

// commitAndMerge has c commit, delivers, and merges; returns the commit.
func (s *sim) commitAndMerge(c *client, opts *mls.CommitOptions) *mls.PendingCommit {
	s.t.Helper()
	pc, err := c.g.Commit(opts)
	if err != nil {
		s.t.Fatalf("step %d: client %d commit: %v", s.step, c.id, err)
	}
	s.broadcast(c.id, pc.Message)
	if err := pc.Merge(); err != nil {
		s.t.Fatalf("step %d: merge: %v", s.step, err)
	}
	if opts != nil && opts.NoPath {
		s.stats["commit-nopath"]++
	} else {
		s.stats["commit-path"]++
	}
	return pc
}

func (s *sim) addMembers(k int, treeInWelcome bool) {
	committer := s.pick()
	var props []*wire.Proposal
	var joiners []*client
	var kps []*mls.KeyPackageBundle
	for i := 0; i < k; i++ {
		c := s.newClient()
		kp := newKP(s.t, s.suite, c.signer)
		joiners = append(joiners, c)
		kps = append(kps, kp)
		props = append(props, &wire.Proposal{Type: wire.ProposalAdd, Body: &wire.Add{KeyPackage: *kp.KeyPackage}})
	}
	opts := &mls.CommitOptions{Proposals: props, NoPath: s.rng.IntN(2) == 0, WelcomeRatchetTree: treeInWelcome}
	if s.rng.IntN(3) == 0 {
		// Add with a PSK too.
		id, err := mls.NewExternalPSKID(s.suite, []byte("shared psk"))
		if err != nil {
			s.t.Fatal(err)
		}
		opts.Proposals = append(opts.Proposals, &wire.Proposal{Type: wire.ProposalPreSharedKey, Body: &wire.PreSharedKey{PSK: id}})
		s.stats["psk"]++
	}
	pc := s.commitAndMerge(committer, opts)
	var rt wire.RatchetTree
	if !treeInWelcome {
		rt = committer.g.RatchetTree()
	}
	for i, c := range joiners {
		g, err := mls.JoinFromWelcome(roundTrip(s.t, pc.Welcome), kps[i], &mls.JoinOptions{RatchetTree: rt, Config: s.config()})
		if err != nil {
			s.t.Fatalf("step %d: client %d join: %v", s.step, c.id, err)
		}
		c.g = g
		s.clients[c.id] = c
		s.stats["welcome"]++
	}
}

func (s *sim) removeMembers() {
	committer := s.pick()
	k := 1 + s.rng.IntN(min(3, len(s.clients)-3))
	var props []*wire.Proposal
	seen := map[int]bool{}
	for len(props) < k {
		v := s.pick(committer.id)
		if seen[v.id] {
			continue
		}
		seen[v.id] = true
		props = append(props, &wire.Proposal{Type: wire.ProposalRemove, Body: &wire.Remove{Removed: uint32(v.g.LeafIndex())}})
	}
	s.commitAndMerge(committer, &mls.CommitOptions{Proposals: props})
}

func (s *sim) updateByReference() {
	u := s.pick()
	sp, err := u.g.ProposeUpdate(nil, nil)
	if err != nil {
		s.t.Fatalf("step %d: propose update: %v", s.step, err)
	}
	s.broadcast(u.id, sp.Message)
	committer := s.pick(u.id)
	s.commitAndMerge(committer, nil)
	s.stats["update"]++
}

func (s *sim) emptyCommit() {
	s.commitAndMerge(s.pick(), &mls.CommitOptions{Send: mls.SendOptions{Private: s.rng.IntN(2) == 0}})
}

func (s *sim) externalJoin() {
	member := s.pick()
	withTree := s.rng.IntN(2) == 0
	gi, err := member.g.GroupInfo(withTree)
	if err != nil {
		s.t.Fatal(err)
	}
	c := s.newClient()
	opts := &mls.ExternalJoinOptions{Config: s.config()}
	if !withTree {
		opts.RatchetTree = member.g.RatchetTree()
	}
	pc, err := mls.JoinExternal(roundTrip(s.t, gi), c.signer, opts)
	if err != nil {
		s.t.Fatalf("step %d: external join: %v", s.step, err)
	}
	s.broadcast(-1, pc.Message)
	if err := pc.Merge(); err != nil {
		s.t.Fatal(err)
	}
	c.g = pc.Group()
	s.clients[c.id] = c
	s.stats["external"]++
}

func (s *sim) resync() {
	c := s.pick()
	other := s.pick(c.id)
	gi, err := other.g.GroupInfo(true)
	if err != nil {
		s.t.Fatal(err)
	}
	old := c.g.LeafIndex()
	pc, err := mls.JoinExternal(roundTrip(s.t, gi), c.signer, &mls.ExternalJoinOptions{RemoveLeaf: &old, Config: s.config()})
	if err != nil {
		s.t.Fatalf("step %d: resync: %v", s.step, err)
	}
	s.broadcast(c.id, pc.Message)
	if err := pc.Merge(); err != nil {
		s.t.Fatal(err)
	}
	c.g = pc.Group()
	s.stats["resync"]++
}

func (s *sim) selfRemove() {
	leaver := s.pick()
	sp, err := leaver.g.ProposeSelfRemove(nil)
	if err != nil {
		s.t.Fatalf("step %d: self remove: %v", s.step, err)
	}
	s.broadcast(leaver.id, sp.Message)
	committer := s.pick(leaver.id)
	pc, err := committer.g.Commit(nil)
	if err != nil {
		s.t.Fatalf("step %d: commit self remove: %v", s.step, err)
	}
	s.broadcast(committer.id, pc.Message)
	if err := pc.Merge(); err != nil {
		s.t.Fatal(err)
	}
	if _, ok := s.clients[leaver.id]; ok {
		s.t.Fatalf("step %d: leaver %d still in the group", s.step, leaver.id)
	}
	if leaver.g.Active() {
		s.t.Fatalf("step %d: leaver still active", s.step)
	}
	s.stats["selfremove"]++
}

// mixedByReference: several members propose (Remove, Add, PSK, GCE),
// another commits them all by reference.
func (s *sim) mixedByReference() {
	committer := s.pick()
	var joiners []*client
	var kps []*mls.KeyPackageBundle
	removed := map[int]bool{}
	resumption := false // joiners cannot know past resumption PSKs
	for i := 0; i < 1+s.rng.IntN(3); i++ {
		p := s.pick()
		if removed[p.id] {
			continue
		}
		var sp *mls.SentProposal
		var err error
		switch k := s.rng.IntN(4); {
		case k == 0 && len(s.clients)-len(removed) > 3:
			v := s.pick(committer.id, p.id)
			if removed[v.id] {
				continue
			}
			removed[v.id] = true
			sp, err = p.g.ProposeRemove(v.g.LeafIndex(), nil)
		case k == 1 && len(s.clients)+len(joiners) < s.max && !resumption:
			c := s.newClient()
			kp := newKP(s.t, s.suite, c.signer)
			joiners, kps = append(joiners, c), append(kps, kp)
			sp, err = p.g.ProposeAdd(kp.KeyPackage, &mls.SendOptions{Private: s.rng.IntN(2) == 0})
		case k == 2:
			sp, err = p.g.ProposeExternalPSK([]byte("shared psk"), nil)
		case len(joiners) == 0:
			resumption = true
			sp, err = p.g.ProposeResumptionPSK(p.g.Epoch(), nil)
		default:
			continue
		}
		if err != nil {
			s.t.Fatalf("step %d: propose: %v", s.step, err)
		}
		s.broadcast(p.id, sp.Message)
	}
	pc := s.commitAndMerge(committer, &mls.CommitOptions{NoPath: s.rng.IntN(2) == 0, WelcomeRatchetTree: true})
	if len(pc.Added) != len(joiners) {
		s.t.Fatalf("step %d: %d of %d Adds committed", s.step, len(pc.Added), len(joiners))
	}
	for i, c := range joiners {
		g, err := mls.JoinFromWelcome(roundTrip(s.t, pc.Welcome), kps[i], &mls.JoinOptions{Config: s.config()})
		if err != nil {
			s.t.Fatalf("step %d: join: %v", s.step, err)
		}
		c.g = g
		s.clients[c.id] = c
	}
	s.stats["by-reference"]++
}

func (s *sim) appSync() {
	p := s.pick()
	a := &appsync.AppSync{ApplicationID: 7, Type: appsync.UnorderedList, AddedEntries: [][]byte{[]byte(fmt.Sprintf("entry %d", s.step))}}
	if s.rng.IntN(2) == 0 {
		sp, err := p.g.ProposeAppSync(a, nil)
		if err != nil {
			s.t.Fatalf("step %d: AppSync: %v", s.step, err)
		}
		s.broadcast(p.id, sp.Message)
		s.commitAndMerge(s.pick(), nil)
	} else {
		s.commitAndMerge(p, &mls.CommitOptions{Proposals: []*wire.Proposal{{Type: wire.ProposalAppSync, Body: &wire.AppSync{AppSync: *a}}}})
	}
	st, err := p.g.ApplicationStates()
	if err != nil || st.Get(7) == nil {
		s.t.Fatalf("step %d: application state missing: %v", s.step, err)
	}
	s.stats["appsync"]++
}

// persist round-trips a random member's state through MarshalState.
func (s *sim) persist() {
	c := s.pick()
	b := state(s.t, c.g)
	g, err := mls.UnmarshalState(b, s.config())
	if err != nil {
		s.t.Fatalf("step %d: UnmarshalState: %v", s.step, err)
	}
	if b2 := state(s.t, g); !bytes.Equal(b, b2) {
		s.t.Fatalf("step %d: state changed by a round trip", s.step)
	}
	c.g = g
	s.stats["persist"]++
}

// application: a few senders send messages, delivered to everyone in a
// shuffled order; some are held back and delivered after a later commit
// (late messages of a past epoch).
func (s *sim) application() {
	type sent struct {
		from int
		msg  *wire.MLSMessage
		text string
	}
	var msgs []sent
	for i := 0; i < 1+s.rng.IntN(6); i++ {
		c := s.pick()
		text := fmt.Sprintf("step %d message %d from %d", s.step, i, c.id)
		m, err := c.g.ProtectApplication([]byte(text), &mls.SendOptions{AuthenticatedData: []byte("ad")})
		if err != nil {
			s.t.Fatalf("step %d: protect: %v", s.step, err)
		}
		msgs = append(msgs, sent{c.id, m, text})
	}
	s.rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	late := s.rng.IntN(3) == 0
	var held []sent
	if late {
		held, msgs = msgs[:len(msgs)/2], msgs[len(msgs)/2:]
	}
	deliver := func(ms []sent, epochOK func(uint64) bool) {
		for _, m := range ms {
			for _, id := range s.ids() {
				if id == m.from {
					continue
				}
				c := s.clients[id]
				res, err := c.g.Process(roundTrip(s.t, m.msg))
				if err != nil {
					if !epochOK(c.g.Epoch()) {
						continue // joined after the message was sent
					}
					s.t.Fatalf("step %d: client %d decrypting message from %d: %v", s.step, id, m.from, err)
				}
				if string(res.ApplicationData) != m.text || string(res.AuthenticatedData) != "ad" {
					s.t.Fatalf("step %d: client %d got %q", s.step, id, res.ApplicationData)
				}
				s.stats["app-delivered"]++
			}
		}
	}
	epoch := s.pick().g.Epoch()
	present := map[int]bool{}
	for _, id := range s.ids() {
		present[id] = true
	}
	deliver(msgs, func(uint64) bool { return true })
	if late {
		s.emptyCommit()
		s.check()
		// Members who joined by external commit or Welcome after the
		// messages were sent cannot decrypt them; everyone present can.
		for _, m := range held {
			for _, id := range s.ids() {
				if id == m.from || !present[id] {
					continue
				}
				res, err := s.clients[id].g.Process(roundTrip(s.t, m.msg))
				if err != nil {
					s.t.Fatalf("step %d: client %d late message of epoch %d: %v", s.step, id, epoch, err)
				}
				if string(res.ApplicationData) != m.text || res.Epoch != epoch {
					s.t.Fatalf("step %d: late message mismatch", s.step)
				}
				s.stats["app-late"]++
			}
		}
	}
}

// check verifies that every member agrees on epoch and authenticator and
// that the roster matches the clients.
func (s *sim) check() {
	s.t.Helper()
	var want []byte
	var epoch uint64
	for _, id := range s.ids() {
		g := s.clients[id].g
		if !g.Active() {
			s.t.Fatalf("step %d: client %d inactive", s.step, id)
		}
		if want == nil {
			want, epoch = g.EpochAuthenticator(), g.Epoch()
			if n := g.MemberCount(); n != len(s.clients) {
				s.t.Fatalf("step %d: %d members in the tree, %d clients", s.step, n, len(s.clients))
			}
			continue
		}
		if got := g.EpochAuthenticator(); !bytes.Equal(got, want) || g.Epoch() != epoch {
			s.t.Fatalf("step %d: client %d at epoch %d (%x), others at %d (%x)", s.step, id, g.Epoch(), got, epoch, want)
		}
	}
	// Exporters agree too.
	var exp []byte
	for _, id := range s.ids() {
		e, err := s.clients[id].g.Export("test", []byte("ctx"), 32)
		if err != nil {
			s.t.Fatal(err)
		}
		if exp != nil && !bytes.Equal(e, exp) {
			s.t.Fatalf("step %d: exporter mismatch", s.step)
		}
		exp = e
	}
	_ = treemath.LeafIndex(0)
}
