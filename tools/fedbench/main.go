// Command fedbench measures MIMI federation throughput and latency on one
// machine (draft-ralston-mimi-protocol-02, Sections 4.1, 5.4 and 5.5)
// against a bare mutual-TLS HTTP/2 baseline.
//
// It starts three provider processes as internal/daemon instances in this
// process, on loopback, with a fresh dev CA in a temporary directory:
// a.example hosts the room (the hub), b.example and c.example follow it.
// With the client SDK (package client) it builds one real MLS room with a
// receiving client at each provider and -concurrency sending clients of one
// user at c.example. Each sender then sends its share of -n application
// messages of -size bytes (MLS PrivateMessages, RFC 9420 Section 6.3)
// one after the other, so every message goes
//
//	client at c -> c.example (LocalSubmitMessage)
//	  -> a.example POST /submitMessage over mutual TLS (Section 5.4; the
//	     hub's Raft commit queues it for a's local client and for the
//	     fanout to b and c)
//	  -> a.example fanout POST /notify to b.example and c.example
//	     (Section 5.5; each follower's Raft commit queues it for its
//	     local clients)
//
// It reports the messages per second the hub accepted, the latency from
// the submit call to the message's appearance in each receiving client's
// inbox at its provider (p50, p99), and the end-to-end rate at which
// messages reached every receiver; then it runs the baseline: a POST echo
// server built from crypto/tls and net/http on loopback, with the same
// certificates, 1 KiB bodies and the same concurrency, and prints the ratio
// of the two throughputs. Afterwards every receiving client syncs and
// decrypts its messages, and the run fails unless every message reached
// every receiver exactly once.
//
// With -floor (the default) it then runs the floor pipeline: the same
// hops (c.example -> a.example POST, a.example -> b.example and c.example
// POSTs of everything stored since the last round) with the same
// certificates, sizes and concurrency, but with nothing behind them but
// one fsynced Pebble write per provider: no Raft, event log,
// projections, MLS or MIMI checks, inboxes or receiving clients. Its ratio
// to the echo bounds what any implementation of this message path with
// durable acceptance and delivery can reach on the machine.
//
// Usage:
//
//	go run ./tools/fedbench [-n 2000] [-concurrency 4] [-size 1024] [-preencrypt=true] [-floor=true] [-json] [-cpuprofile file]
//
// With -preencrypt (the default) each sender first encrypts its share of
// the messages through the client SDK, unsent, and the measured window
// then only submits them: it measures the providers, from submitMessage
// to delivery, not the clients' MLS encryption. -preencrypt=false keeps
// the encryption inside the window (client.Send per message).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// TargetRatio is the federation/baseline throughput ratio the federation
// issue asks for.
const TargetRatio = 0.5

// Config is one benchmark run.
type Config struct {
	Messages    int           `json:"messages"`
	Concurrency int           `json:"concurrency"`
	Size        int           `json:"message_bytes"`
	Warmup      int           `json:"warmup_messages"`
	Poll        time.Duration `json:"-"`
	PollMs      float64       `json:"poll_ms"`
	Timeout     time.Duration `json:"-"`
	Verify      bool          `json:"verify"`
	// Floor also measures the floor pipeline (runFloor).
	Floor bool `json:"floor"`
	// PreEncrypt: the senders encrypt their messages before the measured
	// window, which then covers submitMessage to delivery only.
	PreEncrypt bool `json:"pre_encrypt"`
	// BaselineRounds is how many times the baseline runs; the median
	// round by throughput is reported.
	BaselineRounds int    `json:"baseline_rounds"`
	CPUProfile     string `json:"cpu_profile,omitempty"`
	Trace          string `json:"trace,omitempty"`
	MemProfile     string `json:"mem_profile,omitempty"`
	// Dir is where the temporary directory goes ("" for os.TempDir);
	// Keep keeps it.
	Dir  string `json:"-"`
	Keep bool   `json:"-"`
	// Log receives progress lines and the providers' warnings.
	Log io.Writer `json:"-"`
}

// Machine describes where the benchmark ran.
type Machine struct {
	NumCPU     int     `json:"nproc"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	GoVersion  string  `json:"go_version"`
	OSArch     string  `json:"os_arch"`
	CPUModel   string  `json:"cpu_model,omitempty"`
	LoadAvg    string  `json:"load_avg,omitempty"`
	FsyncP50Ms float64 `json:"fsync_p50_ms"`
	FsyncP99Ms float64 `json:"fsync_p99_ms"`
}

// Report is the whole result (the -json output).
type Report struct {
	Machine    Machine         `json:"machine"`
	Config     Config          `json:"config"`
	Federation *FedResult      `json:"federation"`
	Baseline   *BaselineResult `json:"baseline"`
	// RatioAccepted is federation accepted/s over baseline requests/s;
	// RatioDelivered uses the end-to-end delivered rate instead.
	RatioAccepted  float64 `json:"ratio_accepted"`
	RatioDelivered float64 `json:"ratio_delivered"`
	// Floor is the floor pipeline (runFloor), RatioFloor its accepted
	// rate over the baseline's (as RatioAccepted): what any
	// implementation of the message path could reach at most on this
	// machine.
	Floor      *FloorResult `json:"floor,omitempty"`
	RatioFloor float64      `json:"ratio_floor,omitempty"`
	Target     float64      `json:"target_ratio"`
	Check      string       `json:"check"`
}

func main() {
	var c Config
	var asJSON bool
	flag.IntVar(&c.Messages, "n", 2000, "application messages to send (and baseline requests)")
	flag.IntVar(&c.Concurrency, "concurrency", 4, "concurrent senders (sending clients at c.example; baseline goroutines)")
	flag.IntVar(&c.Size, "size", 1024, "application message / echo body size in bytes")
	flag.IntVar(&c.Warmup, "warmup", 40, "unmeasured messages (and baseline requests) sent first")
	flag.DurationVar(&c.Poll, "poll", 50*time.Millisecond, "longest wait between two inbox reads of a receiver (each command its provider applies wakes it sooner)")
	flag.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "bound on each phase")
	flag.IntVar(&c.BaselineRounds, "baseline-rounds", 3, "baseline rounds (the median by throughput is used)")
	flag.BoolVar(&c.Verify, "verify", true, "after the run, every receiving client syncs and decrypts its messages")
	flag.BoolVar(&c.PreEncrypt, "preencrypt", true, "senders encrypt their messages (MLS) before the measured window, which then runs from submitMessage to delivery")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured federation phase to this file")
	flag.StringVar(&c.Trace, "trace", "", "write an execution trace of the measured federation phase to this file (go tool trace; -pprof=sched|sync|syscall|net shows where goroutines wait)")
	flag.StringVar(&c.MemProfile, "memprofile", "", "write the allocation profile at the end of the measured federation phase to this file, and the one at its start to FILE.start (go tool pprof -sample_index=alloc_space -base FILE.start FILE)")
	flag.StringVar(&c.Dir, "dir", "", "parent of the temporary data directory (default the system temp dir)")
	flag.BoolVar(&c.Keep, "keep", false, "keep the temporary data directory")
	flag.BoolVar(&c.Floor, "floor", true, "also measure the floor pipeline: the same hops with only mutual-TLS HTTP/2 and one fsynced Pebble write per provider (no Raft, projections, checks or inboxes)")
	flag.BoolVar(&asJSON, "json", false, "print the report as JSON")
	flag.Parse()
	c.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := Run(ctx, c)
	if rep != nil {
		if asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			enc.Encode(rep)
		} else {
			printReport(os.Stdout, rep)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fedbench:", err)
		os.Exit(1)
	}
}

// Run runs the whole benchmark. A non-nil report may come with an error
// (a failed exactly-once check).
func Run(ctx context.Context, c Config) (*Report, error) {
	if c.Messages < 1 || c.Concurrency < 1 || c.Concurrency > 1000 || c.Size < payloadHeader || c.Warmup < 0 {
		return nil, fmt.Errorf("invalid configuration: n %d, concurrency %d, size %d (min %d), warmup %d",
			c.Messages, c.Concurrency, c.Size, payloadHeader, c.Warmup)
	}
	if c.Poll <= 0 {
		c.Poll = 50 * time.Millisecond
	}
	if c.BaselineRounds < 1 {
		c.BaselineRounds = 1
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	c.PollMs = ms(c.Poll)
	if c.Log == nil {
		c.Log = io.Discard
	}
	logf := func(format string, args ...any) { fmt.Fprintf(c.Log, "fedbench: "+format+"\n", args...) }

	dir, err := os.MkdirTemp(c.Dir, "fedbench-")
	if err != nil {
		return nil, err
	}
	if c.Keep {
		logf("data in %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	rep := &Report{Config: c, Target: TargetRatio, Machine: describeMachine()}
	if rep.Machine.FsyncP50Ms, rep.Machine.FsyncP99Ms, err = fsyncProbe(dir, 50); err != nil {
		return nil, err
	}

	logf("starting a.example, b.example, c.example")
	t0 := time.Now()
	f, err := startFabric(ctx, dir, c.Log)
	if err != nil {
		return nil, err
	}
	defer f.close()
	logf("building the room (%d senders)", c.Concurrency)
	r, err := f.buildRoom(ctx, cDomain, c.Concurrency)
	if err != nil {
		return nil, err
	}
	setup := time.Since(t0)

	if c.Warmup > 0 {
		logf("warmup: %d messages", c.Warmup)
		w, err := runPhase(ctx, f, r, phaseOpts{phase: phaseWarmup, messages: c.Warmup, size: c.Size, poll: c.Poll, timeout: c.Timeout, preEncrypt: c.PreEncrypt})
		if err != nil {
			return nil, fmt.Errorf("warmup: %w", err)
		}
		if err := w.check(); err != nil {
			return nil, fmt.Errorf("warmup: %w", err)
		}
	}
	logf("federation: %d messages, %d senders", c.Messages, c.Concurrency)
	fed, err := runPhase(ctx, f, r, phaseOpts{
		phase: phaseMeasure, messages: c.Messages, size: c.Size, poll: c.Poll, timeout: c.Timeout,
		cpuProfile: c.CPUProfile, traceFile: c.Trace, memProfile: c.MemProfile, verify: c.Verify, preEncrypt: c.PreEncrypt,
	})
	if fed != nil {
		fed.SetupSeconds = setup.Seconds()
		fed.CPUProfileFile = c.CPUProfile
	}
	rep.Federation = fed
	if err != nil {
		return rep, fmt.Errorf("federation: %w", err)
	}

	logf("baseline: %d rounds of %d requests, concurrency %d", c.BaselineRounds, c.Messages, c.Concurrency)
	base, err := runBaseline(ctx, f, c.Messages, c.Concurrency, c.Size, c.Warmup, c.BaselineRounds)
	if err != nil {
		return rep, err
	}
	rep.Baseline = base
	if base.PerSec > 0 {
		rep.RatioAccepted = round3(fed.AcceptedPerSec / base.PerSec)
		rep.RatioDelivered = round3(fed.DeliveredPerSec / base.PerSec)
	}
	if c.Floor {
		logf("floor: %d messages, concurrency %d", c.Messages, c.Concurrency)
		fl, err := runFloor(ctx, f, dir, c.Messages, c.Concurrency, c.Size, c.Warmup)
		if err != nil {
			return rep, fmt.Errorf("floor: %w", err)
		}
		rep.Floor = fl
		if base.PerSec > 0 {
			rep.RatioFloor = round3(fl.AcceptedPerSec / base.PerSec)
		}
	}
	if err := fed.check(); err != nil {
		rep.Check = err.Error()
		return rep, err
	}
	rep.Check = "ok: every message reached every receiver's inbox exactly once"
	if c.Verify {
		rep.Check += " and was decrypted exactly once by its client"
	}
	return rep, nil
}

func describeMachine() Machine {
	m := Machine{
		NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), OSArch: runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

// fsyncProbe times n writes of 4 KiB each followed by fsync in dir, the
// durability step of every Raft log append and state machine batch.
func fsyncProbe(dir string, n int) (p50, p99 float64, err error) {
	f, err := os.Create(filepath.Join(dir, "fsync-probe"))
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var ds []time.Duration
	for range n {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
		ds = append(ds, time.Since(t))
	}
	l := summarize(ds)
	return l.P50, l.P99, nil
}

func printReport(w io.Writer, r *Report) {
	m, c := r.Machine, r.Config
	fmt.Fprintf(w, "fedbench: MIMI federation benchmark\n")
	fmt.Fprintf(w, "machine  : nproc %d, GOMAXPROCS %d, %s %s, %s\n", m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.OSArch, m.CPUModel)
	fmt.Fprintf(w, "load avg : %s at start (shared machine)\n", m.LoadAvg)
	fmt.Fprintf(w, "disk     : 4 KiB write+fsync in the data dir p50 %.3f ms, p99 %.3f ms\n", m.FsyncP50Ms, m.FsyncP99Ms)
	fmt.Fprintf(w, "run      : %d messages of %d B, %d concurrent senders at c.example (sequential each), room hosted at a.example, "+
		"receivers at a, b, c; %d warmup messages; inbox read on every applied command (at least every %.3g ms)\n", c.Messages, c.Size, c.Concurrency, c.Warmup, c.PollMs)
	if c.PreEncrypt {
		fmt.Fprintf(w, "window   : messages MLS-encrypted before the measured window (-preencrypt); it runs from submitMessage to delivery\n")
	} else {
		fmt.Fprintf(w, "window   : the senders' MLS encryption is inside the measured window (-preencrypt=false)\n")
	}
	if f := r.Federation; f != nil {
		fmt.Fprintf(w, "setup    : 3 providers + MLS room of %d clients in %.2f s\n\n", 3+f.Senders, f.SetupSeconds)
		fmt.Fprintf(w, "FEDERATION  client@c -> c.example -> a.example /submitMessage -> fanout /notify -> b.example, c.example\n")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  accepted by hub\t%.1f msg/s\t(%d of %d in %.3f s; %d rejected)\n", f.AcceptedPerSec, f.Accepted, f.Submitted, f.AcceptSeconds, f.Rejected)
		fmt.Fprintf(tw, "  submit latency\tp50 %.3f ms\tp99 %.3f ms\t(LocalSubmitMessage at c.example: hub round trip incl. its Raft commit)\n", f.SubmitLatency.P50, f.SubmitLatency.P99)
		if c.PreEncrypt {
			fmt.Fprintf(tw, "  sender loop latency\tp50 %.3f ms\tp99 %.3f ms\t(submit of a pre-encrypted message)\n", f.SendLatency.P50, f.SendLatency.P99)
		} else {
			fmt.Fprintf(tw, "  client Send latency\tp50 %.3f ms\tp99 %.3f ms\t(MLS encrypt+sign + submit)\n", f.SendLatency.P50, f.SendLatency.P99)
		}
		fmt.Fprintf(tw, "  delivered to all\t%.1f msg/s\t(every message in every receiver's inbox after %.3f s)\n", f.DeliveredPerSec, f.DeliveredSeconds)
		fmt.Fprintf(tw, "  process CPU\t%.2f s\t(%.3f ms per message; %.2f cores busy on average)\n", f.CPUSeconds, f.CPUPerMsgMs, f.CPUSeconds/max(f.DeliveredSeconds, f.AcceptSeconds, 1e-9))
		tw.Flush()
		fmt.Fprintf(w, "\n  submit -> appearance in the receiving client's inbox at its provider\n")
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "  provider\trole\tdelivered\tdup\tmissing\tp50 ms\tp99 ms\tmax ms\tlast at s\t\n")
		for _, rr := range f.Receivers {
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t\n", rr.Provider, rr.Role, rr.Delivered, rr.Duplicates, rr.Missing,
				rr.Latency.P50, rr.Latency.P99, rr.Latency.Max, rr.LastSeconds)
		}
		tw.Flush()
		if len(f.Verify) > 0 {
			fmt.Fprintf(w, "\n  receiving clients' check (Sync + MLS decrypt):")
			for _, v := range f.Verify {
				fmt.Fprintf(w, " %s %d/%d (dup %d, corrupt %d, errors %d);", shortClient(v.Client), v.Decrypted, f.Accepted, v.Duplicates, v.Corrupt, v.Errors)
			}
			fmt.Fprintln(w)
		}
		if b := f.Breakdown; b != nil {
			fmt.Fprintf(w, "\n  where the time goes (providers' metrics over the measured phase)\n")
			tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "  provider\tRaft applies\tmean apply ms\tRaft entries\tfederation requests served (count x mean ms)\n")
			for _, p := range b.Providers {
				var reqs []string
				for _, e := range p.Requests {
					reqs = append(reqs, fmt.Sprintf("%s %d x %.3f", e.Endpoint, e.Count, e.MeanMs))
				}
				fmt.Fprintf(tw, "  %s\t%d\t%.3f\t%d\t%s\n", p.Provider, p.RaftApplies, p.RaftApplyMeanMs, p.RaftEntries, strings.Join(reqs, ", "))
			}
			tw.Flush()
			for _, fb := range b.Fanout {
				fmt.Fprintf(w, "  fanout a.example -> %s: %d messages in %d /notify bodies (%.2f per body)\n", fb.Destination, fb.Messages, fb.Batches, fb.PerBatch)
			}
		}
		if f.CPUProfileFile != "" {
			fmt.Fprintf(w, "  CPU profile of the measured phase: %s\n", f.CPUProfileFile)
		}
	}
	if b := r.Baseline; b != nil {
		fmt.Fprintf(w, "\nBASELINE  bare mutual-TLS %s POST echo on loopback (crypto/tls + net/http, same certificates), %d B, %d concurrent\n", b.Proto, c.Size, c.Concurrency)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  requests\t%.1f req/s\t(%d in %.3f s; median of %d rounds)\n", b.PerSec, b.Requests, b.Seconds, len(b.Rounds))
		fmt.Fprintf(tw, "  latency\tp50 %.3f ms\tp99 %.3f ms\n", b.Latency.P50, b.Latency.P99)
		fmt.Fprintf(tw, "  process CPU\t%.2f s\t(%.3f ms per request)\n", b.CPUSeconds, b.CPUPerReqM)
		var rs []string
		for _, x := range b.Rounds {
			rs = append(rs, fmt.Sprintf("%.0f req/s p50 %.3f p99 %.3f ms", x.PerSec, x.P50, x.P99))
		}
		fmt.Fprintf(tw, "  rounds\t%s\n", strings.Join(rs, "; "))
		tw.Flush()
		verdict := "MEETS"
		if r.RatioAccepted < r.Target {
			verdict = "BELOW"
		}
		fmt.Fprintf(w, "\nRATIO federation / baseline throughput\n")
		fmt.Fprintf(w, "  accepted by hub     %.4f  (target >= %.1f: %s)\n", r.RatioAccepted, r.Target, verdict)
		fmt.Fprintf(w, "  delivered to all    %.4f\n", r.RatioDelivered)
	}
	if fl := r.Floor; fl != nil {
		fmt.Fprintf(w, "\nFLOOR  the same hops with only mutual-TLS HTTP/2 and one fsynced Pebble write per provider\n")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  accepted by hub\t%.1f msg/s\n", fl.AcceptedPerSec)
		fmt.Fprintf(tw, "  delivered to both\t%.1f msg/s\t(%d in %.3f s; %d /notify bodies)\n", fl.PerSec, fl.Messages, fl.Seconds, fl.Bodies)
		fmt.Fprintf(tw, "  submit latency\tp50 %.3f ms\tp99 %.3f ms\n", fl.Latency.P50, fl.Latency.P99)
		fmt.Fprintf(tw, "  process CPU\t%.2f s\t(%.3f ms per message)\n", fl.CPUSeconds, fl.CPUPerMsgM)
		tw.Flush()
		fmt.Fprintf(w, "  ratio floor / baseline  %.4f  (accepted by hub: the most this machine allows the message path)\n", r.RatioFloor)
	}
	if r.Check != "" {
		fmt.Fprintf(w, "\ncheck: %s\n", r.Check)
	}
}

func shortClient(uri string) string {
	if i := strings.LastIndexByte(uri, '/'); i >= 0 {
		return uri[i+1:]
	}
	return uri
}
