package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `mimid demo` in process: three daemons federating over
// mutual TLS on loopback, the six flows of draft-ralston-mimi-protocol-02,
// Section 3 through the SDK, and the checks after every step. It must exit
// 0, print every step and the final agreement line, and remove its
// temporary directory.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three providers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"demo", "-timeout", "50s"}, &stdout, &stderr)
	out := stdout.String()
	if code != exitOK {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	for _, want := range []string{
		"== 1/6  Alice creates a room (Section 3.1) ==",
		"== 2/6  Alice adds Bob to the room (Section 3.2) ==",
		"== 3/6  Bob adds Cathy to the room, through the hub (Section 3.3) ==",
		"== 4/6  Cathy sends a message (Section 3.4) ==",
		"== 5/6  Bob leaves the room (Section 3.5) ==",
		"== 6/6  Cathy adds a new device (Section 3.6) ==",
		"member = [canAddUser, canSendMessage]",
		"b.example POST /update -> a.example) -> success",
		"the hub a.example answered POST /keyMaterial 200 x1, POST /update 200 x1",
		`ClientB2 decrypted "Hello, clubhouse!" from ClientC1`,
		"ClientB1 processed the commit: removed from the room",
		`ClientA1 decrypted "Hi from my new device" from ClientC3`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	final := regexp.MustCompile(`(?m)^mimid demo: all \d+ checks passed: ClientA1, ClientC1, ClientC2, ClientC3 and the hub a\.example agree on epoch 4 \(epoch authenticator [0-9a-f]+\.\.\.\), participants alice \(admin\), cathy \(member\), members ClientA1 ClientC1 ClientC2 ClientC3\n\z`)
	if !final.MatchString(out) {
		t.Errorf("no final agreement line at the end of the output")
	}
	if strings.Count(out, "  [ok]\n") != 6 {
		t.Errorf("want one agreement check line per step")
	}
	m := regexp.MustCompile(`(?m)^  data       (\S+) \(removed at exit`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no data directory line")
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s not removed: %v", m[1], err)
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
}

// TestDemoFailure: a run that cannot finish in time exits 1 with a clear
// message and cleans up.
func TestDemoFailure(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"demo", "-timeout", "1ms"}, &stdout, &stderr)
	if code != exitFail {
		t.Fatalf("exit status %d, want %d\n%s", code, exitFail, stderr.String())
	}
	if !strings.Contains(stderr.String(), "mimid demo: FAILED: ") || !strings.Contains(stderr.String(), "-timeout 1ms") {
		t.Fatalf("stderr:\n%s", stderr.String())
	}
	if strings.Contains(stdout.String(), "checks passed") {
		t.Fatal("a failed run printed the success line")
	}
	if m := regexp.MustCompile(`(?m)^  data       (\S+) `).FindStringSubmatch(stdout.String()); m != nil {
		if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
			t.Errorf("temporary directory %s not removed: %v", m[1], err)
		}
	}
}

// TestDemoUsage: flag errors are usage errors (exit 2); -h is not.
func TestDemoUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"demo", "extra"}, exitUsage},
		{[]string{"demo", "-timeout", "0s"}, exitUsage},
		{[]string{"demo", "-timeout", "soon"}, exitUsage},
		{[]string{"demo", "-nope"}, exitUsage},
		{[]string{"demo", "-h"}, exitOK},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), tc.args, &stdout, &stderr); code != tc.code {
			t.Errorf("%q: exit status %d, want %d\n%s", tc.args, code, tc.code, stderr.String())
		}
	}
	var stdout bytes.Buffer
	run(context.Background(), []string{"help"}, &stdout, &stdout)
	if !strings.Contains(stdout.String(), "mimid demo [flags]") {
		t.Errorf("usage does not list demo:\n%s", stdout.String())
	}
}

// TestParseRequestCounters reads the federation request counters from a
// Prometheus text exposition.
func TestParseRequestCounters(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]float64
		bad      bool
	}{
		{"empty", "", map[string]float64{}, false},
		{"samples", `# HELP mimi_federation_requests_total Federation requests served.
# TYPE mimi_federation_requests_total counter
mimi_federation_requests_total{code="200",endpoint="update"} 3
mimi_federation_requests_total{code="201",endpoint="notify"} 1
mimi_federation_request_duration_seconds_count{endpoint="update"} 3
go_goroutines 42
`, map[string]float64{"update 200": 3, "notify 201": 1}, false},
		{"no value", `mimi_federation_requests_total{code="200",endpoint="update"}` + "\n", nil, true},
		{"no labels", `mimi_federation_requests_total{} 1` + "\n", nil, true},
		{"bad value", `mimi_federation_requests_total{code="200",endpoint="update"} x` + "\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRequestCounters(strings.NewReader(tc.in))
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("%v, want %v", got, tc.want)
				}
			}
		})
	}
}
