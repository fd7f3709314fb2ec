package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the whole benchmark with a tiny N and checks that every
// message reached every follower's inbox (and the hub's local client's)
// exactly once, that every receiving client decrypted each exactly once,
// and that both report formats render; with the messages encrypted
// inside the measured window (client.Send) and before it (-preencrypt).
func TestSmoke(t *testing.T) {
	for _, pre := range []bool{false, true} {
		t.Run(map[bool]string{false: "send", true: "preencrypt"}[pre], func(t *testing.T) { smoke(t, pre) })
	}
}

func smoke(t *testing.T, pre bool) {
	const n = 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log bytes.Buffer
	rep, err := Run(ctx, Config{
		Messages: n, Concurrency: 2, Size: 1024, Warmup: 4,
		Poll: time.Millisecond, Timeout: time.Minute, Verify: true, BaselineRounds: 2,
		PreEncrypt: pre, Floor: pre, Dir: t.TempDir(), Log: &log,
	})
	if err != nil {
		t.Fatalf("run: %v\nlog:\n%s", err, log.String())
	}
	f := rep.Federation
	if f.Submitted != n || f.Accepted != n || f.Rejected != 0 {
		t.Fatalf("submitted %d, accepted %d, rejected %d", f.Submitted, f.Accepted, f.Rejected)
	}
	if len(f.Receivers) != 3 {
		t.Fatalf("%d receivers", len(f.Receivers))
	}
	followers := 0
	for _, r := range f.Receivers {
		if r.Role == "follower" {
			followers++
		}
		if r.Delivered != n || r.Duplicates != 0 || r.Unknown != 0 || r.Missing != 0 || r.InboxEntries != n {
			t.Errorf("%s (%s): %+v", r.Provider, r.Role, r)
		}
		if r.Latency.Count != n || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 {
			t.Errorf("%s latency %+v", r.Provider, r.Latency)
		}
	}
	if followers != 2 {
		t.Errorf("%d followers, want b.example and c.example", followers)
	}
	if len(f.Verify) != 3 {
		t.Fatalf("%d client checks", len(f.Verify))
	}
	for _, v := range f.Verify {
		if v.Decrypted != n || v.Duplicates != 0 || v.Corrupt != 0 || v.Errors != 0 || v.Missing != 0 {
			t.Errorf("client check %+v", v)
		}
	}
	if f.AcceptedPerSec <= 0 || f.DeliveredPerSec <= 0 || f.DeliveredPerSec > f.AcceptedPerSec*1.0001 {
		t.Errorf("rates: accepted %v, delivered %v", f.AcceptedPerSec, f.DeliveredPerSec)
	}
	if b := f.Breakdown; b == nil || len(b.Providers) != 3 || len(b.Fanout) != 2 {
		t.Errorf("breakdown %+v", f.Breakdown)
	} else {
		for _, fb := range b.Fanout {
			if fb.Messages != n || fb.Batches < 1 {
				t.Errorf("fanout %+v", fb)
			}
		}
		for _, p := range b.Providers {
			if p.RaftApplies < 1 {
				t.Errorf("no Raft applies at %s", p.Provider)
			}
		}
	}
	if rep.Baseline == nil || rep.Baseline.Requests != n || rep.Baseline.Proto != "HTTP/2.0" || len(rep.Baseline.Rounds) != 2 || rep.RatioAccepted <= 0 {
		t.Errorf("baseline %+v, ratio %v", rep.Baseline, rep.RatioAccepted)
	}

	wantOut := []string{"FEDERATION", "BASELINE", "RATIO", "b.example", "follower", "check: ok"}
	if pre {
		if fl := rep.Floor; fl == nil || fl.Messages != n || fl.PerSec <= 0 || fl.AcceptedPerSec < fl.PerSec || fl.Bodies < 1 || fl.Latency.Count != n || rep.RatioFloor <= 0 {
			t.Errorf("floor %+v, ratio %v", rep.Floor, rep.RatioFloor)
		}
		wantOut = append(wantOut, "FLOOR")
	} else if rep.Floor != nil {
		t.Errorf("floor measured without Config.Floor")
	}
	var out bytes.Buffer
	printReport(&out, rep)
	for _, want := range wantOut {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Federation.Accepted != n {
		t.Fatalf("JSON round trip: %v", err)
	}
}

func TestPayload(t *testing.T) {
	for _, tc := range []struct {
		phase       byte
		sender, seq int
		size        int
	}{
		{phaseMeasure, 0, 0, 1024},
		{phaseWarmup, 3, 1999, 1024},
		{phaseMeasure, 999, 1 << 20, payloadHeader},
	} {
		b := makePayload(tc.phase, tc.sender, tc.seq, tc.size)
		if len(b) != tc.size {
			t.Fatalf("%+v: %d bytes", tc, len(b))
		}
		ph, s, seq, ok := parsePayload(b)
		if !ok || ph != tc.phase || s != tc.sender || seq != tc.seq {
			t.Fatalf("%+v: parsed %d %d %d %v", tc, ph, s, seq, ok)
		}
		if !bytes.Equal(b, makePayload(tc.phase, tc.sender, tc.seq, tc.size)) {
			t.Fatalf("%+v: not deterministic", tc)
		}
	}
	if _, _, _, ok := parsePayload([]byte("short")); ok {
		t.Fatal("short payload parsed")
	}
}

func TestParseProm(t *testing.T) {
	p := parseProm(`# HELP x y
# TYPE mimi_raft_apply_duration_seconds histogram
mimi_raft_apply_duration_seconds_sum{outcome="applied"} 1.5
mimi_raft_apply_duration_seconds_count{outcome="applied"} 3
mimi_raft_apply_duration_seconds_count{outcome="rejected"} 2
mimi_federation_request_duration_seconds_count{endpoint="notify"} 7
mimi_federation_request_duration_seconds_count{endpoint="submitMessage"} 9
weird{a="x\"y, z",b="2"} 4
mimi_raft_commit_index 42
broken line
`)
	for _, tc := range []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"mimi_raft_apply_duration_seconds_count", nil, 5},
		{"mimi_raft_apply_duration_seconds_count", map[string]string{"outcome": "applied"}, 3},
		{"mimi_raft_apply_duration_seconds_sum", nil, 1.5},
		{"mimi_raft_commit_index", nil, 42},
		{"weird", map[string]string{"a": `x"y, z`, "b": "2"}, 4},
		{"absent", nil, 0},
	} {
		if got := p.sum(tc.name, tc.match); got != tc.want {
			t.Errorf("sum(%s, %v) = %v, want %v", tc.name, tc.match, got, tc.want)
		}
	}
	if got := strings.Join(p.labelValues("mimi_federation_request_duration_seconds_count", "endpoint"), ","); got != "notify,submitMessage" {
		t.Errorf("endpoints %q", got)
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := summarize(ds)
	if l.Count != 100 || l.P50 != 50 || l.P99 != 99 || l.Max != 100 || l.Mean != 50.5 {
		t.Fatalf("%+v", l)
	}
	if (summarize(nil) != Latency{}) {
		t.Fatal("empty")
	}
}

// TestCheck: the exactly-once check refuses what the smoke test must not
// let through.
func TestCheck(t *testing.T) {
	good := func() *FedResult {
		r := &FedResult{Submitted: 5, Accepted: 5}
		for _, p := range domains {
			r.Receivers = append(r.Receivers, ReceiverResult{Provider: p, Delivered: 5, InboxEntries: 5})
			r.Verify = append(r.Verify, VerifyResult{Client: p, Decrypted: 5})
		}
		return r
	}
	if err := good().check(); err != nil {
		t.Fatal(err)
	}
	for name, spoil := range map[string]func(*FedResult){
		"rejected":      func(r *FedResult) { r.Rejected, r.Accepted = 1, 4 },
		"duplicate":     func(r *FedResult) { r.Receivers[1].Duplicates, r.Receivers[1].InboxEntries = 1, 6 },
		"missing":       func(r *FedResult) { r.Receivers[2].Delivered, r.Receivers[2].Missing = 4, 1 },
		"unknown":       func(r *FedResult) { r.Receivers[0].Unknown = 1 },
		"extra entry":   func(r *FedResult) { r.Receivers[0].InboxEntries = 6 },
		"not decrypted": func(r *FedResult) { r.Verify[1].Decrypted = 4 },
		"decrypt error": func(r *FedResult) { r.Verify[2].Errors = 1 },
	} {
		r := good()
		spoil(r)
		if err := r.check(); !errors.Is(err, errIncomplete) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
