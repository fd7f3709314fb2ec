package projections_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

// gen produces random, mostly valid commands, using the Machine's read APIs
// as the oracle for what is currently valid, and deliberately invalid ones
// (wrong epochs, double claims, duplicate notifies, stale acks, ...).
type gen struct {
	rnd     *rand.Rand
	h       *harness
	now     uint64 // ms
	kpN     int
	roomN   int
	cmds    [][]byte
	stats   struct{ ok, rejected, events int }
	reasons map[string]int
}

func firstLine(err error) string {
	s := err.Error()
	for _, sentinel := range []error{projections.ErrMalformedCommand, projections.ErrInvalidEvent, projections.ErrNoSuchRoom,
		projections.ErrRoomExists, projections.ErrRoomClosed, projections.ErrWrongEpoch, projections.ErrRoomSeqMismatch,
		projections.ErrUnknownClient, projections.ErrClientExists, projections.ErrKeyPackageUnknown, projections.ErrKeyPackageExists,
		projections.ErrKeyPackageClaimed, projections.ErrKeyPackageExpired, projections.ErrNoKeyPackage, projections.ErrDuplicateNotify,
		projections.ErrStaleAck, projections.ErrAckBeyondQueue} {
		if errors.Is(err, sentinel) {
			return sentinel.Error()
		}
	}
	return s
}

var (
	genRooms   = []string{"r0", "r1", "r2", "r3", "r\x00odd", "long-" + string(bytes.Repeat([]byte("x"), 200))}
	genClients = []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"}
	genUsers   = []string{"u0", "u1", "u2", "u3"}
	genDests   = []string{"b.example", "c.example", "d.example"}
	genHubs    = []string{"hub1", "hub2"}
)

func (g *gen) pick(xs []string) string { return xs[g.rnd.IntN(len(xs))] }

func (g *gen) epoch(room string) uint64 {
	r, err := g.h.m.Room(room)
	if err != nil {
		return 0
	}
	return r.Epoch
}

// jitter returns v, occasionally off by one.
func (g *gen) jitter(v uint64) uint64 {
	switch g.rnd.IntN(10) {
	case 0:
		return v + 1
	case 1:
		if v > 0 {
			return v - 1
		}
	}
	return v
}

func (g *gen) subset(xs []string) []string {
	var out []string
	for _, x := range xs {
		if g.rnd.IntN(2) == 0 {
			out = append(out, x)
		}
	}
	return out
}

// room picks an existing room most of the time.
func (g *gen) room() string {
	if g.rnd.IntN(10) > 0 {
		if rooms, _ := g.h.m.Rooms(); len(rooms) > 0 {
			return g.pick(rooms)
		}
	}
	return g.pick(genRooms)
}

func (g *gen) op() (projections.Op, int) {
	g.now += uint64(g.rnd.IntN(20_000))
	room := g.room()
	switch g.rnd.IntN(16) {
	case 0:
		c := g.pick(genClients)
		user := genUsers[len(c)%len(genUsers)]
		if g.rnd.IntN(8) == 0 {
			user = g.pick(genUsers)
		}
		return ev("", g.now, &eventlog.ClientRegistered{User: user, Client: c, SignatureKey: []byte{byte(g.rnd.IntN(256))}}), 1
	case 1:
		var list []eventlog.KeyPackage
		for i := 0; i < 1+g.rnd.IntN(4); i++ {
			g.kpN++
			n := g.kpN
			if g.rnd.IntN(10) == 0 && n > 1 {
				n = 1 + g.rnd.IntN(n-1) // duplicate ref
			}
			list = append(list, eventlog.KeyPackage{Ref: []byte(fmt.Sprint("kp", n)), CipherSuite: uint16(1 + g.rnd.IntN(3)),
				NotAfter: g.now/1000 + uint64(g.rnd.IntN(600)) - 60, Data: []byte(fmt.Sprint("data", n))})
		}
		return ev("", g.now, &eventlog.KeyPackagesUploaded{Client: g.pick(genClients), KeyPackages: list}), 1
	case 2, 3:
		var suites []uint16
		for i := 0; i < g.rnd.IntN(3); i++ {
			suites = append(suites, uint16(1+g.rnd.IntN(3)))
		}
		return projections.ClaimOp(projections.ClaimRequest{Client: g.pick(genClients), Suites: suites, Claimer: g.pick(genUsers),
			Room: room, Timestamp: g.now, Required: g.rnd.IntN(2) == 0}), -1
	case 4:
		if g.rnd.IntN(8) == 0 {
			return ev("", g.now, &eventlog.KeyPackagesExpired{Now: g.now, Limit: uint32(1 + g.rnd.IntN(4))}), 1
		}
		c := g.pick(genClients)
		if g.kpN == 0 {
			return ev("", g.now, &eventlog.ClientRemoved{Client: c}), 1
		}
		return ev(room, g.now, &eventlog.KeyPackageClaimed{Ref: []byte(fmt.Sprint("kp", 1+g.rnd.IntN(g.kpN))), Client: c, Claimer: "x"}), 1
	case 5:
		if g.rnd.IntN(4) > 0 {
			g.roomN++
			room = fmt.Sprint("room-", g.roomN)
		}
		return ev(room, g.now, &eventlog.RoomCreated{Hub: g.pick(genHubs), Creator: g.pick(genUsers), Epoch: uint64(g.rnd.IntN(3)),
			Policy: []byte("policy"), Participants: []byte(g.pick(genUsers)), GroupInfo: []byte{1}, RatchetTree: []byte{2},
			Members: g.subset(genClients)}), 1
	case 6, 7:
		return ev(room, g.now, &eventlog.ProposalAccepted{Epoch: g.jitter(g.epoch(room)), Message: []byte(fmt.Sprint("prop", g.now)),
			ProposalRef: []byte(fmt.Sprint("pref", g.now)), Sender: g.pick(genClients)}), 1
	case 8:
		var welcome []byte
		var routes []eventlog.WelcomeRoute
		if g.rnd.IntN(2) == 0 {
			welcome = []byte(fmt.Sprint("welcome", g.now))
			routes = append(routes, eventlog.WelcomeRoute{Ref: []byte(fmt.Sprint("kp", g.rnd.IntN(g.kpN+1))), Provider: g.pick(genDests)})
		}
		var participants []byte
		if g.rnd.IntN(2) == 0 {
			participants = []byte(fmt.Sprint("participants", g.now))
		}
		return ev(room, g.now, &eventlog.CommitAccepted{Epoch: g.jitter(g.epoch(room) + 1), Commit: []byte(fmt.Sprint("commit", g.now)),
			Welcome: welcome, WelcomeRoutes: routes, GroupInfo: []byte(fmt.Sprint("gi", g.now)), RatchetTree: []byte(fmt.Sprint("tree", g.now)),
			Participants: participants, Members: g.subset(genClients), Sender: g.pick(genClients)}), 1
	case 9, 10:
		return ev(room, g.now, &eventlog.ApplicationMessageAccepted{Epoch: g.jitter(g.epoch(room)), Message: []byte(fmt.Sprint("msg", g.now)), Sender: g.pick(genClients)}), 1
	case 11:
		d := g.pick(genDests)
		c, _ := g.h.m.FanoutCursor(d)
		return ev("", g.now, &eventlog.FanoutDelivered{Destination: d, UpTo: g.jitter(c.Acked + uint64(g.rnd.IntN(int(c.Pending())+1)))}), 1
	case 12:
		if g.rnd.IntN(6) == 0 {
			return ev("", g.now, &eventlog.NotifyDedupPruned{OlderThan: g.now - uint64(g.rnd.IntN(200_000)), Limit: uint32(1 + g.rnd.IntN(5))}), 1
		}
		c := g.pick(genClients)
		cur, _ := g.h.m.InboxCursor(c)
		return ev("", g.now, &eventlog.ClientDelivered{Client: c, UpTo: g.jitter(cur.Acked + uint64(g.rnd.IntN(int(cur.Pending())+1)))}), 1
	case 13:
		if g.rnd.IntN(4) == 0 {
			return ev(room, g.now, &eventlog.GroupBound{Hub: g.pick(genHubs), GroupID: []byte(fmt.Sprint("group", g.rnd.IntN(6)))}), 1
		}
		body := []byte(fmt.Sprint("notify", g.rnd.IntN(20)))
		return ev(room, g.now, &eventlog.NotifyAccepted{Hub: g.pick(genHubs), BodyHash: eventlog.NotifyHash(room, body), Body: body}), 1
	case 14:
		if g.rnd.IntN(12) == 0 {
			return ev(room, g.now, &eventlog.RoomClosed{Sender: "admin"}), 1
		}
		return ev(room, g.now, &eventlog.RoomStateUpdated{Policy: []byte(fmt.Sprint("policy", g.now))}), 1
	default:
		if g.rnd.IntN(10) == 0 {
			return ev("", g.now, &eventlog.ClientRemoved{Client: g.pick(genClients)}), 1
		}
		return ev(room, g.now, &eventlog.KeyPackageRouted{Ref: []byte(fmt.Sprint("kp", g.rnd.IntN(g.kpN+1))), Provider: g.pick(genDests), User: g.pick(genUsers)}), 1
	}
}

// deliveries appends fanout/inbox enqueues referring back to the ops before.
func (g *gen) deliveries(ops []projections.Op) []projections.Op {
	n := len(ops)
	if n == 0 || ops[n-1].Event == nil {
		return ops
	}
	room := ops[n-1].Event.Room
	switch ops[n-1].Event.Type() {
	case eventlog.TypeCommitAccepted, eventlog.TypeApplicationMessageAccepted, eventlog.TypeProposalAccepted, eventlog.TypeNotifyAccepted:
	default:
		return ops
	}
	part := eventlog.PartMessage
	if g.rnd.IntN(4) == 0 {
		part = eventlog.PartWelcome
	}
	if dests := g.subset(genDests); len(dests) > 0 {
		ops = append(ops, ev(room, g.now, &eventlog.FanoutEnqueued{Destinations: dests, Back: 1, Part: part}))
	}
	if clients := g.subset(genClients[:4]); len(clients) > 0 {
		ops = append(ops, ev(room, g.now, &eventlog.ClientEnqueued{Clients: clients, Back: uint64(len(ops) - n + 1), Index: uint32(g.rnd.IntN(3))}))
	}
	return ops
}

func (g *gen) condition() projections.Condition {
	room := g.room()
	switch g.rnd.IntN(6) {
	case 0:
		return projections.RoomEpochIs(room, g.jitter(g.epoch(room)))
	case 1:
		h, _ := g.h.m.RoomEvents(room, 1, 0)
		return projections.RoomSeqIs(room, g.jitter(uint64(len(h))))
	case 2:
		return projections.RoomDoesNotExist(room)
	case 3:
		return projections.KeyPackageUnclaimed([]byte(fmt.Sprint("kp", g.rnd.IntN(g.kpN+1))), g.now)
	case 4:
		body := []byte(fmt.Sprint("notify", g.rnd.IntN(20)))
		return projections.NotifyNotSeen(g.pick(genHubs), sum(body))
	default:
		return projections.ClientIsRegistered(g.pick(genClients))
	}
}

func (g *gen) command() []byte {
	if g.rnd.IntN(50) == 0 {
		junk := make([]byte, g.rnd.IntN(20))
		for i := range junk {
			junk[i] = byte(g.rnd.IntN(256))
		}
		return junk
	}
	var c projections.Command
	if g.rnd.IntN(3) == 0 {
		c.Conditions = append(c.Conditions, g.condition())
	}
	nops := 1
	if g.rnd.IntN(3) == 0 {
		nops += 1 + g.rnd.IntN(2)
	}
	for i := 0; i < nops; i++ {
		op, _ := g.op()
		c.Ops = append(c.Ops, op)
		c.Ops = g.deliveries(c.Ops)
	}
	return encodeCmd(g.h.t, &c)
}

// runRandom applies n random commands to h, checking after each that a
// rejection changed nothing but the applied index. It returns the commands.
func runRandom(t testing.TB, h *harness, seed uint64, n int) *gen {
	t.Helper()
	// Seed the population so that most commands have something to act on.
	for i, c := range genClients {
		h.ok(nil, ev("", 0, &eventlog.ClientRegistered{User: genUsers[i%len(genUsers)], Client: c}))
	}
	for _, r := range genRooms[:3] {
		h.ok(nil, ev(r, 0, &eventlog.RoomCreated{Hub: "hub1", Members: genClients[:2]}))
	}
	g := &gen{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), h: h, now: 1_000_000, reasons: map[string]int{}}
	for i := 0; i < n; i++ {
		cmd := g.command()
		g.cmds = append(g.cmds, cmd)
		before := stateHash(t, h.m)
		headBefore, _ := h.m.LogHead()
		h.idx++
		r := h.m.Apply(h.idx, cmd)
		if r.Duplicate {
			t.Fatalf("command %d: duplicate", i)
		}
		if h.m.AppliedIndex() != h.idx {
			t.Fatalf("command %d: applied index %d, want %d", i, h.m.AppliedIndex(), h.idx)
		}
		if r.Err != nil {
			if errors.Is(r.Err, projections.ErrStorage) {
				t.Fatalf("command %d: %v", i, r.Err)
			}
			if !bytes.Equal(before, stateHash(t, h.m)) {
				t.Fatalf("command %d rejected (%v) but changed state", i, r.Err)
			}
			g.stats.rejected++
			if testing.Verbose() && g.reasons != nil {
				g.reasons[firstLine(r.Err)]++
			}
			continue
		}
		g.stats.ok++
		g.stats.events += len(r.Events)
		head, _ := h.m.LogHead()
		if head.Seq != headBefore.Seq+uint64(len(r.Events)) {
			t.Fatalf("command %d: head moved %d -> %d for %d events", i, headBefore.Seq, head.Seq, len(r.Events))
		}
		for j, e := range r.Events {
			if e.Seq != headBefore.Seq+uint64(j)+1 {
				t.Fatalf("command %d: event %d has seq %d", i, j, e.Seq)
			}
		}
	}
	return g
}

// TestPropertyReplay: random command sequences; replay reproduces the live
// digest, a second node applying the same commands reaches the same state,
// and the log verifies.
func TestPropertyReplay(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			fs := vfs.NewMem()
			a := newHarnessFS(t, fs, "a")
			g := runRandom(t, a, seed, 800)
			t.Logf("seed %d: %d accepted (%d events), %d rejected: %v", seed, g.stats.ok, g.stats.events, g.stats.rejected, g.reasons)
			if g.stats.ok < 150 || g.stats.rejected < 50 {
				t.Fatalf("generator too lopsided: %+v", g.stats)
			}
			if ks := a.m.WriteOnlyKeysCachedForTest(); len(ks) > 0 {
				t.Fatalf("%d write-only keys in the cross-command cache, such as %q", len(ks), ks[0])
			}
			replayCheck(t, a)
			rep, err := a.m.VerifyLog()
			if err != nil || !rep.OK() {
				t.Fatalf("verify: %v %v", err, rep.Corruptions)
			}
			// Node b applies the same raft log, without the cross-Apply
			// cache: the cache must change nothing.
			b := newHarnessFS(t, fs, "b", projections.Options{NoCache: true})
			b.idx = 0
			seedCmds := a.idx - uint64(len(g.cmds))
			// The seeding prefix is deterministic: run it again, then the
			// recorded random commands.
			runRandom(t, b, seed, 0)
			if b.idx != seedCmds {
				t.Fatalf("seed prefix %d vs %d", b.idx, seedCmds)
			}
			for _, cmd := range g.cmds {
				b.idx++
				b.m.Apply(b.idx, cmd)
			}
			if !bytes.Equal(digest(t, a.m), digest(t, b.m)) || !bytes.Equal(stateHash(t, a.m), stateHash(t, b.m)) {
				t.Fatal("two nodes diverged")
			}
			ha, _ := a.m.LogHead()
			hb, _ := b.m.LogHead()
			if ha != hb {
				t.Fatal("log heads differ")
			}
			audit, err := a.m.Audit("audit")
			if err != nil || !audit.OK() {
				t.Fatalf("audit: %v %+v", err, audit)
			}
		})
	}
}
