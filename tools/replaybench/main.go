// Command replaybench measures replay of the event log: it builds a log of
// N events (default 1,000,000) with a realistic MIMI hub mix through
// projections.Machine.Apply, then, on the same Pebble store, measures
//
//   - the raw Pebble scan rate of the log record keys ("e/g/...");
//   - the rate of decoding those records into events;
//   - the integrity walk (eventlog.Verify);
//   - the rate of replaying them into a fresh store, projections only
//     (projections.ReplayProjections) and with the log copied
//     (projections.Replay),
//
// checks that the replayed projections' digest equals the live one, and
// prints replay/scan as ratios.
//
//	go run ./tools/replaybench -n 1000000
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/openmimi/mimi/eventlog"
	"github.com/openmimi/mimi/projections"
)

var (
	flagN     = flag.Int("n", 1_000_000, "number of events")
	flagRooms = flag.Int("rooms", 1000, "number of rooms")
	flagBatch = flag.Int("batch", 1000, "events per command while building")
	flagDir   = flag.String("dir", "", "work directory (default: a temporary directory)")
	flagKeep  = flag.Bool("keep", false, "keep the work directory")
	flagProf  = flag.String("cpuprofile", "", "write CPU profiles of the replay phases to this path + .build / .replay-proj / .replay-full")
)

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)      {}
func (quietLogger) Errorf(f string, a ...any) { log.Printf("pebble: "+f, a...) }
func (quietLogger) Fatalf(f string, a ...any) { log.Fatalf("pebble: "+f, a...) }

// workload generates a valid hub event stream: rooms, clients with
// KeyPackages and claims, proposals, commits, application messages, fanout
// enqueues and acks, notifies and client inbox traffic.
type workload struct {
	rooms      int
	epochs     []uint64
	now        uint64
	n          int // events generated
	kp         int // KeyPackages uploaded
	claimed    int
	kpClient   map[int]string
	enqueued   map[string]uint64
	acked      map[string]uint64
	inEnqueued map[string]uint64
	inAcked    map[string]uint64
	notifies   int
	dests      []string
	clients    []string
}

func newWorkload(rooms int) *workload {
	w := &workload{rooms: rooms, epochs: make([]uint64, rooms), now: 1_700_000_000_000,
		kpClient: map[int]string{}, enqueued: map[string]uint64{}, acked: map[string]uint64{},
		inEnqueued: map[string]uint64{}, inAcked: map[string]uint64{},
		dests: []string{"b.example", "c.example", "d.example", "e.example"}}
	for i := 0; i < 100; i++ {
		w.clients = append(w.clients, fmt.Sprintf("mimi://a.example/d/user%d/1", i))
	}
	return w
}

func (w *workload) room(i int) string { return fmt.Sprintf("mimi://a.example/r/room-%06d", i) }

func ev(room string, ts uint64, b eventlog.Body) projections.Op {
	return projections.EventOp(room, ts, b)
}

// next appends the ops for the next step (1 to 4 events) to ops.
func (w *workload) next(ops []projections.Op) []projections.Op {
	w.now += 7
	i := w.n
	switch {
	case i < len(w.clients):
		c := w.clients[i]
		return append(ops, ev("", w.now, &eventlog.ClientRegistered{User: fmt.Sprintf("mimi://a.example/u/user%d", i), Client: c,
			SignatureKey: bytes.Repeat([]byte{1}, 32), Credential: bytes.Repeat([]byte{2}, 64)}))
	case i < len(w.clients)+w.rooms:
		r := i - len(w.clients)
		return append(ops, ev(w.room(r), w.now, &eventlog.RoomCreated{Hub: "a.example", Creator: "mimi://a.example/u/user0",
			Policy: make([]byte, 128), Participants: make([]byte, 256), GroupInfo: make([]byte, 512), RatchetTree: make([]byte, 1024),
			Members: []string{w.clients[r%100], w.clients[(r+1)%100]}}))
	}
	r := (i * 7919) % w.rooms
	room := w.room(r)
	switch x := i % 100; {
	case x < 2: // KeyPackage upload
		var kps []eventlog.KeyPackage
		client := w.clients[i%100]
		for j := 0; j < 4; j++ {
			w.kp++
			w.kpClient[w.kp] = client
			kps = append(kps, eventlog.KeyPackage{Ref: []byte(fmt.Sprintf("kpref-%012d", w.kp)), CipherSuite: 1,
				NotAfter: w.now/1000 + 86400, Data: make([]byte, 300)})
		}
		return append(ops, ev("", w.now, &eventlog.KeyPackagesUploaded{Client: client, KeyPackages: kps}))
	case x < 3 && w.claimed < w.kp: // claim, and the hub's route
		w.claimed++
		ref := []byte(fmt.Sprintf("kpref-%012d", w.claimed))
		return append(ops,
			ev(room, w.now, &eventlog.KeyPackageClaimed{Ref: ref, Client: w.kpClient[w.claimed], Claimer: "mimi://b.example/u/bob"}),
			ev(room, w.now, &eventlog.KeyPackageRouted{Ref: ref, Provider: "a.example", User: "mimi://a.example/u/x"}))
	case x < 8: // proposal
		return append(ops, ev(room, w.now, &eventlog.ProposalAccepted{Epoch: w.epochs[r], Message: make([]byte, 400),
			ProposalRef: []byte(fmt.Sprintf("pref-%d", i)), Sender: w.clients[r%100]}))
	case x < 11: // commit + fanout of the commit
		w.epochs[r]++
		ops = append(ops, ev(room, w.now, &eventlog.CommitAccepted{Epoch: w.epochs[r], Commit: make([]byte, 800),
			GroupInfo: make([]byte, 512), RatchetTree: make([]byte, 1024), Members: []string{w.clients[r%100], w.clients[(r+1)%100]},
			Sender: w.clients[r%100]}))
		w.enqueued[w.dests[0]]++
		w.enqueued[w.dests[1]]++
		return append(ops, ev(room, w.now, &eventlog.FanoutEnqueued{Destinations: w.dests[:2], Back: 1}))
	case x < 14: // notify received as a follower, into an inbox
		w.notifies++
		body := []byte(fmt.Sprintf("notify body %d %s", w.notifies, bytes.Repeat([]byte{'x'}, 300)))
		h := eventlog.NotifyHash("mimi://z.example/r/remote", body)
		c := w.clients[i%100]
		w.inEnqueued[c]++
		return append(ops, ev("mimi://z.example/r/remote", w.now, &eventlog.NotifyAccepted{Hub: "z.example", BodyHash: h, Body: body}),
			ev("mimi://z.example/r/remote", w.now, &eventlog.ClientEnqueued{Clients: []string{c}, Back: 1}))
	case x < 15: // acks
		for _, d := range w.dests[:2] {
			if w.enqueued[d] > w.acked[d] {
				w.acked[d] = w.enqueued[d]
				ops = append(ops, ev("", w.now, &eventlog.FanoutDelivered{Destination: d, UpTo: w.acked[d]}))
			}
		}
		c := w.clients[i%100]
		if w.inEnqueued[c] > w.inAcked[c] {
			w.inAcked[c] = w.inEnqueued[c]
			ops = append(ops, ev("", w.now, &eventlog.ClientDelivered{Client: c, UpTo: w.inAcked[c]}))
		}
		if len(ops) > 0 {
			return ops
		}
		fallthrough
	default: // application message + fanout
		ops = append(ops, ev(room, w.now, &eventlog.ApplicationMessageAccepted{Epoch: w.epochs[r], Message: make([]byte, 256), Sender: w.clients[r%100]}))
		if i%3 == 0 {
			d := w.dests[i%len(w.dests)]
			w.enqueued[d]++
			ops = append(ops, ev(room, w.now, &eventlog.FanoutEnqueued{Destinations: []string{d}, Back: 1}))
		}
		return ops
	}
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	dir := *flagDir
	if dir == "" {
		d, err := os.MkdirTemp("", "replaybench-")
		if err != nil {
			log.Fatal(err)
		}
		dir = d
	}
	if !*flagKeep {
		defer os.RemoveAll(dir)
	}
	srcDir, dstDir := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	os.RemoveAll(srcDir)
	os.RemoveAll(dstDir)

	// Build.
	m, err := projections.Open(srcDir)
	if err != nil {
		log.Fatal(err)
	}
	w := newWorkload(*flagRooms)
	if *flagProf != "" {
		pf, err := os.Create(*flagProf + ".build")
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(pf)
	}
	start := time.Now()
	var idx uint64
	total := 0
	for total < *flagN {
		var ops []projections.Op
		for len(ops) < *flagBatch && total+len(ops) < *flagN {
			before := len(ops)
			ops = w.next(ops)
			w.n += len(ops) - before
		}
		// Trim to exactly N (a step may add more than one event; the
		// extra ones are dropped only at the very end).
		if total+len(ops) > *flagN {
			ops = ops[:*flagN-total]
		}
		b, err := projections.EncodeCommand(&projections.Command{Ops: ops})
		if err != nil {
			log.Fatal(err)
		}
		idx++
		res := m.Apply(idx, b)
		if res.Err != nil {
			log.Fatalf("command %d rejected: %v", idx, res.Err)
		}
		total += len(res.Events)
	}
	build := time.Since(start)
	if *flagProf != "" {
		pprof.StopCPUProfile()
	}
	liveDigest, err := m.Digest()
	if err != nil {
		log.Fatal(err)
	}
	head, _ := m.LogHead()
	if err := m.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("built %d events in %d commands in %v: %.0f events/s (Apply, %d events per command, pebble.Sync)\n",
		head.Seq, idx, build.Round(time.Millisecond), float64(head.Seq)/build.Seconds(), *flagBatch)

	db, err := pebble.Open(filepath.Join(srcDir, projections.StateDir), &pebble.Options{ReadOnly: true, Logger: quietLogger{}, CacheSize: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	// Raw Pebble scan of the same keys (warm-up pass first, so both
	// measurements see a warm page cache).
	rawScan := func() (int, int, time.Duration) {
		start := time.Now()
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("e/g/"), UpperBound: eventlog.PrefixEnd([]byte("e/g/"))})
		if err != nil {
			log.Fatal(err)
		}
		n, size := 0, 0
		for ok := it.First(); ok; ok = it.Next() {
			n++
			size += len(it.Key()) + len(it.Value())
		}
		if err := it.Close(); err != nil {
			log.Fatal(err)
		}
		return n, size, time.Since(start)
	}
	rawScan()
	n, size, scanDur := rawScan()
	scanRate := float64(n) / scanDur.Seconds()
	fmt.Printf("raw pebble scan:  %d keys, %.1f MiB in %v: %.0f keys/s (%.0f MiB/s)\n",
		n, float64(size)/(1<<20), scanDur.Round(time.Millisecond), scanRate, float64(size)/(1<<20)/scanDur.Seconds())

	// Decode only.
	start = time.Now()
	it, err := eventlog.NewIterator(db, 1)
	if err != nil {
		log.Fatal(err)
	}
	dn := 0
	for it.Next() {
		dn++
	}
	if it.Err() != nil {
		log.Fatal(it.Err())
	}
	it.Close()
	decDur := time.Since(start)
	fmt.Printf("decode scan:      %d events in %v: %.0f events/s\n", dn, decDur.Round(time.Millisecond), float64(dn)/decDur.Seconds())

	// Integrity walk.
	start = time.Now()
	rep, err := eventlog.Verify(db)
	if err != nil {
		log.Fatal(err)
	}
	verDur := time.Since(start)
	fmt.Printf("verify:           %d records in %v: %.0f records/s, ok=%v\n", rep.Records, verDur.Round(time.Millisecond), float64(rep.Records)/verDur.Seconds(), rep.OK())

	// Replay, twice: rebuilding the projections only, and rebuilding a
	// complete store (log copy included).
	replayOnce := func(name, dir string, f func(pebble.Reader, *projections.Machine) (projections.ReplayStats, error)) (float64, []byte) {
		dst, err := projections.Open(dir)
		if err != nil {
			log.Fatal(err)
		}
		if *flagProf != "" {
			pf, err := os.Create(*flagProf + "." + name)
			if err != nil {
				log.Fatal(err)
			}
			pprof.StartCPUProfile(pf)
		}
		st, err := f(db, dst)
		if *flagProf != "" {
			pprof.StopCPUProfile()
		}
		if err != nil {
			log.Fatal(err)
		}
		d, err := dst.Digest()
		if err != nil {
			log.Fatal(err)
		}
		dst.Close()
		os.RemoveAll(dir)
		rate := float64(st.Events) / st.Duration.Seconds()
		fmt.Printf("%-17s %d events in %v: %.0f events/s, digest equal: %v\n", name+":", st.Events, st.Duration.Round(time.Millisecond), rate, bytes.Equal(d, liveDigest))
		return rate, d
	}
	projRate, projDigest := replayOnce("replay-proj", dstDir+"-proj", projections.ReplayProjections)
	replayRate, replayDigest := replayOnce("replay-full", dstDir, projections.Replay)
	fmt.Printf("live digest:      %x\n", liveDigest[:8])
	fmt.Printf("replay/scan:      projections-only %.4f (scan %.1fx faster); full %.4f (scan %.1fx faster)\n",
		projRate/scanRate, scanRate/projRate, replayRate/scanRate, scanRate/replayRate)
	if !bytes.Equal(liveDigest, projDigest) {
		os.Exit(1)
	}
	if !bytes.Equal(liveDigest, replayDigest) {
		os.Exit(1)
	}
}
